//! Where backup copies live: a local directory (`file:///dir`) or an S3 prefix
//! (`s3://bucket/prefix/`). Each copy is `<id>.cvbak` plus `<id>.manifest.json`, written last:
//! a copy without its manifest is not a backup. Readers and writers are blocking (the pipeline
//! runs on its own thread) and talk to S3 through the runtime handle.

use std::io::{self, Read, Write};
use std::path::PathBuf;

use tokio::runtime::Handle;

use super::{BackupError, Manifest};
use crate::providers::s3::{S3Error, S3};

const PART: usize = 8 << 20;

#[derive(Clone)]
pub enum Store {
    File {
        dir: PathBuf,
    },
    S3 {
        s3: S3,
        bucket: String,
        prefix: String,
    },
}

impl Store {
    pub fn parse(url: &str, s3: Option<&S3>) -> Result<Store, BackupError> {
        if let Some(dir) = url.strip_prefix("file://") {
            return Ok(Store::File {
                dir: PathBuf::from(dir),
            });
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let s3 = s3.ok_or_else(|| BackupError::S3ProviderMissing {
                url: url.to_string(),
            })?;
            let mut prefix = prefix.to_string();
            if !prefix.is_empty() && !prefix.ends_with('/') {
                prefix.push('/');
            }
            return Ok(Store::S3 {
                s3: s3.clone(),
                bucket: bucket.to_string(),
                prefix,
            });
        }
        Err(BackupError::UnsupportedDestination {
            url: url.to_string(),
        })
    }

    pub fn describe(&self) -> String {
        match self {
            Store::File { dir } => format!("file://{}", dir.display()),
            Store::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}"),
        }
    }

    pub fn is_local(&self) -> bool {
        matches!(self, Store::File { .. })
    }

    /// Every manifest in this store for backup `name`, newest first.
    pub fn manifests(&self, name: &str, rt: &Handle) -> Result<Vec<Manifest>, BackupError> {
        let mut out: Vec<Manifest> = Vec::new();
        match self {
            Store::File { dir } => {
                let Ok(entries) = std::fs::read_dir(dir) else {
                    return Ok(out);
                };
                for e in entries.flatten() {
                    let file = e.file_name().to_string_lossy().to_string();
                    if file.ends_with(".manifest.json") {
                        if let Some(m) = std::fs::read(e.path())
                            .ok()
                            .and_then(|b| serde_json::from_slice::<Manifest>(&b).ok())
                        {
                            out.push(m);
                        }
                    }
                }
            }
            Store::S3 { s3, bucket, prefix } => {
                for o in rt.block_on(s3.list(bucket, prefix))? {
                    if o.key.ends_with(".manifest.json") {
                        let bytes = rt.block_on(s3.get(bucket, &o.key))?;
                        if let Ok(m) = serde_json::from_slice::<Manifest>(&bytes) {
                            out.push(m);
                        }
                    }
                }
            }
        }
        out.retain(|m| m.backup == name);
        out.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(b.id.cmp(&a.id)));
        Ok(out)
    }

    pub fn write_manifest(&self, m: &Manifest, rt: &Handle) -> Result<(), BackupError> {
        let json = serde_json::to_vec_pretty(m).expect("manifest serializes");
        match self {
            Store::File { dir } => {
                let path = dir.join(format!("{}.manifest.json", m.id));
                let tmp = path.with_extension("partial");
                std::fs::write(&tmp, &json)
                    .and_then(|_| std::fs::rename(&tmp, &path))
                    .map_err(|source| BackupError::ManifestWrite { path, source })
            }
            Store::S3 { s3, bucket, prefix } => {
                Ok(rt.block_on(s3.put(bucket, &format!("{prefix}{}.manifest.json", m.id), json))?)
            }
        }
    }

    /// Removes a copy: its manifest first, so no manifest ever points at a missing object.
    pub fn delete(&self, id: &str, rt: &Handle) -> Result<(), BackupError> {
        match self {
            Store::File { dir } => {
                let _ = std::fs::remove_file(dir.join(format!("{id}.manifest.json")));
                let _ = std::fs::remove_file(dir.join(format!("{id}.cvbak")));
                Ok(())
            }
            Store::S3 { s3, bucket, prefix } => {
                rt.block_on(s3.delete(bucket, &format!("{prefix}{id}.manifest.json")))?;
                Ok(rt.block_on(s3.delete(bucket, &format!("{prefix}{id}.cvbak")))?)
            }
        }
    }

    /// The stored bytes of copy `id` (`size` from its manifest).
    pub fn reader(
        &self,
        id: &str,
        size: u64,
        rt: &Handle,
    ) -> Result<Box<dyn Read + Send>, BackupError> {
        match self {
            Store::File { dir } => {
                let path = dir.join(format!("{id}.cvbak"));
                let f = std::fs::File::open(&path)
                    .map_err(|source| BackupError::Open { path, source })?;
                Ok(Box::new(io::BufReader::with_capacity(1 << 20, f)))
            }
            Store::S3 { s3, bucket, prefix } => Ok(Box::new(S3Reader {
                s3: s3.clone(),
                bucket: bucket.clone(),
                key: format!("{prefix}{id}.cvbak"),
                size,
                offset: 0,
                buf: Vec::new(),
                pos: 0,
                rt: rt.clone(),
            })),
        }
    }

    /// A writer for copy `id`; nothing is visible under the final name until `commit`.
    pub fn sink(&self, id: &str, rt: &Handle) -> Result<Box<dyn Sink>, BackupError> {
        match self {
            Store::File { dir } => {
                std::fs::create_dir_all(dir).map_err(|source| BackupError::CreateDir {
                    path: dir.clone(),
                    source,
                })?;
                let path = dir.join(format!("{id}.cvbak"));
                let partial = dir.join(format!("{id}.cvbak.partial"));
                let file =
                    std::fs::File::create(&partial).map_err(|source| BackupError::CreateFile {
                        path: partial.clone(),
                        source,
                    })?;
                Ok(Box::new(FileSink {
                    file: io::BufWriter::with_capacity(1 << 20, file),
                    partial,
                    path,
                }))
            }
            Store::S3 { s3, bucket, prefix } => {
                let key = format!("{prefix}{id}.cvbak");
                let upload = rt.block_on(s3.start_upload(bucket, &key))?;
                Ok(Box::new(S3Sink {
                    s3: s3.clone(),
                    bucket: bucket.clone(),
                    key,
                    upload,
                    buf: Vec::with_capacity(PART),
                    etags: Vec::new(),
                    rt: rt.clone(),
                }))
            }
        }
    }
}

pub trait Sink: Write + Send {
    /// Makes the copy visible under its final name.
    fn commit(self: Box<Self>) -> Result<(), BackupError>;
    /// Leaves nothing behind.
    fn abort(self: Box<Self>);
}

struct FileSink {
    file: io::BufWriter<std::fs::File>,
    partial: PathBuf,
    path: PathBuf,
}

impl Write for FileSink {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.file.write(b)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Sink for FileSink {
    fn commit(mut self: Box<Self>) -> Result<(), BackupError> {
        self.file.flush().map_err(|source| BackupError::Flush {
            path: self.partial.clone(),
            source,
        })?;
        self.file
            .get_ref()
            .sync_all()
            .map_err(|source| BackupError::Sync {
                path: self.partial.clone(),
                source,
            })?;
        std::fs::rename(&self.partial, &self.path).map_err(|source| BackupError::Rename {
            path: self.partial.clone(),
            source,
        })
    }
    fn abort(self: Box<Self>) {
        let _ = std::fs::remove_file(&self.partial);
    }
}

struct S3Sink {
    s3: S3,
    bucket: String,
    key: String,
    upload: String,
    buf: Vec<u8>,
    etags: Vec<String>,
    rt: Handle,
}

impl S3Sink {
    fn send_part(&mut self) -> Result<(), S3Error> {
        let body = std::mem::replace(&mut self.buf, Vec::with_capacity(PART));
        let n = self.etags.len() as i32 + 1;
        let etag = self.rt.block_on(self.s3.upload_part(
            &self.bucket,
            &self.key,
            &self.upload,
            n,
            body,
        ))?;
        self.etags.push(etag);
        Ok(())
    }
}

impl Write for S3Sink {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let n = (PART - self.buf.len()).min(b.len());
        self.buf.extend_from_slice(&b[..n]);
        if self.buf.len() == PART {
            self.send_part().map_err(io::Error::other)?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Sink for S3Sink {
    fn commit(mut self: Box<Self>) -> Result<(), BackupError> {
        if !self.buf.is_empty() || self.etags.is_empty() {
            self.send_part()?;
        }
        let (s3, rt) = (self.s3.clone(), self.rt.clone());
        Ok(rt.block_on(s3.complete_upload(&self.bucket, &self.key, &self.upload, &self.etags))?)
    }
    fn abort(self: Box<Self>) {
        self.rt
            .block_on(self.s3.abort_upload(&self.bucket, &self.key, &self.upload));
    }
}

/// Reads an S3 object in ranged pieces: memory stays bounded whatever the size.
struct S3Reader {
    s3: S3,
    bucket: String,
    key: String,
    size: u64,
    offset: u64,
    buf: Vec<u8>,
    pos: usize,
    rt: Handle,
}

impl Read for S3Reader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.buf.len() {
            if self.offset >= self.size {
                return Ok(0);
            }
            let len = (PART as u64).min(self.size - self.offset);
            self.buf = self
                .rt
                .block_on(self.s3.get_range(&self.bucket, &self.key, self.offset, len))
                .map_err(io::Error::other)?;
            self.offset += len;
            self.pos = 0;
            if self.buf.is_empty() {
                return Ok(0);
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
