//! Providers: the only code that talks to Docker, PostgreSQL, S3 and files on disk. Each one owns
//! some kinds of resource, observes them into the plain `LiveState`, applies one plan step at a
//! time (returning what undoes it) and runs undos. SDK types stay inside each provider's folder.
//!
//! A new provider is one folder here that implements [`Provider`], plus one line in
//! [`registry::FACTORIES`]. A new container engine is one folder that implements
//! [`ContainerRuntime`]; the `services` provider runs containers on whichever runtime it is given.

pub mod docker;
pub mod error;
pub mod files;
pub mod health;
pub mod postgres;
pub mod registry;
pub mod runtime;
pub mod s3;
pub mod safety;
pub mod services;
pub mod swarm;
pub mod undo;

use std::any::Any;
use std::path::Path;

use async_trait::async_trait;

use crate::diff::Change;
use crate::model::live::LiveState;
use crate::model::{DesiredState, Kind};
use crate::plan::Step;
use crate::secrets::Secrets;

pub use error::ProviderError;
pub use registry::Registry;
pub use runtime::ContainerRuntime;
pub use safety::{Dropping, SafetyCopies, SafetyNet};
pub use undo::Undo;

/// What a step needs besides its provider: the desired state being applied, the live state it
/// was planned against, secrets, and where things are.
pub struct Context<'a> {
    pub desired: &'a DesiredState,
    pub secrets: &'a Secrets,
    pub live: &'a LiveState,
    /// The git revision being applied, labelled on what is created.
    pub revision: Option<&'a str>,
    /// The desired-state directory (build contexts are relative to it).
    pub root: &'a Path,
    /// Where dumps go when no Backup destination is on local disk.
    pub state_dir: &'a Path,
    /// What copies data before a step drops it (none: such steps refuse to run).
    pub safety_net: Option<&'a dyn SafetyNet>,
    /// Safety copies steps took before dropping data, for the apply's outcome.
    pub safety: SafetyCopies,
}

/// One backend that owns some kinds of resource.
#[async_trait]
pub trait Provider: Send + Sync {
    /// A short name for messages (`docker`, `postgres`, `s3`, `files`).
    fn name(&self) -> &'static str;
    /// The kinds whose changes this provider applies (implied ones included: network, volume).
    fn kinds(&self) -> &'static [Kind];
    /// Adds what this provider sees of `desired`'s world to `live`.
    async fn observe(
        &self,
        desired: &DesiredState,
        secrets: &Secrets,
        live: &mut LiveState,
    ) -> Result<(), ProviderError>;
    /// What would undo `step` if the process died while it runs, made before it touches
    /// anything (the engine journals it first). `None`: the step's own undo is enough.
    async fn prepare(
        &self,
        _step: &Step,
        _change: Option<&Change>,
        _ctx: &Context<'_>,
    ) -> Result<Option<Undo>, ProviderError> {
        Ok(None)
    }
    /// Runs one step; returns what undoes it.
    async fn apply(
        &self,
        step: &Step,
        change: Option<&Change>,
        ctx: &Context<'_>,
    ) -> Result<Undo, ProviderError>;
    /// Runs an undo this provider returned earlier (also after a crash, from the journal).
    async fn undo(&self, undo: &Undo) -> Result<(), ProviderError>;
    /// The concrete provider, for callers that need more than the trait (backups, the engine's
    /// health gates).
    fn as_any(&self) -> &dyn Any;
}
