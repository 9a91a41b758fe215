//! `converge render`: render routers and config files as apply would write them, without applying.

use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context};

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
                let target = target_in(root, &file.path)?;
                crate::engine::write_file(&target, &file.after)
                    .with_context(|| format!("cannot write {}", target.display()))?;
                println!("wrote {} ({})", target.display(), change.id);
            }
            None => print!("# {} -> {}\n{}\n", change.id, file.path, file.after),
        }
    }
    Ok(Outcome::Success)
}

/// Where `path` goes below `root`: never outside it, by `..` or through a link.
fn target_in(root: &Path, path: &str) -> anyhow::Result<PathBuf> {
    let rel = Path::new(path.trim_start_matches('/'));
    if rel.as_os_str().is_empty() || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        bail!(
            "{path} would be written outside {} (`.`/`..` in the path)\n  = hint: give the file a plain absolute path",
            root.display()
        );
    }
    let target = root.join(rel);
    let parent = target.parent().expect("a joined path has a parent");
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let canonical_root = root
        .canonicalize()
        .with_context(|| format!("cannot read {}", root.display()))?;
    let canonical_parent = parent
        .canonicalize()
        .with_context(|| format!("cannot read {}", parent.display()))?;
    if !canonical_parent.starts_with(&canonical_root) {
        bail!(
            "{} leads outside {} through a symbolic link; nothing was written there\n  = hint: render into an empty directory",
            parent.display(),
            root.display()
        );
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_out_never_leaves_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        assert_eq!(
            target_in(&out, "/etc/nginx/site.conf").unwrap(),
            out.join("etc/nginx/site.conf")
        );
        let e = target_in(&out, "/../../escape.conf")
            .unwrap_err()
            .to_string();
        assert!(e.contains("would be written outside"), "{e}");
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), out.join("etc2")).unwrap();
        let e = target_in(&out, "/etc2/x.conf").unwrap_err().to_string();
        assert!(e.contains("through a symbolic link"), "{e}");
    }
}
