//! The phases of a recovery, in order, each timed: choose the copies (`select copies`), apply the
//! infrastructure the data needs (networks, volumes, databases and their roles, without their
//! migrations: the restored data brings its own schema), restore each target, apply the rest of
//! the desired state (services health-gated, routers switched), verify. The journal records the
//! start, each restore and the end with the phases' times.

use std::path::Path;

use tokio::runtime::Handle;

use crate::backup::{counts, restore_database, restore_files, Manifest, Tools};
use crate::engine::event::Event;
use crate::engine::journal::{Journal, StateLock};
use crate::engine::{plan_of, Engine, PlanOptions};
use crate::model::{DesiredState, Kind};
use crate::providers::Dropping;

use super::choose::{choose, parse_time, Criteria};
use super::phase::Phase;
use super::plan::{Planned, RecoveryPlan};
use super::report::{Report, Restored};
use super::resume::{restored_earlier, RECOVERED};
use super::targets::{targets, RestoreInto};
use super::RecoverError;

/// The kinds the data needs before it is restored.
const INFRASTRUCTURE: [Kind; 3] = [Kind::Network, Kind::Volume, Kind::Database];

/// How to recover.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecoveryOptions<'a> {
    /// Only what `placement` puts on this host (services; data is restored whatever the host).
    pub host: Option<&'a str>,
    pub criteria: Criteria<'a>,
    /// Restore over a database that holds something, into a directory that is not empty.
    pub force: bool,
}

/// A recovery of `desired` with `engine`'s providers.
pub struct Recovery<'a> {
    pub desired: &'a DesiredState,
    /// The desired-state directory (migrations, templates).
    pub dir: &'a Path,
    pub engine: &'a Engine,
    /// A handle on a multi-threaded runtime (`block_on` is called on it).
    pub rt: Handle,
    pub opts: RecoveryOptions<'a>,
}

pub(super) type Progress<'p> = &'p mut dyn FnMut(&str);

impl Recovery<'_> {
    pub(super) fn tools(&self) -> Tools<'_> {
        Tools::of(self.desired, self.engine, self.rt.clone())
    }

    pub(super) fn project(&self) -> &str {
        self.desired.project.name.as_str()
    }

    /// The copy of every target, each verified; nothing changes.
    pub fn plan(&self) -> Result<RecoveryPlan, RecoverError> {
        let (targets, notes) = targets(self.desired);
        let tools = self.tools();
        let restores = targets
            .into_iter()
            .map(|target| {
                let choice = choose(&tools, &target, &self.opts.criteria)?;
                Ok(Planned { target, choice })
            })
            .collect::<Result<Vec<_>, RecoverError>>()?;
        Ok(RecoveryPlan {
            restores,
            notes,
            at: self.opts.criteria.at,
        })
    }

    /// Runs every phase; the measured report, or the error that stopped it (journaled either way).
    pub fn run(&self, progress: Progress) -> Result<Report, RecoverError> {
        let state_dir = self.engine.state_dir();
        let _lock = StateLock::acquire(state_dir, self.project())?;
        let mut journal = Journal::open(state_dir, self.project())?;
        for line in self.rt.block_on(self.engine.recover(&mut journal))? {
            progress(&line);
        }
        let done = restored_earlier(&Journal::entries(state_dir, self.project()));
        let mut report = Report::default();
        let plan = report.time("select copies", || self.plan())?;
        progress(&plan.render(self.desired, crate::clock::now()));
        if done.is_empty() {
            let detail = plan.summary();
            journal.record(Event::RecoveryStarted { detail })?;
        }
        let result = self.phases(&plan, &done, &mut report, &mut journal, progress);
        let detail = match &result {
            Ok(()) => RECOVERED.to_string(),
            Err(e) => format!("failed: {e}"),
        };
        journal.record(Event::RecoveryFinished {
            detail,
            data: report.journaled(),
        })?;
        result.map(|()| report)
    }

    fn phases(
        &self,
        plan: &RecoveryPlan,
        done: &std::collections::BTreeMap<String, String>,
        report: &mut Report,
        journal: &mut Journal,
        progress: Progress,
    ) -> Result<(), RecoverError> {
        report.notes.extend(plan.notes.iter().cloned());
        report.time("infrastructure", || {
            self.rt.block_on(self.infrastructure(journal, progress))
        })?;
        for p in &plan.restores {
            let label = p.target.label.clone();
            for s in &p.choice.skipped {
                report.notes.push(format!("{label}: {s}"));
            }
            // Only the copy chosen now counts as already restored: another `--at`, or a newer
            // copy since the interrupted run, is restored (a non-empty target needs --force).
            if let Some(id) = done.get(&label).filter(|id| **id == p.choice.copy.id) {
                report.notes.push(format!(
                    "{label} was restored from {id} by the interrupted recovery (journal): not restored again"
                ));
                report.restored.push(restored(&label, id));
                continue;
            }
            if self.restored_by_another_host(p)? {
                report.notes.push(format!(
                    "{label} already holds data: left as it is (--host: another host's recovery restored it; --force replaces it)"
                ));
                continue;
            }
            progress(&format!(
                "Restoring {label} from {} at {} ...",
                p.choice.copy.id,
                p.choice.store.describe()
            ));
            let (saved, checked) = report.time(format!("restore {label}"), || {
                let saved = self.restore(p)?;
                // Checked right away: the apply's newer migrations may change rows after this.
                let checked = self.verify_into(&label, &p.target.into, &p.choice.copy)?;
                Ok::<_, RecoverError>((saved, checked))
            })?;
            report.verified.push(checked);
            for line in saved {
                progress(&format!("{label}: {line}"));
                report.notes.push(format!("{label}: {line}"));
            }
            let id = p.choice.copy.id.clone();
            journal.record(Event::RecoveryRestored {
                resource: label.clone(),
                detail: id.clone(),
            })?;
            report.restored.push(restored(&label, &id));
        }
        report.time("apply", || {
            self.rt.block_on(self.apply_rest(journal, progress))
        })?;
        let converged = report.time("verify", || self.verify_state())?;
        report.verified.push(converged);
        Ok(())
    }

    /// Networks, volumes and databases (with roles and grants), their migrations left out.
    async fn infrastructure(
        &self,
        journal: &Journal,
        progress: Progress<'_>,
    ) -> Result<usize, RecoverError> {
        let live = self.engine.observe(self.desired).await?;
        let kinds: Vec<Kind> = self
            .engine
            .kinds()
            .into_iter()
            .filter(|k| INFRASTRUCTURE.contains(k))
            .collect();
        let opts = self.plan_options();
        let mut d = self.engine.diff(self.desired, &live, &opts, &kinds);
        // The diff adds what depends on these kinds (a service on its network): not yet.
        d.changes.retain(|c| INFRASTRUCTURE.contains(&c.id.kind));
        for c in &mut d.changes {
            c.migrations.clear();
            c.lints.clear();
        }
        let plan = plan_of(self.desired, &live, d, &opts);
        let step = Phase::new("infrastructure", self.engine, self.dir);
        step.apply(self.desired, &plan, &live, journal, progress)
            .await
    }

    /// The whole desired state, as `converge apply` would.
    async fn apply_rest(
        &self,
        journal: &Journal,
        progress: Progress<'_>,
    ) -> Result<usize, RecoverError> {
        let live = self.engine.observe(self.desired).await?;
        let effective = crate::scale::with_overrides(self.desired, &live.overrides);
        let plan = self.engine.plan(&effective, &live, &self.plan_options());
        let step = Phase::new("apply", self.engine, self.dir);
        step.apply(&effective, &plan, &live, journal, progress)
            .await
    }

    fn plan_options(&self) -> PlanOptions<'_> {
        PlanOptions {
            host: self.opts.host,
            ..Default::default()
        }
    }

    /// With `--host` (one host of several recovering), a database or directory that already
    /// holds data was restored by another host's recovery: it is not restored again, and its
    /// services start on it. Without `--host` such a target stops the recovery unless `--force`.
    fn restored_by_another_host(&self, p: &Planned) -> Result<bool, RecoverError> {
        if self.opts.host.is_none() || self.opts.force {
            return Ok(false);
        }
        crate::backup::safety::occupied(&self.tools(), &dropping(&p.target.into))
            .map_err(RecoverError::backup(&p.target.label))
    }

    /// Restores `p`. With `--force` over data, the services that use it are stopped and what
    /// it held is saved first: a line for each container stopped and for the safety copy.
    fn restore(&self, p: &Planned) -> Result<Vec<String>, RecoverError> {
        let t = self.tools();
        let c = &p.choice;
        let label = &p.target.label;
        let what = dropping(&p.target.into);
        let mut lines = Vec::new();
        let occupied = self.opts.force
            && crate::backup::safety::occupied(&t, &what).map_err(RecoverError::backup(label))?;
        if occupied {
            lines.extend(self.fence(label, &p.target.into)?);
            let taken = crate::backup::safety::take(&t, self.engine.state_dir(), &what)
                .map_err(RecoverError::backup(label))?;
            lines.push(format!("before replacing it, {taken}"));
        }
        match &p.target.into {
            RestoreInto::Database(db) => {
                restore_database(&t, &c.store, &c.copy, db, self.opts.force)
            }
            RestoreInto::Dir(dir) => restore_files(&t, &c.store, &c.copy, dir, self.opts.force),
        }
        .map_err(RecoverError::backup(label))?;
        Ok(lines)
    }

    /// After the apply: a new plan is empty (each restored target was checked right after its
    /// restore, against its copy's manifest).
    fn verify_state(&self) -> Result<String, RecoverError> {
        let live = self.rt.block_on(self.engine.observe(self.desired))?;
        let effective = crate::scale::with_overrides(self.desired, &live.overrides);
        let again = self.engine.plan(&effective, &live, &self.plan_options());
        Ok(if again.is_empty() {
            "live state matches the desired state (a new plan has no changes)".to_string()
        } else {
            format!(
                "a new plan still has {} step(s): see `converge plan`",
                again.steps.len()
            )
        })
    }

    /// What verification found of `label`, restored into `into` from `copy`.
    pub(super) fn verify_into(
        &self,
        label: &str,
        into: &RestoreInto,
        copy: &Manifest,
    ) -> Result<String, RecoverError> {
        let fail = |detail: String| RecoverError::Verify {
            detail: format!("{label}: {detail}"),
        };
        match into {
            RestoreInto::Database(db) => {
                let pg = self
                    .engine
                    .registry()
                    .postgres()
                    .ok_or_else(|| fail("no PostgreSQL provider".into()))?;
                let found = self
                    .rt
                    .block_on(pg.table_rows(db))
                    .map_err(|e| fail(e.to_string()))?;
                let verdict = counts::verdict(copy, &found).map_err(fail)?;
                Ok(format!("{label}: {verdict}"))
            }
            RestoreInto::Dir(dir) => {
                let files = count_files(dir);
                if files == 0 {
                    return Err(fail(format!("{} holds no file", dir.display())));
                }
                Ok(format!("{label}: {files} file(s)"))
            }
        }
    }
}

/// What a restore into `into` replaces.
fn dropping(into: &RestoreInto) -> Dropping<'_> {
    match into {
        RestoreInto::Database(db) => Dropping::Database(db),
        RestoreInto::Dir(dir) => Dropping::Dir(dir),
    }
}

/// A restored copy and its age now (from the stamp in its id).
fn restored(label: &str, id: &str) -> Restored {
    let started = id
        .rsplit_once('-')
        .and_then(|(_, stamp)| parse_time(stamp).ok())
        .unwrap_or(0);
    Restored {
        label: label.to_string(),
        id: id.to_string(),
        age_secs: crate::clock::now().saturating_sub(started),
    }
}

/// Regular files under `dir`, however deep.
pub(super) fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => count_files(&e.path()),
                    Ok(t) if t.is_file() => 1,
                    _ => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}
