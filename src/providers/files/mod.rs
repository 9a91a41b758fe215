//! The files provider: routers and config files rendered to disk, written atomically (temporary
//! file + rename), checked, reloaded; a failed check or reload puts the previous file back
//! before anything else happens.

mod error;
mod provider;

use std::path::Path;

pub use error::FileError;
pub use provider::FilesProvider;

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

/// Runs a check or reload action: a command (exit 0) or an HTTP request (2xx/3xx).
pub async fn run_action(action: &Action) -> Result<(), FileError> {
    match action {
        Action::Command(argv) => {
            let out = tokio::process::Command::new(&argv[0])
                .args(&argv[1..])
                .stdin(std::process::Stdio::null())
                .output()
                .await
                .map_err(|error| FileError::Spawn {
                    argv: argv.clone(),
                    error,
                })?;
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
            let (host, port, path) = split_url(&http.url).ok_or_else(|| FileError::Url {
                url: http.url.clone(),
            })?;
            let status =
                crate::providers::health::http_request(&host, port, &http.method, &path).await?;
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

/// Writes `content` to `path` atomically: a crash leaves the old file or the new one, never half.
pub fn write_atomic(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension("converge-tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(content.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Puts `previous` back (or removes the file when there was none).
pub fn restore(path: &Path, previous: Option<&str>) -> std::io::Result<()> {
    match previous {
        Some(text) => write_atomic(path, text),
        None => match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
    }
}

/// Writes, checks and reloads; on failure the previous file is back (and reloaded) before returning.
pub async fn install(
    path: &Path,
    content: &str,
    check: Option<&Action>,
    reload: Option<&Action>,
) -> Result<Option<String>, FileError> {
    let previous = std::fs::read_to_string(path).ok();
    write_atomic(path, content).map_err(|error| FileError::Write {
        path: path.to_path_buf(),
        error,
    })?;
    if let Some(check) = check {
        if let Err(e) = run_action(check).await {
            let error = Box::new(e);
            return Err(match restore(path, previous.as_deref()) {
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
        if let Err(e) = run_action(reload).await {
            let error = Box::new(e);
            if let Err(restore) = restore(path, previous.as_deref()) {
                return Err(FileError::ReloadNotRestored {
                    path: path.to_path_buf(),
                    error,
                    restore,
                });
            }
            let _ = run_action(reload).await;
            return Err(FileError::Reload {
                path: path.to_path_buf(),
                error,
            });
        }
    }
    Ok(previous)
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
        let err = install(&path, "new\n", Some(&check), None)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("check failed, previous file restored"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old\n");
        let ok = Action::Command(vec!["true".into()]);
        assert_eq!(
            install(&path, "new\n", Some(&ok), Some(&ok))
                .await
                .unwrap()
                .as_deref(),
            Some("old\n")
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
    }
}
