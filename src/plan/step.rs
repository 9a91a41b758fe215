//! One step of a plan: what it does to which resource, what it waits for, and what undoes it.

use serde::{Deserialize, Serialize};

use crate::model::ResourceId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepAction {
    Create,
    Update,
    Replace,
    Delete,
    Start,
    StartColor,
    Switch,
    Drain,
    Migrate,
    Scale,
    Render,
}

impl StepAction {
    pub fn as_str(&self) -> &'static str {
        match self {
            StepAction::Create => "create",
            StepAction::Update => "update",
            StepAction::Replace => "replace",
            StepAction::Delete => "delete",
            StepAction::Start => "start",
            StepAction::StartColor => "start-color",
            StepAction::Switch => "switch",
            StepAction::Drain => "drain",
            StepAction::Migrate => "migrate",
            StepAction::Scale => "scale",
            StepAction::Render => "render",
        }
    }
}

/// What undoes a step when a later one fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compensation {
    pub action: StepAction,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub id: usize,
    pub resource: ResourceId,
    pub action: StepAction,
    pub detail: String,
    pub waits_for: Vec<usize>,
    /// `None`: nothing to undo, or it cannot be undone automatically (the detail says which).
    pub compensation: Option<Compensation>,
    /// Runs later (after `drain`), kept in the journal until it does.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deferred: bool,
}
