//! The command line: one function per subcommand; errors become exit codes here.

pub mod agent;
mod apply;
pub mod backup;
mod completions;
mod import;
mod migrations;
mod plan;
mod recover;
mod render;
mod rollback;
mod schema;
mod status;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "converge",
    version,
    about = "Converge Docker, PostgreSQL and S3 to the desired state in Git"
)]
pub struct Cli {
    /// Where the journal, deferred steps and the agent's checkout live
    /// (default: /var/lib/converge as root, else $XDG_STATE_HOME/converge).
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    Text,
    Json,
    Markdown,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check the desired state; every problem is listed (exit 1 when any).
    Validate {
        #[arg(default_value = "desired-state")]
        dir: PathBuf,
        /// Check one environment (default: the base and every environment the Project lists).
        #[arg(long)]
        env: Option<String>,
    },
    /// Show what apply would change.
    Plan(plan::PlanArgs),
    /// Converge live state to the desired state (or apply a saved plan).
    Apply(apply::ApplyArgs),
    /// Take, list and verify backups.
    #[command(subcommand)]
    Backup(backup::BackupCommand),
    /// Restore a backup: `converge restore NAME@latest --to DATABASE`.
    Restore(backup::RestoreArgs),
    /// Recover from the backups: infrastructure, restores, the rest, verified; RTO and RPO measured.
    Recover(recover::RecoverArgs),
    /// Database migrations.
    #[command(subcommand)]
    Migrations(migrations::MigrationsCommand),
    /// Run the agent: follow a git branch or a directory and converge continuously.
    Agent(agent::AgentArgs),
    /// Switch a service back to its previous color, or redeploy its previous spec.
    Rollback(rollback::RollbackArgs),
    /// Replicas per service (declared, autoscaled, running, last scaling) and each budget's
    /// spend, projection and active limit.
    Status(status::StatusArgs),
    /// Render routers and config files without applying them.
    Render {
        #[arg(default_value = "desired-state")]
        dir: PathBuf,
        #[arg(long)]
        env: Option<String>,
        /// Write the files under this directory (by their absolute paths) instead of printing them.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Write a desired-state directory from Docker Compose files: `converge import compose FILE…`.
    #[command(subcommand)]
    Import(import::ImportCommand),
    /// Print the JSON Schema of every kind (or write one file per kind with --out).
    Schema {
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Print a shell completion script: `converge completions bash > /etc/bash_completion.d/converge`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `converge man | man -l -`; `converge man plan` for one subcommand.
    Man {
        /// A subcommand whose page to print instead, as `converge-SUBCOMMAND(1)`.
        subcommand: Option<String>,
    },
}

/// What a subcommand tells the process to exit with.
pub enum Outcome {
    Success,
    /// `--detailed-exitcode` and there are changes.
    Changes,
    Failure,
}

/// Runs `converge agent` with its arguments and the state directory. The binary hands it in, so
/// the CLI does not import the agent (nor the agent the CLI).
pub type AgentMain = fn(agent::AgentArgs, PathBuf) -> anyhow::Result<()>;

pub fn main(run_agent: AgentMain) -> ExitCode {
    let cli = Cli::parse();
    let level = if matches!(cli.command, Command::Agent(_)) {
        "info"
    } else {
        "warn"
    };
    init_tracing(cli.log_format, level);
    let result = match cli.command {
        Command::Validate { dir, env } => validate::run(&dir, env.as_deref()),
        Command::Plan(args) => plan::run(args, cli.state_dir.as_deref()),
        Command::Apply(args) => apply::run(args, cli.state_dir.as_deref()),
        Command::Rollback(args) => rollback::run(args, cli.state_dir.as_deref()),
        Command::Status(args) => status::run(args, cli.state_dir.as_deref()),
        Command::Agent(args) => run_agent(args, crate::engine::state_dir(cli.state_dir.as_deref()))
            .map(|()| Outcome::Success),
        Command::Migrations(cmd) => migrations::run(cmd, cli.state_dir.as_deref()),
        Command::Backup(cmd) => backup::run(cmd, cli.state_dir.as_deref()),
        Command::Restore(args) => backup::restore(args, cli.state_dir.as_deref()),
        Command::Recover(args) => recover::run(args, cli.state_dir.as_deref()),
        Command::Render { dir, env, out } => render::run(&dir, env.as_deref(), out.as_deref()),
        Command::Import(cmd) => import::run(cmd),
        Command::Schema { out } => schema::run(out.as_deref()),
        Command::Completions { shell } => completions::completions(shell),
        Command::Man { subcommand } => completions::man(subcommand.as_deref()),
    };
    match result {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Changes) => ExitCode::from(2),
        Ok(Outcome::Failure) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn init_tracing(format: LogFormat, level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("CONVERGE_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("converge={level},warn")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Loads `dir` for `env`, printing every problem on failure.
pub(crate) fn load_or_report(
    dir: &std::path::Path,
    env: Option<&str>,
) -> Result<Option<crate::model::DesiredState>, anyhow::Error> {
    match crate::load::load_dir(dir, env) {
        Ok(state) => Ok(Some(state)),
        Err(crate::load::LoadError::Invalid(d)) => {
            eprintln!("{d}");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// The async runtime the commands block on.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context as _;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}
