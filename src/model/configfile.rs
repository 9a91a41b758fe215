//! The `ConfigFile` kind: any other rendered file (Prometheus, alert rules, Alertmanager, dashboards).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::action::Action;
use super::types::Name;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub name: Name,
    /// A built-in template by bare name (`prometheus`) or a file relative to the desired-state directory.
    pub template: String,
    /// Where the rendered file is written.
    pub path: String,
    #[serde(default)]
    pub check: Option<Action>,
    #[serde(default)]
    pub reload: Option<Action>,
}
