//! Turning a `ContainerSpec` into bollard's create body, splitting image references into
//! repository and tag, and packing a build context into a tar.

use std::collections::HashMap;
use std::path::Path;

use bollard::models::{
    ContainerCreateBody, DeviceRequest, EndpointSettings, HostConfig, Mount, MountType,
    NetworkingConfig, PortBinding, RestartPolicy, RestartPolicyNameEnum,
};

use crate::providers::runtime::ContainerSpec;

pub(super) fn split_image(image: &str) -> (&str, &str) {
    match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (image, "latest"),
    }
}

pub(super) fn create_body(
    spec: &ContainerSpec,
    mut labels: HashMap<String, String>,
) -> ContainerCreateBody {
    labels.extend(spec.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    let mut exposed = Vec::new();
    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for (container, proto, host) in &spec.ports {
        let key = format!("{container}/{proto}");
        exposed.push(key.clone());
        if let Some((ip, port)) = host {
            bindings.insert(
                key,
                Some(vec![PortBinding {
                    host_ip: Some(ip.to_string()),
                    host_port: Some(port.to_string()),
                }]),
            );
        }
    }
    let mounts: Vec<Mount> = spec
        .mounts
        .iter()
        .filter(|(_, _, _, volume)| *volume)
        .map(|(source, target, read_only, _)| Mount {
            source: Some(source.clone()),
            target: Some(target.clone()),
            read_only: Some(*read_only),
            typ: Some(MountType::VOLUME),
            ..Default::default()
        })
        .collect();
    // Host directories as `binds`: the engine creates a missing one, as `docker run -v` and
    // compose do (a `Mount` of type bind refuses it), on whichever host the engine runs.
    let binds: Vec<String> = spec
        .mounts
        .iter()
        .filter(|(_, _, _, volume)| !*volume)
        .map(|(source, target, read_only, _)| {
            let mode = if *read_only { ":ro" } else { "" };
            format!("{source}:{target}{mode}")
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
            binds: Some(binds),
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
pub(super) fn tar_dir(dir: &Path) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    builder.append_dir_all(".", dir)?;
    builder.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_ports_are_bound_to_their_host_address() {
        let spec = ContainerSpec {
            name: "shop-api-blue-1".into(),
            image: "shop/api:1".into(),
            command: None,
            env: vec![],
            labels: Default::default(),
            ports: vec![
                (
                    8000,
                    "tcp".into(),
                    Some(("127.0.0.1".parse().unwrap(), 18000)),
                ),
                (
                    9000,
                    "udp".into(),
                    Some(("0.0.0.0".parse().unwrap(), 19000)),
                ),
                (9100, "tcp".into(), None),
            ],
            mounts: vec![],
            cpus: None,
            memory: None,
            gpus: 0,
            restart: "unless-stopped".into(),
            network: "shop".into(),
            aliases: vec![],
        };
        let body = create_body(&spec, HashMap::new());
        let bindings = body.host_config.unwrap().port_bindings.unwrap();
        let bound = |key: &str| {
            let b = bindings[key].as_ref().unwrap();
            (
                b[0].host_ip.clone().unwrap(),
                b[0].host_port.clone().unwrap(),
            )
        };
        assert_eq!(bound("8000/tcp"), ("127.0.0.1".into(), "18000".into()));
        assert_eq!(bound("9000/udp"), ("0.0.0.0".into(), "19000".into()));
        assert!(!bindings.contains_key("9100/tcp"), "exposed, not published");
        assert_eq!(body.exposed_ports.unwrap().len(), 3);
    }

    #[test]
    fn images_split_into_repository_and_tag() {
        assert_eq!(split_image("ytempire/api:1.4.2"), ("ytempire/api", "1.4.2"));
        assert_eq!(
            split_image("localhost:5000/api"),
            ("localhost:5000/api", "latest")
        );
        assert_eq!(split_image("busybox"), ("busybox", "latest"));
    }
}
