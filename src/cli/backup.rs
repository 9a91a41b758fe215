//! `converge backup run|list|verify NAME [DIR]` and `converge restore BACKUP_ID --to DATABASE`.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};

use super::runtime;
use super::Outcome;
use crate::backup::job::{human, run_now, verify};
use crate::backup::{self, Tools};
use crate::engine::{state_dir, Engine};
use crate::load::{self, SourceTree};
use crate::model::backup::VerifyMode;
use crate::model::{Backup, DesiredState, Kind, Resource, ResourceId};

#[derive(Subcommand, Debug)]
pub enum BackupCommand {
    /// Take a backup now (then verify it as declared and apply retention).
    Run(NameArgs),
    /// Every copy at every destination, with age, size and what retention will delete.
    List(NameArgs),
    /// Check a copy (default: the newest): `checksum`, or `restore` into a scratch database.
    Verify(VerifyArgs),
}

#[derive(Args, Debug)]
pub struct NameArgs {
    pub name: String,
    #[arg(default_value = "desired-state")]
    pub dir: PathBuf,
    #[arg(long)]
    pub env: Option<String>,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    pub name: String,
    /// A copy id (`database-20261128T143800Z`), or the desired-state directory.
    pub id_or_dir: Option<String>,
    pub dir: Option<PathBuf>,
    #[arg(long)]
    pub env: Option<String>,
    /// Override the Backup's `verify`.
    #[arg(long, value_parser = ["checksum", "restore"])]
    pub mode: Option<String>,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// A copy id, or `NAME@latest`.
    pub backup_id: String,
    #[arg(default_value = "desired-state")]
    pub dir: PathBuf,
    /// The database to restore into (created when missing).
    #[arg(long, conflicts_with = "to_dir")]
    pub to: Option<String>,
    /// The directory to restore a files backup into.
    #[arg(long)]
    pub to_dir: Option<PathBuf>,
    /// Restore over a database that already holds tables, or into a directory that is not empty.
    #[arg(long)]
    pub force: bool,
    #[arg(long)]
    pub env: Option<String>,
}

/// The declared Backup `name`; with `safety_copies` (the state dir), also a safety copy's name.
fn load_backup(
    dir: &Path,
    env: Option<&str>,
    name: &str,
    safety_copies: Option<&Path>,
) -> anyhow::Result<(DesiredState, Backup)> {
    let tree = SourceTree::read_dir(dir)?;
    let desired = load::load(&tree, env).map_err(|d| anyhow!("{d}"))?;
    let id = ResourceId::new(Kind::Backup, name);
    let safety = safety_copies.and_then(|s| backup::safety::lookup(&desired, s, name));
    let Some(Resource::Backup(b)) = desired.get(&id).cloned().or(safety.map(Resource::Backup))
    else {
        let names: Vec<String> = desired
            .resources
            .keys()
            .filter(|k| k.kind == Kind::Backup)
            .map(|k| k.name.clone())
            .collect();
        bail!(
            "unknown backup `{name}`\n  = hint: backups in {}: {}",
            tree.root,
            names.join(", ")
        );
    };
    Ok((desired, b))
}

fn age(secs: u64) -> String {
    let d = backup::now().saturating_sub(secs);
    match d {
        0..=119 => format!("{d}s"),
        120..=7199 => format!("{}m", d / 60),
        7200..=172_799 => format!("{}h", d / 3600),
        _ => format!("{}d", d / 86_400),
    }
}

pub fn run(cmd: BackupCommand, state: Option<&Path>) -> anyhow::Result<Outcome> {
    let rt = runtime()?;
    match cmd {
        BackupCommand::Run(a) => {
            let (desired, b) = load_backup(&a.dir, a.env.as_deref(), &a.name, None)?;
            let session = rt.block_on(Engine::open_connections_only(&desired, state_dir(state)))?;
            let tools = tools(&desired, &session, &rt);
            match run_now(&tools, &b, session.state_dir()) {
                Ok(lines) => {
                    lines.iter().for_each(|l| println!("{l}"));
                    Ok(Outcome::Success)
                }
                Err(e) => {
                    eprintln!("error: backup/{} failed: {e}\nNothing was kept that looks like a good backup.", b.name);
                    Ok(Outcome::Failure)
                }
            }
        }
        BackupCommand::List(a) => {
            let (desired, b) =
                load_backup(&a.dir, a.env.as_deref(), &a.name, Some(&state_dir(state)))?;
            let session = rt.block_on(Engine::open_connections_only(&desired, state_dir(state)))?;
            let tools = tools(&desired, &session, &rt);
            println!(
                "{:<34} {:<44} {:>6} {:>10}  retention",
                "ID", "DESTINATION", "AGE", "SIZE"
            );
            for (store, keep) in tools.stores(&b).map_err(anyhow::Error::msg)? {
                let listing = store
                    .manifests(b.name.as_str(), &rt.handle().clone())
                    .map_err(anyhow::Error::msg)?;
                let ms = listing.copies;
                let expired: Vec<String> = backup::expired(&ms, keep.as_millis() / 1000)
                    .into_iter()
                    .map(|m| m.id)
                    .collect();
                for m in &ms {
                    let note = if b.name.as_str().starts_with(backup::safety::PREFIX) {
                        "safety copy: kept until removed by hand".to_string()
                    } else if expired.contains(&m.id) {
                        format!("older than {keep}: deleted after the next backup")
                    } else {
                        format!("kept ({keep})")
                    };
                    println!(
                        "{:<34} {:<44} {:>6} {:>10}  {note}",
                        m.id,
                        store.describe(),
                        age(m.started_at),
                        human(m.stored_bytes)
                    );
                }
                for i in &listing.invalid {
                    println!(
                        "{:<34} {:<44} {:>6} {:>10}  invalid, skipped (never restored or deleted): {}: {}",
                        "(invalid)",
                        store.describe(),
                        "-",
                        "-",
                        i.file,
                        i.reason
                    );
                    eprintln!(
                        "warning: skipped invalid manifest {}{}: {}",
                        store.describe(),
                        i.file,
                        i.reason
                    );
                }
                if ms.is_empty() && listing.invalid.is_empty() {
                    println!(
                        "{:<34} {:<44} {:>6} {:>10}",
                        "(none)",
                        store.describe(),
                        "-",
                        "-"
                    );
                }
            }
            Ok(Outcome::Success)
        }
        BackupCommand::Verify(a) => {
            let (id, dir) = match (&a.id_or_dir, &a.dir) {
                (Some(x), d) if x == "latest" || backup::parse_id(x).is_some() => (
                    x.clone(),
                    d.clone().unwrap_or_else(|| "desired-state".into()),
                ),
                (Some(x), _) => ("latest".into(), PathBuf::from(x)),
                (None, _) => ("latest".into(), "desired-state".into()),
            };
            let (desired, b) =
                load_backup(&dir, a.env.as_deref(), &a.name, Some(&state_dir(state)))?;
            let session = rt.block_on(Engine::open_connections_only(&desired, state_dir(state)))?;
            let tools = tools(&desired, &session, &rt);
            let mode = match a.mode.as_deref() {
                Some("restore") => VerifyMode::Restore,
                Some(_) => VerifyMode::Checksum,
                None => b.verify,
            };
            match verify(&tools, &b, &id, mode) {
                Ok(line) => {
                    println!("{line}");
                    Ok(Outcome::Success)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    Ok(Outcome::Failure)
                }
            }
        }
    }
}

/// `--force`: a safety copy of what the target holds before it is replaced; false (and said
/// why) when none could be taken, so nothing is restored.
fn save_first(a: &RestoreArgs, tools: &backup::Tools, state_dir: &Path) -> bool {
    let what = match (&a.to, &a.to_dir) {
        (Some(db), _) => crate::providers::Dropping::Database(db),
        (None, Some(dir)) => crate::providers::Dropping::Dir(dir),
        (None, None) => return true,
    };
    match backup::safety::before_restore(tools, state_dir, &what) {
        Ok(Some(taken)) => {
            println!("Before replacing it, {taken}");
            true
        }
        Ok(None) => true,
        Err(e) => {
            eprintln!(
                "error: no safety copy of {} could be taken, so nothing was restored: {e}",
                what.describe()
            );
            false
        }
    }
}

pub fn restore(a: RestoreArgs, state: Option<&Path>) -> anyhow::Result<Outcome> {
    let (name, id) = backup::parse_id(&a.backup_id)
        .ok_or_else(|| anyhow!("`{}` is not a backup id\n  = hint: write NAME@latest, or an id from `converge backup list NAME`", a.backup_id))?;
    let (desired, b) = load_backup(&a.dir, a.env.as_deref(), &name, Some(&state_dir(state)))?;
    let rt = runtime()?;
    let session = rt.block_on(Engine::open_connections_only(&desired, state_dir(state)))?;
    let tools = tools(&desired, &session, &rt);
    let (store, m) = match backup::find(&tools, &b, &id) {
        Ok(found) => found,
        Err(e) => {
            eprintln!("error: cannot restore {}: {e}", a.backup_id);
            return Ok(Outcome::Failure);
        }
    };
    if a.force && !save_first(&a, &tools, &state_dir(state)) {
        return Ok(Outcome::Failure);
    }
    let started = std::time::Instant::now();
    let result = match (&a.to, &a.to_dir) {
        (Some(db), _) => backup::restore_database(&tools, &store, &m, db, a.force)
            .and_then(|()| backup::counts::check_restored(&tools, &m, db))
            .map(|counts| match counts {
                Some(c) => format!("database {db} ({c})"),
                None => format!("database {db}"),
            }),
        (None, Some(dir)) => backup::restore_files(&tools, &store, &m, dir, a.force)
            .map(|_| dir.display().to_string()),
        (None, None) => bail!("say where to restore: --to DATABASE or --to-dir DIR"),
    };
    match result {
        Ok(target) => {
            println!(
                "Restored {} from {} into {target} in {:.1}s.",
                m.id,
                store.describe(),
                started.elapsed().as_secs_f64()
            );
            Ok(Outcome::Success)
        }
        Err(e) => {
            eprintln!("error: restore of {} failed: {e}", m.id);
            Ok(Outcome::Failure)
        }
    }
}

fn tools<'a>(
    desired: &'a DesiredState,
    engine: &'a Engine,
    rt: &tokio::runtime::Runtime,
) -> Tools<'a> {
    Tools::of(desired, engine, rt.handle().clone())
}
