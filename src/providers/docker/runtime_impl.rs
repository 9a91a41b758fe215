//! `impl ContainerRuntime for Docker`: delegation to the inherent operations, and `readings`,
//! which reads local containers' cgroups and asks the stats API for the others.

use std::collections::BTreeMap;
use std::path::Path;

use futures_util::StreamExt;

use super::{cgroup, Docker};
use crate::model::live::LiveState;
use crate::providers::runtime::*;

/// How many Docker stats calls are in flight at once: each waits for the engine's next
/// once-a-second collection, so they should all wait for the same one.
const CONCURRENCY: usize = 128;

#[async_trait::async_trait]
impl ContainerRuntime for Docker {
    fn project(&self) -> &str {
        Docker::project(self)
    }
    async fn ping(&self) -> Result<(), RuntimeError> {
        Docker::ping(self).await
    }
    async fn observe(&self, live: &mut LiveState) -> Result<(), RuntimeError> {
        Docker::observe(self, live).await
    }
    fn volume_name(&self, logical: &str) -> String {
        Docker::volume_name(self, logical)
    }
    async fn create_network(&self) -> Result<(), RuntimeError> {
        Docker::create_network(self).await
    }
    async fn remove_network(&self) -> Result<(), RuntimeError> {
        Docker::remove_network(self).await
    }
    async fn create_volume(&self, logical: &str, prune: bool) -> Result<(), RuntimeError> {
        Docker::create_volume(self, logical, prune).await
    }
    async fn remove_volume(&self, logical: &str) -> Result<(), RuntimeError> {
        Docker::remove_volume(self, logical).await
    }
    async fn config(&self, name: &str) -> Result<Option<ContainerConfig>, RuntimeError> {
        Docker::config(self, name).await
    }
    async fn volume_dir(&self, logical: &str) -> Result<Option<std::path::PathBuf>, RuntimeError> {
        Docker::volume_dir(self, logical).await
    }
    async fn ensure_image(
        &self,
        image: &str,
        login: Option<super::credentials::Login>,
        policy: crate::model::service::PullPolicy,
    ) -> Result<(), RuntimeError> {
        Docker::ensure_image(self, image, login, policy).await
    }

    async fn image_digest(
        &self,
        image: &str,
        login: Option<super::credentials::Login>,
        ask_registry: bool,
    ) -> Option<String> {
        Docker::image_digest(self, image, login, ask_registry).await
    }
    async fn build_image(
        &self,
        context: &Path,
        dockerfile: Option<&str>,
        args: &BTreeMap<String, String>,
        tag: &str,
    ) -> Result<(), RuntimeError> {
        Docker::build_image(self, context, dockerfile, args, tag).await
    }
    async fn run(&self, spec: &ContainerSpec) -> Result<(), RuntimeError> {
        Docker::run(self, spec).await
    }
    async fn start(&self, name: &str) -> Result<(), RuntimeError> {
        Docker::start(self, name).await
    }
    async fn stop(&self, name: &str, grace_secs: i32) -> Result<(), RuntimeError> {
        Docker::stop(self, name, grace_secs).await
    }
    async fn remove(&self, name: &str) -> Result<(), RuntimeError> {
        Docker::remove(self, name).await
    }
    async fn rename(&self, from: &str, to: &str) -> Result<(), RuntimeError> {
        Docker::rename(self, from, to).await
    }
    async fn status(&self, name: &str) -> Result<Option<ContainerStatus>, RuntimeError> {
        Docker::status(self, name).await
    }
    async fn exec(&self, name: &str, cmd: &[String]) -> Result<i64, RuntimeError> {
        Docker::exec(self, name, cmd).await
    }
    async fn ids(&self) -> Result<BTreeMap<String, String>, RuntimeError> {
        Docker::ids(self).await
    }
    async fn stats(&self, name: &str) -> Result<ContainerReading, RuntimeError> {
        Docker::stats(self, name).await
    }
    async fn all_names(&self) -> Result<Vec<String>, RuntimeError> {
        Docker::all_names(self).await
    }
    async fn container_names(&self, resource: &str) -> Result<Vec<String>, RuntimeError> {
        Docker::container_names(self, resource).await
    }
    async fn readings(
        &self,
        names: &[String],
    ) -> BTreeMap<String, Result<ContainerReading, RuntimeError>> {
        if names.is_empty() {
            return BTreeMap::new();
        }
        // A local container's counters come from its cgroup (microseconds); the others from the
        // stats API, all calls in flight at once.
        let ids = self.ids().await.unwrap_or_default();
        let cgroups = cgroup::Cgroups::default();
        let mut out = BTreeMap::new();
        let mut remote = Vec::new();
        for name in names {
            match ids.get(name).and_then(|id| cgroups.read(id)) {
                Some(r) => {
                    out.insert(name.clone(), Ok(r));
                }
                None => remote.push(name.clone()),
            }
        }
        let from_api: Vec<(String, Result<ContainerReading, RuntimeError>)> =
            futures_util::stream::iter(remote)
                .map(|name| async move {
                    let r = Docker::stats(self, &name).await;
                    (name, r)
                })
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await;
        out.extend(from_api);
        out
    }
}

#[async_trait::async_trait]
impl Meter for Docker {
    async fn readings(
        &self,
        names: &[String],
    ) -> BTreeMap<String, Result<ContainerReading, RuntimeError>> {
        ContainerRuntime::readings(self, names).await
    }
}
