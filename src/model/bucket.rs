//! The `Bucket` kind: an S3 bucket with versioning, encryption, lifecycle tiers and public access block.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::types::{Duration, Name};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Bucket {
    /// The S3 bucket name (3–63 lowercase letters, digits, `-` and `.`).
    pub name: Name,
    #[serde(default)]
    pub versioning: bool,
    #[serde(default)]
    pub encryption: BucketEncryption,
    #[serde(default)]
    pub public_access: PublicAccess,
    #[serde(default)]
    pub lifecycle: Vec<LifecycleRule>,
    /// The bucket is deleted when it leaves the desired state only if this is true (and it is empty).
    #[serde(default)]
    pub prune: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum BucketEncryption {
    #[default]
    #[serde(rename = "AES256")]
    Aes256,
    #[serde(rename = "aws:kms")]
    Kms,
    #[serde(rename = "none")]
    None,
}

impl BucketEncryption {
    pub fn as_str(&self) -> &'static str {
        match self {
            BucketEncryption::Aes256 => "AES256",
            BucketEncryption::Kms => "aws:kms",
            BucketEncryption::None => "none",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PublicAccess {
    #[default]
    Blocked,
    Allowed,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LifecycleRule {
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub transition: Option<Transition>,
    #[serde(default)]
    pub expire_after: Option<Duration>,
    #[serde(default)]
    pub abort_incomplete_uploads_after: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Transition {
    pub after: Duration,
    pub storage_class: StorageClass,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StorageClass {
    StandardIa,
    OnezoneIa,
    IntelligentTiering,
    Glacier,
    GlacierIr,
    DeepArchive,
}

impl StorageClass {
    /// The name S3 uses.
    pub fn as_str(&self) -> &'static str {
        match self {
            StorageClass::StandardIa => "STANDARD_IA",
            StorageClass::OnezoneIa => "ONEZONE_IA",
            StorageClass::IntelligentTiering => "INTELLIGENT_TIERING",
            StorageClass::Glacier => "GLACIER",
            StorageClass::GlacierIr => "GLACIER_IR",
            StorageClass::DeepArchive => "DEEP_ARCHIVE",
        }
    }
}

/// Whole days, rounded up: S3 lifecycle rules count in days.
pub fn days(d: Duration) -> u64 {
    d.as_millis().div_ceil(86_400_000)
}

/// How a lifecycle rule reads in a plan; the S3 provider describes live rules the same way.
pub fn lifecycle_text(
    prefix: &str,
    transition: Option<(&str, u64)>,
    expire_days: Option<u64>,
    abort_days: Option<u64>,
) -> String {
    let mut parts = Vec::new();
    if let Some((class, d)) = transition {
        parts.push(format!("to {class} after {d}d"));
    }
    if let Some(d) = expire_days {
        parts.push(format!("expire after {d}d"));
    }
    if let Some(d) = abort_days {
        parts.push(format!("abort uploads after {d}d"));
    }
    let prefix = if prefix.is_empty() { "*" } else { prefix };
    format!("{prefix}: {}", parts.join(", "))
}

impl LifecycleRule {
    pub fn text(&self) -> String {
        lifecycle_text(
            &self.prefix,
            self.transition
                .as_ref()
                .map(|t| (t.storage_class.as_str(), days(t.after))),
            self.expire_after.map(days),
            self.abort_incomplete_uploads_after.map(days),
        )
    }
}
