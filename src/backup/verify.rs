//! Verification of a checked copy (its manifest authenticated under the Backup's key, if it
//! declares one): re-reading it against its manifest's checksum and decrypting all of it, and
//! the restore drill that restores into a scratch database (or directory) and measures the RTO.

use std::io;
use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use super::manifest::Checked;
use super::restore::{open, restore_database, restore_files};
use super::store::Store;
use super::{counts, now, stored, BackupError, Tools};
use crate::model::Backup;

/// Downloads the copy, checks its sha256, then decrypts and decompresses all of it (the stored
/// bytes tallied again on the way).
pub fn verify_checksum(t: &Tools, store: &Store, c: &Checked) -> Result<(), BackupError> {
    // One read does it all: decrypted and decompressed through while the stored bytes are
    // hashed. Only a copy that fails is read once more, to say whether its bytes changed.
    let streamed = read_through(t, store, c);
    match streamed {
        Err(e) if !e.is_unreachable() => {
            stored::check(t, store, c)?;
            Err(e)
        }
        other => other,
    }
}

/// `verify_checksum`, and the copy marked as read through in full: a restore right after it
/// starts without reading it once more.
pub fn verified(t: &Tools, store: &Store, mut c: Checked) -> Result<Checked, BackupError> {
    verify_checksum(t, store, &c)?;
    c.mark_bytes_verified();
    Ok(c)
}

fn read_through(t: &Tools, store: &Store, c: &Checked) -> Result<(), BackupError> {
    let opened = open(t, store, c)?;
    let mut reader = opened.reader;
    io::copy(&mut reader, &mut io::sink()).map_err(|e| BackupError::Unreadable {
        id: c.id.clone(),
        source: Box::new(BackupError::from_io(e)),
    })?;
    opened.tally.finish()
}

/// The outcome of a restore drill.
#[derive(Debug, Clone, Serialize)]
pub struct Drill {
    pub tables: i64,
    pub rows: i64,
    pub seconds: f64,
    /// Whether every table's count was compared with the manifest's (and matched): false when
    /// it records no counts.
    pub counts_match: bool,
}

/// Restores into a scratch database, checks it holds tables and, when the manifest records them,
/// exactly its row counts, drops it; the measured RTO.
pub fn verify_restore(
    t: &Tools,
    b: &Backup,
    store: &Store,
    c: &Checked,
) -> Result<Drill, BackupError> {
    let started = Instant::now();
    if b.source.database.is_none() {
        let dir = tempfile::tempdir().map_err(|source| BackupError::ScratchDir { source })?;
        restore_files(t, store, c, dir.path(), false)?;
        let files = walk_count(dir.path());
        return Ok(Drill {
            tables: 0,
            rows: files as i64,
            seconds: started.elapsed().as_secs_f64(),
            counts_match: false,
        });
    }
    let pg = t.pg()?;
    let scratch = format!("converge_verify_{}", now());
    let restored = restore_database(t, store, c, &scratch, false);
    let counted = restored.and_then(|_| {
        t.rt.block_on(pg.table_rows(&scratch))
            .map_err(BackupError::postgres(&scratch))
    });
    let _ = t.rt.block_on(pg.drop_database(&scratch));
    let found = counted?;
    if found.is_empty() {
        return Err(BackupError::RestoredNothing { id: c.id.clone() });
    }
    let matched = counts::against(c, &scratch, &found)?;
    Ok(Drill {
        tables: found.len() as i64,
        rows: found.values().sum(),
        seconds: started.elapsed().as_secs_f64(),
        counts_match: matched.is_some(),
    })
}

fn walk_count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        walk_count(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}
