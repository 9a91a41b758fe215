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

/// How long a reloaded router gets before recovery undoes anything it may still send traffic to.
const RELOAD_SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

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

/// Whether run `run` completed every step of its plan (none failed): such a run is complete,
/// whatever happened to its last record (a full disk, a crash right after the last step).
pub fn completed_every_step(entries: &[Entry], run: &str) -> bool {
    let mut planned = None;
    let mut done = BTreeSet::new();
    for e in entries.iter().filter(|e| e.run == run) {
        match &e.event {
            Event::ApplyStarted { data } => planned = Some(data.steps),
            Event::StepDone { at, .. } => {
                done.insert(at.step);
            }
            Event::StepFailed { .. } | Event::ApplyInterrupted { .. } => return false,
            _ => {}
        }
    }
    planned.is_some_and(|n| done.len() >= n)
}

/// What recovery will do before the next apply plans anew, one line per unfinished run (for
/// `plan`, so plan and apply agree).
pub fn pending_recovery(entries: &[Entry]) -> Vec<String> {
    unfinished_runs(entries)
        .into_iter()
        .map(|run| {
            if completed_every_step(entries, &run) {
                return format!(
                    "run {run} completed every step but its last record is missing: it is kept as applied"
                );
            }
            let undo: Vec<String> = completed_undos(entries, &run)
                .into_iter()
                .chain(in_flight_prepared(entries, &run))
                .rev()
                .map(|(at, _)| describe(at))
                .collect();
            if undo.is_empty() {
                format!("run {run} was interrupted before any step completed: nothing to undo")
            } else {
                format!("run {run} was interrupted: undo {}", undo.join(", "))
            }
        })
        .collect()
}

/// Steps of `run` that journaled their undo before touching anything and then neither completed
/// nor failed: the process died while they ran.
fn in_flight_prepared<'a>(entries: &'a [Entry], run: &str) -> Vec<(&'a StepRef, &'a Undo)> {
    let ended: BTreeSet<Option<usize>> = entries
        .iter()
        .filter(|e| e.run == run)
        .filter(|e| matches!(e.event, Event::StepDone { .. } | Event::StepFailed { .. }))
        .map(|e| e.step())
        .collect();
    entries
        .iter()
        .filter(|e| e.run == run && !ended.contains(&e.step()))
        .filter_map(|e| match &e.event {
            Event::StepPrepared { at, data } => Some((at, data)),
            _ => None,
        })
        .collect()
}

/// The completed steps of `run` that have an undo and were not compensated yet, in order.
fn completed_undos<'a>(entries: &'a [Entry], run: &str) -> Vec<(&'a StepRef, &'a Undo)> {
    let undone: BTreeSet<Option<usize>> = entries
        .iter()
        .filter(|e| e.run == run && e.name().starts_with("compensation-"))
        .map(|e| e.step())
        .collect();
    entries
        .iter()
        .filter(|e| e.run == run && !undone.contains(&e.step()))
        .filter_map(|e| match &e.event {
            Event::StepDone { at, data } if *data != Undo::Nothing => Some((at, data)),
            _ => None,
        })
        .collect()
}

fn describe(at: &StepRef) -> String {
    format!(
        "`{} {}`",
        at.action.clone().unwrap_or_default(),
        at.resource.clone().unwrap_or_default()
    )
}

/// Undoes what unfinished runs completed; returns one line per action, for the log.
pub async fn recover(
    registry: &Registry,
    journal: &mut Journal,
) -> Result<Vec<String>, JournalError> {
    let entries = journal.read_all();
    let mut report = Vec::new();
    for run in unfinished_runs(&entries) {
        if completed_every_step(&entries, &run) {
            for (_, undo) in completed_undos(&entries, &run) {
                undo.discard();
            }
            journal.record(Event::Recovered {
                detail: "complete".into(),
                data: RunRef { run: run.clone() },
            })?;
            report.push(format!(
                "recovery: the run {run} completed every step (its last record was lost); kept as applied"
            ));
            continue;
        }
        // The step that was running goes first (a router back on the color that still runs),
        // then the completed ones in reverse.
        let mut done = completed_undos(&entries, &run);
        done.extend(in_flight_prepared(&entries, &run));
        let mut left = Vec::new();
        for (at, undo) in done.into_iter().rev() {
            let what = format!(
                "{} {}",
                at.action.clone().unwrap_or_default(),
                at.resource.clone().unwrap_or_default()
            );
            if !left.is_empty() {
                // Undos depend on the ones before them (a color is removed only once no router
                // points at it): after one failed, the rest stay for the plan to converge.
                report.push(format!(
                    "recovery: left `{what}` as it is: an earlier undo failed"
                ));
                left.push(what);
                continue;
            }
            match run_undo(undo, registry).await {
                Ok(()) => {
                    if matches!(
                        undo,
                        Undo::RestoreFile {
                            reload: Some(_),
                            ..
                        }
                    ) {
                        // A reload is graceful: new workers take new connections a moment
                        // later. Nothing is removed from under the old ones before that.
                        tokio::time::sleep(RELOAD_SETTLE).await;
                    }
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
        if left.is_empty() {
            for e in entries.iter().filter(|e| e.run == run) {
                if let Event::StepDone { data, .. } | Event::StepPrepared { data, .. } = &e.event {
                    data.discard();
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
    if unfinished_runs(&journal.read_all()).is_empty() {
        let (state_dir, project) = journal.owner();
        crate::providers::files::stash::sweep(&state_dir, &project);
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
