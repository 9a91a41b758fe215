//! Recovery after a crash or a shutdown in the middle of an apply: the journal names the run that
//! never finished; its completed steps are undone in reverse with the compensations recorded
//! beside them, and containers left renamed aside are put back. Then a normal, level-triggered
//! plan converges from a known state.

use std::collections::BTreeSet;

use super::apply::run_undo;
use super::journal::{Entry, Journal, JournalError};
use crate::providers::runtime::{is_retired, ContainerRuntime};
use crate::providers::{Registry, Undo};

/// Runs that started and neither finished nor were recovered, oldest first.
pub fn unfinished_runs(entries: &[Entry]) -> Vec<String> {
    let mut started: Vec<String> = Vec::new();
    let mut closed: BTreeSet<String> = BTreeSet::new();
    for e in entries {
        match e.event.as_str() {
            "apply-started" => started.push(e.run.clone()),
            "apply-finished" => {
                closed.insert(e.run.clone());
            }
            "recovered" => {
                if let Some(r) = e.data.get("run").and_then(|r| r.as_str()) {
                    closed.insert(r.to_string());
                }
            }
            _ => {}
        }
    }
    started
        .into_iter()
        .filter(|r| !closed.contains(r))
        .collect()
}

/// Undoes what unfinished runs completed; returns one line per action, for the log.
pub async fn recover(
    registry: &Registry,
    journal: &mut Journal,
) -> Result<Vec<String>, JournalError> {
    let entries = journal.read_all();
    let mut report = Vec::new();
    for run in unfinished_runs(&entries) {
        let undone: BTreeSet<Option<usize>> = entries
            .iter()
            .filter(|e| e.run == run && e.event.starts_with("compensation-"))
            .map(|e| e.step)
            .collect();
        let done: Vec<&Entry> = entries
            .iter()
            .filter(|e| e.run == run && e.event == "step-done" && !undone.contains(&e.step))
            .collect();
        let mut left = Vec::new();
        for e in done.iter().rev() {
            let Ok(undo) = serde_json::from_value::<Undo>(e.data.clone()) else {
                continue;
            };
            if undo == Undo::Nothing {
                continue;
            }
            let what = format!(
                "{} {}",
                e.action.clone().unwrap_or_default(),
                e.resource.clone().unwrap_or_default()
            );
            match run_undo(&undo, registry).await {
                Ok(()) => {
                    report.push(format!(
                        "recovery: undid `{what}` of the interrupted run {run}"
                    ));
                    journal.record("compensation-done", |x| {
                        x.step = e.step;
                        x.resource = e.resource.clone();
                        x.action = e.action.clone();
                        x.data = serde_json::json!({"run": run});
                    })?;
                }
                Err(err) => {
                    report.push(format!("recovery: could not undo `{what}`: {err}"));
                    left.push(what);
                }
            }
        }
        journal.record("recovered", |x| {
            x.detail = Some(if left.is_empty() {
                "rolled-back".into()
            } else {
                format!("rollback-failed: {}", left.join("; "))
            });
            x.data = serde_json::json!({"run": run});
        })?;
        report.push(format!(
            "recovery: the interrupted run {run} is rolled back; converging from here"
        ));
    }
    if let Some(rt) = registry.runtime() {
        report.extend(restore_retired(rt).await);
    }
    Ok(report)
}

/// Containers renamed `<name>.old-<ts>` by a replace that never finished: put back when their
/// replacement does not exist, removed when it does.
async fn restore_retired(docker: &dyn ContainerRuntime) -> Vec<String> {
    let mut report = Vec::new();
    let Ok(names) = docker.all_names().await else {
        return report;
    };
    for name in names.iter().filter(|n| is_retired(n)) {
        let original = name
            .rsplit_once(".old-")
            .map(|(o, _)| o.to_string())
            .unwrap_or_default();
        if names.contains(&original) {
            let _ = docker.remove(name).await;
            report.push(format!("recovery: removed {name}, replaced by {original}"));
        } else if docker.rename(name, &original).await.is_ok()
            && docker.start(&original).await.is_ok()
        {
            report.push(format!("recovery: put {original} back"));
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(run: &str, event: &str) -> Entry {
        Entry {
            ts: 0,
            run: run.into(),
            event: event.into(),
            step: None,
            resource: None,
            action: None,
            detail: None,
            error: None,
            data: serde_json::Value::Null,
        }
    }

    #[test]
    fn only_runs_without_an_end_are_unfinished() {
        let mut recovered = entry("c", "recovered");
        recovered.data = serde_json::json!({"run": "b"});
        let entries = vec![
            entry("a", "apply-started"),
            entry("a", "apply-finished"),
            entry("b", "apply-started"),
            entry("c", "apply-started"),
            recovered,
        ];
        assert_eq!(unfinished_runs(&entries), vec!["c".to_string()]);
    }
}
