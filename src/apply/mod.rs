//! Apply: runs a plan's steps in order against the live systems, records each in the journal
//! before and after it runs, and when a step fails runs the compensations of the completed
//! steps in reverse. The outcome is `applied`, `rolled-back` or `rollback-failed`.

pub mod database;
pub mod files;
pub mod journal;
pub mod recover;
pub mod service;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::diff::{Change, ServiceChange};
use crate::live::docker::Docker;
use crate::live::postgres::Postgres;
use crate::live::{Color, LiveState};
use crate::model::{Action, DesiredState, Kind, Resource, ResourceId};
use crate::plan::{Plan, Step, StepAction};
use crate::secrets::Secrets;
use journal::{Journal, JournalError};

/// Everything a step needs.
pub struct Context<'a> {
    pub desired: &'a DesiredState,
    pub docker: &'a Docker,
    pub secrets: &'a Secrets,
    pub live: &'a LiveState,
    pub revision: Option<&'a str>,
    /// The desired-state directory (build contexts are relative to it).
    pub root: &'a Path,
    /// Set by a shutdown signal: the running step finishes, no other starts.
    pub stop: Option<&'a std::sync::atomic::AtomicBool>,
    /// The PostgreSQL provider, when the Project declares one.
    pub postgres: Option<&'a Postgres>,
    /// The S3 provider, when the Project declares one.
    pub s3: Option<&'a crate::live::s3::S3>,
    /// Where dumps go when no Backup destination is on local disk.
    pub state_dir: &'a Path,
}

/// What undoes a completed step; recorded in the journal with the step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "undo", rename_all = "kebab-case")]
pub enum Undo {
    Nothing,
    RemoveContainers {
        names: Vec<String>,
    },
    RestoreContainers {
        started: Vec<String>,
        retired: Vec<(String, String)>,
    },
    RestartRetired {
        retired: Vec<(String, String)>,
    },
    RemoveNetwork,
    MigrateDown {
        database: String,
        files: Vec<database::DownFile>,
        /// In prod: where a `pg_dump` goes before the down files run.
        dump_to: Option<String>,
    },
    RestoreFile {
        path: String,
        previous: Option<String>,
        reload: Option<Action>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// Stopped between steps by a shutdown; the next start recovers from the journal.
    Interrupted {
        after: usize,
    },
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
            Outcome::Applied => "applied",
            Outcome::Interrupted { .. } => "interrupted",
            Outcome::RolledBack { .. } => "rolled-back",
            Outcome::RollbackFailed { .. } => "rollback-failed",
        }
    }
}

/// Runs `plan`; `progress` receives one line per event, for the terminal.
pub async fn execute(
    plan: &Plan,
    ctx: &Context<'_>,
    journal: &mut Journal,
    progress: &mut dyn FnMut(&str),
) -> Result<Outcome, JournalError> {
    let changes: BTreeMap<&str, &Change> =
        plan.changes.iter().map(|c| (c.id.as_str(), c)).collect();
    journal.record("apply-started", |e| {
        e.data = serde_json::json!({"revision": ctx.revision, "fingerprint": plan.fingerprint, "steps": plan.steps.len()});
    })?;
    let total = plan.steps.len();
    let mut done: Vec<(&Step, Undo)> = Vec::new();
    let mut retired_on_success: Vec<String> = Vec::new();
    // Independent service creations start together (like compose), at most 4 at a time.
    let mut ahead: BTreeMap<usize, (Result<Undo, String>, f64)> = BTreeMap::new();
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
            journal.record("apply-interrupted", |e| e.step = Some(step.id))?;
            return Ok(Outcome::Interrupted { after: step.id - 1 });
        }
        if !ahead.contains_key(&step.id) && parallel(step, &changes) {
            let batch: Vec<&Step> = plan.steps[pos..]
                .iter()
                .take_while(|s| parallel(s, &changes))
                .filter(|s| s.waits_for.iter().all(|w| completed.contains(w)))
                .collect();
            if batch.len() > 1 {
                for s in &batch {
                    journal.record("step-started", |e| fill_step(e, s))?;
                }
                let results: Vec<(usize, Result<Undo, String>, f64)> =
                    futures_util::stream::iter(batch)
                        .map(|s| async move {
                            let t = Instant::now();
                            (
                                s.id,
                                create_service(s, ctx).await,
                                t.elapsed().as_secs_f64(),
                            )
                        })
                        .buffer_unordered(4)
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
                journal.record("step-started", |e| fill_step(e, step))?;
                let started = Instant::now();
                let change = changes.get(step.resource.as_str()).copied();
                let result = run_step(step, change, &changes, ctx, journal).await;
                (result, started.elapsed().as_secs_f64())
            }
        };
        if result.is_ok() {
            completed.insert(step.id);
        }
        match result {
            Ok(undo) => {
                progress(&format!(
                    "  [{}/{total}] {} {}: {} ... ok ({secs:.1}s)",
                    step.id,
                    step.action.as_str(),
                    step.resource,
                    step.detail
                ));
                journal.record("step-done", |e| {
                    fill_step(e, step);
                    e.data = serde_json::to_value(&undo).unwrap_or_default();
                })?;
                match &undo {
                    Undo::RestoreContainers { retired, .. } | Undo::RestartRetired { retired } => {
                        retired_on_success.extend(retired.iter().map(|(old, _)| old.clone()))
                    }
                    _ => {}
                }
                done.push((step, undo));
            }
            Err(error) => {
                progress(&format!(
                    "  [{}/{total}] {} {}: {} ... FAILED ({secs:.1}s)\n      {error}",
                    step.id,
                    step.action.as_str(),
                    step.resource,
                    step.detail
                ));
                journal.record("step-failed", |e| {
                    fill_step(e, step);
                    e.error = Some(error.clone());
                })?;
                // Creations that ran alongside and succeeded are undone with the rest.
                for (id, (r, _)) in std::mem::take(&mut ahead) {
                    if let (Ok(undo), Some(s)) = (r, plan.steps.iter().find(|s| s.id == id)) {
                        journal.record("step-done", |e| {
                            fill_step(e, s);
                            e.data = serde_json::to_value(&undo).unwrap_or_default();
                        })?;
                        done.push((s, undo));
                    }
                }
                for resource in deploys_implicated(step, &changes, ctx.desired) {
                    if let Some(s) = ctx.desired.service(name_of(&resource)) {
                        let hash = service::spec_attributes(ctx, s).spec_hash();
                        journal.record("spec-failed", |e| {
                            e.resource = Some(resource.clone());
                            e.data = serde_json::json!({"hash": hash});
                        })?;
                    }
                }
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
                    .collect();
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
                journal.record("apply-finished", |e| e.detail = Some(outcome.name().into()))?;
                return Ok(outcome);
            }
        }
    }
    for old in &retired_on_success {
        let _ = ctx.docker.remove(old).await;
    }
    record_deployed(plan, ctx, journal)?;
    journal.record("apply-finished", |e| e.detail = Some("applied".into()))?;
    Ok(Outcome::Applied)
}

/// Services whose new spec the failed step was deploying: those are remembered as failed.
fn deploys_implicated(
    step: &Step,
    changes: &BTreeMap<&str, &Change>,
    desired: &DesiredState,
) -> Vec<String> {
    let deploying = |id: &str| {
        matches!(
            changes.get(id).and_then(|c| c.service.as_ref()),
            Some(
                ServiceChange::Start { .. }
                    | ServiceChange::Deploy { .. }
                    | ServiceChange::Replace { .. }
            )
        )
    };
    match (step.resource.split('/').next(), step.action) {
        (
            Some("service"),
            StepAction::Create | StepAction::StartColor | StepAction::Replace | StepAction::Switch,
        ) => {
            vec![step.resource.clone()]
        }
        (Some("router"), StepAction::Switch) => switched_services(&step.resource, desired)
            .into_iter()
            .filter(|id| deploying(id))
            .collect(),
        _ => Vec::new(),
    }
}

/// `service/<name>` of every route of a router.
fn switched_services(router: &str, desired: &DesiredState) -> Vec<String> {
    match ResourceId::parse(router, None).and_then(|id| desired.get(&id)) {
        Some(Resource::Router(r)) => r
            .routes
            .iter()
            .map(|rt| format!("service/{}", rt.service))
            .collect(),
        _ => Vec::new(),
    }
}

/// After a successful apply, the spec of every service it deployed, for `converge rollback`.
fn record_deployed(
    plan: &Plan,
    ctx: &Context<'_>,
    journal: &mut Journal,
) -> Result<(), JournalError> {
    for c in &plan.changes {
        let color = match &c.service {
            Some(ServiceChange::Start { color, .. }) => *color,
            Some(ServiceChange::Deploy { to, .. }) => Some(*to),
            Some(ServiceChange::Replace { .. }) => None,
            _ => continue,
        };
        let Some(s) = ctx.desired.service(name_of(&c.id)) else {
            continue;
        };
        let hash = service::spec_attributes(ctx, s).spec_hash();
        journal.record("deployed", |e| {
            e.resource = Some(c.id.clone());
            e.data = serde_json::json!({"hash": hash, "color": color, "service": s});
        })?;
    }
    Ok(())
}

/// A plain service creation: needs nothing from the journal, can run beside others.
fn parallel(step: &Step, changes: &BTreeMap<&str, &Change>) -> bool {
    step.action == StepAction::Create
        && step.resource.starts_with("service/")
        && matches!(
            changes
                .get(step.resource.as_str())
                .and_then(|c| c.service.as_ref()),
            Some(ServiceChange::Start { color: None, .. })
        )
}

async fn create_service(step: &Step, ctx: &Context<'_>) -> Result<Undo, String> {
    let s = ctx
        .desired
        .service(name_of(&step.resource))
        .ok_or("the service is not in the desired state")?;
    let replicas: Vec<u32> = (1..=s.replicas).collect();
    let names = service::start_set(ctx, s, None, &replicas).await?;
    Ok(Undo::RemoveContainers { names })
}

fn fill_step(e: &mut journal::Entry, step: &Step) {
    e.step = Some(step.id);
    e.resource = Some(step.resource.clone());
    e.action = Some(step.action.as_str().into());
    e.detail = Some(step.detail.clone());
}

/// Undoes completed steps in reverse; returns what could not be undone.
async fn compensate(
    done: &[(&Step, Undo)],
    ctx: &Context<'_>,
    journal: &mut Journal,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<String>, JournalError> {
    let mut left = Vec::new();
    for (step, undo) in done.iter().rev() {
        if *undo == Undo::Nothing {
            continue;
        }
        journal.record("compensation-started", |e| fill_step(e, step))?;
        match run_undo(undo, ctx.docker, ctx.postgres).await {
            Ok(()) => {
                progress(&format!(
                    "  undo {} {} ... ok",
                    step.action.as_str(),
                    step.resource
                ));
                journal.record("compensation-done", |e| fill_step(e, step))?;
            }
            Err(error) => {
                progress(&format!(
                    "  undo {} {} ... FAILED: {error}",
                    step.action.as_str(),
                    step.resource
                ));
                journal.record("compensation-failed", |e| {
                    fill_step(e, step);
                    e.error = Some(error.clone());
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

pub async fn run_undo(
    undo: &Undo,
    docker: &Docker,
    postgres: Option<&Postgres>,
) -> Result<(), String> {
    match undo {
        Undo::Nothing => Ok(()),
        Undo::RemoveContainers { names } => {
            for n in names {
                docker.remove(n).await.map_err(|e| e.to_string())?;
            }
            Ok(())
        }
        Undo::RestoreContainers { started, retired } => {
            service::remove_all(docker, started).await;
            service::restore(docker, retired).await
        }
        Undo::RestartRetired { retired } => service::restore(docker, retired).await,
        Undo::RemoveNetwork => docker.remove_network().await.map_err(|e| e.to_string()),
        Undo::MigrateDown {
            database,
            files,
            dump_to,
        } => database::migrate_down(postgres, database, files, dump_to.as_deref()).await,
        Undo::RestoreFile {
            path,
            previous,
            reload,
        } => {
            files::restore(Path::new(path), previous.as_deref())
                .map_err(|e| format!("restore {path}: {e}"))?;
            match reload {
                Some(r) => files::run_action(r).await,
                None => Ok(()),
            }
        }
    }
}

fn name_of(resource: &str) -> &str {
    resource.split_once('/').map(|(_, n)| n).unwrap_or(resource)
}

async fn run_step(
    step: &Step,
    change: Option<&Change>,
    changes: &BTreeMap<&str, &Change>,
    ctx: &Context<'_>,
    journal: &mut Journal,
) -> Result<Undo, String> {
    let kind = step.resource.split('/').next().unwrap_or("");
    let name = name_of(&step.resource);
    match (kind, step.action) {
        ("network", StepAction::Create) => {
            ctx.docker
                .create_network()
                .await
                .map_err(|e| e.to_string())?;
            Ok(Undo::RemoveNetwork)
        }
        ("network", StepAction::Delete) => ctx
            .docker
            .remove_network()
            .await
            .map(|_| Undo::Nothing)
            .map_err(|e| e.to_string()),
        ("volume", StepAction::Create) => {
            let prune = change
                .and_then(|c| c.attributes.iter().find(|a| a.key == "prune"))
                .and_then(|a| a.after.as_ref())
                .is_some_and(|v| v.display() == "true");
            ctx.docker
                .create_volume(name, prune)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Undo::Nothing)
        }
        ("volume", StepAction::Delete) => ctx
            .docker
            .remove_volume(name)
            .await
            .map(|_| Undo::Nothing)
            .map_err(|e| e.to_string()),
        ("service", _) => run_service_step(step, change, changes, ctx, journal).await,
        ("bucket", action) => {
            let s3 = ctx
                .s3
                .ok_or("no S3 provider is configured (providers.s3)")?;
            if action == StepAction::Delete {
                s3.delete_bucket(name).await?;
                return Ok(Undo::Nothing);
            }
            let Some(Resource::Bucket(b)) = ctx.desired.get(&ResourceId::new(Kind::Bucket, name))
            else {
                return Err(format!("{} is not in the desired state", step.resource));
            };
            s3.reconcile(b, ctx.desired.project.name.as_str()).await?;
            Ok(Undo::Nothing)
        }
        ("database", action) => {
            if action == StepAction::Delete {
                return database::drop(ctx, name).await;
            }
            let Some(Resource::Database(db)) =
                ctx.desired.get(&ResourceId::new(Kind::Database, name))
            else {
                return Err(format!("{} is not in the desired state", step.resource));
            };
            match action {
                StepAction::Create | StepAction::Update => database::reconcile(ctx, db).await,
                StepAction::Migrate => database::migrate(ctx, db, change).await,
                other => Err(format!("cannot {} a database", other.as_str())),
            }
        }
        ("router" | "configfile", StepAction::Render | StepAction::Switch) => {
            let file = change
                .and_then(|c| c.file.as_ref())
                .ok_or("the plan holds no rendered file for this step")?;
            let (check, reload) = file_actions(ctx.desired, &step.resource);
            let path = Path::new(&file.path);
            let previous =
                files::install(path, &file.after, check.as_ref(), reload.as_ref()).await?;
            if step.action == StepAction::Switch {
                let targets = new_colors(switched_services(&step.resource, ctx.desired), changes);
                if let Err(e) = verify(ctx, &targets).await {
                    files::restore(path, previous.as_deref())
                        .map_err(|r| format!("{e}; restoring {} failed: {r}", file.path))?;
                    if let Some(r) = &reload {
                        files::run_action(r)
                            .await
                            .map_err(|r| format!("{e}; reloading the previous file failed: {r}"))?;
                    }
                    return Err(format!("{e}; traffic was switched back"));
                }
            }
            Ok(Undo::RestoreFile {
                path: file.path.clone(),
                previous,
                reload,
            })
        }
        _ => Err(format!(
            "no provider in this version of converge can {} {}",
            step.action.as_str(),
            step.resource
        )),
    }
}

fn file_actions(desired: &DesiredState, resource: &str) -> (Option<Action>, Option<Action>) {
    let id = ResourceId::parse(resource, None);
    match id.and_then(|id| desired.get(&id)) {
        Some(Resource::Router(r)) => (r.check.clone(), r.reload.clone()),
        Some(Resource::ConfigFile(c)) => (c.check.clone(), c.reload.clone()),
        _ => (None, None),
    }
}

async fn run_service_step(
    step: &Step,
    change: Option<&Change>,
    changes: &BTreeMap<&str, &Change>,
    ctx: &Context<'_>,
    journal: &mut Journal,
) -> Result<Undo, String> {
    let id = ResourceId::new(Kind::Service, name_of(&step.resource));
    let sc = change.and_then(|c| c.service.as_ref());
    let live = ctx.live.service(&id);
    if step.action == StepAction::Delete {
        for n in ctx
            .docker
            .container_names(&step.resource)
            .await
            .map_err(|e| e.to_string())?
        {
            ctx.docker.remove(&n).await.map_err(|e| e.to_string())?;
        }
        return Ok(Undo::Nothing);
    }
    let s = ctx
        .desired
        .service(&id.name)
        .ok_or("the service is not in the desired state")?;
    match (step.action, sc) {
        (StepAction::Create, _) => {
            let replicas: Vec<u32> = (1..=s.replicas).collect();
            let names = service::start_set(ctx, s, None, &replicas).await?;
            Ok(Undo::RemoveContainers { names })
        }
        (StepAction::StartColor, Some(ServiceChange::Start { color, .. })) => {
            start_color(ctx, s, color.unwrap_or(Color::Blue), journal).await
        }
        (StepAction::StartColor, Some(ServiceChange::Deploy { to, .. })) => {
            start_color(ctx, s, *to, journal).await
        }
        (StepAction::Replace, _) => {
            let current: Vec<String> = live
                .map(|l| l.containers.iter().map(|c| c.name.clone()).collect())
                .unwrap_or_default();
            let (started, retired) = service::replace(ctx, s, &current).await?;
            Ok(Undo::RestoreContainers { started, retired })
        }
        (StepAction::Scale, Some(ServiceChange::Scale { from, to, color })) => {
            if to > from {
                let replicas: Vec<u32> = (from + 1..=*to).collect();
                let names = service::start_set(ctx, s, *color, &replicas).await?;
                Ok(Undo::RemoveContainers { names })
            } else {
                let project = ctx.desired.project.name.as_str();
                let mut retired = Vec::new();
                for r in (to + 1)..=*from {
                    let name = service::container_name(project, s.name.as_str(), *color, r);
                    retired.push((service::retire(ctx.docker, &name, 30).await?, name));
                }
                Ok(Undo::RestartRetired { retired })
            }
        }
        (StepAction::Start, Some(ServiceChange::Repair { stopped })) => {
            for n in stopped {
                ctx.docker.start(n).await.map_err(|e| e.to_string())?;
            }
            Ok(Undo::Nothing)
        }
        (StepAction::Switch, _) => {
            verify(ctx, &new_colors(vec![step.resource.clone()], changes)).await?;
            Ok(Undo::Nothing)
        }
        (StepAction::Drain, Some(ServiceChange::Deploy { from, drain, .. })) if step.deferred => {
            let due = journal::now() + drain.as_millis().div_ceil(1000);
            let run = journal.run.clone();
            journal
                .record("deferred", |e| {
                    fill_step(e, step);
                    e.data = serde_json::json!({"due": due, "color": from, "run": run});
                })
                .map_err(|e| e.to_string())?;
            Ok(Undo::Nothing)
        }
        (StepAction::Drain, Some(ServiceChange::Drain { color })) => {
            drain_color(ctx, &id, *color).await?;
            Ok(Undo::Nothing)
        }
        (action, _) => Err(format!(
            "cannot {} {} in this version of converge",
            action.as_str(),
            step.resource
        )),
    }
}

async fn start_color(
    ctx: &Context<'_>,
    s: &crate::model::Service,
    color: Color,
    journal: &mut Journal,
) -> Result<Undo, String> {
    cancel_drains(journal, &format!("service/{}", s.name), color).map_err(|e| e.to_string())?;
    let replicas: Vec<u32> = (1..=s.replicas).collect();
    let names = service::start_set(ctx, s, Some(color), &replicas).await?;
    Ok(Undo::RemoveContainers { names })
}

/// A new deploy into `color` supersedes a drain of that color still pending.
fn cancel_drains(journal: &mut Journal, resource: &str, color: Color) -> Result<(), JournalError> {
    for entry in journal::open_deferred(&journal.read_all()) {
        let same_color = entry.data.get("color").and_then(|c| c.as_str()) == Some(color.as_str());
        if entry.resource.as_deref() == Some(resource)
            && entry.action.as_deref() == Some("drain")
            && same_color
        {
            let (run, step) = (entry.run.clone(), entry.step);
            journal.record("deferred-done", |e| {
                e.resource = Some(resource.to_string());
                e.action = Some("drain".into());
                e.detail = Some(format!("cancelled: a new deploy uses {color}"));
                e.data = serde_json::json!({"run": run, "step": step});
            })?;
        }
    }
    Ok(())
}

/// The (service, color) pairs that `services` move to in this plan.
fn new_colors(services: Vec<String>, changes: &BTreeMap<&str, &Change>) -> Vec<(String, Color)> {
    services
        .into_iter()
        .filter_map(|id| {
            let color = match changes.get(id.as_str()).and_then(|c| c.service.as_ref()) {
                Some(ServiceChange::Deploy { to, .. }) => *to,
                Some(ServiceChange::Start { color: Some(c), .. }) => *c,
                _ => return None,
            };
            Some((id, color))
        })
        .collect()
}

/// Keeps probing the new color for `verify_for` after the switch: the container must stay up
/// and its health check must not fail twice in a row.
async fn verify(ctx: &Context<'_>, targets: &[(String, Color)]) -> Result<(), String> {
    let project = ctx.desired.project.name.as_str();
    for (id, color) in targets {
        let Some(s) = ctx.desired.service(name_of(id)) else {
            continue;
        };
        let Some(h) = &s.health else { continue };
        let deadline = Instant::now() + s.deploy.verify_for.to_std();
        let names: Vec<String> = (1..=s.replicas)
            .map(|r| service::container_name(project, s.name.as_str(), Some(*color), r))
            .collect();
        let mut failures: BTreeMap<&str, u32> = BTreeMap::new();
        while Instant::now() < deadline {
            for name in &names {
                let status = ctx.docker.status(name).await.map_err(|e| e.to_string())?;
                let Some(st) = status.filter(|st| st.running) else {
                    return Err(format!(
                        "{name} stopped during the {} verification after the switch",
                        s.deploy.verify_for
                    ));
                };
                match crate::health::probe(ctx.docker, name, st.ip.as_deref(), h).await {
                    Ok(()) => {
                        failures.insert(name, 0);
                    }
                    Err(e) => {
                        let n = failures.entry(name).or_default();
                        *n += 1;
                        if *n >= 2 {
                            return Err(format!("{name} failed its health check during the {} verification after the switch: {e}", s.deploy.verify_for));
                        }
                    }
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            tokio::time::sleep(h.interval.to_std().min(left)).await;
        }
    }
    Ok(())
}

/// Stops and removes every container of `color`.
pub async fn drain_color(ctx: &Context<'_>, id: &ResourceId, color: Color) -> Result<(), String> {
    let prefix = format!("{}-{}-{color}-", ctx.desired.project.name, id.name);
    for n in ctx
        .docker
        .container_names(&id.to_string())
        .await
        .map_err(|e| e.to_string())?
    {
        if n.starts_with(&prefix) {
            // A grace period for requests still in flight, then the container goes.
            ctx.docker.stop(&n, 30).await.map_err(|e| e.to_string())?;
            ctx.docker.remove(&n).await.map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// Runs deferred drains that are due; one whose color takes traffic again is cancelled instead.
pub async fn run_due_deferred(
    ctx: &Context<'_>,
    journal: &mut Journal,
    state_dir: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<(), JournalError> {
    let project = ctx.desired.project.name.as_str();
    for entry in journal::open_deferred(&Journal::entries(state_dir, project)) {
        let due = entry.data.get("due").and_then(|d| d.as_u64()).unwrap_or(0);
        if due > journal::now() || entry.action.as_deref() != Some("drain") {
            continue;
        }
        let resource = entry.resource.clone().unwrap_or_default();
        let Some(id) = ResourceId::parse(&resource, None) else {
            continue;
        };
        let color: Option<Color> = entry
            .data
            .get("color")
            .and_then(|c| serde_json::from_value(c.clone()).ok());
        let active = ctx.live.service(&id).and_then(|l| l.active_color);
        let outcome = match color {
            Some(c) if active == Some(c) => "cancelled: that color takes traffic again".to_string(),
            Some(c) => match drain_color(ctx, &id, c).await {
                Ok(()) => format!("stopped {c}"),
                Err(e) => {
                    progress(&format!("  drain {resource} failed, will retry: {e}"));
                    continue;
                }
            },
            None => "nothing to drain".into(),
        };
        progress(&format!("  deferred drain {resource}: {outcome}"));
        let (run, step) = (entry.run.clone(), entry.step);
        journal.record("deferred-done", |e| {
            e.resource = Some(resource.clone());
            e.action = Some("drain".into());
            e.detail = Some(outcome.clone());
            e.data = serde_json::json!({"run": run, "step": step});
        })?;
    }
    Ok(())
}
