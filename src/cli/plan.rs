//! `converge plan`: load, observe (or assume nothing exists with --offline), diff, plan, print.
//! With `--base REV` it also shows what a change does: the desired state at `--head` (or the
//! working tree) planned against the state that `REV` would have left.

use std::path::{Path, PathBuf};

use clap::Args;

use super::runtime;
use super::{Outcome, PlanFormat};
use crate::diff::synthetic::after_apply;
use crate::diff::{diff, DiffOptions};
use crate::engine::{check_host, offline_plan, state_dir, Engine, PlanOptions, SavedPlan};
use crate::load::allowed_signers::AllowedSigners;
use crate::load::git::{at_revision, signature_at};
use crate::load::signature;
use crate::load::{self, SourceTree};
use crate::model::attributes::ReferenceDigest;
use crate::model::live::LiveState;
use crate::model::DesiredState;
use crate::plan::text::Content;
use crate::plan::{self, Plan, PlanContext};

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
    /// Show what the change from this git revision does (read from git objects, no checkout).
    #[arg(long, value_name = "GIT_REV")]
    pub base: Option<String>,
    /// With --base: the revision to compare (default: the working tree).
    #[arg(long, value_name = "GIT_REV", requires = "base")]
    pub head: Option<String>,
    /// With --head: refuse (exit 1) unless the head commit is signed (`git commit -S` with
    /// gpg.format=ssh) by a key listed in this allowed-signers file.
    #[arg(long, value_name = "ALLOWED_SIGNERS", requires = "head")]
    pub verify_signatures: Option<PathBuf>,
    /// Print the full text of rendered files being created (by default one line each:
    /// how many lines, rendered from which template). Diffs of changed files are always full.
    #[arg(long)]
    pub full: bool,
}

impl PlanArgs {
    fn content(&self) -> Content {
        if self.full {
            Content::Full
        } else {
            Content::Summary
        }
    }
}

pub fn run(args: PlanArgs, state: Option<&Path>) -> anyhow::Result<Outcome> {
    if let (Some(file), Some(head)) = (&args.verify_signatures, &args.head) {
        verify_head(file, &args.dir, head)?;
    }
    // The base revision loads on a second thread while the head loads: they are independent.
    let (head, base) = std::thread::scope(|s| {
        let base = args
            .base
            .as_deref()
            .map(|b| s.spawn(|| base_state(&args, b)));
        let head = load_head(&args);
        (head, base.map(|j| j.join()))
    });
    let (head_rev, tree, desired) = head?;
    let desired = match desired {
        Ok(d) => d,
        Err(diags) => {
            eprintln!("{diags}");
            return Ok(Outcome::Failure);
        }
    };
    check_host(&desired, args.host.as_deref())?;
    let change = match base {
        Some(Ok(b)) => Some(change_plan(&args, b?, head_rev.as_deref(), &desired)),
        Some(Err(_)) => anyhow::bail!("loading the base revision panicked"),
        None => None,
    };
    let live = if args.offline && change.is_some() {
        None
    } else if args.offline {
        Some(offline_plan(&desired, args.host.as_deref()))
    } else {
        let rt = runtime()?;
        Some(rt.block_on(async {
            let engine = Engine::open(&desired, state_dir(state)).await?;
            let live = engine.observe(&desired).await?;
            let effective = crate::scale::with_overrides(&desired, &live.overrides);
            let opts = PlanOptions {
                host: args.host.as_deref(),
                revision: head_rev.as_deref(),
                retry_failed: args.retry_failed,
            };
            anyhow::Ok(engine.plan(&effective, &live, &opts))
        })?)
    };
    let show = Show {
        format: args.format,
        content: args.content(),
    };
    match (&change, &live) {
        (Some((title, c)), Some(l)) => {
            print!(
                "{}",
                section(&format!("What this change does ({title})"), c, show)
            );
            print!(
                "{}",
                section("What apply would do now, against live state", l, show)
            );
        }
        (Some((_, c)), None) => print!("{}", render(c, show)),
        (None, Some(l)) => print!("{}", render(l, show)),
        (None, None) => unreachable!("one of the two plans is always made"),
    }
    let main = change
        .as_ref()
        .map(|(_, c)| c)
        .or(live.as_ref())
        .expect("a plan");
    if let (Some(out), Some(l)) = (&args.out, &live) {
        let saved = SavedPlan {
            format_version: plan::json::FORMAT_VERSION.into(),
            dir: std::fs::canonicalize(&args.dir).unwrap_or(args.dir.clone()),
            env: args.env.clone(),
            host: args.host.clone(),
            desired_digest: tree.digest(),
            plan: l.clone(),
        };
        saved.write(out)?;
        eprintln!(
            "Saved the plan to {}; apply it with `converge apply {}`.",
            out.display(),
            out.display()
        );
    }
    if !main.errors.is_empty() || live.as_ref().is_some_and(|l| !l.errors.is_empty()) {
        return Ok(Outcome::Failure);
    }
    let lints = main.lints().count();
    if args.strict && lints > 0 {
        eprintln!("error: {lints} migration lint warning(s) and --strict: fix them, or drop --strict to accept them");
        return Ok(Outcome::Failure);
    }
    Ok(if args.detailed_exitcode && !main.converged() {
        Outcome::Changes
    } else {
        Outcome::Success
    })
}

/// The head's revision (with `--head`), its files, and its desired state or the problems that stop it.
type Head = (
    Option<String>,
    SourceTree,
    Result<DesiredState, load::Diagnostics>,
);

fn load_head(args: &PlanArgs) -> anyhow::Result<Head> {
    let (head_rev, tree) = match &args.head {
        Some(rev) => {
            let (id, t) = at_revision(&args.dir, rev)?;
            (Some(id), t)
        }
        None => (None, SourceTree::read_dir(&args.dir)?),
    };
    let desired = load::load(&tree, args.env.as_deref());
    Ok((head_rev, tree, desired))
}

/// Refuses a head commit that is not signed by a key in the allowed-signers `file`.
fn verify_head(file: &Path, dir: &Path, head: &str) -> anyhow::Result<()> {
    let signers = AllowedSigners::read(file)?;
    let commit = signature_at(dir, head)?;
    let verified = signature::verify(&commit.as_signed(), &signers)?;
    eprintln!(
        "commit {} is signed by {} ({})",
        commit.short,
        verified.principals.join(", "),
        verified.fingerprint
    );
    Ok(())
}

/// What the base revision would have left: its id, the live state after applying it, and notes.
struct Base {
    id: String,
    before: LiveState,
    notes: Vec<String>,
}

fn diff_options(args: &PlanArgs) -> DiffOptions<'_> {
    DiffOptions {
        host: args.host.as_deref(),
        secrets: &ReferenceDigest,
        kinds: None,
        retry_failed: true,
    }
}

fn base_state(args: &PlanArgs, base: &str) -> anyhow::Result<Base> {
    let (id, base_tree) = at_revision(&args.dir, base)?;
    let mut notes = Vec::new();
    let before = match load::load(&base_tree, args.env.as_deref()) {
        Ok(b) => after_apply(&b, &LiveState::default(), &diff_options(args)),
        Err(_) => {
            notes.push(format!(
                "the desired state at {} does not load; the change is planned against nothing",
                &id[..12]
            ));
            LiveState::default()
        }
    };
    Ok(Base { id, before, notes })
}

/// The head's desired state planned against what the base revision would have left.
fn change_plan(
    args: &PlanArgs,
    base: Base,
    head_rev: Option<&str>,
    head: &DesiredState,
) -> (String, Plan) {
    let Base {
        id: base_id,
        before,
        notes,
    } = base;
    let mut d = diff(head, &before, &diff_options(args));
    d.notes.extend(notes);
    let title = format!(
        "{} → {}",
        &base_id[..12],
        head_rev.map(|h| &h[..12]).unwrap_or("working tree")
    );
    let p = plan::plan(
        head,
        d,
        PlanContext {
            revision: head_rev,
            host: args.host.as_deref(),
            fingerprint: before.fingerprint(),
            pending: Vec::new(),
        },
    );
    (title, p)
}

/// How a plan is printed: its format, and for text how much of new rendered files.
#[derive(Clone, Copy)]
struct Show {
    format: PlanFormat,
    content: Content,
}

fn section(title: &str, p: &Plan, show: Show) -> String {
    match show.format {
        PlanFormat::Markdown => format!("### {title}\n\n{}\n", render(p, show)),
        PlanFormat::Json => render(p, show),
        PlanFormat::Text => format!("=== {title}\n\n{}\n", render(p, show)),
    }
}

fn render(plan: &Plan, show: Show) -> String {
    match show.format {
        PlanFormat::Text => plan::text::render_with(plan, show.content),
        PlanFormat::Json => plan::json::render(plan),
        PlanFormat::Markdown => plan::markdown::render(plan),
    }
}
