//! Reading this project's Swarm services and their tasks into the live state: one live
//! "container" per replica slot (running while Swarm keeps a task in it), the spec label as the
//! service's attributes, and a spec edited by hand (outside converge) shown as a changed spec.

use std::collections::{BTreeMap, HashMap};

use bollard::models::{Service, ServiceSpec, Task, TaskState};
use bollard::query_parameters::{ListServicesOptions, ListTasksOptions};
use sha2::{Digest, Sha256};

use crate::model::live::{Color, LiveContainer, LiveResource, LiveService, LiveState};
use crate::model::{Attributes, ResourceId};
use crate::providers::docker::api;
use crate::providers::runtime::*;

/// The label holding the fingerprint of the spec converge sent.
pub const FINGERPRINT: &str = "converge.swarm-spec";

/// What a live slot shows when its service's spec was changed outside converge.
pub use crate::model::live::EDITED_SPEC as EDITED;

/// The fingerprint of what converge sets in a spec (replicas aside: scaling is seen by slot).
/// Swarm adds defaults and may pin the image by digest; neither changes it. (The health check is
/// left out: the engine reports it under a key the API client does not read back.)
pub fn fingerprint(spec: &ServiceSpec) -> String {
    let task = spec.task_template.clone().unwrap_or_default();
    let c = task.container_spec.clone().unwrap_or_default();
    let image = c.image.as_deref().unwrap_or("");
    let image = image.split_once("@sha256:").map_or(image, |(i, _)| i);
    let mut env = c.env.clone().unwrap_or_default();
    env.sort();
    let mut mounts: Vec<String> = c
        .mounts
        .iter()
        .flatten()
        .map(|m| {
            format!(
                "{:?}|{}|{}|{}",
                m.typ,
                m.source.as_deref().unwrap_or(""),
                m.target.as_deref().unwrap_or(""),
                m.read_only.unwrap_or(false)
            )
        })
        .collect();
    mounts.sort();
    let mut secrets: Vec<String> = c
        .secrets
        .iter()
        .flatten()
        .filter_map(|s| s.secret_name.clone())
        .collect();
    secrets.sort();
    let limits = task.resources.and_then(|r| r.limits).unwrap_or_default();
    let mut constraints = task
        .placement
        .and_then(|p| p.constraints)
        .unwrap_or_default();
    constraints.sort();
    let mut ports: Vec<String> = spec
        .endpoint_spec
        .iter()
        .flat_map(|e| e.ports.iter().flatten())
        .map(|p| {
            format!(
                "{:?}/{:?}/{:?}",
                p.target_port, p.published_port, p.publish_mode
            )
        })
        .collect();
    ports.sort();
    let parts = serde_json::json!([
        image,
        c.command,
        c.args,
        env,
        mounts,
        secrets,
        c.user,
        c.dir,
        limits.nano_cpus,
        limits.memory_bytes,
        constraints,
        ports,
    ]);
    let digest = Sha256::digest(parts.to_string().as_bytes());
    crate::model::attributes::hex(&digest[..8])
}

impl super::SwarmProvider {
    /// This project's Swarm services.
    pub async fn services(&self) -> Result<Vec<Service>, RuntimeError> {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![
                format!("{MANAGED}=true"),
                format!("{PROJECT}={}", self.project),
            ],
        )]);
        self.client()
            .list_services(Some(ListServicesOptions {
                filters: Some(filters),
                status: None,
            }))
            .await
            .map_err(api("list services"))
    }

    /// The tasks Swarm wants running for these services, by service id.
    pub async fn tasks(&self, ids: &[String]) -> Result<BTreeMap<String, Vec<Task>>, RuntimeError> {
        let mut out: BTreeMap<String, Vec<Task>> = BTreeMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let filters = HashMap::from([
            ("service".to_string(), ids.to_vec()),
            ("desired-state".to_string(), vec!["running".to_string()]),
        ]);
        let tasks = self
            .client()
            .list_tasks(Some(ListTasksOptions {
                filters: Some(filters),
            }))
            .await
            .map_err(api("list tasks"))?;
        for t in tasks {
            if let Some(id) = t.service_id.clone() {
                out.entry(id).or_default().push(t);
            }
        }
        Ok(out)
    }

    /// Fills `live` with this project's services (one slot per replica) and its network.
    pub async fn observe_services(&self, live: &mut LiveState) -> Result<(), RuntimeError> {
        let services = self.services().await?;
        let ids: Vec<String> = services.iter().filter_map(|s| s.id.clone()).collect();
        let tasks = self.tasks(&ids).await?;
        let mut by_resource: BTreeMap<ResourceId, Vec<(Service, Vec<Task>)>> = BTreeMap::new();
        for s in services {
            let labels = s
                .spec
                .as_ref()
                .and_then(|x| x.labels.clone())
                .unwrap_or_default();
            let Some(id) = labels
                .get(RESOURCE)
                .and_then(|r| ResourceId::parse(r, None))
            else {
                continue;
            };
            let t =
                s.id.as_ref()
                    .and_then(|i| tasks.get(i))
                    .cloned()
                    .unwrap_or_default();
            by_resource.entry(id).or_default().push((s, t));
        }
        for (id, group) in by_resource {
            live.resources.insert(id, resource(group));
        }
        self.observe_network(live).await
    }
}

/// One converge Service from its Swarm services (two for a blue-green one).
fn resource(group: Vec<(Service, Vec<Task>)>) -> LiveResource {
    let mut containers = Vec::new();
    let mut attributes = Attributes::default();
    let mut newest: Option<(String, Color)> = None;
    for (service, tasks) in &group {
        let spec = service.spec.clone().unwrap_or_default();
        let labels = spec.labels.clone().unwrap_or_default();
        let color = labels.get(COLOR).and_then(|c| parse_color(c));
        let slots = slots(&spec, &labels, tasks);
        let serving = slots.iter().any(|c| c.running);
        if serving {
            let stamp = service
                .updated_at
                .as_ref()
                .map(|d| format!("{d:?}"))
                .unwrap_or_default();
            if let Some(c) = color {
                if newest.as_ref().is_none_or(|(s, _)| &stamp > s) {
                    newest = Some((stamp, c));
                }
            }
        }
        if attributes.0.is_empty() || serving {
            if let Some(a) = labels
                .get(SPEC)
                .and_then(|j| serde_json::from_str::<Attributes>(j).ok())
            {
                attributes = a;
            }
        }
        containers.extend(slots);
    }
    containers.sort_by(|a, b| a.name.cmp(&b.name));
    LiveResource {
        attributes,
        service: Some(LiveService {
            containers,
            active_color: newest.map(|(_, c)| c),
            image_now: None,
        }),
        ..Default::default()
    }
}

fn parse_color(c: &str) -> Option<Color> {
    match c {
        "blue" => Some(Color::Blue),
        "green" => Some(Color::Green),
        _ => None,
    }
}

/// One live entry per replica slot the spec asks for (and per slot beyond it that still has a
/// task): running while a task of it is running or on its way.
fn slots(
    spec: &ServiceSpec,
    labels: &HashMap<String, String>,
    tasks: &[Task],
) -> Vec<LiveContainer> {
    let name = spec.name.clone().unwrap_or_default();
    let replicas = spec
        .mode
        .as_ref()
        .and_then(|m| m.replicated.as_ref())
        .and_then(|r| r.replicas)
        .unwrap_or(0)
        .max(0) as u32;
    let edited = labels.get(FINGERPRINT).map(String::as_str) != Some(fingerprint(spec).as_str());
    let spec_hash = if edited {
        EDITED.to_string()
    } else {
        labels.get(SPEC_HASH).cloned().unwrap_or_default()
    };
    let mut by_slot: BTreeMap<u32, bool> = (1..=replicas).map(|r| (r, false)).collect();
    for t in tasks {
        let slot = t.slot.unwrap_or(0).max(0) as u32;
        let alive = t
            .status
            .as_ref()
            .and_then(|s| s.state)
            .is_some_and(task_alive);
        let entry = by_slot.entry(slot).or_default();
        *entry = *entry || alive;
    }
    by_slot
        .into_iter()
        .map(|(slot, running)| LiveContainer {
            name: format!("{name}.{slot}"),
            color: labels.get(COLOR).and_then(|c| parse_color(c)),
            replica: slot,
            spec_hash: spec_hash.clone(),
            running,
            revision: labels.get(REVISION).cloned().filter(|r| !r.is_empty()),
            image_digest: None,
        })
        .collect()
}

/// A task that runs or is on its way to running (Swarm is taking care of it).
pub fn task_alive(state: TaskState) -> bool {
    use TaskState as S;
    matches!(
        state,
        S::NEW
            | S::PENDING
            | S::ALLOCATED
            | S::ASSIGNED
            | S::ACCEPTED
            | S::PREPARING
            | S::READY
            | S::STARTING
            | S::RUNNING
    )
}
