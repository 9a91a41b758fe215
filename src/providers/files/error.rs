//! What installing a file or running its check or reload action reports: which file or
//! action failed, and whether the previous file is back.
//!
//! Every message reads exactly as before these were typed; wrapped errors are fields rather
//! than `#[source]`s because the message already includes them (a `{:#}` chain would
//! otherwise print them twice).

use std::path::PathBuf;
use std::process::ExitStatus;

use thiserror::Error;

use crate::providers::health::ProbeError;

#[derive(Debug, Error)]
pub enum FileError {
    /// The new contents could not be written (the directory, the temporary file or the rename).
    #[error("cannot write {}: {error}", .path.display())]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The check rejected the new file; the previous one is back.
    #[error("check failed, previous file restored: {error}")]
    Check {
        path: PathBuf,
        error: Box<FileError>,
    },
    /// The check rejected the new file, and putting the previous one back failed too.
    #[error("check failed ({error}) and restoring {} failed: {restore}", .path.display())]
    CheckNotRestored {
        path: PathBuf,
        error: Box<FileError>,
        restore: std::io::Error,
    },
    /// The reload failed; the previous file is back and was reloaded.
    #[error("reload failed, previous file restored: {error}")]
    Reload {
        path: PathBuf,
        error: Box<FileError>,
    },
    /// The reload failed, and putting the previous file back failed too.
    #[error("reload failed ({error}) and restoring {} failed: {restore}", .path.display())]
    ReloadNotRestored {
        path: PathBuf,
        error: Box<FileError>,
        restore: std::io::Error,
    },
    /// Putting the previous contents back (an undo) failed.
    #[error("restore {path}: {error}")]
    Restore { path: String, error: std::io::Error },
    /// A command action could not be started.
    #[error("`{}`: {error}", .argv.join(" "))]
    Spawn {
        argv: Vec<String>,
        error: std::io::Error,
    },
    /// A command action exited non-zero; the last lines of its stderr.
    #[error("`{}` exited with {status}: {stderr_tail}", .argv.join(" "))]
    Command {
        argv: Vec<String>,
        status: ExitStatus,
        stderr_tail: String,
    },
    /// An action ran longer than its timeout; a command was killed (with its process group).
    #[error("`{action}` did not finish within {timeout} and was stopped\n  = hint: make it finish sooner, or raise the resource's action_timeout")]
    Timeout {
        action: String,
        timeout: crate::model::types::Duration,
    },
    /// An HTTP action's URL is not `http://host[:port][/path]`.
    #[error("cannot parse URL {url}")]
    Url { url: String },
    /// An HTTP action's request got no answer.
    #[error(transparent)]
    Request(#[from] ProbeError),
    /// An HTTP action answered with neither a 2xx nor a 3xx status.
    #[error("{method} {url} answered {status}")]
    Status {
        method: String,
        url: String,
        status: u16,
    },
    /// Paths this host does not let converge touch (all of them, one per line).
    #[error(
        "{count} file path(s) are not allowed on this host; nothing was read or changed:\n  {list}"
    )]
    NotAllowed { count: usize, list: String },
    /// The live file could not be read (a link, not a regular file, too large, unreadable).
    #[error("cannot read {}: {error}", .path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The replaced contents could not be kept for the undo; the file was not written.
    #[error("cannot keep the previous contents of {} for the undo (in the state directory): {error}", .path.display())]
    Stash {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The plan holds no rendered contents for a render or switch step.
    #[error("the plan holds no rendered file for this step")]
    NotRendered { resource: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_as_the_strings_they_replace() {
        let url = FileError::Url {
            url: "https://x".into(),
        };
        assert_eq!(
            FileError::Reload {
                path: "/etc/x.conf".into(),
                error: Box::new(url),
            }
            .to_string(),
            "reload failed, previous file restored: cannot parse URL https://x"
        );
        let spawn = FileError::Spawn {
            argv: vec!["nginx".into(), "-t".into()],
            error: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        let restore = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let expected = format!(
            "check failed (`nginx -t`: {}) and restoring /etc/x.conf failed: {restore}",
            std::io::Error::from(std::io::ErrorKind::NotFound)
        );
        assert_eq!(
            FileError::CheckNotRestored {
                path: "/etc/x.conf".into(),
                error: Box::new(spawn),
                restore,
            }
            .to_string(),
            expected
        );
    }
}
