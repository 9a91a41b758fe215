//! `converge apply [DIR | PLANFILE]`: plan (or load a saved plan and refuse it when stale), ask
//! for approval, run the steps with the journal, report the outcome.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::Args;

use super::runtime;
use super::Outcome;
use crate::engine::journal::{Journal, StateLock};
use crate::engine::{apply, check_host, state_dir, Engine, PlanOptions, SavedPlan};
use crate::load::{self, SourceTree};
use crate::model::DesiredState;
use crate::plan::text::Content;
use crate::plan::{self, Plan};

#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// The desired-state directory, or a plan saved with `plan --out`.
    #[arg(default_value = "desired-state")]
    pub target: PathBuf,
    #[arg(long)]
    pub env: Option<String>,
    #[arg(long)]
    pub host: Option<String>,
    /// Apply without asking.
    #[arg(long)]
    pub auto_approve: bool,
    /// Deploy again a spec that failed and was rolled back.
    #[arg(long)]
    pub retry_failed: bool,
    /// Print the full text of rendered files being created (by default one line each).
    /// A saved plan is not printed again: `plan --out` showed it.
    #[arg(long)]
    pub full: bool,
}

pub fn run(args: ApplyArgs, state: Option<&Path>) -> anyhow::Result<Outcome> {
    let saved = if args.target.is_file() {
        Some(SavedPlan::read(&args.target)?)
    } else {
        None
    };
    let (dir, env, host) = match &saved {
        Some(s) => (s.dir.clone(), s.env.clone(), s.host.clone()),
        None => (args.target.clone(), args.env.clone(), args.host.clone()),
    };
    let tree = SourceTree::read_dir(&dir)?;
    if let Some(s) = &saved {
        s.check_desired(&tree)?;
    }
    let desired = match load::load(&tree, env.as_deref()) {
        Ok(d) => d,
        Err(diags) => {
            eprintln!("{diags}");
            return Ok(Outcome::Failure);
        }
    };
    check_host(&desired, host.as_deref())?;
    let state_dir = state_dir(state);
    let opts = ApplyOptions {
        host: host.as_deref(),
        auto_approve: args.auto_approve,
        retry_failed: args.retry_failed,
        content: if args.full {
            Content::Full
        } else {
            Content::Summary
        },
        saved_from: saved.as_ref().map(|_| args.target.as_path()),
    };
    runtime()?.block_on(apply_async(&desired, &dir, saved, &opts, state_dir))
}

struct ApplyOptions<'a> {
    host: Option<&'a str>,
    auto_approve: bool,
    retry_failed: bool,
    content: Content,
    /// The file a saved plan was read from.
    saved_from: Option<&'a Path>,
}

async fn apply_async(
    desired: &DesiredState,
    dir: &Path,
    saved: Option<SavedPlan>,
    opts: &ApplyOptions<'_>,
    state_dir: PathBuf,
) -> anyhow::Result<Outcome> {
    let engine = Engine::open(desired, state_dir.clone())
        .await?
        .with_safety_net(Box::new(crate::backup::safety::Net));
    let _lock = StateLock::acquire(&state_dir, desired.project.name.as_str())?;
    let mut journal = Journal::open(&state_dir, desired.project.name.as_str())?;
    for line in engine.recover(&mut journal).await? {
        println!("{line}");
    }
    let observed = engine.observe(desired).await?;
    // The autoscaler's and the budgets' replica counts stand in for the declared ones.
    let effective = crate::scale::with_overrides(desired, &observed.overrides);
    let desired = &effective;
    let (plan, live) = match saved {
        Some(saved) => {
            saved.check_live(&observed)?;
            (saved.plan, observed)
        }
        None => {
            let live = engine
                .run_due(desired, observed, &mut journal, dir, None, &mut |l| {
                    println!("{l}")
                })
                .await?;
            let plan_opts = PlanOptions {
                host: opts.host,
                revision: None,
                retry_failed: opts.retry_failed,
            };
            (engine.plan(desired, &live, &plan_opts), live)
        }
    };
    print!("{}", shown(&plan, opts));
    if !plan.errors.is_empty() {
        return Ok(Outcome::Failure);
    }
    if plan.is_empty() {
        return Ok(Outcome::Success);
    }
    if !opts.auto_approve && !approved()? {
        println!("\nApply cancelled.");
        return Ok(Outcome::Failure);
    }
    println!("\nApplying {} step(s):", plan.steps.len());
    let run = engine.run(desired, &live, dir, None);
    let outcome = engine
        .apply(&plan, &run, &mut journal, &mut |l| println!("{l}"))
        .await?;
    Ok(report(&plan, &outcome))
}

/// The plan as apply prints it before asking. A saved plan was printed by `plan --out`, so
/// (as Terraform does with a plan file) it is named in one line, not printed again.
fn shown(plan: &Plan, opts: &ApplyOptions<'_>) -> String {
    match opts.saved_from {
        Some(file) if plan.errors.is_empty() && !plan.is_empty() => format!(
            "Applying the plan saved in {} (shown by `converge plan --out`).\n{}\n",
            file.display(),
            plan::text::summary_line(plan)
        ),
        _ => plan::text::render_with(plan, opts.content),
    }
}

/// Prints the outcome the way Terraform does.
fn report(plan: &Plan, outcome: &apply::Outcome) -> Outcome {
    let s = plan.summary();
    match outcome {
        apply::Outcome::Applied { saved } => {
            println!(
                "\nApply complete! Resources: {} added, {} changed, {} destroyed.",
                s.add, s.change, s.destroy
            );
            if !saved.is_empty() {
                println!("Saved before dropping data:\n  - {}", saved.join("\n  - "));
            }
            Outcome::Success
        }
        apply::Outcome::RolledBack { step, error, kept } => {
            if kept.is_empty() {
                eprintln!("\nApply failed at `{step}`: {error}\nRolled back: every completed step was undone; live state is as before.");
            } else {
                eprintln!(
                    "\nApply failed at `{step}`: {error}\nRolled back the steps that can be undone. Kept, as data-holding or harmless to keep:\n  - {}",
                    kept.join("\n  - ")
                );
            }
            Outcome::Failure
        }
        apply::Outcome::Interrupted { after } => {
            eprintln!(
                "\nApply interrupted after step {after}; the next run recovers from the journal."
            );
            Outcome::Failure
        }
        apply::Outcome::RollbackFailed { step, error, left } => {
            eprintln!("\nApply failed at `{step}`: {error}\nRollback failed; fix these by hand, then run `converge plan`:\n  - {}", left.join("\n  - "));
            Outcome::Failure
        }
    }
}

/// Terraform's prompt: only `yes` approves; without a terminal nothing is applied.
fn approved() -> anyhow::Result<bool> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!("refusing to apply without approval: standard input is not a terminal\n  = hint: review the plan, then run again with --auto-approve");
    }
    print!("\nDo you want to perform these actions?\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    Ok(answer.trim() == "yes")
}
