//! Registry credentials the way Docker users have them: `providers.docker.registries` first,
//! then `~/.docker/config.json` (`DOCKER_CONFIG` moves it): `credHelpers` for the host, then
//! `credsStore` (both run `docker-credential-<name> get`), then `auths`. Passwords and tokens
//! are kept only in memory and never printed: `Login`'s `Debug` hides them, and no error
//! carries one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;
use thiserror::Error;
use tokio::io::AsyncWriteExt;

use super::registry::DOCKER_HUB;

/// The key Docker writes Docker Hub's credentials under.
pub(super) const HUB_KEY: &str = "https://index.docker.io/v1/";

/// How long a credential helper may take.
const HELPER_TIMEOUT: Duration = Duration::from_secs(20);

/// A username and password (or token) for one registry, and where they came from.
#[derive(Clone, PartialEq, Eq)]
pub struct Login {
    pub username: String,
    pub password: String,
    /// `providers.docker.registries`, `docker-credential-pass`, `/root/.docker/config.json`.
    pub source: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("username", &self.username)
            .field("password", &"(hidden)")
            .field("source", &self.source)
            .finish()
    }
}

#[derive(Debug, Error)]
pub enum CredentialError {
    #[error("cannot read the Docker client configuration {path}: {message}\n  = hint: fix or remove it (`docker login` rewrites it); DOCKER_CONFIG names another directory")]
    Config { path: PathBuf, message: String },
    #[error("the credential helper docker-credential-{helper} failed for {host}: {message}\n  = hint: check that docker-credential-{helper} is on PATH and works (`echo {host} | docker-credential-{helper} get`), or log in again with `docker login {host}`")]
    Helper {
        helper: String,
        host: String,
        message: String,
    },
}

/// `~/.docker/config.json`, the parts converge reads.
#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// What a credential helper answers to `get`.
#[derive(Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

/// The Docker client's configuration directory: `DOCKER_CONFIG`, else `~/.docker`.
pub fn config_dir() -> Option<PathBuf> {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => std::env::var_os("HOME").map(|h| Path::new(&h).join(".docker")),
    }
}

/// The login `providers.docker.registries` gives for `host`, its password resolved.
pub fn configured(
    project: &crate::model::Project,
    secrets: &crate::secrets::Secrets,
    host: &str,
) -> Result<Option<Login>, crate::secrets::SecretError> {
    let Some(r) = project
        .providers
        .docker
        .iter()
        .flat_map(|d| &d.registries)
        .find(|r| key_host(&r.host) == host)
    else {
        return Ok(None);
    };
    Ok(Some(Login {
        username: r.username.clone(),
        password: secrets.resolve(&r.password)?,
        source: "providers.docker.registries".into(),
    }))
}

/// The login config.json gives for `host` (`None`: none, the pull is anonymous).
pub async fn from_docker_config(host: &str) -> Result<Option<Login>, CredentialError> {
    let Some(path) = config_dir().map(|d| d.join("config.json")) else {
        return Ok(None);
    };
    let Some(config) = read_config(&path)? else {
        return Ok(None);
    };
    if let Some(helper) = config.cred_helpers.get(host) {
        return run_helper(helper, host).await;
    }
    if let Some(helper) = &config.creds_store {
        if let Some(login) = run_helper(helper, host).await? {
            return Ok(Some(login));
        }
    }
    from_auths(&config.auths, host, &path)
}

fn read_config(path: &Path) -> Result<Option<ConfigFile>, CredentialError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(CredentialError::Config {
                path: path.into(),
                message: e.to_string(),
            })
        }
    };
    // serde_json's messages name a line and column, never the text around it.
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| CredentialError::Config {
            path: path.into(),
            message: e.to_string(),
        })
}

/// The `auths` entry for `host`: keys are hosts or URLs (`https://ghcr.io`, Docker Hub's
/// `https://index.docker.io/v1/`).
fn from_auths(
    auths: &BTreeMap<String, AuthEntry>,
    host: &str,
    path: &Path,
) -> Result<Option<Login>, CredentialError> {
    let Some(entry) = auths
        .iter()
        .find(|(key, _)| key_host(key) == host)
        .map(|(_, e)| e)
    else {
        return Ok(None);
    };
    let source = path.display().to_string();
    if let (Some(username), Some(password)) = (&entry.username, &entry.password) {
        return Ok(Some(Login {
            username: username.clone(),
            password: password.clone(),
            source,
        }));
    }
    let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) else {
        return Ok(None);
    };
    let bad = |what: &str| CredentialError::Config {
        path: path.into(),
        message: format!("auths.\"{host}\".auth is not {what}"),
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .map_err(|_| bad("base64"))?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad("UTF-8 text"))?;
    let (username, password) = decoded
        .split_once(':')
        .ok_or_else(|| bad("user:password"))?;
    Ok(Some(Login {
        username: username.to_string(),
        password: password.to_string(),
        source,
    }))
}

/// The host an `auths` key names: `https://ghcr.io/v2/` → `ghcr.io`; Docker Hub's keys →
/// `docker.io`.
fn key_host(key: &str) -> &str {
    let rest = key.split_once("://").map_or(key, |(_, r)| r);
    let host = rest.split('/').next().unwrap_or(rest);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => DOCKER_HUB,
        h => h,
    }
}

/// Runs `docker-credential-<helper> get` with `host` on stdin. A helper that knows no
/// credentials for the host gives `None`.
async fn run_helper(helper: &str, host: &str) -> Result<Option<Login>, CredentialError> {
    let fail = |message: String| CredentialError::Helper {
        helper: helper.to_string(),
        host: host.to_string(),
        message,
    };
    let program = format!("docker-credential-{helper}");
    let mut child = tokio::process::Command::new(&program)
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| fail(format!("cannot run {program}: {e}")))?;
    let server = if host == DOCKER_HUB { HUB_KEY } else { host };
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(server.as_bytes())
            .await
            .map_err(|e| fail(format!("cannot write to it: {e}")))?;
    }
    let out = tokio::time::timeout(HELPER_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| fail(format!("no answer in {} s", HELPER_TIMEOUT.as_secs())))?
        .map_err(|e| fail(e.to_string()))?;
    answer(&out, helper, fail)
}

fn answer(
    out: &std::process::Output,
    helper: &str,
    fail: impl Fn(String) -> CredentialError,
) -> Result<Option<Login>, CredentialError> {
    let said = |bytes: &[u8]| String::from_utf8_lossy(bytes).trim().to_string();
    if !out.status.success() {
        let message = [said(&out.stdout), said(&out.stderr)].join(" ");
        if message
            .to_ascii_lowercase()
            .contains("credentials not found")
        {
            return Ok(None);
        }
        return Err(fail(format!("{}: {}", out.status, message.trim())));
    }
    // The answer holds the secret: an unreadable answer is reported without its text.
    let a: HelperAnswer = serde_json::from_slice(&out.stdout)
        .map_err(|_| fail("its answer is not the JSON {\"Username\", \"Secret\"}".into()))?;
    Ok(Some(Login {
        username: a.username,
        password: a.secret,
        source: format!("docker-credential-{helper}"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auths(json: &str) -> BTreeMap<String, AuthEntry> {
        serde_json::from_str::<ConfigFile>(json).unwrap().auths
    }

    #[test]
    fn auths_give_the_base64_login_of_the_host() {
        let a = auths(r#"{"auths": {"https://ghcr.io": {"auth": "Ym90OnMzY3JldA=="}}}"#);
        let login = from_auths(&a, "ghcr.io", Path::new("c.json"))
            .unwrap()
            .unwrap();
        assert_eq!(
            (login.username.as_str(), login.password.as_str()),
            ("bot", "s3cret")
        );
        assert!(from_auths(&a, "docker.io", Path::new("c.json"))
            .unwrap()
            .is_none());
    }

    #[test]
    fn auths_take_username_and_password_fields_and_hub_urls() {
        let a = auths(
            r#"{"auths": {"https://index.docker.io/v1/": {"username": "u", "password": "p"}}}"#,
        );
        let login = from_auths(&a, DOCKER_HUB, Path::new("c.json"))
            .unwrap()
            .unwrap();
        assert_eq!(
            (login.username.as_str(), login.password.as_str()),
            ("u", "p")
        );
    }

    #[test]
    fn a_damaged_auth_is_an_error_that_shows_no_secret() {
        let a = auths(r#"{"auths": {"127.0.0.1:5055": {"auth": "bm9jb2xvbg=="}}}"#);
        let e = from_auths(&a, "127.0.0.1:5055", Path::new("c.json")).unwrap_err();
        assert!(e.to_string().contains("is not user:password"), "{e}");
        assert!(!e.to_string().contains("nocolon"), "{e}");
    }

    #[test]
    fn a_login_never_shows_its_password() {
        let login = Login {
            username: "bot".into(),
            password: "s3cret".into(),
            source: "here".into(),
        };
        assert!(!format!("{login:?}").contains("s3cret"));
    }
}
