//! `converge agent`: run the daemon.

use std::net::SocketAddr;
use std::path::Path;

use clap::Args;

use super::live::{runtime, state_dir};
use super::Outcome;
use crate::agent::{self, AgentOptions};

#[derive(Args, Debug)]
pub struct AgentArgs {
    /// A git URL (https://, ssh://, file://, or a path to a repository) or a local directory.
    #[arg(long)]
    pub source: String,
    #[arg(long, default_value = "main")]
    pub branch: String,
    /// The desired-state directory inside the repository.
    #[arg(long)]
    pub path: Option<String>,
    #[arg(long)]
    pub env: Option<String>,
    /// Apply only what `placement` puts on this host.
    #[arg(long)]
    pub host: Option<String>,
    /// Address of /health, /ready, /metrics, /status and /hooks/git.
    #[arg(long, default_value = "127.0.0.1:9470")]
    pub listen: SocketAddr,
    /// Report plans and drift, apply nothing.
    #[arg(long)]
    pub plan_only: bool,
}

pub fn run(args: AgentArgs, state: Option<&Path>) -> anyhow::Result<Outcome> {
    let opts = AgentOptions {
        source: args.source,
        branch: args.branch,
        path: args.path,
        env: args.env,
        host: args.host,
        listen: args.listen,
        plan_only: args.plan_only,
        state_dir: state_dir(state),
    };
    runtime()?.block_on(agent::run(opts))?;
    Ok(Outcome::Success)
}
