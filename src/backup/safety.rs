//! Safety copies: before converge drops data (a pruned database or volume, down files run over
//! rows) it takes a backup copy of it — a regular copy with a manifest, encrypted with the
//! project's backup key when one is declared — into a private directory, and names it in the
//! apply's outcome. Nothing removes these copies but the operator; `converge restore
//! safety-db-<name>@latest --to <db>` (or `--to-dir` for a volume) brings the data back.

use std::fmt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{job::human, BackupError, Tools};
use crate::model::backup::{BackupSource, Compression, Destination, VerifyMode};
use crate::model::types::{CronSchedule, Duration, Name};
use crate::model::{Backup, DesiredState, Resource};
use crate::providers::postgres::Postgres;
use crate::providers::{Context, Dropping, SafetyNet};

/// Every safety copy's backup name starts with this.
pub const PREFIX: &str = "safety-";

/// The backup pipeline as the providers' safety net.
pub struct Net;

impl SafetyNet for Net {
    fn copy(
        &self,
        ctx: &Context<'_>,
        postgres: Option<&Postgres>,
        what: Dropping<'_>,
    ) -> Result<String, String> {
        let tools = Tools {
            desired: ctx.desired,
            secrets: ctx.secrets,
            postgres,
            s3: None,
            rt: tokio::runtime::Handle::current(),
        };
        take(&tools, ctx.state_dir, &what)
            .map(|t| t.to_string())
            .map_err(|e| e.to_string())
    }
}

fn backup_name(what: &Dropping) -> String {
    match what {
        Dropping::Database(db) => name_of("db", db),
        Dropping::Volume { name, .. } => name_of("volume", name),
        Dropping::Dir(dir) => name_of("dir", &dir_name(dir)),
    }
}

/// A directory's path as a name: `/srv/app/media` is `srv-app-media`.
fn dir_name(dir: &Path) -> String {
    let joined: String = dir
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(part) => Some(part.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("-");
    let name: String = joined
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        "root".into()
    } else {
        name
    }
}

fn restore_hint(what: &Dropping, id: &str) -> String {
    match what {
        Dropping::Database(db) => format!("converge restore {id} --to {db}"),
        Dropping::Volume { .. } => format!("converge restore {id} --to-dir DIR"),
        Dropping::Dir(dir) => format!("converge restore {id} --to-dir {}", dir.display()),
    }
}

/// A safety copy that was taken.
#[derive(Debug, Clone, PartialEq)]
pub struct Taken {
    pub subject: String,
    pub id: String,
    pub destination: String,
    pub stored_bytes: u64,
    pub encrypted: bool,
    pub restore: String,
}

impl fmt::Display for Taken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} saved as {} in {} ({}, {}); restore: {}",
            self.subject,
            self.id,
            self.destination,
            human(self.stored_bytes),
            if self.encrypted {
                "encrypted with the project's backup key"
            } else {
                "not encrypted: no Backup declares a key"
            },
            self.restore
        )
    }
}

/// `safety-<kind>-<name>`, shortened with a digest when it would exceed a name's 63 characters.
fn name_of(kind: &str, name: &str) -> String {
    let full = format!("{PREFIX}{kind}-{name}");
    if full.len() <= 63 {
        return full;
    }
    let digest = crate::model::attributes::hex(&Sha256::digest(name.as_bytes()));
    let keep: String = name.chars().take(40).collect();
    format!("{PREFIX}{kind}-{keep}-{}", &digest[..8])
}

/// The private directory for safety copies when no Backup of the database writes to local disk.
pub fn private_dir(state_dir: &Path, project: &str) -> PathBuf {
    let state_dir = std::path::absolute(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
    state_dir.join("safety").join(project)
}

/// Where a copy of `subject` goes: the first `file://` destination of a Backup of that database
/// (the operator's backup disk), else the private directory under the state dir.
fn directory(desired: &DesiredState, state_dir: &Path, subject: &Dropping) -> PathBuf {
    if let Dropping::Database(db) = subject {
        if let Some(dir) = backups(desired)
            .filter(|b| b.source.database.as_deref() == Some(*db))
            .flat_map(|b| b.destinations.iter())
            .find_map(|d| d.url.strip_prefix("file://"))
        {
            return PathBuf::from(dir);
        }
    }
    private_dir(state_dir, desired.project.name.as_str())
}

fn backups(desired: &DesiredState) -> impl Iterator<Item = &Backup> {
    desired.resources.values().filter_map(|r| match r {
        Resource::Backup(b) => Some(b),
        _ => None,
    })
}

/// The project's backup key: a Backup of this database's, else the first Backup (by name) that
/// declares one.
fn encryption(
    desired: &DesiredState,
    subject: &Dropping,
) -> Option<crate::model::backup::BackupEncryption> {
    let own = match subject {
        Dropping::Database(db) => backups(desired)
            .filter(|b| b.source.database.as_deref() == Some(*db))
            .find_map(|b| b.encryption.clone()),
        Dropping::Volume { .. } => None,
        Dropping::Dir(dir) => backups(desired)
            .filter(|b| b.source.files.as_deref().map(Path::new) == Some(*dir))
            .find_map(|b| b.encryption.clone()),
    };
    own.or_else(|| backups(desired).find_map(|b| b.encryption.clone()))
}

fn synthesized(
    name: String,
    source: BackupSource,
    encryption: Option<crate::model::backup::BackupEncryption>,
    dirs: Vec<PathBuf>,
) -> Backup {
    Backup {
        name: Name::try_from(name).expect("safety names are valid names"),
        source,
        schedule: CronSchedule::try_from("0 0 1 1 *".to_string()).expect("a valid schedule"),
        compression: Compression::Zstd,
        encryption,
        destinations: dirs
            .into_iter()
            .map(|d| Destination {
                url: format!("file://{}", d.display()),
                // Never expired by converge: the operator removes a safety copy.
                keep: Duration::from_secs(100 * 365 * 24 * 3600),
            })
            .collect(),
        verify: VerifyMode::Checksum,
        rpo: None,
    }
}

/// Takes a safety copy of `subject` now; an error means nothing may be dropped.
pub fn take(t: &Tools, state_dir: &Path, subject: &Dropping) -> Result<Taken, BackupError> {
    let dir = directory(t.desired, state_dir, subject);
    // The private directory is made private; a Backup's own directory is the operator's (the
    // backup pipeline creates it as it does for every copy, its mode left alone).
    if dir == private_dir(state_dir, t.desired.project.name.as_str()) {
        crate::state_dir::ensure(&dir).map_err(|error| BackupError::SafetyDir {
            dir: dir.clone(),
            error,
        })?;
    }
    let source = match subject {
        Dropping::Database(db) => BackupSource {
            database: Some(db.to_string()),
            files: None,
            command: None,
        },
        Dropping::Volume { dir, .. } | Dropping::Dir(dir) => BackupSource {
            database: None,
            files: Some(dir.display().to_string()),
            command: None,
        },
    };
    let b = synthesized(
        backup_name(subject),
        source,
        encryption(t.desired, subject),
        vec![dir.clone()],
    );
    let m = super::run(t, &b)?;
    // A copy that cannot be read back is no safety: check it before anything is dropped.
    let (store, checked) = super::find(t, &b, &m.id)?;
    super::verify_checksum(t, &store, &checked)?;
    Ok(Taken {
        subject: subject.describe(),
        restore: restore_hint(subject, &m.id),
        id: m.id,
        destination: format!("file://{}", dir.display()),
        stored_bytes: m.stored_bytes,
        encrypted: b.encryption.is_some(),
    })
}

/// Before a restore replaces what `target` holds (`--force`): a safety copy of it when it holds
/// anything (user objects in a database, any entry in a directory); `None` when it is empty or
/// missing. An error means the restore must not go on.
pub fn before_restore(
    t: &Tools,
    state_dir: &Path,
    target: &Dropping,
) -> Result<Option<Taken>, BackupError> {
    if !occupied(t, target)? {
        return Ok(None);
    }
    take(t, state_dir, target).map(Some)
}

/// Whether `target` holds anything: user objects in a database, any entry in a directory.
pub fn occupied(t: &Tools, target: &Dropping) -> Result<bool, BackupError> {
    Ok(match target {
        Dropping::Database(db) => {
            let pg = t.pg()?;
            let names =
                t.rt.block_on(pg.database_names())
                    .map_err(BackupError::postgres(db))?;
            names.iter().any(|n| n == db)
                && !t
                    .rt
                    .block_on(pg.contents(db))
                    .map_err(BackupError::postgres(db))?
                    .is_empty()
        }
        Dropping::Volume { dir, .. } | Dropping::Dir(dir) => {
            std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some())
        }
    })
}

/// The Backup `converge restore` and `backup list` use for a safety copy's name: every local
/// directory a safety copy can be in, under the key it would have been taken with.
pub fn lookup(desired: &DesiredState, state_dir: &Path, name: &str) -> Option<Backup> {
    let rest = name.strip_prefix(PREFIX)?;
    let (kind, target) = rest.split_once('-')?;
    let subject = match kind {
        "db" => Dropping::Database(target),
        "volume" => Dropping::Volume {
            name: target,
            dir: Path::new(""),
        },
        // The directory whose name this is, when a Backup copies it (for its key).
        "dir" => match backups(desired)
            .filter_map(|b| b.source.files.as_deref().map(Path::new))
            .find(|d| name_of("dir", &dir_name(d)) == name)
        {
            Some(dir) => Dropping::Dir(dir),
            None => Dropping::Dir(Path::new("")),
        },
        _ => return None,
    };
    let mut dirs = vec![private_dir(state_dir, desired.project.name.as_str())];
    for b in backups(desired) {
        for d in &b.destinations {
            if let Some(dir) = d.url.strip_prefix("file://") {
                if !dirs.iter().any(|x| x == Path::new(dir)) {
                    dirs.push(PathBuf::from(dir));
                }
            }
        }
    }
    let source = BackupSource {
        database: None,
        files: None,
        command: None,
    };
    Some(synthesized(
        name.to_string(),
        source,
        encryption(desired, &subject),
        dirs,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_safety_name_fits_in_a_name_however_long_the_database_name() {
        assert_eq!(name_of("db", "app"), "safety-db-app");
        let long = "a".repeat(63);
        let n = name_of("volume", &long);
        assert!(n.len() <= 63, "{n}");
        assert!(Name::try_from(n.clone()).is_ok(), "{n}");
        assert_ne!(n, name_of("volume", &"a".repeat(62)));
    }

    #[test]
    fn a_taken_copy_says_how_to_restore_it_and_whether_it_is_encrypted() {
        let t = Taken {
            subject: "database app".into(),
            id: "safety-db-app-20261202T101500Z".into(),
            destination: "file:///var/lib/converge/safety/shop".into(),
            stored_bytes: 2048,
            encrypted: false,
            restore: restore_hint(&Dropping::Database("app"), "safety-db-app-20261202T101500Z"),
        };
        assert_eq!(
            t.to_string(),
            "database app saved as safety-db-app-20261202T101500Z in file:///var/lib/converge/safety/shop (2.0 KiB, not encrypted: no Backup declares a key); restore: converge restore safety-db-app-20261202T101500Z --to app"
        );
    }
}
