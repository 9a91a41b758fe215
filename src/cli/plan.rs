//! `converge plan`: load, observe (or assume nothing exists with --offline), diff, plan, print.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use super::live::{check_host, offline_plan, runtime, state_dir, SavedPlan, Session};
use super::{Outcome, PlanFormat};
use crate::load::{self, SourceTree};
use crate::plan::{self, Plan};

#[derive(Args, Debug)]
pub struct PlanArgs {
    #[arg(default_value = "desired-state")]
    pub dir: PathBuf,
    #[arg(long)]
    pub env: Option<String>,
    /// Plan only what `placement` puts on this host.
    #[arg(long)]
    pub host: Option<String>,
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,
    /// Save the plan (with the fingerprint of the live state it saw) for `apply FILE`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Exit 2 when there are changes.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Plan against an empty live state: no provider is contacted.
    #[arg(long)]
    pub offline: bool,
    /// Plan again a deploy whose spec failed and was rolled back.
    #[arg(long)]
    pub retry_failed: bool,
    /// Fail (exit 1) when a pending migration has lint warnings.
    #[arg(long)]
    pub strict: bool,
}

pub fn run(args: PlanArgs, state: Option<&Path>) -> anyhow::Result<Outcome> {
    let tree = SourceTree::read_dir(&args.dir)?;
    let desired = match load::load(&tree, args.env.as_deref()) {
        Ok(d) => d,
        Err(diags) => {
            eprintln!("{diags}");
            return Ok(Outcome::Failure);
        }
    };
    check_host(&desired, args.host.as_deref())?;
    let plan = if args.offline {
        offline_plan(&desired, args.host.as_deref())
    } else {
        let rt = runtime()?;
        rt.block_on(async {
            let session = Session::open(&desired, state_dir(state)).await?;
            let live = session.observe(&desired).await?;
            anyhow::Ok(session.plan(
                &desired,
                &live,
                args.host.as_deref(),
                None,
                args.retry_failed,
            ))
        })?
    };
    print!("{}", render(&plan, args.format));
    if let Some(out) = &args.out {
        let saved = SavedPlan {
            format_version: plan::json::FORMAT_VERSION.into(),
            dir: std::fs::canonicalize(&args.dir).unwrap_or(args.dir.clone()),
            env: args.env.clone(),
            host: args.host.clone(),
            desired_digest: tree.digest(),
            plan: plan.clone(),
        };
        let json = serde_json::to_string_pretty(&saved)?;
        std::fs::write(out, json)
            .with_context(|| format!("cannot write the plan to {}", out.display()))?;
        eprintln!(
            "Saved the plan to {}; apply it with `converge apply {}`.",
            out.display(),
            out.display()
        );
    }
    if !plan.errors.is_empty() {
        return Ok(Outcome::Failure);
    }
    let lints = plan.lints().count();
    if args.strict && lints > 0 {
        eprintln!("error: {lints} migration lint warning(s) and --strict: fix them, or drop --strict to accept them");
        return Ok(Outcome::Failure);
    }
    Ok(if args.detailed_exitcode && !plan.is_empty() {
        Outcome::Changes
    } else {
        Outcome::Success
    })
}

pub fn render(plan: &Plan, format: PlanFormat) -> String {
    match format {
        PlanFormat::Text => plan::text::render(plan),
        PlanFormat::Json => plan::json::render(plan),
        PlanFormat::Markdown => plan::markdown::render(plan),
    }
}
