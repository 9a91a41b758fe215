//! `known_hosts` in OpenSSH's format: which host keys the agent trusts for SSH git remotes. Plain
//! host fields (`host`, `[host]:port`, wildcards, `!negation`), hashed ones (`|1|salt|hash`,
//! HMAC-SHA1 of the name) and `@revoked` keys. The fetch asks it about the key a server presents.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::load::pattern::matches_list;

/// The parsed file.
#[derive(Debug, Clone)]
pub struct KnownHosts {
    pub path: PathBuf,
    entries: Vec<Entry>,
}

#[derive(Debug, Clone)]
struct Entry {
    revoked: bool,
    hosts: Hosts,
    key_type: String,
    key: Vec<u8>,
}

#[derive(Debug, Clone)]
enum Hosts {
    Hashed { salt: Vec<u8>, hash: Vec<u8> },
    Patterns(String),
}

/// What the file says about the key a host presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyCheck {
    Trusted,
    /// The host is not listed with a key of this type; `other_types` it is listed with.
    Unknown {
        other_types: Vec<String>,
    },
    /// The host is listed with another key of the same type: their fingerprints.
    Changed {
        expected: Vec<String>,
    },
    /// The key is marked `@revoked`.
    Revoked,
}

impl KnownHosts {
    /// Reads `path`; a missing file trusts no host.
    pub fn read(path: &Path) -> std::io::Result<KnownHosts> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(KnownHosts::parse(&text, path)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KnownHosts {
                path: path.to_path_buf(),
                entries: Vec::new(),
            }),
            Err(e) => Err(e),
        }
    }

    /// Parses the file's text. Lines that cannot be read (and `@cert-authority` lines) are
    /// skipped, as ssh does.
    pub fn parse(text: &str, path: &Path) -> KnownHosts {
        KnownHosts {
            path: path.to_path_buf(),
            entries: text.lines().filter_map(parse_line).collect(),
        }
    }

    /// Checks `key` (the SSH wire-format public key blob) presented by `host` on `port`.
    pub fn check(&self, host: &str, port: u16, key: &[u8]) -> HostKeyCheck {
        let name = lookup_name(host, port);
        let presented = key_type(key);
        let listed: Vec<&Entry> = self.entries.iter().filter(|e| e.matches(&name)).collect();
        if listed.iter().any(|e| e.revoked && e.key == key) {
            return HostKeyCheck::Revoked;
        }
        let trusted: Vec<&&Entry> = listed.iter().filter(|e| !e.revoked).collect();
        if trusted.iter().any(|e| e.key == key) {
            return HostKeyCheck::Trusted;
        }
        let same_type: Vec<String> = trusted
            .iter()
            .filter(|e| e.key_type == presented)
            .map(|e| fingerprint(&e.key))
            .collect();
        if !same_type.is_empty() {
            return HostKeyCheck::Changed {
                expected: same_type,
            };
        }
        let mut other_types: Vec<String> = trusted.iter().map(|e| e.key_type.clone()).collect();
        other_types.sort();
        other_types.dedup();
        HostKeyCheck::Unknown { other_types }
    }
}

impl Entry {
    fn matches(&self, name: &str) -> bool {
        match &self.hosts {
            Hosts::Patterns(list) => matches_list(list, name),
            Hosts::Hashed { salt, hash } => {
                let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(salt) else {
                    return false;
                };
                mac.update(name.as_bytes());
                mac.verify_slice(hash).is_ok()
            }
        }
    }
}

/// `[@marker] hosts keytype base64 [comment]`.
fn parse_line(line: &str) -> Option<Entry> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let mut fields = line.split_whitespace();
    let mut first = fields.next()?;
    let mut revoked = false;
    if let Some(marker) = first.strip_prefix('@') {
        match marker {
            "revoked" => revoked = true,
            // Host certificates are not supported: such a line trusts nothing here.
            _ => return None,
        }
        first = fields.next()?;
    }
    let key_type = fields.next()?.to_string();
    let key = STANDARD.decode(fields.next()?).ok()?;
    Some(Entry {
        revoked,
        hosts: parse_hosts(first)?,
        key_type,
        key,
    })
}

fn parse_hosts(field: &str) -> Option<Hosts> {
    match field.strip_prefix("|1|") {
        Some(hashed) => {
            let (salt, hash) = hashed.split_once('|')?;
            Some(Hosts::Hashed {
                salt: STANDARD.decode(salt).ok()?,
                hash: STANDARD.decode(hash).ok()?,
            })
        }
        None => Some(Hosts::Patterns(field.to_string())),
    }
}

/// The name known_hosts lists a host under: `host` on port 22, `[host]:port` on another.
pub fn lookup_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_ascii_lowercase()
    } else {
        format!("[{}]:{port}", host.to_ascii_lowercase())
    }
}

/// `SHA256:...` of a key blob, as `ssh-keygen -l` and ssh print it.
pub fn fingerprint(key: &[u8]) -> String {
    format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(key)))
}

/// The key type a wire-format blob starts with (`ssh-ed25519`, `ecdsa-sha2-nistp256`, ...).
pub fn key_type(key: &[u8]) -> String {
    let len = key
        .get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .unwrap_or(0);
    key.get(4..4 + len)
        .map(|t| String::from_utf8_lossy(t).into_owned())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST_KEY: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIAEfeRqFgdfDorxRh18fOpSO8pMhym8Sm0X0xPopGyKl";
    const OTHER_KEY: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIMDSUaGmVV1NRPITbYVk85tdzyTcgU4BSEJCCza4Bzld";

    fn blob(b64: &str) -> Vec<u8> {
        STANDARD.decode(b64).unwrap()
    }

    fn hashed(name: &str, salt: &[u8]) -> String {
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(salt).unwrap();
        mac.update(name.as_bytes());
        let hash = mac.finalize().into_bytes();
        format!("|1|{}|{}", STANDARD.encode(salt), STANDARD.encode(hash))
    }

    fn file(text: &str) -> KnownHosts {
        KnownHosts::parse(text, Path::new("known_hosts"))
    }

    #[test]
    fn plain_and_bracketed_port_entries_are_trusted() {
        let k = file(&format!(
            "# pinned\ngit.example.com,10.0.0.5 ssh-ed25519 {HOST_KEY}\n[127.0.0.1]:2222 ssh-ed25519 {OTHER_KEY} test\n"
        ));
        assert_eq!(
            k.check("git.example.com", 22, &blob(HOST_KEY)),
            HostKeyCheck::Trusted
        );
        assert_eq!(
            k.check("GIT.example.com", 22, &blob(HOST_KEY)),
            HostKeyCheck::Trusted
        );
        assert_eq!(
            k.check("127.0.0.1", 2222, &blob(OTHER_KEY)),
            HostKeyCheck::Trusted
        );
        // The same host on another port is another entry.
        assert!(matches!(
            k.check("127.0.0.1", 22, &blob(OTHER_KEY)),
            HostKeyCheck::Unknown { .. }
        ));
    }

    #[test]
    fn hashed_entries_match_their_host_and_port() {
        let k = file(&format!(
            "{} ssh-ed25519 {HOST_KEY}\n{} ssh-ed25519 {OTHER_KEY}\n",
            hashed("github.com", b"0123456789abcdefghij"),
            hashed("[git.internal]:2222", b"saltsaltsaltsaltsalt"),
        ));
        assert_eq!(
            k.check("github.com", 22, &blob(HOST_KEY)),
            HostKeyCheck::Trusted
        );
        assert_eq!(
            k.check("git.internal", 2222, &blob(OTHER_KEY)),
            HostKeyCheck::Trusted
        );
        assert!(matches!(
            k.check("gitlab.com", 22, &blob(HOST_KEY)),
            HostKeyCheck::Unknown { .. }
        ));
    }

    #[test]
    fn another_key_of_the_same_type_is_a_change_with_the_expected_fingerprint() {
        let k = file(&format!("git.example.com ssh-ed25519 {HOST_KEY}\n"));
        assert_eq!(
            k.check("git.example.com", 22, &blob(OTHER_KEY)),
            HostKeyCheck::Changed {
                expected: vec!["SHA256:aIXYkxWK+tjQUr8nAqmexzinQku1lz17tr4NyUtqSaA".into()]
            }
        );
    }

    #[test]
    fn a_host_listed_with_other_key_types_only_is_unknown_and_says_which() {
        let k = file("git.example.com ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ==\n");
        assert_eq!(
            k.check("git.example.com", 22, &blob(HOST_KEY)),
            HostKeyCheck::Unknown {
                other_types: vec!["ssh-rsa".into()]
            }
        );
    }

    #[test]
    fn revoked_keys_wildcards_and_negations() {
        let k = file(&format!(
            "*.example.com,!evil.example.com ssh-ed25519 {HOST_KEY}\n@revoked * ssh-ed25519 {OTHER_KEY}\n@cert-authority * ssh-ed25519 {OTHER_KEY}\nnot a line\n"
        ));
        assert_eq!(
            k.check("git.example.com", 22, &blob(HOST_KEY)),
            HostKeyCheck::Trusted
        );
        assert!(matches!(
            k.check("evil.example.com", 22, &blob(HOST_KEY)),
            HostKeyCheck::Unknown { .. }
        ));
        assert_eq!(
            k.check("git.example.com", 22, &blob(OTHER_KEY)),
            HostKeyCheck::Revoked
        );
    }

    #[test]
    fn fingerprints_and_key_types_read_like_ssh_keygen() {
        assert_eq!(
            fingerprint(&blob(HOST_KEY)),
            "SHA256:aIXYkxWK+tjQUr8nAqmexzinQku1lz17tr4NyUtqSaA"
        );
        assert_eq!(key_type(&blob(HOST_KEY)), "ssh-ed25519");
        assert_eq!(key_type(b"\x00"), "unknown");
        let missing = KnownHosts::read(Path::new("/nonexistent/known_hosts")).unwrap();
        assert!(matches!(
            missing.check("h", 22, &blob(HOST_KEY)),
            HostKeyCheck::Unknown { .. }
        ));
    }
}
