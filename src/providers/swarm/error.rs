//! What a Swarm step reports: the service, what Swarm said, and what to do.

use thiserror::Error;

use crate::providers::runtime::RuntimeError;
use crate::secrets::SecretError;

#[derive(Debug, Error)]
pub enum SwarmError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The engine is not a swarm manager.
    #[error("the Docker engine at {endpoint} is not a Swarm manager ({state})\n  = hint: run `docker swarm init` on it (or point providers.swarm.endpoint / DOCKER_HOST at a manager), or remove `providers.swarm` to run services as plain containers")]
    NotManager { endpoint: String, state: String },
    /// Swarm rolled an update back by itself (a new task failed or was unhealthy while watched).
    #[error("rolled back by Swarm: {service}: {message}\n  = hint: `docker service ps --no-trunc {service}` shows why the new tasks failed; the previous version is running again")]
    RolledBack { service: String, message: String },
    /// Swarm paused an update (or its rollback).
    #[error("Swarm paused the update of {service}: {message}\n  = hint: `docker service ps --no-trunc {service}` shows why; converge will update it again on the next apply")]
    Paused { service: String, message: String },
    /// Tasks did not come up in time; the service was put back.
    #[error("{service}: {running} of {replicas} task(s) running after {waited}s{last}\n  = hint: `docker service ps --no-trunc {service}` shows the tasks and why they stopped")]
    NotConverged {
        service: String,
        replicas: u32,
        running: u32,
        waited: u64,
        last: String,
    },
    /// The service declares something Swarm cannot run.
    #[error("service/{service} cannot run on Swarm: {why}")]
    Unsupported { service: String, why: String },
    /// An env value refers to a secret that cannot be resolved (names the reference only).
    #[error("service/{service}: env.{key}: {error}")]
    Secret {
        service: String,
        key: String,
        error: SecretError,
    },
    #[error("service/{service} is not in the desired state")]
    MissingService { service: String },
}

impl SwarmError {
    /// Whether the failure says the new spec is bad (Swarm rolled it back or paused it, its
    /// tasks did not come up, Swarm cannot run it), rather than that something was unreachable.
    pub fn condemns_the_spec(&self) -> bool {
        match self {
            SwarmError::RolledBack { .. }
            | SwarmError::Paused { .. }
            | SwarmError::NotConverged { .. } => true,
            SwarmError::Runtime(e) => !e.is_transient(),
            // Said again, with what to do, by every apply until the YAML changes.
            SwarmError::Unsupported { .. } => false,
            SwarmError::NotManager { .. }
            | SwarmError::Secret { .. }
            | SwarmError::MissingService { .. } => false,
        }
    }
}
