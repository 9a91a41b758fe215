//! Secret references (`${env:NAME}`, `${file:PATH}`) resolved when applying, and the keyed digest
//! that shows a rotated secret as a change without ever writing the secret down.

use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use thiserror::Error;

use crate::model::attributes::{hex, ReferenceDigest};
use crate::model::types::{Piece, SecretString};
use crate::model::{DesiredState, Resource, SecretDigest};

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
    #[error("cannot create the digest key in {path}: {source}")]
    Key {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Resolves references and digests values with a key kept in the state directory.
pub struct Secrets {
    key: Vec<u8>,
}

impl Secrets {
    /// Reads `<state_dir>/digest.key`, creating it (random, mode 0600) on first use.
    pub fn load_or_create(state_dir: &Path) -> Result<Secrets, SecretError> {
        let path = state_dir.join("digest.key");
        let err = |source| SecretError::Key {
            path: path.clone(),
            source,
        };
        if let Ok(key) = std::fs::read(&path) {
            if key.len() == 32 {
                return Ok(Secrets { key });
            }
        }
        std::fs::create_dir_all(state_dir).map_err(err)?;
        let mut key = vec![0u8; 32];
        getrandom::fill(&mut key).map_err(|e| err(std::io::Error::other(e.to_string())))?;
        write_private(&path, &key).map_err(err)?;
        Ok(Secrets { key })
    }

    /// The value with every reference replaced.
    pub fn resolve(&self, value: &SecretString) -> Result<String, SecretError> {
        let mut out = String::new();
        for piece in value.pieces() {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Env(name) => out.push_str(
                    &std::env::var(name).map_err(|_| SecretError::MissingEnv(name.clone()))?,
                ),
                Piece::File(path) => {
                    let text =
                        std::fs::read_to_string(path).map_err(|source| SecretError::File {
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
        problems
    }
}

impl SecretDigest for Secrets {
    /// HMAC-SHA256 of the resolved value; an unresolvable value digests its reference instead
    /// (`check` reports it before anything is applied).
    fn digest(&self, value: &SecretString) -> String {
        match self.resolve(value) {
            Ok(resolved) => {
                let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
                mac.update(resolved.as_bytes());
                hex(&mac.finalize().into_bytes()[..8])
            }
            Err(_) => ReferenceDigest.digest(value),
        }
    }
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
    fn a_rotated_secret_changes_the_digest_and_the_digest_hides_it() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = Secrets::load_or_create(dir.path()).unwrap();
        let file = dir.path().join("pw");
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
