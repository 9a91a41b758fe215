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

#[derive(Debug, Clone)]
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

    pub fn describe(&self) -> String {
        match self {
            Source::Git {
                url, branch, path, ..
            } => match path {
                Some(p) => format!("{url} ({branch}, {p})"),
                None => format!("{url} ({branch})"),
            },
            Source::Dir { path } => path.display().to_string(),
        }
    }

    /// Fetches (git) or reads (directory) the current revision. Blocking: call from a blocking task.
    pub fn fetch(&self) -> Result<Revision, SourceError> {
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
                        std::fs::create_dir_all(cache)
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
                remote.fetch(&[&refspec], Some(&mut opts), None)?;
                let commit = repo
                    .find_reference(&format!("refs/remotes/origin/{branch}"))
                    .map_err(|_| SourceError::Git(format!("branch `{branch}` not found at {url}")))?
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
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(err)?;
        }
        std::fs::write(&path, content).map_err(err)?;
    }
    std::fs::create_dir_all(dir).map_err(err)
}
