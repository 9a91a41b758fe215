//! One fetch from a git remote: git2's callbacks (credentials from [`GitAuth`], the SSH host key
//! checked against known_hosts) and, when the fetch fails, which [`SourceError`] it was.

use std::cell::{Cell, RefCell};

use git2::{CertificateCheckStatus, Cred, CredentialType, RemoteCallbacks};

use super::git_auth::GitAuth;
use super::known_hosts::{fingerprint, key_type, HostKeyCheck, KnownHosts};
use super::redact::{is_http, redact_url};
use super::source_error::{is_unreachable, SourceError};

pub struct Attempt<'a> {
    auth: &'a GitAuth,
    url: &'a str,
    known_hosts: KnownHosts,
    password: Option<String>,
    passphrase: Option<String>,
    /// The credential types git2 asked for: asked again means the server refused them.
    asked: RefCell<Vec<CredentialType>>,
    refused: Cell<bool>,
    host_key: RefCell<Option<SourceError>>,
}

impl<'a> Attempt<'a> {
    /// Reads the credential files and known_hosts now.
    pub fn new(auth: &'a GitAuth, url: &'a str) -> Result<Attempt<'a>, SourceError> {
        let http = is_http(url);
        let ssh = !http && !url.starts_with("file://") && !url.starts_with('/');
        let known_hosts_path = auth.known_hosts_path();
        let known_hosts = if ssh {
            KnownHosts::read(&known_hosts_path).map_err(|source| SourceError::CredentialFile {
                what: "known_hosts",
                path: known_hosts_path,
                source,
            })?
        } else {
            KnownHosts::parse("", &known_hosts_path)
        };
        if ssh {
            auth.check_key()?;
        }
        Ok(Attempt {
            auth,
            url,
            known_hosts,
            password: if http { auth.password()? } else { None },
            passphrase: if ssh { auth.passphrase()? } else { None },
            asked: RefCell::new(Vec::new()),
            refused: Cell::new(false),
            host_key: RefCell::new(None),
        })
    }

    pub fn callbacks(&'a self) -> RemoteCallbacks<'a> {
        let mut callbacks = RemoteCallbacks::new();
        callbacks.credentials(|_url, user, allowed| self.credential(user, allowed));
        callbacks.certificate_check(|cert, host| {
            let Some(hostkey) = cert.as_hostkey() else {
                // TLS: libgit2 checks the certificate against the system's CAs.
                return Ok(CertificateCheckStatus::CertificatePassthrough);
            };
            let Some(key) = hostkey.hostkey() else {
                return Err(self.refuse_host(SourceError::Git(format!(
                    "{host} presented no readable SSH host key"
                ))));
            };
            match self.host_key_error(host, key) {
                None => Ok(CertificateCheckStatus::CertificateOk),
                Some(e) => Err(self.refuse_host(e)),
            }
        });
        callbacks
    }

    fn credential(&self, user: Option<&str>, allowed: CredentialType) -> Result<Cred, git2::Error> {
        let kind = [
            CredentialType::SSH_KEY,
            CredentialType::USER_PASS_PLAINTEXT,
            CredentialType::USERNAME,
        ]
        .into_iter()
        .find(|k| allowed.contains(*k))
        .unwrap_or(CredentialType::DEFAULT);
        if self.asked.borrow().contains(&kind) {
            self.refused.set(true);
            return Err(git2::Error::from_str("the server refused the credentials"));
        }
        self.asked.borrow_mut().push(kind);
        let ssh_user = user.unwrap_or("git");
        match kind {
            CredentialType::SSH_KEY => match &self.auth.ssh_key {
                Some(key) => Cred::ssh_key(ssh_user, None, key, self.passphrase.as_deref()),
                None => Cred::ssh_key_from_agent(ssh_user),
            },
            CredentialType::USER_PASS_PLAINTEXT => match &self.password {
                Some(p) => Cred::userpass_plaintext(&self.auth.http_user(user), p),
                None => {
                    self.refused.set(true);
                    Err(git2::Error::from_str("the server wants credentials"))
                }
            },
            CredentialType::USERNAME => Cred::username(ssh_user),
            _ => Cred::default(),
        }
    }

    fn refuse_host(&self, e: SourceError) -> git2::Error {
        *self.host_key.borrow_mut() = Some(e);
        git2::Error::from_str("the SSH host key is not trusted")
    }

    /// `None` when known_hosts trusts `key` for `host`.
    fn host_key_error(&self, host: &str, key: &[u8]) -> Option<SourceError> {
        let port = ssh_port(self.url);
        let shown = super::known_hosts::lookup_name(host, port);
        let known_hosts = self.known_hosts.path.clone();
        let fp = fingerprint(key);
        match self.known_hosts.check(host, port, key) {
            HostKeyCheck::Trusted => None,
            HostKeyCheck::Unknown { other_types } => Some(SourceError::HostKeyUnknown {
                host: shown,
                key: format!("{} {fp}", key_type(key)),
                scan: match port {
                    22 => format!("ssh-keyscan {host}"),
                    _ => format!("ssh-keyscan -p {port} {host}"),
                },
                known_hosts,
                other_types: if other_types.is_empty() {
                    String::new()
                } else {
                    format!("; it lists that host with {} only", other_types.join(", "))
                },
            }),
            HostKeyCheck::Changed { expected } => Some(SourceError::HostKeyChanged {
                host: shown,
                key: format!("{} {fp}", key_type(key)),
                expected: expected.join(" or "),
                known_hosts,
            }),
            HostKeyCheck::Revoked => Some(SourceError::HostKeyRevoked {
                host: shown,
                fingerprint: fp,
                known_hosts,
            }),
        }
    }

    /// Which failure a failed fetch was.
    pub fn failure(&self, e: git2::Error) -> SourceError {
        if let Some(host_key) = self.host_key.borrow_mut().take() {
            return host_key;
        }
        let url = redact_url(self.url);
        let http = is_http(self.url);
        let message = e.message().to_string();
        if self.refused.get() || refused_by_server(&e) {
            let from_url = super::redact::url_user(self.url);
            let tried = if http {
                self.auth.http_offer(from_url.as_deref(), url != self.url)
            } else {
                self.auth.ssh_offer()
            };
            return SourceError::AuthRefused {
                url,
                tried,
                hint: self.auth.refused_hint(http).to_string(),
            };
        }
        if message.contains("private key") {
            return SourceError::Git(format!(
                "cannot use the SSH key {}: {message}\n  = hint: check that --ssh-key-passphrase-file holds this key's passphrase and that the key is an OpenSSH or PEM private key",
                self.auth.ssh_key.as_deref().map(|p| p.display().to_string()).unwrap_or_default()
            ));
        }
        if is_unreachable(&e) {
            return SourceError::Unreachable { url, message };
        }
        SourceError::Git(format!(
            "cannot fetch from {url}: {message}\n  = hint: check the --source URL and that the git server is reachable"
        ))
    }
}

/// An authentication failure git2 reports without asking for credentials again.
fn refused_by_server(e: &git2::Error) -> bool {
    let m = e.message();
    e.code() == git2::ErrorCode::Auth
        || (e.class() == git2::ErrorClass::Http && (m.contains(" 401") || m.contains(" 403")))
        || m.contains("authentication required")
        || (e.class() == git2::ErrorClass::Ssh && m.to_ascii_lowercase().contains("agent"))
}

/// The port of an SSH URL: `ssh://user@host:2222/path` → 2222; `user@host:path` → 22.
pub fn ssh_port(url: &str) -> u16 {
    let Some(rest) = url.strip_prefix("ssh://") else {
        return 22;
    };
    let authority = rest.split('/').next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    let port = match host.strip_prefix('[') {
        Some(v6) => v6.split_once("]:").map(|(_, p)| p),
        None => host.rsplit_once(':').map(|(_, p)| p),
    };
    port.and_then(|p| p.parse().ok()).unwrap_or(22)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_ports_come_from_the_url() {
        assert_eq!(ssh_port("ssh://git@127.0.0.1:2222/srv/r.git"), 2222);
        assert_eq!(ssh_port("ssh://git@github.com/o/r.git"), 22);
        assert_eq!(ssh_port("git@github.com:o/r.git"), 22);
        assert_eq!(ssh_port("ssh://[::1]:2200/r.git"), 2200);
        assert_eq!(ssh_port("ssh://host/r.git"), 22);
    }
}
