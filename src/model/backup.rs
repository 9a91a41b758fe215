//! The `Backup` kind: what to back up, when, how it is compressed and encrypted, where copies go.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::types::{CronSchedule, Duration, Name, SecretString};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Backup {
    pub name: Name,
    pub source: BackupSource,
    pub schedule: CronSchedule,
    #[serde(default)]
    pub compression: Compression,
    #[serde(default)]
    pub encryption: Option<BackupEncryption>,
    pub destinations: Vec<Destination>,
    #[serde(default)]
    pub verify: VerifyMode,
    /// Recovery point objective: alert when the last good backup is older.
    #[serde(default)]
    pub rpo: Option<Duration>,
}

/// Exactly one of `database`, `files` or `command`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupSource {
    /// Name of a `Database` resource.
    #[serde(default)]
    pub database: Option<String>,
    /// A directory to archive.
    #[serde(default)]
    pub files: Option<String>,
    /// A command whose standard output is the backup.
    #[serde(default)]
    pub command: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    Zstd,
    Gzip,
    None,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupEncryption {
    /// AES-256-GCM key encryption key: a secret reference, never a literal.
    pub key: SecretString,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Destination {
    /// `file:///dir` or `s3://bucket/prefix/`.
    pub url: String,
    /// Keep copies this long (at least one copy is always kept).
    pub keep: Duration,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VerifyMode {
    None,
    #[default]
    Checksum,
    Restore,
}
