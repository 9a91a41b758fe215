//! A recovery drill, `converge recover --drill`: the copies a recovery would use, each restored
//! into a scratch copy while the real stack runs — a database into `<name>_drill_<stamp>`, a files
//! backup into a fresh temporary directory — verified (tables and rows, files), then torn down.
//! The measured RTO and RPO are journaled as a drill (`recovery-finished`, `drilled`). Services
//! are not started and no router is touched: the drill proves the data path, never the real
//! stack's containers, ports or databases.

use std::path::PathBuf;

use crate::backup::{restore_database, restore_files};
use crate::engine::event::Event;
use crate::engine::journal::Journal;

use super::history::{DRILLED, DRILL_FAILED};
use super::plan::{Planned, RecoveryPlan};
use super::report::{Report, Restored};
use super::run::{Progress, Recovery};
use super::targets::RestoreInto;
use super::RecoverError;

/// PostgreSQL's longest identifier, in bytes.
const MAX_IDENT: usize = 63;

/// What a drill says of the services it did not start.
pub const SERVICES_NOTE: &str = "services were not started: a drill restores and checks the data into scratch copies while the real stack keeps serving (no container, port or router is touched)";

/// The scratch copies of one drill, torn down when it ends.
#[derive(Default)]
struct Scratch {
    databases: Vec<String>,
    dirs: Vec<tempfile::TempDir>,
}

impl Scratch {
    /// Where the drill restores a target that would go `into`.
    fn place(&mut self, into: &RestoreInto, stamp: u64) -> Result<RestoreInto, RecoverError> {
        match into {
            RestoreInto::Database(db) => {
                let name = drill_database(db, stamp);
                self.databases.push(name.clone());
                Ok(RestoreInto::Database(name))
            }
            RestoreInto::Dir(_) => {
                let dir = tempfile::Builder::new()
                    .prefix("converge-drill-")
                    .tempdir()
                    .map_err(|e| RecoverError::Phase {
                        phase: "drill".into(),
                        detail: format!("cannot make a scratch directory: {e}"),
                    })?;
                let path = dir.path().to_path_buf();
                self.dirs.push(dir);
                Ok(RestoreInto::Dir(path))
            }
        }
    }

    /// Drops every scratch database and removes every scratch directory; one line each.
    fn teardown(self, r: &Recovery) -> Vec<String> {
        let mut lines = Vec::new();
        let pg = r.engine.registry().postgres();
        for db in &self.databases {
            let dropped = match pg {
                Some(pg) => {
                    r.rt.block_on(pg.drop_database(db))
                        .map_err(|e| e.to_string())
                }
                None => Err("no PostgreSQL provider".to_string()),
            };
            lines.push(match dropped {
                Ok(()) => format!("torn down: dropped database {db}"),
                Err(e) => format!("warning: the scratch database {db} was not dropped: {e}"),
            });
        }
        for dir in self.dirs {
            let path: PathBuf = dir.path().to_path_buf();
            lines.push(match dir.close() {
                Ok(()) => format!("torn down: removed {}", path.display()),
                Err(e) => format!(
                    "warning: the scratch directory {} was not removed: {e}",
                    path.display()
                ),
            });
        }
        lines
    }
}

/// `<db>_drill_<stamp>`, the database name shortened to fit PostgreSQL's 63 bytes.
pub fn drill_database(db: &str, stamp: u64) -> String {
    let suffix = format!("_drill_{stamp}");
    let keep = MAX_IDENT.saturating_sub(suffix.len());
    let mut end = db.len().min(keep);
    while !db.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{suffix}", &db[..end])
}

impl Recovery<'_> {
    /// Restores every target into a scratch copy, verifies and tears them down; the measured
    /// report, or the error that stopped it (journaled as a drill either way).
    pub fn drill(&self, progress: Progress) -> Result<Report, RecoverError> {
        let mut journal = Journal::open(self.engine.state_dir(), self.project())?;
        let mut report = Report {
            drill: true,
            ..Report::default()
        };
        let mut scratch = Scratch::default();
        let result = self.drill_phases(&mut scratch, &mut report, progress);
        for line in scratch.teardown(self) {
            progress(&line);
            report.notes.push(line);
        }
        report.notes.push(SERVICES_NOTE.to_string());
        let detail = match &result {
            Ok(()) => DRILLED.to_string(),
            Err(e) => format!("{DRILL_FAILED}: {e}"),
        };
        journal.record(Event::RecoveryFinished {
            detail,
            data: report.journaled(),
        })?;
        result.map(|()| report)
    }

    fn drill_phases(
        &self,
        scratch: &mut Scratch,
        report: &mut Report,
        progress: Progress,
    ) -> Result<(), RecoverError> {
        let stamp = crate::clock::now();
        let plan: RecoveryPlan = report.time("select copies", || self.plan())?;
        report.notes.extend(plan.notes.iter().cloned());
        let mut placed = Vec::new();
        for p in &plan.restores {
            let into = scratch.place(&p.target.into, stamp)?;
            progress(&format!(
                "Drill: restoring {} from {} at {} into {} ...",
                p.target.label,
                p.choice.copy.id,
                p.choice.store.describe(),
                shown(&into)
            ));
            for s in &p.choice.skipped {
                report.notes.push(format!("{}: {s}", p.target.label));
            }
            report.time(format!("restore {}", p.target.label), || {
                self.restore_scratch(p, &into)
            })?;
            report.restored.push(Restored {
                label: p.target.label.clone(),
                id: p.choice.copy.id.clone(),
                age_secs: p.age(crate::clock::now()),
            });
            placed.push((p.target.label.clone(), into));
        }
        report.verified = report.time("verify", || {
            placed
                .iter()
                .map(|(label, into)| {
                    let found = self.verify_into(label, into)?;
                    Ok(format!("{found} in the scratch copy {}", shown(into)))
                })
                .collect::<Result<Vec<_>, RecoverError>>()
        })?;
        Ok(())
    }

    /// A restore into a fresh scratch database or an empty scratch directory (never `--force`).
    fn restore_scratch(&self, p: &Planned, into: &RestoreInto) -> Result<(), RecoverError> {
        let t = self.tools();
        let c = &p.choice;
        match into {
            RestoreInto::Database(db) => restore_database(&t, &c.store, &c.copy, db, false),
            RestoreInto::Dir(dir) => restore_files(&t, &c.store, &c.copy, dir, false),
        }
        .map_err(RecoverError::backup(&p.target.label))
    }
}

/// `database x_drill_1795876680` or the directory's path.
fn shown(into: &RestoreInto) -> String {
    match into {
        RestoreInto::Database(db) => format!("database {db}"),
        RestoreInto::Dir(dir) => dir.display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drill_database_is_named_after_the_real_one_within_63_bytes() {
        assert_eq!(drill_database("app", 1_795_876_680), "app_drill_1795876680");
        let long = "a".repeat(70);
        let name = drill_database(&long, 1_795_876_680);
        assert_eq!(name.len(), 63);
        assert!(name.ends_with("_drill_1795876680"));
    }
}
