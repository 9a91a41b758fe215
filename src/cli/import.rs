//! `converge import compose FILE… [--project NAME] [--out DIR] [--profile P]`: writes a
//! desired-state directory from Docker Compose files and lists what it could not carry over.

use std::path::PathBuf;

use clap::Subcommand;

use super::Outcome;
use crate::import::{self, Options};

#[derive(Subcommand, Debug)]
pub enum ImportCommand {
    /// Import Docker Compose files (later files override earlier ones, as `docker compose -f`).
    Compose {
        /// The compose files; the `.env` next to the first one is read.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// The project name (default: compose's `name:`, else the first file's directory name).
        #[arg(long, value_name = "NAME")]
        project: Option<String>,
        /// Where to write converge.yaml and services/ (default: ./desired-state).
        #[arg(long, value_name = "DIR", default_value = "desired-state")]
        out: PathBuf,
        /// Include the services of this compose profile (repeatable; COMPOSE_PROFILES too).
        #[arg(long = "profile", value_name = "P")]
        profiles: Vec<String>,
        /// Exit 1 when anything could not be carried over (the files are written anyway).
        #[arg(long)]
        strict: bool,
    },
}

pub fn run(cmd: ImportCommand) -> anyhow::Result<Outcome> {
    let ImportCommand::Compose {
        files,
        project,
        out,
        profiles,
        strict,
    } = cmd;
    let opts = Options {
        files,
        project,
        out: out.clone(),
        profiles: profiles.into_iter().collect(),
    };
    let report = import::run(&opts)?;
    for (path, written) in &report.files {
        let why = if *written == import::write::Written::Stale {
            " (its service is no longer in the compose files: delete it)"
        } else {
            ""
        };
        println!("{:<9} {}{why}", written.as_str(), out.join(path).display());
    }
    for (name, profiles) in &report.skipped {
        println!(
            "skipped   service {name}: in profile(s) {} (--profile {} includes it)",
            profiles.join(", "),
            profiles.first().map(String::as_str).unwrap_or("")
        );
    }
    for note in &report.notes {
        eprintln!("warning: {note}");
    }
    if !report.secret_vars.is_empty() {
        let names: Vec<&str> = report.secret_vars.iter().map(String::as_str).collect();
        println!(
            "Secrets are referenced, not copied: set {} where converge applies.",
            names.join(", ")
        );
    }
    if report.notes.is_empty() {
        println!("Everything was imported.");
    } else {
        println!(
            "{} compose setting(s) not carried over as they were (listed above).",
            report.notes.len()
        );
    }
    Ok(if strict && !report.notes.is_empty() {
        Outcome::Failure
    } else {
        Outcome::Success
    })
}
