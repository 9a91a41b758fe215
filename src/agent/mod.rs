//! `converge agent`: follows a git branch (or a directory), and on every new revision, webhook,
//! timer tick or restart it loads, validates, observes, plans and applies — level-triggered and
//! idempotent. An invalid revision is never applied; drift is repaired or reported; a crash is
//! recovered from the journal; SIGTERM stops between steps.

pub mod autoscale;
pub mod backoff;
pub mod budgets;
pub mod http;
pub mod lock;
pub mod metrics;
pub mod notify;
pub mod schedule;
pub mod source;
pub mod status;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::mpsc;
use tracing::{error, info, info_span, warn, Instrument};

use crate::engine::journal::{self, Journal, StateLock};
use crate::engine::{apply, Engine, PlanOptions};
use crate::model::live::LiveState;
use crate::model::notifier::EventKind;
use crate::model::{DesiredState, Kind, Resource, ResourceId};
use crate::plan;
use crate::secrets::Secrets;
use backoff::Backoff;
use source::{Revision, Source};
use status::{ResourceStatus, Status};

/// Kinds whose work runs once per cluster, on the agent holding the cluster lock.
pub const CLUSTER_KINDS: &[Kind] = &[Kind::Database, Kind::Bucket, Kind::Backup, Kind::Budget];

/// Why a reconcile runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Startup,
    Timer,
    Webhook,
    Changed,
    /// The autoscaler or a budget changed a replica count.
    Scaled,
    /// A sampling tick that changed nothing: no reconcile.
    Tick,
    Stop,
}

pub struct AgentOptions {
    pub source: String,
    pub branch: String,
    pub path: Option<String>,
    pub env: Option<String>,
    pub host: Option<String>,
    pub listen: SocketAddr,
    pub plan_only: bool,
    /// How often scaled services are sampled and the autoscaler decides.
    pub scale_interval: Duration,
    /// How often budgets are evaluated.
    pub budget_interval: Duration,
    pub state_dir: PathBuf,
}

/// Runs until SIGTERM/SIGINT (a second signal exits at once).
pub async fn run(opts: AgentOptions) -> anyhow::Result<()> {
    std::fs::create_dir_all(&opts.state_dir)
        .with_context(|| format!("cannot create {}", opts.state_dir.display()))?;
    let source = Source::new(
        &opts.source,
        &opts.branch,
        opts.path.as_deref(),
        &opts.state_dir,
    );
    let (tx, mut rx) = mpsc::channel(32);
    let shared = Arc::new(http::Shared {
        status: RwLock::new(Status {
            source: source.describe(),
            plan_only: opts.plan_only,
            ..Default::default()
        }),
        metrics: metrics::Metrics::default(),
        trigger: tx.clone(),
        webhook_secret: std::env::var("CONVERGE_WEBHOOK_SECRET")
            .ok()
            .map(String::into_bytes),
        branch: opts.branch.clone(),
    });
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("cannot listen on {}", opts.listen))?;
    let app = http::router(shared.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            error!(error = %e, "http server stopped");
        }
    });
    let stop = Arc::new(AtomicBool::new(false));
    spawn_signals(stop.clone(), tx.clone());
    if let Source::Dir { path } = &source {
        spawn_watcher(path.clone(), tx.clone());
    }
    info!(listen = %opts.listen, source = %source.describe(), "agent started");

    let mut agent = Agent {
        opts,
        source,
        shared,
        stop: stop.clone(),
        good: None,
        invalid: None,
        applied: None,
        backoff: Backoff::default(),
        recovered: false,
        lock: None,
        cluster: None,
        schedules: Default::default(),
        breached: Default::default(),
        autoscaler: Default::default(),
        last_budget: None,
        tick_session: None,
        cluster_work: false,
        last_scaling: Default::default(),
    };
    let mut trigger = Trigger::Startup;
    let mut ticks = tokio::time::interval(agent.opts.scale_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_sync = tokio::time::Instant::now();
    loop {
        if trigger != Trigger::Tick {
            agent.reconcile(trigger).await;
            next_sync = tokio::time::Instant::now() + agent.interval();
        }
        if stop.load(Ordering::SeqCst) {
            break;
        }
        trigger = tokio::select! {
            t = rx.recv() => t.unwrap_or(Trigger::Stop),
            _ = tokio::time::sleep_until(next_sync) => Trigger::Timer,
            _ = ticks.tick() => {
                if agent.tick().await { Trigger::Scaled } else { Trigger::Tick }
            }
        };
        if trigger == Trigger::Changed {
            // Debounce: editors write several times in a row.
            tokio::time::sleep(Duration::from_millis(300)).await;
            while let Ok(t) = rx.try_recv() {
                if t == Trigger::Stop {
                    trigger = Trigger::Stop;
                }
            }
        }
        if trigger == Trigger::Stop || stop.load(Ordering::SeqCst) {
            break;
        }
    }
    if let Some(c) = agent.cluster.as_mut() {
        c.release().await;
    }
    info!("agent stopped");
    Ok(())
}

/// First SIGTERM/SIGINT: finish the current step and stop. Second: exit at once.
fn spawn_signals(stop: Arc<AtomicBool>, tx: mpsc::Sender<Trigger>) {
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        loop {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            if stop.swap(true, Ordering::SeqCst) {
                warn!("second signal: exiting now");
                std::process::exit(130);
            }
            info!("shutdown requested: finishing the current step");
            let _ = tx.try_send(Trigger::Stop);
        }
    });
}

fn spawn_watcher(dir: PathBuf, tx: mpsc::Sender<Trigger>) {
    use ::notify::{RecursiveMode, Watcher};
    let handler = move |res: ::notify::Result<::notify::Event>| {
        // Reading the files (an access) is what every reconcile does: only changes count.
        if res.is_ok_and(|e| !matches!(e.kind, ::notify::EventKind::Access(_))) {
            let _ = tx.try_send(Trigger::Changed);
        }
    };
    match ::notify::recommended_watcher(handler) {
        Ok(mut w) => {
            if let Err(e) = w.watch(&dir, RecursiveMode::Recursive) {
                warn!(error = %e, "cannot watch the source directory; relying on the interval");
            }
            // The watcher lives as long as the process.
            std::mem::forget(w);
        }
        Err(e) => warn!(error = %e, "cannot watch the source directory; relying on the interval"),
    }
}

struct Agent {
    opts: AgentOptions,
    source: Source,
    shared: Arc<http::Shared>,
    stop: Arc<AtomicBool>,
    /// The last revision that validated, and its desired state.
    good: Option<(Revision, DesiredState)>,
    /// A revision that failed validation: not validated again until another arrives.
    invalid: Option<String>,
    /// The revision live state last matched.
    applied: Option<String>,
    backoff: Backoff,
    recovered: bool,
    lock: Option<StateLock>,
    cluster: Option<lock::ClusterLock>,
    /// Per backup: the time its schedule was last looked at (it fires for occurrences after it).
    schedules: std::collections::BTreeMap<String, u64>,
    /// Backups whose RPO breach was already notified.
    breached: std::collections::BTreeSet<String>,
    autoscaler: autoscale::Autoscaler,
    last_budget: Option<Instant>,
    /// Providers kept open between sampling ticks.
    tick_session: Option<Engine>,
    /// Whether this agent did the cluster's work at the last reconcile.
    cluster_work: bool,
    /// Per service: the autoscaler's last decision, for `/status`.
    last_scaling: std::collections::BTreeMap<String, String>,
}

impl Agent {
    /// `sync.interval` with ±10% jitter, so agents do not fetch in step.
    fn interval(&self) -> Duration {
        let base = self
            .good
            .as_ref()
            .map(|(_, d)| d.project.sync.interval.to_std())
            .unwrap_or(Duration::from_secs(30));
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        base.mul_f64(0.9 + 0.2 * (nanos % 1000) as f64 / 1000.0)
    }

    fn status(&self, f: impl FnOnce(&mut Status)) {
        f(&mut self.shared.status.write().expect("status lock"));
    }

    async fn reconcile(&mut self, trigger: Trigger) {
        let started = Instant::now();
        let span = info_span!("reconcile", trigger = ?trigger, revision = tracing::field::Empty);
        let result = self.reconcile_once(&span).instrument(span.clone()).await;
        let outcome = match result {
            Ok(o) => o,
            Err(e) => {
                error!(parent: &span, error = %format!("{e:#}"), "reconcile failed");
                self.status(|s| s.last_error = Some(format!("{e:#}")));
                "error"
            }
        };
        let label = metrics::Outcome {
            outcome: outcome.into(),
        };
        self.shared.metrics.reconciles.get_or_create(&label).inc();
        self.shared
            .metrics
            .reconcile_seconds
            .get_or_create(&label)
            .observe(started.elapsed().as_secs_f64());
        self.status(|s| {
            s.reconciles += 1;
            s.last_outcome = Some(outcome.into());
        });
    }

    async fn fetch(&self) -> anyhow::Result<Revision> {
        let source = self.source.clone();
        tokio::task::spawn_blocking(move || source.fetch())
            .await
            .context("fetch task")?
            .context("fetching the desired state")
    }

    /// Validates a new revision; keeps the last good one when it is invalid.
    fn accept(&mut self, rev: Revision) {
        let known = self.good.as_ref().map(|(r, _)| r.id.as_str()) == Some(rev.id.as_str())
            || self.invalid.as_deref() == Some(rev.id.as_str());
        if known {
            return;
        }
        match crate::load::load(&rev.tree, self.opts.env.as_deref()) {
            Ok(desired) => {
                info!(revision = rev.short(), "new revision is valid");
                self.invalid = None;
                self.status(|s| {
                    s.invalid_revision = None;
                    s.last_error = None;
                    s.project = Some(desired.project.name.to_string());
                });
                self.good = Some((rev, desired));
            }
            Err(diags) => {
                error!(
                    revision = rev.short(),
                    problems = diags.0.len(),
                    "revision is invalid; keeping the last good one\n{diags}"
                );
                self.shared.metrics.invalid_revisions.inc();
                self.status(|s| {
                    s.invalid_revision = Some(rev.id.clone());
                    s.last_error = Some(diags.to_string());
                });
                self.invalid = Some(rev.id);
            }
        }
    }

    async fn reconcile_once(&mut self, span: &tracing::Span) -> anyhow::Result<&'static str> {
        let rev = self.fetch().await?;
        span.record("revision", rev.short());
        self.status(|s| s.revision = Some(rev.id.clone()));
        self.accept(rev);
        let Some((rev, desired)) = self.good.clone() else {
            return Ok("invalid");
        };
        crate::engine::check_host(&desired, self.opts.host.as_deref())?;
        let session = Engine::open(&desired, self.opts.state_dir.clone()).await?;
        let project = desired.project.name.to_string();
        if self.lock.is_none() {
            self.lock = Some(StateLock::acquire(&self.opts.state_dir, &project)?);
        }
        let mut journal = Journal::open(&self.opts.state_dir, &project)?;
        if !self.recovered {
            for line in session.recover(&mut journal).await? {
                warn!("{line}");
            }
            self.recovered = true;
        }
        let cluster_work = self.poll_cluster_lock(&desired, &session).await;
        self.cluster_work = cluster_work;
        let live = session
            .prepare(
                &desired,
                &mut journal,
                &rev.root,
                Some(rev.short()),
                &mut |l| info!("{}", l.trim()),
            )
            .await?;
        if cluster_work {
            self.run_schedules(&desired, &session, &rev).await;
        }
        // The autoscaler's and the budgets' replica counts stand in for the declared ones.
        let declared = desired;
        let desired = crate::scale::with_overrides(&declared, &live.overrides);
        let plan = self.plan(&desired, &live, &session, &rev, cluster_work);
        self.report(&declared, &live, &plan, &session.kinds());
        if !plan.errors.is_empty() {
            let errors = plan.errors.join("\n");
            error!("the plan cannot be applied:\n{errors}");
            self.status(|s| s.last_error = Some(errors.clone()));
            return Ok("blocked");
        }
        if plan.is_empty() {
            self.mark_applied(&rev);
            return Ok("no-changes");
        }
        // Scaling chosen by the autoscaler or a budget is not drift from Git.
        let drift = self.applied.as_deref() == Some(rev.id.as_str())
            && plan.changes.iter().any(|c| c.origin.is_none());
        let secrets = Arc::new(Secrets::load_or_create(&self.opts.state_dir)?);
        if drift {
            let ids: Vec<String> = plan.changes.iter().map(|c| c.id.clone()).collect();
            warn!(resources = %ids.join(", "), "drift");
            self.shared.metrics.drift.inc();
            self.event(
                &desired,
                &secrets,
                &rev,
                EventKind::Drift,
                format!("drift in {}: {}", project, ids.join(", ")),
            );
            if !desired.project.sync.self_heal || self.opts.plan_only {
                return Ok("drift-reported");
            }
        }
        if self.opts.plan_only {
            info!("plan-only: {}", plan::text::summary_line(&plan));
            return Ok("planned");
        }
        info!("applying: {}", plan::text::summary_line(&plan));
        let stop = self.stop.clone();
        let run = apply::Run {
            stop: Some(&stop),
            ..session.run(&desired, &live, &rev.root, Some(rev.short()))
        };
        let outcome = session
            .apply(&plan, &run, &mut journal, &mut |l| info!("{}", l.trim()))
            .await?;
        let resources: Vec<String> = plan.changes.iter().map(|c| c.id.clone()).collect();
        match &outcome {
            apply::Outcome::Applied => {
                for r in &resources {
                    self.backoff.succeeded(r);
                }
                self.mark_applied(&rev);
                self.event(
                    &desired,
                    &secrets,
                    &rev,
                    EventKind::Applied,
                    format!(
                        "{project}: applied {} ({})",
                        rev.short(),
                        plan::text::summary_line(&plan)
                    ),
                );
            }
            apply::Outcome::RolledBack { step, error, .. }
            | apply::Outcome::RollbackFailed { step, error, .. } => {
                let resource = step.split_whitespace().nth(1).unwrap_or("").to_string();
                self.backoff.failed(&resource, Instant::now());
                self.shared.metrics.apply_failures.inc();
                let text = format!(
                    "{project}: apply of {} failed at `{step}`: {error}",
                    rev.short()
                );
                self.event(
                    &desired,
                    &secrets,
                    &rev,
                    EventKind::ApplyFailed,
                    text.clone(),
                );
                if matches!(outcome, apply::Outcome::RolledBack { .. }) {
                    self.shared.metrics.rollbacks.inc();
                    self.event(
                        &desired,
                        &secrets,
                        &rev,
                        EventKind::RolledBack,
                        format!("{text}; rolled back"),
                    );
                }
                self.status(|s| s.last_error = Some(format!("`{step}`: {error}")));
            }
            apply::Outcome::Interrupted { .. } => {}
        }
        if matches!(outcome, apply::Outcome::Applied) {
            // `/status` and `/metrics` show what runs now, not what ran before the apply.
            if let Ok(live) = session.observe(&declared).await {
                let after = self.plan(&desired, &live, &session, &rev, cluster_work);
                self.report(&declared, &live, &after, &session.kinds());
            }
        }
        Ok(outcome.name())
    }

    /// The plan, less the resources still backing off after a failure.
    fn plan(
        &self,
        desired: &DesiredState,
        live: &LiveState,
        session: &Engine,
        rev: &Revision,
        cluster_work: bool,
    ) -> plan::Plan {
        let kinds: Vec<Kind> = session
            .kinds()
            .into_iter()
            .filter(|k| cluster_work || !CLUSTER_KINDS.contains(k))
            .collect();
        let opts = PlanOptions {
            host: self.opts.host.as_deref(),
            revision: Some(rev.short()),
            retry_failed: false,
        };
        let mut d = session.diff(desired, live, &opts, &kinds);
        let waiting = self.backoff.waiting(Instant::now());
        if !waiting.is_empty() {
            d.changes.retain(|c| !waiting.contains(&c.id));
            for w in &waiting {
                let secs = self
                    .backoff
                    .retry_in(w, Instant::now())
                    .unwrap_or_default()
                    .as_secs();
                d.notes
                    .push(format!("{w}: failed recently; retried in {secs}s"));
            }
        }
        crate::engine::plan_of(desired, live, d, &opts)
    }

    /// Runs the backups whose schedule came due since it was last looked at, then checks RPOs.
    async fn run_schedules(&mut self, desired: &DesiredState, session: &Engine, rev: &Revision) {
        let now = journal::now();
        let backups: Vec<crate::model::Backup> = desired
            .resources
            .values()
            .filter_map(|r| match r {
                Resource::Backup(b) => Some(b.clone()),
                _ => None,
            })
            .collect();
        let secrets = match Secrets::load_or_create(&self.opts.state_dir) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                error!(error = %e, "cannot read the digest key; backups skipped");
                return;
            }
        };
        for b in &backups {
            let id = format!("backup/{}", b.name);
            let since = *self.schedules.entry(id.clone()).or_insert(now);
            let due = schedule::next_after(b.schedule.as_str(), since).is_some_and(|t| t <= now);
            if !due {
                continue;
            }
            self.schedules.insert(id.clone(), now);
            info!(backup = %b.name, "scheduled backup");
            let tools =
                crate::backup::Tools::of(desired, session, tokio::runtime::Handle::current());
            let state_dir = self.opts.state_dir.clone();
            let result =
                tokio::task::block_in_place(|| crate::backup::job::run_now(&tools, b, &state_dir));
            match result {
                Ok(lines) => lines.iter().for_each(|l| info!("{l}")),
                Err(e) => {
                    error!(backup = %b.name, error = %e, "backup failed");
                    self.event(
                        desired,
                        &secrets,
                        rev,
                        EventKind::BackupFailed,
                        format!("{}: backup/{} failed: {e}", desired.project.name, b.name),
                    );
                }
            }
        }
        let last = schedule::last_success(&Journal::entries(
            &self.opts.state_dir,
            desired.project.name.as_str(),
        ));
        for b in &backups {
            let id = format!("backup/{}", b.name);
            let at = last.get(&id).copied();
            if let Some(t) = at {
                self.shared
                    .metrics
                    .backup_last_success
                    .get_or_create(&metrics::BackupLabel {
                        backup: b.name.to_string(),
                    })
                    .set(t as f64);
            }
            let Some(rpo) = b.rpo else { continue };
            let age = now.saturating_sub(at.unwrap_or(0));
            let known = self.schedules.get(&id).copied().unwrap_or(now);
            // A backup never taken breaches once the agent has watched it for longer than the RPO.
            let breached = match at {
                Some(_) => age > rpo.as_millis() / 1000,
                None => now.saturating_sub(known) > rpo.as_millis() / 1000,
            };
            if breached && self.breached.insert(id.clone()) {
                warn!(backup = %b.name, "RPO breached");
                self.event(
                    desired,
                    &secrets,
                    rev,
                    EventKind::RpoBreach,
                    format!(
                        "{}: backup/{} is older than its RPO of {rpo}",
                        desired.project.name, b.name
                    ),
                );
            } else if !breached {
                self.breached.remove(&id);
            }
            self.shared
                .metrics
                .backup_rpo_breached
                .get_or_create(&metrics::BackupLabel {
                    backup: b.name.to_string(),
                })
                .set(i64::from(breached));
        }
    }

    /// Polls the PostgreSQL advisory lock; returns whether this agent may do cluster-wide work.
    async fn poll_cluster_lock(&mut self, desired: &DesiredState, session: &Engine) -> bool {
        let project = desired.project.name.as_str();
        let url = match desired
            .project
            .providers
            .postgres
            .as_ref()
            .map(|p| session.secrets().resolve(&p.url))
        {
            Some(Ok(u)) => Some(u),
            Some(Err(e)) => {
                warn!(error = %e, "the PostgreSQL provider's URL cannot be resolved; no cluster-wide work");
                self.status(|s| s.cluster_lock = format!("error: {e}"));
                return false;
            }
            None => None,
        };
        let cluster = self
            .cluster
            .get_or_insert_with(|| lock::ClusterLock::new(project));
        let before = cluster.state.clone();
        let state = cluster.poll(url.as_deref()).await.clone();
        if state != before {
            info!(lock = %state.label(), "cluster lock");
        }
        self.shared
            .metrics
            .cluster_lock_held
            .set(i64::from(state == lock::LockState::Held));
        self.status(|s| s.cluster_lock = state.label());
        state.allows_cluster_work()
    }

    fn mark_applied(&mut self, rev: &Revision) {
        if self.applied.as_deref() != Some(rev.id.as_str()) {
            info!(revision = rev.short(), "live state matches the revision");
            self.shared.metrics.applied_revision.clear();
            self.shared
                .metrics
                .applied_revision
                .get_or_create(&metrics::RevisionLabel {
                    revision: rev.id.clone(),
                })
                .set(1);
            self.shared.metrics.last_applied.set(journal::now() as f64);
            self.applied = Some(rev.id.clone());
        }
        self.status(|s| {
            s.applied_revision = Some(rev.id.clone());
            s.applied_at = Some(journal::now());
            s.ready = true;
        });
    }

    fn event(
        &self,
        desired: &DesiredState,
        secrets: &Arc<Secrets>,
        rev: &Revision,
        kind: EventKind,
        text: String,
    ) {
        notify::send(
            desired,
            secrets.clone(),
            notify::Event {
                text,
                event: kind,
                project: desired.project.name.to_string(),
                revision: Some(rev.id.clone()),
            },
        );
    }

    /// Per-resource state for `/status` and the service gauges for `/metrics`.
    fn report(
        &self,
        desired: &DesiredState,
        live: &LiveState,
        plan: &plan::Plan,
        reconciled: &[Kind],
    ) {
        let changing: std::collections::BTreeSet<&str> =
            plan.changes.iter().map(|c| c.id.as_str()).collect();
        let m = &self.shared.metrics;
        m.active_color.clear();
        m.running.clear();
        let mut resources = std::collections::BTreeMap::new();
        for (id, r) in &desired.resources {
            let key = id.to_string();
            let mut st = ResourceStatus {
                state: if !reconciled.contains(&id.kind) {
                    "not-reconciled".into()
                } else if changing.contains(key.as_str()) {
                    "changing".into()
                } else {
                    "ok".into()
                },
                ..Default::default()
            };
            if let Resource::Service(s) = r {
                let ls = live.service(&ResourceId::new(Kind::Service, s.name.as_str()));
                let running = ls
                    .map(|l| {
                        l.containers
                            .iter()
                            .filter(|c| {
                                c.running && (l.active_color.is_none() || c.color == l.active_color)
                            })
                            .count() as u32
                    })
                    .unwrap_or(0);
                st.running = Some(running);
                st.desired = Some(s.replicas);
                let label = metrics::ServiceLabel {
                    service: s.name.to_string(),
                };
                m.desired_replicas
                    .get_or_create(&label)
                    .set(s.replicas as i64);
                let o = live.overrides.get(s.name.as_str());
                m.autoscaled_replicas
                    .get_or_create(&label)
                    .set(o.map(|o| o.replicas).unwrap_or(s.replicas) as i64);
                st.autoscaled = o.map(|o| o.replicas);
                st.scaling = o.map(|o| o.reason.clone());
                st.last_scaling = self.last_scaling.get(s.name.as_str()).cloned();
                st.active_color = ls.and_then(|l| l.active_color).map(|c| c.to_string());
                m.running
                    .get_or_create(&metrics::ServiceLabel {
                        service: s.name.to_string(),
                    })
                    .set(running as i64);
                if let Some(c) = &st.active_color {
                    m.active_color
                        .get_or_create(&metrics::ColorLabel {
                            service: s.name.to_string(),
                            color: c.clone(),
                        })
                        .set(1);
                }
            }
            if let Some(wait) = self
                .backoff
                .retry_in(&key, Instant::now())
                .filter(|d| !d.is_zero())
            {
                st.state = "backoff".into();
                st.detail = Some(format!("retried in {}s", wait.as_secs()));
            }
            resources.insert(key, st);
        }
        // Replica counts the autoscaler or a budget chose are not drift from Git.
        let drifting: Vec<String> = plan
            .changes
            .iter()
            .filter(|c| c.origin.is_none())
            .map(|c| c.id.clone())
            .collect();
        let drifted = if self.applied.is_some() {
            drifting.len()
        } else {
            0
        };
        m.drifted_resources.set(drifted as i64);
        self.status(|s| {
            s.resources = resources;
            s.pending = live.pending.clone();
            s.notes = plan.notes.clone();
            s.drift = if self.applied.as_deref() == s.revision.as_deref() {
                drifting
            } else {
                Vec::new()
            };
        });
    }
}

impl Agent {
    /// A sampling tick: the autoscaler samples and decides, and budgets are evaluated when due.
    /// Decisions go to the journal; returns whether a replica count changed (then reconcile).
    async fn tick(&mut self) -> bool {
        let Some((rev, desired)) = self.good.clone() else {
            return false;
        };
        if self.lock.is_none() || self.opts.plan_only {
            return false;
        }
        let scaled = desired.services().any(|s| s.scale.is_some());
        let budget_due = budgets::budgets(&desired).next().is_some()
            && self
                .last_budget
                .is_none_or(|t| t.elapsed() >= self.opts.budget_interval);
        if !scaled && !budget_due {
            return false;
        }
        match self.tick_work(&desired, &rev, scaled, budget_due).await {
            Ok(changed) => changed,
            Err(e) => {
                warn!(error = %format!("{e:#}"), "autoscaling/budget tick failed");
                self.tick_session = None;
                false
            }
        }
    }

    async fn tick_work(
        &mut self,
        desired: &DesiredState,
        rev: &Revision,
        scaled: bool,
        budget_due: bool,
    ) -> anyhow::Result<bool> {
        let session = match self.tick_session.take() {
            Some(s) => s,
            None => Engine::open(desired, self.opts.state_dir.clone()).await?,
        };
        let live = session.observe_services(desired).await?;
        let project = desired.project.name.to_string();
        let mut journal = Journal::open(&self.opts.state_dir, &project)?;
        let mut changed = false;
        if scaled {
            changed |= self
                .autoscale(desired, rev, &live, &session, &mut journal)
                .await?;
        }
        if budget_due {
            self.last_budget = Some(Instant::now());
            changed |= self
                .evaluate_budgets(desired, rev, &live, &session, &mut journal)
                .await?;
        }
        self.tick_session = Some(session);
        Ok(changed)
    }

    async fn autoscale(
        &mut self,
        desired: &DesiredState,
        rev: &Revision,
        live: &LiveState,
        session: &Engine,
        journal: &mut Journal,
    ) -> anyhow::Result<bool> {
        let now = millis();
        let round = self
            .autoscaler
            .sample(
                desired,
                live,
                session.registry().runtime(),
                session.registry().postgres(),
                now,
            )
            .await;
        tracing::debug!(?round, "autoscaler sampled");
        let entries = journal.read_all();
        let chosen = journal::autoscaled_of(&entries);
        let decisions = self.autoscaler.decide(desired, &chosen, now);
        if decisions.is_empty() {
            return Ok(false);
        }
        let secrets = Arc::new(Secrets::load_or_create(&self.opts.state_dir)?);
        for (name, d) in decisions {
            journal.record("scaled", |e| {
                e.resource = Some(format!("service/{name}"));
                e.action = Some("scale".into());
                e.detail = Some(d.reason.clone());
                e.data = serde_json::json!({"from": d.from, "to": d.to, "metrics": d.metrics});
            })?;
            info!(service = %name, from = d.from, to = d.to, reason = %d.reason, "autoscaled");
            let text = format!(
                "{}: service/{name} autoscaled {} → {}: {}",
                desired.project.name, d.from, d.to, d.reason
            );
            self.last_scaling.insert(
                name.clone(),
                format!(
                    "{} → {}: {} ({})",
                    d.from,
                    d.to,
                    d.reason,
                    plan::text::utc(now / 1000)
                ),
            );
            self.shared
                .metrics
                .scaling_decisions
                .get_or_create(&metrics::ServiceLabel { service: name })
                .inc();
            self.event(desired, &secrets, rev, EventKind::Scaled, text);
        }
        Ok(true)
    }

    /// Records usage that changed, evaluates every budget, journals limit changes and threshold
    /// crossings (each once per period; notified by the agent doing the cluster's work).
    async fn evaluate_budgets(
        &mut self,
        desired: &DesiredState,
        rev: &Revision,
        live: &LiveState,
        session: &Engine,
        journal: &mut Journal,
    ) -> anyhow::Result<bool> {
        let project = desired.project.name.to_string();
        for (resource, usage) in budgets::usage_changes(live, &journal.read_all()) {
            journal.record("usage", |e| {
                e.resource = Some(resource.clone());
                e.data = serde_json::to_value(usage).unwrap_or_default();
            })?;
        }
        let entries = journal.read_all();
        let previous = journal::budget_statuses(&self.opts.state_dir, &project);
        let now = journal::now();
        let (statuses, warnings) = budgets::evaluate_all(
            desired,
            live,
            &entries,
            session.registry().postgres(),
            &previous,
            now,
        )
        .await;
        for w in warnings {
            warn!("{w}");
        }
        let secrets = Arc::new(Secrets::load_or_create(&self.opts.state_dir)?);
        let mut changed = false;
        let m = &self.shared.metrics;
        m.budget_limit_active.clear();
        for (b, s) in budgets::budgets(desired).zip(&statuses) {
            let before = previous
                .iter()
                .find(|p| p.budget == s.budget && p.period == s.period)
                .and_then(|p| p.limit);
            if s.limit != before {
                let text = budgets::limit_message(b, s, before);
                journal.record("budget-limit", |e| {
                    e.resource = Some(s.budget.clone());
                    e.detail = Some(text.clone());
                    e.data = serde_json::json!({"limit": s.limit, "ratio": s.ratio, "spend": s.spend, "period": s.period});
                })?;
                warn!("{text}");
                changed = true;
                self.budget_event(desired, &secrets, rev, b, text);
            }
            let notified = journal::budget_alerts_of(&entries, &s.budget, &s.period);
            for a in crate::budget::new_crossings(&b.alerts, s.ratio, &notified) {
                let text = format!(
                    "{} crossed {:.0}% of {}: {} spent, {} projected by the period's end",
                    s.budget,
                    a * 100.0,
                    crate::cost::money(b.amount, &b.currency),
                    crate::cost::money(s.spend, &b.currency),
                    crate::cost::money(s.projected, &b.currency)
                );
                journal.record("budget-alert", |e| {
                    e.resource = Some(s.budget.clone());
                    e.detail = Some(text.clone());
                    e.data = serde_json::json!({"threshold": crate::budget::threshold_key(a), "period": s.period});
                })?;
                warn!("{text}");
                self.budget_event(desired, &secrets, rev, b, text);
            }
            let label = metrics::BudgetLabel {
                budget: b.name.to_string(),
            };
            m.budget_spend.get_or_create(&label).set(s.spend);
            m.budget_spend_ratio.get_or_create(&label).set(s.ratio);
            m.budget_projected.get_or_create(&label).set(s.projected);
            if let Some(l) = s.limit {
                m.budget_limit_active
                    .get_or_create(&metrics::LimitLabel {
                        budget: b.name.to_string(),
                        limit: l.as_str().into(),
                    })
                    .set(1);
            }
        }
        journal::write_budget_statuses(&self.opts.state_dir, &project, &statuses)?;
        self.status(|st| st.budgets = statuses);
        Ok(changed)
    }
}

impl Agent {
    /// Tells the budget's own notifiers, from the agent doing the cluster's work only.
    fn budget_event(
        &self,
        desired: &DesiredState,
        secrets: &Arc<Secrets>,
        rev: &Revision,
        b: &crate::model::Budget,
        text: String,
    ) {
        if !self.cluster_work {
            return;
        }
        let event = notify::Event {
            text,
            event: EventKind::Budget,
            project: desired.project.name.to_string(),
            revision: Some(rev.id.clone()),
        };
        notify::send_to(desired, secrets.clone(), event, &b.notify);
    }
}

/// Unix milliseconds.
fn millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
