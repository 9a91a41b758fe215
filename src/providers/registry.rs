//! The registry: which provider applies which kind. Providers are connected only when the
//! desired state needs them (a resource of their kinds, or the Project naming them), so a
//! database-only project never contacts a container engine.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::model::{DesiredState, Kind, ResourceId};
use crate::providers::postgres::{Postgres, PostgresProvider};
use crate::providers::runtime::ContainerRuntime;
use crate::providers::s3::{S3Provider, S3};
use crate::providers::services::ServiceProvider;
use crate::providers::{Provider, ProviderError};
use crate::secrets::Secrets;

/// Connects one provider for a desired state (resolving its secrets).
pub type Connect = for<'a> fn(
    &'a DesiredState,
    &'a Secrets,
) -> BoxFuture<'a, Result<Arc<dyn Provider>, ProviderError>>;

/// How one provider comes into a project.
pub struct Factory {
    pub name: &'static str,
    pub kinds: &'static [Kind],
    /// Whether this desired state needs the provider.
    pub wanted: fn(&DesiredState) -> bool,
    /// Connects without resolving any secret (it can run before the secrets are checked).
    pub secret_free: bool,
    pub connect: Connect,
}

/// Every provider of this build, in the order they connect and observe. A new provider is one line here.
pub const FACTORIES: &[Factory] = &[
    crate::providers::docker::FACTORY,
    crate::providers::files::FACTORY,
    crate::providers::postgres::FACTORY,
    crate::providers::s3::FACTORY,
    crate::providers::swarm::FACTORY,
];

/// The kinds the providers `desired` wants would reconcile, without connecting any: what an
/// offline plan covers, so it plans what a live plan would.
pub fn kinds_wanted(desired: &DesiredState) -> Vec<Kind> {
    FACTORIES
        .iter()
        .filter(|f| (f.wanted)(desired))
        .flat_map(|f| f.kinds.iter().copied())
        .collect()
}

/// Whether `desired` holds a resource of one of `kinds`.
pub fn has_kind(desired: &DesiredState, kinds: &[Kind]) -> bool {
    desired.resources.keys().any(|id| kinds.contains(&id.kind))
}

/// The connected providers of one project, by kind.
#[derive(Default)]
pub struct Registry {
    providers: Vec<Arc<dyn Provider>>,
    by_kind: BTreeMap<Kind, usize>,
}

impl Registry {
    /// Connects the providers `desired` needs whose connection resolves no secret
    /// (`secret_free`), or the others: the engine checks every secret reference in between.
    pub async fn connect(
        &mut self,
        desired: &DesiredState,
        secrets: &Secrets,
        secret_free: bool,
    ) -> Result<(), ProviderError> {
        for f in FACTORIES
            .iter()
            .filter(|f| f.secret_free == secret_free && (f.wanted)(desired))
        {
            self.add((f.connect)(desired, secrets).await?);
        }
        Ok(())
    }

    /// Adds a connected provider; it takes over the kinds it owns.
    pub fn add(&mut self, provider: Arc<dyn Provider>) {
        let index = self.providers.len();
        for k in provider.kinds() {
            self.by_kind.insert(*k, index);
        }
        self.providers.push(provider);
    }

    pub fn providers(&self) -> impl Iterator<Item = &Arc<dyn Provider>> {
        self.providers.iter()
    }

    pub fn for_kind(&self, kind: Kind) -> Option<&dyn Provider> {
        self.by_kind.get(&kind).map(|&i| self.providers[i].as_ref())
    }

    /// The provider of a resource.
    pub fn for_id(&self, id: &ResourceId) -> Option<&dyn Provider> {
        self.for_kind(id.kind)
    }

    /// Declared kinds some connected provider reconciles.
    pub fn kinds(&self) -> Vec<Kind> {
        Kind::ALL
            .into_iter()
            .filter(|k| self.by_kind.contains_key(k))
            .collect()
    }

    /// A connected provider of a concrete type.
    pub fn get<T: 'static>(&self) -> Option<&T> {
        self.providers
            .iter()
            .find_map(|p| p.as_any().downcast_ref::<T>())
    }

    /// The container runtime services run on, when services are part of this project.
    pub fn runtime(&self) -> Option<&dyn ContainerRuntime> {
        self.get::<ServiceProvider>().map(|p| p.runtime().as_ref())
    }

    /// What the autoscaler reads CPU and memory from: Swarm's tasks on this node, or containers.
    pub fn meter(&self) -> Option<&dyn crate::providers::runtime::Meter> {
        if let Some(s) = self.swarm() {
            return Some(s);
        }
        self.get::<ServiceProvider>()
            .map(|p| p as &dyn crate::providers::runtime::Meter)
    }

    /// The Swarm runtime, when `providers.swarm` runs this project's services.
    pub fn swarm(&self) -> Option<&crate::providers::swarm::SwarmProvider> {
        self.get::<crate::providers::swarm::SwarmProvider>()
    }

    pub fn postgres(&self) -> Option<&Postgres> {
        self.get::<PostgresProvider>().map(|p| p.postgres())
    }

    pub fn s3(&self) -> Option<&S3> {
        self.get::<S3Provider>().map(|p| p.s3())
    }
}
