//! One backup job as the CLI and the agent's schedules run it: take the copy, verify it as the
//! Backup asks, apply retention, and record the outcome in the journal.

use std::path::Path;

use super::{BackupError, Retention, Tools};
use crate::engine::event::{BackupTaken, Event};
use crate::engine::journal::Journal;
use crate::model::backup::VerifyMode;
use crate::model::Backup;

/// A backup, its verification and retention, recorded in the journal; lines to print.
pub fn run_now(tools: &Tools, b: &Backup, state_dir: &Path) -> Result<Vec<String>, BackupError> {
    let project = tools.desired.project.name.as_str();
    let mut journal = Journal::open(state_dir, project)?;
    let started = std::time::Instant::now();
    let outcome = super::run(tools, b);
    let m = match outcome {
        Ok(m) => m,
        Err(e) => {
            let _ = journal.record(Event::BackupFailed {
                resource: format!("backup/{}", b.name),
                detail: None,
                error: Some(e.to_string()),
                data: None,
            });
            return Err(e);
        }
    };
    let mut lines = vec![format!(
        "Backed up backup/{} as {}: {} raw, {} stored ({}, {}) in {:.1}s",
        b.name,
        m.id,
        human(m.raw_bytes),
        human(m.stored_bytes),
        m.compression,
        m.encryption,
        started.elapsed().as_secs_f64()
    )];
    for d in &b.destinations {
        lines.push(format!("  -> {}", d.url));
    }
    let verified = if b.verify == VerifyMode::None {
        Ok("not verified (verify: none)".to_string())
    } else {
        verify(tools, b, &m.id, b.verify)
    };
    let taken = BackupTaken {
        id: m.id.clone(),
        stored_bytes: m.stored_bytes,
        seconds: started.elapsed().as_secs_f64(),
    };
    let resource = format!("backup/{}", b.name);
    let _ = journal.record(match &verified {
        Ok(_) => Event::BackupDone {
            resource,
            detail: m.id.clone(),
            data: taken,
        },
        Err(e) => Event::BackupFailed {
            resource,
            detail: Some(m.id.clone()),
            error: Some(e.to_string()),
            data: Some(taken),
        },
    });
    lines.push(verified?);
    match super::retention(tools, b) {
        Ok(r) => lines.extend(retention_lines(&r)),
        Err(e) => lines.push(format!("warning: retention failed: {e}")),
    }
    Ok(lines)
}

pub fn verify(
    tools: &Tools,
    b: &Backup,
    id: &str,
    mode: VerifyMode,
) -> Result<String, BackupError> {
    let (store, c) = super::find(tools, b, id)?;
    let trust = if c.authenticated() {
        "manifest MAC, checksum and every chunk authenticate".to_string()
    } else {
        format!(
            "checksum matches; not authenticated (backup/{} declares no encryption key)",
            b.name
        )
    };
    if mode != VerifyMode::Restore {
        super::verify_checksum(tools, &store, &c)?;
        return Ok(format!(
            "Verified {} at {}: {trust}.",
            c.id,
            store.describe()
        ));
    }
    // The drill checks the checksum before it restores and decrypts every chunk as it does.
    let d = super::verify_restore(tools, b, &store, &c)?;
    let counts = if d.counts_match {
        " (every count matches the copy's manifest)"
    } else {
        ""
    };
    Ok(format!(
        "Verified {} at {}: {trust}; restored {} table(s), {} row(s){counts} into a scratch database and dropped it; restore took {:.1}s (the measured RTO).",
        c.id,
        store.describe(),
        d.tables,
        d.rows,
        d.seconds
    ))
}

/// What retention did, as lines to print: the copies deleted, a warning per skipped manifest.
fn retention_lines(r: &Retention) -> Vec<String> {
    let mut lines = Vec::new();
    if !r.deleted.is_empty() {
        lines.push(format!(
            "Retention deleted {} old copy(ies): {}",
            r.deleted.len(),
            r.deleted.join(", ")
        ));
    }
    for s in &r.skipped {
        lines.push(format!("warning: skipped invalid manifest {s}"));
    }
    lines
}

pub fn human(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}
