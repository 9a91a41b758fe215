//! The agent's Prometheus metrics: reconciles (count and duration by outcome), the applied
//! revision and when, drift, per-service color and running replicas, failures and rollbacks,
//! backups, budgets, and the last recovery's and drill's RTO and RPO (read from the journal).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::disaster::{last_success, RecoveryKind};
use crate::engine::event::Entry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RevisionLabel {
    pub revision: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabel {
    pub service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackupLabel {
    pub backup: String,
}

/// Why a fetch of the source failed: `unreachable`, `auth-refused`, `branch-missing`,
/// `host-key-unknown`, `host-key-changed`, `config` or `other`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

/// `recovery` (`converge recover`) or `drill` (`converge recover --drill`, the agent's schedule).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BudgetLabel {
    pub budget: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabel {
    pub budget: String,
    pub limit: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ColorLabel {
    pub service: String,
    pub color: String,
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 16))
}

pub struct Metrics {
    registry: Registry,
    pub reconciles: Family<Outcome, Counter>,
    pub reconcile_seconds: Family<Outcome, Histogram, fn() -> Histogram>,
    pub applied_revision: Family<RevisionLabel, Gauge>,
    pub last_applied: Gauge<f64, AtomicU64>,
    pub drift: Counter,
    pub drifted_resources: Gauge,
    pub apply_failures: Counter,
    pub rollbacks: Counter,
    pub active_color: Family<ColorLabel, Gauge>,
    pub running: Family<ServiceLabel, Gauge>,
    pub invalid_revisions: Counter,
    pub source_failures: Family<ReasonLabel, Counter>,
    pub up: Gauge,
    pub cluster_lock_held: Gauge,
    pub backup_last_success: Family<BackupLabel, Gauge<f64, AtomicU64>>,
    pub desired_replicas: Family<ServiceLabel, Gauge>,
    pub autoscaled_replicas: Family<ServiceLabel, Gauge>,
    pub scaling_decisions: Family<ServiceLabel, Counter>,
    pub budget_spend: Family<BudgetLabel, Gauge<f64, AtomicU64>>,
    pub budget_spend_ratio: Family<BudgetLabel, Gauge<f64, AtomicU64>>,
    pub budget_projected: Family<BudgetLabel, Gauge<f64, AtomicU64>>,
    pub budget_limit_active: Family<LimitLabel, Gauge>,
    pub backup_rpo_breached: Family<BackupLabel, Gauge>,
    pub recovery_duration: Family<KindLabel, Gauge<f64, AtomicU64>>,
    pub recovery_data_age: Family<KindLabel, Gauge<f64, AtomicU64>>,
    pub recovery_drill_last_success: Gauge<f64, AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("converge");
        let m = Metrics {
            reconciles: Family::default(),
            reconcile_seconds: Family::new_with_constructor(duration_histogram),
            applied_revision: Family::default(),
            last_applied: Gauge::default(),
            drift: Counter::default(),
            drifted_resources: Gauge::default(),
            apply_failures: Counter::default(),
            rollbacks: Counter::default(),
            active_color: Family::default(),
            running: Family::default(),
            invalid_revisions: Counter::default(),
            source_failures: Family::default(),
            up: Gauge::default(),
            cluster_lock_held: Gauge::default(),
            backup_last_success: Family::default(),
            backup_rpo_breached: Family::default(),
            desired_replicas: Family::default(),
            autoscaled_replicas: Family::default(),
            scaling_decisions: Family::default(),
            budget_spend: Family::default(),
            budget_spend_ratio: Family::default(),
            budget_projected: Family::default(),
            budget_limit_active: Family::default(),
            recovery_duration: Family::default(),
            recovery_data_age: Family::default(),
            recovery_drill_last_success: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "service_desired_replicas",
            "Replicas declared in Git",
            m.desired_replicas.clone(),
        );
        registry.register(
            "service_autoscaled_replicas",
            "Replicas after the autoscaler and budgets",
            m.autoscaled_replicas.clone(),
        );
        registry.register(
            "scaling_decisions",
            "Replica changes the autoscaler made",
            m.scaling_decisions.clone(),
        );
        registry.register(
            "budget_spend",
            "Spend so far this period (infrastructure accrued + spend.sql)",
            m.budget_spend.clone(),
        );
        registry.register(
            "budget_spend_ratio",
            "Spend so far over the budget's amount",
            m.budget_spend_ratio.clone(),
        );
        registry.register(
            "budget_projected",
            "Spend projected to the period's end",
            m.budget_projected.clone(),
        );
        registry.register(
            "budget_limit_active",
            "1 while a budget's soft or hard limit is active",
            m.budget_limit_active.clone(),
        );
        registry.register("reconcile", "Reconciles by outcome", m.reconciles.clone());
        registry.register(
            "reconcile_duration_seconds",
            "Reconcile duration by outcome",
            m.reconcile_seconds.clone(),
        );
        registry.register(
            "applied_revision",
            "The revision last applied (value 1)",
            m.applied_revision.clone(),
        );
        registry.register(
            "last_applied_timestamp_seconds",
            "When a revision was last applied",
            m.last_applied.clone(),
        );
        registry.register("drift", "Reconciles that found drift", m.drift.clone());
        registry.register(
            "drifted_resources",
            "Resources drifted at the last check",
            m.drifted_resources.clone(),
        );
        registry.register(
            "apply_failures",
            "Applies that failed",
            m.apply_failures.clone(),
        );
        registry.register("rollbacks", "Applies rolled back", m.rollbacks.clone());
        registry.register(
            "service_active_color",
            "1 for the color that takes traffic",
            m.active_color.clone(),
        );
        registry.register(
            "service_running_replicas",
            "Running containers per service",
            m.running.clone(),
        );
        registry.register(
            "invalid_revisions",
            "Revisions rejected by validation or for their signature",
            m.invalid_revisions.clone(),
        );
        registry.register(
            "source_fetch_failures",
            "Fetches of the desired state's source that failed, by reason",
            m.source_failures.clone(),
        );
        registry.register("agent_up", "1 while the agent runs", m.up.clone());
        registry.register(
            "cluster_lock_held",
            "1 while this agent holds the cluster lock",
            m.cluster_lock_held.clone(),
        );
        registry.register(
            "backup_last_success_timestamp_seconds",
            "When each backup last succeeded",
            m.backup_last_success.clone(),
        );
        registry.register(
            "backup_rpo_breached",
            "1 while a backup is older than its RPO",
            m.backup_rpo_breached.clone(),
        );
        registry.register(
            "recovery_duration_seconds",
            "The RTO of the last completed recovery or drill (every phase, wall time)",
            m.recovery_duration.clone(),
        );
        registry.register(
            "recovery_data_age_seconds",
            "The age of the oldest copy the last completed recovery or drill restored (its RPO)",
            m.recovery_data_age.clone(),
        );
        registry.register(
            "recovery_drill_last_success_timestamp_seconds",
            "When a recovery drill last completed",
            m.recovery_drill_last_success.clone(),
        );
        m.up.set(1);
        Metrics { registry, ..m }
    }
}

impl Metrics {
    /// The recovery figures from the journal's `recovery-finished` entries: the last completed
    /// recovery's and drill's RTO and RPO, and when a drill last completed.
    pub fn record_recoveries(&self, entries: &[Entry]) {
        for kind in [RecoveryKind::Recovery, RecoveryKind::Drill] {
            let Some(f) = last_success(entries, kind) else {
                continue;
            };
            let label = KindLabel {
                kind: kind.as_str().into(),
            };
            self.recovery_duration
                .get_or_create(&label)
                .set(f.rto_seconds);
            if let Some(age) = f.data_age_seconds {
                self.recovery_data_age.get_or_create(&label).set(age as f64);
            }
            if kind == RecoveryKind::Drill {
                self.recovery_drill_last_success.set(f.at as f64);
            }
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_in_prometheus_text() {
        let m = Metrics::default();
        m.reconciles
            .get_or_create(&Outcome {
                outcome: "applied".into(),
            })
            .inc();
        m.reconcile_seconds
            .get_or_create(&Outcome {
                outcome: "applied".into(),
            })
            .observe(0.2);
        let text = m.render();
        assert!(
            text.contains("converge_reconcile_total{outcome=\"applied\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("converge_reconcile_duration_seconds_count{outcome=\"applied\"} 1"),
            "{text}"
        );
        assert!(text.contains("converge_agent_up 1"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }

    fn finished(ts: u64, detail: &str, seconds: f64, age: Option<u64>) -> Entry {
        use crate::engine::event::{Event, PhaseTime, RecoveryPhases};
        Entry {
            ts,
            run: "r".into(),
            event: Event::RecoveryFinished {
                detail: detail.into(),
                data: RecoveryPhases {
                    phases: vec![PhaseTime {
                        name: "restore database/app".into(),
                        seconds,
                    }],
                    data_age_seconds: age,
                },
            },
        }
    }

    #[test]
    fn recovery_metrics_come_from_the_last_completed_recovery_and_drill_in_the_journal() {
        let m = Metrics::default();
        let journal = vec![
            finished(1_000, "recovered", 42.5, Some(900)),
            finished(2_000, "drilled", 3.25, Some(120)),
            // A failed drill changes neither the figures nor the last success.
            finished(3_000, "drill failed: verification failed", 1.0, None),
        ];
        m.record_recoveries(&journal);
        let text = m.render();
        for line in [
            "converge_recovery_duration_seconds{kind=\"recovery\"} 42.5",
            "converge_recovery_duration_seconds{kind=\"drill\"} 3.25",
            "converge_recovery_data_age_seconds{kind=\"recovery\"} 900.0",
            "converge_recovery_data_age_seconds{kind=\"drill\"} 120.0",
            "converge_recovery_drill_last_success_timestamp_seconds 2000.0",
        ] {
            assert!(text.contains(line), "{line}: {text}");
        }
    }

    #[test]
    fn without_a_recovery_in_the_journal_no_recovery_figure_is_exported() {
        let m = Metrics::default();
        m.record_recoveries(&[finished(5, "failed: no copy", 2.0, None)]);
        let text = m.render();
        assert!(
            !text.contains("converge_recovery_duration_seconds{"),
            "{text}"
        );
        assert!(
            text.contains("converge_recovery_drill_last_success_timestamp_seconds 0.0"),
            "{text}"
        );
    }
}
