//! Recovery after a crash or a shutdown in the middle of an apply: the journal names the run that
//! never finished; its completed steps are undone in reverse with the compensations recorded
//! beside them, and containers left renamed aside are put back. Then a normal, level-triggered
//! plan converges from a known state.

use std::collections::BTreeSet;

use super::apply::run_undo;
use super::event::{Entry, Event, RunRef, StepRef};
use super::journal::{Journal, JournalError};
use crate::providers::runtime::{is_retired, ContainerRuntime};
use crate::providers::{Registry, Undo};

/// Runs that started and neither finished nor were recovered, oldest first.
pub fn unfinished_runs(entries: &[Entry]) -> Vec<String> {
    let mut started: Vec<String> = Vec::new();
    let mut closed: BTreeSet<String> = BTreeSet::new();
    for e in entries {
        match &e.event {
            Event::ApplyStarted { .. } => started.push(e.run.clone()),
            Event::ApplyFinished { .. } => {
                closed.insert(e.run.clone());
            }
            Event::Recovered { data, .. } => {
                closed.insert(data.run.clone());
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
            .filter(|e| e.run == run && e.name().starts_with("compensation-"))
            .map(|e| e.step())
            .collect();
        let done: Vec<(&StepRef, &Undo)> = entries
            .iter()
            .filter(|e| e.run == run && !undone.contains(&e.step()))
            .filter_map(|e| match &e.event {
                Event::StepDone { at, data } => Some((at, data)),
                _ => None,
            })
            .collect();
        let mut left = Vec::new();
        for (at, undo) in done.into_iter().rev() {
            if *undo == Undo::Nothing {
                continue;
            }
            let what = format!(
                "{} {}",
                at.action.clone().unwrap_or_default(),
                at.resource.clone().unwrap_or_default()
            );
            match run_undo(undo, registry).await {
                Ok(()) => {
                    report.push(format!(
                        "recovery: undid `{what}` of the interrupted run {run}"
                    ));
                    journal.record(Event::CompensationDone {
                        at: StepRef {
                            detail: None,
                            ..at.clone()
                        },
                        data: Some(RunRef { run: run.clone() }),
                    })?;
                }
                Err(err) => {
                    report.push(format!("recovery: could not undo `{what}`: {err}"));
                    left.push(what);
                }
            }
        }
        journal.record(Event::Recovered {
            detail: if left.is_empty() {
                "rolled-back".into()
            } else {
                format!("rollback-failed: {}", left.join("; "))
            },
            data: RunRef { run: run.clone() },
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

    fn entry(run: &str, event: Event) -> Entry {
        Entry {
            ts: 0,
            run: run.into(),
            event,
        }
    }

    fn started() -> Event {
        Event::ApplyStarted {
            data: crate::engine::event::ApplyStarted {
                revision: None,
                fingerprint: String::new(),
                steps: 1,
            },
        }
    }

    #[test]
    fn only_runs_without_an_end_are_unfinished() {
        let entries = vec![
            entry("a", started()),
            entry(
                "a",
                Event::ApplyFinished {
                    detail: "applied".into(),
                },
            ),
            entry("b", started()),
            entry("c", started()),
            entry(
                "c",
                Event::Recovered {
                    detail: "rolled-back".into(),
                    data: RunRef { run: "b".into() },
                },
            ),
        ];
        assert_eq!(unfinished_runs(&entries), vec!["c".to_string()]);
    }
}
