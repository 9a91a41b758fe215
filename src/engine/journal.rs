//! The durable journal: one JSON line per event, appended and fsynced before the next action, so
//! a crash leaves a record of what ran, what undoes it, and which deferred steps are still due.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::model::live::PendingStep;

#[derive(Debug, Error)]
#[error("journal {path}: {source}")]
pub struct JournalError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

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
        std::fs::create_dir_all(state_dir).map_err(io)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io)?;
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Unix seconds.
    pub ts: u64,
    /// The apply run this belongs to.
    pub run: String,
    /// `apply-started`, `step-started`, `step-done`, `step-failed`, `compensation-started`,
    /// `compensation-done`, `compensation-failed`, `deferred`, `deferred-done`, `apply-finished`.
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What undoes the step (`step-done`), or when a deferred step is due (`deferred`).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub data: serde_json::Value,
}

pub struct Journal {
    path: PathBuf,
    file: std::fs::File,
    pub run: String,
}

pub use crate::clock::now;

impl Journal {
    /// Opens `<state_dir>/journal/<project>.jsonl` for appending.
    pub fn open(state_dir: &Path, project: &str) -> Result<Journal, JournalError> {
        let path = Self::path_for(state_dir, project);
        let err = |source| JournalError {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(path.parent().expect("journal has a parent")).map_err(err)?;
        if std::fs::metadata(&path).is_ok_and(|m| m.len() > COMPACT_AT) {
            compact(&path).map_err(err)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(err)?;
        let mut id = [0u8; 4];
        let _ = getrandom::fill(&mut id);
        let run = format!("{}-{}", now(), crate::model::attributes::hex(&id));
        Ok(Journal { path, file, run })
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
    pub fn record(
        &mut self,
        event: &str,
        fill: impl FnOnce(&mut Entry),
    ) -> Result<(), JournalError> {
        let mut e = Entry {
            ts: now(),
            run: self.run.clone(),
            event: event.to_string(),
            step: None,
            resource: None,
            action: None,
            detail: None,
            error: None,
            data: serde_json::Value::Null,
        };
        fill(&mut e);
        let mut line = serde_json::to_string(&e).expect("entry serializes");
        line.push('\n');
        let err = |source| JournalError {
            path: self.path.clone(),
            source,
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

    /// The service specs recorded by successful deploys of `resource`, oldest first.
    pub fn deployed(state_dir: &Path, project: &str, resource: &str) -> Vec<Entry> {
        Self::entries(state_dir, project)
            .into_iter()
            .filter(|e| e.event == "deployed" && e.resource.as_deref() == Some(resource))
            .collect()
    }

    /// Deferred steps recorded and not yet done or cancelled.
    pub fn pending(state_dir: &Path, project: &str) -> Vec<PendingStep> {
        pending_of(&Self::entries(state_dir, project))
    }
}

/// Spec hashes per service whose deploy failed and was rolled back (`spec-failed` entries).
pub fn failed_of(entries: &[Entry]) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in entries.iter().filter(|e| e.event == "spec-failed") {
        if let (Some(r), Some(h)) = (&e.resource, e.data.get("hash").and_then(|h| h.as_str())) {
            out.entry(r.clone()).or_default().insert(h.to_string());
        }
    }
    out
}

/// The autoscaler's last choice per service name (`scaled` entries).
pub fn autoscaled_of(entries: &[Entry]) -> BTreeMap<String, crate::scale::Autoscaled> {
    let mut out = BTreeMap::new();
    for e in entries.iter().filter(|e| e.event == "scaled") {
        let (Some(r), Some(to)) = (&e.resource, e.data.get("to").and_then(|v| v.as_u64())) else {
            continue;
        };
        let name = r.strip_prefix("service/").unwrap_or(r).to_string();
        out.insert(
            name,
            crate::scale::Autoscaled {
                replicas: to as u32,
                reason: e.detail.clone().unwrap_or_default(),
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
        .filter(|e| e.event == "usage")
        .filter_map(|e| {
            Some(crate::budget::UsageRecord {
                at: e.ts,
                resource: e.resource.clone()?,
                usage: serde_json::from_value(e.data.clone()).ok()?,
            })
        })
        .collect()
}

/// The alert thresholds of `budget` already notified in `period` (`budget-alert` entries).
pub fn budget_alerts_of(entries: &[Entry], budget: &str, period: &str) -> BTreeSet<String> {
    entries
        .iter()
        .filter(|e| e.event == "budget-alert" && e.resource.as_deref() == Some(budget))
        .filter(|e| e.data.get("period").and_then(|p| p.as_str()) == Some(period))
        .filter_map(|e| {
            e.data
                .get("threshold")
                .and_then(|t| t.as_str())
                .map(str::to_string)
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
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(statuses)?)?;
    std::fs::rename(tmp, path)
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
    std::fs::write(&tmp, out)?;
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
        .map(|e| (e.run, e.step))
        .collect();
    let mut last_of: std::collections::BTreeMap<(String, String), Vec<usize>> = Default::default();
    for (i, e) in entries.iter().enumerate() {
        if matches!(
            e.event.as_str(),
            "deployed" | "backup-done" | "scaled" | "usage"
        ) {
            last_of
                .entry((e.event.clone(), e.resource.clone().unwrap_or_default()))
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
            e.event.as_str(),
            "usage" | "budget-alert" | "budget-limit" | "scaled"
        ) && e.ts + PERIOD_KEEP >= newest
    };
    entries
        .iter()
        .enumerate()
        .filter(|(i, e)| {
            *i >= start_recent
                || unfinished.contains(&e.run)
                || e.event == "spec-failed"
                || recent_deploys.contains(i)
                || budget_history(e)
                || (e.event == "deferred" && open.contains(&(e.run.clone(), e.step)))
        })
        .map(|(_, e)| e)
        .collect()
}

/// Deferred steps still open, as the plan shows them.
pub fn pending_of(entries: &[Entry]) -> Vec<PendingStep> {
    open_deferred(entries)
        .into_iter()
        .map(|e| PendingStep {
            due: e.data.get("due").and_then(|d| d.as_u64()).unwrap_or(e.ts),
            resource: e.resource.unwrap_or_default(),
            action: e.action.unwrap_or_default(),
            detail: e.detail.unwrap_or_default(),
        })
        .collect()
}

/// The deferred entries still open, with what identifies them.
pub fn open_deferred(entries: &[Entry]) -> Vec<Entry> {
    let mut open: Vec<Entry> = Vec::new();
    for e in entries {
        match e.event.as_str() {
            "deferred" => open.push(e.clone()),
            "deferred-done" => {
                let run = e.data.get("run").and_then(|r| r.as_str()).unwrap_or("");
                let step = e
                    .data
                    .get("step")
                    .and_then(|s| s.as_u64())
                    .map(|s| s as usize);
                open.retain(|d| !(d.run == run && d.step == step));
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
        let e = |run: &str, event: &str, resource: &str| Entry {
            ts: 0,
            run: run.into(),
            event: event.into(),
            step: Some(1),
            resource: Some(resource.into()),
            action: Some("drain".into()),
            detail: None,
            error: None,
            data: serde_json::Value::Null,
        };
        let mut entries = vec![
            e("old-deferred", "deferred", "service/api"),
            e("crashed", "apply-started", ""),
            e("crashed", "step-done", "service/api"),
            e("x", "spec-failed", "service/api"),
            e("d1", "deployed", "service/api"),
        ];
        for i in 0..2000 {
            entries.push(e(&format!("r{i}"), "apply-started", ""));
            entries.push(e(&format!("r{i}"), "apply-finished", ""));
        }
        let kept = compacted(&entries);
        assert_eq!(kept.len(), 5 + 500);
        assert_eq!(kept[0].run, "old-deferred", "an open deferred drain stays");
        assert!(
            kept.iter()
                .any(|k| k.run == "crashed" && k.event == "step-done"),
            "an unfinished run stays"
        );
        assert!(kept.iter().any(|k| k.event == "spec-failed"));
        assert!(kept.iter().any(|k| k.event == "deployed"));
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
        j.record("deferred", |e| {
            e.step = Some(4);
            e.resource = Some("service/api".into());
            e.action = Some("drain".into());
            e.data = serde_json::json!({"due": 100});
        })
        .unwrap();
        assert_eq!(Journal::pending(dir.path(), "p").len(), 1);
        let run = j.run.clone();
        j.record("deferred-done", |e| {
            e.data = serde_json::json!({"run": run, "step": 4})
        })
        .unwrap();
        assert!(Journal::pending(dir.path(), "p").is_empty());
    }
}
