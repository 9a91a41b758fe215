//! The Docker container runtime (bollard): observes the containers, networks and volumes converge
//! owns and performs the container operations of `ContainerRuntime`. bollard's types stay in
//! this folder.
//! Only objects labelled `converge.managed=true` and `converge.project=<project>` are touched.
//! This file owns the `Docker` client, its inherent container, network, volume and image
//! operations, the bollard error helpers and `FACTORY`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use bollard::models::{NetworkCreateRequest, VolumeCreateRequest};
use bollard::query_parameters::{
    BuildImageOptions, CreateContainerOptions, ListContainersOptions, RemoveContainerOptions,
    RenameContainerOptions, StopContainerOptions,
};
use futures_util::StreamExt;

use crate::providers::runtime::*;

pub mod cgroup;
pub mod credentials;
pub mod digest;
mod networks;
mod observe;
mod pull;
pub mod registry;
mod runtime_impl;
mod spec;

pub(crate) use pull::docker_credentials;
use spec::{create_body, tar_dir};

/// Errors of this runtime are the runtime errors every provider shares.
pub type DockerError = RuntimeError;

pub(crate) fn api(what: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> DockerError {
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
        other if unreachable(other) => format!("no answer: {}", root_cause(other)),
        other => other.to_string(),
    }
}

/// Whether `e` means the engine did not answer (no socket, refused, cut, timed out), as opposed
/// to an answer converge did not like.
fn unreachable(e: &bollard::errors::Error) -> bool {
    use bollard::errors::Error as E;
    matches!(
        e,
        E::HyperLegacyError { .. }
            | E::HyperResponseError { .. }
            | E::IOError { .. }
            | E::RequestTimeoutError
            | E::SocketNotFoundError(_)
    )
}

/// The innermost error of `e`'s sources: `No such file or directory (os error 2)`, `connection
/// closed before message completed` rather than the HTTP client's `client error (Connect)`.
fn root_cause(e: &bollard::errors::Error) -> String {
    let mut last: &dyn std::error::Error = e;
    while let Some(s) = last.source() {
        last = s;
    }
    last.to_string()
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
    /// The engine's address (`unix:///var/run/docker.sock`, `tcp://…`), for messages.
    endpoint: String,
}

impl Docker {
    /// The engine's API client, for the Swarm runtime (which drives the same engine's manager).
    pub fn client(&self) -> &bollard::Docker {
        &self.client
    }

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
            endpoint: shown.clone(),
            message: short(&e),
        })?;
        Ok(Docker {
            client,
            project: project.to_string(),
            endpoint: shown,
        })
    }

    /// Maps a failed call `what` (for `map_err`): the engine not answering is a connection
    /// error naming the endpoint and the call; any other error is the engine's answer.
    fn fail(&self, what: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> DockerError {
        let (what, endpoint) = (what.into(), self.endpoint.clone());
        move |e| {
            if unreachable(&e) {
                DockerError::Connect {
                    endpoint,
                    message: format!("{what}: {}", root_cause(&e)),
                }
            } else {
                api(what)(e)
            }
        }
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
                endpoint: self.endpoint.clone(),
                message: if unreachable(&e) {
                    root_cause(&e)
                } else {
                    short(&e)
                },
            })
    }

    pub(crate) fn filters(&self, extra: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
        let mut labels = vec![
            format!("{MANAGED}=true"),
            format!("{PROJECT}={}", self.project),
        ];
        labels.extend(extra.iter().map(|(k, v)| format!("{k}={v}")));
        HashMap::from([("label".to_string(), labels)])
    }

    pub(crate) fn labels(&self, extra: &[(&str, String)]) -> HashMap<String, String> {
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
            .map_err(self.fail(format!("create network {}", self.project)))
    }

    /// Removes the project's network and the services' extra networks (`networks.rs`) with it.
    pub async fn remove_network(&self) -> Result<(), DockerError> {
        let mut names = self.service_networks().await?;
        names.push(self.project.clone());
        for name in names {
            match self.client.remove_network(&name).await {
                Err(e) if !not_found(&e) => {
                    return Err(self.fail(format!("remove network {name}"))(e))
                }
                _ => {}
            }
        }
        Ok(())
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
            .map_err(self.fail(format!("create volume {logical}")))
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
            Err(e) if !not_found(&e) => Err(self.fail(format!("remove volume {name}"))(e)),
            _ => Ok(()),
        }
    }

    /// The volume's mount point on this host, where the engine keeps its data.
    pub async fn volume_dir(
        &self,
        logical: &str,
    ) -> Result<Option<std::path::PathBuf>, DockerError> {
        let name = self.volume_name(logical);
        match self.client.inspect_volume(&name).await {
            Ok(v) => Ok(Some(std::path::PathBuf::from(v.mountpoint))),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(self.fail(format!("inspect volume {name}"))(e)),
        }
    }

    /// Makes sure `image` is present as `policy` says: pulled when missing (`missing`), pulled
    /// every time (`always`), never pulled (`never`: a missing image is an error). See `pull.rs`.
    pub async fn ensure_image(
        &self,
        image: &str,
        login: Option<credentials::Login>,
        policy: crate::model::service::PullPolicy,
    ) -> Result<(), DockerError> {
        use crate::model::service::PullPolicy;
        if policy == PullPolicy::Always {
            return self.pull(image, login).await;
        }
        if self.client.inspect_image(image).await.is_ok() {
            return Ok(());
        }
        if policy == PullPolicy::Never {
            return Err(DockerError::NotPulled {
                image: image.to_string(),
            });
        }
        self.pull(image, login).await
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
            let info = item.map_err(self.fail(format!("build {tag}")))?;
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
        let digest = self.resolved_digest(&spec.image).await;
        let extra: Vec<_> = digest
            .into_iter()
            .map(|d| (digest::IMAGE_DIGEST, d))
            .collect();
        let body = create_body(spec, self.labels(&extra));
        self.client
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(spec.name.clone()),
                    ..Default::default()
                }),
                body,
            )
            .await
            .map_err(self.fail(format!("create container {}", spec.name)))?;
        self.join_networks(spec).await?;
        self.start(&spec.name).await
    }

    pub async fn start(&self, name: &str) -> Result<(), DockerError> {
        self.client
            .start_container(
                name,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await
            .map_err(self.fail(format!("start container {name}")))
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
                Err(self.fail(format!("stop container {name}"))(e))
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
            Err(e) if !not_found(&e) => Err(self.fail(format!("remove container {name}"))(e)),
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
            .map_err(self.fail(format!("rename container {from} to {to}")))
    }

    /// The engine's view of a container; `None` when it does not exist.
    pub(super) async fn inspect(
        &self,
        name: &str,
    ) -> Result<Option<bollard::models::ContainerInspectResponse>, DockerError> {
        match self
            .client
            .inspect_container(
                name,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
        {
            Ok(i) => Ok(Some(i)),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(self.fail(format!("inspect container {name}"))(e)),
        }
    }

    /// `None` when the container does not exist.
    pub async fn status(&self, name: &str) -> Result<Option<ContainerStatus>, DockerError> {
        let Some(info) = self.inspect(name).await? else {
            return Ok(None);
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
            .map_err(self.fail(format!("exec in {name}")))?;
        if let bollard::exec::StartExecResults::Attached { mut output, .. } = self
            .client
            .start_exec(&exec.id, None)
            .await
            .map_err(self.fail(format!("exec in {name}")))?
        {
            while output.next().await.is_some() {}
        }
        let inspect = self
            .client
            .inspect_exec(&exec.id)
            .await
            .map_err(self.fail(format!("exec in {name}")))?;
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
            .map_err(self.fail("list containers"))
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
            Some(r) => r.map_err(self.fail(format!("stats of {name}")))?,
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

/// Docker runs services when the desired state has any, or the Project names the engine.
pub const FACTORY: crate::providers::registry::Factory = crate::providers::registry::Factory {
    name: "docker",
    kinds: crate::providers::services::KINDS,
    // With `providers.swarm`, Swarm runs the services instead.
    wanted: |d| {
        d.project.providers.swarm.is_none()
            && (d.project.providers.docker.is_some()
                || crate::providers::registry::has_kind(d, crate::providers::services::KINDS))
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
