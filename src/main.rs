//! The `converge` binary: parse the command line, run, map the outcome to an exit code. It hands
//! the CLI the agent daemon, so neither of those modules imports the other.

use std::path::PathBuf;
use std::process::ExitCode;

use converge::agent::git_auth::GitAuth;
use converge::agent::{self, AgentOptions};
use converge::cli::agent::AgentArgs;

fn main() -> ExitCode {
    converge::cli::main(run_agent)
}

/// `converge agent`: the daemon with the command line's options.
fn run_agent(args: AgentArgs, state_dir: PathBuf) -> anyhow::Result<()> {
    let auth = GitAuth::from_settings(
        args.ssh_key,
        args.ssh_key_passphrase_file,
        args.known_hosts,
        args.git_token_file,
        std::env::var("CONVERGE_GIT_TOKEN").ok(),
        args.git_username,
    )?;
    let opts = AgentOptions {
        source: args.source,
        branch: args.branch,
        path: args.path,
        env: args.env,
        host: args.host,
        listen: args.listen,
        plan_only: args.plan_only,
        scale_interval: args.scale_interval.to_std(),
        budget_interval: args.budget_interval.to_std(),
        auth,
        verify_signatures: args.verify_signatures,
        state_dir,
    };
    converge::cli::runtime()?.block_on(agent::run(opts))
}
