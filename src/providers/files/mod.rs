//! The files provider: routers and config files rendered to disk, written atomically (temporary
//! file + rename), checked, reloaded; a failed check or reload puts the previous file back
//! before anything else happens.

mod disk;
mod error;
mod provider;
pub mod stash;

use std::path::Path;

pub use error::FileError;
pub use provider::FilesProvider;

use crate::model::types::Duration;
use crate::model::Action;

/// Files are written when the desired state has routers or config files.
pub const FACTORY: crate::providers::registry::Factory = crate::providers::registry::Factory {
    name: "files",
    kinds: provider::KINDS,
    wanted: |d| crate::providers::registry::has_kind(d, provider::KINDS),
    secret_free: true,
    connect: |_, _| {
        Box::pin(async {
            Ok(std::sync::Arc::new(FilesProvider)
                as std::sync::Arc<dyn crate::providers::Provider>)
        })
    },
};

/// How long a command action may run when its resource sets no `action_timeout`.
pub const COMMAND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// How long an HTTP action may take when its resource sets no `action_timeout`.
pub const HTTP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs a check or reload action: a command (exit 0) or an HTTP request (2xx/3xx), stopped
/// after `timeout` (default `COMMAND_TIMEOUT` or `HTTP_TIMEOUT`): a command that takes longer
/// is killed and the action fails.
pub async fn run_action(action: &Action, timeout: Option<Duration>) -> Result<(), FileError> {
    match action {
        Action::Command(argv) => {
            let limit = timeout.map_or(COMMAND_TIMEOUT, |t| t.to_std());
            let mut cmd = tokio::process::Command::new(&argv[0]);
            cmd.args(&argv[1..])
                .stdin(std::process::Stdio::null())
                .process_group(0)
                .kill_on_drop(true);
            let child = cmd.spawn().map_err(|error| FileError::Spawn {
                argv: argv.clone(),
                error,
            })?;
            let pid = child.id();
            let out = match tokio::time::timeout(limit, child.wait_with_output()).await {
                Ok(out) => out.map_err(|error| FileError::Spawn {
                    argv: argv.clone(),
                    error,
                })?,
                Err(_) => {
                    // kill_on_drop ended the child; its own children (a shell's) go with the group.
                    kill_group(pid);
                    return Err(FileError::Timeout {
                        action: action.to_string(),
                        timeout: timeout.unwrap_or(Duration::from_millis(limit.as_millis() as u64)),
                    });
                }
            };
            if out.status.success() {
                Ok(())
            } else {
                let stderr = String::from_utf8_lossy(&out.stderr);
                let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                Err(FileError::Command {
                    argv: argv.clone(),
                    status: out.status,
                    stderr_tail: tail.join(" / "),
                })
            }
        }
        Action::Http { http } => {
            let limit = timeout.map_or(HTTP_TIMEOUT, |t| t.to_std());
            let (host, port, path) = split_url(&http.url).ok_or_else(|| FileError::Url {
                url: http.url.clone(),
            })?;
            let request = crate::providers::health::http_request(&host, port, &http.method, &path);
            let status =
                tokio::time::timeout(limit, request)
                    .await
                    .map_err(|_| FileError::Timeout {
                        action: action.to_string(),
                        timeout: timeout.unwrap_or(Duration::from_millis(limit.as_millis() as u64)),
                    })??;
            if (200..400).contains(&status) {
                Ok(())
            } else {
                Err(FileError::Status {
                    method: http.method.clone(),
                    url: http.url.clone(),
                    status,
                })
            }
        }
    }
}

/// Kills the process group `pid` leads (a command started with `process_group(0)`), so a
/// shell's children go too.
pub(crate) fn kill_group(pid: Option<u32>) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        // SAFETY: kill(2) with a negative pid signals that process group; no memory is touched.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

/// `http://host:port/path` → (host, port, path).
fn split_url(url: &str) -> Option<(String, u16, String)> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h.to_string(), p.parse().ok()?),
        None => (authority.to_string(), 80),
    };
    Some((host, port, path))
}

pub use disk::{read_live, restore, write_atomic, Previous};

/// Writes, checks and reloads (each action stopped after `timeout`); on failure `previous` is back (and reloaded) before returning.
pub async fn install(
    path: &Path,
    content: &str,
    previous: Option<&str>,
    check: Option<&Action>,
    reload: Option<&Action>,
    timeout: Option<Duration>,
) -> Result<(), FileError> {
    write_atomic(path, content).map_err(|error| FileError::Write {
        path: path.to_path_buf(),
        error,
    })?;
    if let Some(check) = check {
        if let Err(e) = run_action(check, timeout).await {
            let error = Box::new(e);
            return Err(match restore(path, previous) {
                Ok(()) => FileError::Check {
                    path: path.to_path_buf(),
                    error,
                },
                Err(restore) => FileError::CheckNotRestored {
                    path: path.to_path_buf(),
                    error,
                    restore,
                },
            });
        }
    }
    if let Some(reload) = reload {
        if let Err(e) = run_action(reload, timeout).await {
            let error = Box::new(e);
            if let Err(restore) = restore(path, previous) {
                return Err(FileError::ReloadNotRestored {
                    path: path.to_path_buf(),
                    error,
                    restore,
                });
            }
            let _ = run_action(reload, timeout).await;
            return Err(FileError::Reload {
                path: path.to_path_buf(),
                error,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_host_port_and_path() {
        assert_eq!(
            split_url("http://127.0.0.1:9090/-/reload"),
            Some(("127.0.0.1".into(), 9090, "/-/reload".into()))
        );
        assert_eq!(
            split_url("http://localhost"),
            Some(("localhost".into(), 80, "/".into()))
        );
        assert_eq!(split_url("https://x"), None);
    }

    #[tokio::test]
    async fn a_failing_check_puts_the_previous_file_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("site.conf");
        std::fs::write(&path, "old\n").unwrap();
        let check = Action::Command(vec!["false".into()]);
        let err = install(&path, "new\n", Some("old\n"), Some(&check), None, None)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("check failed, previous file restored"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old\n");
        let ok = Action::Command(vec!["true".into()]);
        install(&path, "new\n", Some("old\n"), Some(&ok), Some(&ok), None)
            .await
            .unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
    }
}
