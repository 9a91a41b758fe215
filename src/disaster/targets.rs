//! What a recovery restores: every declared `Database` that a `Backup` copies, into a database of
//! its name, and every files `Backup`, into its directory. Command backups and databases without
//! a Backup are not restored; each gets a note.

use std::path::PathBuf;

use crate::model::{Backup, DesiredState, Kind, Resource};

/// Where a restore goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreInto {
    Database(String),
    Dir(PathBuf),
}

/// One item to restore, and the Backups whose copies may serve it (by name).
#[derive(Debug, Clone)]
pub struct Target {
    /// `database/app` or `files /srv/app/media`: how plans, reports and the journal name it.
    pub label: String,
    pub into: RestoreInto,
    pub backups: Vec<Backup>,
}

/// The targets of `desired`, by label, and notes on what is not restored.
pub fn targets(desired: &DesiredState) -> (Vec<Target>, Vec<String>) {
    let backups: Vec<&Backup> = desired
        .resources
        .values()
        .filter_map(|r| match r {
            Resource::Backup(b) => Some(b),
            _ => None,
        })
        .collect();
    let mut out = Vec::new();
    let mut notes = Vec::new();
    for id in desired
        .resources
        .keys()
        .filter(|k| k.kind == Kind::Database)
    {
        let of_db: Vec<Backup> = backups
            .iter()
            .filter(|b| b.source.database.as_deref() == Some(id.name.as_str()))
            .map(|b| (*b).clone())
            .collect();
        if of_db.is_empty() {
            notes.push(format!(
                "database/{}: no Backup copies it; the apply creates it empty and runs its migrations",
                id.name
            ));
            continue;
        }
        out.push(Target {
            label: format!("database/{}", id.name),
            into: RestoreInto::Database(id.name.clone()),
            backups: of_db,
        });
    }
    for b in &backups {
        if let Some(dir) = &b.source.files {
            out.push(Target {
                label: format!("files {dir}"),
                into: RestoreInto::Dir(PathBuf::from(dir)),
                backups: vec![(*b).clone()],
            });
        } else if b.source.command.is_some() {
            notes.push(format!(
                "backup/{}: a command's output is not restored by `converge recover` (restore it by hand: `converge restore {}@latest`)",
                b.name, b.name
            ));
        }
    }
    out.sort_by(|a, b| a.label.cmp(&b.label));
    (out, notes)
}
