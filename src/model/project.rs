//! The `Project` kind: the root of a desired-state directory (environments, hosts, providers, sync).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::types::{CronSchedule, Duration, Name, SecretString};

/// The project: one per desired-state directory, in `converge.yaml`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Project {
    pub name: Name,
    /// Environments that `--env` may select and `Environment` resources may override.
    #[serde(default = "default_environments")]
    pub environments: Vec<Name>,
    /// Hosts that run services; services are placed on them by name or labels.
    #[serde(default = "default_hosts")]
    pub hosts: Vec<Host>,
    #[serde(default)]
    pub providers: Providers,
    #[serde(default)]
    pub sync: SyncPolicy,
    /// Recovery objectives `converge recover` reports against.
    #[serde(default)]
    pub recovery: Option<RecoveryObjectives>,
}

/// The recovery time and point objectives of the whole project.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoveryObjectives {
    /// Recovery time objective: the longest a full `converge recover` may take.
    #[serde(default)]
    pub rto: Option<Duration>,
    /// Recovery point objective: the most data (age of a restored copy) a recovery may lose.
    #[serde(default)]
    pub rpo: Option<Duration>,
    /// A recovery drill the agent runs on a schedule (`converge recover --drill`): scratch copies restored and checked, the services started against them as `<project>-drill` on other ports, all torn down, the RTO and RPO recorded.
    #[serde(default)]
    pub drill: Option<RecoveryDrill>,
}

/// When the agent drills a recovery, and whom it tells.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoveryDrill {
    /// When to drill (cron, UTC), on the agent holding the cluster lock.
    pub schedule: CronSchedule,
    /// Names of `Notifier` resources told of each drill's outcome; default: every subscribed one.
    #[serde(default)]
    pub notify: Vec<String>,
}

fn default_environments() -> Vec<Name> {
    ["dev", "staging", "prod"]
        .iter()
        .map(|n| Name::try_from(n.to_string()).expect("valid name"))
        .collect()
}

fn default_hosts() -> Vec<Host> {
    vec![Host {
        name: Name::try_from("local".to_string()).expect("valid name"),
        labels: BTreeMap::new(),
    }]
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Host {
    pub name: Name,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Providers {
    #[serde(default)]
    pub docker: Option<DockerProvider>,
    #[serde(default)]
    pub postgres: Option<PostgresProvider>,
    #[serde(default)]
    pub s3: Option<S3Provider>,
    /// Run services on Docker Swarm (a manager's API) instead of as containers on one engine.
    #[serde(default)]
    pub swarm: Option<SwarmProvider>,
}

/// Docker Swarm as the runtime of services: each Service (each color of a blue-green one)
/// becomes a Swarm service; Swarm schedules its tasks over the nodes.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SwarmProvider {
    /// A manager's API: `unix:///var/run/docker.sock` or `tcp://manager:2375`; default:
    /// `DOCKER_HOST`, then the local socket.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// How ports are published: `host` (on the node that runs the task; the default, what a
    /// Router on that node reaches) or `ingress` (the routing mesh, on every node).
    #[serde(default)]
    pub publish: SwarmPublish,
    /// How services are found on the project's overlay network: `dnsrr` (the default: the
    /// service name resolves to its tasks' addresses) or `vip` (one virtual address).
    #[serde(default)]
    pub endpoint_mode: SwarmEndpointMode,
}

/// What of a service Swarm cannot run: the field, the problem and what to do.
pub struct SwarmRefusal {
    pub path: &'static [&'static str],
    pub why: String,
    pub hint: &'static str,
}

const PLAIN_DOCKER: &str = "run it in a project that uses the docker provider";

impl SwarmProvider {
    /// What of a service Swarm cannot run, if anything.
    pub fn refuses(s: &super::Service) -> Option<SwarmRefusal> {
        let refusal = |path, why: String, hint| Some(SwarmRefusal { path, why, hint });
        if s.resources.gpus > 0 || !s.resources.gpu_devices.is_empty() {
            return refusal(
                &["resources"],
                "Swarm services are not offered GPUs".into(),
                PLAIN_DOCKER,
            );
        }
        if !s.devices.is_empty() {
            return refusal(
                &["devices"],
                "Swarm services cannot be given `devices`".into(),
                PLAIN_DOCKER,
            );
        }
        if s.build.is_some() && s.image.is_none() {
            return refusal(
                &["build"],
                "`build` would need the image on every node of the swarm".into(),
                "build and push the image in CI, then declare `image`",
            );
        }
        if s.placement.hosts.len() > 1 {
            return refusal(
                &["placement", "hosts"],
                format!("Swarm constraints cannot say \"one of\" {} hosts", s.placement.hosts.len()),
                "label those nodes (`docker node update --label-add role=web NODE`) and use `placement: {labels: {role: web}}`",
            );
        }
        None
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SwarmPublish {
    #[default]
    Host,
    Ingress,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SwarmEndpointMode {
    #[default]
    Dnsrr,
    Vip,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DockerProvider {
    /// `unix:///var/run/docker.sock` or `tcp://host:2375`; default: `DOCKER_HOST`, then the local socket.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Logins for private registries, tried before `~/.docker/config.json` (`DOCKER_CONFIG`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub registries: Vec<RegistryLogin>,
}

/// A login for one image registry (`ghcr.io`, `127.0.0.1:5000`; `docker.io` for Docker Hub).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistryLogin {
    /// The registry's host, with its port if it has one: `ghcr.io`, `registry.example.com:5000`.
    pub host: String,
    pub username: String,
    /// The password or token; a secret reference such as `${env:REGISTRY_TOKEN}`.
    pub password: SecretString,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostgresProvider {
    /// A libpq URL; usually a secret reference such as `${env:CONVERGE_POSTGRES_URL}`.
    pub url: SecretString,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct S3Provider {
    /// The S3 endpoint URL; default: AWS for the region.
    #[serde(default)]
    pub endpoint: Option<SecretString>,
    #[serde(default = "default_region")]
    pub region: String,
}

fn default_region() -> String {
    "us-east-1".into()
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncPolicy {
    /// How often the agent fetches and re-plans.
    #[serde(default = "default_interval")]
    pub interval: Duration,
    /// Repair drift (true) or only report it (false).
    #[serde(default = "yes")]
    pub self_heal: bool,
    /// Delete managed resources that left the desired state (data-holding ones also need their own `prune: true`).
    #[serde(default)]
    pub prune: bool,
}

impl Default for SyncPolicy {
    fn default() -> Self {
        SyncPolicy {
            interval: default_interval(),
            self_heal: true,
            prune: false,
        }
    }
}

fn default_interval() -> Duration {
    Duration::from_secs(30)
}

fn yes() -> bool {
    true
}
