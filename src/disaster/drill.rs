//! A recovery drill, `converge recover --drill`: the copies a recovery would use, each restored
//! into a scratch copy while the real stack runs — a database into `<name>_drill_<stamp>`, a files
//! backup into a fresh temporary directory — verified (tables and rows, files), then the real
//! stack's services started against them as project `<project>-drill` on other loopback ports,
//! health-gated (`drill_stack`), and everything torn down. No router, database, file or container
//! of the real stack is touched. The measured RTO and RPO are journaled as a drill
//! (`recovery-finished`, `drilled`). One drill runs at a time (a lock of the drill project); a
//! drill first sweeps what a killed one left: scratch databases, directories and containers.

use std::path::PathBuf;

use crate::backup::{restore_database, restore_files};
use crate::engine::event::Event;
use crate::engine::journal::Journal;

use super::drill_stack::{self, DrillStack};

use super::history::{DRILLED, DRILL_FAILED};
use super::plan::{Planned, RecoveryPlan};
use super::report::{Report, Restored};
use super::run::{Progress, Recovery};
use super::targets::RestoreInto;
use super::RecoverError;

/// PostgreSQL's longest identifier, in bytes.
const MAX_IDENT: usize = 63;

/// What a drill says of the real stack.
const SERVICES_NOTE: &str = "the real stack was not touched: the drill's services ran as their own project on other loopback ports against the scratch copies, and no router was switched";

/// The prefix of a drill's scratch directories, by project: `+` cannot occur in a project's
/// name, so no project's prefix is the start of another's (`shop+` is not `shop-a+`).
fn dir_prefix(project: &str) -> String {
    format!("converge-drill-{project}+")
}

/// The scratch copies of one drill, torn down when it ends.
#[derive(Default)]
struct Scratch {
    databases: Vec<String>,
    dirs: Vec<tempfile::TempDir>,
}

impl Scratch {
    /// Where the drill restores a target that would go `into`.
    fn place(
        &mut self,
        into: &RestoreInto,
        stamp: u64,
        project: &str,
    ) -> Result<RestoreInto, RecoverError> {
        match into {
            RestoreInto::Database(db) => {
                let name = drill_database(db, stamp);
                self.databases.push(name.clone());
                Ok(RestoreInto::Database(name))
            }
            RestoreInto::Dir(_) => {
                let dir = tempfile::Builder::new()
                    .prefix(&dir_prefix(project))
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
    /// Restores every target into a scratch copy, verifies it, starts the services against it,
    /// and tears everything down; the measured report, or the error that stopped it (journaled
    /// as a drill either way).
    pub fn drill(&self, progress: Progress) -> Result<Report, RecoverError> {
        let _lock = drill_stack::lock(self.engine.state_dir(), self.project())?;
        let mut report = Report {
            drill: true,
            ..Report::default()
        };
        for line in self.sweep_scratch() {
            progress(&line);
            report.notes.push(line);
        }
        let mut scratch = Scratch::default();
        let mut stack = None;
        let result = self.drill_phases(&mut scratch, &mut stack, &mut report, progress);
        let mut torn = stack.map(|s| s.teardown(self).1).unwrap_or_default();
        torn.extend(scratch.teardown(self));
        for line in torn {
            progress(&line);
            report.notes.push(line);
        }
        report.notes.push(SERVICES_NOTE.to_string());
        let detail = match &result {
            Ok(()) => DRILLED.to_string(),
            Err(e) => format!("{DRILL_FAILED}: {e}"),
        };
        // Opened just now, without compacting: the drill does not hold the project's lock.
        Journal::append_only(self.engine.state_dir(), self.project())?.record(
            Event::RecoveryFinished {
                detail,
                data: report.journaled(),
            },
        )?;
        result.map(|()| report)
    }

    /// Drops the scratch databases and removes the scratch directories a killed drill of this
    /// project left (the drill lock is held: no other drill is running); a line each.
    fn sweep_scratch(&self) -> Vec<String> {
        let mut left = Scratch::default();
        if let Some(pg) = self.engine.registry().postgres() {
            let names = self.rt.block_on(pg.database_names()).unwrap_or_default();
            let (targets, _) = super::targets::targets(self.desired);
            for t in &targets {
                if let RestoreInto::Database(db) = &t.into {
                    left.databases
                        .extend(names.iter().filter(|n| is_drill_of(n, db)).cloned());
                }
            }
        }
        let prefix = dir_prefix(self.project());
        let entries = std::fs::read_dir(std::env::temp_dir())
            .into_iter()
            .flatten();
        let dirs: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .map(|e| e.path())
            .collect();
        let mut lines: Vec<String> = left
            .teardown(self)
            .into_iter()
            .map(|l| format!("{l} (left by an interrupted drill)"))
            .collect();
        for dir in dirs {
            lines.push(match std::fs::remove_dir_all(&dir) {
                Ok(()) => format!(
                    "torn down: removed {} (left by an interrupted drill)",
                    dir.display()
                ),
                Err(e) => format!("warning: {} was not removed: {e}", dir.display()),
            });
        }
        lines
    }

    fn drill_phases(
        &self,
        scratch: &mut Scratch,
        stack: &mut Option<DrillStack>,
        report: &mut Report,
        progress: Progress,
    ) -> Result<(), RecoverError> {
        let stamp = crate::clock::now();
        let plan: RecoveryPlan = report.time("select copies", || self.plan())?;
        report.notes.extend(plan.notes.iter().cloned());
        let mut placed = Vec::new();
        for p in &plan.restores {
            let into = scratch.place(&p.target.into, stamp, self.project())?;
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
            placed.push((p, into));
        }
        report.verified = report.time("verify", || {
            placed
                .iter()
                .map(|(p, into)| {
                    let found = self.verify_into(&p.target.label, into, &p.choice.copy)?;
                    Ok(format!("{found} in the scratch copy {}", shown(into)))
                })
                .collect::<Result<Vec<_>, RecoverError>>()
        })?;
        let (renames, dirs) = scratch_map(&placed);
        let started = DrillStack::open(self, renames, &dirs)?;
        let (swept, _) = started.teardown(self);
        if swept > 0 {
            report.notes.push(format!(
                "swept {swept} container(s) left by an interrupted drill"
            ));
        }
        let stack = stack.insert(started);
        let running = report.time("services", || stack.start(self, progress))?;
        report.verified.extend(running);
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

/// Each restored database and its scratch copy, each restored directory and its scratch copy.
type ScratchMap = (Vec<(String, String)>, Vec<(PathBuf, PathBuf)>);

fn scratch_map(placed: &[(&Planned, RestoreInto)]) -> ScratchMap {
    let mut renames = Vec::new();
    let mut dirs = Vec::new();
    for (p, scratch) in placed {
        match (&p.target.into, scratch) {
            (RestoreInto::Database(a), RestoreInto::Database(b)) => {
                renames.push((a.clone(), b.clone()))
            }
            (RestoreInto::Dir(a), RestoreInto::Dir(b)) => dirs.push((a.clone(), b.clone())),
            _ => {}
        }
    }
    (renames, dirs)
}

/// Whether `name` is a drill's scratch copy of database `db` (`drill_database(db, stamp)`).
fn is_drill_of(name: &str, db: &str) -> bool {
    name.rsplit_once("_drill_")
        .and_then(|(_, stamp)| {
            (!stamp.is_empty() && stamp.bytes().all(|b| b.is_ascii_digit()))
                .then(|| stamp.parse::<u64>().ok())
                .flatten()
        })
        .is_some_and(|stamp| drill_database(db, stamp) == name)
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

    #[test]
    fn only_a_drills_own_scratch_databases_are_swept() {
        assert!(is_drill_of("app_drill_1795876680", "app"));
        assert!(is_drill_of(
            &drill_database(&"a".repeat(70), 7),
            &"a".repeat(70)
        ));
        for other in [
            "app",
            "app_drill_",
            "app_drill_x1",
            "apps_drill_1",
            "ap_drill_1",
        ] {
            assert!(!is_drill_of(other, "app"), "{other}");
        }
    }
}
