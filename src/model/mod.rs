//! Desired-state types: one file per kind, the `Resource` union, `ResourceId` and `DesiredState`.
//! No I/O here: the loader builds these, and once built they are valid.

pub mod action;
pub mod attributes;
pub mod backup;
pub mod bucket;
pub mod budget;
pub mod configfile;
pub mod database;
pub mod environment;
pub mod host_ip;
pub mod live;
pub mod notifier;
pub mod project;
pub mod router;
pub mod service;
pub mod service_runtime;
pub mod types;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

pub use action::Action;
pub use attributes::{AttrValue, Attributes, SecretDigest};
pub use backup::Backup;
pub use bucket::Bucket;
pub use budget::Budget;
pub use configfile::ConfigFile;
pub use database::Database;
pub use environment::Environment;
pub use notifier::Notifier;
pub use project::Project;
pub use router::Router;
pub use service::Service;

/// Every kind of document in a desired-state directory ([`Kind::ALL`]), and the two kinds that
/// services imply and a plan manages without a document of their own ([`Kind::IMPLIED`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Kind {
    Project,
    Environment,
    Service,
    Router,
    ConfigFile,
    Database,
    Bucket,
    Backup,
    Budget,
    Notifier,
    /// The project's network, implied by its services.
    Network,
    /// A named volume, implied by a service's `volumes`.
    Volume,
}

impl Kind {
    /// Kinds that exist only as what services imply: never written as `kind:` in a document.
    pub const IMPLIED: [Kind; 2] = [Kind::Network, Kind::Volume];

    pub const ALL: [Kind; 10] = [
        Kind::Project,
        Kind::Environment,
        Kind::Service,
        Kind::Router,
        Kind::ConfigFile,
        Kind::Database,
        Kind::Bucket,
        Kind::Backup,
        Kind::Budget,
        Kind::Notifier,
    ];

    /// The name written in `kind:`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Project => "Project",
            Kind::Environment => "Environment",
            Kind::Service => "Service",
            Kind::Router => "Router",
            Kind::ConfigFile => "ConfigFile",
            Kind::Database => "Database",
            Kind::Bucket => "Bucket",
            Kind::Backup => "Backup",
            Kind::Budget => "Budget",
            Kind::Notifier => "Notifier",
            Kind::Network => "Network",
            Kind::Volume => "Volume",
        }
    }

    /// The lowercase prefix of resource ids: `service` in `service/api`.
    pub fn id_prefix(&self) -> &'static str {
        match self {
            Kind::Project => "project",
            Kind::Environment => "environment",
            Kind::Service => "service",
            Kind::Router => "router",
            Kind::ConfigFile => "configfile",
            Kind::Database => "database",
            Kind::Bucket => "bucket",
            Kind::Backup => "backup",
            Kind::Budget => "budget",
            Kind::Notifier => "notifier",
            Kind::Network => "network",
            Kind::Volume => "volume",
        }
    }

    pub fn parse(text: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// The document kind of an id prefix (`service` → Service); implied kinds are not documents.
    pub fn from_id_prefix(text: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.id_prefix() == text)
    }

    /// Any kind a plan names, implied ones included (`network` → Network).
    pub fn from_any_prefix(text: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .chain(Kind::IMPLIED)
            .find(|k| k.id_prefix() == text)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `service/api`: the lowercase kind, a slash and the name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceId {
    pub kind: Kind,
    pub name: String,
}

impl ResourceId {
    pub fn new(kind: Kind, name: impl Into<String>) -> Self {
        ResourceId {
            kind,
            name: name.into(),
        }
    }

    /// Parses `kind/name`; a bare name is taken as `default_kind`.
    pub fn parse(text: &str, default_kind: Option<Kind>) -> Option<ResourceId> {
        match text.split_once('/') {
            Some((prefix, name)) if !name.is_empty() && !name.contains('/') => {
                Kind::from_id_prefix(prefix).map(|kind| ResourceId::new(kind, name))
            }
            Some(_) => None,
            None if !text.is_empty() => default_kind.map(|k| ResourceId::new(k, text)),
            None => None,
        }
    }
}

impl ResourceId {
    /// Parses `kind/name` of any kind a plan names, implied kinds (network, volume) included.
    pub fn parse_any(text: &str) -> Option<ResourceId> {
        let (prefix, name) = text.split_once('/')?;
        if name.is_empty() || name.contains('/') {
            return None;
        }
        Kind::from_any_prefix(prefix).map(|kind| ResourceId::new(kind, name))
    }
}

impl fmt::Display for ResourceId {
    /// `kind/name`; honours width and alignment (`{:<20}`), as a string would.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&format!("{}/{}", self.kind.id_prefix(), self.name))
    }
}

impl Serialize for ResourceId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ResourceId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        ResourceId::parse_any(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("not a resource id: `{text}`")))
    }
}

/// A resource that converge reconciles (everything but `Project` and `Environment`).
/// Variants are stored inline: a desired state holds at most thousands, and matching stays simple.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind")]
pub enum Resource {
    Service(Service),
    Router(Router),
    ConfigFile(ConfigFile),
    Database(Database),
    Bucket(Bucket),
    Backup(Backup),
    Budget(Budget),
    Notifier(Notifier),
}

impl Resource {
    pub fn kind(&self) -> Kind {
        match self {
            Resource::Service(_) => Kind::Service,
            Resource::Router(_) => Kind::Router,
            Resource::ConfigFile(_) => Kind::ConfigFile,
            Resource::Database(_) => Kind::Database,
            Resource::Bucket(_) => Kind::Bucket,
            Resource::Backup(_) => Kind::Backup,
            Resource::Budget(_) => Kind::Budget,
            Resource::Notifier(_) => Kind::Notifier,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Resource::Service(r) => r.name.as_str(),
            Resource::Router(r) => r.name.as_str(),
            Resource::ConfigFile(r) => r.name.as_str(),
            Resource::Database(r) => r.name.as_str(),
            Resource::Bucket(r) => r.name.as_str(),
            Resource::Backup(r) => r.name.as_str(),
            Resource::Budget(r) => r.name.as_str(),
            Resource::Notifier(r) => r.name.as_str(),
        }
    }

    pub fn id(&self) -> ResourceId {
        ResourceId::new(self.kind(), self.name())
    }

    /// Resources this one needs to exist first, explicit (`depends_on`) and implied by references.
    pub fn dependencies(&self) -> Vec<ResourceId> {
        let mut deps = Vec::new();
        match self {
            Resource::Service(s) => {
                deps.extend(
                    s.depends_on
                        .iter()
                        .filter_map(|d| ResourceId::parse(d, Some(Kind::Service))),
                );
                if let Some(q) = s.scale.as_ref().and_then(|s| s.queue_depth.as_ref()) {
                    deps.push(ResourceId::new(Kind::Database, &q.database));
                }
            }
            Resource::Router(r) => deps.extend(
                r.routes
                    .iter()
                    .map(|rt| ResourceId::new(Kind::Service, &rt.service)),
            ),
            Resource::Backup(b) => {
                if let Some(db) = &b.source.database {
                    deps.push(ResourceId::new(Kind::Database, db));
                }
                for d in &b.destinations {
                    if let Some(bucket) = s3_bucket_of(&d.url) {
                        deps.push(ResourceId::new(Kind::Bucket, bucket));
                    }
                }
            }
            Resource::Budget(b) => {
                if let Some(s) = &b.spend {
                    deps.push(ResourceId::new(Kind::Database, &s.database));
                }
                deps.extend(b.notify.iter().map(|n| ResourceId::new(Kind::Notifier, n)));
            }
            Resource::ConfigFile(_)
            | Resource::Database(_)
            | Resource::Bucket(_)
            | Resource::Notifier(_) => {}
        }
        deps.sort();
        deps.dedup();
        deps
    }

    pub fn as_service(&self) -> Option<&Service> {
        match self {
            Resource::Service(s) => Some(s),
            _ => None,
        }
    }
}

/// The bucket named by an `s3://bucket/prefix/` URL.
pub fn s3_bucket_of(url: &str) -> Option<&str> {
    url.strip_prefix("s3://")
        .map(|rest| rest.split('/').next().unwrap_or(rest))
        .filter(|b| !b.is_empty())
}

/// A migration file pair found under a database's `migrations.dir`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MigrationFile {
    pub version: u64,
    pub name: String,
    /// Path relative to the desired-state directory.
    pub up_path: String,
    pub down_path: Option<String>,
    /// sha256 of the up file with line endings normalised to LF.
    pub checksum: String,
    pub up_sql: String,
    pub down_sql: Option<String>,
    /// The file's first line is `-- converge:no-transaction` (for `CREATE INDEX CONCURRENTLY`).
    pub no_transaction: bool,
}

impl MigrationFile {
    /// `0002_add_channels`: the file name without `.up.sql`, the version as written in it.
    pub fn stem(&self) -> String {
        format!("{}_{}", self.version_text(), self.name)
    }

    /// The version as the file name writes it (`000042`), from the up (else down) file's name.
    pub fn version_text(&self) -> String {
        let path = if self.up_path.is_empty() {
            self.down_path.as_deref().unwrap_or_default()
        } else {
            self.up_path.as_str()
        };
        let file = path.rsplit('/').next().unwrap_or(path);
        match file.split_once('_') {
            Some((digits, _))
                if !digits.is_empty()
                    && digits.bytes().all(|b| b.is_ascii_digit())
                    && digits.parse::<u64>().ok() == Some(self.version) =>
            {
                digits.to_string()
            }
            _ => format!("{:04}", self.version),
        }
    }
}

/// A desired state that passed validation: every reference resolves, no cycles, values in range.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredState {
    pub project: Project,
    pub environment: Option<String>,
    pub resources: BTreeMap<ResourceId, Resource>,
    /// Contents of user templates referenced by routers and config files, by path.
    pub templates: BTreeMap<String, String>,
    /// Migrations of each database, in version order.
    pub migrations: BTreeMap<ResourceId, Vec<MigrationFile>>,
}

impl DesiredState {
    pub fn services(&self) -> impl Iterator<Item = &Service> {
        self.resources.values().filter_map(Resource::as_service)
    }

    pub fn get(&self, id: &ResourceId) -> Option<&Resource> {
        self.resources.get(id)
    }

    /// The service named `name`, if declared.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.get(&ResourceId::new(Kind::Service, name))
            .and_then(Resource::as_service)
    }
}
