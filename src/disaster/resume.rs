//! Resuming a recovery from the journal: when the last `recovery-started` has no successful
//! `recovery-finished` after it, the targets its `recovery-restored` entries name are done and
//! are not restored again.

use std::collections::BTreeMap;

use crate::engine::event::{Entry, Event};

/// The targets an unfinished recovery restored: label → the copy it restored.
pub fn restored_earlier(entries: &[Entry]) -> BTreeMap<String, String> {
    let Some(start) = entries
        .iter()
        .rposition(|e| matches!(e.event, Event::RecoveryStarted { .. }))
    else {
        return BTreeMap::new();
    };
    let after = &entries[start + 1..];
    let finished = after
        .iter()
        .any(|e| matches!(&e.event, Event::RecoveryFinished { detail, .. } if detail == RECOVERED));
    if finished {
        return BTreeMap::new();
    }
    after
        .iter()
        .filter_map(|e| match &e.event {
            Event::RecoveryRestored { resource, detail } => {
                Some((resource.clone(), detail.clone()))
            }
            _ => None,
        })
        .collect()
}

/// The `detail` of a recovery that completed.
pub const RECOVERED: &str = "recovered";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::event::RecoveryPhases;

    fn entry(event: Event) -> Entry {
        Entry {
            ts: 0,
            run: "r".into(),
            event,
        }
    }

    fn started() -> Entry {
        entry(Event::RecoveryStarted {
            detail: "1 restore(s)".into(),
        })
    }

    fn restored(label: &str) -> Entry {
        entry(Event::RecoveryRestored {
            resource: label.into(),
            detail: "db-20261202T160000Z".into(),
        })
    }

    fn finished(detail: &str) -> Entry {
        entry(Event::RecoveryFinished {
            detail: detail.into(),
            data: RecoveryPhases::default(),
        })
    }

    #[test]
    fn an_interrupted_recovery_resumes_after_its_completed_restores() {
        let j = vec![started(), restored("database/app")];
        let done = restored_earlier(&j);
        assert_eq!(done.keys().collect::<Vec<_>>(), vec!["database/app"]);
    }

    #[test]
    fn a_failed_recovery_resumes_too_but_a_completed_one_starts_afresh() {
        let failed = vec![started(), restored("database/app"), finished("failed: x")];
        assert_eq!(restored_earlier(&failed).len(), 1);
        let done = vec![started(), restored("database/app"), finished(RECOVERED)];
        assert!(restored_earlier(&done).is_empty());
        let again = vec![started(), restored("a"), finished(RECOVERED), started()];
        assert!(restored_earlier(&again).is_empty());
    }
}
