//! Backup schedules in the agent: each Backup's cron (UTC) fires once per occurrence, on the
//! agent allowed to do cluster-wide work; the age of the last good copy is checked against its RPO.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::engine::journal::Entry;

/// The first occurrence of `cron` strictly after `after` (Unix seconds).
pub fn next_after(cron: &str, after: u64) -> Option<u64> {
    let c: croner::Cron = cron.parse().ok()?;
    let t = DateTime::<Utc>::from_timestamp(after as i64, 0)?;
    c.find_next_occurrence(&t, false)
        .ok()
        .map(|n| n.timestamp() as u64)
}

/// When each backup last succeeded (`backup-done` in the journal), by resource id.
pub fn last_success(entries: &[Entry]) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for e in entries {
        if let crate::engine::journal::Event::BackupDone { resource, .. } = &e.event {
            out.insert(resource.clone(), e.ts);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_occurrence_is_after_the_given_time() {
        // 2026-11-28T14:59:30Z → the next hour.
        let t = 1_795_877_970;
        assert_eq!(next_after("0 * * * *", t), Some(1_795_878_000));
        assert_eq!(next_after("0 * * * *", 1_795_878_000), Some(1_795_881_600));
        assert_eq!(next_after("not cron", t), None);
    }
}
