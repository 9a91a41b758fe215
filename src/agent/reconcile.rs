//! The `Agent` and its reconcile cycle: fetch a revision, accept it if valid, plan, apply and
//! record what live state matches.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tracing::{error, info, info_span, warn, Instrument};

use super::backoff::Backoff;
use super::source::{Fetched, Revision, Source};
use super::{http, metrics, AgentOptions, Trigger, CLUSTER_KINDS};
use crate::engine::journal::{self, Journal, StateLock};
use crate::engine::{apply, Engine, PlanOptions};
use crate::model::live::LiveState;
use crate::model::notifier::EventKind;
use crate::model::{DesiredState, Kind};
use crate::plan;
use crate::secrets::Secrets;

/// The daemon's state between reconciles.
pub(super) struct Agent {
    pub(super) opts: AgentOptions,
    pub(super) source: Source,
    pub(super) shared: Arc<http::Shared>,
    pub(super) stop: Arc<AtomicBool>,
    /// The last revision that validated, and its desired state.
    pub(super) good: Option<(Revision, DesiredState)>,
    /// A revision that failed validation: not validated again until another arrives.
    pub(super) invalid: Option<String>,
    /// A commit refused for its signature: not checked again until another arrives.
    pub(super) refused: Option<String>,
    /// The revision live state last matched.
    pub(super) applied: Option<String>,
    pub(super) backoff: Backoff,
    /// Fetches of the source that keep failing are retried less and less often.
    pub(super) source_backoff: Backoff,
    /// The last fetch failure, to log a repeated one as such.
    pub(super) source_failure: Option<String>,
    pub(super) recovered: bool,
    pub(super) lock: Option<StateLock>,
    pub(super) cluster: Option<crate::engine::ClusterLock>,
    /// Per backup: the time its schedule was last looked at (it fires for occurrences after it).
    pub(super) schedules: std::collections::BTreeMap<String, u64>,
    /// Backups whose RPO breach was already notified.
    pub(super) breached: std::collections::BTreeSet<String>,
    pub(super) autoscaler: crate::engine::autoscale::Autoscaler,
    pub(super) last_budget: Option<Instant>,
    /// Providers kept open between sampling ticks.
    pub(super) tick_session: Option<Engine>,
    /// Whether this agent did the cluster's work at the last reconcile.
    pub(super) cluster_work: bool,
    /// Per service: the autoscaler's last decision, for `/status`.
    pub(super) last_scaling: std::collections::BTreeMap<String, String>,
}

impl Agent {
    pub(super) fn new(
        opts: AgentOptions,
        source: Source,
        shared: Arc<http::Shared>,
        stop: Arc<AtomicBool>,
    ) -> Self {
        Agent {
            opts,
            source,
            shared,
            stop,
            good: None,
            invalid: None,
            refused: None,
            applied: None,
            backoff: Backoff::default(),
            source_backoff: Backoff::default(),
            source_failure: None,
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
        }
    }

    /// `sync.interval` with ±10% jitter, so agents do not fetch in step.
    pub(super) fn interval(&self) -> Duration {
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

    pub(super) async fn reconcile(&mut self, trigger: Trigger) {
        let started = Instant::now();
        let span = info_span!("reconcile", trigger = ?trigger, revision = tracing::field::Empty);
        // A panic in one reconcile is a bug, but it must not stop the agent: it is reported and
        // the next trigger reconciles again, from the last good revision.
        let result = std::panic::AssertUnwindSafe(self.reconcile_once(&span, trigger))
            .catch_unwind()
            .instrument(span.clone())
            .await;
        let outcome = match result {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => {
                error!(parent: &span, error = %format!("{e:#}"), "reconcile failed");
                self.status(|s| s.last_error = Some(format!("{e:#}")));
                "error"
            }
            Err(panic) => {
                let text = format!(
                    "reconcile panicked (a bug in converge; please report it): {}",
                    panic_message(panic.as_ref())
                );
                error!(parent: &span, "{text}");
                self.status(|s| s.last_error = Some(text.clone()));
                "panic"
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

    /// Validates a new revision; keeps the last good one when it is invalid.
    fn accept(&mut self, rev: Revision) {
        let known = self.good.as_ref().map(|(r, _)| r.id.as_str()) == Some(rev.id.as_str())
            || self.invalid.as_deref() == Some(rev.id.as_str());
        if known {
            return;
        }
        let env = self.opts.env.as_deref();
        let loaded = std::panic::catch_unwind(|| crate::load::load(&rev.tree, env));
        let loaded = match loaded {
            Ok(l) => l,
            Err(panic) => {
                // The loader must never panic; if it does, this revision is treated as invalid.
                let text = format!(
                    "loading revision {} panicked (a bug in converge; please report it): {}; keeping the last good one",
                    rev.short(),
                    panic_message(panic.as_ref())
                );
                error!("{text}");
                self.refuse(&rev.id, text);
                self.invalid = Some(rev.id);
                return;
            }
        };
        match loaded {
            Ok(desired) => {
                match &rev.signed_by {
                    Some(by) => {
                        info!(revision = rev.short(), signed_by = %by, "new revision is valid")
                    }
                    None => info!(revision = rev.short(), "new revision is valid"),
                }
                self.invalid = None;
                self.refused = None;
                self.status(|s| {
                    s.invalid_revision = None;
                    s.last_error = None;
                    s.signed_by = rev.signed_by.clone();
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
                self.refuse(&rev.id, diags.to_string());
                self.invalid = Some(rev.id);
            }
        }
    }

    async fn reconcile_once(
        &mut self,
        span: &tracing::Span,
        trigger: super::Trigger,
    ) -> anyhow::Result<&'static str> {
        let fetched = self.fetch_next(trigger).await;
        match fetched {
            Some(Fetched::Revision(rev)) => {
                span.record("revision", rev.short());
                self.status(|s| s.revision = Some(rev.id.clone()));
                self.accept(rev);
            }
            Some(Fetched::Refused { id, error }) => {
                span.record("revision", &id[..12.min(id.len())]);
                self.status(|s| s.revision = Some(id.clone()));
                self.refuse_signature(&id, &error);
            }
            None => {}
        }
        let Some((rev, desired)) = self.good.clone() else {
            return Ok(if self.source_failure.is_some() {
                "source-error"
            } else {
                "invalid"
            });
        };
        crate::engine::check_host(&desired, self.opts.host.as_deref())?;
        let session = Engine::open(&desired, self.opts.state_dir.clone())
            .await?
            .with_safety_net(Box::new(crate::backup::safety::Net));
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
        let swarm_work = self.swarm_work(&desired, &session, cluster_work).await;
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
        let plan = self.plan(&desired, &live, &session, &rev, (cluster_work, swarm_work));
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
            let ids: Vec<String> = plan.changes.iter().map(|c| c.id.to_string()).collect();
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
        let resources: Vec<String> = plan.changes.iter().map(|c| c.id.to_string()).collect();
        match &outcome {
            apply::Outcome::Applied { .. } => {
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
        if matches!(outcome, apply::Outcome::Applied { .. }) {
            // `/status` and `/metrics` show what runs now, not what ran before the apply.
            if let Ok(live) = session.observe(&declared).await {
                let after = self.plan(&desired, &live, &session, &rev, (cluster_work, swarm_work));
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
        (cluster_work, swarm_work): (bool, bool),
    ) -> plan::Plan {
        let kinds: Vec<Kind> = session
            .kinds()
            .into_iter()
            .filter(|k| cluster_work || !CLUSTER_KINDS.contains(k))
            .filter(|k| swarm_work || !crate::providers::swarm::KINDS.contains(k))
            .collect();
        let opts = PlanOptions {
            host: self.opts.host.as_deref(),
            revision: Some(rev.short()),
            retry_failed: false,
        };
        let mut d = session.diff(desired, live, &opts, &kinds);
        let waiting = self.backoff.waiting(Instant::now());
        if !waiting.is_empty() {
            d.changes.retain(|c| !waiting.contains(&c.id.to_string()));
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

    /// With `providers.swarm`, services are the whole swarm's: one agent applies them. With a
    /// PostgreSQL provider, the holder of the cluster lock; else the swarm's leader. Also
    /// reports the tasks per node in `/status`.
    async fn swarm_work(
        &self,
        desired: &DesiredState,
        session: &Engine,
        cluster_work: bool,
    ) -> bool {
        let Some(swarm) = session.registry().swarm() else {
            return true;
        };
        let rows = swarm.task_rows().await.unwrap_or_default();
        let applies = if desired.project.providers.postgres.is_some() {
            cluster_work
        } else {
            match swarm.is_leader().await {
                Ok(leader) => leader,
                Err(e) => {
                    warn!(error = %e, "cannot tell whether this manager leads the swarm; its services are left to the leader");
                    false
                }
            }
        };
        let role = if applies { "applies" } else { "follows" };
        self.status(|s| {
            s.swarm_tasks = rows;
            s.swarm_role = Some(role.to_string());
        });
        applies
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
}

/// The message a panic carried.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}
