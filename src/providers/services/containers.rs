//! Containers of a service: their specs (labels, ports, mounts, resolved env) and the
//! operations steps are made of: start a set (health-gated), replace, scale, stop, remove.

use std::collections::BTreeMap;

use crate::model::live::Color;
use crate::model::service::{Protocol, Strategy};
use crate::model::service_runtime::{stop_grace_secs, RuntimeOptions};
use crate::model::types::{HostIp, SecretString};
use crate::model::{Attributes, Resource, Service};
use crate::providers::health;
use crate::providers::runtime::{self as docker, ContainerRuntime, ContainerSpec};
use crate::providers::Context;

use super::error::ContainerError;

/// A step's context with the runtime the service runs on.
pub struct Ctx<'a> {
    pub base: &'a Context<'a>,
    pub docker: &'a dyn ContainerRuntime,
}

impl<'a> std::ops::Deref for Ctx<'a> {
    type Target = Context<'a>;
    fn deref(&self) -> &Context<'a> {
        self.base
    }
}

/// `<project>-<service>-<n>`, or `<project>-<service>-<color>-<n>` for blue-green.
pub fn container_name(project: &str, service: &str, color: Option<Color>, replica: u32) -> String {
    match color {
        Some(c) => format!("{project}-{service}-{c}-{replica}"),
        None => format!("{project}-{service}-{replica}"),
    }
}

/// The spec attributes (secrets as keyed digests) and their hash, as labelled on containers.
pub fn spec_attributes(secrets: &crate::secrets::Secrets, s: &Service) -> Attributes {
    let all = Resource::Service(s.clone()).attributes(secrets);
    Attributes(all.0.into_iter().filter(|(_, a)| a.replaces).collect())
}

/// Pulls or builds the image; returns the reference to run.
pub async fn image_for(ctx: &Ctx<'_>, s: &Service) -> Result<String, ContainerError> {
    let image_error = |error| ContainerError::Image {
        service: s.name.to_string(),
        error,
    };
    if let Some(image) = &s.image {
        let host = crate::providers::docker::registry::ImageRef::parse(image).host;
        let login = crate::providers::docker::credentials::configured(
            &ctx.desired.project,
            ctx.secrets,
            host,
        )
        .map_err(|error| ContainerError::RegistrySecret {
            service: s.name.to_string(),
            host: host.to_string(),
            error,
        })?;
        ctx.docker
            .ensure_image(image, login, s.pull)
            .await
            .map_err(image_error)?;
        return Ok(image.clone());
    }
    let b = s.build.as_ref().ok_or_else(|| ContainerError::NoImage {
        service: s.name.to_string(),
    })?;
    let hash = spec_attributes(ctx.secrets, s).spec_hash();
    let tag = format!("converge/{}-{}:{hash}", ctx.desired.project.name, s.name);
    let dir = ctx.root.join(&b.context);
    ctx.docker
        .build_image(&dir, b.dockerfile.as_deref(), &b.args, &tag)
        .await
        .map_err(image_error)?;
    Ok(tag)
}

/// One variable of a service's environment, resolved (never logged).
pub struct ResolvedVar {
    pub name: String,
    pub value: String,
    /// From a secret reference or an env file.
    pub secret: bool,
}

/// A service's `env` and then its env-file variables (`env` wins), resolved; the error names the
/// variable whose reference cannot be resolved. Env-file values go through `resolve` too, so
/// that a drill's renamed databases apply to them.
pub fn resolved_env(
    secrets: &crate::secrets::Secrets,
    s: &Service,
) -> Result<Vec<ResolvedVar>, (String, crate::secrets::SecretError)> {
    let mut env = Vec::new();
    for (k, v) in &s.env {
        env.push(ResolvedVar {
            name: k.clone(),
            value: secrets.resolve(v).map_err(|e| (k.clone(), e))?,
            secret: v.is_sensitive(),
        });
    }
    for (k, v) in &s.env_file_values.0 {
        if !s.env.contains_key(k) {
            env.push(ResolvedVar {
                name: k.clone(),
                value: secrets
                    .resolve(&SecretString::plain(v))
                    .map_err(|e| (k.clone(), e))?,
                secret: true,
            });
        }
    }
    Ok(env)
}

fn spec(
    ctx: &Ctx,
    s: &Service,
    color: Option<Color>,
    replica: u32,
    image: &str,
) -> Result<ContainerSpec, ContainerError> {
    let project = ctx.desired.project.name.as_str();
    let attrs = spec_attributes(ctx.secrets, s);
    let env = resolved_env(ctx.secrets, s)
        .map_err(|(key, error)| ContainerError::Secret {
            service: s.name.to_string(),
            key,
            error,
        })?
        .into_iter()
        .map(|v| (v.name, v.value))
        .collect();
    let bg_port = match color {
        Some(Color::Blue) => s.deploy.blue.as_ref(),
        Some(Color::Green) => s.deploy.green.as_ref(),
        None => None,
    }
    .map(|p| (p.host_ip.get(), p.port.get()));
    let ports = s
        .ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let proto = if p.protocol == Protocol::Udp {
                "udp"
            } else {
                "tcp"
            };
            let host = if s.deploy.strategy == Strategy::BlueGreen {
                bg_port.filter(|_| i == 0)
            } else {
                let ip = p.host_ip.unwrap_or(HostIp::ANY);
                p.host.map(|h| (ip.get(), h.get()))
            };
            (p.container.get(), proto.to_string(), host)
        })
        .collect();
    let mounts = s
        .volumes
        .iter()
        .map(|v| {
            let source = if v.is_named_volume() {
                ctx.docker.volume_name(&v.source)
            } else {
                v.source.clone()
            };
            (source, v.target.clone(), v.read_only, v.is_named_volume())
        })
        .collect();
    let mut labels = BTreeMap::from([
        (docker::RESOURCE.to_string(), format!("service/{}", s.name)),
        (docker::REPLICA.to_string(), replica.to_string()),
        (docker::SPEC_HASH.to_string(), attrs.spec_hash()),
        (
            docker::SPEC.to_string(),
            serde_json::to_string(&attrs).expect("attributes serialize"),
        ),
        (
            docker::REVISION.to_string(),
            ctx.revision.unwrap_or("").to_string(),
        ),
    ]);
    if let Some(c) = color {
        labels.insert(docker::COLOR.to_string(), c.to_string());
    }
    Ok(ContainerSpec {
        name: container_name(project, s.name.as_str(), color, replica),
        image: image.to_string(),
        command: s.command.clone(),
        env,
        labels,
        ports,
        mounts,
        cpus: s.resources.cpus,
        memory: s.resources.memory.map(|m| m.bytes()),
        gpus: s.resources.gpus,
        restart: s.restart.as_str().to_string(),
        network: project.to_string(),
        aliases: std::iter::once(s.name.to_string())
            .chain(s.aliases.iter().cloned())
            .collect(),
        options: RuntimeOptions::of(s),
    })
}

/// Starts one replica and waits for its health gate (when the service declares one).
pub async fn start_one(
    ctx: &Ctx<'_>,
    s: &Service,
    color: Option<Color>,
    replica: u32,
    image: &str,
) -> Result<String, ContainerError> {
    let spec = spec(ctx, s, color, replica, image)?;
    ctx.docker
        .remove(&spec.name)
        .await
        .map_err(ContainerError::runtime(&spec.name))?;
    ctx.docker
        .run(&spec)
        .await
        .map_err(ContainerError::runtime(&spec.name))?;
    if let Some(h) = &s.health {
        if let Err(e) = health::gate(ctx.docker, &spec.name, h).await {
            let _ = ctx.docker.remove(&spec.name).await;
            return Err(e.into());
        }
    }
    Ok(spec.name)
}

/// Starts `replicas`; when one fails, the ones this call started are removed again.
pub async fn start_set(
    ctx: &Ctx<'_>,
    s: &Service,
    color: Option<Color>,
    replicas: &[u32],
) -> Result<Vec<String>, ContainerError> {
    let image = image_for(ctx, s).await?;
    let mut started = Vec::new();
    for &r in replicas {
        match start_one(ctx, s, color, r, &image).await {
            Ok(name) => started.push(name),
            Err(e) => {
                remove_all(ctx.docker, &started).await;
                return Err(e);
            }
        }
    }
    Ok(started)
}

pub async fn remove_all(docker: &dyn ContainerRuntime, names: &[String]) {
    for n in names {
        let _ = docker.remove(n).await;
    }
}

/// Moves a container out of the way (renamed `<name>.old-<ts>`, stopped); returns the new name.
pub async fn retire(
    docker: &dyn ContainerRuntime,
    name: &str,
    grace_secs: i32,
) -> Result<String, ContainerError> {
    let retired = format!("{name}.old-{}", crate::clock::now());
    docker
        .stop(name, grace_secs)
        .await
        .map_err(ContainerError::runtime(name))?;
    docker
        .rename(name, &retired)
        .await
        .map_err(ContainerError::runtime(name))?;
    Ok(retired)
}

/// Puts retired containers back under their names and starts them.
pub async fn restore(
    docker: &dyn ContainerRuntime,
    retired: &[(String, String)],
) -> Result<(), ContainerError> {
    let mut failures = Vec::new();
    for (old, original) in retired {
        let _ = docker.remove(original).await;
        if let Err(e) = docker.rename(old, original).await {
            failures.push(ContainerError::runtime(old)(e));
            continue;
        }
        if let Err(e) = docker.start(original).await {
            failures.push(ContainerError::runtime(original)(e));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(ContainerError::Restore { failures })
    }
}

/// Replaces the running containers: all at once (`recreate`) or one by one (`rolling`, each
/// health-gated). On failure everything this call changed is put back before it returns.
pub async fn replace(
    ctx: &Ctx<'_>,
    s: &Service,
    current: &[String],
) -> Result<(Vec<String>, Vec<(String, String)>), ContainerError> {
    let image = image_for(ctx, s).await?;
    let project = ctx.desired.project.name.as_str();
    let mut retired: Vec<(String, String)> = Vec::new();
    let mut started: Vec<String> = Vec::new();
    let undo = |started: Vec<String>, retired: Vec<(String, String)>| async move {
        remove_all(ctx.docker, &started).await;
        restore(ctx.docker, &retired).await
    };
    let wanted: Vec<u32> = (1..=s.replicas).collect();
    if s.deploy.strategy == Strategy::Rolling {
        for &r in &wanted {
            let name = container_name(project, s.name.as_str(), None, r);
            if current.contains(&name) {
                match retire(ctx.docker, &name, stop_grace_secs(s, 10)).await {
                    Ok(old) => retired.push((old, name.clone())),
                    Err(e) => {
                        let _ = undo(started, retired).await;
                        return Err(e);
                    }
                }
            }
            match start_one(ctx, s, None, r, &image).await {
                Ok(n) => started.push(n),
                Err(e) => {
                    let restored = undo(started, retired).await;
                    return Err(with_restore(e, restored));
                }
            }
        }
    } else {
        for name in current {
            match retire(ctx.docker, name, stop_grace_secs(s, 10)).await {
                Ok(old) => retired.push((old, name.clone())),
                Err(e) => {
                    let _ = undo(started, retired).await;
                    return Err(e);
                }
            }
        }
        for &r in &wanted {
            match start_one(ctx, s, None, r, &image).await {
                Ok(n) => started.push(n),
                Err(e) => {
                    let restored = undo(started, retired).await;
                    return Err(with_restore(e, restored));
                }
            }
        }
    }
    // Containers beyond the new replica count were not replaced one by one: retire them too.
    for name in current {
        if !retired.iter().any(|(_, n)| n == name) && !started.contains(name) {
            if let Ok(old) = retire(ctx.docker, name, stop_grace_secs(s, 10)).await {
                retired.push((old, name.clone()));
            }
        }
    }
    Ok((started, retired))
}

fn with_restore(e: ContainerError, restored: Result<(), ContainerError>) -> ContainerError {
    match restored {
        Ok(()) => ContainerError::Restored { error: Box::new(e) },
        Err(r) => ContainerError::NotRestored {
            error: Box::new(e),
            restore: Box::new(r),
        },
    }
}
