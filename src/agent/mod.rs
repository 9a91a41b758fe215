//! `converge agent`: follows a git branch (or a directory), and on every new revision, webhook,
//! timer tick or restart it loads, validates, observes, plans and applies — level-triggered and
//! idempotent. An invalid revision is never applied; drift is repaired or reported; a crash is
//! recovered from the journal; SIGTERM stops between steps.

pub mod backoff;
mod drills;
mod fetching;
mod git_attempt;
pub mod git_auth;
pub mod http;
pub mod known_hosts;
pub mod metrics;
pub mod notify;
mod reconcile;
pub mod redact;
mod reporting;
pub mod schedule;
mod schedules;
pub mod source;
pub mod source_error;
pub mod status;
pub mod webhook;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::model::Kind;
use reconcile::Agent;
use source::Source;
use status::Status;

/// Kinds whose work runs once per cluster, on the agent holding the cluster lock.
pub const CLUSTER_KINDS: &[Kind] = &[Kind::Database, Kind::Bucket, Kind::Backup, Kind::Budget];

/// Why a reconcile runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Startup,
    Timer,
    Webhook,
    Changed,
    /// The autoscaler or a budget changed a replica count.
    Scaled,
    /// A sampling tick that changed nothing: no reconcile.
    Tick,
    Stop,
}

pub struct AgentOptions {
    pub source: String,
    pub branch: String,
    pub path: Option<String>,
    pub env: Option<String>,
    pub host: Option<String>,
    pub listen: SocketAddr,
    pub plan_only: bool,
    /// How often scaled services are sampled and the autoscaler decides.
    pub scale_interval: Duration,
    /// How often budgets are evaluated.
    pub budget_interval: Duration,
    /// Credentials and known_hosts of a git source.
    pub auth: git_auth::GitAuth,
    /// Only commits signed by a key in this allowed-signers file are applied.
    pub verify_signatures: Option<PathBuf>,
    pub state_dir: PathBuf,
}

/// Runs until SIGTERM/SIGINT (a second signal exits at once).
pub async fn run(opts: AgentOptions) -> anyhow::Result<()> {
    crate::state_dir::ensure(&opts.state_dir)
        .with_context(|| format!("cannot create {}", opts.state_dir.display()))?;
    let webhook = webhook::Webhook::from_env(&opts.state_dir)?;
    let source = git_source(&opts)?;
    let (tx, mut rx) = mpsc::channel(32);
    let shared = Arc::new(http::Shared {
        status: RwLock::new(Status {
            source: source.describe(),
            plan_only: opts.plan_only,
            ..Default::default()
        }),
        metrics: metrics::Metrics::default(),
        trigger: tx.clone(),
        webhook,
        branch: opts.branch.clone(),
    });
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("cannot listen on {}", opts.listen))?;
    let app = http::router(shared.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            error!(error = %e, "http server stopped");
        }
    });
    let stop = Arc::new(AtomicBool::new(false));
    spawn_signals(stop.clone(), tx.clone());
    if let Source::Dir { path } = &source {
        spawn_watcher(path.clone(), tx.clone());
    }
    // describe() hides the credentials of a source URL.
    info!(listen = %opts.listen, source = %source.describe(), "agent started");

    let mut agent = Agent::new(opts, source, shared, stop.clone());
    let mut trigger = Trigger::Startup;
    let mut ticks = tokio::time::interval(agent.opts.scale_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_sync = tokio::time::Instant::now();
    loop {
        if trigger != Trigger::Tick {
            agent.reconcile(trigger).await;
            next_sync = tokio::time::Instant::now() + agent.interval();
        }
        if stop.load(Ordering::SeqCst) {
            break;
        }
        trigger = tokio::select! {
            t = rx.recv() => t.unwrap_or(Trigger::Stop),
            _ = tokio::time::sleep_until(next_sync) => Trigger::Timer,
            _ = ticks.tick() => {
                if agent.tick().await { Trigger::Scaled } else { Trigger::Tick }
            }
        };
        if trigger == Trigger::Changed {
            // Debounce: editors write several times in a row.
            tokio::time::sleep(Duration::from_millis(300)).await;
            while let Ok(t) = rx.try_recv() {
                if t == Trigger::Stop {
                    trigger = Trigger::Stop;
                }
            }
        }
        if trigger == Trigger::Stop || stop.load(Ordering::SeqCst) {
            break;
        }
    }
    if let Some(c) = agent.cluster.as_mut() {
        c.release().await;
    }
    info!("agent stopped");
    Ok(())
}

/// The source with its credentials and allowed signers, checked now: a credential or
/// allowed-signers file that cannot be read stops the agent at startup.
fn git_source(opts: &AgentOptions) -> anyhow::Result<Source> {
    let source = Source::new(
        &opts.source,
        &opts.branch,
        opts.path.as_deref(),
        &opts.state_dir,
    );
    let Source::Git { url, .. } = &source else {
        if opts.verify_signatures.is_some() {
            anyhow::bail!("--verify-signatures needs a git --source: the directory {} has no commits to verify", opts.source);
        }
        return Ok(source);
    };
    if source::redact_url(url) != *url {
        warn!("the --source URL holds credentials, which show in the process list: give the token in a file instead (CONVERGE_GIT_TOKEN_FILE)");
    }
    opts.auth.check_files()?;
    if let Some(file) = &opts.verify_signatures {
        crate::load::allowed_signers::AllowedSigners::read(file)?;
    }
    Ok(source
        .with_auth(opts.auth.clone())
        .with_signers(opts.verify_signatures.clone()))
}

/// First SIGTERM/SIGINT: finish the current step and stop. Second: exit at once.
fn spawn_signals(stop: Arc<AtomicBool>, tx: mpsc::Sender<Trigger>) {
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        loop {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            if stop.swap(true, Ordering::SeqCst) {
                warn!("second signal: exiting now");
                std::process::exit(130);
            }
            info!("shutdown requested: finishing the current step");
            let _ = tx.try_send(Trigger::Stop);
        }
    });
}

fn spawn_watcher(dir: PathBuf, tx: mpsc::Sender<Trigger>) {
    use ::notify::{RecursiveMode, Watcher};
    let handler = move |res: ::notify::Result<::notify::Event>| {
        // Reading the files (an access) is what every reconcile does: only changes count.
        if res.is_ok_and(|e| !matches!(e.kind, ::notify::EventKind::Access(_))) {
            let _ = tx.try_send(Trigger::Changed);
        }
    };
    match ::notify::recommended_watcher(handler) {
        Ok(mut w) => {
            if let Err(e) = w.watch(&dir, RecursiveMode::Recursive) {
                warn!(error = %e, "cannot watch the source directory; relying on the interval");
            }
            // The watcher lives as long as the process.
            std::mem::forget(w);
        }
        Err(e) => warn!(error = %e, "cannot watch the source directory; relying on the interval"),
    }
}
