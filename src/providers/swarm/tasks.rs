//! Where the project's tasks run (one row per task Swarm wants running, with its node, for
//! `converge status` and the agent's `/status`), whether this manager leads, and the task
//! containers' counters on this node for the autoscaler.

use std::collections::{BTreeMap, HashMap};

pub use crate::model::live::TaskRow;

use bollard::query_parameters::ListNodesOptions;

use crate::providers::docker::api;
use crate::providers::runtime::{RuntimeError, COLOR, RESOURCE};

impl super::SwarmProvider {
    /// The project's tasks, sorted by resource, color and slot.
    pub async fn task_rows(&self) -> Result<Vec<TaskRow>, RuntimeError> {
        let services = self.services().await?;
        let ids: Vec<String> = services.iter().filter_map(|s| s.id.clone()).collect();
        let tasks = self.tasks(&ids).await?;
        let nodes = self.node_names().await?;
        let mut rows = Vec::new();
        for s in &services {
            let labels = s
                .spec
                .as_ref()
                .and_then(|x| x.labels.clone())
                .unwrap_or_default();
            let Some(resource) = labels.get(RESOURCE).cloned() else {
                continue;
            };
            for t in
                s.id.as_ref()
                    .and_then(|i| tasks.get(i))
                    .into_iter()
                    .flatten()
            {
                let status = t.status.clone().unwrap_or_default();
                let node = t
                    .node_id
                    .as_ref()
                    .map(|n| nodes.get(n).cloned().unwrap_or_else(|| n.clone()))
                    .unwrap_or_else(|| "(unassigned)".into());
                rows.push(TaskRow {
                    resource: resource.clone(),
                    color: labels.get(COLOR).cloned(),
                    slot: t.slot.unwrap_or(0).max(0) as u32,
                    node,
                    state: status
                        .state
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "unknown".into()),
                    message: status.err.filter(|e| !e.is_empty()),
                });
            }
        }
        rows.sort();
        Ok(rows)
    }

    /// Node id → host name.
    async fn node_names(&self) -> Result<HashMap<String, String>, RuntimeError> {
        let nodes = self
            .client()
            .list_nodes(None::<ListNodesOptions>)
            .await
            .map_err(api("list nodes"))?;
        Ok(nodes
            .into_iter()
            .filter_map(|n| Some((n.id?, n.description?.hostname?)))
            .collect())
    }

    /// Whether this engine is the swarm's leader (the manager that applies, when several run agents).
    pub async fn is_leader(&self) -> Result<bool, RuntimeError> {
        let info = self.client().info().await.map_err(api("info"))?;
        let me = info.swarm.and_then(|s| s.node_id).unwrap_or_default();
        let node = self
            .client()
            .inspect_node(&me)
            .await
            .map_err(api("inspect node"))?;
        Ok(node.manager_status.and_then(|m| m.leader).unwrap_or(false))
    }
}

#[async_trait::async_trait]
impl crate::providers::runtime::Meter for super::SwarmProvider {
    /// Readings of task slots (`<service>.<slot>`) whose task runs on this node: their
    /// containers are this engine's (`<service>.<slot>.<task id>`). Tasks on other nodes have none.
    async fn readings(
        &self,
        names: &[String],
    ) -> BTreeMap<String, Result<crate::providers::runtime::ContainerReading, RuntimeError>> {
        use crate::providers::runtime::ContainerRuntime;
        let ids = ContainerRuntime::ids(&self.docker)
            .await
            .unwrap_or_default();
        let mut by_container = BTreeMap::new();
        for slot in names {
            let prefix = format!("{slot}.");
            if let Some(container) = ids.keys().find(|c| c.starts_with(&prefix)) {
                by_container.insert(container.clone(), slot.clone());
            }
        }
        let wanted: Vec<String> = by_container.keys().cloned().collect();
        ContainerRuntime::readings(&self.docker, &wanted)
            .await
            .into_iter()
            .filter_map(|(c, r)| Some((by_container.get(&c)?.clone(), r)))
            .collect()
    }
}
