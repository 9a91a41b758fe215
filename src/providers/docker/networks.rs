//! A service's networks beyond the project's: bridge networks named `<project>_<name>`,
//! labelled as the project's (so they are converge's), created when a container first needs
//! them and joined with the service's aliases before the container starts; removed with the
//! project's network.

use bollard::models::{EndpointSettings, NetworkConnectRequest, NetworkCreateRequest};

use super::{Docker, DockerError};
use crate::providers::runtime::ContainerSpec;

impl Docker {
    /// Docker's name for a service network: `<project>_<name>`.
    pub fn network_name(&self, logical: &str) -> String {
        format!("{}_{logical}", self.project)
    }

    /// Creates each extra network of `spec` that is missing and connects the (created, not yet
    /// started) container to it, with the service's names and the network's own aliases.
    pub(super) async fn join_networks(&self, spec: &ContainerSpec) -> Result<(), DockerError> {
        for (logical, aliases) in &spec.options.networks {
            let name = self.network_name(logical);
            self.ensure_network(&name).await?;
            let all: Vec<String> = spec.aliases.iter().chain(aliases).cloned().collect();
            let req = NetworkConnectRequest {
                container: spec.name.clone(),
                endpoint_config: Some(EndpointSettings {
                    aliases: Some(all),
                    ..Default::default()
                }),
            };
            self.client
                .connect_network(&name, req)
                .await
                .map_err(self.fail(format!("connect {} to network {name}", spec.name)))?;
        }
        Ok(())
    }

    /// The services' extra networks this project has on the engine (its labels, its prefix).
    pub(super) async fn service_networks(&self) -> Result<Vec<String>, DockerError> {
        let prefix = self.network_name("");
        let listed = self
            .client
            .list_networks(Some(bollard::query_parameters::ListNetworksOptions {
                filters: Some(self.filters(&[])),
            }))
            .await
            .map_err(self.fail("list networks".to_string()))?;
        Ok(listed
            .into_iter()
            .filter_map(|n| n.name)
            .filter(|n| n.starts_with(&prefix))
            .collect())
    }

    async fn ensure_network(&self, name: &str) -> Result<(), DockerError> {
        if self.client.inspect_network(name, None).await.is_ok() {
            return Ok(());
        }
        let req = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".into()),
            labels: Some(self.labels(&[])),
            ..Default::default()
        };
        match self.client.create_network(req).await {
            // Created meanwhile by another apply: fine.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => Ok(()),
            other => other
                .map(|_| ())
                .map_err(self.fail(format!("create network {name}"))),
        }
    }
}
