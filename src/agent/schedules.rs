//! Timed work between reconciles: backups on their cron and RPO checks, then the recovery drill
//! (`drills`), the cluster lock, and the sampling tick (autoscaler decisions and budget
//! evaluation).

use std::sync::Arc;
use std::time::Instant;

use tracing::{error, info, warn};

use super::source::Revision;
use super::{metrics, schedule, Agent};
use crate::engine::budgets;
use crate::engine::event::{BudgetAlert, BudgetLimit, Event, Scaled, StepRef};
use crate::engine::journal::{self, Journal};
use crate::engine::Engine;
use crate::engine::{ClusterLock, LockState};
use crate::model::live::LiveState;
use crate::model::notifier::EventKind;
use crate::model::{DesiredState, Resource};
use crate::plan;
use crate::secrets::Secrets;

impl Agent {
    /// Runs the backups whose schedule came due since it was last looked at, then checks RPOs.
    pub(super) async fn run_schedules(
        &mut self,
        desired: &DesiredState,
        session: &Engine,
        rev: &Revision,
    ) {
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
        self.run_drill(desired, session, rev).await;
    }

    /// Polls the PostgreSQL advisory lock; returns whether this agent may do cluster-wide work.
    pub(super) async fn poll_cluster_lock(
        &mut self,
        desired: &DesiredState,
        session: &Engine,
    ) -> bool {
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
            .get_or_insert_with(|| ClusterLock::new(project));
        let before = cluster.state.clone();
        let state = cluster.poll(url.as_deref()).await.clone();
        if state != before {
            info!(lock = %state.label(), "cluster lock");
        }
        self.shared
            .metrics
            .cluster_lock_held
            .set(i64::from(state == LockState::Held));
        self.status(|s| s.cluster_lock = state.label());
        state.allows_cluster_work()
    }

    /// A sampling tick: the autoscaler samples and decides, and budgets are evaluated when due.
    /// Decisions go to the journal; returns whether a replica count changed (then reconcile).
    pub(super) async fn tick(&mut self) -> bool {
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
                session.registry().meter(),
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
            journal.record(Event::Scaled {
                at: StepRef {
                    step: None,
                    resource: Some(format!("service/{name}")),
                    action: Some("scale".into()),
                    detail: Some(d.reason.clone()),
                },
                data: Scaled {
                    from: d.from,
                    to: d.to,
                    metrics: d.metrics.clone(),
                },
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
            journal.record(Event::Usage {
                resource: resource.clone(),
                data: usage,
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
                journal.record(Event::BudgetLimit {
                    resource: s.budget.clone(),
                    detail: text.clone(),
                    data: BudgetLimit {
                        limit: s.limit,
                        ratio: s.ratio,
                        spend: s.spend,
                        period: s.period.clone(),
                    },
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
                journal.record(Event::BudgetAlert {
                    resource: s.budget.clone(),
                    detail: text.clone(),
                    data: BudgetAlert {
                        threshold: crate::budget::threshold_key(a),
                        period: s.period.clone(),
                    },
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

/// Unix milliseconds.
fn millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
