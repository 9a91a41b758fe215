//! Where the agent reads the desired state: a git remote (fetched with git2, read straight from
//! the commit's tree, no checkout; with `--verify-signatures`, only commits signed by an allowed
//! key) or a local directory (watched with notify).

use std::path::{Path, PathBuf};

use git2::{FetchOptions, Repository};
use sha2::{Digest, Sha256};

use super::git_attempt::Attempt;
use super::git_auth::GitAuth;
pub use super::redact::redact_url;
use super::redact::{scrub, scrub_secrets};
pub use super::source_error::SourceError;
use crate::load::allowed_signers::AllowedSigners;
use crate::load::git::{tree_of, CommitSignature};
use crate::load::signature::{self, SignatureError};
use crate::load::SourceTree;
use crate::model::attributes::hex;

/// One version of the desired state.
#[derive(Debug, Clone)]
pub struct Revision {
    /// A commit id, or `dir-<digest>` for a directory.
    pub id: String,
    pub tree: SourceTree,
    /// A directory holding these files (build contexts are read from it).
    pub root: PathBuf,
    /// With `--verify-signatures`: who signed it, `principal (SHA256:...)`.
    pub signed_by: Option<String>,
}

/// What a fetch found: a revision to validate, or a commit refused for its signature (its files
/// are not read, nor written to the working copy).
#[derive(Debug, Clone)]
pub enum Fetched {
    Revision(Revision),
    Refused { id: String, error: SignatureError },
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
        auth: Box<GitAuth>,
        /// `--verify-signatures`: the allowed-signers file, read at every fetch.
        signers: Option<PathBuf>,
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
            auth: Box::default(),
            signers: None,
        }
    }

    /// The credentials and known_hosts of a git source (a directory has none).
    pub fn with_auth(mut self, with: GitAuth) -> Source {
        if let Source::Git { auth, .. } = &mut self {
            **auth = with;
        }
        self
    }

    /// Only commits signed by a key in this allowed-signers file are accepted.
    pub fn with_signers(mut self, file: Option<PathBuf>) -> Source {
        if let Source::Git { signers, .. } = &mut self {
            *signers = file;
        }
        self
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
    /// No credential is in an error.
    pub fn fetch(&self) -> Result<Fetched, SourceError> {
        match self {
            Source::Dir { path } => {
                let tree = SourceTree::read_dir(path)?;
                Ok(Fetched::Revision(Revision {
                    id: format!("dir-{}", tree.digest()),
                    tree,
                    root: path.clone(),
                    signed_by: None,
                }))
            }
            Source::Git { url, auth, .. } => self.fetch_git().map_err(|e| {
                let secrets = auth.secrets();
                e.scrubbed(|m| scrub_secrets(&scrub(m, url), &secrets))
            }),
        }
    }

    fn fetch_git(&self) -> Result<Fetched, SourceError> {
        let Source::Git {
            url,
            branch,
            path,
            cache,
            work,
            auth,
            signers,
        } = self
        else {
            unreachable!("fetch_git is called for git sources")
        };
        let signers = signers.as_deref().map(AllowedSigners::read).transpose()?;
        let repo = open_cache(cache)?;
        let commit = repo.find_commit(fetch_branch(&repo, url, branch, auth)?)?;
        let id = commit.id().to_string();
        let signed_by = match &signers {
            Some(allowed) => {
                let sig = CommitSignature::of(&repo, &commit)?;
                match signature::verify(&sig.as_signed(), allowed) {
                    Ok(v) => Some(format!("{} ({})", v.principals.join(", "), v.fingerprint)),
                    Err(error) => return Ok(Fetched::Refused { id, error }),
                }
            }
            None => None,
        };
        let files = tree_of(&repo, &commit, path.as_deref())?;
        materialize(&files, work)?;
        Ok(Fetched::Revision(Revision {
            id,
            tree: files,
            root: work.clone(),
            signed_by,
        }))
    }
}

/// The bare repository fetched into, made on first use.
fn open_cache(cache: &Path) -> Result<Repository, SourceError> {
    match Repository::open_bare(cache) {
        Ok(r) => Ok(r),
        Err(_) => {
            crate::state_dir::ensure(cache).map_err(|e| SourceError::Git(e.to_string()))?;
            Ok(Repository::init_bare(cache)?)
        }
    }
}

/// Fetches `branch` from `url` into `repo`; its commit.
fn fetch_branch(
    repo: &Repository,
    url: &str,
    branch: &str,
    auth: &GitAuth,
) -> Result<git2::Oid, SourceError> {
    let attempt = Attempt::new(auth, url)?;
    let mut remote = repo.remote_anonymous(url)?;
    let mut opts = FetchOptions::new();
    opts.remote_callbacks(attempt.callbacks());
    let refspec = format!("+refs/heads/{branch}:refs/remotes/origin/{branch}");
    remote
        .fetch(&[&refspec], Some(&mut opts), None)
        .map_err(|e| attempt.failure(e))?;
    let wanted = format!("refs/heads/{branch}");
    let heads: Vec<String> = remote
        .list()
        .map(|l| l.iter().map(|h| h.name().to_string()).collect())
        .unwrap_or_default();
    let missing = || {
        let mut available: Vec<&str> = heads
            .iter()
            .filter_map(|h| h.strip_prefix("refs/heads/"))
            .take(10)
            .collect();
        available.sort();
        SourceError::BranchMissing {
            url: redact_url(url),
            branch: branch.to_string(),
            available: if available.is_empty() {
                String::new()
            } else {
                format!("; it has: {}", available.join(", "))
            },
        }
    };
    if !heads.is_empty() && !heads.contains(&wanted) {
        return Err(missing());
    }
    let reference = repo
        .find_reference(&format!("refs/remotes/origin/{branch}"))
        .map_err(|_| missing())?;
    Ok(reference.peel_to_commit()?.id())
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Source({})", self.describe())
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
    fn a_source_shows_its_url_without_credentials() {
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
}
