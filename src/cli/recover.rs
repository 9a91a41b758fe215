//! `converge recover [DIR] --env E [--host H] [--at TIME] [--from URL] [--plan] [--force]`:
//! back from the backups to serving (see `crate::disaster`); `--plan` only shows what it would
//! restore from where.

use std::path::{Path, PathBuf};

use clap::Args;

use super::{load_or_report, runtime, Outcome};
use crate::disaster::{parse_time, Criteria, Recovery, RecoveryOptions};
use crate::engine::{check_host, state_dir, Engine};

#[derive(Args, Debug)]
pub struct RecoverArgs {
    #[arg(default_value = "desired-state")]
    pub dir: PathBuf,
    #[arg(long)]
    pub env: Option<String>,
    /// Only the services placed on this host (data is restored whatever the host).
    #[arg(long)]
    pub host: Option<String>,
    /// Use the newest copies at or before this time: RFC 3339 or a copy stamp (20261202T160000Z).
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Use only copies at this destination (`file:///dir` or `s3://bucket/prefix/`).
    #[arg(long, value_name = "URL")]
    pub from: Option<String>,
    /// Print the recovery plan (what is restored from where, its age, size and estimated time)
    /// and change nothing.
    #[arg(long)]
    pub plan: bool,
    /// Restore over a database that already holds something, or into a directory that is not empty.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: RecoverArgs, state: Option<&Path>) -> anyhow::Result<Outcome> {
    let Some(desired) = load_or_report(&args.dir, args.env.as_deref())? else {
        return Ok(Outcome::Failure);
    };
    check_host(&desired, args.host.as_deref())?;
    let at = args.at.as_deref().map(parse_time).transpose()?;
    let rt = runtime()?;
    let state_dir = state_dir(state);
    let engine = if args.plan {
        rt.block_on(Engine::open_connections_only(&desired, state_dir))?
    } else {
        rt.block_on(Engine::open(&desired, state_dir))?
            .with_safety_net(Box::new(crate::backup::safety::Net))
    };
    let recovery = Recovery {
        desired: &desired,
        dir: &args.dir,
        engine: &engine,
        rt: &rt,
        opts: RecoveryOptions {
            host: args.host.as_deref(),
            criteria: Criteria {
                at,
                from: args.from.as_deref(),
            },
            force: args.force,
        },
    };
    if args.plan {
        let plan = recovery.plan()?;
        print!("{}", plan.render(&desired, crate::clock::now()));
        println!("Nothing was changed (--plan).");
        return Ok(Outcome::Success);
    }
    let report = recovery.run(&mut |l| println!("{l}"))?;
    let objectives = desired.project.recovery.as_ref();
    print!(
        "{}",
        report.render(desired.project.name.as_str(), objectives)
    );
    Ok(Outcome::Success)
}
