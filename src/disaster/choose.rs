//! Choosing the copy a target is restored from: the newest at or before `--at` whose manifest
//! authenticates and whose stored bytes and chunks verify, a local (`file://`) copy before an S3
//! one of the same age; `--from` keeps one destination. Every copy passed over is a note.

use crate::backup::manifest::{check, Checked};
use crate::backup::store::Store;
use crate::backup::{Manifest, Tools};
use crate::model::Backup;

use super::targets::Target;
use super::RecoverError;

/// Which copies may be used.
#[derive(Debug, Clone, Copy, Default)]
pub struct Criteria<'a> {
    /// Unix seconds: only copies started at or before it.
    pub at: Option<u64>,
    /// One destination URL (`file:///dir`, `s3://bucket/prefix/`).
    pub from: Option<&'a str>,
}

/// The copy chosen for a target, and why newer ones were passed over.
#[derive(Clone)]
pub struct Choice {
    pub backup: Backup,
    pub store: Store,
    pub copy: Checked,
    pub skipped: Vec<String>,
}

/// One copy that could serve the target.
struct Candidate<'b> {
    backup: &'b Backup,
    store: Store,
    manifest: Manifest,
}

/// `2026-12-02T16:00:00Z` (RFC 3339) or `20261202T160000Z` (a copy's stamp) → Unix seconds.
pub fn parse_time(text: &str) -> Result<u64, RecoverError> {
    let bad = || RecoverError::BadTime {
        text: text.to_string(),
    };
    let secs = match chrono::DateTime::parse_from_rfc3339(text) {
        Ok(t) => t.timestamp(),
        Err(_) => chrono::NaiveDateTime::parse_from_str(text, "%Y%m%dT%H%M%SZ")
            .map_err(|_| bad())?
            .and_utc()
            .timestamp(),
    };
    u64::try_from(secs).map_err(|_| bad())
}

/// Whether destination `url` is the one `from` names (a trailing `/` aside).
fn same_url(url: &str, from: &str) -> bool {
    url.trim_end_matches('/') == from.trim_end_matches('/')
}

/// Every copy of the target's Backups that `c` allows, newest first, local first at a tie.
fn candidates<'b>(
    t: &Tools,
    target: &'b Target,
    c: &Criteria,
    notes: &mut Vec<String>,
) -> Result<Vec<Candidate<'b>>, RecoverError> {
    let mut out = Vec::new();
    for b in &target.backups {
        let stores = t.stores(b).map_err(RecoverError::backup(&target.label))?;
        for ((store, _), d) in stores.into_iter().zip(&b.destinations) {
            if c.from.is_some_and(|f| !same_url(&d.url, f)) {
                continue;
            }
            let listing = match store.manifests(b.name.as_str(), &t.rt) {
                Ok(l) => l,
                Err(e) if e.is_unreachable() => {
                    return Err(RecoverError::Unlisted {
                        target: target.label.clone(),
                        destination: store.describe(),
                        detail: e.to_string(),
                    })
                }
                Err(e) => {
                    notes.push(format!("{} unreadable: {e}", store.describe()));
                    continue;
                }
            };
            for i in &listing.invalid {
                let at = store.describe();
                notes.push(format!(
                    "skipped invalid manifest {at}{}: {}",
                    i.file, i.reason
                ));
            }
            for m in listing.copies {
                if c.at.is_none_or(|at| m.started_at <= at) {
                    out.push(Candidate {
                        backup: b,
                        store: store.clone(),
                        manifest: m,
                    });
                }
            }
        }
    }
    out.sort_by_key(|x| {
        (
            std::cmp::Reverse(x.manifest.started_at),
            !x.store.is_local(),
        )
    });
    Ok(out)
}

/// The manifest authenticated under its Backup's key, then every stored byte and chunk checked.
fn verified(t: &Tools, x: &Candidate) -> Result<Checked, crate::backup::BackupError> {
    let secret = t.secret(x.backup)?;
    let checked = check(x.manifest.clone(), x.backup.name.as_str(), secret.as_ref())?;
    crate::backup::verified(t, &x.store, checked)
}

/// `skipped <id> at <destination>: <why>`, naming the copy once.
fn passed_over(x: &Candidate, why: &str) -> String {
    if why.starts_with(&x.manifest.id) {
        format!("skipped {why}")
    } else {
        format!("skipped {} at {}: {why}", x.manifest.id, x.store.describe())
    }
}

/// The newest copy that verifies; an error listing what was tried when none does.
pub fn choose(t: &Tools, target: &Target, c: &Criteria) -> Result<Choice, RecoverError> {
    let mut skipped = Vec::new();
    for x in candidates(t, target, c, &mut skipped)? {
        match verified(t, &x) {
            Ok(copy) => {
                return Ok(Choice {
                    backup: x.backup.clone(),
                    store: x.store,
                    copy,
                    skipped,
                })
            }
            // A destination that does not answer says nothing of the copy: stop rather than
            // silently fall back to an older one (more data lost).
            Err(e) if e.is_unreachable() => {
                return Err(RecoverError::Unreachable {
                    target: target.label.clone(),
                    id: x.manifest.id.clone(),
                    destination: x.store.describe(),
                    detail: e.to_string(),
                })
            }
            Err(e) => skipped.push(passed_over(&x, &e.to_string())),
        }
    }
    Err(RecoverError::NoCopy {
        target: target.label.clone(),
        at: c
            .at
            .map(|a| format!(" at or before {}", crate::plan::text::utc(a)))
            .unwrap_or_default(),
        tried: if skipped.is_empty() {
            String::new()
        } else {
            format!("; {}", skipped.join("; "))
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_is_rfc3339_or_a_copy_stamp() {
        assert_eq!(parse_time("2026-11-28T14:38:00Z").unwrap(), 1_795_876_680);
        assert_eq!(
            parse_time("2026-11-28T15:38:00+01:00").unwrap(),
            1_795_876_680
        );
        assert_eq!(parse_time("20261128T143800Z").unwrap(), 1_795_876_680);
        assert!(matches!(
            parse_time("yesterday"),
            Err(RecoverError::BadTime { .. })
        ));
    }

    #[test]
    fn from_names_a_destination_with_or_without_its_trailing_slash() {
        assert!(same_url("s3://b/db/", "s3://b/db"));
        assert!(same_url("file:///var/backups", "file:///var/backups/"));
        assert!(!same_url("s3://b/db/", "s3://b/media/"));
    }
}
