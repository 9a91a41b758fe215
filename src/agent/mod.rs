//! `converge agent`: follows a git branch (or a directory), and on every new revision, webhook,
//! timer tick or restart it loads, validates, observes, plans and applies — level-triggered and
//! idempotent. An invalid revision is never applied; drift is repaired or reported; a crash is
//! recovered from the journal; SIGTERM stops between steps.

pub mod backoff;
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

use crate::apply::journal::{Journal, StateLock};
use crate::apply::{self, Context};
use crate::cli::live::Session;
use crate::diff::{diff, DiffOptions};
use crate::live::LiveState;
use crate::model::notifier::EventKind;
use crate::model::{DesiredState, Kind, Resource, ResourceId};
use crate::plan::{self, PlanContext};
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
    };
    let mut trigger = Trigger::Startup;
    loop {
        agent.reconcile(trigger).await;
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let interval = agent.interval();
        trigger = tokio::select! {
            t = rx.recv() => t.unwrap_or(Trigger::Stop),
            _ = tokio::time::sleep(interval) => Trigger::Timer,
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
        crate::cli::live::check_host(&desired, self.opts.host.as_deref())?;
        let session = Session::open(&desired, self.opts.state_dir.clone()).await?;
        let project = desired.project.name.to_string();
        if self.lock.is_none() {
            self.lock = Some(StateLock::acquire(&self.opts.state_dir, &project)?);
        }
        let mut journal = Journal::open(&self.opts.state_dir, &project)?;
        if !self.recovered {
            for line in
                apply::recover::recover(&session.docker, session.postgres.as_ref(), &mut journal)
                    .await?
            {
                warn!("{line}");
            }
            self.recovered = true;
        }
        let cluster_work = self.poll_cluster_lock(&desired, &session).await;
        let mut live = session.observe(&desired).await?;
        if live.pending.iter().any(|p| p.due <= apply::journal::now()) {
            let ctx = session.context(&desired, &live, &rev.root, Some(rev.short()));
            apply::run_due_deferred(&ctx, &mut journal, &self.opts.state_dir, &mut |l| {
                info!("{}", l.trim())
            })
            .await?;
            live = session.observe(&desired).await?;
        }
        if cluster_work {
            self.run_schedules(&desired, &session, &rev).await;
        }
        // The autoscaler's and the budgets' replica counts stand in for the declared ones.
        let desired = crate::scale::with_overrides(&desired, &live.overrides);
        let plan = self.plan(&desired, &live, &session, &rev, cluster_work);
        self.report(&desired, &live, &plan, &session.kinds());
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
        let ctx = Context {
            stop: Some(&stop),
            ..session.context(&desired, &live, &rev.root, Some(rev.short()))
        };
        let outcome =
            apply::execute(&plan, &ctx, &mut journal, &mut |l| info!("{}", l.trim())).await?;
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
        Ok(outcome.name())
    }

    /// The plan, less the resources still backing off after a failure.
    fn plan(
        &self,
        desired: &DesiredState,
        live: &LiveState,
        session: &Session,
        rev: &Revision,
        cluster_work: bool,
    ) -> plan::Plan {
        let kinds: Vec<Kind> = session
            .kinds()
            .into_iter()
            .filter(|k| cluster_work || !CLUSTER_KINDS.contains(k))
            .collect();
        let opts = DiffOptions {
            host: self.opts.host.as_deref(),
            secrets: &session.secrets,
            kinds: Some(&kinds),
            retry_failed: false,
        };
        let mut d = diff(desired, live, &opts);
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
        plan::plan(
            desired,
            d,
            PlanContext {
                revision: Some(rev.short()),
                host: self.opts.host.as_deref(),
                fingerprint: live.fingerprint(),
                pending: live.pending.clone(),
            },
        )
    }

    /// Runs the backups whose schedule came due since it was last looked at, then checks RPOs.
    async fn run_schedules(&mut self, desired: &DesiredState, session: &Session, rev: &Revision) {
        let now = apply::journal::now();
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
            let tools = crate::backup::Tools {
                desired,
                secrets: &session.secrets,
                postgres: session.postgres.as_ref(),
                s3: session.s3.as_ref(),
                rt: tokio::runtime::Handle::current(),
            };
            let state_dir = self.opts.state_dir.clone();
            let result =
                tokio::task::block_in_place(|| crate::cli::backup::run_now(&tools, b, &state_dir));
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
    async fn poll_cluster_lock(&mut self, desired: &DesiredState, session: &Session) -> bool {
        let project = desired.project.name.as_str();
        let url = match desired
            .project
            .providers
            .postgres
            .as_ref()
            .map(|p| session.secrets.resolve(&p.url))
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
            self.shared
                .metrics
                .last_applied
                .set(apply::journal::now() as f64);
            self.applied = Some(rev.id.clone());
        }
        self.status(|s| {
            s.applied_revision = Some(rev.id.clone());
            s.applied_at = Some(apply::journal::now());
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
        let drifted = if self.applied.is_some() {
            changing.len()
        } else {
            0
        };
        m.drifted_resources.set(drifted as i64);
        self.status(|s| {
            s.resources = resources;
            s.pending = live.pending.clone();
            s.notes = plan.notes.clone();
            s.drift = if self.applied.as_deref() == s.revision.as_deref() {
                changing.iter().map(|c| c.to_string()).collect()
            } else {
                Vec::new()
            };
        });
    }
}
