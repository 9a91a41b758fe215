//! Restores: finding a copy at a destination and checking its manifest, opening it (decryption,
//! decompression, the stored bytes tallied against the manifest) and restoring it into a
//! database (pg_restore) or a directory (tar), its checksum checked before anything changes.

use std::io::{self, Read};
use std::path::Path;
use std::process::{Command, Stdio};

use super::manifest::{check, Checked};
use super::store::Store;
use super::stored::{self, Tally};
use super::{crypto, BackupError, Tools};
use crate::model::Backup;

/// The copy `id` (or `latest`) of `b` from the first destination that has it (local first),
/// checked (id, MAC under the declared key): an invalid or refused manifest is an error naming
/// it, never skipped in favour of another copy.
pub fn find(t: &Tools, b: &Backup, id: &str) -> Result<(Store, Checked), BackupError> {
    let secret = t.secret(b)?;
    let mut stores: Vec<Store> = t.stores(b)?.into_iter().map(|(s, _)| s).collect();
    stores.sort_by_key(|s| !s.is_local());
    for s in stores {
        let listing = s.manifests(b.name.as_str(), &t.rt)?;
        let file = format!("{id}{}", super::manifest::MANIFEST_SUFFIX);
        if let Some(bad) = listing.invalid.iter().find(|i| i.file == file) {
            let e = BackupError::InvalidManifest {
                file: bad.file.clone(),
                reason: bad.reason.clone(),
            };
            return Err(BackupError::at(s.describe(), e));
        }
        let found = if id == "latest" {
            listing.copies.into_iter().next()
        } else {
            listing.copies.into_iter().find(|m| m.id == id)
        };
        if let Some(m) = found {
            return match check(m, b.name.as_str(), secret.as_ref()) {
                Ok(c) => Ok((s, c)),
                Err(e) => Err(BackupError::at(s.describe(), e)),
            };
        }
    }
    Err(BackupError::NotFound {
        backup: b.name.to_string(),
        id: id.to_string(),
    })
}

/// A copy opened for reading: its original bytes, and the tally of its stored bytes.
pub(super) struct Opened {
    pub reader: Box<dyn Read + Send>,
    pub tally: Tally,
}

/// The original bytes of a checked copy: decrypted under its key, decompressed.
pub(super) fn open(t: &Tools, store: &Store, c: &Checked) -> Result<Opened, BackupError> {
    let raw = store.reader(&c.id, c.stored_bytes, &t.rt)?;
    let (tally, raw) = Tally::new(raw, store, c);
    let plain: Box<dyn Read + Send> = match c.key() {
        None => raw,
        Some(key) => Box::new(crypto::Decryptor::new(raw, key).map_err(BackupError::from_io)?),
    };
    let reader: Box<dyn Read + Send> = match c.compression.as_str() {
        "zstd" => Box::new(zstd::stream::read::Decoder::new(plain).map_err(|source| {
            BackupError::Decompress {
                id: c.id.clone(),
                source,
            }
        })?),
        "gzip" => Box::new(flate2::read::GzDecoder::new(plain)),
        _ => plain,
    };
    Ok(Opened { reader, tally })
}

/// Restores a database copy into `target` (created when missing; must be empty unless `force`).
/// The stored bytes are checked against the manifest first (unless this process just read the
/// copy through: `verified`): a mismatch changes nothing.
pub fn restore_database(
    t: &Tools,
    store: &Store,
    c: &Checked,
    target: &str,
    force: bool,
) -> Result<(), BackupError> {
    let pg = t.pg()?;
    if !c.bytes_verified() {
        stored::check(t, store, c)?;
    }
    let contents =
        t.rt.block_on(pg.ensure_database(target))
            .map_err(BackupError::postgres(target))?;
    if !contents.is_empty() && !force {
        return Err(BackupError::TargetNotEmpty {
            database: target.to_string(),
            contents,
        });
    }
    let input = open(t, store, c)?;
    let mut cmd = Command::new("pg_restore");
    cmd.args(["--no-owner", "--no-privileges", "--exit-on-error"]);
    if force {
        cmd.args(["--clean", "--if-exists"]);
    }
    cmd.args(["-d", &pg.dsn(target)]);
    if let Some(pw) = pg.password() {
        cmd.env("PGPASSWORD", pw);
    }
    pipe_into(cmd, input)
}

/// Restores a files copy into `dir` (created when missing; must be empty unless `force`).
/// The stored bytes are checked against the manifest first (unless this process just read the
/// copy through: `verified`): a mismatch changes nothing.
pub fn restore_files(
    t: &Tools,
    store: &Store,
    c: &Checked,
    dir: &Path,
    force: bool,
) -> Result<(), BackupError> {
    let occupied = std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some());
    if occupied && !force {
        return Err(BackupError::TargetDirNotEmpty {
            path: dir.to_path_buf(),
        });
    }
    if !c.bytes_verified() {
        stored::check(t, store, c)?;
    }
    std::fs::create_dir_all(dir).map_err(|source| BackupError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let input = open(t, store, c)?;
    let mut cmd = Command::new("tar");
    cmd.arg("-x").arg("-C").arg(dir).arg("-f").arg("-");
    pipe_into(cmd, input)
}

/// Feeds the copy to `cmd`; when the stored bytes changed since they were checked, the tool is
/// killed before its input ends, so it never sees a complete stream.
fn pipe_into(mut cmd: Command, input: Opened) -> Result<(), BackupError> {
    let Opened { mut reader, tally } = input;
    let program = cmd.get_program().to_os_string();
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| BackupError::ToolStart {
            program: program.clone(),
            source,
        })?;
    let mut stdin = child.stdin.take().expect("piped");
    let copied = io::copy(&mut reader, &mut stdin);
    let unchanged = match copied {
        Ok(_) => tally.finish(),
        Err(_) => Ok(()),
    };
    if unchanged.is_err() {
        let _ = child.kill();
    }
    drop(stdin);
    let out = child
        .wait_with_output()
        .map_err(|source| BackupError::ToolWait {
            program: program.clone(),
            source,
        })?;
    copied.map_err(|e| BackupError::ReadCopy {
        source: Box::new(BackupError::from_io(e)),
    })?;
    unchanged?;
    if !out.status.success() {
        return Err(BackupError::ToolFailed {
            program,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}
