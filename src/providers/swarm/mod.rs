//! Docker Swarm as the runtime of services (`providers.swarm`): each Service, each color of a
//! blue-green one, is a Swarm service on the project's overlay network; Swarm schedules, restarts
//! and rolls out its tasks over the nodes, and converge drives it through the manager's API and
//! waits for it. Named volumes are created on the manager's engine (Swarm creates them on other
//! nodes when a task mounts them). bollard's types stay in this folder.

mod error;
mod network;
pub mod observe;
mod rollout;
pub mod secrets;
pub mod spec;
mod steps;
pub mod tasks;

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;

use crate::diff::Change;
use crate::model::live::LiveState;
use crate::model::project::SwarmProvider as Settings;
use crate::model::{DesiredState, Kind};
use crate::plan::{Step, StepAction};
use crate::providers::docker::Docker;
use crate::providers::{Context, Provider, ProviderError, Undo};
use crate::secrets::Secrets;
pub use error::SwarmError;

pub const KINDS: &[Kind] = &[Kind::Service, Kind::Network, Kind::Volume];

/// The Swarm runtime of one project.
pub struct SwarmProvider {
    docker: Docker,
    project: String,
    settings: Settings,
}

/// Connects when the project names `providers.swarm`; then it, not the docker provider, runs
/// the project's services.
pub const FACTORY: crate::providers::registry::Factory = crate::providers::registry::Factory {
    name: "swarm",
    kinds: KINDS,
    wanted: |d| d.project.providers.swarm.is_some(),
    secret_free: true,
    connect: |d, _| {
        Box::pin(async move {
            let settings = d.project.providers.swarm.clone().expect("wanted");
            let provider = SwarmProvider::connect(settings, d.project.name.as_str()).await?;
            Ok(Arc::new(provider) as Arc<dyn Provider>)
        })
    },
};

impl SwarmProvider {
    /// Connects to a manager (`endpoint`, else `DOCKER_HOST`, else the local socket); fails
    /// when the engine is not a Swarm manager.
    pub async fn connect(settings: Settings, project: &str) -> Result<Self, SwarmError> {
        let docker = Docker::connect(settings.endpoint.as_deref(), project)?;
        docker.ping().await?;
        if let Err(e) = docker.client().inspect_swarm().await {
            let endpoint = settings
                .endpoint
                .clone()
                .or_else(|| std::env::var("DOCKER_HOST").ok())
                .unwrap_or_else(|| "unix:///var/run/docker.sock".into());
            return Err(SwarmError::NotManager {
                endpoint,
                state: short_state(&e),
            });
        }
        Ok(SwarmProvider {
            docker,
            project: project.to_string(),
            settings,
        })
    }

    pub fn client(&self) -> &bollard::Docker {
        self.docker.client()
    }

    pub fn project(&self) -> &str {
        &self.project
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }
}

fn short_state(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

#[async_trait]
impl Provider for SwarmProvider {
    fn name(&self) -> &'static str {
        "swarm"
    }

    fn kinds(&self) -> &'static [Kind] {
        KINDS
    }

    async fn observe(
        &self,
        _desired: &DesiredState,
        _secrets: &Secrets,
        live: &mut LiveState,
    ) -> Result<(), ProviderError> {
        self.observe_services(live).await?;
        self.docker.observe_volumes(live).await?;
        Ok(())
    }

    async fn apply(
        &self,
        step: &Step,
        change: Option<&Change>,
        ctx: &Context<'_>,
    ) -> Result<Undo, ProviderError> {
        match (step.resource.kind, step.action) {
            (Kind::Network, StepAction::Create) => {
                self.create_network().await?;
                Ok(Undo::RemoveNetwork)
            }
            (Kind::Network, StepAction::Delete) => {
                self.remove_network().await?;
                Ok(Undo::Nothing)
            }
            (Kind::Volume, _) => {
                crate::providers::services::volume_step(&self.docker, step, change, ctx).await
            }
            (Kind::Service, _) => {
                let undo = self.service_step(step, change, ctx).await;
                // This service's secrets it no longer uses go, whatever the step's outcome.
                let _ = self.sweep_secrets(step.resource.name.as_str()).await;
                Ok(undo?)
            }
            _ => Err(ProviderError::Unsupported {
                action: step.action.as_str().into(),
                resource: step.resource.to_string(),
                hint: String::new(),
            }),
        }
    }

    async fn undo(&self, undo: &Undo) -> Result<(), ProviderError> {
        let touched: Vec<&String> = match undo {
            Undo::RemoveSwarmServices { names } => names.iter().collect(),
            Undo::RollbackSwarmService { name } | Undo::ScaleSwarmService { name, .. } => {
                vec![name]
            }
            _ => Vec::new(),
        };
        let mut owners = std::collections::BTreeSet::new();
        for name in &touched {
            owners.extend(self.owner_of(name).await);
        }
        match undo {
            Undo::RemoveSwarmServices { names } => {
                for n in names {
                    self.remove_service(n).await?;
                }
            }
            Undo::RollbackSwarmService { name } => self.roll_back(name).await?,
            Undo::ScaleSwarmService { name, replicas } => self.scale(name, *replicas).await?,
            Undo::RemoveNetwork => self.remove_network().await?,
            _ => {}
        }
        // Secrets only the undone spec used go with it.
        for service in owners {
            let _ = self.sweep_secrets(&service).await;
        }
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
