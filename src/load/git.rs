//! Reading a desired state from a git revision: the files of a commit's tree, straight from git
//! objects (no checkout), and a commit's signature with what it signs. Used by the agent's git
//! source and by `plan --base/--head`.

use std::path::Path;

use git2::{Repository, TreeWalkMode, TreeWalkResult};
use thiserror::Error;

use super::signature::SignedCommit;
use super::SourceTree;

/// A git failure, with git's own message.
#[derive(Debug, Error)]
#[error("git: {0}")]
pub struct GitError(pub String);

impl From<git2::Error> for GitError {
    fn from(e: git2::Error) -> Self {
        GitError(e.message().to_string())
    }
}

/// The files under `path` (or the root) of `commit`, read from git objects: no checkout.
pub fn tree_of(
    repo: &Repository,
    commit: &git2::Commit,
    path: Option<&str>,
) -> Result<SourceTree, GitError> {
    let root_tree = commit.tree()?;
    let tree = match path {
        Some(p) => {
            let entry = root_tree
                .get_path(Path::new(p))
                .map_err(|_| GitError(format!("path `{p}` not found at {}", commit.id())))?;
            repo.find_tree(entry.id())?
        }
        None => root_tree,
    };
    let mut files = SourceTree::new(path.unwrap_or("."));
    let mut failure = None;
    tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
        let name = entry.name().unwrap_or("");
        let env_file = entry.kind() == Some(git2::ObjectType::Blob)
            && crate::load::source::is_env_file_name(name);
        if name.starts_with('.') && !env_file {
            return TreeWalkResult::Skip;
        }
        if entry.kind() == Some(git2::ObjectType::Blob) {
            match repo.find_blob(entry.id()) {
                Ok(blob) => {
                    files
                        .files
                        .insert(format!("{dir}{name}"), blob.content().to_vec());
                }
                Err(e) => failure = Some(e),
            }
        }
        TreeWalkResult::Ok
    })?;
    match failure {
        Some(e) => Err(e.into()),
        None => Ok(files),
    }
}

/// The desired-state directory `dir` as it was at `rev` (any revision git understands) in the
/// repository that contains `dir`; also returns the commit id.
pub fn at_revision(dir: &Path, rev: &str) -> Result<(String, SourceTree), GitError> {
    let repo = Repository::discover(dir)?;
    let workdir = repo
        .workdir()
        .ok_or_else(|| GitError("the repository has no working tree".into()))?
        .canonicalize()
        .map_err(|e| GitError(e.to_string()))?;
    let abs = dir
        .canonicalize()
        .map_err(|e| GitError(format!("{}: {e}", dir.display())))?;
    let rel = abs
        .strip_prefix(&workdir)
        .map_err(|_| GitError(format!("{} is not inside the repository", dir.display())))?
        .to_string_lossy()
        .to_string();
    let commit = repo
        .revparse_single(rev)
        .map_err(|e| GitError(format!("cannot resolve `{rev}`: {}", e.message())))?
        .peel_to_commit()?;
    let mut tree = tree_of(&repo, &commit, (!rel.is_empty()).then_some(rel.as_str()))?;
    tree.root = dir.display().to_string();
    Ok((commit.id().to_string(), tree))
}

/// A commit's `gpgsig` header and the commit object without it, as git stores them.
#[derive(Debug, Clone)]
pub struct CommitSignature {
    /// The first 12 characters of the commit id.
    pub short: String,
    pub signature: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    /// The committer's time, Unix seconds.
    pub time: i64,
}

impl CommitSignature {
    pub fn of(repo: &Repository, commit: &git2::Commit) -> Result<CommitSignature, GitError> {
        let id = commit.id();
        let (signature, payload) = match repo.extract_signature(&id, None) {
            Ok((sig, data)) => (Some(sig.to_vec()), data.to_vec()),
            Err(e) if e.code() == git2::ErrorCode::NotFound => (None, Vec::new()),
            Err(e) => return Err(e.into()),
        };
        Ok(CommitSignature {
            short: id.to_string()[..12].to_string(),
            signature,
            payload,
            time: commit.committer().when().seconds(),
        })
    }

    /// Bytes for [`super::signature::verify`].
    pub fn as_signed(&self) -> SignedCommit<'_> {
        SignedCommit {
            id: &self.short,
            signature: self.signature.as_deref(),
            payload: &self.payload,
            time: self.time,
        }
    }
}

/// The signature of `rev` in the repository that contains `dir`.
pub fn signature_at(dir: &Path, rev: &str) -> Result<CommitSignature, GitError> {
    let repo = Repository::discover(dir)?;
    let commit = repo
        .revparse_single(rev)
        .map_err(|e| GitError(format!("cannot resolve `{rev}`: {}", e.message())))?
        .peel_to_commit()?;
    CommitSignature::of(&repo, &commit)
}
