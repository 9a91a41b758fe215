//! Where backup copies live: a local directory (`file:///dir`) or an S3 prefix
//! (`s3://bucket/prefix/`). Each copy is `<id>.cvbak` plus `<id>.manifest.json`, written last:
//! a copy without its manifest is not a backup. Readers and writers are blocking (the pipeline
//! runs on its own thread) and talk to S3 through the runtime handle (`s3_stream`).

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use tokio::runtime::Handle;

use super::manifest::{invalid_reason, MANIFEST_SUFFIX};
use super::s3_stream::{self, Location, S3Sink};
use super::{BackupError, Manifest};
use crate::providers::s3::S3;

const COPY_SUFFIX: &str = ".cvbak";

/// What a store holds for one Backup.
#[derive(Debug, Default)]
pub struct Listing {
    /// Valid manifests, newest first.
    pub copies: Vec<Manifest>,
    /// Manifests that claim to be the Backup's and are not valid.
    pub invalid: Vec<Invalid>,
}

/// A skipped manifest: its file name (within the store) and why.
#[derive(Debug, Clone)]
pub struct Invalid {
    pub file: String,
    pub reason: String,
}

impl Listing {
    /// Sorts the manifest read from `file` (or the error reading it) for backup `name`: one of
    /// its copies, invalid (it says it is `name`'s, or is named like one), or another Backup's.
    fn add(&mut self, name: &str, file: &str, bytes: Result<Vec<u8>, String>) {
        let stem = file.strip_suffix(MANIFEST_SUFFIX).unwrap_or(file);
        let named_like_ours = stem.starts_with(&format!("{name}-"));
        let parsed = bytes.and_then(|b| {
            serde_json::from_slice::<Manifest>(&b).map_err(|e| format!("not a manifest: {e}"))
        });
        let (ours, reason) = match parsed {
            Err(reason) => (false, reason),
            Ok(m) => match invalid_reason(&m, stem) {
                None if m.backup == name => return self.copies.push(m),
                None => return,
                Some(reason) => (m.backup == name, reason),
            },
        };
        if ours || named_like_ours {
            self.invalid.push(Invalid {
                file: file.to_string(),
                reason,
            });
        }
    }
}

/// Only what converge's ids are made of, starting with a letter or digit: never `/`, `\`, `.`
/// or `..`, so `<id><suffix>` is a plain name in its directory (or right under its S3 prefix).
fn safe_id(id: &str) -> Result<(), BackupError> {
    let first_ok = id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(BackupError::UnsafeId { id: id.to_string() })
    }
}

/// `<dir>/<id><suffix>`, inside `dir`.
fn path_of(dir: &Path, id: &str, suffix: &str) -> Result<PathBuf, BackupError> {
    safe_id(id)?;
    Ok(dir.join(format!("{id}{suffix}")))
}

/// `<prefix><id><suffix>`, right under `prefix`.
fn key_of(prefix: &str, id: &str, suffix: &str) -> Result<String, BackupError> {
    safe_id(id)?;
    Ok(format!("{prefix}{id}{suffix}"))
}

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

    /// Every manifest in this store for backup `name`, newest first, and those that claim to
    /// be its but are not manifests converge made (skipped: never opened, never deleted).
    pub fn manifests(&self, name: &str, rt: &Handle) -> Result<Listing, BackupError> {
        let mut out = Listing::default();
        match self {
            Store::File { dir } => {
                let Ok(entries) = std::fs::read_dir(dir) else {
                    return Ok(out);
                };
                for e in entries.flatten() {
                    let file = e.file_name().to_string_lossy().to_string();
                    if file.ends_with(MANIFEST_SUFFIX) {
                        out.add(
                            name,
                            &file,
                            std::fs::read(e.path()).map_err(|e| e.to_string()),
                        );
                    }
                }
            }
            Store::S3 { s3, bucket, prefix } => {
                for o in rt.block_on(s3.list(bucket, prefix))? {
                    if o.key.ends_with(MANIFEST_SUFFIX) {
                        let bytes = rt.block_on(s3.get(bucket, &o.key))?;
                        let file = o.key.strip_prefix(prefix.as_str()).unwrap_or(&o.key);
                        out.add(name, file, Ok(bytes));
                    }
                }
            }
        }
        out.copies
            .sort_by(|a, b| b.started_at.cmp(&a.started_at).then(b.id.cmp(&a.id)));
        Ok(out)
    }

    pub fn write_manifest(&self, m: &Manifest, rt: &Handle) -> Result<(), BackupError> {
        let json = serde_json::to_vec_pretty(m).expect("manifest serializes");
        match self {
            Store::File { dir } => {
                let path = path_of(dir, &m.id, MANIFEST_SUFFIX)?;
                let tmp = path.with_extension("partial");
                std::fs::write(&tmp, &json)
                    .and_then(|_| std::fs::rename(&tmp, &path))
                    .map_err(|source| {
                        let _ = std::fs::remove_file(&tmp);
                        BackupError::ManifestWrite { path, source }
                    })
            }
            Store::S3 { s3, bucket, prefix } => {
                let key = key_of(prefix, &m.id, MANIFEST_SUFFIX)?;
                Ok(rt.block_on(s3.put(bucket, &key, json))?)
            }
        }
    }

    /// Aborts the multipart uploads of backup `name`'s interrupted runs (S3 only) started more
    /// than `older_than` ago (a running backup's upload is younger); returns the keys aborted.
    pub fn sweep_uploads(
        &self,
        name: &str,
        older_than: std::time::Duration,
        rt: &Handle,
    ) -> Result<Vec<String>, BackupError> {
        let Store::S3 { s3, bucket, prefix } = self else {
            return Ok(Vec::new());
        };
        let cutoff = super::now().saturating_sub(older_than.as_secs());
        let mut aborted = Vec::new();
        for u in rt.block_on(s3.incomplete_uploads(bucket, prefix))? {
            let below = u.key.strip_prefix(prefix.as_str()).unwrap_or(&u.key);
            if super::debris::is_copy_key_of(name, below) && u.initiated < cutoff {
                rt.block_on(s3.abort_upload(bucket, &u.key, &u.id))?;
                aborted.push(u.key);
            }
        }
        Ok(aborted)
    }

    /// Removes a copy: its manifest first, so no manifest ever points at a missing object.
    pub fn delete(&self, id: &str, rt: &Handle) -> Result<(), BackupError> {
        match self {
            Store::File { dir } => {
                let manifest = path_of(dir, id, MANIFEST_SUFFIX)?;
                let copy = path_of(dir, id, COPY_SUFFIX)?;
                let _ = std::fs::remove_file(manifest);
                let _ = std::fs::remove_file(copy);
                Ok(())
            }
            Store::S3 { s3, bucket, prefix } => {
                let manifest = key_of(prefix, id, MANIFEST_SUFFIX)?;
                let copy = key_of(prefix, id, COPY_SUFFIX)?;
                rt.block_on(s3.delete(bucket, &manifest))?;
                Ok(rt.block_on(s3.delete(bucket, &copy))?)
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
                let path = path_of(dir, id, COPY_SUFFIX)?;
                let f = std::fs::File::open(&path)
                    .map_err(|source| BackupError::Open { path, source })?;
                Ok(Box::new(io::BufReader::with_capacity(1 << 20, f)))
            }
            Store::S3 { s3, bucket, prefix } => {
                let at = Location {
                    s3: s3.clone(),
                    bucket: bucket.clone(),
                    key: key_of(prefix, id, COPY_SUFFIX)?,
                };
                Ok(Box::new(s3_stream::reader(at, size, rt)))
            }
        }
    }

    /// A writer for copy `id`; nothing is visible under the final name until `commit`.
    pub fn sink(&self, id: &str, rt: &Handle) -> Result<Box<dyn Sink>, BackupError> {
        match self {
            Store::File { dir } => {
                let path = path_of(dir, id, COPY_SUFFIX)?;
                let partial = path_of(dir, id, ".cvbak.partial")?;
                std::fs::create_dir_all(dir).map_err(|source| BackupError::CreateDir {
                    path: dir.clone(),
                    source,
                })?;
                let file =
                    std::fs::File::create(&partial).map_err(|source| BackupError::CreateFile {
                        path: partial.clone(),
                        source,
                    })?;
                Ok(Box::new(FileSink {
                    file: Some(io::BufWriter::with_capacity(1 << 20, file)),
                    partial,
                    path,
                    done: false,
                }))
            }
            Store::S3 { s3, bucket, prefix } => {
                let at = Location {
                    s3: s3.clone(),
                    bucket: bucket.clone(),
                    key: key_of(prefix, id, COPY_SUFFIX)?,
                };
                Ok(Box::new(S3Sink::start(at, rt)?))
            }
        }
    }
}

pub trait Sink: Write + Send {
    /// Makes the copy visible under its final name.
    fn commit(self: Box<Self>) -> Result<(), BackupError>;
    /// Leaves nothing behind. Dropping a sink that was not committed does the same, so every
    /// failure path (an error, a panic, a sink lost in a failed flush) cleans up.
    fn abort(self: Box<Self>);
}

/// A local copy in the making: `<id>.cvbak.partial`, renamed on commit, removed otherwise.
struct FileSink {
    /// `None` once closed.
    file: Option<io::BufWriter<std::fs::File>>,
    partial: PathBuf,
    path: PathBuf,
    done: bool,
}

/// `err`, saying which file: "No space left on device" alone does not say where.
fn at_path(path: &Path, err: io::Error) -> io::Error {
    io::Error::new(err.kind(), format!("{}: {err}", path.display()))
}

impl FileSink {
    fn file(&mut self) -> io::Result<&mut io::BufWriter<std::fs::File>> {
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("the copy was already closed"))
    }
}

impl Write for FileSink {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let path = self.partial.clone();
        self.file()?.write(b).map_err(|e| at_path(&path, e))
    }
    fn flush(&mut self) -> io::Result<()> {
        let path = self.partial.clone();
        self.file()?.flush().map_err(|e| at_path(&path, e))
    }
}

impl Sink for FileSink {
    fn commit(mut self: Box<Self>) -> Result<(), BackupError> {
        let partial = self.partial.clone();
        let file = self.file().map_err(|source| BackupError::Flush {
            path: partial.clone(),
            source,
        })?;
        file.flush().map_err(|source| BackupError::Flush {
            path: partial.clone(),
            source,
        })?;
        file.get_ref()
            .sync_all()
            .map_err(|source| BackupError::Sync {
                path: partial.clone(),
                source,
            })?;
        std::fs::rename(&self.partial, &self.path).map_err(|source| BackupError::Rename {
            path: self.partial.clone(),
            source,
        })?;
        self.done = true;
        Ok(())
    }
    fn abort(self: Box<Self>) {}
}

impl Drop for FileSink {
    fn drop(&mut self) {
        if !self.done {
            // Closed first: the buffer's last flush (which may fail again) goes nowhere visible.
            drop(self.file.take());
            if let Err(e) = std::fs::remove_file(&self.partial) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(file = %self.partial.display(), error = %e, "cannot remove an unfinished backup copy; the next backup run removes it once it is an hour old");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::manifest::copy_id;
    use super::*;

    const T: u64 = 1_795_876_680;

    fn manifest(backup: &str, id: &str) -> Manifest {
        Manifest {
            format_version: 2,
            id: id.into(),
            backup: backup.into(),
            source: String::new(),
            compression: "none".into(),
            encryption: "none".into(),
            key_id: None,
            kdf: None,
            started_at: T,
            finished_at: T,
            raw_bytes: 0,
            stored_bytes: 0,
            sha256: String::new(),
            mac: None,
            rows: None,
        }
    }

    fn plant(dir: &Path, file: &str, m: &Manifest) {
        std::fs::write(dir.join(file), serde_json::to_vec(m).unwrap()).unwrap();
    }

    #[test]
    fn no_id_names_a_path_outside_the_store() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        std::fs::create_dir_all(&dir).unwrap();
        let victim = tmp.path().join("victim.cvbak");
        std::fs::write(&victim, b"precious").unwrap();
        let store = Store::File { dir: dir.clone() };
        for id in ["../../victim", "..", ".hidden", "a/b", "a\\b", ""] {
            let e = store.delete(id, rt.handle()).unwrap_err();
            assert!(matches!(e, BackupError::UnsafeId { .. }), "{id}: {e:?}");
            assert!(store.reader(id, 0, rt.handle()).is_err(), "{id}");
            assert!(store.sink(id, rt.handle()).is_err(), "{id}");
            assert!(key_of("db/", id, COPY_SUFFIX).is_err(), "{id}");
        }
        assert!(victim.exists());
        let id = copy_id("db.v2_x", T);
        assert_eq!(
            path_of(&dir, &id, COPY_SUFFIX).unwrap().parent(),
            Some(dir.as_path())
        );
        assert_eq!(
            key_of("db/", &id, COPY_SUFFIX).unwrap(),
            format!("db/{id}.cvbak")
        );
    }

    #[test]
    fn a_planted_manifest_is_listed_as_invalid_and_another_backups_is_ignored() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let good = copy_id("db", T);
        plant(
            tmp.path(),
            &format!("{good}.manifest.json"),
            &manifest("db", &good),
        );
        let planted = "db-20200101T000000Z.manifest.json";
        plant(tmp.path(), planted, &manifest("db", "../../victim"));
        let hourly = copy_id("db-hourly", T);
        plant(
            tmp.path(),
            &format!("{hourly}.manifest.json"),
            &manifest("db-hourly", &hourly),
        );
        std::fs::write(tmp.path().join("db-junk.manifest.json"), b"{").unwrap();
        let store = Store::File {
            dir: tmp.path().to_path_buf(),
        };
        let l = store.manifests("db", rt.handle()).unwrap();
        assert_eq!(
            l.copies.iter().map(|m| &m.id).collect::<Vec<_>>(),
            vec![&good]
        );
        let mut invalid: Vec<&str> = l.invalid.iter().map(|i| i.file.as_str()).collect();
        invalid.sort();
        assert_eq!(invalid, vec![planted, "db-junk.manifest.json"]);
        let l = store.manifests("db-hourly", rt.handle()).unwrap();
        assert_eq!(l.copies.len(), 1);
        assert!(l.invalid.is_empty(), "{:?}", l.invalid);
    }
}
