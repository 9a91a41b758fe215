//! `converge render`: render routers and config files as apply would write them, without applying.

use std::path::Path;

use anyhow::Context;

use super::{load_or_report, Outcome};
use crate::diff::{diff, DiffOptions};
use crate::model::attributes::ReferenceDigest;
use crate::model::live::LiveState;

pub fn run(dir: &Path, env: Option<&str>, out: Option<&Path>) -> anyhow::Result<Outcome> {
    let Some(desired) = load_or_report(dir, env)? else {
        return Ok(Outcome::Failure);
    };
    let d = diff(
        &desired,
        &LiveState::default(),
        &DiffOptions {
            host: None,
            secrets: &ReferenceDigest,
            kinds: None,
            retry_failed: false,
        },
    );
    for note in &d.notes {
        eprintln!("warning: {note}");
    }
    for change in &d.changes {
        let Some(file) = &change.file else { continue };
        match out {
            Some(root) => {
                let target = root.join(file.path.trim_start_matches('/'));
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)
                        .with_context(|| format!("cannot create {}", parent.display()))?;
                }
                std::fs::write(&target, &file.after)
                    .with_context(|| format!("cannot write {}", target.display()))?;
                println!("wrote {} ({})", target.display(), change.id);
            }
            None => print!("# {} -> {}\n{}\n", change.id, file.path, file.after),
        }
    }
    Ok(Outcome::Success)
}
