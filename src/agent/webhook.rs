//! What makes `POST /hooks/git` trustworthy besides its signature: the secret must be set and
//! non-empty, and each delivery is accepted once. A delivery is known by its `X-GitHub-Delivery`
//! id and by the SHA-256 of its body: the id header is not covered by the HMAC, so a captured
//! delivery replayed under a fresh id is still caught by its (signed) body. The last
//! [`CAPACITY`] deliveries are kept in `<state dir>/webhook-deliveries` (mode 0600), so a
//! restart does not reopen the replay window.

use std::collections::{HashSet, VecDeque};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::model::attributes::hex;

/// The environment variable holding the HMAC key of `POST /hooks/git`.
pub const SECRET_VAR: &str = "CONVERGE_WEBHOOK_SECRET";
/// How many deliveries are remembered (GitHub keeps deliveries redeliverable for 3 days).
pub const CAPACITY: usize = 10_000;
const FILE: &str = "webhook-deliveries";

#[derive(Debug, Error)]
pub enum WebhookError {
    #[error("{SECRET_VAR} is set but empty: the webhook would accept anything signed with an empty key\n  = hint: set it to the webhook's secret (e.g. `openssl rand -hex 32`, the same in the git host's webhook settings), or unset it to disable POST /hooks/git")]
    EmptySecret,
    #[error("cannot read the webhook deliveries already seen, {path}: {source}\n  = hint: fix its permissions, or delete it deliberately (deliveries seen before can then be replayed once)")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot record the webhook delivery in {path}: {source}\n  = hint: check that the state directory is writable and has space; the delivery can be redelivered")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// `CONVERGE_WEBHOOK_SECRET`: `None` when unset (the webhook is disabled), an error when empty.
pub fn secret_from_env() -> Result<Option<Vec<u8>>, WebhookError> {
    secret_from(std::env::var_os(SECRET_VAR))
}

fn secret_from(value: Option<std::ffi::OsString>) -> Result<Option<Vec<u8>>, WebhookError> {
    use std::os::unix::ffi::OsStringExt;
    match value.map(OsStringExt::into_vec) {
        None => Ok(None),
        Some(v) if v.iter().all(u8::is_ascii_whitespace) => Err(WebhookError::EmptySecret),
        Some(v) => Ok(Some(v)),
    }
}

/// Whether a delivery id is one to remember: 1 to 128 characters of `[A-Za-z0-9._-]` (GitHub
/// and Gitea send a UUID).
pub fn valid_delivery_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The webhook when `CONVERGE_WEBHOOK_SECRET` is set: its key and the deliveries seen.
pub struct Webhook {
    pub secret: Vec<u8>,
    pub deliveries: Deliveries,
}

impl Webhook {
    /// From the environment and the state directory: `None` when the secret is unset.
    pub fn from_env(state_dir: &Path) -> Result<Option<Webhook>, WebhookError> {
        let Some(secret) = secret_from_env()? else {
            return Ok(None);
        };
        Ok(Some(Webhook {
            secret,
            deliveries: Deliveries::load(state_dir)?,
        }))
    }
}

/// The deliveries seen, oldest first, in memory and in the state directory.
pub struct Deliveries {
    path: PathBuf,
    capacity: usize,
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    order: VecDeque<(String, String)>,
    ids: HashSet<String>,
    bodies: HashSet<String>,
    /// Lines in the file: it is rewritten with the last `CAPACITY` when it reaches twice that.
    lines: usize,
}

impl Seen {
    fn insert(&mut self, id: String, body: String, capacity: usize) {
        self.ids.insert(id.clone());
        self.bodies.insert(body.clone());
        self.order.push_back((id, body));
        while self.order.len() > capacity {
            if let Some((id, body)) = self.order.pop_front() {
                self.ids.remove(&id);
                self.bodies.remove(&body);
            }
        }
    }
}

/// Whether a delivery is new; a duplicate triggers nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    New,
    Duplicate,
}

impl Deliveries {
    /// Reads `<state_dir>/webhook-deliveries` (missing: none seen yet).
    pub fn load(state_dir: &Path) -> Result<Deliveries, WebhookError> {
        Deliveries::load_keeping(state_dir, CAPACITY)
    }

    fn load_keeping(state_dir: &Path, capacity: usize) -> Result<Deliveries, WebhookError> {
        let path = state_dir.join(FILE);
        let mut seen = Seen::default();
        match std::fs::read(&path) {
            Ok(bytes) => {
                // A line is `<id> <body digest>`; a line cut short by a crash is kept as it is
                // (it only makes a bogus entry).
                for line in String::from_utf8_lossy(&bytes).lines() {
                    let (id, body) = line.split_once(' ').unwrap_or((line, ""));
                    if !id.is_empty() {
                        seen.insert(id.to_string(), body.to_string(), capacity);
                    }
                    seen.lines += 1;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(WebhookError::Read { path, source }),
        }
        Ok(Deliveries {
            path,
            capacity,
            seen: Mutex::new(seen),
        })
    }

    /// Records the delivery `id` with this `body` unless either was seen before. It is on disk
    /// before `New` is returned; when it cannot be written nothing is recorded.
    pub fn record(&self, id: &str, body: &[u8]) -> Result<Delivery, WebhookError> {
        let digest = hex(&Sha256::digest(body));
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.ids.contains(id) || seen.bodies.contains(&digest) {
            return Ok(Delivery::Duplicate);
        }
        let err = |source| WebhookError::Write {
            path: self.path.clone(),
            source,
        };
        append_private(&self.path, format!("{id} {digest}\n").as_bytes()).map_err(err)?;
        seen.insert(id.to_string(), digest, self.capacity);
        seen.lines += 1;
        if seen.lines >= 2 * self.capacity {
            let text: String = seen
                .order
                .iter()
                .map(|(i, b)| format!("{i} {b}\n"))
                .collect();
            replace_private(&self.path, text.as_bytes()).map_err(err)?;
            seen.lines = seen.order.len();
        }
        Ok(Delivery::New)
    }
}

fn private_options() -> std::fs::OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.mode(0o600);
    opts
}

fn append_private(path: &Path, line: &[u8]) -> std::io::Result<()> {
    let mut f = private_options().append(true).create(true).open(path)?;
    f.write_all(line)?;
    f.sync_data()
}

/// Writes a sibling file and renames it over `path`: a crash leaves the old or the new list.
fn replace_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = private_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_secret_is_refused_and_an_unset_one_disables_the_hook() {
        assert!(secret_from(None).unwrap().is_none());
        for empty in ["", " ", "\n"] {
            let e = secret_from(Some(empty.into())).unwrap_err().to_string();
            assert!(
                e.starts_with("CONVERGE_WEBHOOK_SECRET is set but empty"),
                "{e}"
            );
            assert!(e.contains("hint: set it"), "{e}");
        }
        assert_eq!(secret_from(Some("k".into())).unwrap().unwrap(), b"k");
    }

    #[test]
    fn delivery_ids_are_uuids_or_alike() {
        assert!(valid_delivery_id("72d3162e-cc78-11e3-81ab-4c9367dc0958"));
        assert!(!valid_delivery_id(""));
        assert!(!valid_delivery_id("a b"));
        assert!(!valid_delivery_id(&"a".repeat(129)));
    }

    #[test]
    fn a_delivery_is_accepted_once_by_id_or_body_and_the_oldest_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let d = Deliveries::load(dir.path()).unwrap();
        assert_eq!(d.record("a", b"one").unwrap(), Delivery::New);
        assert_eq!(d.record("a", b"two").unwrap(), Delivery::Duplicate);
        assert_eq!(d.record("b", b"one").unwrap(), Delivery::Duplicate);
        let again = Deliveries::load_keeping(dir.path(), 50).unwrap();
        assert_eq!(again.record("a", b"three").unwrap(), Delivery::Duplicate);
        let mode = {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(dir.path().join(FILE))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode, 0o600);

        for i in 0..100 {
            let body = format!("body {i}");
            assert_eq!(
                again.record(&format!("id-{i}"), body.as_bytes()).unwrap(),
                Delivery::New
            );
        }
        assert_eq!(
            again.record("a", b"four").unwrap(),
            Delivery::New,
            "forgotten"
        );
        let lines = std::fs::read_to_string(dir.path().join(FILE))
            .unwrap()
            .lines()
            .count();
        assert!(lines < 100, "compacted: {lines}");
        let last = Deliveries::load_keeping(dir.path(), 50).unwrap();
        let newest = "id-99";
        assert_eq!(last.record(newest, b"x").unwrap(), Delivery::Duplicate);
        assert_eq!(last.record("id-0", b"y").unwrap(), Delivery::New);
    }
}
