//! The `Notifier` kind: where events go (a Slack-compatible webhook or a command) and which events.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::types::{Name, SecretString};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Notifier {
    pub name: Name,
    /// A webhook URL, receiving Slack-compatible JSON. Treated as a secret.
    #[serde(default)]
    pub webhook: Option<SecretString>,
    /// A command that receives the event as JSON on standard input.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Events to send; default: all.
    #[serde(default = "all_events")]
    pub events: Vec<EventKind>,
    /// Which Prometheus alert severities Alertmanager sends to this notifier's webhook.
    #[serde(default = "warning_only")]
    pub severities: Vec<Severity>,
}

/// The `severity` label of an alert: critical pages someone, warning goes to chat.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    Warning,
}

impl Severity {
    pub fn as_str(&self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
        }
    }
}

fn warning_only() -> Vec<Severity> {
    vec![Severity::Warning]
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    Applied,
    ApplyFailed,
    RolledBack,
    Drift,
    Budget,
    BackupFailed,
    RpoBreach,
    Scaled,
    // `converge recover` began; a recovery or a drill completed (the text says when it missed the
    // Project's objectives) or failed.
    RecoveryStarted,
    RecoveryCompleted,
    RecoveryFailed,
}

fn all_events() -> Vec<EventKind> {
    use EventKind::*;
    vec![
        Applied,
        ApplyFailed,
        RolledBack,
        Drift,
        Budget,
        BackupFailed,
        RpoBreach,
        Scaled,
        RecoveryStarted,
        RecoveryCompleted,
        RecoveryFailed,
    ]
}
