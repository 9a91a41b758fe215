//! What a diff produces: changes (create / update / replace / delete, with attribute, file and
//! container detail) and the options a diff runs with. Plain data, serialized in plans.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::live::Color;
use crate::model::service::Strategy;
use crate::model::types::Duration;
use crate::model::{AttrValue, Kind, ResourceId, SecretDigest};
use crate::render::ActiveColor;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeAction {
    Create,
    Update,
    Replace,
    Delete,
}

/// What a change is about: a declared kind, or a network/volume that services imply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Subject {
    Network,
    Volume,
    Resource(Kind),
}

impl From<Kind> for Subject {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Network => Subject::Network,
            Kind::Volume => Subject::Volume,
            k => Subject::Resource(k),
        }
    }
}

/// One attribute's before and after; `None` is absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttrChange {
    pub key: String,
    pub before: Option<AttrValue>,
    pub after: Option<AttrValue>,
    /// Changing it needs new containers.
    pub replaces: bool,
}

/// A rendered file's content before and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileChange {
    pub path: String,
    pub before: Option<String>,
    pub after: String,
}

/// What happens to a service's containers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ServiceChange {
    /// Start `replicas` containers (in `color` for blue-green).
    Start { replicas: u32, color: Option<Color> },
    /// New containers replace the old ones, all at once (`recreate`) or one by one (`rolling`).
    Replace { strategy: Strategy, replicas: u32 },
    /// Blue-green: start `to`, gate, switch routers, verify, drain `from` after `drain`.
    Deploy {
        from: Color,
        to: Color,
        replicas: u32,
        verify_for: Duration,
        drain: Duration,
    },
    /// Change the number of running containers.
    Scale {
        from: u32,
        to: u32,
        color: Option<Color>,
    },
    /// Start containers that were stopped by hand.
    Repair { stopped: Vec<String> },
    /// Stop an idle color that is still running with no drain pending.
    Drain { color: Color },
    /// Remove every container of the service.
    Remove { containers: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub id: ResourceId,
    pub subject: Subject,
    pub action: ChangeAction,
    pub reason: String,
    pub attributes: Vec<AttrChange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileChange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceChange>,
    /// Pending migrations, by file name stem (`0002_add_channels`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub migrations: Vec<String>,
    /// Warnings about dangerous statements in the pending migrations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lints: Vec<crate::lint::Lint>,
    /// Ids of changes this one must wait for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<ResourceId>,
    /// Set when the replica count comes from the autoscaler or a budget, not from Git: such a
    /// change is not drift.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<crate::scale::Origin>,
    /// Projected monthly cost before and after, when a Budget declares rates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<crate::cost::CostDelta>,
    /// A service's spec hash (secrets as keyed digests), as its new containers are labelled:
    /// what apply remembers as deployed or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_hash: Option<String>,
}

impl Change {
    pub(super) fn new(
        id: ResourceId,
        subject: Subject,
        action: ChangeAction,
        reason: impl Into<String>,
    ) -> Self {
        Change {
            id,
            subject,
            action,
            reason: reason.into(),
            attributes: Vec::new(),
            file: None,
            service: None,
            migrations: Vec::new(),
            lints: Vec::new(),
            depends_on: Vec::new(),
            origin: None,
            cost: None,
            spec_hash: None,
        }
    }
}

/// What the diff saw but will not change, e.g. resources kept because pruning is off.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Diff {
    pub changes: Vec<Change>,
    pub notes: Vec<String>,
    /// The active color of each blue-green service once the changes are applied.
    pub colors: BTreeMap<String, ActiveColor>,
    /// Problems that stop the plan (a changed applied migration, an encoding change).
    #[serde(default)]
    pub errors: Vec<String>,
    /// Projected monthly cost before and after, when a Budget declares rates.
    #[serde(default)]
    pub cost: Option<crate::cost::CostSummary>,
    /// Resources whose desired spec failed and was rolled back: live differs from the desired
    /// state, but the spec is not retried (one line each, saying why).
    #[serde(default)]
    pub held_back: Vec<String>,
}

pub struct DiffOptions<'a> {
    /// Only services placed on this host (all services when `None`).
    pub host: Option<&'a str>,
    pub secrets: &'a dyn SecretDigest,
    /// Kinds that a provider observed (all kinds when `None`, as offline); the others are noted, not planned.
    pub kinds: Option<&'a [Kind]>,
    /// Deploy specs that failed before anyway (`--retry-failed`).
    pub retry_failed: bool,
}

impl DiffOptions<'_> {
    pub(super) fn reconciles(&self, kind: Kind) -> bool {
        self.kinds.is_none_or(|k| k.contains(&kind))
    }
}
