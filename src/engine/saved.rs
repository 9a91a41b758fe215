//! Saved plans: `plan --out FILE` writes one, `apply FILE` applies it only while the desired
//! state and the live state are still the ones it was made from.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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
