//! Restores: finding a copy at a destination, opening it (key check, decryption,
//! decompression) and restoring it into a database (pg_restore) or a directory (tar).

use std::io::{self, Read};
use std::path::Path;
use std::process::{Command, Stdio};

use super::store::Store;
use super::{crypto, Manifest, Tools};
use crate::model::Backup;

/// The copy `id` (or `latest`) of `b`, from the first destination that has it (local first).
pub fn find(t: &Tools, b: &Backup, id: &str) -> Result<(Store, Manifest), String> {
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
    Err(format!(
        "no copy `{id}` of backup/{} at any destination",
        b.name
    ))
}

/// The original bytes of a copy: verified against the manifest's key id, decrypted, decompressed.
pub(super) fn open(
    t: &Tools,
    b: &Backup,
    store: &Store,
    m: &Manifest,
) -> Result<Box<dyn Read + Send>, String> {
    let raw = store.reader(&m.id, m.stored_bytes, &t.rt)?;
    let plain: Box<dyn Read + Send> = match (m.encryption.as_str(), t.key(b)?) {
        ("none", _) => raw,
        (_, None) => {
            return Err(format!(
                "{} is encrypted and backup/{} declares no key",
                m.id, b.name
            ))
        }
        (_, Some(key)) => {
            let id = crypto::key_id(&key);
            if m.key_id.as_deref() != Some(id.as_str()) {
                return Err(format!(
                    "{} was encrypted with key {}, and the configured key is {id}: restore needs the key it was made with",
                    m.id,
                    m.key_id.as_deref().unwrap_or("?")
                ));
            }
            Box::new(crypto::Decryptor::new(raw, &key).map_err(|e| e.to_string())?)
        }
    };
    Ok(match m.compression.as_str() {
        "zstd" => Box::new(zstd::stream::read::Decoder::new(plain).map_err(|e| e.to_string())?),
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
) -> Result<(), String> {
    let pg = t.pg()?;
    let tables = t.rt.block_on(pg.ensure_database(target))?;
    if tables > 0 && !force {
        return Err(format!("database {target} already holds {tables} table(s); restore refuses to overwrite it\n  = hint: restore into a new database, or pass --force"));
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
) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let mut input = open(t, b, store, m)?;
    let mut cmd = Command::new("tar");
    cmd.arg("-x").arg("-C").arg(dir).arg("-f").arg("-");
    pipe_into(cmd, &mut input)
}

fn pipe_into(mut cmd: Command, input: &mut dyn Read) -> Result<(), String> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))?;
    let mut stdin = child.stdin.take().expect("piped");
    let copied = io::copy(input, &mut stdin);
    drop(stdin);
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    copied.map_err(|e| format!("reading the backup: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{:?} failed: {}",
            cmd.get_program(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}
