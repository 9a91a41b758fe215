//! The durable journal: one JSON line per event, appended and fsynced before the next action, so
//! a crash leaves a record of what ran, what undoes it, and which deferred steps are still due.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::model::live::{Color, PendingStep};

use super::event::{Deployed, Scaled};
pub use super::event::{Entry, Event, StepRef};

/// (The I/O error is a field, not a `#[source]`: the message already includes it, and a
/// `{:#}` chain would print it twice.)
#[derive(Debug, Error)]
#[error("journal {path}: {error}")]
pub struct JournalError {
    path: PathBuf,
    error: std::io::Error,
}

/// Free space an apply needs in the state directory before it starts: every step is journaled
/// twice, and a record that cannot be written stops the run half-way.
pub const HEADROOM: u64 = 16 << 20;

/// One converge process at a time applies a project from a state directory (an advisory file
/// lock, released when the process exits, however it exits).
pub struct StateLock {
    _file: std::fs::File,
}

#[derive(Debug, Error)]
pub enum LockError {
    #[error("another converge process is applying project `{project}` (lock {path} is held)\n  = hint: wait for it to finish, or stop the agent that runs it")]
    Held { project: String, path: PathBuf },
    #[error("cannot open the lock {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl StateLock {
    pub fn acquire(state_dir: &Path, project: &str) -> Result<StateLock, LockError> {
        let path = state_dir.join(format!("{project}.lock"));
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        crate::state_dir::ensure(state_dir).map_err(io)?;
        let file = crate::state_dir::open_lock(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => Ok(StateLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(LockError::Held {
                project: project.into(),
                path,
            }),
            Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
        }
    }
}

pub struct Journal {
    path: PathBuf,
    file: std::fs::File,
    pub run: String,
}

pub use crate::clock::now;

impl Journal {
    /// Opens `<state_dir>/journal/<project>.jsonl` for appending, compacting it first when it
    /// has grown large (only the holder of the project's [`StateLock`] may: compaction replaces
    /// the file).
    pub fn open(state_dir: &Path, project: &str) -> Result<Journal, JournalError> {
        Self::open_with(state_dir, project, true)
    }

    /// Opens the journal for appending without compacting it, for a writer that does not hold
    /// the project's [`StateLock`] (a drill). Open it right before recording, so a compaction by
    /// the lock holder cannot fall between the open and the record.
    pub fn append_only(state_dir: &Path, project: &str) -> Result<Journal, JournalError> {
        Self::open_with(state_dir, project, false)
    }

    fn open_with(
        state_dir: &Path,
        project: &str,
        may_compact: bool,
    ) -> Result<Journal, JournalError> {
        let path = Self::path_for(state_dir, project);
        let err = |source| JournalError {
            path: path.clone(),
            error: source,
        };
        let dir = path.parent().expect("journal has a parent");
        if let Some(state) = dir.parent() {
            crate::state_dir::ensure(state).map_err(err)?;
        }
        crate::state_dir::ensure(dir).map_err(err)?;
        if may_compact && std::fs::metadata(&path).is_ok_and(|m| m.len() > COMPACT_AT) {
            compact(&path).map_err(err)?;
        }
        let file = crate::state_dir::open_append(&path).map_err(err)?;
        Ok(Journal {
            path,
            file,
            run: new_run_id(),
        })
    }

    /// Another run on the same open file (never compacted again: records of both handles land
    /// in the same file).
    pub fn another_run(&self) -> Result<Journal, JournalError> {
        let file = self.file.try_clone().map_err(|source| JournalError {
            path: self.path.clone(),
            error: source,
        })?;
        Ok(Journal {
            path: self.path.clone(),
            file,
            run: new_run_id(),
        })
    }

    /// Fails when the journal's filesystem has less than [`HEADROOM`] free (for unprivileged
    /// writers), naming the directory and what is free.
    pub fn check_headroom(&self) -> Result<(), JournalError> {
        let dir = self.path.parent().unwrap_or(&self.path);
        let free = crate::state_dir::free_bytes(dir).map_err(|source| JournalError {
            path: self.path.clone(),
            error: source,
        })?;
        if free >= HEADROOM {
            return Ok(());
        }
        Err(JournalError {
            path: self.path.clone(),
            error: std::io::Error::other(format!(
                "only {} KiB free in {}; an apply needs at least {} MiB there to journal its steps, so nothing was changed\n  = hint: free space on that filesystem (or point --state-dir elsewhere) and run again",
                free >> 10,
                dir.display(),
                HEADROOM >> 20
            )),
        })
    }

    /// The state directory and project this journal belongs to (`<state>/journal/<project>.jsonl`).
    pub fn owner(&self) -> (PathBuf, String) {
        let project = self
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let state = self
            .path
            .parent()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        (state, project)
    }

    /// Every entry of this journal so far.
    pub fn read_all(&self) -> Vec<Entry> {
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub fn path_for(state_dir: &Path, project: &str) -> PathBuf {
        state_dir.join("journal").join(format!("{project}.jsonl"))
    }

    /// Appends one entry and waits until it is on disk.
    pub fn record(&mut self, event: Event) -> Result<(), JournalError> {
        let e = Entry {
            ts: now(),
            run: self.run.clone(),
            event,
        };
        let mut line = serde_json::to_string(&e).expect("entry serializes");
        line.push('\n');
        let err = |source| JournalError {
            path: self.path.clone(),
            error: source,
        };
        self.file.write_all(line.as_bytes()).map_err(err)?;
        self.file.sync_data().map_err(err)
    }

    pub fn entries(state_dir: &Path, project: &str) -> Vec<Entry> {
        let text = std::fs::read_to_string(Self::path_for(state_dir, project)).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Spec hashes per service whose deploy failed and was rolled back (`spec-failed` entries).
    pub fn failed(state_dir: &Path, project: &str) -> BTreeMap<String, BTreeSet<String>> {
        failed_of(&Self::entries(state_dir, project))
    }

    /// The service specs recorded by successful deploys of `resource`, oldest first, with
    /// when each was deployed.
    pub fn deployed(state_dir: &Path, project: &str, resource: &str) -> Vec<(u64, Deployed)> {
        Self::entries(state_dir, project)
            .into_iter()
            .filter_map(|e| match e.event {
                Event::Deployed { resource: r, data } if r == resource => Some((e.ts, data)),
                _ => None,
            })
            .collect()
    }

    /// Deferred steps recorded and not yet done or cancelled.
    pub fn pending(state_dir: &Path, project: &str) -> Vec<PendingStep> {
        pending_of(&Self::entries(state_dir, project))
    }
}

/// Spec hashes per service whose deploy failed and was rolled back (`spec-failed` entries).
/// `<unix seconds>-<8 random hex digits>`.
fn new_run_id() -> String {
    let mut id = [0u8; 4];
    let _ = getrandom::fill(&mut id);
    format!("{}-{}", now(), crate::model::attributes::hex(&id))
}

pub fn failed_of(entries: &[Entry]) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in entries {
        if let Event::SpecFailed { resource, data } = &e.event {
            out.entry(resource.clone())
                .or_default()
                .insert(data.hash.clone());
        }
    }
    out
}

/// The autoscaler's last choice per service name (`scaled` entries).
pub fn autoscaled_of(entries: &[Entry]) -> BTreeMap<String, crate::scale::Autoscaled> {
    let mut out = BTreeMap::new();
    for e in entries {
        let Event::Scaled {
            at,
            data: Scaled { to, .. },
        } = &e.event
        else {
            continue;
        };
        let Some(r) = &at.resource else { continue };
        let name = r.strip_prefix("service/").unwrap_or(r).to_string();
        out.insert(
            name,
            crate::scale::Autoscaled {
                replicas: *to,
                reason: at.detail.clone().unwrap_or_default(),
                at: e.ts,
            },
        );
    }
    out
}

/// What each service ran and since when (`usage` entries), in time order.
pub fn usage_of(entries: &[Entry]) -> Vec<crate::budget::UsageRecord> {
    entries
        .iter()
        .filter_map(|e| match &e.event {
            Event::Usage { resource, data } => Some(crate::budget::UsageRecord {
                at: e.ts,
                resource: resource.clone(),
                usage: *data,
            }),
            _ => None,
        })
        .collect()
}

/// The alert thresholds of `budget` already notified in `period` (`budget-alert` entries).
pub fn budget_alerts_of(entries: &[Entry], budget: &str, period: &str) -> BTreeSet<String> {
    entries
        .iter()
        .filter_map(|e| match &e.event {
            Event::BudgetAlert { resource, data, .. }
                if resource == budget && data.period == period =>
            {
                Some(data.threshold.clone())
            }
            _ => None,
        })
        .collect()
}

/// The last evaluation of each budget, kept beside the journal (overwritten each time).
pub fn budget_statuses(state_dir: &Path, project: &str) -> Vec<crate::budget::BudgetStatus> {
    std::fs::read(budgets_path(state_dir, project))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

pub fn write_budget_statuses(
    state_dir: &Path,
    project: &str,
    statuses: &[crate::budget::BudgetStatus],
) -> std::io::Result<()> {
    let path = budgets_path(state_dir, project);
    if let Some(dir) = path.parent() {
        crate::state_dir::ensure(dir)?;
    }
    crate::state_dir::write(&path, &serde_json::to_vec_pretty(statuses)?)
}

fn budgets_path(state_dir: &Path, project: &str) -> PathBuf {
    state_dir.join("budgets").join(format!("{project}.json"))
}

/// Past this size the journal is compacted when opened (callers hold the state lock).
const COMPACT_AT: u64 = 1 << 20;

/// Keeps what recovery, drains, rollbacks, failed specs and RPO checks still need, plus the
/// most recent history; the previous file is kept beside it as `<project>.jsonl.old`.
fn compact(path: &Path) -> std::io::Result<()> {
    let text = std::fs::read_to_string(path)?;
    let entries: Vec<Entry> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let mut out = String::new();
    for e in compacted(&entries) {
        out.push_str(&serde_json::to_string(e).expect("entry serializes"));
        out.push('\n');
    }
    let tmp = path.with_extension("jsonl.tmp");
    crate::state_dir::write(&tmp, out.as_bytes())?;
    std::fs::rename(path, path.with_extension("jsonl.old"))?;
    std::fs::rename(&tmp, path)
}

/// The entries a compacted journal keeps, in their order.
pub fn compacted(entries: &[Entry]) -> Vec<&Entry> {
    const RECENT: usize = 500;
    let unfinished: std::collections::BTreeSet<String> = super::recover::unfinished_runs(entries)
        .into_iter()
        .collect();
    let open: Vec<(String, Option<usize>)> = open_deferred(entries)
        .into_iter()
        .map(|d| (d.run, d.step))
        .collect();
    let mut last_of: std::collections::BTreeMap<(&str, String), Vec<usize>> = Default::default();
    for (i, e) in entries.iter().enumerate() {
        if matches!(
            e.name(),
            "deployed" | "backup-done" | "scaled" | "usage" | "volume-intent" | "recovery-finished"
        ) {
            last_of
                .entry((e.name(), e.resource().unwrap_or_default().to_string()))
                .or_default()
                .push(i);
        }
    }
    let recent_deploys: std::collections::BTreeSet<usize> = last_of
        .values()
        .flat_map(|v| v.iter().rev().take(3).copied())
        .collect();
    let start_recent = entries.len().saturating_sub(RECENT);
    // Budgets price the current period from usage records and notify once per period.
    const PERIOD_KEEP: u64 = 40 * 86_400;
    let newest = entries.iter().map(|e| e.ts).max().unwrap_or(0);
    let budget_history = |e: &Entry| {
        matches!(
            e.name(),
            "usage" | "budget-alert" | "budget-limit" | "scaled"
        ) && e.ts + PERIOD_KEEP >= newest
    };
    entries
        .iter()
        .enumerate()
        .filter(|(i, e)| {
            *i >= start_recent
                || unfinished.contains(&e.run)
                || matches!(e.event, Event::SpecFailed { .. })
                || recent_deploys.contains(i)
                || budget_history(e)
                || (matches!(e.event, Event::Deferred { .. })
                    && open.contains(&(e.run.clone(), e.step())))
        })
        .map(|(_, e)| e)
        .collect()
}

/// The entry that closes the open deferred drain `d` (it ran, or was cancelled: `detail`).
pub fn drain_done(d: &OpenDeferred, detail: String) -> Event {
    Event::DeferredDone {
        at: StepRef {
            step: None,
            resource: Some(d.resource.clone()),
            action: Some("drain".into()),
            detail: Some(detail),
        },
        data: super::event::DeferredRef {
            run: d.run.clone(),
            step: d.step,
        },
    }
}

/// Deferred steps still open, as the plan shows them.
pub fn pending_of(entries: &[Entry]) -> Vec<PendingStep> {
    open_deferred(entries)
        .into_iter()
        .map(|d| PendingStep {
            due: d.due,
            resource: d.resource,
            action: d.action,
            detail: d.detail,
        })
        .collect()
}

/// A deferred step recorded and not yet done or cancelled.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenDeferred {
    /// The run that deferred it and its step: what a `deferred-done` names.
    pub run: String,
    pub step: Option<usize>,
    pub resource: String,
    pub action: String,
    pub detail: String,
    /// Unix seconds when it is due.
    pub due: u64,
    pub color: Option<Color>,
}

/// The deferred steps still open, in the order they were recorded.
pub fn open_deferred(entries: &[Entry]) -> Vec<OpenDeferred> {
    let mut open: Vec<OpenDeferred> = Vec::new();
    for e in entries {
        match &e.event {
            Event::Deferred { at, data } => open.push(OpenDeferred {
                run: e.run.clone(),
                step: at.step,
                resource: at.resource.clone().unwrap_or_default(),
                action: at.action.clone().unwrap_or_default(),
                detail: at.detail.clone().unwrap_or_default(),
                due: data.due,
                color: data.color,
            }),
            Event::DeferredDone { data, .. } => {
                open.retain(|d| !(d.run == data.run && d.step == data.step));
            }
            _ => {}
        }
    }
    open
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compaction_keeps_what_is_still_needed_and_recent_history() {
        let at = |resource: &str| StepRef {
            step: Some(1),
            resource: Some(resource.into()),
            action: Some("drain".into()),
            detail: None,
        };
        let e = |run: &str, event: Event| Entry {
            ts: 0,
            run: run.into(),
            event,
        };
        let undo = crate::providers::Undo::Nothing;
        let mut entries = vec![
            e(
                "old-deferred",
                Event::Deferred {
                    at: at("service/api"),
                    data: super::super::event::DeferredData {
                        due: 0,
                        color: None,
                        run: "old-deferred".into(),
                    },
                },
            ),
            e(
                "crashed",
                Event::ApplyStarted {
                    data: super::super::event::ApplyStarted {
                        revision: None,
                        fingerprint: String::new(),
                        steps: 1,
                    },
                },
            ),
            e(
                "crashed",
                Event::StepDone {
                    at: at("service/api"),
                    data: undo,
                },
            ),
            e(
                "x",
                Event::SpecFailed {
                    resource: "service/api".into(),
                    data: super::super::event::SpecHash { hash: "h".into() },
                },
            ),
            e(
                "d1",
                Event::Deployed {
                    resource: "service/api".into(),
                    data: Deployed {
                        hash: "h".into(),
                        color: None,
                        service: serde_json::Value::Null,
                    },
                },
            ),
        ];
        for i in 0..2000 {
            let run = format!("r{i}");
            entries.push(e(
                &run,
                Event::ApplyStarted {
                    data: super::super::event::ApplyStarted {
                        revision: None,
                        fingerprint: String::new(),
                        steps: 0,
                    },
                },
            ));
            entries.push(e(
                &run,
                Event::ApplyFinished {
                    detail: "applied".into(),
                },
            ));
        }
        let kept = compacted(&entries);
        assert_eq!(kept.len(), 5 + 500);
        assert_eq!(kept[0].run, "old-deferred", "an open deferred drain stays");
        assert!(
            kept.iter()
                .any(|k| k.run == "crashed" && k.name() == "step-done"),
            "an unfinished run stays"
        );
        assert!(kept.iter().any(|k| k.name() == "spec-failed"));
        assert!(kept.iter().any(|k| k.name() == "deployed"));
        let owned: Vec<Entry> = kept.into_iter().cloned().collect();
        assert_eq!(pending_of(&entries), pending_of(&owned));
        assert_eq!(
            crate::engine::recover::unfinished_runs(&owned),
            vec!["crashed".to_string()]
        );
    }

    #[test]
    fn deferred_steps_stay_pending_until_done() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), "p").unwrap();
        j.record(Event::Deferred {
            at: StepRef {
                step: Some(4),
                resource: Some("service/api".into()),
                action: Some("drain".into()),
                detail: None,
            },
            data: super::super::event::DeferredData {
                due: 100,
                color: None,
                run: j.run.clone(),
            },
        })
        .unwrap();
        assert_eq!(Journal::pending(dir.path(), "p").len(), 1);
        let run = j.run.clone();
        j.record(Event::DeferredDone {
            at: StepRef::default(),
            data: super::super::event::DeferredRef { run, step: Some(4) },
        })
        .unwrap();
        assert!(Journal::pending(dir.path(), "p").is_empty());
    }

    #[test]
    fn every_line_of_a_journal_written_by_the_previous_version_is_read() {
        let text = include_str!("../../tests/fixtures/journal-previous-version.jsonl");
        for line in text.lines() {
            let e: Entry = serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line}"));
            assert_ne!(e.event, Event::Unknown, "{line}");
            let again = serde_json::to_value(&e).unwrap();
            let before: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(again, before, "written back as it was read");
        }
    }
}
