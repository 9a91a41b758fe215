//! The project's overlay network: every service's tasks join it and find each other by name;
//! it is attachable, so that a Router or a one-off container can join it too.

use std::collections::HashMap;

use bollard::models::NetworkCreateRequest;
use bollard::query_parameters::ListNetworksOptions;

use crate::model::live::LiveState;
use crate::providers::docker::api;
use crate::providers::runtime::{RuntimeError, MANAGED, PROJECT};

impl super::SwarmProvider {
    fn network_labels(&self) -> HashMap<String, String> {
        HashMap::from([
            (MANAGED.to_string(), "true".to_string()),
            (PROJECT.to_string(), self.project.clone()),
        ])
    }

    pub(super) async fn create_network(&self) -> Result<(), RuntimeError> {
        let req = NetworkCreateRequest {
            name: self.project.clone(),
            driver: Some("overlay".into()),
            attachable: Some(true),
            labels: Some(self.network_labels()),
            ..Default::default()
        };
        match self.client().create_network(req).await {
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => Ok(()),
            other => other
                .map(|_| ())
                .map_err(api(format!("create overlay network {}", self.project))),
        }
    }

    pub(super) async fn remove_network(&self) -> Result<(), RuntimeError> {
        match self.client().remove_network(&self.project).await {
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            })
            | Ok(()) => Ok(()),
            Err(e) => Err(api(format!("remove network {}", self.project))(e)),
        }
    }

    /// Adds the project's overlay network to `live` when it exists.
    pub(super) async fn observe_network(&self, live: &mut LiveState) -> Result<(), RuntimeError> {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![
                format!("{MANAGED}=true"),
                format!("{PROJECT}={}", self.project),
            ],
        )]);
        let networks = self
            .client()
            .list_networks(Some(ListNetworksOptions {
                filters: Some(filters),
            }))
            .await
            .map_err(api("list networks"))?;
        for n in networks {
            if let Some(name) = n.name {
                live.networks.insert(name);
            }
        }
        Ok(())
    }
}
