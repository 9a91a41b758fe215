//! Rollback of one service: back to the previous color when it still runs (instant: routers
//! re-rendered, the bad color drained later), otherwise the previous spec recorded in the
//! journal redeployed through the same plan, health gate and apply. The spec rolled away from
//! is remembered as failed, so the next apply does not deploy it again in a loop.

use std::collections::BTreeMap;
use std::path::Path;

use thiserror::Error;

use super::event::{DeferredData, Event, SpecHash, StepRef};
use super::journal::{self, Journal, JournalError};
use super::{apply, Engine, EngineError, PlanOptions};
use crate::diff::Diff;
use crate::model::live::{Color, LiveService, LiveState};
use crate::model::service::Strategy;
use crate::model::{DesiredState, Kind, Resource, ResourceId, Service};
use crate::plan::{self, PlanContext};
use crate::providers::files;
use crate::render::{self, ActiveColor, RenderError};

/// How a rollback ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollback {
    /// Done; the message says what happened and what is remembered.
    Done(String),
    /// The redeploy of the previous spec failed (and was itself rolled back): the apply outcome.
    Failed(String),
}

#[derive(Debug, Error)]
pub enum RollbackError {
    #[error("{0} is not running; there is nothing to roll back")]
    NotRunning(ResourceId),
    #[error(
        "no earlier deploy of {0} is recorded in the journal; there is nothing to roll back to"
    )]
    NoEarlierDeploy(String),
    #[error("{0} already runs the previous recorded spec; nothing to roll back")]
    AlreadyPrevious(String),
    #[error("the journal's record of the previous spec cannot be read: {0}")]
    UnreadableSpec(serde_json::Error),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error("{router}: {message}")]
    Switch { router: String, message: String },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Journal(#[from] JournalError),
}

impl Engine {
    /// Rolls service `name` back: to the previous color when it still runs (instant), else by
    /// redeploying the previous spec recorded in the journal through plan and apply. Lines of
    /// progress go to `progress`; the result says how it ended.
    pub async fn rollback(
        &self,
        desired: &DesiredState,
        name: &str,
        dir: &Path,
        host: Option<&str>,
        journal: &mut Journal,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Rollback, RollbackError> {
        let live = self.observe(desired).await?;
        let id = ResourceId::new(Kind::Service, name);
        let Some(s) = desired.service(name) else {
            return Err(RollbackError::NotRunning(id));
        };
        let ls = live
            .service(&id)
            .filter(|l| l.containers.iter().any(|c| c.running))
            .ok_or_else(|| RollbackError::NotRunning(id.clone()))?;
        if s.deploy.strategy == Strategy::BlueGreen {
            if let Some(done) = instant(desired, s, ls, &live, journal).await? {
                return Ok(Rollback::Done(done));
            }
        }
        redeploy_previous(desired, s, ls, &live, self, journal, dir, host, progress).await
    }
}

/// The color taking traffic now and its spec hash.
fn current(ls: &LiveService) -> (Option<Color>, String) {
    let active = ls.active_color;
    let hash = ls
        .containers
        .iter()
        .find(|c| c.running && (active.is_none() || c.color == active))
        .map(|c| c.spec_hash.clone())
        .unwrap_or_default();
    (active, hash)
}

/// Switches routers back to the idle color when it still runs an earlier spec.
async fn instant(
    desired: &DesiredState,
    s: &Service,
    ls: &LiveService,
    live: &LiveState,
    journal: &mut Journal,
) -> Result<Option<String>, RollbackError> {
    let (Some(active), bad_hash) = current(ls) else {
        return Ok(None);
    };
    let previous = active.other();
    let prev: Vec<_> = ls.of_color(Some(previous)).collect();
    if prev.is_empty()
        || !prev.iter().all(|c| c.running)
        || prev.iter().any(|c| c.spec_hash == bad_hash)
    {
        return Ok(None);
    }
    let mut colors: BTreeMap<String, ActiveColor> = BTreeMap::new();
    for other in desired
        .services()
        .filter(|x| x.deploy.strategy == Strategy::BlueGreen)
    {
        let oid = ResourceId::new(Kind::Service, other.name.as_str());
        if let Some(c) = live.service(&oid).and_then(|l| l.active_color) {
            colors.insert(other.name.to_string(), color_port(other, c));
        }
    }
    colors.insert(s.name.to_string(), color_port(s, previous));
    let mut switched = Vec::new();
    for r in desired.resources.values() {
        let Resource::Router(router) = r else {
            continue;
        };
        if !router.routes.iter().any(|rt| rt.service == s.name.as_str()) {
            continue;
        }
        let text = render::render_router(router, desired, &colors)?;
        let switch_error = |message: String| RollbackError::Switch {
            router: format!("router/{}", router.name),
            message,
        };
        // The path passed the host's policy when `observe` read it.
        let path = Path::new(&router.path);
        let previous = files::read_live(path)
            .map_err(|e| switch_error(format!("cannot read {}: {e}", router.path)))?
            .map(|p| p.text);
        files::install(
            path,
            &text,
            previous.as_deref(),
            router.check.as_ref(),
            router.reload.as_ref(),
            router.action_timeout,
        )
        .await
        .map_err(|message| switch_error(message.to_string()))?;
        switched.push(format!("router/{}", router.name));
    }
    let resource = format!("service/{}", s.name);
    let due = journal::now() + s.deploy.drain.as_millis().div_ceil(1000);
    let run = journal.run.clone();
    journal.record(Event::SpecFailed {
        resource: resource.clone(),
        data: SpecHash {
            hash: bad_hash.clone(),
        },
    })?;
    cancel_pending_drain(journal, &resource, previous)?;
    journal.record(Event::Deferred {
        at: StepRef {
            step: Some(0),
            resource: Some(resource.clone()),
            action: Some("drain".into()),
            detail: Some(format!(
                "stop {active} {} after the rollback",
                s.deploy.drain
            )),
        },
        data: DeferredData {
            due,
            color: Some(active),
            run,
        },
    })?;
    journal.record(Event::RolledBack {
        resource: resource.clone(),
        detail: format!("instant: traffic back to {previous}"),
    })?;
    let via = if switched.is_empty() {
        "no router routes it".to_string()
    } else {
        switched.join(", ")
    };
    Ok(Some(format!(
        "Rolled back {resource}: traffic is back on {previous} ({via}); {previous} was still running, so this was instant.\n\
         {active} stops in {} (a deferred drain). Its spec {bad_hash} is remembered as failed: `converge apply` will not\n\
         deploy it again until the desired state changes (or `--retry-failed`).",
        s.deploy.drain
    )))
}

fn cancel_pending_drain(
    journal: &mut Journal,
    resource: &str,
    color: Color,
) -> Result<(), JournalError> {
    for d in journal::open_deferred(&journal.read_all()) {
        if d.resource == resource && d.color == Some(color) {
            journal.record(journal::drain_done(
                &d,
                format!("cancelled: rolled back to {color}"),
            ))?;
        }
    }
    Ok(())
}

fn color_port(s: &Service, c: Color) -> ActiveColor {
    let port = match c {
        Color::Blue => s.deploy.blue.as_ref(),
        Color::Green => s.deploy.green.as_ref(),
    }
    .map(|p| p.port.get())
    .unwrap_or(0);
    ActiveColor {
        color: c.as_str().into(),
        port,
    }
}

/// Deploys the spec recorded before the current one, through the normal plan and apply.
#[allow(clippy::too_many_arguments)]
async fn redeploy_previous(
    desired: &DesiredState,
    s: &Service,
    ls: &LiveService,
    live: &LiveState,
    session: &Engine,
    journal: &mut Journal,
    dir: &Path,
    host: Option<&str>,
    progress: &mut dyn FnMut(&str),
) -> Result<Rollback, RollbackError> {
    let resource = format!("service/{}", s.name);
    let (_, bad_hash) = current(ls);
    let project = desired.project.name.as_str();
    let failed = Journal::failed(session.state_dir(), project)
        .remove(&resource)
        .unwrap_or_default();
    let entry = Journal::deployed(session.state_dir(), project, &resource)
        .into_iter()
        .rev()
        .find(|(_, d)| d.hash != bad_hash && !failed.contains(&d.hash))
        .ok_or_else(|| RollbackError::NoEarlierDeploy(resource.clone()))?;
    let (deployed_at, entry) = entry;
    let previous: Service =
        serde_json::from_value(entry.service.clone()).map_err(RollbackError::UnreadableSpec)?;
    let mut target = desired.clone();
    target.resources.insert(
        ResourceId::new(Kind::Service, s.name.as_str()),
        Resource::Service(previous),
    );
    let opts = PlanOptions {
        host,
        revision: None,
        retry_failed: true,
    };
    let full = session.diff(&target, live, &opts, &session.kinds());
    let routers: Vec<ResourceId> = desired
        .resources
        .values()
        .filter_map(|r| match r {
            Resource::Router(rt) if rt.routes.iter().any(|x| x.service == s.name.as_str()) => {
                Some(ResourceId::new(Kind::Router, rt.name.as_str()))
            }
            _ => None,
        })
        .collect();
    let only = Diff {
        changes: full
            .changes
            .into_iter()
            .filter(|c| c.id.to_string() == resource || routers.contains(&c.id))
            .collect(),
        notes: Vec::new(),
        colors: full.colors,
        errors: full.errors,
        cost: None,
        held_back: Vec::new(),
    };
    let p = plan::plan(
        &target,
        only,
        PlanContext {
            revision: None,
            host,
            fingerprint: live.fingerprint(),
            pending: Vec::new(),
        },
    );
    if p.is_empty() {
        return Err(RollbackError::AlreadyPrevious(resource));
    }
    progress(&format!(
        "Rolling back {resource} to the spec deployed at {} (the previous color is not running):\n",
        crate::plan::text::utc(deployed_at)
    ));
    let text = plan::text::render(&p);
    progress(text.strip_suffix('\n').unwrap_or(&text));
    let run = session.run(&target, live, dir, None);
    let outcome = session.apply(&p, &run, journal, progress).await?;
    if !matches!(outcome, apply::Outcome::Applied { .. }) {
        return Ok(Rollback::Failed(format!("{outcome:?}")));
    }
    journal.record(Event::SpecFailed {
        resource: resource.clone(),
        data: SpecHash {
            hash: bad_hash.clone(),
        },
    })?;
    journal.record(Event::RolledBack {
        resource: resource.clone(),
        detail: "redeployed the previous spec".into(),
    })?;
    Ok(Rollback::Done(format!("\nRolled back {resource} to its previous spec. The spec {bad_hash} is remembered as failed: `converge apply` will not deploy it again until the desired state changes (or `--retry-failed`).")))
}
