//! Reading this project's containers (grouped by service), network and volumes into the live
//! state.

use std::collections::BTreeMap;

use bollard::query_parameters::{ListNetworksOptions, ListVolumesOptions};

use super::{api, DockerError};
use crate::model::live::{Color, LiveContainer, LiveResource, LiveService, LiveState, LiveVolume};
use crate::model::{Attributes, ResourceId};
use crate::providers::runtime::*;

impl super::Docker {
    /// A container's spec label and its real environment (`None`: no such container). The
    /// values stay in this process: they are only digested.
    pub async fn config(&self, name: &str) -> Result<Option<ContainerConfig>, DockerError> {
        let Some(info) = self.inspect(name).await? else {
            return Ok(None);
        };
        let config = info.config.unwrap_or_default();
        let env = config
            .env
            .unwrap_or_default()
            .into_iter()
            .filter_map(|kv| {
                kv.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect();
        let spec = config.labels.unwrap_or_default().get(SPEC).cloned();
        Ok(Some(ContainerConfig { spec, env }))
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
                image_digest: labels
                    .get(super::digest::IMAGE_DIGEST)
                    .cloned()
                    .filter(|d| !d.is_empty()),
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
                        image_now: None,
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
        self.observe_volumes(live).await
    }

    /// Fills `live` with this project's named volumes.
    pub async fn observe_volumes(&self, live: &mut LiveState) -> Result<(), DockerError> {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retired_names_are_recognised() {
        assert!(is_retired("p-api-1.old-1732790000"));
        assert!(!is_retired("p-api-1"));
    }
}
