//! The S3 provider (aws-sdk-s3): observes and reconciles buckets (existence, versioning,
//! default encryption, lifecycle rules, public access block) and moves backup objects
//! (multipart uploads that are aborted on failure). SDK types stay in this file.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketVersioningStatus,
    CompletedMultipartUpload, CompletedPart, ExpirationStatus, LifecycleExpiration, LifecycleRule,
    LifecycleRuleFilter, PublicAccessBlockConfiguration, ServerSideEncryption,
    ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
    Tag, Tagging, Transition, TransitionStorageClass, VersioningConfiguration,
};
use aws_sdk_s3::Client;

mod provider;

pub use provider::S3Provider;

use crate::model::bucket::{days, lifecycle_text, BucketEncryption, PublicAccess};
use crate::model::live::{LiveResource, LiveState};
use crate::model::{Bucket, DesiredState, Kind, Resource, ResourceId};

const PROJECT_TAG: &str = "converge-project";
const PRUNE_TAG: &str = "converge-prune";

/// S3 is set up when the Project declares it (buckets and backup destinations).
pub const FACTORY: crate::providers::registry::Factory = crate::providers::registry::Factory {
    name: "s3",
    subjects: provider::SUBJECTS,
    wanted: |d| d.project.providers.s3.is_some(),
    secret_free: false,
    connect: |d, secrets| {
        Box::pin(async move {
            let p = d.project.providers.s3.as_ref().expect("wanted");
            let endpoint = match &p.endpoint {
                Some(e) => Some(secrets.resolve(e)?),
                None => None,
            };
            let s3 = S3::connect(endpoint.as_deref(), &p.region).await;
            Ok(std::sync::Arc::new(S3Provider::new(s3))
                as std::sync::Arc<dyn crate::providers::Provider>)
        })
    },
};

fn err<E: std::fmt::Debug>(
    what: &str,
) -> impl FnOnce(aws_sdk_s3::error::SdkError<E>) -> String + '_ {
    move |e| {
        let detail = match &e {
            aws_sdk_s3::error::SdkError::ServiceError(s) => format!("{:?}", s.err()),
            other => other.to_string(),
        };
        format!(
            "s3: {what}: {}",
            detail.chars().take(300).collect::<String>()
        )
    }
}

/// An object in a bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub key: String,
    pub size: u64,
    /// Unix seconds.
    pub modified: u64,
}

#[derive(Clone)]
pub struct S3 {
    client: Client,
}

impl S3 {
    /// Credentials come from the usual chain (`AWS_ACCESS_KEY_ID`, profiles, instance roles).
    pub async fn connect(endpoint: Option<&str>, region: &str) -> S3 {
        let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_string()))
            .load()
            .await;
        let mut conf = aws_sdk_s3::config::Builder::from(&shared);
        if let Some(e) = endpoint {
            conf = conf.endpoint_url(e).force_path_style(true);
        }
        S3 {
            client: Client::from_conf(conf.build()),
        }
    }

    pub async fn exists(&self, bucket: &str) -> bool {
        self.client
            .head_bucket()
            .bucket(bucket)
            .send()
            .await
            .is_ok()
    }

    /// Fills `live` with the declared buckets (and the ones converge tagged for `project`).
    pub async fn observe(
        &self,
        desired: &DesiredState,
        live: &mut LiveState,
    ) -> Result<(), String> {
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

    async fn describe(&self, name: &str) -> Result<LiveResource, String> {
        let mut r = LiveResource::default();
        let a = &mut r.attributes;
        let versioning = self
            .client
            .get_bucket_versioning()
            .bucket(name)
            .send()
            .await
            .map_err(err("get versioning"))?;
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
    pub async fn reconcile(&self, b: &Bucket, project: &str) -> Result<(), String> {
        let name = b.name.as_str();
        if !self.exists(name).await {
            self.client
                .create_bucket()
                .bucket(name)
                .send()
                .await
                .map_err(err("create bucket"))?;
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
                .map_err(err("set versioning"))?;
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
                            .map_err(|e| e.to_string())?,
                    )
                    .build();
                self.client
                    .put_bucket_encryption()
                    .bucket(name)
                    .server_side_encryption_configuration(
                        ServerSideEncryptionConfiguration::builder()
                            .rules(rule)
                            .build()
                            .map_err(|e| e.to_string())?,
                    )
                    .send()
                    .await
                    .map_err(err("set encryption"))?;
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
                    .map_err(err("block public access"))?;
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
                rules.push(rule.build().map_err(|e| e.to_string())?);
            }
            self.client
                .put_bucket_lifecycle_configuration()
                .bucket(name)
                .lifecycle_configuration(
                    BucketLifecycleConfiguration::builder()
                        .set_rules(Some(rules))
                        .build()
                        .map_err(|e| e.to_string())?,
                )
                .send()
                .await
                .map_err(err("set lifecycle"))?;
        }
        let tags = Tagging::builder()
            .tag_set(
                Tag::builder()
                    .key(PROJECT_TAG)
                    .value(project)
                    .build()
                    .map_err(|e| e.to_string())?,
            )
            .tag_set(
                Tag::builder()
                    .key(PRUNE_TAG)
                    .value(b.prune.to_string())
                    .build()
                    .map_err(|e| e.to_string())?,
            )
            .build()
            .map_err(|e| e.to_string())?;
        self.client
            .put_bucket_tagging()
            .bucket(name)
            .tagging(tags)
            .send()
            .await
            .map_err(err("tag bucket"))?;
        Ok(())
    }

    /// Deletes an empty bucket; one that holds anything is refused.
    pub async fn delete_bucket(&self, name: &str) -> Result<(), String> {
        let objects = self
            .client
            .list_object_versions()
            .bucket(name)
            .max_keys(1)
            .send()
            .await
            .map_err(err("list objects"))?;
        if !objects.versions().is_empty() || !objects.delete_markers().is_empty() {
            return Err(format!(
                "bucket {name} is not empty; converge never deletes objects to delete a bucket"
            ));
        }
        self.client
            .delete_bucket()
            .bucket(name)
            .send()
            .await
            .map_err(err("delete bucket"))?;
        Ok(())
    }

    pub async fn put(&self, bucket: &str, key: &str, body: Vec<u8>) -> Result<(), String> {
        self.client
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(err("put object"))?;
        Ok(())
    }

    pub async fn start_upload(&self, bucket: &str, key: &str) -> Result<String, String> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(err("start upload"))?;
        out.upload_id()
            .map(str::to_string)
            .ok_or_else(|| "s3: no upload id".to_string())
    }

    /// Uploads part `n` (from 1); returns its ETag.
    pub async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload: &str,
        n: i32,
        body: Vec<u8>,
    ) -> Result<String, String> {
        let out = self
            .client
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(upload)
            .part_number(n)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(err("upload part"))?;
        Ok(out.e_tag().unwrap_or_default().to_string())
    }

    pub async fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload: &str,
        etags: &[String],
    ) -> Result<(), String> {
        let parts: Vec<CompletedPart> = etags
            .iter()
            .enumerate()
            .map(|(i, e)| {
                CompletedPart::builder()
                    .part_number(i as i32 + 1)
                    .e_tag(e)
                    .build()
            })
            .collect();
        self.client
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(err("complete upload"))?;
        Ok(())
    }

    pub async fn abort_upload(&self, bucket: &str, key: &str, upload: &str) {
        let _ = self
            .client
            .abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload)
            .send()
            .await;
    }

    pub async fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>, String> {
        let out = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(err("get object"))?;
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| format!("s3: read object: {e}"))?;
        Ok(bytes.into_bytes().to_vec())
    }

    /// Reads an object in pieces of at most `chunk` bytes, for bounded memory.
    pub async fn get_range(
        &self,
        bucket: &str,
        key: &str,
        start: u64,
        len: u64,
    ) -> Result<Vec<u8>, String> {
        let out = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .range(format!("bytes={start}-{}", start + len - 1))
            .send()
            .await
            .map_err(err("get object range"))?;
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| format!("s3: read object: {e}"))?;
        Ok(bytes.into_bytes().to_vec())
    }

    pub async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<Object>, String> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .set_continuation_token(token.clone())
                .send()
                .await
                .map_err(err("list objects"))?;
            for o in page.contents() {
                out.push(Object {
                    key: o.key().unwrap_or_default().to_string(),
                    size: o.size().unwrap_or(0) as u64,
                    modified: o.last_modified().map(|t| t.secs() as u64).unwrap_or(0),
                });
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(out)
    }

    pub async fn delete(&self, bucket: &str, key: &str) -> Result<(), String> {
        self.client
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(err("delete object"))?;
        Ok(())
    }
}
