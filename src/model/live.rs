//! Live state as plain data: what the providers (Docker, PostgreSQL, S3, files) observed,
//! converted at their boundary into these types. The diff reads only this.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::attributes::hex;
use crate::model::{Attributes, ResourceId};

/// A blue-green color.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Color {
    Blue,
    Green,
}

impl Color {
    pub fn other(self) -> Color {
        match self {
            Color::Blue => Color::Green,
            Color::Green => Color::Blue,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Color::Blue => "blue",
            Color::Green => "green",
        }
    }
}

impl fmt::Display for Color {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One managed container, as its labels and state describe it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveContainer {
    pub name: String,
    #[serde(default)]
    pub color: Option<Color>,
    pub replica: u32,
    pub spec_hash: String,
    pub running: bool,
    #[serde(default)]
    pub revision: Option<String>,
    /// The digest its image resolved to when it was created (`converge.image-digest`).
    #[serde(default)]
    pub image_digest: Option<String>,
}

/// The spec hash a runtime reports for a container (a Swarm task slot) whose spec was changed
/// outside converge: it matches no desired spec, so the service is put back.
pub const EDITED_SPEC: &str = "edited-outside-converge";

/// A service's containers and which color takes traffic (derived from the router and labels).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveService {
    pub containers: Vec<LiveContainer>,
    #[serde(default)]
    pub active_color: Option<Color>,
    /// The digest the declared image resolves to now (observe: the host's image, or the
    /// registry's with `pull: always`); `None` when unknown.
    #[serde(default)]
    pub image_now: Option<String>,
}

impl LiveService {
    /// Containers of `color` (all containers for services without colors).
    pub fn of_color(&self, color: Option<Color>) -> impl Iterator<Item = &LiveContainer> {
        self.containers
            .iter()
            .filter(move |c| color.is_none() || c.color == color)
    }
}

/// One observed resource: its attributes in the same flat form as the desired ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveResource {
    pub attributes: Attributes,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<LiveService>,
    /// Migrations recorded as applied in `converge.schema_migrations`, by version (databases only).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub applied_migrations: BTreeMap<u64, AppliedMigration>,
    /// Bytes stored (buckets only): what storage rates price. Not part of the fingerprint:
    /// backups write to buckets between a plan and its apply.
    #[serde(skip)]
    pub stored_bytes: Option<u64>,
}

/// A row of `converge.schema_migrations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedMigration {
    pub name: String,
    pub checksum: String,
}

/// A named volume converge created.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveVolume {
    /// The volume was declared with `prune: true` when it was created (recorded in its labels).
    pub prune: bool,
}

/// A step that apply deferred (a drain), kept in the journal until it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingStep {
    pub resource: String,
    pub action: String,
    pub detail: String,
    /// Unix seconds when it is due.
    pub due: u64,
}

/// Everything observed, keyed by resource id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveState {
    pub resources: BTreeMap<ResourceId, LiveResource>,
    /// Managed networks by name.
    #[serde(default)]
    pub networks: BTreeSet<String>,
    /// Managed named volumes by name.
    #[serde(default)]
    pub volumes: BTreeMap<String, LiveVolume>,
    /// Contents of the files that routers and config files render, by path (absent: no file).
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    #[serde(default)]
    pub pending: Vec<PendingStep>,
    /// Spec hashes per service that failed their deploy and were rolled back (from the journal).
    #[serde(default)]
    pub failed: BTreeMap<String, BTreeSet<String>>,
    /// Replica counts the autoscaler or a budget chose, by service name (from the journal).
    #[serde(default)]
    pub overrides: BTreeMap<String, ReplicaOverride>,
}

impl LiveState {
    /// A digest of everything observed: a saved plan made against another fingerprint is stale.
    pub fn fingerprint(&self) -> String {
        let json = serde_json::to_vec(self).expect("live state serializes");
        hex(&Sha256::digest(json)[..16])
    }

    pub fn service(&self, id: &ResourceId) -> Option<&LiveService> {
        self.resources.get(id).and_then(|r| r.service.as_ref())
    }
}

/// Where a replica count other than the declared `replicas` comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Autoscale,
    Budget,
}

/// The replica count a service runs at instead of its declared `replicas`, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaOverride {
    pub replicas: u32,
    pub reason: String,
    pub origin: Origin,
}

/// One task: which service and slot, on which node, in which state.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TaskRow {
    /// `service/api`.
    pub resource: String,
    pub color: Option<String>,
    pub slot: u32,
    pub node: String,
    /// Swarm's task state: `running`, `starting`, `pending`, …
    pub state: String,
    /// Why it is not running, when Swarm says.
    pub message: Option<String>,
}
