//! `converge recover [DIR] --env E [--host H] [--at TIME] [--from URL] [--plan] [--force] [--drill]`:
//! back from the backups to serving (see `crate::disaster`); `--plan` only shows what it would
//! restore from where; `--drill` restores into scratch copies, checks and tears them down while
//! the real stack runs. The project's Notifiers hear `recovery-started`, `recovery-completed` and
//! `recovery-failed` (a drill: its outcome only).

use std::path::{Path, PathBuf};

use clap::Args;

use super::{load_or_report, runtime, Outcome};
use crate::agent::notify::{self, Event};
use crate::disaster::{parse_time, Criteria, Recovery, RecoveryOptions, Report};
use crate::engine::{check_host, state_dir, Engine};
use crate::model::notifier::EventKind;
use crate::model::DesiredState;
use crate::secrets::Secrets;

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
    #[arg(long, conflicts_with = "drill")]
    pub force: bool,
    /// Recover into scratch copies (databases `<name>_drill_<stamp>`, files in a temporary
    /// directory, the services as project `<project>-drill` on other loopback ports, no router)
    /// while the real stack runs, verify and tear them down; the RTO and RPO are journaled as a
    /// drill.
    #[arg(long)]
    pub drill: bool,
}

pub fn run(args: RecoverArgs, state: Option<&Path>) -> anyhow::Result<Outcome> {
    let Some(desired) = load_or_report(&args.dir, args.env.as_deref())? else {
        return Ok(Outcome::Failure);
    };
    check_host(&desired, args.host.as_deref())?;
    let at = args.at.as_deref().map(parse_time).transpose()?;
    let rt = runtime()?;
    let state_dir = state_dir(state);
    let engine = if args.plan || args.drill {
        rt.block_on(Engine::open_connections_only(&desired, state_dir))?
    } else {
        rt.block_on(Engine::open(&desired, state_dir))?
            .with_safety_net(Box::new(crate::backup::safety::Net))
    };
    let recovery = Recovery {
        desired: &desired,
        dir: &args.dir,
        engine: &engine,
        rt: rt.handle().clone(),
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
    // A drill tells the notifiers its schedule names (all subscribed ones when it names none).
    let only: Vec<String> = match &desired.project.recovery {
        Some(r) if args.drill => r
            .drill
            .as_ref()
            .map(|d| d.notify.clone())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let tell = |kind: EventKind, text: String| {
        let secrets = Secrets::load_or_create(engine.state_dir());
        notify_now(
            &rt,
            &desired,
            secrets,
            &only,
            Event {
                text,
                event: kind,
                project: desired.project.name.to_string(),
                revision: None,
            },
        );
    };
    let project = desired.project.name.as_str();
    if !args.drill {
        tell(
            EventKind::RecoveryStarted,
            format!("{project}: recovery started"),
        );
    }
    let mut progress = |l: &str| println!("{l}");
    let outcome = if args.drill {
        recovery.drill(&mut progress)
    } else {
        recovery.run(&mut progress)
    };
    let report = match outcome {
        Ok(r) => r,
        Err(e) => {
            let what = if args.drill {
                "recovery drill"
            } else {
                "recovery"
            };
            tell(
                EventKind::RecoveryFailed,
                format!("{project}: {what} failed: {e}"),
            );
            return Err(e.into());
        }
    };
    finish(&desired, &report, tell);
    Ok(Outcome::Success)
}

/// Prints the report and notifies its headline (the objectives met or missed).
fn finish(desired: &DesiredState, report: &Report, tell: impl Fn(EventKind, String)) {
    let objectives = desired.project.recovery.as_ref();
    let project = desired.project.name.as_str();
    print!("{}", report.render(project, objectives));
    tell(
        EventKind::RecoveryCompleted,
        report.headline(project, objectives),
    );
}

/// Sends `event` to the notifiers subscribed to it (those in `only`, when it names any) and waits
/// for them; a failure is a warning.
fn notify_now(
    rt: &tokio::runtime::Runtime,
    desired: &DesiredState,
    secrets: Result<Secrets, crate::secrets::SecretError>,
    only: &[String],
    event: Event,
) {
    let secrets = match secrets {
        Ok(s) => s,
        Err(e) => {
            eprintln!("warning: notifiers not told ({e})");
            return;
        }
    };
    for failure in rt.block_on(notify::deliver_all(desired, &secrets, &event, only)) {
        eprintln!("warning: notification failed: {failure}");
    }
}
