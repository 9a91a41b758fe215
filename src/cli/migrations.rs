//! `converge migrations repair DATABASE [DIR]`: accept, on purpose, that applied migration files
//! changed (their new checksums are recorded); nothing is run.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};

use super::runtime;
use super::Outcome;
use crate::engine::{state_dir, Engine};
use crate::model::{Kind, ResourceId};

#[derive(Subcommand, Debug)]
pub enum MigrationsCommand {
    /// Record the current checksums of applied migrations whose files were changed on purpose.
    Repair(RepairArgs),
}

#[derive(Args, Debug)]
pub struct RepairArgs {
    pub database: String,
    #[arg(default_value = "desired-state")]
    pub dir: PathBuf,
    #[arg(long)]
    pub env: Option<String>,
}

pub fn run(cmd: MigrationsCommand, state: Option<&Path>) -> anyhow::Result<Outcome> {
    let MigrationsCommand::Repair(args) = cmd;
    let Some(desired) = super::load_or_report(&args.dir, args.env.as_deref())? else {
        return Ok(Outcome::Failure);
    };
    let name = args.database.trim_start_matches("database/").to_string();
    let id = ResourceId::new(Kind::Database, &name);
    if desired.get(&id).is_none() {
        bail!(
            "unknown database `{name}`\n  = hint: it must be declared as `kind: Database` in {}",
            args.dir.display()
        );
    }
    let files = desired.migrations.get(&id).cloned().unwrap_or_default();
    runtime()?.block_on(async {
        let session = Engine::open_connections_only(&desired, state_dir(state)).await?;
        let pg = session
            .registry()
            .postgres()
            .context("no PostgreSQL provider is configured (providers.postgres)")?;
        let repaired = pg.repair(&name, &files).await.map_err(anyhow::Error::msg)?;
        if repaired.is_empty() {
            println!(
                "Every applied migration of database/{name} matches its file; nothing to repair."
            );
        } else {
            println!(
                "Accepted the current checksum of {} applied migration(s) of database/{name}:",
                repaired.len()
            );
            for r in repaired {
                println!("  {r}");
            }
        }
        anyhow::Ok(Outcome::Success)
    })
}
