//! Backups: source (pg_dump, a tar of a directory, a command) → compression (zstd, gzip) →
//! AES-256-GCM → every destination, streamed with bounded memory, a manifest written last (MACed
//! under the key, see `manifest`, with a database's row counts taken in the snapshot its dump
//! reads, see `counts`); retention per destination; verification (checksum, or a restore drill
//! that measures the RTO); restore. Blocking code: run it on a blocking thread with a runtime
//! handle for S3.

pub mod counts;
pub mod crypto;
pub mod debris;
mod error;
pub mod manifest;
mod restore;
mod s3_stream;
pub mod safety;
pub mod store;
mod stored;
mod verify;

use std::io::{self, Read, Write};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};
use tokio::runtime::Handle;

pub mod job;

use crate::model::backup::Compression;
use crate::model::{Backup, DesiredState};
use crate::providers::postgres::Postgres;
use crate::providers::s3::S3;
use crate::secrets::Secrets;
use crypto::{Key, Secret};
use store::{Sink, Store};

pub use error::BackupError;
pub use manifest::{Checked, Manifest, FORMAT_VERSION};
pub use restore::{find, restore_database, restore_files};
pub use verify::{verified, verify_checksum, verify_restore, Drill};

/// What a backup needs from the outside world.
pub struct Tools<'a> {
    pub desired: &'a DesiredState,
    pub secrets: &'a Secrets,
    pub postgres: Option<&'a Postgres>,
    pub s3: Option<&'a S3>,
    pub rt: Handle,
}

impl<'a> Tools<'a> {
    /// The tools of `engine`'s providers.
    pub fn of(
        desired: &'a DesiredState,
        engine: &'a crate::engine::Engine,
        rt: Handle,
    ) -> Tools<'a> {
        Tools {
            desired,
            secrets: engine.secrets(),
            postgres: engine.registry().postgres(),
            s3: engine.registry().s3(),
            rt,
        }
    }
}

impl Tools<'_> {
    pub fn stores(
        &self,
        b: &Backup,
    ) -> Result<Vec<(Store, crate::model::types::Duration)>, BackupError> {
        b.destinations
            .iter()
            .map(|d| Ok((Store::parse(&d.url, self.s3)?, d.keep)))
            .collect()
    }

    /// The Backup's key secret, if it declares one (never printed: errors name the backup).
    pub(crate) fn secret(&self, b: &Backup) -> Result<Option<Secret>, BackupError> {
        let Some(e) = &b.encryption else {
            return Ok(None);
        };
        let text = self
            .secrets
            .resolve(&e.key)
            .map_err(|source| BackupError::KeySecret {
                backup: b.name.to_string(),
                source,
            })?;
        let secret = Secret::parse(&text);
        if secret.is_empty() {
            return Err(BackupError::EmptyKey {
                backup: b.name.to_string(),
            });
        }
        Ok(Some(secret))
    }

    fn pg(&self) -> Result<&Postgres, BackupError> {
        self.postgres.ok_or(BackupError::PostgresProviderMissing)
    }
}

pub fn now() -> u64 {
    crate::clock::now()
}

/// The source as a child process writing the backup to its standard output.
fn source_command(t: &Tools, b: &Backup) -> Result<(Command, String), BackupError> {
    if let Some(db) = &b.source.database {
        let pg = t.pg()?;
        let mut c = Command::new("pg_dump");
        // Our own compression (zstd by default) is far faster than pg_dump's zlib; the custom
        // format stays what pg_restore reads. Without our compression, pg_dump compresses.
        // A table locked by a long migration fails the dump after a minute, not never.
        c.args(["-Fc", "--lock-wait-timeout=60s"]);
        if b.compression != Compression::None {
            c.arg("-Z0");
        }
        c.args(["-d", &pg.dsn(db)]);
        if let Some(pw) = pg.password() {
            c.env("PGPASSWORD", pw);
        }
        return Ok((c, format!("database {db}")));
    }
    if let Some(dir) = &b.source.files {
        let mut c = Command::new("tar");
        c.args(["-C", dir, "-cf", "-", "."]);
        return Ok((c, format!("files {dir}")));
    }
    if let Some(argv) = &b.source.command {
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..]);
        return Ok((c, format!("command {}", argv.join(" "))));
    }
    Err(BackupError::NoSource {
        backup: b.name.to_string(),
    })
}

/// Writes to every sink at once and hashes what is stored.
struct Fanout {
    sinks: Vec<Box<dyn Sink>>,
    sha: Sha256,
    bytes: u64,
}

impl Write for Fanout {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        for s in &mut self.sinks {
            s.write_all(b)?;
        }
        self.sha.update(b);
        self.bytes += b.len() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.sinks.iter_mut().try_for_each(|s| s.flush())
    }
}

enum Sealed {
    Plain(Fanout),
    Aes(Box<crypto::Encryptor<Fanout>>),
}

impl Write for Sealed {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        match self {
            Sealed::Plain(w) => w.write(b),
            Sealed::Aes(w) => w.write(b),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sealed::Plain(w) => w.flush(),
            Sealed::Aes(w) => w.flush(),
        }
    }
}

impl Sealed {
    fn finish(self) -> io::Result<Fanout> {
        match self {
            Sealed::Plain(w) => Ok(w),
            Sealed::Aes(w) => w.finish(),
        }
    }
}

enum Packed {
    None(Sealed),
    Zstd(zstd::stream::write::Encoder<'static, Sealed>),
    Gzip(flate2::write::GzEncoder<Sealed>),
}

impl Packed {
    fn new(c: Compression, inner: Sealed) -> io::Result<Packed> {
        Ok(match c {
            Compression::None => Packed::None(inner),
            Compression::Zstd => Packed::Zstd(zstd::stream::write::Encoder::new(inner, 3)?),
            Compression::Gzip => Packed::Gzip(flate2::write::GzEncoder::new(
                inner,
                flate2::Compression::default(),
            )),
        })
    }

    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Packed::None(w) => w,
            Packed::Zstd(w) => w,
            Packed::Gzip(w) => w,
        }
    }

    fn finish(self) -> io::Result<Sealed> {
        match self {
            Packed::None(w) => Ok(w),
            Packed::Zstd(w) => w.finish(),
            Packed::Gzip(w) => w.finish(),
        }
    }
}

fn compression_name(c: Compression) -> &'static str {
    match c {
        Compression::None => "none",
        Compression::Zstd => "zstd",
        Compression::Gzip => "gzip",
    }
}

/// Runs one backup to every destination; on any failure nothing looks like a good backup.
pub fn run(t: &Tools, b: &Backup) -> Result<Manifest, BackupError> {
    let stores = t.stores(b)?;
    let secret = t.secret(b)?;
    let (mut cmd, source) = source_command(t, b)?;
    let counting = counts::start(t, b, &mut cmd)?;
    let started_at = now();
    let id = manifest::copy_id(b.name.as_str(), started_at);
    let (key, kdf) = match &secret {
        Some(s) => {
            let (key, kdf) = s.new_copy_key(&id)?;
            (Some(key), kdf)
        }
        None => (None, None),
    };
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    for (s, _) in &stores {
        match s.sink(&id, &t.rt) {
            Ok(sink) => sinks.push(sink),
            Err(e) => {
                sinks.into_iter().for_each(|s| s.abort());
                return Err(BackupError::at(s.describe(), e));
            }
        }
    }
    let fan = Fanout {
        sinks,
        sha: Sha256::new(),
        bytes: 0,
    };
    let result = stream(&mut cmd, fan, key.as_ref(), b.compression, b.name.as_str());
    let (fan, raw_bytes) = match result {
        Ok(x) => x,
        Err(boxed) => {
            let (fan, e) = *boxed;
            if let Some(fan) = fan {
                fan.sinks.into_iter().for_each(|s| s.abort());
            }
            return Err(e);
        }
    };
    let Fanout { sinks, sha, bytes } = fan;
    let rows = match counting.map(|c| c.finish(&t.rt)).transpose() {
        Ok(rows) => rows,
        Err(e) => {
            sinks.into_iter().for_each(|s| s.abort());
            return Err(e);
        }
    };
    let mut committed = Vec::new();
    let mut sinks = sinks.into_iter();
    for (store, _) in &stores {
        let sink = sinks.next().expect("one sink per store");
        if let Err(e) = sink.commit() {
            sinks.for_each(|s| s.abort());
            for s in &committed {
                let _: &Store = s;
                let _ = s.delete(&id, &t.rt);
            }
            return Err(BackupError::at(store.describe(), e));
        }
        committed.push(store.clone());
    }
    let mut manifest = Manifest {
        format_version: FORMAT_VERSION,
        id: id.clone(),
        backup: b.name.to_string(),
        source,
        compression: compression_name(b.compression).into(),
        encryption: if key.is_some() { manifest::AES } else { "none" }.into(),
        key_id: key.as_ref().map(Key::id),
        kdf,
        started_at,
        finished_at: now(),
        raw_bytes,
        stored_bytes: bytes,
        sha256: crate::model::attributes::hex(&sha.finalize()),
        mac: None,
        rows,
    };
    if let Some(k) = &key {
        manifest::seal(&mut manifest, k);
    }
    for (store, _) in &stores {
        if let Err(e) = store.write_manifest(&manifest, &t.rt) {
            for (s, _) in &stores {
                let _ = s.delete(&id, &t.rt);
            }
            return Err(BackupError::at(store.describe(), e));
        }
    }
    Ok(manifest)
}

type StreamError = Box<(Option<Fanout>, BackupError)>;

/// Source → compression → encryption → fan-out; returns the fan-out and the raw byte count.
fn stream(
    cmd: &mut Command,
    fan: Fanout,
    key: Option<&Key>,
    c: Compression,
    name: &str,
) -> Result<(Fanout, u64), StreamError> {
    let backup = || name.to_string();
    let sealed = match key {
        Some(k) => match crypto::Encryptor::new(fan, k) {
            Ok(e) => Sealed::Aes(Box::new(e)),
            Err(source) => {
                return Err(Box::new((
                    None,
                    BackupError::Encrypt {
                        backup: backup(),
                        source,
                    },
                )))
            }
        },
        None => Sealed::Plain(fan),
    };
    let mut packed = Packed::new(c, sealed).map_err(|source| {
        Box::new((
            None,
            BackupError::Compress {
                backup: backup(),
                source,
            },
        ))
    })?;
    let mut child = match cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(source) => {
            let fan = packed.finish().ok().and_then(|s| s.finish().ok());
            return Err(Box::new((
                fan,
                BackupError::SourceStart {
                    backup: backup(),
                    source,
                },
            )));
        }
    };
    let mut out = child.stdout.take().expect("piped");
    let mut buf = vec![0u8; 1 << 20];
    let mut raw = 0u64;
    let mut failure = None;
    loop {
        match out.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                raw += n as u64;
                if let Err(source) = packed.writer().write_all(&buf[..n]) {
                    failure = Some(BackupError::Write {
                        backup: backup(),
                        source,
                    });
                    let _ = child.kill();
                    break;
                }
            }
            Err(source) => {
                failure = Some(BackupError::SourceRead {
                    backup: backup(),
                    source,
                });
                break;
            }
        }
    }
    let output = child.wait_with_output();
    let fan = packed.finish().and_then(|s| s.finish());
    let status_err = match output {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(BackupError::SourceFailed {
            backup: backup(),
            status: o.status,
            stderr: String::from_utf8_lossy(&o.stderr).trim().to_string(),
        }),
        Err(source) => Some(BackupError::SourceWait {
            backup: backup(),
            source,
        }),
    };
    match (failure.or(status_err), fan) {
        (None, Ok(fan)) => Ok((fan, raw)),
        (Some(e), fan) => Err(Box::new((fan.ok(), e))),
        (None, Err(source)) => Err(Box::new((
            None,
            BackupError::Finish {
                backup: backup(),
                source,
            },
        ))),
    }
}

/// What retention did: copies deleted (`<destination> <id>`), manifests skipped as invalid
/// (`<destination><file>: <reason>`).
#[derive(Debug, Default)]
pub struct Retention {
    pub deleted: Vec<String>,
    pub skipped: Vec<String>,
}

/// How many of the newest copies retention tries to authenticate to find the one it must keep.
const KEEP_TRIES: usize = 8;

/// Deletes copies older than each destination's `keep`, always keeping the newest one and the
/// newest that authenticates. Invalid manifests are skipped, never deleted: no id can name a
/// path outside the store.
pub fn retention(t: &Tools, b: &Backup) -> Result<Retention, BackupError> {
    let secret = t.secret(b)?;
    let mut out = Retention::default();
    for (store, keep) in t.stores(b)? {
        if let Store::File { dir } = &store {
            for file in debris::sweep(dir, b.name.as_str(), debris::STALE) {
                out.deleted
                    .push(format!("{} {file} (unfinished)", store.describe()));
            }
        }
        for key in store.sweep_uploads(b.name.as_str(), debris::STALE_UPLOAD, &t.rt)? {
            let at = store.describe();
            out.deleted.push(format!("{at} {key} (incomplete upload)"));
        }
        let listing = store.manifests(b.name.as_str(), &t.rt)?;
        for i in &listing.invalid {
            let at = store.describe();
            out.skipped.push(format!("{at}{}: {}", i.file, i.reason));
        }
        let authentic = listing
            .copies
            .iter()
            .take(KEEP_TRIES)
            .find(|m| manifest::check((*m).clone(), b.name.as_str(), secret.as_ref()).is_ok())
            .map(|m| m.id.clone());
        for m in expired(&listing.copies, keep.as_millis() / 1000) {
            if Some(&m.id) != authentic.as_ref() {
                store.delete(&m.id, &t.rt)?;
                out.deleted.push(format!("{} {}", store.describe(), m.id));
            }
        }
    }
    Ok(out)
}

/// Copies past `keep_secs`, the newest never among them (`manifests` newest first).
pub fn expired(manifests: &[Manifest], keep_secs: u64) -> Vec<Manifest> {
    let cutoff = now().saturating_sub(keep_secs);
    manifests
        .iter()
        .skip(1)
        .filter(|m| m.started_at < cutoff)
        .cloned()
        .collect()
}

/// `database@latest` or `database-20261128T143800Z` → (backup name, id or `latest`).
pub fn parse_id(text: &str) -> Option<(String, String)> {
    if let Some((name, rest)) = text.split_once('@') {
        return (rest == "latest").then(|| (name.to_string(), "latest".to_string()));
    }
    let (name, stamp) = text.rsplit_once('-')?;
    (stamp.len() == 16 && stamp.ends_with('Z') && stamp.contains('T'))
        .then(|| (name.to_string(), text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: &str, age: u64) -> Manifest {
        Manifest {
            format_version: FORMAT_VERSION,
            id: id.into(),
            backup: "db".into(),
            source: String::new(),
            compression: "zstd".into(),
            encryption: "none".into(),
            key_id: None,
            kdf: None,
            started_at: now() - age,
            finished_at: now() - age,
            raw_bytes: 0,
            stored_bytes: 0,
            sha256: String::new(),
            mac: None,
            rows: None,
        }
    }

    #[test]
    fn retention_keeps_recent_copies_and_always_the_newest() {
        let list = vec![m("c", 10), m("b", 100), m("a", 1000)];
        let gone: Vec<String> = expired(&list, 50).into_iter().map(|x| x.id).collect();
        assert_eq!(gone, vec!["b", "a"]);
        let old = vec![m("y", 5000), m("x", 6000)];
        let gone: Vec<String> = expired(&old, 50).into_iter().map(|x| x.id).collect();
        assert_eq!(gone, vec!["x"], "the newest copy stays, however old");
    }

    #[test]
    fn ids_name_a_backup_and_a_copy() {
        assert_eq!(
            parse_id("database@latest"),
            Some(("database".into(), "latest".into()))
        );
        assert_eq!(
            parse_id("media-files-20261128T143800Z"),
            Some(("media-files".into(), "media-files-20261128T143800Z".into()))
        );
        assert_eq!(parse_id("nonsense"), None);
    }
}
