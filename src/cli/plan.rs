//! `converge plan`: load, observe (or assume nothing exists with --offline), diff, plan, print.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::{load_or_report, Outcome, PlanFormat};
use crate::diff::{diff, DiffOptions};
use crate::live::LiveState;
use crate::model::attributes::ReferenceDigest;
use crate::plan::{self, PlanContext};

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
}

pub fn run(args: PlanArgs) -> anyhow::Result<Outcome> {
    let Some(desired) = load_or_report(&args.dir, args.env.as_deref())? else {
        return Ok(Outcome::Failure);
    };
    if let Some(h) = &args.host {
        if !desired.project.hosts.iter().any(|x| x.name.as_str() == h) {
            let names: Vec<&str> = desired
                .project
                .hosts
                .iter()
                .map(|x| x.name.as_str())
                .collect();
            anyhow::bail!(
                "unknown host `{h}` (--host)\n  = hint: the Project lists: {}",
                names.join(", ")
            );
        }
    }
    if !args.offline {
        anyhow::bail!(
            "observing live state needs a provider, and this build of converge has none yet\n  = hint: run `converge plan --offline` to plan against an empty live state"
        );
    }
    let live = LiveState::default();
    let d = diff(
        &desired,
        &live,
        &DiffOptions {
            host: args.host.as_deref(),
            secrets: &ReferenceDigest,
        },
    );
    let plan = plan::plan(
        &desired,
        d,
        PlanContext {
            revision: None,
            host: args.host.as_deref(),
            fingerprint: live.fingerprint(),
            pending: live.pending.clone(),
        },
    );
    let text = match args.format {
        PlanFormat::Text => plan::text::render(&plan),
        PlanFormat::Json => plan::json::render(&plan),
        PlanFormat::Markdown => plan::markdown::render(&plan),
    };
    print!("{text}");
    if let Some(out) = &args.out {
        let json = serde_json::to_string_pretty(&plan)?;
        std::fs::write(out, json)
            .with_context(|| format!("cannot write the plan to {}", out.display()))?;
        eprintln!(
            "Saved the plan to {}; apply it with `converge apply {}`.",
            out.display(),
            out.display()
        );
    }
    Ok(if args.detailed_exitcode && !plan.is_empty() {
        Outcome::Changes
    } else {
        Outcome::Success
    })
}
