//! The Swarm service spec of one converge Service (or one color of a blue-green one): image,
//! command, plain env, secrets as files, resources, restart policy, health, mounts, placement,
//! ports, update and rollback config, and converge's ownership labels. Pure: no API calls.

use std::collections::{BTreeMap, HashMap};

use bollard::models::{
    EndpointPortConfig, EndpointPortConfigPublishModeEnum, EndpointSpec, EndpointSpecModeEnum,
    HealthConfig, Limit, Mount, MountTmpfsOptions, MountType, NetworkAttachmentConfig,
    ResourceObject, ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated,
    ServiceSpecRollbackConfig, ServiceSpecRollbackConfigFailureActionEnum,
    ServiceSpecRollbackConfigOrderEnum, ServiceSpecUpdateConfig,
    ServiceSpecUpdateConfigFailureActionEnum, ServiceSpecUpdateConfigOrderEnum, TaskSpec,
    TaskSpecContainerSpec, TaskSpecContainerSpecFile, TaskSpecContainerSpecSecrets,
    TaskSpecPlacement, TaskSpecResources, TaskSpecRestartPolicy,
    TaskSpecRestartPolicyConditionEnum,
};

use crate::model::live::Color;
use crate::model::project::{SwarmEndpointMode, SwarmProvider, SwarmPublish};
use crate::model::service::{Health, Protocol, RestartPolicy, Strategy};
use crate::model::service_runtime::RuntimeOptions;
use crate::model::Service;

/// Where a secret is mounted in a task: `/run/secrets/<VARIABLE>`.
pub const SECRETS_DIR: &str = "/run/secrets";

/// A secret value a task gets as a file, by the Swarm secret that holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretFile {
    /// The variable it stands for (`DB_PASSWORD`).
    pub variable: String,
    pub secret_name: String,
    pub secret_id: String,
}

/// Everything a Swarm service spec is made from; resolved values stay out of it (secrets are
/// referred to by their Swarm secret).
pub struct SpecInput<'a> {
    pub project: &'a str,
    pub service: &'a Service,
    pub color: Option<Color>,
    pub image: &'a str,
    /// Variables without a secret in them.
    pub env: Vec<(String, String)>,
    pub secrets: Vec<SecretFile>,
    /// converge's labels: ownership, resource, color, spec hash, spec, revision.
    pub labels: BTreeMap<String, String>,
    pub network: &'a str,
    /// Engine names of named volumes (`<project>_<name>`).
    pub volume_name: &'a dyn Fn(&str) -> String,
    pub settings: &'a SwarmProvider,
}

/// The Swarm service name: `<project>-<service>`, `<project>-<service>-<color>` for blue-green.
pub fn service_name(project: &str, service: &str, color: Option<Color>) -> String {
    match color {
        Some(c) => format!("{project}-{service}-{c}"),
        None => format!("{project}-{service}"),
    }
}

/// Why a service cannot run on Swarm as declared (validation refuses it first).
pub fn unsupported(s: &Service) -> Option<String> {
    SwarmProvider::refuses(s).map(|r| format!("{}\n  = hint: {}", r.why, r.hint))
}

/// The whole spec.
pub fn build(input: &SpecInput<'_>) -> ServiceSpec {
    let s = input.service;
    let labels: HashMap<String, String> = input.labels.clone().into_iter().collect();
    ServiceSpec {
        name: Some(service_name(input.project, s.name.as_str(), input.color)),
        labels: Some(labels),
        task_template: Some(task(input)),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated {
                replicas: Some(i64::from(s.replicas)),
            }),
            ..Default::default()
        }),
        update_config: Some(update_config(s, input.settings)),
        rollback_config: Some(rollback_config(s, input.settings)),
        endpoint_spec: Some(endpoint(input)),
        ..Default::default()
    }
}

fn task(input: &SpecInput<'_>) -> TaskSpec {
    let s = input.service;
    let mut aliases = vec![s.name.to_string()];
    aliases.extend(s.aliases.iter().cloned());
    TaskSpec {
        container_spec: Some(container(input)),
        resources: Some(resources(s)),
        restart_policy: Some(restart(s.restart)),
        placement: Some(placement(s)),
        networks: Some(vec![NetworkAttachmentConfig {
            target: Some(input.network.to_string()),
            // Only the active color answers to the service's name: blue-green's idle color
            // is reached by its own service name.
            aliases: Some(if input.color.is_some() {
                vec![]
            } else {
                aliases
            }),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

fn container(input: &SpecInput<'_>) -> TaskSpecContainerSpec {
    let s = input.service;
    let o = RuntimeOptions::of(s);
    let mut env: Vec<String> = input.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    for f in &input.secrets {
        env.push(format!("{}_FILE={SECRETS_DIR}/{}", f.variable, f.variable));
    }
    env.sort();
    let mut labels: HashMap<String, String> = o.labels.clone().into_iter().collect();
    labels.extend(input.labels.clone());
    TaskSpecContainerSpec {
        image: Some(input.image.to_string()),
        labels: Some(labels),
        command: o.entrypoint.clone(),
        args: s.command.clone(),
        env: Some(env),
        dir: o.working_dir.clone(),
        user: o.user.clone(),
        read_only: Some(o.read_only),
        init: Some(o.init),
        stop_signal: o.stop_signal.clone(),
        stop_grace_period: o.stop_timeout.map(|t| t * 1_000_000_000),
        mounts: Some(mounts(input, &o)),
        health_check: s.health.as_ref().map(health),
        hosts: Some(o.extra_hosts.iter().filter_map(|h| host_entry(h)).collect()),
        secrets: Some(input.secrets.iter().map(secret_ref).collect()),
        sysctls: (!o.sysctls.is_empty()).then(|| o.sysctls.clone().into_iter().collect()),
        capability_add: (!o.cap_add.is_empty()).then(|| o.cap_add.clone()),
        capability_drop: (!o.cap_drop.is_empty()).then(|| o.cap_drop.clone()),
        ..Default::default()
    }
}

/// `host:ip` (the engine's form) → `ip host` (the hosts-file form Swarm takes).
fn host_entry(h: &str) -> Option<String> {
    let (host, ip) = h.split_once(':')?;
    Some(format!("{ip} {host}"))
}

fn secret_ref(f: &SecretFile) -> TaskSpecContainerSpecSecrets {
    TaskSpecContainerSpecSecrets {
        file: Some(TaskSpecContainerSpecFile {
            name: Some(f.variable.clone()),
            uid: Some("0".into()),
            gid: Some("0".into()),
            mode: Some(0o444),
        }),
        secret_id: Some(f.secret_id.clone()),
        secret_name: Some(f.secret_name.clone()),
    }
}

fn mounts(input: &SpecInput<'_>, o: &RuntimeOptions) -> Vec<Mount> {
    let mut out: Vec<Mount> = input
        .service
        .volumes
        .iter()
        .map(|v| {
            let named = v.is_named_volume();
            Mount {
                target: Some(v.target.clone()),
                source: Some(if named {
                    (input.volume_name)(&v.source)
                } else {
                    v.source.clone()
                }),
                typ: Some(if named {
                    MountType::VOLUME
                } else {
                    MountType::BIND
                }),
                read_only: Some(v.read_only),
                ..Default::default()
            }
        })
        .collect();
    for (path, opts) in &o.tmpfs {
        out.push(Mount {
            target: Some(path.clone()),
            typ: Some(MountType::TMPFS),
            tmpfs_options: Some(MountTmpfsOptions {
                size_bytes: tmpfs_size(opts),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    out
}

/// `size=64m` in tmpfs options, in bytes.
fn tmpfs_size(opts: &str) -> Option<i64> {
    let size = opts.split(',').find_map(|o| o.strip_prefix("size="))?;
    let (num, unit) = size.split_at(size.find(|c: char| !c.is_ascii_digit())?.min(size.len()));
    let n: i64 = num.parse().ok()?;
    let mult = match unit.to_ascii_lowercase().as_str() {
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => 1,
    };
    Some(n * mult)
}

/// converge's probes as the task's health check. An http probe needs `wget` or `curl` in the
/// image; a tcp probe needs `nc`.
pub fn health(h: &Health) -> HealthConfig {
    let test = if let Some(p) = &h.http {
        let url = format!("http://127.0.0.1:{}{}", p.port, p.path);
        vec![
            "CMD-SHELL".to_string(),
            format!("wget -q -O /dev/null '{url}' || curl -fsS -o /dev/null '{url}'"),
        ]
    } else if let Some(t) = &h.tcp {
        vec![
            "CMD-SHELL".to_string(),
            format!("nc -z 127.0.0.1 {}", t.port),
        ]
    } else if let Some(cmd) = &h.command {
        std::iter::once("CMD".to_string())
            .chain(cmd.iter().cloned())
            .collect()
    } else {
        vec!["NONE".to_string()]
    };
    let ns = |d: crate::model::types::Duration| d.as_millis() as i64 * 1_000_000;
    HealthConfig {
        test: Some(test),
        interval: Some(ns(h.interval)),
        timeout: Some(ns(h.timeout)),
        retries: Some(i64::from(h.retries.max(1))),
        start_period: h.start_period.map(ns),
        ..Default::default()
    }
}

fn resources(s: &Service) -> TaskSpecResources {
    let cpus = s.resources.cpus.map(|c| (c * 1e9) as i64);
    let memory = s.resources.memory.map(|m| m.bytes() as i64);
    TaskSpecResources {
        limits: Some(Limit {
            nano_cpus: cpus,
            memory_bytes: memory,
            ..Default::default()
        }),
        // What is declared is reserved too: Swarm places a task only where it fits.
        reservations: Some(ResourceObject {
            nano_cpus: cpus,
            memory_bytes: memory,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn restart(r: RestartPolicy) -> TaskSpecRestartPolicy {
    use TaskSpecRestartPolicyConditionEnum as C;
    let condition = match r {
        RestartPolicy::No => C::NONE,
        RestartPolicy::OnFailure => C::ON_FAILURE,
        RestartPolicy::Always | RestartPolicy::UnlessStopped => C::ANY,
    };
    TaskSpecRestartPolicy {
        condition: Some(condition),
        delay: Some(1_000_000_000),
        ..Default::default()
    }
}

/// `placement.labels` → `node.labels.K==V`; one `placement.hosts` entry → `node.hostname==H`.
pub fn constraints(s: &Service) -> Vec<String> {
    let mut c: Vec<String> = s
        .placement
        .labels
        .iter()
        .map(|(k, v)| format!("node.labels.{k}=={v}"))
        .collect();
    if let [host] = s.placement.hosts.as_slice() {
        c.push(format!("node.hostname=={host}"));
    }
    c
}

fn placement(s: &Service) -> TaskSpecPlacement {
    TaskSpecPlacement {
        constraints: Some(constraints(s)),
        ..Default::default()
    }
}

/// `rolling`: one task at a time, the new one first (unless ports pin tasks to their node),
/// watched for `verify_for`, rolled back by Swarm on failure. `recreate` and blue-green colors:
/// all at once, old first.
fn update_config(s: &Service, settings: &SwarmProvider) -> ServiceSpecUpdateConfig {
    use ServiceSpecUpdateConfigOrderEnum as O;
    let rolling = s.deploy.strategy == Strategy::Rolling;
    ServiceSpecUpdateConfig {
        parallelism: Some(if rolling { 1 } else { 0 }),
        delay: Some(0),
        failure_action: Some(ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK),
        monitor: Some(s.deploy.verify_for.as_millis() as i64 * 1_000_000),
        max_failure_ratio: Some(0.0),
        order: Some(if rolling && !pinned(s, settings) {
            O::START_FIRST
        } else {
            O::STOP_FIRST
        }),
    }
}

fn rollback_config(s: &Service, settings: &SwarmProvider) -> ServiceSpecRollbackConfig {
    use ServiceSpecRollbackConfigOrderEnum as O;
    ServiceSpecRollbackConfig {
        parallelism: Some(0),
        delay: Some(0),
        failure_action: Some(ServiceSpecRollbackConfigFailureActionEnum::PAUSE),
        monitor: Some(5_000_000_000),
        max_failure_ratio: Some(0.0),
        order: Some(if pinned(s, settings) {
            O::STOP_FIRST
        } else {
            O::START_FIRST
        }),
    }
}

/// Whether tasks publish a fixed port on their node: two of them cannot share a node, so a new
/// one cannot start there before the old one stops.
fn pinned(s: &Service, settings: &SwarmProvider) -> bool {
    settings.publish == SwarmPublish::Host
        && (s.ports.iter().any(|p| p.host.is_some()) || s.deploy.strategy == Strategy::BlueGreen)
}

fn endpoint(input: &SpecInput<'_>) -> EndpointSpec {
    let s = input.service;
    let mode = match input.settings.publish {
        SwarmPublish::Host => EndpointPortConfigPublishModeEnum::HOST,
        SwarmPublish::Ingress => EndpointPortConfigPublishModeEnum::INGRESS,
    };
    let color_port = match input.color {
        Some(Color::Blue) => s.deploy.blue.as_ref(),
        Some(Color::Green) => s.deploy.green.as_ref(),
        None => None,
    };
    let ports: Vec<EndpointPortConfig> = s
        .ports
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let published = match color_port {
                Some(c) if i == 0 => Some(c.port.get()),
                _ if s.deploy.strategy == Strategy::BlueGreen => None,
                _ => p.host.map(|h| h.get()),
            }?;
            Some(EndpointPortConfig {
                protocol: Some(if p.protocol == Protocol::Udp {
                    bollard::models::EndpointPortConfigProtocolEnum::UDP
                } else {
                    bollard::models::EndpointPortConfigProtocolEnum::TCP
                }),
                target_port: Some(i64::from(p.container.get())),
                published_port: Some(i64::from(published)),
                publish_mode: Some(mode),
                ..Default::default()
            })
        })
        .collect();
    // The routing mesh needs a virtual address; dnsrr cannot publish through it.
    let vip = input.settings.endpoint_mode == SwarmEndpointMode::Vip
        || (input.settings.publish == SwarmPublish::Ingress && !ports.is_empty());
    EndpointSpec {
        mode: Some(if vip {
            EndpointSpecModeEnum::VIP
        } else {
            EndpointSpecModeEnum::DNSRR
        }),
        ports: Some(ports),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{load, SourceTree};

    fn service(yaml: &str) -> Service {
        let tree = SourceTree::new("t").with_file(
            "converge.yaml",
            format!("kind: Project\nname: p\nhosts: [{{name: node-a}}, {{name: a}}, {{name: b}}]\nproviders: {{swarm: {{}}}}\n---\nkind: Service\nname: api\nimage: img:1\n{yaml}"),
        );
        let d = load(&tree, None).unwrap_or_else(|e| panic!("{e:?}"));
        d.service("api").unwrap().clone()
    }

    fn spec_of(s: &Service, color: Option<Color>, settings: &SwarmProvider) -> ServiceSpec {
        let volume_name = |v: &str| format!("p_{v}");
        build(&SpecInput {
            project: "p",
            service: s,
            color,
            image: "img:1",
            env: vec![("MODE".into(), "plain".into())],
            secrets: vec![SecretFile {
                variable: "TOKEN".into(),
                secret_name: "p-TOKEN-abc".into(),
                secret_id: "id1".into(),
            }],
            labels: BTreeMap::new(),
            network: "p",
            volume_name: &volume_name,
            settings,
        })
    }

    #[test]
    fn placement_labels_and_one_host_become_node_constraints() {
        let s = service("placement: {labels: {role: gpu}, hosts: [node-a]}\n");
        assert_eq!(
            constraints(&s),
            vec!["node.labels.role==gpu", "node.hostname==node-a"]
        );
    }

    #[test]
    fn secrets_are_files_with_a_file_variable_and_never_env_values() {
        let s = service("replicas: 3\n");
        let spec = spec_of(&s, None, &SwarmProvider::default());
        let c = spec.task_template.unwrap().container_spec.unwrap();
        assert_eq!(
            c.env.unwrap(),
            vec!["MODE=plain", "TOKEN_FILE=/run/secrets/TOKEN"]
        );
        let secret = &c.secrets.unwrap()[0];
        assert_eq!(secret.secret_name.as_deref(), Some("p-TOKEN-abc"));
        assert_eq!(secret.file.as_ref().unwrap().name.as_deref(), Some("TOKEN"));
        assert_eq!(spec.name.as_deref(), Some("p-api"));
        assert_eq!(spec.mode.unwrap().replicated.unwrap().replicas, Some(3));
    }

    #[test]
    fn rolling_starts_the_new_task_first_unless_a_host_port_pins_it_to_its_node() {
        let free = service("deploy: {strategy: rolling, verify_for: 7s}\n");
        let u = spec_of(&free, None, &SwarmProvider::default())
            .update_config
            .unwrap();
        assert_eq!(u.parallelism, Some(1));
        assert_eq!(u.order, Some(ServiceSpecUpdateConfigOrderEnum::START_FIRST));
        assert_eq!(u.monitor, Some(7_000_000_000));
        assert_eq!(
            u.failure_action,
            Some(ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK)
        );
        let pinned = service("ports: [{container: 80, host: 8080}]\ndeploy: {strategy: rolling}\n");
        let u = spec_of(&pinned, None, &SwarmProvider::default())
            .update_config
            .unwrap();
        assert_eq!(u.order, Some(ServiceSpecUpdateConfigOrderEnum::STOP_FIRST));
        let mesh = SwarmProvider {
            publish: SwarmPublish::Ingress,
            ..Default::default()
        };
        let u = spec_of(&pinned, None, &mesh).update_config.unwrap();
        assert_eq!(u.order, Some(ServiceSpecUpdateConfigOrderEnum::START_FIRST));
    }

    #[test]
    fn a_blue_green_color_publishes_its_own_port_on_its_node() {
        let s = service("ports: [{container: 8000}]\nhealth: {http: {path: /health, port: 8000}}\ndeploy: {strategy: blue-green, blue: {port: 9001}, green: {port: 9002}}\n");
        let spec = spec_of(&s, Some(Color::Green), &SwarmProvider::default());
        assert_eq!(spec.name.as_deref(), Some("p-api-green"));
        let e = spec.endpoint_spec.unwrap();
        assert_eq!(e.mode, Some(EndpointSpecModeEnum::DNSRR));
        let port = &e.ports.unwrap()[0];
        assert_eq!(port.published_port, Some(9002));
        assert_eq!(port.target_port, Some(8000));
        assert_eq!(
            port.publish_mode,
            Some(EndpointPortConfigPublishModeEnum::HOST)
        );
    }

    #[test]
    fn probes_become_the_tasks_health_check() {
        let s = service(
            "health: {http: {path: /health, port: 8000}, interval: 2s, timeout: 1s, retries: 4}\n",
        );
        let h = health(s.health.as_ref().unwrap());
        assert_eq!(h.test.as_ref().unwrap()[0], "CMD-SHELL");
        assert!(h.test.unwrap()[1].contains("wget -q -O /dev/null 'http://127.0.0.1:8000/health'"));
        assert_eq!(h.interval, Some(2_000_000_000));
        assert_eq!(h.retries, Some(4));
        let c = service("health: {command: [/bin/check, --quick]}\n");
        assert_eq!(
            health(c.health.as_ref().unwrap()).test.unwrap(),
            vec!["CMD", "/bin/check", "--quick"]
        );
    }

    #[test]
    fn named_volumes_and_tmpfs_become_mounts() {
        let s = service("volumes: [{source: data, target: /data}, {source: /srv/media, target: /media, read_only: true}]\ntmpfs: [\"/run:size=64m\"]\n");
        let c = spec_of(&s, None, &SwarmProvider::default())
            .task_template
            .unwrap()
            .container_spec
            .unwrap();
        let m = c.mounts.unwrap();
        assert_eq!(m[0].source.as_deref(), Some("p_data"));
        assert_eq!(m[0].typ, Some(MountType::VOLUME));
        assert_eq!(m[1].typ, Some(MountType::BIND));
        assert_eq!(m[1].read_only, Some(true));
        assert_eq!(m[2].typ, Some(MountType::TMPFS));
        assert_eq!(
            m[2].tmpfs_options.as_ref().unwrap().size_bytes,
            Some(64 << 20)
        );
    }
}
