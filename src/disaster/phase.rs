//! One applying phase of a recovery or a drill: a plan printed and run by an engine under a
//! journal run of its own, its outcome turned into a `RecoverError` that names the phase.

use std::path::Path;

use crate::engine::journal::Journal;
use crate::engine::{Engine, Outcome};
use crate::model::live::LiveState;
use crate::model::DesiredState;
use crate::plan::Plan;

use super::run::Progress;
use super::RecoverError;

/// A named phase applied by `engine` from the desired-state directory `dir`.
pub(super) struct Phase<'a> {
    name: &'a str,
    engine: &'a Engine,
    dir: &'a Path,
}

impl<'a> Phase<'a> {
    pub(super) fn new(name: &'a str, engine: &'a Engine, dir: &'a Path) -> Phase<'a> {
        Phase { name, engine, dir }
    }

    fn failed(&self, detail: String) -> RecoverError {
        RecoverError::Phase {
            phase: self.name.to_string(),
            detail,
        }
    }

    /// Prints and runs `plan` as a new run on `journal`'s file (never a second open of the
    /// journal, which could compact it under the first); its step count.
    pub(super) async fn apply(
        &self,
        desired: &DesiredState,
        plan: &Plan,
        live: &LiveState,
        journal: &Journal,
        progress: Progress<'_>,
    ) -> Result<usize, RecoverError> {
        if !plan.errors.is_empty() {
            return Err(self.failed(plan.errors.join("; ")));
        }
        if plan.is_empty() {
            progress(&format!("{}: no changes", self.name));
            return Ok(0);
        }
        progress(&format!("{}: {} step(s):", self.name, plan.steps.len()));
        let mut journal = journal.another_run()?;
        let run = self.engine.run(desired, live, self.dir, None);
        match self
            .engine
            .apply(plan, &run, &mut journal, progress)
            .await?
        {
            Outcome::Applied { .. } => Ok(plan.steps.len()),
            Outcome::Interrupted { after } => {
                Err(self.failed(format!("interrupted after step {after}")))
            }
            Outcome::RolledBack { step, error, .. } => {
                Err(self.failed(format!("`{step}` failed and was rolled back: {error}")))
            }
            Outcome::RollbackFailed { step, error, left } => Err(self.failed(format!(
                "`{step}` failed: {error}; the rollback left: {}",
                left.join(", ")
            ))),
        }
    }
}
