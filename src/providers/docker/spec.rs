//! Turning a `ContainerSpec` into bollard's create body and packing a build context into a tar
//! (image references are split in `registry.rs`).

use std::collections::HashMap;
use std::path::Path;

use bollard::models::{
    ContainerCreateBody, DeviceMapping, DeviceRequest, EndpointSettings, HealthConfig, HostConfig,
    HostConfigLogConfig, Mount, MountType, NetworkingConfig, PortBinding, ResourcesUlimits,
    RestartPolicy, RestartPolicyNameEnum,
};

use crate::model::service_runtime::RuntimeOptions;
use crate::providers::runtime::ContainerSpec;

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
    let mut body = ContainerCreateBody {
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
            init: Some(spec.options.init),
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
    };
    apply_options(&mut body, &spec.options);
    body
}

/// The compose-style settings: each is left to the engine's default when not given.
fn apply_options(body: &mut ContainerCreateBody, o: &RuntimeOptions) {
    let nonempty = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    body.entrypoint = o.entrypoint.clone();
    body.user = o.user.clone();
    body.working_dir = o.working_dir.clone();
    body.stop_signal = o.stop_signal.clone();
    body.stop_timeout = o.stop_timeout;
    body.healthcheck = o.healthcheck.as_ref().map(|h| HealthConfig {
        test: h.test.clone(),
        interval: Some(nanos(h.interval)),
        timeout: Some(nanos(h.timeout)),
        retries: Some(i64::from(h.retries)),
        start_period: Some(nanos(h.start_period)),
        ..Default::default()
    });
    let hc = body.host_config.get_or_insert_with(Default::default);
    hc.readonly_rootfs = o.read_only.then_some(true);
    hc.tmpfs = (!o.tmpfs.is_empty()).then(|| o.tmpfs.clone().into_iter().collect());
    hc.shm_size = o.shm_size.map(|s| s as i64);
    hc.sysctls = (!o.sysctls.is_empty()).then(|| o.sysctls.clone().into_iter().collect());
    hc.ulimits = (!o.ulimits.is_empty()).then(|| {
        o.ulimits
            .iter()
            .map(|(name, soft, hard)| ResourcesUlimits {
                name: Some(name.clone()),
                soft: Some(*soft),
                hard: Some(*hard),
            })
            .collect()
    });
    hc.cap_add = nonempty(&o.cap_add);
    hc.cap_drop = nonempty(&o.cap_drop);
    hc.extra_hosts = nonempty(&o.extra_hosts);
    hc.devices = (!o.devices.is_empty()).then(|| {
        o.devices
            .iter()
            .map(|d| DeviceMapping {
                path_on_host: Some(d.host.clone()),
                path_in_container: Some(d.container.clone()),
                cgroup_permissions: Some(d.permissions.clone()),
            })
            .collect()
    });
    if !o.gpu_devices.is_empty() {
        hc.device_requests = Some(vec![DeviceRequest {
            device_ids: Some(o.gpu_devices.clone()),
            capabilities: Some(vec![vec!["gpu".into()]]),
            ..Default::default()
        }]);
    }
    hc.log_config = o.logging.as_ref().map(|l| HostConfigLogConfig {
        typ: Some(l.driver.clone()),
        config: Some(l.options.clone().into_iter().collect()),
    });
    if let Some(labels) = body.labels.as_mut() {
        for (k, v) in &o.labels {
            labels.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
}

fn nanos(d: crate::model::types::Duration) -> i64 {
    i64::try_from(d.as_millis())
        .unwrap_or(i64::MAX / 1_000_000)
        .saturating_mul(1_000_000)
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
    fn gpu_device_ids_are_requested_by_id() {
        let spec = ContainerSpec {
            name: "shop-ml-1".into(),
            image: "shop/ml:1".into(),
            command: None,
            env: vec![],
            labels: Default::default(),
            ports: vec![],
            mounts: vec![],
            cpus: None,
            memory: None,
            gpus: 0,
            restart: "no".into(),
            network: "shop".into(),
            aliases: vec!["ml".into()],
            options: RuntimeOptions {
                gpu_devices: vec!["0".into(), "GPU-3a1b".into()],
                read_only: true,
                ..Default::default()
            },
        };
        let hc = create_body(&spec, HashMap::new()).host_config.unwrap();
        let requests = hc.device_requests.unwrap();
        assert_eq!(requests.len(), 1);
        assert_eq!(
            requests[0].device_ids.as_deref(),
            Some(&["0".to_string(), "GPU-3a1b".to_string()][..])
        );
        assert_eq!(requests[0].count, None);
        assert_eq!(hc.readonly_rootfs, Some(true));
        assert_eq!(
            hc.init,
            Some(false),
            "RuntimeOptions::default() has no init"
        );
    }

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
            options: Default::default(),
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
}
