//! `converge rollback SERVICE [DIR]`: back to the previous color when it still runs (instant),
//! otherwise redeploy the previous spec recorded in the journal through the same health gate.
//! The engine does the work (`Engine::rollback`); this prints it.

use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::Args;

use super::runtime;
use super::Outcome;
use crate::engine::journal::{Journal, StateLock};
use crate::engine::rollback::Rollback;
use crate::engine::{state_dir, Engine};

#[derive(Args, Debug)]
pub struct RollbackArgs {
    /// The service to roll back (`api` or `service/api`).
    pub service: String,
    #[arg(default_value = "desired-state")]
    pub dir: PathBuf,
    #[arg(long)]
    pub env: Option<String>,
    #[arg(long)]
    pub host: Option<String>,
}

pub fn run(args: RollbackArgs, state: Option<&Path>) -> anyhow::Result<Outcome> {
    let Some(desired) = super::load_or_report(&args.dir, args.env.as_deref())? else {
        return Ok(Outcome::Failure);
    };
    let name = args.service.trim_start_matches("service/").to_string();
    if desired.service(&name).is_none() {
        let names: Vec<&str> = desired.services().map(|s| s.name.as_str()).collect();
        bail!(
            "unknown service `{name}`\n  = hint: services in the desired state: {}",
            names.join(", ")
        );
    }
    let state_dir = state_dir(state);
    runtime()?.block_on(async {
        let engine = Engine::open(&desired, state_dir.clone())
            .await?
            .with_safety_net(Box::new(crate::backup::safety::Net));
        let project = desired.project.name.as_str();
        let _lock = StateLock::acquire(&state_dir, project)?;
        let mut journal = Journal::open(&state_dir, project)?;
        let host = args.host.as_deref();
        let done = engine
            .rollback(&desired, &name, &args.dir, host, &mut journal, &mut |l| {
                println!("{l}")
            })
            .await?;
        Ok(match done {
            Rollback::Done(message) => {
                println!("{message}");
                Outcome::Success
            }
            Rollback::Failed(outcome) => {
                eprintln!("\nRollback failed: {outcome}");
                Outcome::Failure
            }
        })
    })
}
