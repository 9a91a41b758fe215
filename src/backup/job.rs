//! One backup job as the CLI and the agent's schedules run it: take the copy, verify it as the
//! Backup asks, apply retention, and record the outcome in the journal.

use std::path::Path;

use super::{BackupError, Tools};
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
        Ok(deleted) if deleted.is_empty() => {}
        Ok(deleted) => lines.push(format!(
            "Retention deleted {} old copy(ies): {}",
            deleted.len(),
            deleted.join(", ")
        )),
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
    let (store, m) = super::find(tools, b, id)?;
    super::verify_checksum(tools, b, &store, &m)?;
    if mode != VerifyMode::Restore {
        return Ok(format!(
            "Verified {} at {}: checksum and every chunk authenticate.",
            m.id,
            store.describe()
        ));
    }
    let d = super::verify_restore(tools, b, &store, &m)?;
    Ok(format!(
        "Verified {} at {}: restored {} table(s), {} row(s) into a scratch database and dropped it; restore took {:.1}s (the measured RTO).",
        m.id,
        store.describe(),
        d.tables,
        d.rows,
        d.seconds
    ))
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
