//! Why the agent could not read its source, one variant per thing to do about it: the remote is
//! unreachable, refused the credentials, lacks the branch, or presented a host key that
//! known_hosts does not trust; a credential file cannot be read. No message holds a secret.

use std::path::PathBuf;

use thiserror::Error;

use crate::load::allowed_signers::AllowedSignersError;
use crate::load::git::GitError;

#[derive(Debug, Error)]
pub enum SourceError {
    #[error("cannot reach {url}: {message}\n  = hint: check the URL, and that the git server is up and reachable from this host (DNS, firewall, proxy); the agent retries with backoff")]
    Unreachable { url: String, message: String },
    #[error("authentication refused by {url}: {tried}\n  = hint: {hint}")]
    AuthRefused {
        url: String,
        tried: String,
        hint: String,
    },
    #[error("branch `{branch}` not found at {url}{available}\n  = hint: check --branch (and that the credentials may see it)")]
    BranchMissing {
        url: String,
        branch: String,
        /// `; it has: main, release` or nothing.
        available: String,
    },
    #[error("the SSH host key of {host} ({key}) is not in {known_hosts}{other_types}\n  = hint: check the fingerprint with the git host's published ones, then add it: `{scan} >> {known_hosts}` (or --known-hosts FILE)")]
    HostKeyUnknown {
        host: String,
        /// `ssh-ed25519 SHA256:...`
        key: String,
        /// `ssh-keyscan -p 2222 host`
        scan: String,
        known_hosts: PathBuf,
        /// `; it lists that host with ssh-rsa only` or nothing.
        other_types: String,
    },
    #[error("the SSH host key of {host} changed: it presented {key}, {known_hosts} expects {expected}\n  = hint: if the git host rotated its key, check the new fingerprint with it and replace the line in {known_hosts}; otherwise someone may be intercepting the connection: do not trust it")]
    HostKeyChanged {
        host: String,
        key: String,
        expected: String,
        known_hosts: PathBuf,
    },
    #[error("the SSH host key of {host} ({fingerprint}) is marked @revoked in {known_hosts}\n  = hint: the git host must present another key; do not remove the @revoked line to get around this")]
    HostKeyRevoked {
        host: String,
        fingerprint: String,
        known_hosts: PathBuf,
    },
    #[error("cannot read {what} {path}: {source}\n  = hint: the file must exist and be readable by the agent's user (e.g. mode 0600, owned by it)")]
    CredentialFile {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    AllowedSigners(#[from] AllowedSignersError),
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

impl SourceError {
    /// The same error with `scrub` applied to every text that came from git.
    pub fn scrubbed(self, scrub: impl Fn(&str) -> String) -> SourceError {
        match self {
            SourceError::Git(m) => SourceError::Git(scrub(&m)),
            SourceError::Unreachable { url, message } => SourceError::Unreachable {
                url: scrub(&url),
                message: scrub(&message),
            },
            e => e,
        }
    }

    /// A short name for the metric's `reason` label.
    pub fn reason(&self) -> &'static str {
        match self {
            SourceError::Unreachable { .. } => "unreachable",
            SourceError::AuthRefused { .. } => "auth-refused",
            SourceError::BranchMissing { .. } => "branch-missing",
            SourceError::HostKeyUnknown { .. } => "host-key-unknown",
            SourceError::HostKeyChanged { .. } | SourceError::HostKeyRevoked { .. } => {
                "host-key-changed"
            }
            SourceError::CredentialFile { .. } | SourceError::AllowedSigners(_) => "config",
            SourceError::Git(_) | SourceError::Dir(_) | SourceError::Materialize { .. } => "other",
        }
    }
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

/// Whether a failed fetch never reached the server (connection refused, name not resolved,
/// timed out, no route).
pub fn is_unreachable(e: &git2::Error) -> bool {
    let message = e.message().to_ascii_lowercase();
    let network = matches!(
        e.class(),
        git2::ErrorClass::Net
            | git2::ErrorClass::Os
            | git2::ErrorClass::Ssh
            | git2::ErrorClass::Http
    );
    network
        && [
            "failed to connect",
            "connection refused",
            "could not connect",
            "failed to resolve",
            "timed out",
            "no route to host",
            "network is unreachable",
            "failed to start ssh session",
            "failed getting banner",
        ]
        .iter()
        .any(|m| message.contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_source_failure_ends_with_a_hint() {
        let errors = [
            SourceError::Unreachable {
                url: "ssh://git@h/r.git".into(),
                message: "failed to connect".into(),
            },
            SourceError::AuthRefused {
                url: "ssh://git@h/r.git".into(),
                tried: "it did not accept the SSH key /k".into(),
                hint: "add it as a deploy key".into(),
            },
            SourceError::BranchMissing {
                url: "u".into(),
                branch: "prod".into(),
                available: "; it has: main".into(),
            },
            SourceError::HostKeyChanged {
                host: "h".into(),
                key: "ssh-ed25519 SHA256:new".into(),
                expected: "SHA256:old".into(),
                known_hosts: "/k".into(),
            },
        ];
        for e in errors {
            let text = e.to_string();
            assert!(text.contains("\n  = hint: "), "{text}");
        }
    }

    #[test]
    fn scrubbing_reaches_git_s_messages() {
        let e = SourceError::Unreachable {
            url: "https://h/r.git".into(),
            message: "sent s3cret".into(),
        }
        .scrubbed(|m| m.replace("s3cret", "***"));
        assert_eq!(
            e.to_string().lines().next().unwrap(),
            "cannot reach https://h/r.git: sent ***"
        );
    }
}
