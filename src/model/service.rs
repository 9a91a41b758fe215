//! The `Service` kind: a containerised process with ports, health, deploy strategy and scale bounds.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::types::{Duration, HostIp, Name, Port, SecretString, Size};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub name: Name,
    /// Image reference, present locally or pulled. Exactly one of `image` and `build`.
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub build: Option<Build>,
    /// When to pull `image`: `missing` (only when it is not on the host), `always` (ask its
    /// registry at every plan and apply, so a tag moved to new content is seen and rolled out),
    /// `never` (a missing image is an error).
    #[serde(default)]
    pub pull: PullPolicy,
    #[serde(default)]
    pub command: Option<Vec<String>>,
    #[serde(default)]
    pub env: BTreeMap<String, SecretString>,
    /// Files of `KEY=VALUE` lines (compose's `.env` syntax), relative to the desired-state
    /// directory; a later file wins, `env` wins over all. Their values are secrets.
    #[serde(default)]
    pub env_file: Vec<String>,
    /// The variables of `env_file`, read by the loader; not written in YAML.
    #[serde(skip)]
    #[schemars(skip)]
    pub env_file_values: super::service_runtime::EnvFileValues,
    #[serde(default)]
    pub ports: Vec<PortMapping>,
    #[serde(default)]
    pub volumes: Vec<VolumeMount>,
    #[serde(default)]
    pub resources: Resources,
    #[serde(default = "one")]
    pub replicas: u32,
    #[serde(default)]
    pub placement: Placement,
    #[serde(default)]
    pub priority: Priority,
    /// Resource ids this service needs first: `database/ytempire`, `service/redis` (a bare name is a service).
    #[serde(default)]
    pub depends_on: Vec<String>,
    #[serde(default)]
    pub health: Option<Health>,
    #[serde(default)]
    pub deploy: Deploy,
    #[serde(default)]
    pub scale: Option<Scale>,
    #[serde(default)]
    pub restart: RestartPolicy,
    /// The container port (one of `ports`) serving Prometheus metrics; Prometheus scrapes the
    /// host port that publishes it. Services without it are not scraped.
    #[serde(default)]
    pub metrics: Option<MetricsEndpoint>,
    /// The container's entrypoint, instead of the image's.
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    /// The user (and group) the process runs as: `app`, `1000`, `1000:1000`; default: the image's.
    #[serde(default)]
    pub user: Option<String>,
    /// The process's working directory, an absolute path; default: the image's.
    #[serde(default)]
    pub working_dir: Option<String>,
    /// Labels on the container; keys starting with `converge.` are converge's own.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Mount the container's root filesystem read-only.
    #[serde(default)]
    pub read_only: bool,
    /// Run an init process as PID 1 that reaps zombies and forwards signals; default: `true`.
    #[serde(default)]
    pub init: Option<bool>,
    /// The signal that stops the container (`SIGTERM`, `SIGQUIT`…); default: the image's, else `SIGTERM`.
    #[serde(default)]
    pub stop_signal: Option<String>,
    /// How long a stopping container may take before it is killed; converge waits this long too.
    #[serde(default)]
    pub stop_grace_period: Option<Duration>,
    /// In-memory filesystems: `PATH` or `PATH:OPTIONS` (`/tmp:size=64m`).
    #[serde(default)]
    pub tmpfs: Vec<String>,
    /// The size of `/dev/shm`; default: the engine's (64 MiB).
    #[serde(default)]
    pub shm_size: Option<Size>,
    /// Kernel parameters set in the container's namespaces.
    #[serde(default)]
    pub sysctls: BTreeMap<String, String>,
    /// Resource limits by name (`nofile`, `nproc`…): a number, or `{soft, hard}`.
    #[serde(default)]
    pub ulimits: BTreeMap<String, super::service_runtime::Ulimit>,
    /// Linux capabilities added to the default set (`NET_ADMIN`).
    #[serde(default)]
    pub cap_add: Vec<String>,
    /// Linux capabilities removed from the default set (`ALL`).
    #[serde(default)]
    pub cap_drop: Vec<String>,
    /// Extra `/etc/hosts` entries: host name to IP address.
    #[serde(default)]
    pub extra_hosts: BTreeMap<String, String>,
    /// Host devices in the container: `HOST[:CONTAINER[:PERMISSIONS]]` (`/dev/fuse`).
    #[serde(default)]
    pub devices: Vec<String>,
    /// More names of the container on the project network, besides the service's name.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Networks beyond the project's, joined too: bridge networks `<project>_<name>` that
    /// converge creates and labels as the project's.
    #[serde(default)]
    pub networks: Vec<super::service_runtime::ServiceNetwork>,
    /// The logging driver and its options; default: the engine's.
    #[serde(default)]
    pub logging: Option<super::service_runtime::Logging>,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Build {
    /// Build context, relative to the desired-state directory.
    pub context: String,
    #[serde(default)]
    pub dockerfile: Option<String>,
    #[serde(default)]
    pub args: BTreeMap<String, String>,
    /// A digest of the files in the context, filled in by the loader so that an edit inside the
    /// context is a change; not written in YAML.
    #[serde(skip)]
    #[schemars(skip)]
    pub context_digest: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricsEndpoint {
    /// A container port from `ports`.
    pub port: Port,
    #[serde(default = "metrics_path")]
    pub path: String,
}

fn metrics_path() -> String {
    "/metrics".into()
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PortMapping {
    pub container: Port,
    /// Host port to publish on; blue-green services publish per color instead.
    #[serde(default)]
    pub host: Option<Port>,
    /// The host address `host` is bound to; default: every interface (`0.0.0.0`), as Docker
    /// Compose does. `127.0.0.1` keeps the port on this host.
    #[serde(default)]
    pub host_ip: Option<HostIp>,
    #[serde(default)]
    pub protocol: Protocol,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VolumeMount {
    /// A named volume (created and owned by converge) or an absolute host path.
    pub source: String,
    pub target: String,
    #[serde(default)]
    pub read_only: bool,
    /// Delete the named volume when the service leaves the desired state. Never by default.
    #[serde(default)]
    pub prune: bool,
}

impl VolumeMount {
    pub fn is_named_volume(&self) -> bool {
        !self.source.starts_with('/') && !self.source.starts_with('.')
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// CPU limit in cores; unlimited when absent.
    #[serde(default)]
    pub cpus: Option<f64>,
    /// Memory limit; unlimited when absent.
    #[serde(default)]
    pub memory: Option<Size>,
    #[serde(default)]
    pub gpus: u32,
    /// GPUs by device id or UUID (`["0", "1"]`), instead of a count in `gpus`.
    #[serde(default)]
    pub gpu_devices: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Placement {
    /// Host names; empty means no constraint by name.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Every label must match; empty means no constraint by label.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Deserialize,
    Serialize,
    JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Critical,
    #[default]
    Normal,
    Low,
}

impl Priority {
    pub fn as_str(&self) -> &'static str {
        match self {
            Priority::Critical => "critical",
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Health {
    #[serde(default)]
    pub http: Option<HttpProbe>,
    #[serde(default)]
    pub tcp: Option<TcpProbe>,
    /// A command run inside the container; exit 0 is healthy.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    #[serde(default = "ten_seconds")]
    pub interval: Duration,
    #[serde(default = "five_seconds")]
    pub timeout: Duration,
    /// Consecutive successes that pass the gate.
    #[serde(default = "one")]
    pub healthy_after: u32,
    /// Attempts before the gate fails.
    #[serde(default = "thirty")]
    pub retries: u32,
    /// Failures this long after the start do not count (the gate's and the engine's health check).
    #[serde(default)]
    pub start_period: Option<Duration>,
}

fn ten_seconds() -> Duration {
    Duration::from_secs(10)
}
fn five_seconds() -> Duration {
    Duration::from_secs(5)
}
fn thirty() -> u32 {
    30
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpProbe {
    pub path: String,
    /// The container port to probe.
    pub port: Port,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TcpProbe {
    pub port: Port,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Deploy {
    #[serde(default)]
    pub strategy: Strategy,
    /// Host port the blue color publishes (blue-green only).
    #[serde(default)]
    pub blue: Option<ColorPort>,
    /// Host port the green color publishes (blue-green only).
    #[serde(default)]
    pub green: Option<ColorPort>,
    /// After the switch, keep probing the new color this long; switch back on failure.
    #[serde(default = "thirty_seconds")]
    pub verify_for: Duration,
    /// Stop the old color this long after the switch.
    #[serde(default = "five_minutes")]
    pub drain: Duration,
}

impl Default for Deploy {
    fn default() -> Self {
        Deploy {
            strategy: Strategy::default(),
            blue: None,
            green: None,
            verify_for: thirty_seconds(),
            drain: five_minutes(),
        }
    }
}

fn thirty_seconds() -> Duration {
    Duration::from_secs(30)
}
fn five_minutes() -> Duration {
    Duration::from_secs(300)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    #[default]
    Recreate,
    Rolling,
    BlueGreen,
}

impl Strategy {
    pub fn as_str(&self) -> &'static str {
        match self {
            Strategy::Recreate => "recreate",
            Strategy::Rolling => "rolling",
            Strategy::BlueGreen => "blue-green",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ColorPort {
    pub port: Port,
    /// The host address the color's port is bound to. `127.0.0.1` (the default) keeps it on this
    /// host, where the Router reaches it (its upstream is `127.0.0.1:PORT`), so clients cannot
    /// go around the Router; `0.0.0.0` publishes it on every interface (e.g. for a Prometheus
    /// on another host).
    #[serde(default = "loopback")]
    pub host_ip: HostIp,
}

fn loopback() -> HostIp {
    HostIp::LOOPBACK
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scale {
    pub min: u32,
    pub max: u32,
    /// No scaling change within this long of the last one.
    #[serde(default = "five_minutes")]
    pub cooldown: Duration,
    /// Scale up by one when any of these holds.
    #[serde(default)]
    pub up: Vec<ScaleRule>,
    /// Scale down by one when all of these hold.
    #[serde(default)]
    pub down: Vec<ScaleRule>,
    #[serde(default)]
    pub queue_depth: Option<QueueDepth>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScaleRule {
    pub metric: Metric,
    #[serde(default)]
    pub above: Option<f64>,
    #[serde(default)]
    pub below: Option<f64>,
    /// How long the condition must hold.
    #[serde(rename = "for", default)]
    pub for_: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Cpu,
    Memory,
    QueueDepth,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueDepth {
    /// Name of a `Database` resource.
    pub database: String,
    /// A query returning one number.
    pub sql: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    No,
    Always,
    #[default]
    UnlessStopped,
    OnFailure,
}

impl RestartPolicy {
    pub fn as_str(&self) -> &'static str {
        match self {
            RestartPolicy::No => "no",
            RestartPolicy::Always => "always",
            RestartPolicy::UnlessStopped => "unless-stopped",
            RestartPolicy::OnFailure => "on-failure",
        }
    }
}

/// Host ports a service publishes: per color for blue-green, `ports[].host` otherwise.
pub fn published_ports(s: &Service) -> Vec<u16> {
    if s.deploy.strategy == Strategy::BlueGreen {
        [&s.deploy.blue, &s.deploy.green]
            .into_iter()
            .flatten()
            .map(|c| c.port.get())
            .collect()
    } else {
        s.ports
            .iter()
            .filter_map(|p| p.host.map(|h| h.get()))
            .collect()
    }
}

/// The host ports that publish a service's metrics port: both colors' ports for blue-green
/// (which publishes its first container port), else the `host` of that port mapping.
pub fn metrics_host_ports(s: &Service) -> Vec<u16> {
    let Some(m) = &s.metrics else {
        return Vec::new();
    };
    if s.deploy.strategy == Strategy::BlueGreen {
        return match s.ports.first() {
            Some(first) if first.container == m.port => published_ports(s),
            _ => Vec::new(),
        };
    }
    s.ports
        .iter()
        .filter(|p| p.container == m.port)
        .filter_map(|p| p.host.map(|h| h.get()))
        .collect()
}

/// The hosts a service may run on.
pub fn hosts_of<'p>(s: &Service, p: &'p crate::model::Project) -> Vec<&'p str> {
    p.hosts
        .iter()
        .filter(|h| {
            s.placement.hosts.is_empty() || s.placement.hosts.iter().any(|x| x == h.name.as_str())
        })
        .filter(|h| {
            s.placement
                .labels
                .iter()
                .all(|(k, v)| h.labels.get(k) == Some(v))
        })
        .map(|h| h.name.as_str())
        .collect()
}

/// When converge pulls a service's image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PullPolicy {
    /// Pull only when the image is not on the host.
    #[default]
    Missing,
    /// Ask the registry every time: a moved tag is seen and pulled.
    Always,
    /// Never pull: the image must be on the host.
    Never,
}

impl PullPolicy {
    pub fn as_str(&self) -> &'static str {
        match self {
            PullPolicy::Missing => "missing",
            PullPolicy::Always => "always",
            PullPolicy::Never => "never",
        }
    }
}
