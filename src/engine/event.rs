//! The journal's entries: one serde-tagged enum of everything apply, recovery, rollbacks, the
//! autoscaler, budgets and backups record. On disk each is one JSON line,
//! `{"ts":…,"run":…,"event":"step-done","step":3,"resource":…,"data":{…}}`: the same lines
//! earlier versions wrote, so their journals are still read and recovered.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::budget::Limit;
use crate::cost::Usage;
use crate::model::live::Color;
use crate::providers::Undo;

/// One line of the journal: when, which apply run (or process) wrote it, and what happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Unix seconds.
    pub ts: u64,
    /// The apply run this belongs to.
    pub run: String,
    #[serde(flatten)]
    pub event: Event,
}

/// The step (or resource) an entry is about.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What happened. `event` names it; the other fields are the event's own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// An apply run began.
    ApplyStarted {
        data: ApplyStarted,
    },
    /// A step is about to run.
    StepStarted(StepRef),
    /// Before a step touches anything: what undoes it if the process dies while it runs (a
    /// router's previous file, kept under the state directory).
    StepPrepared {
        #[serde(flatten)]
        at: StepRef,
        data: Undo,
    },
    /// A step completed; `data` undoes it.
    StepDone {
        #[serde(flatten)]
        at: StepRef,
        data: Undo,
    },
    StepFailed {
        #[serde(flatten)]
        at: StepRef,
        error: String,
    },
    /// A shutdown stopped the run before `step`.
    ApplyInterrupted {
        step: usize,
    },
    /// `detail`: the outcome (`applied`, `rolled-back`, `rollback-failed`).
    ApplyFinished {
        detail: String,
    },
    CompensationStarted(StepRef),
    /// An undo ran; after a crash, `data` names the run recovery undid it for.
    CompensationDone {
        #[serde(flatten)]
        at: StepRef,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data: Option<RunRef>,
    },
    CompensationFailed {
        #[serde(flatten)]
        at: StepRef,
        error: String,
    },
    /// Recovery closed an interrupted run (`detail`: rolled-back or what is left).
    Recovered {
        detail: String,
        data: RunRef,
    },
    /// A step that runs later (a drain), open until a `deferred-done` names it.
    Deferred {
        #[serde(flatten)]
        at: StepRef,
        data: DeferredData,
    },
    /// A deferred step ran or was cancelled.
    DeferredDone {
        #[serde(flatten)]
        at: StepRef,
        data: DeferredRef,
    },
    /// A service spec a successful apply deployed (what `converge rollback` goes back to).
    Deployed {
        resource: String,
        data: Deployed,
    },
    /// A service spec whose deploy failed and was rolled back: not deployed again by itself.
    SpecFailed {
        resource: String,
        data: SpecHash,
    },
    /// `converge rollback` switched or redeployed a service.
    RolledBack {
        resource: String,
        detail: String,
    },
    /// The autoscaler chose a replica count (`detail`: why).
    Scaled {
        #[serde(flatten)]
        at: StepRef,
        data: Scaled,
    },
    /// What a service runs from now on, for budgets.
    Usage {
        resource: String,
        data: Usage,
    },
    /// A budget's active limit changed.
    BudgetLimit {
        resource: String,
        detail: String,
        data: BudgetLimit,
    },
    /// A budget crossed an alert threshold (once per period).
    BudgetAlert {
        resource: String,
        detail: String,
        data: BudgetAlert,
    },
    BackupDone {
        resource: String,
        detail: String,
        data: BackupTaken,
    },
    BackupFailed {
        resource: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data: Option<BackupTaken>,
    },
    /// A step saved a copy of data before dropping it (`detail`: the copy and how to restore it).
    SafetyCopy {
        resource: String,
        detail: String,
    },
    /// The latest declared `prune` of a volume (the engine's label keeps the value at creation).
    VolumeIntent {
        resource: String,
        data: VolumeIntent,
    },
    /// `converge recover` began (`detail`: what it restores, from where).
    RecoveryStarted {
        detail: String,
    },
    /// `converge recover` restored one item (`detail`: the copy); a resumed recovery skips it.
    RecoveryRestored {
        resource: String,
        detail: String,
    },
    /// `converge recover` ended (`detail`: `recovered`, or `failed: …`; a drill's: `drilled`, or
    /// `drill failed: …`), with its phases' times and the achieved RPO.
    RecoveryFinished {
        detail: String,
        data: RecoveryPhases,
    },
    /// An event a newer version wrote: kept in the file, ignored here.
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApplyStarted {
    #[serde(default)]
    pub revision: Option<String>,
    pub fingerprint: String,
    pub steps: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRef {
    pub run: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeferredData {
    /// Unix seconds when it is due.
    pub due: u64,
    /// The color to stop.
    #[serde(default)]
    pub color: Option<Color>,
    /// The run that deferred it.
    pub run: String,
}

/// Which deferred entry a `deferred-done` closes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeferredRef {
    pub run: String,
    #[serde(default)]
    pub step: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployed {
    pub hash: String,
    #[serde(default)]
    pub color: Option<Color>,
    /// The service document as deployed, read back by `converge rollback` (kept as JSON so a
    /// journal stays readable when the Service fields change).
    pub service: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpecHash {
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scaled {
    pub from: u32,
    pub to: u32,
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetLimit {
    pub limit: Option<Limit>,
    pub ratio: f64,
    pub spend: f64,
    pub period: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetAlert {
    pub threshold: String,
    pub period: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeIntent {
    pub prune: bool,
}

/// The wall time of each phase of a recovery, in order (the RTO is their sum).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecoveryPhases {
    pub phases: Vec<PhaseTime>,
    /// The age of the oldest restored copy in seconds (the achieved RPO), when one was restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_age_seconds: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseTime {
    pub name: String,
    pub seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupTaken {
    pub id: String,
    pub stored_bytes: u64,
    pub seconds: f64,
}

impl Event {
    /// The `event` name written on disk.
    pub fn name(&self) -> &'static str {
        match self {
            Event::ApplyStarted { .. } => "apply-started",
            Event::StepStarted(_) => "step-started",
            Event::StepPrepared { .. } => "step-prepared",
            Event::StepDone { .. } => "step-done",
            Event::StepFailed { .. } => "step-failed",
            Event::ApplyInterrupted { .. } => "apply-interrupted",
            Event::ApplyFinished { .. } => "apply-finished",
            Event::CompensationStarted(_) => "compensation-started",
            Event::CompensationDone { .. } => "compensation-done",
            Event::CompensationFailed { .. } => "compensation-failed",
            Event::Recovered { .. } => "recovered",
            Event::Deferred { .. } => "deferred",
            Event::DeferredDone { .. } => "deferred-done",
            Event::Deployed { .. } => "deployed",
            Event::SpecFailed { .. } => "spec-failed",
            Event::RolledBack { .. } => "rolled-back",
            Event::Scaled { .. } => "scaled",
            Event::Usage { .. } => "usage",
            Event::BudgetLimit { .. } => "budget-limit",
            Event::BudgetAlert { .. } => "budget-alert",
            Event::BackupDone { .. } => "backup-done",
            Event::BackupFailed { .. } => "backup-failed",
            Event::SafetyCopy { .. } => "safety-copy",
            Event::VolumeIntent { .. } => "volume-intent",
            Event::RecoveryStarted { .. } => "recovery-started",
            Event::RecoveryRestored { .. } => "recovery-restored",
            Event::RecoveryFinished { .. } => "recovery-finished",
            Event::Unknown => "unknown",
        }
    }

    /// The step reference, for events about a step.
    pub fn at(&self) -> Option<&StepRef> {
        match self {
            Event::StepStarted(at)
            | Event::CompensationStarted(at)
            | Event::StepPrepared { at, .. }
            | Event::StepDone { at, .. }
            | Event::StepFailed { at, .. }
            | Event::CompensationDone { at, .. }
            | Event::CompensationFailed { at, .. }
            | Event::Deferred { at, .. }
            | Event::DeferredDone { at, .. }
            | Event::Scaled { at, .. } => Some(at),
            _ => None,
        }
    }

    /// The resource the entry is about, if any.
    pub fn resource(&self) -> Option<&str> {
        match self {
            Event::Deployed { resource, .. }
            | Event::SpecFailed { resource, .. }
            | Event::RolledBack { resource, .. }
            | Event::Usage { resource, .. }
            | Event::BudgetLimit { resource, .. }
            | Event::BudgetAlert { resource, .. }
            | Event::BackupDone { resource, .. }
            | Event::BackupFailed { resource, .. }
            | Event::SafetyCopy { resource, .. }
            | Event::VolumeIntent { resource, .. }
            | Event::RecoveryRestored { resource, .. } => Some(resource),
            other => other.at().and_then(|a| a.resource.as_deref()),
        }
    }

    /// The step number, for events about a step.
    pub fn step(&self) -> Option<usize> {
        match self {
            Event::ApplyInterrupted { step } => Some(*step),
            other => other.at().and_then(|a| a.step),
        }
    }
}

impl Entry {
    pub fn name(&self) -> &'static str {
        self.event.name()
    }

    pub fn resource(&self) -> Option<&str> {
        self.event.resource()
    }

    pub fn step(&self) -> Option<usize> {
        self.event.step()
    }
}
