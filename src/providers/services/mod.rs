//! The services provider: a service's containers, the project network and named volumes, run on
//! a `ContainerRuntime` (Docker today). Blue-green orchestration that needs the journal or other
//! services (deferred drains, verification after a switch) stays in the engine.

pub mod containers;
mod error;
mod redigest;

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;

use crate::diff::{Change, ServiceChange};
use crate::model::live::{Color, LiveState};
use crate::model::{DesiredState, Kind, ResourceId};
use crate::plan::{Step, StepAction};
use crate::providers::runtime::ContainerRuntime;
use crate::providers::{Context, Provider, ProviderError, Undo};
use crate::secrets::Secrets;
use containers::Ctx;
pub use error::ContainerError;

pub const KINDS: &[Kind] = &[Kind::Service, Kind::Network, Kind::Volume];

pub struct ServiceProvider {
    runtime: Arc<dyn ContainerRuntime>,
}

impl ServiceProvider {
    pub fn new(runtime: Arc<dyn ContainerRuntime>) -> Self {
        ServiceProvider { runtime }
    }

    pub fn runtime(&self) -> &Arc<dyn ContainerRuntime> {
        &self.runtime
    }
}

#[async_trait]
impl Provider for ServiceProvider {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn kinds(&self) -> &'static [Kind] {
        KINDS
    }

    async fn observe(
        &self,
        desired: &DesiredState,
        secrets: &Secrets,
        live: &mut LiveState,
    ) -> Result<(), ProviderError> {
        self.runtime.observe(live).await?;
        redigest::redigest(self.runtime.as_ref(), desired, secrets, live).await?;
        self.image_now(desired, secrets, live).await;
        Ok(())
    }

    async fn apply(
        &self,
        step: &Step,
        change: Option<&Change>,
        ctx: &Context<'_>,
    ) -> Result<Undo, ProviderError> {
        let rt = self.runtime.as_ref();
        match (step.resource.kind, step.action) {
            (Kind::Network, StepAction::Create) => {
                rt.create_network().await?;
                Ok(Undo::RemoveNetwork)
            }
            (Kind::Network, StepAction::Delete) => {
                rt.remove_network().await?;
                Ok(Undo::Nothing)
            }
            (Kind::Volume, _) => volume_step(rt, step, change, ctx).await,
            (Kind::Service, _) => {
                let ctx = Ctx {
                    base: ctx,
                    docker: rt,
                };
                Ok(service_step(step, change, &ctx).await?)
            }
            _ => Err(ProviderError::Unsupported {
                action: step.action.as_str().into(),
                resource: step.resource.to_string(),
                hint: String::new(),
            }),
        }
    }

    async fn undo(&self, undo: &Undo) -> Result<(), ProviderError> {
        let rt = self.runtime.as_ref();
        match undo {
            Undo::RemoveContainers { names } => {
                for n in names {
                    rt.remove(n).await?;
                }
                Ok(())
            }
            Undo::RestoreContainers { started, retired } => {
                containers::remove_all(rt, started).await;
                Ok(containers::restore(rt, retired).await?)
            }
            Undo::RestartRetired { retired } => Ok(containers::restore(rt, retired).await?),
            Undo::RemoveNetwork => Ok(rt.remove_network().await?),
            _ => Ok(()),
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A named volume's step on an engine: create (labelled with its `prune`), nothing for an
/// update (the engine cannot relabel a volume: apply journals the latest `prune` instead), or
/// delete after a safety copy of its data.
pub async fn volume_step(
    rt: &dyn ContainerRuntime,
    step: &Step,
    change: Option<&Change>,
    ctx: &Context<'_>,
) -> Result<Undo, ProviderError> {
    let name = step.resource.name.as_str();
    match step.action {
        StepAction::Create => {
            let prune = change
                .and_then(|c| c.attributes.iter().find(|a| a.key == "prune"))
                .and_then(|a| a.after.as_ref())
                .is_some_and(|v| v.display() == "true");
            rt.create_volume(name, prune).await?;
            Ok(Undo::Nothing)
        }
        StepAction::Update => Ok(Undo::Nothing),
        StepAction::Delete => {
            if let Some(dir) = rt.volume_dir(name).await? {
                let what = crate::providers::Dropping::Volume { name, dir: &dir };
                crate::providers::safety::copy_before_drop(ctx, None, what).await?;
            }
            rt.remove_volume(name).await?;
            Ok(Undo::Nothing)
        }
        action => Err(ProviderError::Unsupported {
            action: action.as_str().into(),
            resource: step.resource.to_string(),
            hint: String::new(),
        }),
    }
}

/// The container work of one service step. Deferred drains, cancelled drains and the
/// verification after a switch are the engine's: they need the journal or other services.
async fn service_step(
    step: &Step,
    change: Option<&Change>,
    ctx: &Ctx<'_>,
) -> Result<Undo, ContainerError> {
    let id = step.resource.clone();
    let sc = change.and_then(|c| c.service.as_ref());
    let live = ctx.live.service(&id);
    if step.action == StepAction::Delete {
        let resource = step.resource.to_string();
        for n in ctx
            .docker
            .container_names(&resource)
            .await
            .map_err(ContainerError::list(&resource))?
        {
            ctx.docker
                .remove(&n)
                .await
                .map_err(ContainerError::runtime(&n))?;
        }
        return Ok(Undo::Nothing);
    }
    let s = ctx
        .desired
        .service(&id.name)
        .ok_or_else(|| ContainerError::MissingService {
            service: id.name.to_string(),
        })?;
    match (step.action, sc) {
        (StepAction::Create, _) => {
            let replicas: Vec<u32> = (1..=s.replicas).collect();
            let names = containers::start_set(ctx, s, None, &replicas).await?;
            Ok(Undo::RemoveContainers { names })
        }
        (StepAction::StartColor, Some(ServiceChange::Start { color, .. })) => {
            start_color(ctx, s, color.unwrap_or(Color::Blue)).await
        }
        (StepAction::StartColor, Some(ServiceChange::Deploy { to, .. })) => {
            start_color(ctx, s, *to).await
        }
        (StepAction::Replace, _) => {
            let current: Vec<String> = live
                .map(|l| l.containers.iter().map(|c| c.name.clone()).collect())
                .unwrap_or_default();
            let (started, retired) = containers::replace(ctx, s, &current).await?;
            Ok(Undo::RestoreContainers { started, retired })
        }
        (StepAction::Scale, Some(ServiceChange::Scale { from, to, color })) => {
            if to > from {
                let replicas: Vec<u32> = (from + 1..=*to).collect();
                let names = containers::start_set(ctx, s, *color, &replicas).await?;
                Ok(Undo::RemoveContainers { names })
            } else {
                let project = ctx.desired.project.name.as_str();
                let mut retired = Vec::new();
                for r in (to + 1)..=*from {
                    let name = containers::container_name(project, s.name.as_str(), *color, r);
                    let grace = crate::model::service_runtime::stop_grace_secs(s, 30);
                    retired.push((containers::retire(ctx.docker, &name, grace).await?, name));
                }
                Ok(Undo::RestartRetired { retired })
            }
        }
        (StepAction::Start, Some(ServiceChange::Repair { stopped })) => {
            for n in stopped {
                ctx.docker
                    .start(n)
                    .await
                    .map_err(ContainerError::runtime(n))?;
            }
            Ok(Undo::Nothing)
        }
        (StepAction::Drain, Some(ServiceChange::Drain { color })) => {
            drain_color(ctx.docker, ctx.desired.project.name.as_str(), &id, *color).await?;
            Ok(Undo::Nothing)
        }
        (action, _) => Err(ContainerError::Unsupported {
            action: action.as_str().to_string(),
            resource: step.resource.to_string(),
        }),
    }
}

async fn start_color(
    ctx: &Ctx<'_>,
    s: &crate::model::Service,
    color: Color,
) -> Result<Undo, ContainerError> {
    let replicas: Vec<u32> = (1..=s.replicas).collect();
    let names = containers::start_set(ctx, s, Some(color), &replicas).await?;
    Ok(Undo::RemoveContainers { names })
}

/// Stops and removes every container of `color`.
pub async fn drain_color(
    rt: &dyn ContainerRuntime,
    project: &str,
    id: &ResourceId,
    color: Color,
) -> Result<(), ContainerError> {
    let prefix = format!("{project}-{}-{color}-", id.name);
    let resource = id.to_string();
    for n in rt
        .container_names(&resource)
        .await
        .map_err(ContainerError::list(&resource))?
    {
        if n.starts_with(&prefix) {
            // A grace period for requests still in flight, then the container goes.
            rt.stop(&n, 30).await.map_err(ContainerError::runtime(&n))?;
            rt.remove(&n).await.map_err(ContainerError::runtime(&n))?;
        }
    }
    Ok(())
}

impl ServiceProvider {
    /// What each running service's declared image resolves to now (the host's image, or its
    /// registry's with `pull: always`), so that diff sees a tag moved to new content.
    async fn image_now(&self, desired: &DesiredState, secrets: &Secrets, live: &mut LiveState) {
        for s in desired.services() {
            let Some(image) = &s.image else { continue };
            let id = crate::model::ResourceId::new(Kind::Service, s.name.as_str());
            if live.resources.get(&id).is_none_or(|r| r.service.is_none()) {
                continue;
            }
            let host = crate::providers::docker::registry::ImageRef::parse(image).host;
            let login =
                crate::providers::docker::credentials::configured(&desired.project, secrets, host)
                    .ok()
                    .flatten();
            let always = s.pull == crate::model::service::PullPolicy::Always;
            let now = self.runtime.image_digest(image, login, always).await;
            if let Some(ls) = live.resources.get_mut(&id).and_then(|r| r.service.as_mut()) {
                ls.image_now = now;
            }
        }
    }
}

#[async_trait]
impl crate::providers::runtime::Meter for ServiceProvider {
    async fn readings(
        &self,
        names: &[String],
    ) -> std::collections::BTreeMap<
        String,
        Result<
            crate::providers::runtime::ContainerReading,
            crate::providers::runtime::RuntimeError,
        >,
    > {
        self.runtime.readings(names).await
    }
}
