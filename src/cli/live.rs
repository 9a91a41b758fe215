//! Shared by `plan` and `apply`: connect to the providers, check secrets, observe, plan.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

use crate::apply::journal::Journal;
use crate::diff::{diff, DiffOptions};
use crate::live::docker::Docker;
use crate::live::observe::{observe, RECONCILED};
use crate::live::postgres::Postgres;
use crate::live::s3::S3;
use crate::live::LiveState;
use crate::model::attributes::ReferenceDigest;
use crate::model::DesiredState;
use crate::model::Kind;
use crate::plan::{self, Plan, PlanContext};
use crate::secrets::Secrets;

/// `--state-dir`, else /var/lib/converge as root, else $XDG_STATE_HOME/converge.
pub fn state_dir(flag: Option<&Path>) -> PathBuf {
    if let Some(d) = flag {
        return d.to_path_buf();
    }
    if is_root() {
        return PathBuf::from("/var/lib/converge");
    }
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("converge")
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// What `plan` and `apply` work with once connected.
pub struct Session {
    pub docker: Docker,
    pub secrets: Secrets,
    pub state_dir: PathBuf,
    /// Connected when the Project declares a PostgreSQL provider.
    pub postgres: Option<Postgres>,
    /// Set up when the Project declares an S3 provider.
    pub s3: Option<S3>,
}

impl Session {
    pub async fn open(desired: &DesiredState, state_dir: PathBuf) -> anyhow::Result<Session> {
        let endpoint = desired
            .project
            .providers
            .docker
            .as_ref()
            .and_then(|d| d.endpoint.as_deref());
        let docker = Docker::connect(endpoint, desired.project.name.as_str())?;
        docker.ping().await?;
        let secrets = Secrets::load_or_create(&state_dir)?;
        let missing = secrets.check(desired);
        if !missing.is_empty() {
            bail!(
                "{} secret reference(s) cannot be resolved; nothing was changed:\n  {}",
                missing.len(),
                missing.join("\n  ")
            );
        }
        let postgres = match &desired.project.providers.postgres {
            Some(p) => Some(Postgres::connect(&secrets.resolve(&p.url)?).await?),
            None => None,
        };
        let s3 = match &desired.project.providers.s3 {
            Some(p) => {
                let endpoint = match &p.endpoint {
                    Some(e) => Some(secrets.resolve(e)?),
                    None => None,
                };
                Some(S3::connect(endpoint.as_deref(), &p.region).await)
            }
            None => None,
        };
        Ok(Session {
            docker,
            secrets,
            state_dir,
            postgres,
            s3,
        })
    }

    /// What apply's steps need, from this session's providers.
    pub fn context<'a>(
        &'a self,
        desired: &'a DesiredState,
        live: &'a LiveState,
        root: &'a Path,
        revision: Option<&'a str>,
    ) -> crate::apply::Context<'a> {
        crate::apply::Context {
            desired,
            docker: &self.docker,
            secrets: &self.secrets,
            live,
            revision,
            root,
            stop: None,
            postgres: self.postgres.as_ref(),
            s3: self.s3.as_ref(),
            state_dir: &self.state_dir,
        }
    }

    /// Kinds that have a provider in this session.
    pub fn kinds(&self) -> Vec<Kind> {
        let mut k = RECONCILED.to_vec();
        if self.postgres.is_some() {
            k.push(Kind::Database);
        }
        if self.s3.is_some() {
            k.push(Kind::Bucket);
        }
        k
    }

    pub async fn observe(&self, desired: &DesiredState) -> anyhow::Result<LiveState> {
        let project = desired.project.name.as_str();
        let entries = Journal::entries(&self.state_dir, project);
        let pending = crate::apply::journal::pending_of(&entries);
        let mut live = observe(desired, &self.docker, pending)
            .await
            .context("observing live state")?;
        live.failed = crate::apply::journal::failed_of(&entries);
        live.overrides = crate::scale::overrides(
            desired,
            &crate::apply::journal::autoscaled_of(&entries),
            &crate::apply::journal::budget_statuses(&self.state_dir, project),
            crate::apply::journal::now(),
        );
        if let Some(s3) = &self.s3 {
            s3.observe(desired, &mut live)
                .await
                .map_err(anyhow::Error::msg)
                .context("observing S3")?;
        }
        if let Some(pg) = &self.postgres {
            pg.observe(desired, &self.secrets, &mut live)
                .await
                .context("observing PostgreSQL")?;
        }
        Ok(live)
    }

    pub fn plan(
        &self,
        desired: &DesiredState,
        live: &LiveState,
        host: Option<&str>,
        revision: Option<&str>,
        retry_failed: bool,
    ) -> Plan {
        let opts = DiffOptions {
            host,
            secrets: &self.secrets,
            kinds: Some(&self.kinds()),
            retry_failed,
        };
        plan::plan(
            desired,
            diff(desired, live, &opts),
            PlanContext {
                revision,
                host,
                fingerprint: live.fingerprint(),
                pending: live.pending.clone(),
            },
        )
    }
}

/// The plan against an empty live state: no provider is contacted.
pub fn offline_plan(desired: &DesiredState, host: Option<&str>) -> Plan {
    let live = LiveState::default();
    let opts = DiffOptions {
        host,
        secrets: &ReferenceDigest,
        kinds: None,
        retry_failed: false,
    };
    plan::plan(
        desired,
        diff(desired, &live, &opts),
        PlanContext {
            revision: None,
            host,
            fingerprint: live.fingerprint(),
            pending: Vec::new(),
        },
    )
}

/// A plan saved with `plan --out`, applied later with `apply FILE`.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct SavedPlan {
    pub format_version: String,
    pub dir: PathBuf,
    pub env: Option<String>,
    pub host: Option<String>,
    /// Digest of the desired-state files the plan was made from.
    pub desired_digest: String,
    pub plan: Plan,
}

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

pub fn check_host(desired: &DesiredState, host: Option<&str>) -> anyhow::Result<()> {
    if let Some(h) = host {
        if !desired.project.hosts.iter().any(|x| x.name.as_str() == h) {
            let names: Vec<&str> = desired
                .project
                .hosts
                .iter()
                .map(|x| x.name.as_str())
                .collect();
            bail!(
                "unknown host `{h}` (--host)\n  = hint: the Project lists: {}",
                names.join(", ")
            );
        }
    }
    Ok(())
}
