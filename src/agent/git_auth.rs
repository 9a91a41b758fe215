//! How the agent authenticates to a git remote: an SSH deploy key file (with an optional
//! passphrase file) or ssh-agent, and for HTTPS a token or password from the environment or a
//! file; plus the known_hosts file SSH host keys are checked against. Secrets are handed to git2
//! only: never put in a URL, a message or `Debug`.

use std::path::{Path, PathBuf};

use super::source_error::SourceError;

/// The user name sent with a token when none is set: GitHub, GitLab and Gitea accept any.
pub const TOKEN_USER: &str = "x-access-token";

/// Where the HTTPS token (or password) comes from.
#[derive(Clone)]
pub enum Token {
    /// `CONVERGE_GIT_TOKEN`.
    Value(String),
    /// `CONVERGE_GIT_TOKEN_FILE` / `--git-token-file`: read at every fetch, so it can be rotated.
    File(PathBuf),
}

#[derive(Clone, Default)]
pub struct GitAuth {
    /// `--ssh-key`: a private key file; ssh-agent's keys when `None`.
    pub ssh_key: Option<PathBuf>,
    pub ssh_key_passphrase_file: Option<PathBuf>,
    /// `--known-hosts`; `~/.ssh/known_hosts` when `None`.
    pub known_hosts: Option<PathBuf>,
    pub token: Option<Token>,
    /// `CONVERGE_GIT_USERNAME`: sent with the token; the URL's user or [`TOKEN_USER`] when `None`.
    pub username: Option<String>,
}

impl std::fmt::Debug for GitAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitAuth")
            .field("ssh_key", &self.ssh_key)
            .field("known_hosts", &self.known_hosts_path())
            .field("token", &self.token.as_ref().map(Token::origin))
            .field("username", &self.username)
            .finish()
    }
}

impl Token {
    /// Where it comes from, for messages: never its value.
    pub fn origin(&self) -> String {
        match self {
            Token::Value(_) => "CONVERGE_GIT_TOKEN".into(),
            Token::File(p) => format!("the file {}", p.display()),
        }
    }
}

/// `CONVERGE_GIT_TOKEN` and `CONVERGE_GIT_TOKEN_FILE` both set.
#[derive(Debug, thiserror::Error)]
#[error("both CONVERGE_GIT_TOKEN and a token file (--git-token-file / CONVERGE_GIT_TOKEN_FILE) are set\n  = hint: keep one: the file is better, it never shows in the process's environment")]
pub struct TwoTokens;

impl GitAuth {
    /// From the command line and the environment; an empty `CONVERGE_GIT_TOKEN` is none.
    pub fn from_settings(
        ssh_key: Option<PathBuf>,
        ssh_key_passphrase_file: Option<PathBuf>,
        known_hosts: Option<PathBuf>,
        token_file: Option<PathBuf>,
        token: Option<String>,
        username: Option<String>,
    ) -> Result<GitAuth, TwoTokens> {
        let token = match (token_file, token.filter(|t| !t.is_empty())) {
            (Some(_), Some(_)) => return Err(TwoTokens),
            (Some(f), None) => Some(Token::File(f)),
            (None, Some(t)) => Some(Token::Value(t)),
            (None, None) => None,
        };
        Ok(GitAuth {
            ssh_key,
            ssh_key_passphrase_file,
            known_hosts,
            token,
            username: username.filter(|u| !u.is_empty()),
        })
    }

    /// Fails at startup, naming the file, when a key, passphrase or token file cannot be read.
    pub fn check_files(&self) -> Result<(), SourceError> {
        self.check_key()?;
        self.passphrase()?;
        self.password()?;
        Ok(())
    }

    pub fn known_hosts_path(&self) -> PathBuf {
        self.known_hosts.clone().unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
            Path::new(&home).join(".ssh").join("known_hosts")
        })
    }

    /// The token or password, read now (a file is read at every fetch).
    pub fn password(&self) -> Result<Option<String>, SourceError> {
        match &self.token {
            None => Ok(None),
            Some(Token::Value(v)) => Ok(Some(v.clone())),
            Some(Token::File(p)) => read_secret("the git token file", p).map(Some),
        }
    }

    /// The SSH key's passphrase, read now.
    pub fn passphrase(&self) -> Result<Option<String>, SourceError> {
        self.ssh_key_passphrase_file
            .as_deref()
            .map(|p| read_secret("the SSH key's passphrase file", p))
            .transpose()
    }

    /// Fails early, with the path, when the key file cannot be read.
    pub fn check_key(&self) -> Result<(), SourceError> {
        match &self.ssh_key {
            Some(p) => {
                std::fs::File::open(p)
                    .map(drop)
                    .map_err(|source| SourceError::CredentialFile {
                        what: "the SSH key",
                        path: p.clone(),
                        source,
                    })
            }
            None => Ok(()),
        }
    }

    /// The user name sent with the token.
    pub fn http_user(&self, from_url: Option<&str>) -> String {
        self.username
            .clone()
            .or_else(|| from_url.map(str::to_string))
            .unwrap_or_else(|| TOKEN_USER.into())
    }

    /// What was offered to an SSH server, for "refused ...".
    pub fn ssh_offer(&self) -> String {
        match &self.ssh_key {
            Some(p) => format!("it did not accept the SSH key {}", p.display()),
            None if std::env::var_os("SSH_AUTH_SOCK").is_some() => {
                "it did not accept the keys of ssh-agent (SSH_AUTH_SOCK)".into()
            }
            None => "no key was offered: there is no --ssh-key and no ssh-agent (SSH_AUTH_SOCK is not set)".into(),
        }
    }

    /// What was offered to an HTTP server, for "refused ...".
    /// `in_url`: the `--source` URL carries credentials of its own (a password or token).
    pub fn http_offer(&self, from_url: Option<&str>, in_url: bool) -> String {
        match &self.token {
            Some(t) => format!(
                "it did not accept the token from {} (user {})",
                t.origin(),
                self.http_user(from_url)
            ),
            None if in_url => format!(
                "it did not accept the credentials in the --source URL (user {})",
                self.http_user(from_url)
            ),
            None => "it wants credentials, and no token is set".into(),
        }
    }

    /// What to do when the server refused.
    pub fn refused_hint(&self, http: bool) -> &'static str {
        match (http, &self.token, &self.ssh_key) {
            (true, None, _) => "give the agent a read-only token: CONVERGE_GIT_TOKEN_FILE=/etc/converge/git-token (or CONVERGE_GIT_TOKEN); CONVERGE_GIT_USERNAME sets the user name if the server needs one",
            (true, Some(_), _) => "check that the token is valid, not expired, and may read this repository; CONVERGE_GIT_USERNAME sets the user name if the server needs a particular one",
            (false, _, Some(_)) => "add the key's public half (`ssh-keygen -y -f KEY`) to the repository as a read-only deploy key, or point --ssh-key at the key that is",
            (false, _, None) => "give the agent a deploy key: --ssh-key /etc/converge/deploy_key (or CONVERGE_GIT_SSH_KEY)",
        }
    }

    /// Every secret value known now, to scrub from messages.
    pub fn secrets(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Ok(Some(p)) = self.password() {
            out.push(p);
        }
        if let Ok(Some(p)) = self.passphrase() {
            out.push(p);
        }
        out.retain(|s| s.len() >= 4);
        out
    }
}

/// A secret file's content without its trailing newline.
fn read_secret(what: &'static str, path: &Path) -> Result<String, SourceError> {
    let text = std::fs::read_to_string(path).map_err(|source| SourceError::CredentialFile {
        what,
        path: path.to_path_buf(),
        source,
    })?;
    Ok(text.trim_end_matches(['\n', '\r']).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_messages_never_show_the_token() {
        let auth = GitAuth {
            token: Some(Token::Value("ghp_s3cr3tvalue".into())),
            ..Default::default()
        };
        let shown = format!(
            "{auth:?} {} {}",
            auth.http_offer(None, false),
            auth.refused_hint(true)
        );
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(
            shown.contains("CONVERGE_GIT_TOKEN (user x-access-token)"),
            "{shown}"
        );
        assert_eq!(auth.secrets(), vec!["ghp_s3cr3tvalue".to_string()]);
    }

    #[test]
    fn a_token_file_is_read_without_its_newline_and_a_missing_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "tok3n\n").unwrap();
        let auth = GitAuth {
            token: Some(Token::File(path.clone())),
            username: Some("deploy".into()),
            ..Default::default()
        };
        assert_eq!(auth.password().unwrap().as_deref(), Some("tok3n"));
        assert_eq!(auth.http_user(Some("url-user")), "deploy");
        std::fs::remove_file(&path).unwrap();
        let e = auth.password().unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "cannot read the git token file {}",
                path.display()
            )),
            "{e}"
        );
    }
}
