//! The Docker container runtime (bollard): observes the containers, networks and volumes converge
//! owns and performs the container operations of `ContainerRuntime`. bollard's types stay here.
//! Only objects labelled `converge.managed=true` and `converge.project=<project>` are touched.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use bollard::models::{
    ContainerCreateBody, DeviceRequest, EndpointSettings, HostConfig, Mount, MountType,
    NetworkCreateRequest, NetworkingConfig, PortBinding, RestartPolicy, RestartPolicyNameEnum,
    VolumeCreateRequest,
};
use bollard::query_parameters::{
    BuildImageOptions, CreateContainerOptions, CreateImageOptions, ListContainersOptions,
    ListNetworksOptions, ListVolumesOptions, RemoveContainerOptions, RenameContainerOptions,
    StopContainerOptions,
};
use futures_util::StreamExt;

use crate::model::live::{Color, LiveContainer, LiveResource, LiveService, LiveState, LiveVolume};
use crate::model::{Attributes, ResourceId};
use crate::providers::runtime::*;

pub mod cgroup;

/// How many Docker stats calls are in flight at once: each waits for the engine's next
/// once-a-second collection, so they should all wait for the same one.
const CONCURRENCY: usize = 128;

/// Errors of this runtime are the runtime errors every provider shares.
pub type DockerError = RuntimeError;

fn api(what: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> DockerError {
    let what = what.into();
    move |e| DockerError::Api {
        what,
        message: short(&e),
    }
}

fn short(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        } => format!("{message} ({status_code})"),
        other => other.to_string(),
    }
}

fn not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

pub struct Docker {
    client: bollard::Docker,
    project: String,
}

impl Docker {
    /// `endpoint`: `unix:///path` or `tcp://host:port`; default: `DOCKER_HOST`, then the local socket.
    pub fn connect(endpoint: Option<&str>, project: &str) -> Result<Docker, DockerError> {
        let shown = endpoint
            .map(str::to_string)
            .or_else(|| std::env::var("DOCKER_HOST").ok())
            .unwrap_or_else(|| "unix:///var/run/docker.sock".into());
        let client = match endpoint {
            Some(e) => bollard::Docker::connect_with_host(e),
            None => bollard::Docker::connect_with_defaults(),
        }
        .map_err(|e| DockerError::Connect {
            endpoint: shown,
            message: short(&e),
        })?;
        Ok(Docker {
            client,
            project: project.to_string(),
        })
    }

    pub fn project(&self) -> &str {
        &self.project
    }

    pub async fn ping(&self) -> Result<(), DockerError> {
        self.client
            .ping()
            .await
            .map(|_| ())
            .map_err(|e| DockerError::Connect {
                endpoint: "the Docker engine".into(),
                message: short(&e),
            })
    }

    fn filters(&self, extra: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
        let mut labels = vec![
            format!("{MANAGED}=true"),
            format!("{PROJECT}={}", self.project),
        ];
        labels.extend(extra.iter().map(|(k, v)| format!("{k}={v}")));
        HashMap::from([("label".to_string(), labels)])
    }

    /// Fills `live` with this project's containers (grouped by service), network and volumes.
    pub async fn observe(&self, live: &mut LiveState) -> Result<(), DockerError> {
        let containers = self.list(&[]).await?;
        let mut by_service: BTreeMap<ResourceId, Vec<(i64, LiveContainer, Option<String>)>> =
            BTreeMap::new();
        for c in containers {
            let labels = c.labels.unwrap_or_default();
            let Some(id) = labels
                .get(RESOURCE)
                .and_then(|r| ResourceId::parse(r, None))
            else {
                continue;
            };
            let name = c
                .names
                .and_then(|n| n.into_iter().next())
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string();
            if is_retired(&name) {
                continue;
            }
            let running = matches!(
                c.state,
                Some(bollard::models::ContainerSummaryStateEnum::RUNNING)
            );
            let container = LiveContainer {
                name,
                color: labels.get(COLOR).and_then(|c| match c.as_str() {
                    "blue" => Some(Color::Blue),
                    "green" => Some(Color::Green),
                    _ => None,
                }),
                replica: labels
                    .get(REPLICA)
                    .and_then(|r| r.parse().ok())
                    .unwrap_or(0),
                spec_hash: labels.get(SPEC_HASH).cloned().unwrap_or_default(),
                running,
                revision: labels.get(REVISION).cloned().filter(|r| !r.is_empty()),
            };
            by_service.entry(id).or_default().push((
                c.created.unwrap_or(0),
                container,
                labels.get(SPEC).cloned(),
            ));
        }
        for (id, mut cs) in by_service {
            cs.sort_by(|a, b| a.1.name.cmp(&b.1.name));
            let newest_running = cs
                .iter()
                .filter(|c| c.1.running)
                .max_by_key(|c| c.0)
                .and_then(|c| c.1.color);
            let attributes = cs
                .iter()
                .find(|c| c.1.running)
                .or(cs.first())
                .and_then(|c| c.2.as_deref())
                .and_then(|json| serde_json::from_str::<Attributes>(json).ok())
                .unwrap_or_default();
            live.resources.insert(
                id,
                LiveResource {
                    attributes,
                    service: Some(LiveService {
                        containers: cs.into_iter().map(|c| c.1).collect(),
                        active_color: newest_running,
                    }),
                    ..Default::default()
                },
            );
        }
        let networks = self
            .client
            .list_networks(Some(ListNetworksOptions {
                filters: Some(self.filters(&[])),
            }))
            .await
            .map_err(api("list networks"))?;
        for n in networks {
            if let Some(name) = n.name {
                live.networks.insert(name);
            }
        }
        let volumes = self
            .client
            .list_volumes(Some(ListVolumesOptions {
                filters: Some(self.filters(&[])),
            }))
            .await
            .map_err(api("list volumes"))?;
        let prefix = format!("{}_", self.project);
        for v in volumes.volumes.unwrap_or_default() {
            if let Some(logical) = v.name.strip_prefix(&prefix) {
                let prune = v.labels.get(PRUNE).is_some_and(|p| p == "true");
                live.volumes
                    .insert(logical.to_string(), LiveVolume { prune });
            }
        }
        Ok(())
    }

    fn labels(&self, extra: &[(&str, String)]) -> HashMap<String, String> {
        let mut labels = HashMap::from([
            (MANAGED.to_string(), "true".to_string()),
            (PROJECT.to_string(), self.project.clone()),
        ]);
        labels.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        labels
    }

    /// Docker's name for a logical volume: `<project>_<name>`.
    pub fn volume_name(&self, logical: &str) -> String {
        format!("{}_{logical}", self.project)
    }

    pub async fn create_network(&self) -> Result<(), DockerError> {
        let req = NetworkCreateRequest {
            name: self.project.clone(),
            driver: Some("bridge".into()),
            labels: Some(self.labels(&[])),
            ..Default::default()
        };
        self.client
            .create_network(req)
            .await
            .map(|_| ())
            .map_err(api(format!("create network {}", self.project)))
    }

    pub async fn remove_network(&self) -> Result<(), DockerError> {
        match self.client.remove_network(&self.project).await {
            Err(e) if !not_found(&e) => Err(api(format!("remove network {}", self.project))(e)),
            _ => Ok(()),
        }
    }

    pub async fn create_volume(&self, logical: &str, prune: bool) -> Result<(), DockerError> {
        let req = VolumeCreateRequest {
            name: Some(self.volume_name(logical)),
            labels: Some(self.labels(&[(PRUNE, prune.to_string())])),
            ..Default::default()
        };
        self.client
            .create_volume(req)
            .await
            .map(|_| ())
            .map_err(api(format!("create volume {logical}")))
    }

    pub async fn remove_volume(&self, logical: &str) -> Result<(), DockerError> {
        let name = self.volume_name(logical);
        match self
            .client
            .remove_volume(
                &name,
                None::<bollard::query_parameters::RemoveVolumeOptions>,
            )
            .await
        {
            Err(e) if !not_found(&e) => Err(api(format!("remove volume {name}"))(e)),
            _ => Ok(()),
        }
    }

    /// Makes sure `image` is present: inspect, else pull.
    pub async fn ensure_image(&self, image: &str) -> Result<(), DockerError> {
        if self.client.inspect_image(image).await.is_ok() {
            return Ok(());
        }
        let (repo, tag) = split_image(image);
        let mut stream = self.client.create_image(
            Some(CreateImageOptions {
                from_image: Some(repo.to_string()),
                tag: Some(tag.to_string()),
                ..Default::default()
            }),
            None,
            None,
        );
        while let Some(item) = stream.next().await {
            item.map_err(|e| DockerError::Image {
                image: image.to_string(),
                message: short(&e),
            })?;
        }
        Ok(())
    }

    /// Builds `context` (a directory) into `tag`.
    pub async fn build_image(
        &self,
        context: &Path,
        dockerfile: Option<&str>,
        args: &BTreeMap<String, String>,
        tag: &str,
    ) -> Result<(), DockerError> {
        let tarball = tar_dir(context).map_err(|e| DockerError::Api {
            what: format!("read build context {}", context.display()),
            message: e.to_string(),
        })?;
        let options = BuildImageOptions {
            dockerfile: dockerfile.unwrap_or("Dockerfile").to_string(),
            t: Some(tag.to_string()),
            rm: true,
            forcerm: true,
            buildargs: Some(args.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
            ..Default::default()
        };
        let mut stream =
            self.client
                .build_image(options, None, Some(bollard::body_full(tarball.into())));
        while let Some(item) = stream.next().await {
            let info = item.map_err(api(format!("build {tag}")))?;
            if let Some(err) = info.error_detail.and_then(|d| d.message) {
                return Err(DockerError::Api {
                    what: format!("build {tag}"),
                    message: err,
                });
            }
        }
        Ok(())
    }

    /// Creates and starts a container.
    pub async fn run(&self, spec: &ContainerSpec) -> Result<(), DockerError> {
        let body = create_body(spec, self.labels(&[]));
        self.client
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(spec.name.clone()),
                    ..Default::default()
                }),
                body,
            )
            .await
            .map_err(api(format!("create container {}", spec.name)))?;
        self.start(&spec.name).await
    }

    pub async fn start(&self, name: &str) -> Result<(), DockerError> {
        self.client
            .start_container(
                name,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await
            .map_err(api(format!("start container {name}")))
    }

    /// Stops a container, giving it `grace_secs` to exit after SIGTERM.
    pub async fn stop(&self, name: &str, grace_secs: i32) -> Result<(), DockerError> {
        match self
            .client
            .stop_container(
                name,
                Some(StopContainerOptions {
                    t: Some(grace_secs),
                    signal: None,
                }),
            )
            .await
        {
            Err(e)
                if !not_found(&e)
                    && !matches!(
                        &e,
                        bollard::errors::Error::DockerResponseServerError {
                            status_code: 304,
                            ..
                        }
                    ) =>
            {
                Err(api(format!("stop container {name}"))(e))
            }
            _ => Ok(()),
        }
    }

    /// Removes a container (stopping it first); a missing one is fine.
    pub async fn remove(&self, name: &str) -> Result<(), DockerError> {
        match self
            .client
            .remove_container(
                name,
                Some(RemoveContainerOptions {
                    force: true,
                    v: false,
                    link: false,
                }),
            )
            .await
        {
            Err(e) if !not_found(&e) => Err(api(format!("remove container {name}"))(e)),
            _ => Ok(()),
        }
    }

    pub async fn rename(&self, from: &str, to: &str) -> Result<(), DockerError> {
        self.client
            .rename_container(
                from,
                RenameContainerOptions {
                    name: to.to_string(),
                },
            )
            .await
            .map_err(api(format!("rename container {from} to {to}")))
    }

    /// `None` when the container does not exist.
    pub async fn status(&self, name: &str) -> Result<Option<ContainerStatus>, DockerError> {
        let info = match self
            .client
            .inspect_container(
                name,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
        {
            Ok(i) => i,
            Err(e) if not_found(&e) => return Ok(None),
            Err(e) => return Err(api(format!("inspect container {name}"))(e)),
        };
        let state = info.state.unwrap_or_default();
        let ip = info
            .network_settings
            .and_then(|n| n.networks)
            .and_then(|nets| nets.get(&self.project).and_then(|e| e.ip_address.clone()))
            .filter(|ip| !ip.is_empty());
        Ok(Some(ContainerStatus {
            running: state.running.unwrap_or(false),
            exit_code: state.exit_code,
            ip,
        }))
    }

    /// Runs `cmd` inside a container; returns its exit code.
    pub async fn exec(&self, name: &str, cmd: &[String]) -> Result<i64, DockerError> {
        let exec = self
            .client
            .create_exec(
                name,
                bollard::exec::CreateExecOptions {
                    cmd: Some(cmd.to_vec()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .map_err(api(format!("exec in {name}")))?;
        if let bollard::exec::StartExecResults::Attached { mut output, .. } = self
            .client
            .start_exec(&exec.id, None)
            .await
            .map_err(api(format!("exec in {name}")))?
        {
            while output.next().await.is_some() {}
        }
        let inspect = self
            .client
            .inspect_exec(&exec.id)
            .await
            .map_err(api(format!("exec in {name}")))?;
        Ok(inspect.exit_code.unwrap_or(-1))
    }

    /// This project's containers (with `extra` label filters), stopped ones included.
    async fn list(
        &self,
        extra: &[(&str, &str)],
    ) -> Result<Vec<bollard::models::ContainerSummary>, DockerError> {
        self.client
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(self.filters(extra)),
                ..Default::default()
            }))
            .await
            .map_err(api("list containers"))
    }

    async fn names(&self, extra: &[(&str, &str)]) -> Result<Vec<String>, DockerError> {
        let mut names: Vec<String> = self
            .list(extra)
            .await?
            .into_iter()
            .filter_map(|c| c.names.and_then(|n| n.into_iter().next()))
            .map(|n| n.trim_start_matches('/').to_string())
            .collect();
        names.sort();
        Ok(names)
    }

    /// Full container ids of this project's containers, by name.
    pub async fn ids(&self) -> Result<BTreeMap<String, String>, DockerError> {
        Ok(self
            .list(&[])
            .await?
            .into_iter()
            .filter_map(|c| {
                let name = c.names?.into_iter().next()?;
                Some((name.trim_start_matches('/').to_string(), c.id?))
            })
            .collect())
    }

    /// One reading of a container's counters, without waiting for a second sample (`one-shot`):
    /// the caller keeps the previous reading to turn CPU time into a rate.
    pub async fn stats(&self, name: &str) -> Result<ContainerReading, DockerError> {
        use futures_util::StreamExt;
        let opts = bollard::query_parameters::StatsOptions {
            stream: false,
            one_shot: true,
        };
        let mut stream = self.client.stats(name, Some(opts));
        let s = match stream.next().await {
            Some(r) => r.map_err(api(format!("stats of {name}")))?,
            None => {
                return Err(DockerError::Api {
                    what: format!("stats of {name}"),
                    message: "no reading".into(),
                })
            }
        };
        let cpu = s.cpu_stats.as_ref();
        let mem = s.memory_stats.as_ref();
        // What `docker stats` shows: usage less the page cache that can be dropped.
        let inactive = mem
            .and_then(|m| m.stats.as_ref())
            .and_then(|st| st.get("inactive_file").copied())
            .unwrap_or(0);
        Ok(ContainerReading {
            cpu_ns: cpu
                .and_then(|c| c.cpu_usage.as_ref())
                .and_then(|u| u.total_usage)
                .unwrap_or(0),
            online_cpus: cpu.and_then(|c| c.online_cpus).unwrap_or(1),
            memory_bytes: mem
                .and_then(|m| m.usage)
                .unwrap_or(0)
                .saturating_sub(inactive),
            memory_limit: mem.and_then(|m| m.limit).unwrap_or(0),
        })
    }

    /// Names of all this project's containers, retired ones included.
    pub async fn all_names(&self) -> Result<Vec<String>, DockerError> {
        self.names(&[]).await
    }

    /// Names of this project's containers for `resource`, retired ones included.
    pub async fn container_names(&self, resource: &str) -> Result<Vec<String>, DockerError> {
        self.names(&[(RESOURCE, resource)]).await
    }
}

#[async_trait::async_trait]
impl ContainerRuntime for Docker {
    fn project(&self) -> &str {
        Docker::project(self)
    }
    async fn ping(&self) -> Result<(), RuntimeError> {
        Docker::ping(self).await
    }
    async fn observe(&self, live: &mut LiveState) -> Result<(), RuntimeError> {
        Docker::observe(self, live).await
    }
    fn volume_name(&self, logical: &str) -> String {
        Docker::volume_name(self, logical)
    }
    async fn create_network(&self) -> Result<(), RuntimeError> {
        Docker::create_network(self).await
    }
    async fn remove_network(&self) -> Result<(), RuntimeError> {
        Docker::remove_network(self).await
    }
    async fn create_volume(&self, logical: &str, prune: bool) -> Result<(), RuntimeError> {
        Docker::create_volume(self, logical, prune).await
    }
    async fn remove_volume(&self, logical: &str) -> Result<(), RuntimeError> {
        Docker::remove_volume(self, logical).await
    }
    async fn ensure_image(&self, image: &str) -> Result<(), RuntimeError> {
        Docker::ensure_image(self, image).await
    }
    async fn build_image(
        &self,
        context: &Path,
        dockerfile: Option<&str>,
        args: &BTreeMap<String, String>,
        tag: &str,
    ) -> Result<(), RuntimeError> {
        Docker::build_image(self, context, dockerfile, args, tag).await
    }
    async fn run(&self, spec: &ContainerSpec) -> Result<(), RuntimeError> {
        Docker::run(self, spec).await
    }
    async fn start(&self, name: &str) -> Result<(), RuntimeError> {
        Docker::start(self, name).await
    }
    async fn stop(&self, name: &str, grace_secs: i32) -> Result<(), RuntimeError> {
        Docker::stop(self, name, grace_secs).await
    }
    async fn remove(&self, name: &str) -> Result<(), RuntimeError> {
        Docker::remove(self, name).await
    }
    async fn rename(&self, from: &str, to: &str) -> Result<(), RuntimeError> {
        Docker::rename(self, from, to).await
    }
    async fn status(&self, name: &str) -> Result<Option<ContainerStatus>, RuntimeError> {
        Docker::status(self, name).await
    }
    async fn exec(&self, name: &str, cmd: &[String]) -> Result<i64, RuntimeError> {
        Docker::exec(self, name, cmd).await
    }
    async fn ids(&self) -> Result<BTreeMap<String, String>, RuntimeError> {
        Docker::ids(self).await
    }
    async fn stats(&self, name: &str) -> Result<ContainerReading, RuntimeError> {
        Docker::stats(self, name).await
    }
    async fn all_names(&self) -> Result<Vec<String>, RuntimeError> {
        Docker::all_names(self).await
    }
    async fn container_names(&self, resource: &str) -> Result<Vec<String>, RuntimeError> {
        Docker::container_names(self, resource).await
    }
    async fn readings(
        &self,
        names: &[String],
    ) -> BTreeMap<String, Result<ContainerReading, RuntimeError>> {
        if names.is_empty() {
            return BTreeMap::new();
        }
        // A local container's counters come from its cgroup (microseconds); the others from the
        // stats API, all calls in flight at once.
        let ids = self.ids().await.unwrap_or_default();
        let cgroups = cgroup::Cgroups::default();
        let mut out = BTreeMap::new();
        let mut remote = Vec::new();
        for name in names {
            match ids.get(name).and_then(|id| cgroups.read(id)) {
                Some(r) => {
                    out.insert(name.clone(), Ok(r));
                }
                None => remote.push(name.clone()),
            }
        }
        let from_api: Vec<(String, Result<ContainerReading, RuntimeError>)> =
            futures_util::stream::iter(remote)
                .map(|name| async move {
                    let r = Docker::stats(self, &name).await;
                    (name, r)
                })
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await;
        out.extend(from_api);
        out
    }
}

fn split_image(image: &str) -> (&str, &str) {
    match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (image, "latest"),
    }
}

fn create_body(spec: &ContainerSpec, mut labels: HashMap<String, String>) -> ContainerCreateBody {
    labels.extend(spec.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    let mut exposed = Vec::new();
    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for (container, proto, host) in &spec.ports {
        let key = format!("{container}/{proto}");
        exposed.push(key.clone());
        if let Some(h) = host {
            bindings.insert(
                key,
                Some(vec![PortBinding {
                    host_ip: Some("0.0.0.0".into()),
                    host_port: Some(h.to_string()),
                }]),
            );
        }
    }
    let mounts = spec
        .mounts
        .iter()
        .map(|(source, target, read_only, volume)| Mount {
            source: Some(source.clone()),
            target: Some(target.clone()),
            read_only: Some(*read_only),
            typ: Some(if *volume {
                MountType::VOLUME
            } else {
                MountType::BIND
            }),
            ..Default::default()
        })
        .collect();
    let restart = match spec.restart.as_str() {
        "no" => RestartPolicyNameEnum::NO,
        "always" => RestartPolicyNameEnum::ALWAYS,
        "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
        _ => RestartPolicyNameEnum::UNLESS_STOPPED,
    };
    let device_requests = (spec.gpus > 0).then(|| {
        vec![DeviceRequest {
            count: Some(spec.gpus as i64),
            capabilities: Some(vec![vec!["gpu".into()]]),
            ..Default::default()
        }]
    });
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: spec.command.clone(),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(labels),
        exposed_ports: Some(exposed),
        host_config: Some(HostConfig {
            port_bindings: Some(bindings),
            mounts: Some(mounts),
            nano_cpus: spec.cpus.map(|c| (c * 1e9) as i64),
            memory: spec.memory.map(|m| m as i64),
            device_requests,
            restart_policy: Some(RestartPolicy {
                name: Some(restart),
                maximum_retry_count: None,
            }),
            network_mode: Some(spec.network.clone()),
            init: Some(true),
            ..Default::default()
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                spec.network.clone(),
                EndpointSettings {
                    aliases: Some(spec.aliases.clone()),
                    ..Default::default()
                },
            )])),
        }),
        ..Default::default()
    }
}

/// A tar of `dir` for the build API.
fn tar_dir(dir: &Path) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    builder.append_dir_all(".", dir)?;
    builder.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_split_into_repository_and_tag() {
        assert_eq!(split_image("ytempire/api:1.4.2"), ("ytempire/api", "1.4.2"));
        assert_eq!(
            split_image("localhost:5000/api"),
            ("localhost:5000/api", "latest")
        );
        assert_eq!(split_image("busybox"), ("busybox", "latest"));
    }

    #[test]
    fn retired_names_are_recognised() {
        assert!(is_retired("p-api-1.old-1732790000"));
        assert!(!is_retired("p-api-1"));
    }
}

/// Docker runs services when the desired state has any, or the Project names the engine.
pub const FACTORY: crate::providers::registry::Factory = crate::providers::registry::Factory {
    name: "docker",
    subjects: crate::providers::services::SUBJECTS,
    wanted: |d| {
        d.project.providers.docker.is_some()
            || crate::providers::registry::has_kind(d, crate::providers::services::SUBJECTS)
    },
    secret_free: true,
    connect: |d, _| {
        Box::pin(async move {
            let endpoint = d
                .project
                .providers
                .docker
                .as_ref()
                .and_then(|x| x.endpoint.as_deref());
            let docker = Docker::connect(endpoint, d.project.name.as_str())?;
            docker.ping().await?;
            let provider =
                crate::providers::services::ServiceProvider::new(std::sync::Arc::new(docker));
            Ok(std::sync::Arc::new(provider) as std::sync::Arc<dyn crate::providers::Provider>)
        })
    },
};
