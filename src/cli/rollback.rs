//! `converge rollback SERVICE [DIR]`: back to the previous color when it still runs (instant),
//! otherwise redeploy the previous spec recorded in the journal through the same health gate.
//! The spec rolled away from is remembered, so `apply` does not redeploy it in a loop.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _};
use clap::Args;

use super::runtime;
use super::Outcome;
use crate::diff::Diff;
use crate::engine::event::{DeferredData, Event, SpecHash, StepRef};
use crate::engine::journal::{self, Journal};
use crate::engine::{apply, PlanOptions};
use crate::engine::{state_dir, Engine};
use crate::model::live::{Color, LiveService, LiveState};
use crate::model::service::Strategy;
use crate::model::{DesiredState, Kind, Resource, ResourceId, Service};
use crate::plan::{self, PlanContext};
use crate::providers::files;
use crate::render::{self, ActiveColor};

#[derive(Args, Debug)]
pub struct RollbackArgs {
    /// The service to roll back (`api` or `service/api`).
    pub service: String,
    #[arg(default_value = "desired-state")]
    pub dir: PathBuf,
    #[arg(long)]
    pub env: Option<String>,
    #[arg(long)]
    pub host: Option<String>,
}

pub fn run(args: RollbackArgs, state: Option<&Path>) -> anyhow::Result<Outcome> {
    let Some(desired) = super::load_or_report(&args.dir, args.env.as_deref())? else {
        return Ok(Outcome::Failure);
    };
    let name = args.service.trim_start_matches("service/").to_string();
    if desired.service(&name).is_none() {
        let names: Vec<&str> = desired.services().map(|s| s.name.as_str()).collect();
        bail!(
            "unknown service `{name}`\n  = hint: services in the desired state: {}",
            names.join(", ")
        );
    }
    let state_dir = state_dir(state);
    runtime()?.block_on(rollback(
        &desired,
        &name,
        &args.dir,
        args.host.as_deref(),
        state_dir,
    ))
}

async fn rollback(
    desired: &DesiredState,
    name: &str,
    dir: &Path,
    host: Option<&str>,
    state_dir: PathBuf,
) -> anyhow::Result<Outcome> {
    let session = Engine::open(desired, state_dir.clone()).await?;
    let _lock = journal::StateLock::acquire(&state_dir, desired.project.name.as_str())?;
    let mut journal = Journal::open(&state_dir, desired.project.name.as_str())?;
    let live = session.observe(desired).await?;
    let id = ResourceId::new(Kind::Service, name);
    let s = desired.service(name).expect("checked by the caller");
    let ls = live
        .service(&id)
        .filter(|l| l.containers.iter().any(|c| c.running))
        .ok_or_else(|| anyhow!("{id} is not running; there is nothing to roll back"))?;
    if s.deploy.strategy == Strategy::BlueGreen {
        if let Some(done) = instant(desired, s, ls, &live, &mut journal).await? {
            println!("{done}");
            return Ok(Outcome::Success);
        }
    }
    redeploy_previous(desired, s, ls, &live, &session, &mut journal, dir, host).await
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
) -> anyhow::Result<Option<String>> {
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
        files::install(
            Path::new(&router.path),
            &text,
            router.check.as_ref(),
            router.reload.as_ref(),
        )
        .await
        .map_err(|e| anyhow!("router/{}: {e}", router.name))?;
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

fn cancel_pending_drain(journal: &mut Journal, resource: &str, color: Color) -> anyhow::Result<()> {
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
) -> anyhow::Result<Outcome> {
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
        .ok_or_else(|| anyhow!("no earlier deploy of {resource} is recorded in the journal; there is nothing to roll back to"))?;
    let (deployed_at, entry) = entry;
    let previous: Service = serde_json::from_value(entry.service.clone())
        .context("the journal's record of the previous spec cannot be read")?;
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
        bail!("{resource} already runs the previous recorded spec; nothing to roll back");
    }
    println!(
        "Rolling back {resource} to the spec deployed at {} (the previous color is not running):\n",
        crate::plan::text::utc(deployed_at)
    );
    print!("{}", plan::text::render(&p));
    let run = session.run(&target, live, dir, None);
    let outcome = session
        .apply(&p, &run, journal, &mut |l| println!("{l}"))
        .await?;
    if outcome != apply::Outcome::Applied {
        eprintln!("\nRollback failed: {outcome:?}");
        return Ok(Outcome::Failure);
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
    println!("\nRolled back {resource} to its previous spec. The spec {bad_hash} is remembered as failed: `converge apply` will not deploy it again until the desired state changes (or `--retry-failed`).");
    Ok(Outcome::Success)
}
