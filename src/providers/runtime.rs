//! The container runtime seam: what apply, health gates and the autoscaler need from a container
//! engine, as our own types. Docker implements it (`providers/docker`); a second runtime is one
//! more folder that implements `ContainerRuntime`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use async_trait::async_trait;
use thiserror::Error;

use crate::model::live::LiveState;
use crate::model::{Kind, ResourceId};

pub const MANAGED: &str = "converge.managed";
pub const PROJECT: &str = "converge.project";
pub const RESOURCE: &str = "converge.resource";
pub const COLOR: &str = "converge.color";
pub const REPLICA: &str = "converge.replica";
pub const SPEC_HASH: &str = "converge.spec-hash";
pub const SPEC: &str = "converge.spec";
pub const REVISION: &str = "converge.revision";
pub const PRUNE: &str = "converge.prune";

#[derive(Debug, Error)]
pub enum RuntimeError {
    #[error("cannot connect to Docker at {endpoint}: {message}\n  = hint: is the Docker engine running, and may this user use its socket?")]
    Connect { endpoint: String, message: String },
    #[error("image `{image}` is not present and cannot be pulled: {message}\n  = hint: build or load it on this host (`docker build`, `docker load`, `docker import`)")]
    Image { image: String, message: String },
    #[error("image `{image}` is not on this host, and the service says `pull: never`\n  = hint: load it on this host (`docker load`, `docker build`), or set `pull: missing`")]
    NotPulled { image: String },
    #[error("docker: {what}: {message}")]
    Api { what: String, message: String },
    /// A registry did not give the image (refused, not found, unreachable).
    #[error(transparent)]
    Pull(Box<crate::providers::docker::registry::PullError>),
}

impl RuntimeError {
    /// Connection problems and engine errors may pass; a missing image or a bad spec will not.
    pub fn is_transient(&self) -> bool {
        match self {
            RuntimeError::Connect { .. } => true,
            RuntimeError::Image { .. } | RuntimeError::NotPulled { .. } => false,
            RuntimeError::Pull(e) => e.is_transient(),
            RuntimeError::Api { message, .. } => {
                message.contains("timed out") || message.contains("connection")
            }
        }
    }
}

/// What a container was created with, as the engine reports it.
#[derive(Default)]
pub struct ContainerConfig {
    /// The `converge.spec` label: the spec attributes, secrets as keyed digests.
    pub spec: Option<String>,
    /// Its environment, secret values included: digested, never shown.
    pub env: BTreeMap<String, String>,
}

/// The host address and port a container port is published on.
pub type HostBinding = (IpAddr, u16);

/// What a container must look like; built by apply from a service.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub command: Option<Vec<String>>,
    /// Resolved values: never logged.
    pub env: Vec<(String, String)>,
    pub labels: BTreeMap<String, String>,
    /// (container port, protocol, where it is published on the host).
    pub ports: Vec<(u16, String, Option<HostBinding>)>,
    /// (source, target, read only, named volume).
    pub mounts: Vec<(String, String, bool, bool)>,
    pub cpus: Option<f64>,
    pub memory: Option<u64>,
    pub gpus: u32,
    pub restart: String,
    pub network: String,
    pub aliases: Vec<String>,
    /// Entrypoint, user, labels, limits, capabilities, logging… (the compose-style fields).
    pub options: crate::model::service_runtime::RuntimeOptions,
}

/// A container's state as apply needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerStatus {
    pub running: bool,
    pub exit_code: Option<i64>,
    /// The address on the project network.
    pub ip: Option<String>,
}

/// A container's cumulative CPU time and current memory, as `docker stats` reads them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ContainerReading {
    pub cpu_ns: u64,
    pub online_cpus: u32,
    pub memory_bytes: u64,
    pub memory_limit: u64,
}

/// Containers renamed out of the way during a replace end in `.old-<n>`.
pub fn is_retired(name: &str) -> bool {
    name.rsplit_once(".old-")
        .is_some_and(|(_, n)| n.chars().all(|c| c.is_ascii_digit()))
}

/// The id kind that Docker containers represent.
pub fn service_id(name: &str) -> ResourceId {
    ResourceId::new(Kind::Service, name)
}

/// A container engine on one host: containers, one network and named volumes of one project,
/// all labelled as converge's. Every method touches only objects of this project.
#[async_trait]
pub trait ContainerRuntime: Send + Sync {
    /// The project whose objects this runtime touches.
    fn project(&self) -> &str;
    /// Fails when the engine cannot be reached.
    async fn ping(&self) -> Result<(), RuntimeError>;
    /// Fills `live` with this project's containers (grouped by service), network and volumes.
    async fn observe(&self, live: &mut LiveState) -> Result<(), RuntimeError>;
    /// The engine's name for a logical volume.
    fn volume_name(&self, logical: &str) -> String;
    async fn create_network(&self) -> Result<(), RuntimeError>;
    async fn remove_network(&self) -> Result<(), RuntimeError>;
    async fn create_volume(&self, logical: &str, prune: bool) -> Result<(), RuntimeError>;
    async fn remove_volume(&self, logical: &str) -> Result<(), RuntimeError>;
    /// Where a volume's data is on this host (`None`: no such volume).
    async fn volume_dir(&self, logical: &str) -> Result<Option<std::path::PathBuf>, RuntimeError>;
    /// Makes sure `image` is present (pulls it when it is not), logging in with `login` (from
    /// `providers.docker.registries`) or else with the Docker client's configuration.
    async fn ensure_image(
        &self,
        image: &str,
        login: Option<crate::providers::docker::credentials::Login>,
        policy: crate::model::service::PullPolicy,
    ) -> Result<(), RuntimeError>;
    /// The digest `image` resolves to now: its registry's (asked with `login`, else the Docker
    /// client's credentials) when `ask_registry`, else the host's image; `None` when unknown.
    async fn image_digest(
        &self,
        image: &str,
        login: Option<crate::providers::docker::credentials::Login>,
        ask_registry: bool,
    ) -> Option<String>;
    /// Builds `tag` from a context directory.
    async fn build_image(
        &self,
        context: &Path,
        dockerfile: Option<&str>,
        args: &BTreeMap<String, String>,
        tag: &str,
    ) -> Result<(), RuntimeError>;
    /// Creates and starts a container.
    async fn run(&self, spec: &ContainerSpec) -> Result<(), RuntimeError>;
    async fn start(&self, name: &str) -> Result<(), RuntimeError>;
    async fn stop(&self, name: &str, grace_secs: i32) -> Result<(), RuntimeError>;
    async fn remove(&self, name: &str) -> Result<(), RuntimeError>;
    async fn rename(&self, from: &str, to: &str) -> Result<(), RuntimeError>;
    /// `None` when there is no such container.
    async fn status(&self, name: &str) -> Result<Option<ContainerStatus>, RuntimeError>;
    /// A container's spec label and real environment; `None` when there is no such container.
    async fn config(&self, name: &str) -> Result<Option<ContainerConfig>, RuntimeError>;
    /// Runs a command in a container; its exit code.
    async fn exec(&self, name: &str, cmd: &[String]) -> Result<i64, RuntimeError>;
    /// Full container ids of this project's containers, by name.
    async fn ids(&self) -> Result<BTreeMap<String, String>, RuntimeError>;
    /// One reading of a container's counters.
    async fn stats(&self, name: &str) -> Result<ContainerReading, RuntimeError>;
    /// Names of all this project's containers, retired ones included.
    async fn all_names(&self) -> Result<Vec<String>, RuntimeError>;
    /// Names of this project's containers for `resource`, retired ones included.
    async fn container_names(&self, resource: &str) -> Result<Vec<String>, RuntimeError>;
    /// One reading of each named container's counters, read all at once (the autoscaler).
    async fn readings(
        &self,
        names: &[String],
    ) -> BTreeMap<String, Result<ContainerReading, RuntimeError>>;
}

/// Where the autoscaler reads containers' CPU and memory counters from, by the names the live
/// state gives them (containers, or a Swarm service's task slots).
#[async_trait]
pub trait Meter: Send + Sync {
    /// One reading per name that has one; the others are missing or errors.
    async fn readings(
        &self,
        names: &[String],
    ) -> BTreeMap<String, Result<ContainerReading, RuntimeError>>;
}
