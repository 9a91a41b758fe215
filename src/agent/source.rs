//! Where the agent reads the desired state: a git remote (fetched with git2, read straight from
//! the commit's tree, no checkout) or a local directory (watched with notify).

use std::path::{Path, PathBuf};

use git2::{FetchOptions, RemoteCallbacks, Repository};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::load::git::{tree_of, GitError};
use crate::load::SourceTree;
use crate::model::attributes::hex;

#[derive(Debug, Error)]
pub enum SourceError {
    #[error("git: {0}")]
    Git(String),
    #[error(transparent)]
    Dir(#[from] crate::load::SourceError),
    #[error("cannot write the working copy {path}: {source}")]
    Materialize {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl From<GitError> for SourceError {
    fn from(e: GitError) -> Self {
        SourceError::Git(e.0)
    }
}

impl From<git2::Error> for SourceError {
    fn from(e: git2::Error) -> Self {
        SourceError::Git(e.message().to_string())
    }
}

/// One version of the desired state.
#[derive(Debug, Clone)]
pub struct Revision {
    /// A commit id, or `dir-<digest>` for a directory.
    pub id: String,
    pub tree: SourceTree,
    /// A directory holding these files (build contexts are read from it).
    pub root: PathBuf,
}

impl Revision {
    pub fn short(&self) -> &str {
        &self.id[..self.id.len().min(12)]
    }
}

/// `Debug` shows the URL without its credentials (see [`redact_url`]).
#[derive(Clone)]
pub enum Source {
    Git {
        url: String,
        branch: String,
        path: Option<String>,
        /// A bare repository under the state directory, fetched into.
        cache: PathBuf,
        work: PathBuf,
    },
    Dir {
        path: PathBuf,
    },
}

impl Source {
    /// A directory that exists is a directory source; anything else is a git URL or path.
    pub fn new(spec: &str, branch: &str, path: Option<&str>, state_dir: &Path) -> Source {
        let p = Path::new(spec);
        let is_repo = p.join(".git").exists()
            || p.join("HEAD").exists()
            || spec.contains("://")
            || spec.contains('@');
        if p.is_dir() && !is_repo {
            let dir = match path {
                Some(sub) => p.join(sub),
                None => p.to_path_buf(),
            };
            return Source::Dir { path: dir };
        }
        let key = hex(&Sha256::digest(spec.as_bytes())[..8]);
        Source::Git {
            url: spec.to_string(),
            branch: branch.to_string(),
            path: path
                .map(|s| s.trim_matches('/').to_string())
                .filter(|s| !s.is_empty()),
            cache: state_dir.join("sources").join(format!("{key}.git")),
            work: state_dir.join("sources").join(format!("{key}.work")),
        }
    }

    /// What `/status` and the log show: the URL without its credentials.
    pub fn describe(&self) -> String {
        match self {
            Source::Git {
                url, branch, path, ..
            } => {
                let url = redact_url(url);
                match path {
                    Some(p) => format!("{url} ({branch}, {p})"),
                    None => format!("{url} ({branch})"),
                }
            }
            Source::Dir { path } => path.display().to_string(),
        }
    }

    /// Fetches (git) or reads (directory) the current revision. Blocking: call from a blocking task.
    /// No credential of the URL is in an error.
    pub fn fetch(&self) -> Result<Revision, SourceError> {
        self.fetch_inner().map_err(|e| match (self, e) {
            (Source::Git { url, .. }, SourceError::Git(message)) => {
                SourceError::Git(scrub(&message, url))
            }
            (_, e) => e,
        })
    }

    fn fetch_inner(&self) -> Result<Revision, SourceError> {
        match self {
            Source::Dir { path } => {
                let tree = SourceTree::read_dir(path)?;
                Ok(Revision {
                    id: format!("dir-{}", tree.digest()),
                    tree,
                    root: path.clone(),
                })
            }
            Source::Git {
                url,
                branch,
                path,
                cache,
                work,
            } => {
                let repo = match Repository::open_bare(cache) {
                    Ok(r) => r,
                    Err(_) => {
                        crate::state_dir::ensure(cache)
                            .map_err(|e| SourceError::Git(e.to_string()))?;
                        Repository::init_bare(cache)?
                    }
                };
                let mut remote = repo.remote_anonymous(url)?;
                let mut callbacks = RemoteCallbacks::new();
                callbacks.credentials(|_url, user, allowed| {
                    if allowed.contains(git2::CredentialType::SSH_KEY) {
                        git2::Cred::ssh_key_from_agent(user.unwrap_or("git"))
                    } else {
                        git2::Cred::default()
                    }
                });
                let mut opts = FetchOptions::new();
                opts.remote_callbacks(callbacks);
                let refspec = format!("+refs/heads/{branch}:refs/remotes/origin/{branch}");
                remote
                    .fetch(&[&refspec], Some(&mut opts), None)
                    .map_err(|e| {
                        let hint = match e.code() {
                            git2::ErrorCode::Auth => "check the credentials: the token in the --source URL, or the SSH agent's keys",
                            _ => "check the --source URL and that the git server is reachable",
                        };
                        SourceError::Git(format!(
                            "cannot fetch from {}: {}\n  = hint: {hint}",
                            redact_url(url),
                            e.message()
                        ))
                    })?;
                let commit = repo
                    .find_reference(&format!("refs/remotes/origin/{branch}"))
                    .map_err(|_| {
                        SourceError::Git(format!(
                            "branch `{branch}` not found at {}\n  = hint: check --branch",
                            redact_url(url)
                        ))
                    })?
                    .peel_to_commit()?;
                let files = tree_of(&repo, &commit, path.as_deref())?;
                let id = commit.id().to_string();
                materialize(&files, work)?;
                Ok(Revision {
                    id,
                    tree: files,
                    root: work.clone(),
                })
            }
        }
    }
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Source({})", self.describe())
    }
}

/// The URL with its credentials replaced by `***`: `https://user:token@host/r.git` shows as
/// `https://user:***@host/r.git`, and `https://token@host/r.git` (a lone user name over HTTP is
/// usually a token) as `https://***@host/r.git`. The user of `ssh://git@host/r.git` and of
/// `git@host:r.git` is no secret and stays.
pub fn redact_url(url: &str) -> String {
    let Some((user, password, at)) = userinfo(url) else {
        return url.to_string();
    };
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let shown = match password {
        Some(_) => format!("{user}:***"),
        None if is_http(url) => "***".to_string(),
        None => return url.to_string(),
    };
    format!("{}{shown}{}", &url[..scheme_end], &url[at..])
}

/// The user, the password and the index of the `@` of a `scheme://user[:password]@host/…` URL.
fn userinfo(url: &str) -> Option<(&str, Option<&str>, usize)> {
    let start = url.find("://")? + 3;
    let authority_end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    let at = start + url[start..authority_end].rfind('@')?;
    let info = &url[start..at];
    Some(match info.split_once(':') {
        Some((user, password)) => (user, Some(password), at),
        None => (info, None, at),
    })
}

fn is_http(url: &str) -> bool {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// `message` without the URL's credentials: the URL itself and its secret part (raw and
/// percent-decoded) are replaced.
fn scrub(message: &str, url: &str) -> String {
    let mut out = message.replace(url, &redact_url(url));
    let secret = match userinfo(url) {
        Some((_, Some(password), _)) => password,
        Some((user, None, _)) if is_http(url) => user,
        _ => return out,
    };
    for s in [secret.to_string(), percent_decode(secret)] {
        if !s.is_empty() {
            out = out.replace(&s, "***");
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Writes the files to `dir` (replacing what was there), for build contexts.
fn materialize(tree: &SourceTree, dir: &Path) -> Result<(), SourceError> {
    let err = |source| SourceError::Materialize {
        path: dir.to_path_buf(),
        source,
    };
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(err)?;
    }
    for (rel, content) in &tree.files {
        // A tree's paths are plain (git refuses `..`); a crafted one still never leaves `dir`.
        let plain = std::path::Path::new(rel)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !plain {
            return Err(err(std::io::Error::other(format!(
                "the revision holds a path that leaves its directory: {rel}"
            ))));
        }
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(err)?;
        }
        std::fs::write(&path, content).map_err(err)?;
    }
    std::fs::create_dir_all(dir).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_source_urls_are_hidden() {
        for (url, shown) in [
            (
                "https://alice:t0ken@git.example.com/infra.git",
                "https://alice:***@git.example.com/infra.git",
            ),
            (
                "https://ghp_abc123@github.com/o/r.git",
                "https://***@github.com/o/r.git",
            ),
            (
                "HTTP://x:p%40ss@h:8080/r.git?x=@y",
                "HTTP://x:***@h:8080/r.git?x=@y",
            ),
            (
                "ssh://git@github.com/o/r.git",
                "ssh://git@github.com/o/r.git",
            ),
            (
                "ssh://git:pw@github.com/o/r.git",
                "ssh://git:***@github.com/o/r.git",
            ),
            ("git@github.com:o/r.git", "git@github.com:o/r.git"),
            ("file:///srv/r.git", "file:///srv/r.git"),
            (
                "https://github.com/o/r@main.git",
                "https://github.com/o/r@main.git",
            ),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
        let dir = tempfile::tempdir().unwrap();
        let s = Source::new(
            "https://alice:t0ken@git.example.com/infra.git",
            "main",
            Some("deploy"),
            dir.path(),
        );
        assert_eq!(
            s.describe(),
            "https://alice:***@git.example.com/infra.git (main, deploy)"
        );
        assert!(!format!("{s:?}").contains("t0ken"));
    }

    #[test]
    fn errors_lose_the_url_s_secret_raw_and_decoded() {
        let url = "https://bob:p%40ss@h/r.git";
        let m = scrub(
            "failed for https://bob:p%40ss@h/r.git with p@ss and p%40ss",
            url,
        );
        assert_eq!(m, "failed for https://bob:***@h/r.git with *** and ***");
    }
}
