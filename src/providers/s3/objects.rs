//! Objects: put, get (whole or by range), list and delete, and multipart uploads that the
//! caller aborts on failure.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use super::{S3Error, S3};

/// An object in a bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub key: String,
    pub size: u64,
    /// Unix seconds.
    pub modified: u64,
}

/// A multipart upload that was started and is still open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub key: String,
    pub id: String,
    /// Unix seconds.
    pub initiated: u64,
}

impl S3 {
    pub async fn put(&self, bucket: &str, key: &str, body: Vec<u8>) -> Result<(), S3Error> {
        self.client
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(self.fail("put object", format!("{bucket}/{key}")))?;
        Ok(())
    }

    pub async fn start_upload(&self, bucket: &str, key: &str) -> Result<String, S3Error> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(self.fail("start upload", format!("{bucket}/{key}")))?;
        out.upload_id()
            .map(str::to_string)
            .ok_or_else(|| S3Error::NoUploadId {
                at: format!("{bucket}/{key}"),
            })
    }

    /// Uploads part `n` (from 1); returns its ETag.
    pub async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload: &str,
        n: i32,
        body: Vec<u8>,
    ) -> Result<String, S3Error> {
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
            .map_err(self.fail("upload part", format!("{bucket}/{key} (part {n})")))?;
        Ok(out.e_tag().unwrap_or_default().to_string())
    }

    pub async fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload: &str,
        etags: &[String],
    ) -> Result<(), S3Error> {
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
            .map_err(self.fail("complete upload", format!("{bucket}/{key}")))?;
        Ok(())
    }

    /// Aborts an incomplete multipart upload: its parts are deleted (and no longer billed).
    pub async fn abort_upload(&self, bucket: &str, key: &str, upload: &str) -> Result<(), S3Error> {
        self.client
            .abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload)
            .send()
            .await
            .map_err(self.fail("abort upload", format!("{bucket}/{key}")))?;
        Ok(())
    }

    /// Multipart uploads started under `prefix` and never completed or aborted.
    pub async fn incomplete_uploads(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<Upload>, S3Error> {
        let mut out = Vec::new();
        let (mut key_marker, mut id_marker): (Option<String>, Option<String>) = (None, None);
        loop {
            let page = self
                .client
                .list_multipart_uploads()
                .bucket(bucket)
                .prefix(prefix)
                .set_key_marker(key_marker.clone())
                .set_upload_id_marker(id_marker.clone())
                .send()
                .await
                .map_err(self.fail("list incomplete uploads", format!("{bucket}/{prefix}")))?;
            for u in page.uploads() {
                out.push(Upload {
                    key: u.key().unwrap_or_default().to_string(),
                    id: u.upload_id().unwrap_or_default().to_string(),
                    initiated: u.initiated().map(|t| t.secs() as u64).unwrap_or(0),
                });
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_string);
            id_marker = page.next_upload_id_marker().map(str::to_string);
            if key_marker.is_none() {
                break;
            }
        }
        Ok(out)
    }

    pub async fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>, S3Error> {
        let out = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(self.fail("get object", format!("{bucket}/{key}")))?;
        let bytes = out.body.collect().await.map_err(|e| {
            S3Error::body("get object", format!("{bucket}/{key}"), e).with_endpoint(&self.endpoint)
        })?;
        Ok(bytes.into_bytes().to_vec())
    }

    /// Reads an object in pieces of at most `chunk` bytes, for bounded memory.
    pub async fn get_range(
        &self,
        bucket: &str,
        key: &str,
        start: u64,
        len: u64,
    ) -> Result<Vec<u8>, S3Error> {
        let range = format!("{start}-{}", start + len - 1);
        let out = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .range(format!("bytes={range}"))
            .send()
            .await
            .map_err(self.fail(
                "get object range",
                format!("{bucket}/{key} (bytes {range})"),
            ))?;
        let bytes = out.body.collect().await.map_err(|e| {
            S3Error::body("get object range", format!("{bucket}/{key}"), e)
                .with_endpoint(&self.endpoint)
        })?;
        Ok(bytes.into_bytes().to_vec())
    }

    pub async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<Object>, S3Error> {
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
                .map_err(self.fail("list objects", format!("{bucket}/{prefix}")))?;
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

    pub async fn delete(&self, bucket: &str, key: &str) -> Result<(), S3Error> {
        self.client
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(self.fail("delete object", format!("{bucket}/{key}")))?;
        Ok(())
    }
}
