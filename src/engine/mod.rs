//! The engine: the one loop every caller runs. Desired state + providers → observe → plan →
//! apply → outcome, with the journal around it: recovery of an interrupted run, deferred steps
//! that came due, saved plans, health gates and compensation. The CLI commands and the agent are
//! thin callers of [`Engine`]; nothing else calls a provider except backups.

pub mod apply;
pub mod autoscale;
pub mod budgets;
pub mod deferred;
pub mod event;
pub mod journal;
mod memory;
pub mod observe;
pub mod recover;
pub mod rollback;
pub mod saved;
mod verify;

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::diff::{diff, Diff, DiffOptions};
use crate::model::attributes::ReferenceDigest;
use crate::model::live::LiveState;
use crate::model::{DesiredState, Kind};
use crate::plan::{self, Plan, PlanContext};
use crate::providers::{Context, ProviderError, Registry};
use crate::secrets::{SecretError, Secrets};

/// The PostgreSQL advisory lock that elects the agent doing cluster-wide work.
pub use crate::providers::postgres::lock::{ClusterLock, LockState};
pub use apply::{Outcome, Run};
pub use journal::{Journal, JournalError, LockError, StateLock};
pub use saved::SavedPlan;

/// Replaces a file atomically without following links (for `render --out`).
pub use crate::providers::files::write_atomic as write_file;

/// Why the engine could not start, observe or record.
#[derive(Debug, Error)]
pub enum EngineError {
    #[error("{count} secret reference(s) cannot be resolved; nothing was changed:\n  {list}")]
    Secrets { count: usize, list: String },
    #[error(
        "{count} host path(s) are not allowed on this host; nothing was read or changed:\n  {list}"
    )]
    HostPaths { count: usize, list: String },
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// (The provider's error is a field, not a `#[source]`: the message already includes it.)
    #[error("observing {what}: {error}")]
    Observe {
        what: &'static str,
        error: Box<ProviderError>,
    },
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("unknown host `{host}` (--host)\n  = hint: the Project lists: {known}")]
    UnknownHost { host: String, known: String },
}

/// What a plan is made for.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlanOptions<'a> {
    /// Only what `placement` puts on this host.
    pub host: Option<&'a str>,
    /// The git revision being planned (labelled on what apply creates).
    pub revision: Option<&'a str>,
    /// Plan again a spec that failed and was rolled back.
    pub retry_failed: bool,
}

/// A project's connected providers, its secrets and its state directory.
pub struct Engine {
    registry: Registry,
    secrets: Secrets,
    state_dir: PathBuf,
    /// Copies data before a step drops it; without one, such steps refuse to run.
    safety_net: Option<Box<dyn crate::providers::SafetyNet>>,
}

impl Engine {
    /// Connects the providers `desired` needs and checks that every secret reference resolves
    /// (before any provider that needs a secret connects).
    pub async fn open(desired: &DesiredState, state_dir: PathBuf) -> Result<Engine, EngineError> {
        Self::open_with(desired, state_dir, true).await
    }

    /// Like `open`, for commands that read live state or work on one backup (`status`, `backup`,
    /// `restore`, `migrations`): only the secrets the providers' connections need must resolve,
    /// not every service's env or role's password.
    pub async fn open_connections_only(
        desired: &DesiredState,
        state_dir: PathBuf,
    ) -> Result<Engine, EngineError> {
        Self::open_with(desired, state_dir, false).await
    }

    async fn open_with(
        desired: &DesiredState,
        state_dir: PathBuf,
        every_secret: bool,
    ) -> Result<Engine, EngineError> {
        let secrets = Secrets::load_or_create(&state_dir)?;
        let refused = secrets.policy().refused_paths(desired);
        if !refused.is_empty() {
            return Err(EngineError::HostPaths {
                count: refused.len(),
                list: crate::policy::one_hint(refused),
            });
        }
        let mut registry = Registry::default();
        registry.connect(desired, &secrets, true).await?;
        let missing = if every_secret {
            secrets.check(desired)
        } else {
            Vec::new()
        };
        if !missing.is_empty() {
            return Err(EngineError::Secrets {
                count: missing.len(),
                list: missing.join("\n  "),
            });
        }
        registry.connect(desired, &secrets, false).await?;
        Ok(Engine {
            registry,
            secrets,
            state_dir,
            safety_net: None,
        })
    }

    /// Gives steps that drop data a way to copy it first (the backup pipeline).
    pub fn with_safety_net(mut self, net: Box<dyn crate::providers::SafetyNet>) -> Engine {
        self.safety_net = Some(net);
        self
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Resolved values that name a database `from` name `to` instead (see
    /// [`Secrets::rename_databases`]): a drill's services reach its scratch copies.
    pub fn with_renamed_databases(mut self, renames: Vec<(String, String)>) -> Engine {
        self.secrets.rename_databases(renames);
        self
    }

    pub fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Declared kinds a connected provider reconciles; the others are planned offline only.
    pub fn kinds(&self) -> Vec<Kind> {
        self.registry.kinds()
    }

    /// Everything live that `desired` could touch, with the journal's memory.
    pub async fn observe(&self, desired: &DesiredState) -> Result<LiveState, EngineError> {
        observe::observe(&self.registry, &self.secrets, desired, &self.state_dir).await
    }

    /// Containers and rendered files only, for sampling ticks.
    pub async fn observe_services(&self, desired: &DesiredState) -> Result<LiveState, EngineError> {
        observe::observe_services(&self.registry, &self.secrets, desired).await
    }

    /// Undoes what an interrupted run completed; one line per action, for the log.
    pub async fn recover(&self, journal: &mut Journal) -> Result<Vec<String>, JournalError> {
        recover::recover(&self.registry, journal).await
    }

    /// Observes, runs the deferred steps that came due (then observes again).
    pub async fn prepare(
        &self,
        desired: &DesiredState,
        journal: &mut Journal,
        root: &Path,
        revision: Option<&str>,
        progress: &mut dyn FnMut(&str),
    ) -> Result<LiveState, EngineError> {
        let live = self.observe(desired).await?;
        self.run_due(desired, live, journal, root, revision, progress)
            .await
    }

    /// Runs the deferred steps of `live` that came due; the live state after them.
    pub async fn run_due(
        &self,
        desired: &DesiredState,
        live: LiveState,
        journal: &mut Journal,
        root: &Path,
        revision: Option<&str>,
        progress: &mut dyn FnMut(&str),
    ) -> Result<LiveState, EngineError> {
        if !live.pending.iter().any(|p| p.due <= journal::now()) {
            return Ok(live);
        }
        let run = self.run(desired, &live, root, revision);
        deferred::run_due_deferred(&run, journal, &self.state_dir, progress).await?;
        self.observe(desired).await
    }

    /// The changes between `desired` and `live`, for the kinds in `kinds`.
    pub fn diff(
        &self,
        desired: &DesiredState,
        live: &LiveState,
        opts: &PlanOptions<'_>,
        kinds: &[Kind],
    ) -> Diff {
        let d = DiffOptions {
            host: opts.host,
            secrets: &self.secrets,
            kinds: Some(kinds),
            retry_failed: opts.retry_failed,
        };
        diff(desired, live, &d)
    }

    /// The plan that converges `live` to `desired` with every connected provider.
    pub fn plan(&self, desired: &DesiredState, live: &LiveState, opts: &PlanOptions<'_>) -> Plan {
        let d = self.diff(desired, live, opts, &self.kinds());
        let mut p = plan_of(desired, live, d, opts);
        let entries = Journal::entries(&self.state_dir, desired.project.name.as_str());
        p.recovery = recover::pending_recovery(&entries);
        p
    }

    /// What a step needs to run against this engine's providers.
    pub fn run<'a>(
        &'a self,
        desired: &'a DesiredState,
        live: &'a LiveState,
        root: &'a Path,
        revision: Option<&'a str>,
    ) -> Run<'a> {
        Run {
            registry: &self.registry,
            ctx: Context {
                desired,
                secrets: &self.secrets,
                live,
                revision,
                root,
                state_dir: &self.state_dir,
                safety_net: self.safety_net.as_deref(),
                safety: Default::default(),
            },
            stop: None,
            note: Default::default(),
        }
    }

    /// Runs `plan`; `progress` receives one line per event, for the terminal or the log.
    pub async fn apply(
        &self,
        plan: &Plan,
        run: &Run<'_>,
        journal: &mut Journal,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Outcome, JournalError> {
        apply::execute(plan, run, journal, progress).await
    }
}

/// The plan of `diff` (the steps, their order and the plan's fingerprint).
pub fn plan_of(desired: &DesiredState, live: &LiveState, d: Diff, opts: &PlanOptions<'_>) -> Plan {
    plan::plan(
        desired,
        d,
        PlanContext {
            revision: opts.revision,
            host: opts.host,
            fingerprint: live.fingerprint(),
            pending: live.pending.clone(),
        },
    )
}

/// The plan against an empty live state: no provider is contacted. It covers the kinds a live
/// plan would (those of the providers the desired state wants), and its reasons say that live
/// state was not read rather than that something does not exist.
pub fn offline_plan(desired: &DesiredState, host: Option<&str>) -> Plan {
    let live = LiveState::default();
    let kinds = crate::providers::registry::kinds_wanted(desired);
    let opts = DiffOptions {
        host,
        secrets: &ReferenceDigest,
        kinds: Some(&kinds),
        retry_failed: false,
    };
    let mut d = diff(desired, &live, &opts);
    for c in &mut d.changes {
        c.reason = "offline: live state not read".into();
    }
    let mut p = plan_of(
        desired,
        &live,
        d,
        &PlanOptions {
            host,
            ..Default::default()
        },
    );
    p.offline = true;
    p
}

/// Fails when `host` is not one of the Project's hosts.
pub fn check_host(desired: &DesiredState, host: Option<&str>) -> Result<(), EngineError> {
    if let Some(h) = host {
        if !desired.project.hosts.iter().any(|x| x.name.as_str() == h) {
            let names: Vec<&str> = desired
                .project
                .hosts
                .iter()
                .map(|x| x.name.as_str())
                .collect();
            return Err(EngineError::UnknownHost {
                host: h.to_string(),
                known: names.join(", "),
            });
        }
    }
    Ok(())
}

/// `--state-dir`, else /var/lib/converge as root, else $XDG_STATE_HOME/converge.
pub fn state_dir(flag: Option<&Path>) -> PathBuf {
    match flag {
        Some(d) => d.to_path_buf(),
        None => crate::state_dir::per_user("/var/lib/converge", "XDG_STATE_HOME", ".local/state"),
    }
}
