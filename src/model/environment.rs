//! The `Environment` kind: per-environment merge patches keyed by resource id.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::types::Name;

/// Overrides for one environment (`dev`, `staging`, `prod`), applied when `--env` selects it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    pub name: Name,
    /// Merge patches (RFC 7386) keyed by resource id, e.g. `service/api: {replicas: 3}`.
    /// `null` removes a field.
    #[serde(default)]
    pub overrides: BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
}
