//! What `/status` reports: the source and revision, the last outcome, pending deferred steps,
//! each resource's state, budgets, and the last recovery and recovery drill.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::live::PendingStep;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    pub project: Option<String>,
    pub source: String,
    /// The revision last fetched.
    pub revision: Option<String>,
    /// The last revision that was fully applied (live matched it).
    pub applied_revision: Option<String>,
    pub applied_at: Option<u64>,
    pub last_outcome: Option<String>,
    pub last_error: Option<String>,
    /// A revision that failed validation, or was refused for its signature, and is not applied.
    pub invalid_revision: Option<String>,
    /// Why the last fetch of the source failed (cleared by the next that succeeds); meanwhile
    /// the last good revision stays applied.
    pub source_error: Option<String>,
    /// With --verify-signatures: who signed the last good revision, `principal (SHA256:...)`.
    pub signed_by: Option<String>,
    pub reconciles: u64,
    pub ready: bool,
    /// `held`, `waiting`, `not-configured` (no PostgreSQL provider: this agent does everything) or an error.
    pub cluster_lock: String,
    pub plan_only: bool,
    pub pending: Vec<PendingStep>,
    pub drift: Vec<String>,
    pub notes: Vec<String>,
    pub resources: BTreeMap<String, ResourceStatus>,
    /// Each budget as last evaluated: spend, projection, percentage, active limit.
    pub budgets: Vec<crate::budget::BudgetStatus>,
    /// The last recovery drill (the journal's): when, its outcome, RTO and RPO.
    pub last_drill: Option<crate::disaster::Figures>,
    /// The last `converge recover`, likewise.
    pub last_recovery: Option<crate::disaster::Figures>,
    /// With `providers.swarm`: whether this agent applies the swarm's services (`applies`: the
    /// swarm's leader, or the cluster lock's holder) or leaves them to another (`follows`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swarm_role: Option<String>,
    /// With `providers.swarm`: the project's tasks and the node each runs on.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub swarm_tasks: Vec<crate::model::live::TaskRow>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ResourceStatus {
    /// `ok`, `changing`, `drift`, `backoff`, `not-reconciled`.
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_color: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running: Option<u32>,
    /// Replicas declared in Git.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desired: Option<u32>,
    /// Replicas the autoscaler or a budget chose instead, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoscaled: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scaling: Option<String>,
    /// The autoscaler's last decision: `2 → 3: queue_depth 73 > 50 (2026-11-28T17:20:00Z)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_scaling: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}
