//! What can stop a recovery, each naming the phase or the item it was at.

use thiserror::Error;

use crate::backup::BackupError;
use crate::engine::{EngineError, JournalError, LockError};

#[derive(Debug, Error)]
pub enum RecoverError {
    #[error(transparent)]
    Engine(Box<EngineError>),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("{target}: {source}")]
    Backup {
        target: String,
        #[source]
        source: Box<BackupError>,
    },
    #[error("{target}: no copy{at} verifies{tried}\n  = hint: `converge backup list NAME` shows every copy")]
    NoCopy {
        target: String,
        /// ` at or before <time>`, or empty.
        at: String,
        /// `; skipped: …`, or empty.
        tried: String,
    },
    #[error("{target}: the newest copy {id} at {destination} cannot be read: {detail}\n  = hint: run again once {destination} answers; to use older copies from another destination instead, name it with --from")]
    Unreachable {
        target: String,
        id: String,
        destination: String,
        detail: String,
    },
    #[error("{target}: the copies at {destination} cannot be listed: {detail}\n  = hint: run again once {destination} answers (the newest copy may be there); to recover from the other destinations alone, name one with --from")]
    Unlisted {
        target: String,
        destination: String,
        detail: String,
    },
    #[error("`{text}` is not a time\n  = hint: write RFC 3339 (2026-12-02T16:00:00Z) or a copy stamp (20261202T160000Z)")]
    BadTime { text: String },
    #[error("the {phase} phase failed: {detail}\n  = hint: fix the cause and run `converge recover` again: restores already done are skipped (journal)")]
    Phase { phase: String, detail: String },
    #[error("verification failed: {detail}")]
    Verify { detail: String },
}

impl RecoverError {
    /// A `BackupError` about `target`.
    pub fn backup(target: &str) -> impl FnOnce(BackupError) -> RecoverError + '_ {
        move |source| RecoverError::Backup {
            target: target.to_string(),
            source: Box::new(source),
        }
    }
}

impl From<EngineError> for RecoverError {
    fn from(e: EngineError) -> RecoverError {
        RecoverError::Engine(Box::new(e))
    }
}
