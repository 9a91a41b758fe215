//! What undoes a completed step: returned by a provider's `apply`, recorded in the journal with
//! the step, and run in reverse when a later step fails or after a crash.

use serde::{Deserialize, Serialize};

use crate::model::{Action, Kind};
use crate::providers::postgres::database::DownFile;

/// What undoes a completed step; recorded in the journal with the step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "undo", rename_all = "kebab-case")]
pub enum Undo {
    Nothing,
    RemoveContainers {
        names: Vec<String>,
    },
    RestoreContainers {
        started: Vec<String>,
        retired: Vec<(String, String)>,
    },
    RestartRetired {
        retired: Vec<(String, String)>,
    },
    RemoveNetwork,
    /// Swarm services a step created.
    RemoveSwarmServices {
        names: Vec<String>,
    },
    /// A Swarm service a step updated: back to its previous spec.
    RollbackSwarmService {
        name: String,
    },
    /// A Swarm service a step scaled: back to its replica count.
    ScaleSwarmService {
        name: String,
        replicas: u32,
    },
    MigrateDown {
        database: String,
        files: Vec<DownFile>,
        /// Where a `pg_dump` goes before the down files run, when the database holds data
        /// (only with `rollback: down-files`; `None` in earlier versions' journals outside prod).
        dump_to: Option<String>,
    },
    RestoreFile {
        path: String,
        /// The replaced contents inline: journals of earlier versions only (`null` now).
        previous: Option<String>,
        /// The private copy of the replaced contents under the state directory (`None`: there
        /// was no file, or an earlier version's journal).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        saved: Option<String>,
        reload: Option<Action>,
    },
}

impl Undo {
    /// Removes what this undo kept on disk (the copy of a replaced file), once it cannot run.
    pub fn discard(&self) {
        if let Undo::RestoreFile {
            saved: Some(copy), ..
        } = self
        {
            crate::providers::files::stash::discard(copy);
        }
    }

    /// The kind whose provider runs this undo (`None`: nothing to run).
    pub fn kind(&self) -> Option<Kind> {
        match self {
            Undo::Nothing => None,
            Undo::RemoveContainers { .. }
            | Undo::RestoreContainers { .. }
            | Undo::RestartRetired { .. }
            | Undo::RemoveSwarmServices { .. }
            | Undo::RollbackSwarmService { .. }
            | Undo::ScaleSwarmService { .. } => Some(Kind::Service),
            Undo::RemoveNetwork => Some(Kind::Network),
            Undo::MigrateDown { .. } => Some(Kind::Database),
            Undo::RestoreFile { .. } => Some(Kind::Router),
        }
    }
}
