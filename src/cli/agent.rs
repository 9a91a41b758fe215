//! `converge agent`: its arguments. The binary hands them to the daemon (the agent module), so the
//! CLI does not import the agent.

use std::net::SocketAddr;
use std::path::PathBuf;

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
    /// A private SSH key (a read-only deploy key) for an SSH --source; ssh-agent's keys when not
    /// given.
    #[arg(long, value_name = "FILE", env = "CONVERGE_GIT_SSH_KEY")]
    pub ssh_key: Option<PathBuf>,
    /// A file holding the passphrase of --ssh-key.
    #[arg(
        long,
        value_name = "FILE",
        env = "CONVERGE_GIT_SSH_KEY_PASSPHRASE_FILE"
    )]
    pub ssh_key_passphrase_file: Option<PathBuf>,
    /// The SSH host keys to trust, in OpenSSH's known_hosts format; an unknown or changed host
    /// key is refused [default: ~/.ssh/known_hosts].
    #[arg(long, value_name = "FILE", env = "CONVERGE_GIT_KNOWN_HOSTS")]
    pub known_hosts: Option<PathBuf>,
    /// A file holding the token (or password) for an HTTPS --source, read at every fetch.
    /// CONVERGE_GIT_TOKEN holds the token itself instead.
    #[arg(long, value_name = "FILE", env = "CONVERGE_GIT_TOKEN_FILE")]
    pub git_token_file: Option<PathBuf>,
    /// The user name sent with the token [default: the URL's user, else x-access-token].
    #[arg(long, value_name = "NAME", env = "CONVERGE_GIT_USERNAME")]
    pub git_username: Option<String>,
    /// Apply only commits signed (`git commit -S` with gpg.format=ssh) by a key listed in this
    /// allowed-signers file; others are refused like an invalid revision.
    #[arg(
        long,
        value_name = "ALLOWED_SIGNERS",
        env = "CONVERGE_VERIFY_SIGNATURES"
    )]
    pub verify_signatures: Option<PathBuf>,
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
