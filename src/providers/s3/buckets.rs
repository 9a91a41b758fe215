//! Buckets: observing them (existence, versioning, default encryption, lifecycle rules, public
//! access block, converge's tags) and reconciling or deleting them.

use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketVersioningStatus,
    ExpirationStatus, LifecycleExpiration, LifecycleRule, LifecycleRuleFilter,
    PublicAccessBlockConfiguration, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule, Tag, Tagging, Transition,
    TransitionStorageClass, VersioningConfiguration,
};

use super::{S3Error, PROJECT_TAG, PRUNE_TAG, S3};
use crate::model::bucket::{days, lifecycle_text, BucketEncryption, PublicAccess};
use crate::model::live::{LiveResource, LiveState};
use crate::model::{Bucket, DesiredState, Kind, Resource, ResourceId};

impl S3 {
    /// Fills `live` with the declared buckets (and the ones converge tagged for `project`).
    pub async fn observe(
        &self,
        desired: &DesiredState,
        live: &mut LiveState,
    ) -> Result<(), S3Error> {
        let project = desired.project.name.as_str();
        let mut names: Vec<String> = desired
            .resources
            .values()
            .filter_map(|r| match r {
                Resource::Bucket(b) => Some(b.name.to_string()),
                _ => None,
            })
            .collect();
        if let Ok(list) = self.client.list_buckets().send().await {
            for b in list.buckets() {
                let Some(name) = b.name() else { continue };
                if names.iter().any(|n| n == name) {
                    continue;
                }
                if self
                    .tags(name)
                    .await
                    .iter()
                    .any(|(k, v)| k == PROJECT_TAG && v == project)
                {
                    names.push(name.to_string());
                }
            }
        }
        // Stored bytes are listed only when a Budget prices storage.
        let priced =
            crate::cost::Rates::of_state(desired).is_some_and(|r| r.storage_gb_month > 0.0);
        for name in names {
            if !self.exists(&name).await {
                continue;
            }
            let mut r = self.describe(&name).await?;
            if priced {
                r.stored_bytes = self
                    .list(&name, "")
                    .await
                    .ok()
                    .map(|objects| objects.iter().map(|o| o.size).sum());
            }
            live.resources
                .insert(ResourceId::new(Kind::Bucket, &name), r);
        }
        Ok(())
    }

    async fn tags(&self, bucket: &str) -> Vec<(String, String)> {
        match self.client.get_bucket_tagging().bucket(bucket).send().await {
            Ok(t) => t
                .tag_set()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    async fn describe(&self, name: &str) -> Result<LiveResource, S3Error> {
        let mut r = LiveResource::default();
        let a = &mut r.attributes;
        let versioning = self
            .client
            .get_bucket_versioning()
            .bucket(name)
            .send()
            .await
            .map_err(self.fail("get versioning", name))?;
        let enabled = versioning.status() == Some(&BucketVersioningStatus::Enabled);
        a.text("versioning", if enabled { "enabled" } else { "disabled" });
        let encryption = match self
            .client
            .get_bucket_encryption()
            .bucket(name)
            .send()
            .await
        {
            Ok(out) => out
                .server_side_encryption_configuration()
                .and_then(|c| c.rules().first())
                .and_then(|r| r.apply_server_side_encryption_by_default())
                .map(|d| match d.sse_algorithm() {
                    ServerSideEncryption::Aes256 => "AES256",
                    ServerSideEncryption::AwsKms => "aws:kms",
                    _ => "other",
                })
                .unwrap_or("none"),
            Err(_) => "none",
        };
        a.text("encryption", encryption);
        let blocked = match self
            .client
            .get_public_access_block()
            .bucket(name)
            .send()
            .await
        {
            Ok(out) => out.public_access_block_configuration().is_some_and(|c| {
                c.block_public_acls() == Some(true)
                    && c.ignore_public_acls() == Some(true)
                    && c.block_public_policy() == Some(true)
                    && c.restrict_public_buckets() == Some(true)
            }),
            Err(_) => false,
        };
        a.text("public_access", if blocked { "blocked" } else { "allowed" });
        if let Ok(out) = self
            .client
            .get_bucket_lifecycle_configuration()
            .bucket(name)
            .send()
            .await
        {
            let mut rules: Vec<&LifecycleRule> = out
                .rules()
                .iter()
                .filter(|r| r.status() == &ExpirationStatus::Enabled)
                .collect();
            rules.sort_by_key(|r| {
                r.id()
                    .and_then(|id| id.strip_prefix("converge-"))
                    .and_then(|n| n.parse::<usize>().ok())
                    .unwrap_or(usize::MAX)
            });
            for (i, rule) in rules.iter().enumerate() {
                let prefix = rule.filter().and_then(|f| f.prefix()).unwrap_or("");
                let transition = rule.transitions().first().and_then(|t| {
                    Some((t.storage_class()?.as_str().to_string(), t.days()? as u64))
                });
                let text = lifecycle_text(
                    prefix,
                    transition.as_ref().map(|(c, d)| (c.as_str(), *d)),
                    rule.expiration().and_then(|e| e.days()).map(|d| d as u64),
                    rule.abort_incomplete_multipart_upload()
                        .and_then(|a| a.days_after_initiation())
                        .map(|d| d as u64),
                );
                a.text(format!("lifecycle[{i}]"), text);
            }
        }
        let prune = self
            .tags(name)
            .await
            .iter()
            .any(|(k, v)| k == PRUNE_TAG && v == "true");
        a.text("prune", prune);
        Ok(r)
    }

    /// Creates the bucket if needed and sets every declared setting.
    pub async fn reconcile(&self, b: &Bucket, project: &str) -> Result<(), S3Error> {
        let name = b.name.as_str();
        if !self.exists(name).await {
            self.client
                .create_bucket()
                .bucket(name)
                .send()
                .await
                .map_err(self.fail("create bucket", name))?;
        }
        let status = if b.versioning {
            BucketVersioningStatus::Enabled
        } else {
            BucketVersioningStatus::Suspended
        };
        let currently_enabled = self
            .client
            .get_bucket_versioning()
            .bucket(name)
            .send()
            .await
            .ok()
            .and_then(|v| v.status().cloned());
        if b.versioning || currently_enabled.is_some() {
            self.client
                .put_bucket_versioning()
                .bucket(name)
                .versioning_configuration(VersioningConfiguration::builder().status(status).build())
                .send()
                .await
                .map_err(self.fail("set versioning", name))?;
        }
        match b.encryption {
            BucketEncryption::None => {
                let _ = self
                    .client
                    .delete_bucket_encryption()
                    .bucket(name)
                    .send()
                    .await;
            }
            enc => {
                let algorithm = ServerSideEncryption::from(enc.as_str());
                let rule = ServerSideEncryptionRule::builder()
                    .apply_server_side_encryption_by_default(
                        ServerSideEncryptionByDefault::builder()
                            .sse_algorithm(algorithm)
                            .build()
                            .map_err(|e| S3Error::request("set encryption", name, e))?,
                    )
                    .build();
                self.client
                    .put_bucket_encryption()
                    .bucket(name)
                    .server_side_encryption_configuration(
                        ServerSideEncryptionConfiguration::builder()
                            .rules(rule)
                            .build()
                            .map_err(|e| S3Error::request("set encryption", name, e))?,
                    )
                    .send()
                    .await
                    .map_err(self.fail("set encryption", name))?;
            }
        }
        match b.public_access {
            PublicAccess::Blocked => {
                let c = PublicAccessBlockConfiguration::builder()
                    .block_public_acls(true)
                    .ignore_public_acls(true)
                    .block_public_policy(true)
                    .restrict_public_buckets(true)
                    .build();
                self.client
                    .put_public_access_block()
                    .bucket(name)
                    .public_access_block_configuration(c)
                    .send()
                    .await
                    .map_err(self.fail("block public access", name))?;
            }
            PublicAccess::Allowed => {
                let _ = self
                    .client
                    .delete_public_access_block()
                    .bucket(name)
                    .send()
                    .await;
            }
        }
        if b.lifecycle.is_empty() {
            let _ = self
                .client
                .delete_bucket_lifecycle()
                .bucket(name)
                .send()
                .await;
        } else {
            let mut rules = Vec::new();
            for (i, r) in b.lifecycle.iter().enumerate() {
                let mut rule = LifecycleRule::builder()
                    .id(format!("converge-{i}"))
                    .status(ExpirationStatus::Enabled)
                    .filter(
                        LifecycleRuleFilter::builder()
                            .prefix(r.prefix.clone())
                            .build(),
                    );
                if let Some(t) = &r.transition {
                    rule = rule.transitions(
                        Transition::builder()
                            .days(days(t.after) as i32)
                            .storage_class(TransitionStorageClass::from(t.storage_class.as_str()))
                            .build(),
                    );
                }
                if let Some(e) = r.expire_after {
                    rule = rule
                        .expiration(LifecycleExpiration::builder().days(days(e) as i32).build());
                }
                if let Some(a) = r.abort_incomplete_uploads_after {
                    rule = rule.abort_incomplete_multipart_upload(
                        AbortIncompleteMultipartUpload::builder()
                            .days_after_initiation(days(a) as i32)
                            .build(),
                    );
                }
                rules.push(
                    rule.build()
                        .map_err(|e| S3Error::request("set lifecycle", name, e))?,
                );
            }
            self.client
                .put_bucket_lifecycle_configuration()
                .bucket(name)
                .lifecycle_configuration(
                    BucketLifecycleConfiguration::builder()
                        .set_rules(Some(rules))
                        .build()
                        .map_err(|e| S3Error::request("set lifecycle", name, e))?,
                )
                .send()
                .await
                .map_err(self.fail("set lifecycle", name))?;
        }
        let tags = Tagging::builder()
            .tag_set(
                Tag::builder()
                    .key(PROJECT_TAG)
                    .value(project)
                    .build()
                    .map_err(|e| S3Error::request("tag bucket", name, e))?,
            )
            .tag_set(
                Tag::builder()
                    .key(PRUNE_TAG)
                    .value(b.prune.to_string())
                    .build()
                    .map_err(|e| S3Error::request("tag bucket", name, e))?,
            )
            .build()
            .map_err(|e| S3Error::request("tag bucket", name, e))?;
        self.client
            .put_bucket_tagging()
            .bucket(name)
            .tagging(tags)
            .send()
            .await
            .map_err(self.fail("tag bucket", name))?;
        Ok(())
    }

    /// Deletes an empty bucket; one that holds anything is refused.
    pub async fn delete_bucket(&self, name: &str) -> Result<(), S3Error> {
        let objects = self
            .client
            .list_object_versions()
            .bucket(name)
            .max_keys(1)
            .send()
            .await
            .map_err(self.fail("list object versions", name))?;
        if !objects.versions().is_empty() || !objects.delete_markers().is_empty() {
            return Err(S3Error::BucketNotEmpty {
                bucket: name.to_string(),
            });
        }
        self.client
            .delete_bucket()
            .bucket(name)
            .send()
            .await
            .map_err(self.fail("delete bucket", name))?;
        Ok(())
    }
}
