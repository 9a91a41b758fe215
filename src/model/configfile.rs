//! The `ConfigFile` kind: any other rendered file (Prometheus, alert rules, Alertmanager, dashboards).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::action::Action;
use super::types::{Duration, Name};

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
    /// How long `check` and `reload` may each run before converge stops them and counts them
    /// as failed (a failed check puts the previous file back). Default: 60s for a command,
    /// 30s for an HTTP request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_timeout: Option<Duration>,
}
