//! The seam for safety copies: a step that drops data (a database, a volume, down files over
//! rows) first asks the [`SafetyNet`] it was given for a copy, and refuses to drop without one.
//! The backup pipeline implements it (`backup::safety`); apply lists the copies in its outcome.

use std::path::Path;

use super::postgres::Postgres;
use super::Context;

/// What a step is about to drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropping<'a> {
    Database(&'a str),
    /// A volume by its logical name, read from its directory on this host.
    Volume {
        name: &'a str,
        dir: &'a Path,
    },
    /// A host directory about to be restored over (`restore --force`).
    Dir(&'a Path),
}

impl Dropping<'_> {
    pub fn describe(&self) -> String {
        match self {
            Dropping::Database(db) => format!("database {db}"),
            Dropping::Volume { name, .. } => format!("volume {name}"),
            Dropping::Dir(dir) => format!("directory {}", dir.display()),
        }
    }
}

/// Copies data before a step drops it. Blocking: providers call it on a blocking thread.
pub trait SafetyNet: Send + Sync {
    /// One line naming the copy and how to restore it, or why no copy could be made.
    fn copy(
        &self,
        ctx: &Context<'_>,
        postgres: Option<&Postgres>,
        what: Dropping<'_>,
    ) -> Result<String, String>;
}

/// A copy of `what` through the context's safety net, recorded for the outcome; an error when
/// there is no net or the copy failed, so nothing is dropped.
pub async fn copy_before_drop(
    ctx: &Context<'_>,
    postgres: Option<&Postgres>,
    what: Dropping<'_>,
) -> Result<(), String> {
    let Some(net) = ctx.safety_net else {
        return Err(format!(
            "refusing to drop {} without a safety copy: this run has no backup pipeline to take one",
            what.describe()
        ));
    };
    let copy = || net.copy(ctx, postgres, what);
    let line = match tokio::runtime::Handle::current().runtime_flavor() {
        tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(copy),
        _ => copy(),
    }
    .map_err(|e| {
        format!(
            "the safety copy of {} failed, so nothing was dropped: {e}",
            what.describe()
        )
    })?;
    ctx.safety.push(line);
    Ok(())
}

/// What steps of one apply saved before they dropped data, one line each, drained by apply.
#[derive(Debug, Default)]
pub struct SafetyCopies(std::sync::Mutex<Vec<String>>);

impl SafetyCopies {
    pub fn push(&self, line: String) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(line);
    }

    /// The lines pushed since the last call.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}
