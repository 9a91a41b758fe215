//! Verification: re-reading a copy against its manifest's checksum, and the restore drill that
//! restores into a scratch database (or directory) and measures the RTO.

use std::io::{self, Read};
use std::path::Path;
use std::time::Instant;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::restore::{open, restore_database, restore_files};
use super::store::Store;
use super::{now, BackupError, Manifest, Tools};
use crate::model::Backup;

/// Reads through and checks the stored bytes' sha256; returns the bytes read.
struct Hashing<R> {
    inner: R,
    sha: Sha256,
    n: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        self.n += n as u64;
        Ok(n)
    }
}

/// Downloads the copy, checks its sha256 and decrypts and decompresses all of it.
pub fn verify_checksum(
    t: &Tools,
    b: &Backup,
    store: &Store,
    m: &Manifest,
) -> Result<(), BackupError> {
    let mut h = Hashing {
        inner: store.reader(&m.id, m.stored_bytes, &t.rt)?,
        sha: Sha256::new(),
        n: 0,
    };
    io::copy(&mut h, &mut io::sink()).map_err(|source| BackupError::Download {
        id: m.id.clone(),
        destination: store.describe(),
        source,
    })?;
    let got = crate::model::attributes::hex(&h.sha.finalize());
    if got != m.sha256 || h.n != m.stored_bytes {
        return Err(BackupError::ChecksumMismatch {
            id: m.id.clone(),
            destination: store.describe(),
            expected: m.sha256.clone(),
            found: got,
        });
    }
    let mut plain = open(t, b, store, m)?;
    io::copy(&mut plain, &mut io::sink()).map_err(|e| BackupError::Unreadable {
        id: m.id.clone(),
        source: Box::new(BackupError::from_io(e)),
    })?;
    Ok(())
}

/// The outcome of a restore drill.
#[derive(Debug, Clone, Serialize)]
pub struct Drill {
    pub tables: i64,
    pub rows: i64,
    pub seconds: f64,
}

/// Restores into a scratch database, checks it holds tables and rows, drops it; the measured RTO.
pub fn verify_restore(
    t: &Tools,
    b: &Backup,
    store: &Store,
    m: &Manifest,
) -> Result<Drill, BackupError> {
    let started = Instant::now();
    if b.source.database.is_none() {
        let dir = tempfile::tempdir().map_err(|source| BackupError::ScratchDir { source })?;
        restore_files(t, b, store, m, dir.path())?;
        let files = walk_count(dir.path());
        return Ok(Drill {
            tables: 0,
            rows: files as i64,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    let pg = t.pg()?;
    let scratch = format!("converge_verify_{}", now());
    let restored = restore_database(t, b, store, m, &scratch, false);
    let counted = restored.and_then(|_| {
        t.rt.block_on(pg.count_rows(&scratch))
            .map_err(BackupError::postgres(&scratch))
    });
    let _ = t.rt.block_on(pg.drop_database(&scratch));
    let (tables, rows) = counted?;
    if tables == 0 {
        return Err(BackupError::RestoredNothing { id: m.id.clone() });
    }
    Ok(Drill {
        tables,
        rows,
        seconds: started.elapsed().as_secs_f64(),
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
