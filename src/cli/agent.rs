//! `converge agent`: its arguments. The binary hands them to the daemon (the agent module), so the
//! CLI does not import the agent.

use std::net::SocketAddr;

use clap::Args;

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
    /// How often scaled services are sampled (Docker stats, queue_depth) and the autoscaler decides.
    #[arg(long, default_value = "15s", value_parser = duration)]
    pub scale_interval: crate::model::types::Duration,
    /// How often budgets are evaluated (usage, spend.sql, thresholds, limits).
    #[arg(long, default_value = "1m", value_parser = duration)]
    pub budget_interval: crate::model::types::Duration,
}

fn duration(text: &str) -> Result<crate::model::types::Duration, String> {
    let d: crate::model::types::Duration = text.parse()?;
    if d.as_millis() == 0 {
        return Err("must be longer than 0s".into());
    }
    Ok(d)
}
