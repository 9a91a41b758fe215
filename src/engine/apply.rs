//! Apply: runs a plan's steps in order against the live systems, records each in the journal
//! before and after it runs, and when a step fails runs the compensations of the completed
//! steps in reverse. The outcome is `applied`, `rolled-back` or `rollback-failed`.

use std::collections::BTreeMap;
use std::time::Instant;

use futures_util::StreamExt;

use crate::diff::{Change, ServiceChange};
use crate::model::live::Color;
use crate::model::{Kind, ResourceId};
use crate::plan::{Plan, Step, StepAction};
use crate::providers::{Context, ProviderError, Registry, Undo};

use super::deferred::cancel_drains;
use super::event::{ApplyStarted, DeferredData, Event, StepRef};
pub use super::journal::{self, Journal, JournalError};
use super::memory;
use super::verify::{self, new_colors, verify};

/// Why a step failed: what the journal records and the outcome reports.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// The new color failed while it was watched after the switch.
    #[error("{0}")]
    Verify(String),
    #[error("{0}; traffic was switched back")]
    SwitchedBack(String),
    #[error("{verify}; switching back failed: {undo}")]
    SwitchBackFailed { verify: String, undo: String },
    #[error("no provider is connected that can {what}\n  = hint: check the Project's providers")]
    NoProvider { what: String },
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// The plan's changes by resource.
pub(super) type Changes<'a> = BTreeMap<&'a ResourceId, &'a Change>;

/// One apply: the providers, what every step needs, and the shutdown flag.
pub struct Run<'a> {
    pub registry: &'a Registry,
    pub ctx: Context<'a>,
    /// Set by a shutdown signal: the running step finishes, no other starts.
    pub stop: Option<&'a std::sync::atomic::AtomicBool>,
    /// What the running step's time went to, when it is more than one thing (its line says).
    pub note: std::sync::Mutex<Option<String>>,
}

impl Run<'_> {
    fn set_note(&self, note: String) {
        *self.note.lock().unwrap_or_else(|e| e.into_inner()) = Some(note);
    }

    /// `: <note>` for the step's progress line, or nothing.
    fn take_note(&self) -> String {
        let note = self.note.lock().unwrap_or_else(|e| e.into_inner()).take();
        note.map(|n| format!(": {n}")).unwrap_or_default()
    }
}

impl<'a> std::ops::Deref for Run<'a> {
    type Target = Context<'a>;
    fn deref(&self) -> &Context<'a> {
        &self.ctx
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `saved`: the safety copies taken before data was dropped, and how to restore each.
    Applied { saved: Vec<String> },
    /// Stopped between steps by a shutdown; the next start recovers from the journal.
    Interrupted { after: usize },
    RolledBack {
        step: String,
        error: String,
        /// Completed steps that are kept by design (a database or bucket is never undone).
        kept: Vec<String>,
    },
    RollbackFailed {
        step: String,
        error: String,
        left: Vec<String>,
    },
}

impl Outcome {
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Applied { .. } => "applied",
            Outcome::Interrupted { .. } => "interrupted",
            Outcome::RolledBack { .. } => "rolled-back",
            Outcome::RollbackFailed { .. } => "rollback-failed",
        }
    }
}

/// Runs `plan`; `progress` receives one line per event, for the terminal.
pub async fn execute(
    plan: &Plan,
    ctx: &Run<'_>,
    journal: &mut Journal,
    progress: &mut dyn FnMut(&str),
) -> Result<Outcome, JournalError> {
    let changes: Changes<'_> = plan.changes.iter().map(|c| (&c.id, c)).collect();
    journal.check_headroom()?;
    journal.record(Event::ApplyStarted {
        data: ApplyStarted {
            revision: ctx.revision.map(str::to_string),
            fingerprint: plan.fingerprint.clone(),
            steps: plan.steps.len(),
        },
    })?;
    let changes_ref = &changes;
    let total = plan.steps.len();
    let mut done: Vec<(&Step, Undo)> = Vec::new();
    let mut retired_on_success: Vec<String> = Vec::new();
    let mut saved: Vec<String> = Vec::new();
    // Independent service creations start together (like compose), at most 4 at a time; on
    // Swarm, which does the work, creations and updates of up to 16 services wait together.
    let swarm = ctx.registry.swarm().is_some();
    let mut ahead: BTreeMap<usize, (Result<Undo, StepError>, f64)> = BTreeMap::new();
    let mut completed: std::collections::BTreeSet<usize> = std::collections::BTreeSet::new();
    for (pos, step) in plan.steps.iter().enumerate() {
        if ctx
            .stop
            .is_some_and(|s| s.load(std::sync::atomic::Ordering::SeqCst))
            && !ahead.contains_key(&step.id)
        {
            progress(&format!(
                "  stopping before step {}: shutdown requested",
                step.id
            ));
            journal.record(Event::ApplyInterrupted { step: step.id })?;
            return Ok(Outcome::Interrupted { after: step.id - 1 });
        }
        if !ahead.contains_key(&step.id) && parallel(step, &changes, swarm) {
            let batch: Vec<&Step> = plan.steps[pos..]
                .iter()
                .take_while(|s| parallel(s, &changes, swarm))
                .filter(|s| s.waits_for.iter().all(|w| completed.contains(w)))
                .collect();
            if batch.len() > 1 {
                for s in &batch {
                    journal.record(Event::StepStarted(step_ref(s)))?;
                }
                let results: Vec<(usize, Result<Undo, StepError>, f64)> =
                    futures_util::stream::iter(batch)
                        .map(|s| async move {
                            let t = Instant::now();
                            (
                                s.id,
                                independent_step(s, changes_ref, ctx).await,
                                t.elapsed().as_secs_f64(),
                            )
                        })
                        .buffer_unordered(if swarm { 16 } else { 4 })
                        .collect()
                        .await;
                for (id, r, secs) in results {
                    ahead.insert(id, (r, secs));
                }
            }
        }
        let (result, secs) = match ahead.remove(&step.id) {
            Some(precomputed) => precomputed,
            None => {
                journal.record(Event::StepStarted(step_ref(step)))?;
                let started = Instant::now();
                let change = changes.get(&step.resource).copied();
                let result = run_step(step, change, &changes, ctx, journal).await;
                (result, started.elapsed().as_secs_f64())
            }
        };
        if result.is_ok() {
            completed.insert(step.id);
        }
        match result {
            Ok(undo) => {
                let note = ctx.take_note();
                progress(&step_line(step, total, &format!("ok ({secs:.1}s{note})")));
                memory::record_saved(step, ctx, journal, progress, &mut saved)?;
                journal.record(Event::StepDone {
                    at: step_ref(step),
                    data: undo.clone(),
                })?;
                match &undo {
                    Undo::RestoreContainers { retired, .. } | Undo::RestartRetired { retired } => {
                        retired_on_success.extend(retired.iter().map(|(old, _)| old.clone()))
                    }
                    _ => {}
                }
                done.push((step, undo));
            }
            Err(failure) => {
                let error = failure.to_string();
                ctx.take_note();
                progress(&format!(
                    "{}\n      {error}",
                    step_line(step, total, &format!("FAILED ({secs:.1}s)"))
                ));
                memory::record_saved(step, ctx, journal, progress, &mut saved)?;
                journal.record(Event::StepFailed {
                    at: step_ref(step),
                    error: error.clone(),
                })?;
                // Creations that ran alongside and succeeded are undone with the rest.
                for (id, (r, _)) in std::mem::take(&mut ahead) {
                    if let (Ok(undo), Some(s)) = (r, plan.steps.iter().find(|s| s.id == id)) {
                        journal.record(Event::StepDone {
                            at: step_ref(s),
                            data: undo.clone(),
                        })?;
                        done.push((s, undo));
                    }
                }
                memory::record_failed_specs(step, &failure, &changes, ctx, journal)?;
                let left = compensate(&done, ctx, journal, progress).await?;
                let what = format!("{} {}", step.action.as_str(), step.resource);
                let kept: Vec<String> = done
                    .iter()
                    .filter(|(s, u)| {
                        *u == Undo::Nothing
                            && !s.deferred
                            && s.compensation.is_none()
                            && s.action != StepAction::Drain
                    })
                    .map(|(s, _)| format!("{} {}", s.action.as_str(), s.resource))
                    .chain(saved.iter().map(|l| format!("safety copy: {l}")))
                    .collect();
                if left.is_empty() {
                    discard_kept(&done);
                }
                let outcome = if left.is_empty() {
                    Outcome::RolledBack {
                        step: what,
                        error,
                        kept,
                    }
                } else {
                    Outcome::RollbackFailed {
                        step: what,
                        error,
                        left,
                    }
                };
                journal.record(Event::ApplyFinished {
                    detail: outcome.name().into(),
                })?;
                return Ok(outcome);
            }
        }
    }
    if let Some(rt) = ctx.registry.runtime() {
        for old in &retired_on_success {
            let _ = rt.remove(old).await;
        }
    }
    memory::record_deployed(plan, ctx, journal)?;
    journal.record(Event::ApplyFinished {
        detail: "applied".into(),
    })?;
    discard_kept(&done);
    Ok(Outcome::Applied { saved })
}

/// Removes the copies completed steps kept for their undo: the run is over.
fn discard_kept(done: &[(&Step, Undo)]) {
    for (_, undo) in done {
        undo.discard();
    }
}

/// A plain service creation (or, on Swarm, a service update): needs nothing from the journal,
/// can run beside others.
fn parallel(step: &Step, changes: &Changes<'_>, swarm: bool) -> bool {
    let sc = changes.get(&step.resource).and_then(|c| c.service.as_ref());
    step.resource.kind == Kind::Service
        && match step.action {
            StepAction::Create => matches!(sc, Some(ServiceChange::Start { color: None, .. })),
            StepAction::Replace => swarm && matches!(sc, Some(ServiceChange::Replace { .. })),
            _ => false,
        }
}

async fn independent_step(
    step: &Step,
    changes: &Changes<'_>,
    ctx: &Run<'_>,
) -> Result<Undo, StepError> {
    let change = changes.get(&step.resource).copied();
    provider_step(step, change, ctx).await
}

/// `  [3/9] create service/api: start 1 container(s) ... ok (0.4s)`: one step's progress line.
fn step_line(step: &Step, total: usize, status: &str) -> String {
    format!(
        "  [{}/{total}] {} {}: {} ... {status}",
        step.id,
        step.action.as_str(),
        step.resource,
        step.detail
    )
}

/// How the journal names a step.
fn step_ref(step: &Step) -> StepRef {
    StepRef {
        step: Some(step.id),
        resource: Some(step.resource.to_string()),
        action: Some(step.action.as_str().into()),
        detail: Some(step.detail.clone()),
    }
}

/// Undoes completed steps in reverse; returns what could not be undone.
async fn compensate(
    done: &[(&Step, Undo)],
    ctx: &Run<'_>,
    journal: &mut Journal,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<String>, JournalError> {
    let mut left = Vec::new();
    for (step, undo) in done.iter().rev() {
        if *undo == Undo::Nothing {
            continue;
        }
        journal.record(Event::CompensationStarted(step_ref(step)))?;
        let undo = &memory::with_safety_copy(undo, step, ctx, journal, progress).await?;
        match run_undo(undo, ctx.registry).await {
            Ok(()) => {
                progress(&format!(
                    "  undo {} {} ... ok",
                    step.action.as_str(),
                    step.resource
                ));
                journal.record(Event::CompensationDone {
                    at: step_ref(step),
                    data: None,
                })?;
            }
            Err(error) => {
                let error = error.to_string();
                progress(&format!(
                    "  undo {} {} ... FAILED: {error}",
                    step.action.as_str(),
                    step.resource
                ));
                journal.record(Event::CompensationFailed {
                    at: step_ref(step),
                    error: error.clone(),
                })?;
                left.push(format!(
                    "{} {}: {error}",
                    step.action.as_str(),
                    step.resource
                ));
            }
        }
    }
    Ok(left)
}

/// Runs an undo with the provider that owns it.
pub async fn run_undo(undo: &Undo, registry: &Registry) -> Result<(), StepError> {
    let Some(kind) = undo.kind() else {
        return Ok(());
    };
    match registry.for_kind(kind) {
        Some(p) => Ok(p.undo(undo).await?),
        None => Err(StepError::NoProvider {
            what: format!("undo {}", kind.id_prefix()),
        }),
    }
}

/// A step run by the provider that owns its resource.
async fn provider_step(
    step: &Step,
    change: Option<&Change>,
    ctx: &Run<'_>,
) -> Result<Undo, StepError> {
    let Some(provider) = ctx.registry.for_id(&step.resource) else {
        return Err(ProviderError::Unsupported {
            action: step.action.as_str().into(),
            resource: step.resource.to_string(),
            hint: String::new(),
        }
        .into());
    };
    Ok(provider.apply(step, change, &ctx.ctx).await?)
}

/// Writes a router's file, then watches the colors it switched to; switches back on failure.
async fn switch_and_verify(
    step: &Step,
    change: Option<&Change>,
    changes: &Changes<'_>,
    ctx: &Run<'_>,
) -> Result<Undo, StepError> {
    let started = Instant::now();
    let undo = provider_step(step, change, ctx).await?;
    let switched = started.elapsed();
    let targets = new_colors(
        memory::switched_services(&step.resource, ctx.desired),
        changes,
    );
    let started = Instant::now();
    let verified = verify(ctx, &targets).await;
    ctx.set_note(verify::spent(
        ctx,
        &targets,
        changes,
        switched,
        started.elapsed(),
    ));
    if let Err(verify) = verified {
        if let Err(undo) = run_undo(&undo, ctx.registry).await {
            return Err(StepError::SwitchBackFailed {
                verify,
                undo: undo.to_string(),
            });
        }
        return Err(StepError::SwitchedBack(verify));
    }
    Ok(undo)
}

/// Journals what undoes `step` before it runs, when its provider can say (a router's file).
async fn prepare(
    step: &Step,
    change: Option<&Change>,
    ctx: &Run<'_>,
    journal: &mut Journal,
) -> Result<Option<Undo>, StepError> {
    let Some(provider) = ctx.registry.for_id(&step.resource) else {
        return Ok(None);
    };
    let prepared = provider.prepare(step, change, &ctx.ctx).await?;
    if let Some(undo) = &prepared {
        if let Err(e) = journal.record(Event::StepPrepared {
            at: step_ref(step),
            data: undo.clone(),
        }) {
            undo.discard();
            return Err(StepError::Journal(e));
        }
    }
    Ok(prepared)
}

/// One step. The engine keeps what needs the journal or several services: cancelling drains
/// before a color starts, recording deferred drains, verifying new colors after a switch.
async fn run_step(
    step: &Step,
    change: Option<&Change>,
    changes: &Changes<'_>,
    ctx: &Run<'_>,
    journal: &mut Journal,
) -> Result<Undo, StepError> {
    let sc = change.and_then(|c| c.service.as_ref());
    match (step.resource.kind, step.action, sc) {
        (Kind::Service, StepAction::StartColor, Some(ServiceChange::Start { color, .. })) => {
            let color = color.unwrap_or(Color::Blue);
            cancel_drains(journal, &step.resource, color)?;
            provider_step(step, change, ctx).await
        }
        (Kind::Service, StepAction::StartColor, Some(ServiceChange::Deploy { to, .. })) => {
            cancel_drains(journal, &step.resource, *to)?;
            provider_step(step, change, ctx).await
        }
        (Kind::Service, StepAction::Switch, _) => {
            let targets = new_colors(vec![step.resource.clone()], changes);
            let started = Instant::now();
            let verified = verify(ctx, &targets).await;
            let took = started.elapsed();
            let zero = std::time::Duration::ZERO;
            ctx.set_note(verify::spent(ctx, &targets, changes, zero, took));
            verified.map_err(StepError::Verify)?;
            Ok(Undo::Nothing)
        }
        (Kind::Service, StepAction::Drain, Some(ServiceChange::Deploy { from, drain, .. }))
            if step.deferred =>
        {
            let due = journal::now() + drain.as_millis().div_ceil(1000);
            ctx.set_note(format!(
                "deferred: {from} keeps serving what it has in flight until {} ({drain} drain); the next apply or the running agent stops it then",
                crate::plan::text::utc(due)
            ));
            let run = journal.run.clone();
            journal.record(Event::Deferred {
                at: step_ref(step),
                data: DeferredData {
                    due,
                    color: Some(*from),
                    run,
                },
            })?;
            Ok(Undo::Nothing)
        }
        (Kind::Router | Kind::ConfigFile, StepAction::Switch, _) => {
            let prepared = prepare(step, change, ctx, journal).await?;
            let result = switch_and_verify(step, change, changes, ctx).await;
            // Kept until the step ends: a crash while verifying still finds it.
            if let Some(p) = &prepared {
                p.discard();
            }
            result
        }
        _ => provider_step(step, change, ctx).await,
    }
}
