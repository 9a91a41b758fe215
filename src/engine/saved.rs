//! Saved plans: `plan --out FILE` writes one, `apply FILE` applies it only while the desired
//! state and the live state are still the ones it was made from.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::load::SourceTree;
use crate::model::live::LiveState;
use crate::plan::Plan;

/// A plan saved with `plan --out`, applied later with `apply FILE`.
#[derive(Serialize, Deserialize)]
pub struct SavedPlan {
    pub format_version: String,
    pub dir: PathBuf,
    pub env: Option<String>,
    pub host: Option<String>,
    /// Digest of the desired-state files the plan was made from.
    pub desired_digest: String,
    pub plan: Plan,
}

/// Why a saved plan cannot be applied.
#[derive(Debug, Error)]
pub enum SavedPlanError {
    #[error("cannot read {path}: {message}")]
    Read { path: String, message: String },
    #[error("{path} is not a plan saved by `converge plan --out`: {message}")]
    NotAPlan { path: String, message: String },
    #[error("cannot write the plan to {path}: {message}")]
    Write { path: String, message: String },
    #[error("the desired state in {dir} changed since this plan was made; nothing was applied\n  = hint: run `converge plan --out` again")]
    DesiredChanged { dir: String },
    #[error("live state changed since this plan was made; nothing was applied\n  = hint: run `converge plan --out` again and review the new plan")]
    LiveChanged,
}

impl SavedPlan {
    pub fn read(path: &Path) -> Result<SavedPlan, SavedPlanError> {
        let text = std::fs::read_to_string(path).map_err(|e| SavedPlanError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        serde_json::from_str(&text).map_err(|e| SavedPlanError::NotAPlan {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }

    pub fn write(&self, path: &Path) -> Result<(), SavedPlanError> {
        let json = serde_json::to_string_pretty(self).expect("a plan serializes");
        std::fs::write(path, json).map_err(|e| SavedPlanError::Write {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }

    /// Refuses the plan when the desired-state files changed since it was made.
    pub fn check_desired(&self, tree: &SourceTree) -> Result<(), SavedPlanError> {
        if tree.digest() != self.desired_digest {
            return Err(SavedPlanError::DesiredChanged {
                dir: self.dir.display().to_string(),
            });
        }
        Ok(())
    }

    /// Refuses the plan when live state changed since it was made.
    pub fn check_live(&self, live: &LiveState) -> Result<(), SavedPlanError> {
        if self.plan.fingerprint != live.fingerprint() {
            return Err(SavedPlanError::LiveChanged);
        }
        Ok(())
    }
}
