//! Restores: finding a copy at a destination, opening it (key check, decryption,
//! decompression) and restoring it into a database (pg_restore) or a directory (tar).

use std::io::{self, Read};
use std::path::Path;
use std::process::{Command, Stdio};

use super::store::Store;
use super::{crypto, BackupError, Manifest, Tools};
use crate::model::Backup;

/// The copy `id` (or `latest`) of `b`, from the first destination that has it (local first).
pub fn find(t: &Tools, b: &Backup, id: &str) -> Result<(Store, Manifest), BackupError> {
    let mut stores: Vec<Store> = t.stores(b)?.into_iter().map(|(s, _)| s).collect();
    stores.sort_by_key(|s| !s.is_local());
    for s in stores {
        let ms = s.manifests(b.name.as_str(), &t.rt)?;
        let found = if id == "latest" {
            ms.into_iter().next()
        } else {
            ms.into_iter().find(|m| m.id == id)
        };
        if let Some(m) = found {
            return Ok((s, m));
        }
    }
    Err(BackupError::NotFound {
        backup: b.name.to_string(),
        id: id.to_string(),
    })
}

/// The original bytes of a copy: verified against the manifest's key id, decrypted, decompressed.
pub(super) fn open(
    t: &Tools,
    b: &Backup,
    store: &Store,
    m: &Manifest,
) -> Result<Box<dyn Read + Send>, BackupError> {
    let raw = store.reader(&m.id, m.stored_bytes, &t.rt)?;
    let plain: Box<dyn Read + Send> = match (m.encryption.as_str(), t.key(b)?) {
        ("none", _) => raw,
        (_, None) => {
            return Err(BackupError::KeyMissing {
                id: m.id.clone(),
                backup: b.name.to_string(),
            })
        }
        (_, Some(key)) => {
            let id = crypto::key_id(&key);
            if m.key_id.as_deref() != Some(id.as_str()) {
                return Err(BackupError::WrongKey {
                    id: m.id.clone(),
                    made_with: m.key_id.clone(),
                    configured: id,
                });
            }
            Box::new(crypto::Decryptor::new(raw, &key).map_err(BackupError::from_io)?)
        }
    };
    Ok(match m.compression.as_str() {
        "zstd" => Box::new(zstd::stream::read::Decoder::new(plain).map_err(|source| {
            BackupError::Decompress {
                id: m.id.clone(),
                source,
            }
        })?),
        "gzip" => Box::new(flate2::read::GzDecoder::new(plain)),
        _ => plain,
    })
}

/// Restores a database copy into `target` (created when missing; must be empty unless `force`).
pub fn restore_database(
    t: &Tools,
    b: &Backup,
    store: &Store,
    m: &Manifest,
    target: &str,
    force: bool,
) -> Result<(), BackupError> {
    let pg = t.pg()?;
    let tables =
        t.rt.block_on(pg.ensure_database(target))
            .map_err(BackupError::postgres(target))?;
    if tables > 0 && !force {
        return Err(BackupError::TargetNotEmpty {
            database: target.to_string(),
            tables,
        });
    }
    let mut input = open(t, b, store, m)?;
    let mut cmd = Command::new("pg_restore");
    cmd.args(["--no-owner", "--no-privileges", "--exit-on-error"]);
    if force {
        cmd.args(["--clean", "--if-exists"]);
    }
    cmd.args(["-d", &pg.dsn(target)]);
    if let Some(pw) = pg.password() {
        cmd.env("PGPASSWORD", pw);
    }
    pipe_into(cmd, &mut input)
}

/// Restores a files copy into `dir`.
pub fn restore_files(
    t: &Tools,
    b: &Backup,
    store: &Store,
    m: &Manifest,
    dir: &Path,
) -> Result<(), BackupError> {
    std::fs::create_dir_all(dir).map_err(|source| BackupError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut input = open(t, b, store, m)?;
    let mut cmd = Command::new("tar");
    cmd.arg("-x").arg("-C").arg(dir).arg("-f").arg("-");
    pipe_into(cmd, &mut input)
}

fn pipe_into(mut cmd: Command, input: &mut dyn Read) -> Result<(), BackupError> {
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
    let copied = io::copy(input, &mut stdin);
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
    if !out.status.success() {
        return Err(BackupError::ToolFailed {
            program,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}
