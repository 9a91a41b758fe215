//! The Swarm work of one service step: create or update a Swarm service (and wait for Swarm to
//! converge or roll back), scale it, restart its tasks, remove a drained color or the service.

use std::collections::BTreeMap;

use bollard::models::{Service as SwarmService, ServiceSpec};
use bollard::query_parameters::{InspectServiceOptions, UpdateServiceOptions};

use super::observe::{fingerprint, FINGERPRINT};
use super::spec::{self, service_name, SpecInput};
use super::{rollout, secrets, SwarmError};
use crate::diff::{Change, ServiceChange};
use crate::model::live::Color;
use crate::model::{Kind, ResourceId, Service};
use crate::plan::{Step, StepAction};
use crate::providers::docker::api;
use crate::providers::runtime::*;
use crate::providers::services::containers::{resolved_env, spec_attributes};
use crate::providers::{Context, Undo};

impl super::SwarmProvider {
    pub(super) async fn service_step(
        &self,
        step: &Step,
        change: Option<&Change>,
        ctx: &Context<'_>,
    ) -> Result<Undo, SwarmError> {
        let id = &step.resource;
        let sc = change.and_then(|c| c.service.as_ref());
        if step.action == StepAction::Delete {
            for name in self.names_of(id).await? {
                self.remove_service(&name).await?;
            }
            return Ok(Undo::Nothing);
        }
        let s = ctx
            .desired
            .service(&id.name)
            .ok_or_else(|| SwarmError::MissingService {
                service: id.name.to_string(),
            })?;
        if let Some(why) = spec::unsupported(s) {
            return Err(SwarmError::Unsupported {
                service: s.name.to_string(),
                why,
            });
        }
        let name = |color| service_name(&self.project, s.name.as_str(), color);
        match (step.action, sc) {
            (StepAction::Create | StepAction::Replace, _) => self.deploy(ctx, s, None).await,
            (StepAction::StartColor, Some(ServiceChange::Start { color, .. })) => {
                self.deploy(ctx, s, Some(color.unwrap_or(Color::Blue)))
                    .await
            }
            (StepAction::StartColor, Some(ServiceChange::Deploy { to, .. })) => {
                self.deploy(ctx, s, Some(*to)).await
            }
            (StepAction::Scale, Some(ServiceChange::Scale { from, to, color })) => {
                self.scale(&name(*color), *to).await?;
                Ok(Undo::ScaleSwarmService {
                    name: name(*color),
                    replicas: *from,
                })
            }
            (StepAction::Start, Some(ServiceChange::Repair { .. })) => {
                self.restart_tasks(&name(None), s).await?;
                Ok(Undo::Nothing)
            }
            (StepAction::Drain, Some(ServiceChange::Drain { color })) => {
                self.remove_service(&name(Some(*color))).await?;
                Ok(Undo::Nothing)
            }
            (action, _) => Err(SwarmError::Unsupported {
                service: s.name.to_string(),
                why: format!("no Swarm step does `{}`", action.as_str()),
            }),
        }
    }

    /// Creates the Swarm service or updates it to the desired spec, and waits: a new service
    /// that does not come up is removed again; an update Swarm rolled back is an error.
    async fn deploy(
        &self,
        ctx: &Context<'_>,
        s: &Service,
        color: Option<Color>,
    ) -> Result<Undo, SwarmError> {
        let name = service_name(&self.project, s.name.as_str(), color);
        let mut spec = self.spec_for(ctx, s, color).await?;
        let auth = self.registry_auth(ctx, s);
        match self.inspect(&name).await? {
            None => {
                self.client()
                    .create_service(spec, auth)
                    .await
                    .map_err(api(format!("create service {name}")))?;
                let waited = self
                    .wait_running(&name, s.replicas, rollout::start_deadline(s))
                    .await;
                if let Err(e) = waited {
                    let _ = self.remove_service(&name).await;
                    return Err(e);
                }
                Ok(Undo::RemoveSwarmServices { names: vec![name] })
            }
            Some(current) => {
                let before = self.update_mark(&name).await?;
                // A new force counter makes Swarm roll the tasks out even where only labels changed.
                let force = current
                    .spec
                    .as_ref()
                    .and_then(|x| x.task_template.as_ref())
                    .and_then(|t| t.force_update)
                    .unwrap_or(0);
                if let Some(t) = spec.task_template.as_mut() {
                    t.force_update = Some(force + 1);
                }
                // A service scaled to zero has no task to roll: its new tasks simply start.
                let rollout = replicas_of(&current) > 0;
                self.update(&name, &current, spec, auth, None).await?;
                self.wait_update(&name, &before, s, rollout).await?;
                Ok(Undo::RollbackSwarmService { name })
            }
        }
    }

    /// The spec of `s` (in `color`): secrets made first, then labelled with its fingerprint.
    async fn spec_for(
        &self,
        ctx: &Context<'_>,
        s: &Service,
        color: Option<Color>,
    ) -> Result<ServiceSpec, SwarmError> {
        let env = resolved_env(ctx.secrets, s).map_err(|(key, error)| SwarmError::Secret {
            service: s.name.to_string(),
            key,
            error,
        })?;
        let owner = (self.project.as_str(), s.name.as_str());
        let files = secrets::ensure(self.client(), owner, ctx.secrets, &env).await?;
        let plain = env
            .into_iter()
            .filter(|v| !v.secret)
            .map(|v| (v.name, v.value))
            .collect();
        let attrs = spec_attributes(ctx.secrets, s);
        let mut labels = BTreeMap::from([
            (MANAGED.to_string(), "true".to_string()),
            (PROJECT.to_string(), self.project.clone()),
            (RESOURCE.to_string(), format!("service/{}", s.name)),
            (SPEC_HASH.to_string(), attrs.spec_hash()),
            (
                SPEC.to_string(),
                serde_json::to_string(&attrs).expect("attributes serialize"),
            ),
            (REVISION.to_string(), ctx.revision.unwrap_or("").to_string()),
        ]);
        if let Some(c) = color {
            labels.insert(COLOR.to_string(), c.to_string());
        }
        let image = s.image.clone().unwrap_or_default();
        let volume_name = |logical: &str| self.docker.volume_name(logical);
        let mut spec = spec::build(&SpecInput {
            project: &self.project,
            service: s,
            color,
            image: &image,
            env: plain,
            secrets: files,
            labels,
            network: &self.project,
            volume_name: &volume_name,
            settings: &self.settings,
        });
        let print = fingerprint(&spec);
        if let Some(l) = spec.labels.as_mut() {
            l.insert(FINGERPRINT.to_string(), print);
        }
        Ok(spec)
    }

    /// A login for the image's registry (`providers.docker.registries`), sent with the spec so
    /// that every node can pull.
    fn registry_auth(
        &self,
        ctx: &Context<'_>,
        s: &Service,
    ) -> Option<bollard::auth::DockerCredentials> {
        let image = s.image.as_deref()?;
        let host = crate::providers::docker::registry::ImageRef::parse(image).host;
        let login = crate::providers::docker::credentials::configured(
            &ctx.desired.project,
            ctx.secrets,
            host,
        )
        .ok()
        .flatten()?;
        Some(crate::providers::docker::docker_credentials(login, host))
    }

    pub(super) async fn inspect(&self, name: &str) -> Result<Option<SwarmService>, SwarmError> {
        match self
            .client()
            .inspect_service(name, None::<InspectServiceOptions>)
            .await
        {
            Ok(s) => Ok(Some(s)),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(api(format!("inspect service {name}"))(e).into()),
        }
    }

    async fn update(
        &self,
        name: &str,
        current: &SwarmService,
        spec: ServiceSpec,
        auth: Option<bollard::auth::DockerCredentials>,
        rollback: Option<&str>,
    ) -> Result<(), SwarmError> {
        let version = current.version.as_ref().and_then(|v| v.index).unwrap_or(0);
        let options = UpdateServiceOptions {
            version: version as i32,
            rollback: rollback.map(str::to_string),
            ..Default::default()
        };
        self.client()
            .update_service(name, spec, options, auth)
            .await
            .map_err(api(format!("update service {name}")))?;
        Ok(())
    }

    /// Sets the replica count and waits for the tasks.
    pub(super) async fn scale(&self, name: &str, replicas: u32) -> Result<(), SwarmError> {
        let Some(current) = self.inspect(name).await? else {
            return Ok(());
        };
        let mut spec = current.spec.clone().unwrap_or_default();
        let mode = spec.mode.get_or_insert_with(Default::default);
        mode.replicated
            .get_or_insert_with(Default::default)
            .replicas = Some(i64::from(replicas));
        self.update(name, &current, spec, None, None).await?;
        self.wait_running(name, replicas, std::time::Duration::from_secs(120))
            .await
    }

    /// Replaces the service's tasks with fresh ones (a slot without a task, a task stuck).
    async fn restart_tasks(&self, name: &str, s: &Service) -> Result<(), SwarmError> {
        let Some(current) = self.inspect(name).await? else {
            return Ok(());
        };
        let before = self.update_mark(name).await?;
        let rollout = replicas_of(&current) > 0;
        let mut spec = current.spec.clone().unwrap_or_default();
        if let Some(t) = spec.task_template.as_mut() {
            t.force_update = Some(t.force_update.unwrap_or(0) + 1);
        }
        self.update(name, &current, spec, None, None).await?;
        self.wait_update(name, &before, s, rollout).await
    }

    /// Puts the service back to the spec it had before the last update.
    pub(super) async fn roll_back(&self, name: &str) -> Result<(), SwarmError> {
        let Some(current) = self.inspect(name).await? else {
            return Ok(());
        };
        let spec = current.spec.clone().unwrap_or_default();
        self.update(name, &current, spec, None, Some("previous"))
            .await
    }

    pub(super) async fn remove_service(&self, name: &str) -> Result<(), SwarmError> {
        match self.client().delete_service(name).await {
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(api(format!("remove service {name}"))(e).into()),
        }
    }

    /// The specs of one converge service's Swarm services (both colors of a blue-green one).
    async fn specs_of(&self, service: &str) -> Result<Vec<ServiceSpec>, SwarmError> {
        let want = ResourceId::new(Kind::Service, service).to_string();
        Ok(self
            .services()
            .await?
            .into_iter()
            .filter_map(|s| s.spec)
            .filter(|spec| {
                spec.labels
                    .as_ref()
                    .and_then(|l| l.get(RESOURCE))
                    .is_some_and(|r| *r == want)
            })
            .collect())
    }

    async fn names_of(&self, id: &ResourceId) -> Result<Vec<String>, SwarmError> {
        Ok(self
            .specs_of(id.name.as_str())
            .await?
            .into_iter()
            .filter_map(|spec| spec.name)
            .collect())
    }

    /// Removes the secrets of `service` that none of its Swarm services uses any more.
    pub(super) async fn sweep_secrets(&self, service: &str) -> Result<(), SwarmError> {
        let used = self
            .specs_of(service)
            .await?
            .iter()
            .filter_map(|s| s.task_template.as_ref()?.container_spec.as_ref())
            .flat_map(|c| c.secrets.iter().flatten())
            .filter_map(|r| r.secret_id.clone())
            .collect();
        secrets::sweep(self.client(), (&self.project, service), &used).await?;
        Ok(())
    }

    /// The converge service a Swarm service belongs to (from its labels).
    pub(super) async fn owner_of(&self, name: &str) -> Option<String> {
        let spec = self.inspect(name).await.ok()??.spec?;
        let resource = spec.labels?.get(RESOURCE)?.clone();
        ResourceId::parse(&resource, None).map(|id| id.name.to_string())
    }
}

/// The replica count a Swarm service's spec asks for.
fn replicas_of(service: &SwarmService) -> i64 {
    service
        .spec
        .as_ref()
        .and_then(|s| s.mode.as_ref())
        .and_then(|m| m.replicated.as_ref())
        .and_then(|r| r.replicas)
        .unwrap_or(0)
}
