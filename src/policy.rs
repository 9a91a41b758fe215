//! What this host's operator allows converge to touch: the directories rendered files may be
//! written to and the secrets a desired state may reference. Read from a configuration file on
//! the host (never from Git), so a pull request cannot widen it.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use thiserror::Error;

use crate::load::de::{from_node, Sink};
use crate::load::yaml::parse_documents;
use crate::model::{DesiredState, Resource};

/// The variable that names the host configuration file.
pub const CONFIG_VAR: &str = "CONVERGE_CONFIG";
/// Extra directories files may be written to, `:`-separated (added to the configured ones).
pub const ALLOW_WRITE_VAR: &str = "CONVERGE_ALLOW_WRITE";

/// Variables a desired state may not read unless the operator lists them: converge's own
/// credentials and the cloud keys it runs with.
const DEFAULT_DENIED_ENV: &[&str] = &[
    "CONVERGE_WEBHOOK_SECRET",
    "CONVERGE_GIT_TOKEN",
    "CONVERGE_GIT_PASSWORD",
    "CONVERGE_GIT_SSH_KEY_PASSPHRASE",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
];

#[derive(Debug, Error)]
pub enum PolicyError {
    #[error("cannot read the host configuration {path}: {source}\n  = hint: {CONFIG_VAR} names it; unset it to use the defaults")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{location}: {message}\n  = hint: the host configuration takes `files: {{write: [DIR, ...]}}` and `secrets: {{files: [DIR, ...], env: [PREFIX, ...]}}`")]
    Invalid { location: String, message: String },
    #[error("{path} is outside the directories this host lets converge write to or mount ({allowed})\n  = hint: {}", config_hint("files.write"))]
    WriteOutside { path: String, allowed: String },
    #[error("{path} is not a plain absolute path (`.`, `..`, empty or non-UTF-8 components)")]
    NotPlain { path: String },
    #[error(
        "secret `${{env:{name}}}` is not allowed on this host\n  = hint: {}",
        config_hint("secrets.env")
    )]
    SecretEnv { name: String },
    #[error("secret `${{file:{path}}}` is outside the directories this host allows secrets to be read from ({allowed})\n  = hint: {}", config_hint("secrets.files"))]
    SecretFile { path: String, allowed: String },
}

fn config_hint(key: &str) -> String {
    format!(
        "the host's operator lists it under `{key}` in {} (or the file {CONFIG_VAR} names); the desired state cannot change this",
        default_config_path().display()
    )
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostConfig {
    #[serde(default)]
    files: FilesConfig,
    #[serde(default)]
    secrets: SecretsConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilesConfig {
    write: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretsConfig {
    files: Option<Vec<String>>,
    env: Option<Vec<String>>,
}

/// The operator's limits, with defaults for what the configuration leaves out.
#[derive(Debug, Clone)]
pub struct HostPolicy {
    state_dir: PathBuf,
    /// `None`: the defaults (see [`HostPolicy::write_dirs`]).
    write: Option<Vec<PathBuf>>,
    extra_write: Vec<PathBuf>,
    secret_files: Option<Vec<PathBuf>>,
    secret_env: Option<Vec<String>>,
}

impl HostPolicy {
    /// The defaults alone (no configuration file, no variables).
    pub fn defaults(state_dir: &Path) -> HostPolicy {
        HostPolicy {
            state_dir: state_dir.to_path_buf(),
            write: None,
            extra_write: Vec::new(),
            secret_files: None,
            secret_env: None,
        }
    }

    /// Reads the file `CONVERGE_CONFIG` names (which must exist), else the default path when it
    /// exists, and adds `CONVERGE_ALLOW_WRITE`.
    pub fn load(state_dir: &Path) -> Result<HostPolicy, PolicyError> {
        let mut policy = HostPolicy::defaults(state_dir);
        let (path, required) = match std::env::var_os(CONFIG_VAR) {
            Some(p) if !p.is_empty() => (PathBuf::from(p), true),
            _ => (default_config_path(), false),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => policy.apply(parse_config(&path, &text)?),
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(PolicyError::Read { path, source }),
        }
        if let Some(extra) = std::env::var_os(ALLOW_WRITE_VAR) {
            policy.extra_write = std::env::split_paths(&extra)
                .filter(|p| p.is_absolute())
                .collect();
        }
        Ok(policy)
    }

    fn apply(&mut self, config: HostConfig) {
        let dirs = |v: Vec<String>| v.into_iter().map(PathBuf::from).collect();
        self.write = config.files.write.map(dirs);
        self.secret_files = config.secrets.files.map(dirs);
        self.secret_env = config.secrets.env;
    }

    /// Where converge may write files and which host directories a desired state may mount or
    /// back up: the configured directories, or by default the state directory, the usual homes of
    /// nginx, Prometheus, Alertmanager and Grafana, `/opt/<project>`, `/srv/<project>`,
    /// `/var/backups/<project>` and the temporary directory.
    pub fn write_dirs(&self, project: &str) -> Vec<PathBuf> {
        let mut dirs = self.write.clone().unwrap_or_else(|| {
            let mut d: Vec<PathBuf> = [
                "/etc/nginx",
                "/etc/prometheus",
                "/etc/alertmanager",
                "/etc/grafana",
                "/var/lib/grafana",
            ]
            .iter()
            .map(PathBuf::from)
            .collect();
            d.push(Path::new("/opt").join(project));
            d.push(Path::new("/srv").join(project));
            d.push(Path::new("/var/backups").join(project));
            d.push(std::env::temp_dir());
            d.push(self.state_dir.clone());
            d
        });
        dirs.extend(self.extra_write.iter().cloned());
        dirs
    }

    /// `path` resolved through the links of its existing directories, when it falls under a
    /// directory converge may write to.
    pub fn check_write(&self, project: &str, path: &str) -> Result<PathBuf, PolicyError> {
        let resolved = resolve_dir_of(path)?;
        let dirs = self.write_dirs(project);
        if dirs.iter().any(|d| resolved.starts_with(canonical(d))) {
            return Ok(resolved);
        }
        Err(PolicyError::WriteOutside {
            path: path.to_string(),
            allowed: list(&dirs),
        })
    }

    /// `dir` resolved through every link, when it falls under a directory converge may use.
    pub fn check_dir(&self, project: &str, dir: &str) -> Result<PathBuf, PolicyError> {
        let resolved = resolve(dir.trim_end_matches('/'))?;
        let dirs = self.write_dirs(project);
        if dirs.iter().any(|d| resolved.starts_with(canonical(d))) {
            return Ok(resolved);
        }
        Err(PolicyError::WriteOutside {
            path: dir.to_string(),
            allowed: list(&dirs),
        })
    }

    /// Every host path `desired` names that this host does not allow, one line each (`id
    /// field: why`): rendered files, bind-mounted directories, backed-up directories and local
    /// backup destinations.
    pub fn refused_paths(&self, desired: &DesiredState) -> Vec<String> {
        let project = desired.project.name.as_str();
        let mut refused = Vec::new();
        let mut check = |id: String, field: &str, r: Result<PathBuf, PolicyError>| {
            if let Err(e) = r {
                refused.push(format!("{id} {field}: {e}"));
            }
        };
        for r in desired.resources.values() {
            let id = r.id().to_string();
            match r {
                Resource::Router(x) => check(id, "path", self.check_write(project, &x.path)),
                Resource::ConfigFile(x) => check(id, "path", self.check_write(project, &x.path)),
                Resource::Service(s) => {
                    for (i, v) in s.volumes.iter().enumerate() {
                        if v.source.starts_with('/') {
                            let field = format!("volumes[{i}].source");
                            check(id.clone(), &field, self.check_dir(project, &v.source));
                        }
                    }
                }
                Resource::Backup(b) => {
                    if let Some(dir) = &b.source.files {
                        check(id.clone(), "source.files", self.check_dir(project, dir));
                    }
                    for (i, d) in b.destinations.iter().enumerate() {
                        if let Some(dir) = d.url.strip_prefix("file://") {
                            let field = format!("destinations[{i}].url");
                            check(id.clone(), &field, self.check_dir(project, dir));
                        }
                    }
                }
                _ => {}
            }
        }
        refused
    }

    /// Whether a desired state may read the variable `name`.
    pub fn check_secret_env(&self, name: &str) -> Result<(), PolicyError> {
        let allowed = match &self.secret_env {
            Some(prefixes) => prefixes.iter().any(|p| name.starts_with(p.as_str())),
            None => !DEFAULT_DENIED_ENV.contains(&name),
        };
        if allowed {
            Ok(())
        } else {
            Err(PolicyError::SecretEnv { name: name.into() })
        }
    }

    /// Directories `${file:…}` may read from: the configured ones, or by default `/run/secrets`,
    /// `/etc/converge/secrets`, systemd's `$CREDENTIALS_DIRECTORY` and the temporary directory.
    /// The state directory (the digest key, the journal) never.
    pub fn secret_dirs(&self) -> Vec<PathBuf> {
        self.secret_files.clone().unwrap_or_else(|| {
            let mut d = vec![
                PathBuf::from("/run/secrets"),
                PathBuf::from("/etc/converge/secrets"),
                std::env::temp_dir(),
            ];
            if let Some(creds) = std::env::var_os("CREDENTIALS_DIRECTORY") {
                d.push(PathBuf::from(creds));
            }
            d
        })
    }

    /// `path` resolved through every link, when a secret may be read from it.
    pub fn check_secret_file(&self, path: &str) -> Result<PathBuf, PolicyError> {
        let refused = || PolicyError::SecretFile {
            path: path.to_string(),
            allowed: list(&self.secret_dirs()),
        };
        let resolved = resolve(path)?;
        if resolved.starts_with(canonical(&self.state_dir)) {
            return Err(refused());
        }
        if self
            .secret_dirs()
            .iter()
            .any(|d| resolved.starts_with(canonical(d)))
        {
            Ok(resolved)
        } else {
            Err(refused())
        }
    }
}

/// `/etc/converge/config.yaml` as root, else `$XDG_CONFIG_HOME/converge/config.yaml`.
pub fn default_config_path() -> PathBuf {
    crate::state_dir::per_user("/etc/converge", "XDG_CONFIG_HOME", ".config").join("config.yaml")
}

fn parse_config(path: &Path, text: &str) -> Result<HostConfig, PolicyError> {
    let file: Arc<str> = Arc::from(path.display().to_string());
    let invalid = |location: String, message: String| PolicyError::Invalid { location, message };
    let docs = parse_documents(&file, text).map_err(|e| invalid(e.span.to_string(), e.message))?;
    let Some(Some(node)) = docs.into_iter().next() else {
        return Ok(HostConfig::default());
    };
    let sink = Sink::default();
    let config: HostConfig = from_node(&node, &sink).map_err(|e| {
        let span = e.span.clone().unwrap_or_else(|| node.span.clone());
        invalid(span.to_string(), e.message)
    })?;
    if let Some(d) = sink.into_inner().into_iter().next() {
        let location = d.span.map(|s| s.to_string()).unwrap_or_default();
        return Err(invalid(location, d.message));
    }
    for dir in config
        .files
        .write
        .iter()
        .chain(config.secrets.files.iter())
        .flatten()
    {
        if !Path::new(dir).is_absolute() {
            return Err(invalid(
                path.display().to_string(),
                format!("`{dir}` is not an absolute directory"),
            ));
        }
    }
    Ok(config)
}

/// An absolute path with no `.`/`..` components, its existing part resolved through links.
fn resolve(path: &str) -> Result<PathBuf, PolicyError> {
    check_plain(path)?;
    let p = Path::new(path);
    // The longest existing ancestor, resolved; the rest appended as written.
    let mut existing = p.to_path_buf();
    let mut rest = Vec::new();
    loop {
        if let Ok(c) = existing.canonicalize() {
            let mut out = c;
            out.extend(rest.iter().rev());
            return Ok(out);
        }
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name.to_os_string());
                existing = parent.to_path_buf();
            }
            _ => return Ok(p.to_path_buf()),
        }
    }
}

/// `path` with its directory resolved through links and its last component as written (a
/// link there is refused when the file is read or written, never followed).
fn resolve_dir_of(path: &str) -> Result<PathBuf, PolicyError> {
    check_plain(path)?;
    let p = Path::new(path);
    match (p.parent(), p.file_name()) {
        (Some(parent), Some(name)) if parent != Path::new("") => {
            Ok(resolve(&parent.to_string_lossy())?.join(name))
        }
        _ => Err(PolicyError::NotPlain { path: path.into() }),
    }
}

/// An absolute path with no `.`, `..` or empty components and no NUL.
fn check_plain(path: &str) -> Result<(), PolicyError> {
    let p = Path::new(path);
    let plain = p.is_absolute()
        && !path.contains('\0')
        && p.components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
        && !path
            .split('/')
            .skip(1)
            .any(|s| s.is_empty() || s == "." || s == "..");
    if plain {
        Ok(())
    } else {
        Err(PolicyError::NotPlain { path: path.into() })
    }
}

/// A directory resolved through links when it exists, else as written.
fn canonical(dir: &Path) -> PathBuf {
    resolve(&dir.to_string_lossy()).unwrap_or_else(|_| dir.to_path_buf())
}

/// Refusals one per line, their shared hint once at the end.
pub fn one_hint(refused: Vec<String>) -> String {
    let mut hint = None;
    let lines: Vec<String> = refused
        .into_iter()
        .map(|e| match e.split_once("\n  = hint: ") {
            Some((line, h)) => {
                hint.get_or_insert_with(|| h.to_string());
                line.to_string()
            }
            None => e,
        })
        .collect();
    let mut out = lines.join("\n  ");
    if let Some(h) = hint {
        out.push_str(&format!("\n  = hint: {h}"));
    }
    out
}

fn list(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(config: &str, state: &Path) -> HostPolicy {
        let mut p = HostPolicy::defaults(state);
        p.apply(parse_config(Path::new("config.yaml"), config).unwrap());
        p
    }

    #[test]
    fn files_go_only_under_the_allowed_directories() {
        let dir = tempfile::tempdir().unwrap();
        let allowed = dir.path().join("www");
        std::fs::create_dir(&allowed).unwrap();
        let p = policy(
            &format!("files: {{write: [{}]}}", allowed.display()),
            &dir.path().join("state"),
        );
        let inside = allowed.join("conf.d/site.conf");
        assert!(p.check_write("x", inside.to_str().unwrap()).is_ok());
        let e = p
            .check_write("x", "/etc/cron.d/evil")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(
                "/etc/cron.d/evil is outside the directories this host lets converge write to"
            ),
            "{e}"
        );
        assert!(p
            .check_write("x", &format!("{}/../evil", allowed.display()))
            .is_err());
    }

    #[test]
    fn a_link_out_of_an_allowed_directory_is_followed_and_refused() {
        let dir = tempfile::tempdir().unwrap();
        let allowed = dir.path().join("www");
        std::fs::create_dir(&allowed).unwrap();
        let outside = tempfile::tempdir_in("/var/tmp").unwrap();
        std::os::unix::fs::symlink(outside.path(), allowed.join("out")).unwrap();
        let p = policy(
            &format!("files: {{write: [{}]}}", allowed.display()),
            &dir.path().join("state"),
        );
        let through = allowed.join("out/site.conf");
        assert!(matches!(
            p.check_write("x", through.to_str().unwrap()),
            Err(PolicyError::WriteOutside { .. })
        ));
    }

    #[test]
    fn the_default_env_policy_refuses_converges_own_credentials_only() {
        let p = HostPolicy::defaults(Path::new("/var/lib/converge"));
        assert!(p.check_secret_env("DATABASE_URL").is_ok());
        let e = p
            .check_secret_env("CONVERGE_WEBHOOK_SECRET")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("secret `${env:CONVERGE_WEBHOOK_SECRET}` is not allowed on this host"),
            "{e}"
        );
        let listed = policy("secrets: {env: [PG_, BACKUP_KEY]}", Path::new("/s"));
        assert!(listed.check_secret_env("PG_APP_PASSWORD").is_ok());
        assert!(listed.check_secret_env("BACKUP_KEY").is_ok());
        assert!(listed.check_secret_env("DATABASE_URL").is_err());
    }

    #[test]
    fn secret_files_never_come_from_the_state_directory() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        std::fs::write(state.join("digest.key"), [0u8; 32]).unwrap();
        std::fs::write(dir.path().join("pw"), "x").unwrap();
        let p = policy(
            &format!("secrets: {{files: [{}]}}", dir.path().display()),
            &state,
        );
        assert!(p
            .check_secret_file(dir.path().join("pw").to_str().unwrap())
            .is_ok());
        let key = state.join("digest.key");
        assert!(matches!(
            p.check_secret_file(key.to_str().unwrap()),
            Err(PolicyError::SecretFile { .. })
        ));
        assert!(p.check_secret_file("/etc/shadow").is_err());
    }

    #[test]
    fn a_bad_host_configuration_names_the_line_and_the_field() {
        let e = parse_config(
            Path::new("/etc/converge/config.yaml"),
            "files:\n  wirte: [/etc]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("/etc/converge/config.yaml:2:3: unknown field `wirte`"),
            "{e}"
        );
    }
}
