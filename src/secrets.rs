//! Secret references (`${env:NAME}`, `${file:PATH}`) resolved when applying, and the keyed digest
//! that shows a rotated secret as a change without ever writing the secret down.

use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use thiserror::Error;

use crate::model::attributes::{hex, ReferenceDigest};
use crate::model::types::{Piece, SecretString};
use crate::model::{DesiredState, Resource, SecretDigest};
use crate::policy::{HostPolicy, PolicyError};

#[derive(Debug, Error)]
pub enum SecretError {
    #[error("secret `${{env:{0}}}` is not set\n  = hint: export {0} in the environment converge runs in")]
    MissingEnv(String),
    #[error("cannot read secret file `{path}`: {source}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    NotAllowed(#[from] PolicyError),
    /// (The I/O error is a field, not a `#[source]`: the message already includes it.)
    #[error("cannot create the digest key in {path}: {error}")]
    Key {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(
        "the digest key {path} is damaged: it has {len} bytes, a key has 32\n  = hint: {KEY_HINT}"
    )]
    KeyDamaged { path: PathBuf, len: usize },
    #[error(
        "cannot read the digest key {path}: {error}\n  = hint: fix its permissions, or {KEY_HINT}"
    )]
    KeyUnreadable {
        path: PathBuf,
        error: std::io::Error,
    },
}

const KEY_HINT: &str = "restore it from a backup of the state directory; or delete it deliberately to accept that every service with a secret is replaced (a new key changes every secret's digest)";

/// Resolves references and digests values with a key kept in the state directory.
pub struct Secrets {
    key: Vec<u8>,
    /// Which references this host allows (read from the host's configuration, not from Git).
    policy: HostPolicy,
    /// Database names replaced in every resolved value (a drill's scratch copies): `(from, to)`.
    renamed_databases: Vec<(String, String)>,
}

impl Secrets {
    /// Reads `<state_dir>/digest.key`, creating it (random, mode 0600) only when it is missing.
    /// A key that cannot be read or is not 32 bytes is an error, never replaced: a new key
    /// changes every secret's digest, and so replaces every service that has a secret.
    pub fn load_or_create(state_dir: &Path) -> Result<Secrets, SecretError> {
        let path = state_dir.join("digest.key");
        let err = |error| SecretError::Key {
            path: path.clone(),
            error,
        };
        // Twice at most: when another process creates the key first, its key is read.
        for _ in 0..2 {
            match std::fs::read(&path) {
                Ok(key) if key.len() == 32 => return Secrets::with(key, state_dir),
                Ok(key) => {
                    return Err(SecretError::KeyDamaged {
                        len: key.len(),
                        path,
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(SecretError::KeyUnreadable { path, error }),
            }
            crate::state_dir::ensure(state_dir).map_err(err)?;
            let mut key = vec![0u8; 32];
            let mut tag = [0u8; 8];
            for bytes in [&mut key[..], &mut tag[..]] {
                getrandom::fill(bytes).map_err(|e| err(std::io::Error::other(e.to_string())))?;
            }
            // Written aside, then linked into place: nobody reads a half-written key, and a key
            // another process created meanwhile is never replaced.
            let tmp = state_dir.join(format!(".digest.key.{}.tmp", hex(&tag)));
            let linked = write_private(&tmp, &key).and_then(|()| std::fs::hard_link(&tmp, &path));
            let _ = std::fs::remove_file(&tmp);
            match linked {
                Ok(()) => {
                    if let Ok(dir) = std::fs::File::open(state_dir) {
                        let _ = dir.sync_all();
                    }
                    return Secrets::with(key, state_dir);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(err(e)),
            }
        }
        Err(err(std::io::Error::other(
            "it appeared and vanished while being created",
        )))
    }

    fn with(key: Vec<u8>, state_dir: &Path) -> Result<Secrets, SecretError> {
        Ok(Secrets {
            key,
            policy: HostPolicy::load(state_dir)?,
            renamed_databases: Vec::new(),
        })
    }

    /// What the host's operator allows (files converge writes, secrets it reads).
    pub fn policy(&self) -> &HostPolicy {
        &self.policy
    }

    /// From now on, a resolved value that names database `from` (a connection URL's path, a
    /// `dbname=` keyword, or the whole value) names `to` instead: a drill's services reach the
    /// scratch copies, never the real databases.
    pub fn rename_databases(&mut self, renames: Vec<(String, String)>) {
        self.renamed_databases = renames;
    }

    /// The value with every reference replaced (and the renamed databases renamed).
    pub fn resolve(&self, value: &SecretString) -> Result<String, SecretError> {
        let resolved = self.resolve_references(value)?;
        Ok(self
            .renamed_databases
            .iter()
            .fold(resolved, |v, (from, to)| rename_database(&v, from, to)))
    }

    fn resolve_references(&self, value: &SecretString) -> Result<String, SecretError> {
        let mut out = String::new();
        for piece in value.pieces() {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Env(name) => {
                    self.policy.check_secret_env(name)?;
                    out.push_str(
                        &std::env::var(name).map_err(|_| SecretError::MissingEnv(name.clone()))?,
                    )
                }
                Piece::File(path) => {
                    let resolved = self.policy.check_secret_file(path)?;
                    let text =
                        std::fs::read_to_string(resolved).map_err(|source| SecretError::File {
                            path: path.into(),
                            source,
                        })?;
                    out.push_str(text.trim_end_matches(['\n', '\r']));
                }
            }
        }
        Ok(out)
    }

    /// Every reference the services of `desired` need, resolved once to find the missing ones.
    pub fn check(&self, desired: &DesiredState) -> Vec<String> {
        let mut problems = Vec::new();
        for r in desired.resources.values() {
            if let Resource::Service(s) = r {
                for (k, v) in &s.env {
                    if let Err(e) = self.resolve(v) {
                        problems.push(format!("service/{} env.{k}: {e}", s.name));
                    }
                }
            }
            if let (Resource::Database(db), Some(_)) = (r, &desired.project.providers.postgres) {
                for role in &db.roles {
                    if let Some(Err(e)) = role.password.as_ref().map(|p| self.resolve(p)) {
                        problems.push(format!(
                            "database/{} roles.{}.password: {e}",
                            db.name, role.name
                        ));
                    }
                }
            }
        }
        if let Some(Some(Err(e))) = desired
            .project
            .providers
            .s3
            .as_ref()
            .map(|p| p.endpoint.as_ref().map(|e| self.resolve(e)))
        {
            problems.push(format!("providers.s3.endpoint: {e}"));
        }
        if let Some(Err(e)) = desired
            .project
            .providers
            .postgres
            .as_ref()
            .map(|p| self.resolve(&p.url))
        {
            problems.push(format!("providers.postgres.url: {e}"));
        }
        for r in desired
            .project
            .providers
            .docker
            .iter()
            .flat_map(|d| &d.registries)
        {
            if let Err(e) = self.resolve(&r.password) {
                problems.push(format!(
                    "providers.docker.registries ({}) password: {e}",
                    r.host
                ));
            }
        }
        problems
    }
}

impl SecretDigest for Secrets {
    /// HMAC-SHA256 of the resolved value; an unresolvable value digests its reference instead
    /// (`check` reports it before anything is applied).
    fn digest(&self, value: &SecretString) -> String {
        match self.resolve(value) {
            Ok(resolved) => self.digest_value(&resolved),
            Err(_) => ReferenceDigest.digest(value),
        }
    }
}

impl Secrets {
    /// The keyed digest of a value as a live system holds it (a container's environment), to
    /// compare with the desired one on this machine whatever machine applied it.
    pub fn digest_value(&self, value: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(value.as_bytes());
        hex(&mac.finalize().into_bytes()[..8])
    }
}

/// `value` with database `from` renamed `to` where it names it: the whole value, the path of a
/// URL (`postgres://u@h:5432/from?sslmode=…`), or a `dbname=from` keyword.
pub fn rename_database(value: &str, from: &str, to: &str) -> String {
    if value == from {
        return to.to_string();
    }
    let mut out = value.to_string();
    if let Some(scheme_end) = out.find("://") {
        let after = scheme_end + 3;
        if let Some(slash) = out[after..].find('/').map(|i| after + i) {
            let end = out[slash + 1..]
                .find(['?', '#'])
                .map_or(out.len(), |i| slash + 1 + i);
            if &out[slash + 1..end] == from {
                out.replace_range(slash + 1..end, to);
            }
        }
    }
    let keyword = format!("dbname={from}");
    if let Some(i) = out.find(&keyword) {
        let end = i + keyword.len();
        let at_word_start = i == 0 || out[..i].ends_with(char::is_whitespace);
        let at_word_end = out[end..].chars().next().is_none_or(char::is_whitespace);
        if at_word_start && at_word_end {
            out.replace_range(i..end, &format!("dbname={to}"));
        }
    }
    out
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_renamed_database_is_renamed_in_urls_keywords_and_whole_values_only() {
        let r = |v: &str| rename_database(v, "app", "app_drill_1");
        assert_eq!(
            r("postgres://u:p@db:5432/app?sslmode=disable"),
            "postgres://u:p@db:5432/app_drill_1?sslmode=disable"
        );
        assert_eq!(r("postgresql://u@db/app"), "postgresql://u@db/app_drill_1");
        assert_eq!(
            r("host=db dbname=app user=u"),
            "host=db dbname=app_drill_1 user=u"
        );
        assert_eq!(r("app"), "app_drill_1");
        // Other databases, other words and hosts named like the database stay as they are.
        for same in [
            "postgres://u@db/application",
            "postgres://app@app/other",
            "dbname=apps",
            "myapp",
            "https://example.com/x/app",
        ] {
            assert_eq!(r(same), same);
        }
    }

    #[test]
    fn a_rotated_secret_changes_the_digest_and_the_digest_hides_it() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = Secrets::load_or_create(dir.path()).unwrap();
        let files = tempfile::tempdir().unwrap();
        let file = files.path().join("pw");
        std::fs::write(&file, "hunter2\n").unwrap();
        let v = SecretString::try_from(format!("postgres://app:${{file:{}}}@db", file.display()))
            .unwrap();
        assert_eq!(secrets.resolve(&v).unwrap(), "postgres://app:hunter2@db");
        let before = secrets.digest(&v);
        assert!(!before.contains("hunter2"));
        std::fs::write(&file, "rotated").unwrap();
        assert_ne!(secrets.digest(&v), before);
        let again = Secrets::load_or_create(dir.path()).unwrap();
        assert_eq!(again.digest(&v), secrets.digest(&v), "the key persists");
    }

    #[test]
    fn a_damaged_or_unreadable_digest_key_is_an_error_and_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("digest.key");
        for damaged in [&b""[..], &[7u8; 31][..], &[7u8; 33][..]] {
            std::fs::write(&path, damaged).unwrap();
            let e = Secrets::load_or_create(dir.path())
                .err()
                .unwrap()
                .to_string();
            assert!(
                e.starts_with(&format!(
                    "the digest key {} is damaged: it has {} bytes, a key has 32",
                    path.display(),
                    damaged.len()
                )),
                "{e}"
            );
            assert!(e.contains("hint: restore it from a backup"), "{e}");
            assert!(e.contains("delete it deliberately"), "{e}");
            assert_eq!(std::fs::read(&path).unwrap(), damaged, "left as it was");
        }
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        let e = Secrets::load_or_create(dir.path())
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.starts_with(&format!("cannot read the digest key {}: ", path.display())),
            "{e}"
        );
        assert!(
            e.contains("hint: fix its permissions, or restore it"),
            "{e}"
        );
        assert!(path.is_dir(), "left as it was");
    }

    #[test]
    fn only_a_missing_key_is_created_once_even_by_racing_processes() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let keys: Vec<Vec<u8>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| Secrets::load_or_create(&state).unwrap().key))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(keys.iter().all(|k| k == &keys[0]), "one key for all");
        assert_eq!(std::fs::read(state.join("digest.key")).unwrap(), keys[0]);
        let mode = {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(state.join("digest.key"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode, 0o600);
        let names: Vec<_> = std::fs::read_dir(&state).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "no temporary file is left: {names:?}");
    }

    #[test]
    fn a_missing_variable_names_the_reference_not_a_value() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = Secrets::load_or_create(dir.path()).unwrap();
        let v = SecretString::try_from("${env:CONVERGE_TEST_SURELY_UNSET}".to_string()).unwrap();
        let e = secrets.resolve(&v).unwrap_err().to_string();
        assert!(
            e.starts_with("secret `${env:CONVERGE_TEST_SURELY_UNSET}` is not set"),
            "{e}"
        );
    }
}
