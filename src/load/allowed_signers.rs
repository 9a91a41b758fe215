//! The allowed-signers file (OpenSSH's format, the one git uses for `gpg.format=ssh`): which SSH
//! keys may sign commits, for which namespaces and when. Parsed from text; no I/O but `read`.
//!
//! ```text
//! # principal[,principal...] [option[,option...]] keytype base64-key [comment]
//! alice@example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI... alice's laptop
//! ci@example.com namespaces="git",valid-after="20260101" ssh-ed25519 AAAAC3Nz...
//! ```

use std::path::{Path, PathBuf};

use ssh_key::public::KeyData;
use ssh_key::{HashAlg, PublicKey};
use thiserror::Error;

use super::pattern::matches_list;

/// A line of the file that cannot be used.
#[derive(Debug, Error)]
pub enum AllowedSignersError {
    #[error("cannot read the allowed signers {path}: {source}\n  = hint: --verify-signatures takes a file in OpenSSH's allowed-signers format (see docs/git-sources.md)")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}:{line}: {message}\n  = hint: a line is `principal[,principal] [namespaces=\"git\"] keytype base64-key [comment]`, as in `ssh-keygen -Y` ALLOWED SIGNERS")]
    Line {
        origin: String,
        line: usize,
        message: String,
    },
    #[error("{origin} lists no key\n  = hint: add a line per signer: `alice@example.com ssh-ed25519 AAAA...` (the contents of their .pub file after the principal)")]
    Empty { origin: String },
}

/// One line: who, which key, and its options.
#[derive(Debug, Clone)]
pub struct Signer {
    pub principals: Vec<String>,
    pub key: PublicKey,
    /// `namespaces="..."`: the namespaces this key may sign for (all when `None`).
    pub namespaces: Option<String>,
    /// `valid-after` / `valid-before`, as Unix seconds (UTC).
    pub valid_after: Option<i64>,
    pub valid_before: Option<i64>,
    /// Its line in the file.
    pub line: usize,
}

impl Signer {
    /// The key's `SHA256:...` fingerprint, as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> String {
        self.key.fingerprint(HashAlg::Sha256).to_string()
    }

    fn allows_namespace(&self, namespace: &str) -> bool {
        self.namespaces
            .as_deref()
            .is_none_or(|list| matches_list(list, namespace))
    }

    fn valid_at(&self, time: i64) -> bool {
        self.valid_after.is_none_or(|t| time >= t) && self.valid_before.is_none_or(|t| time < t)
    }
}

/// What the file says about a key.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// Listed, for this namespace, at this time: its principals.
    Allowed(&'a [String]),
    /// Listed, but not for this namespace.
    WrongNamespace,
    /// Listed, but not valid at that time.
    Expired,
    NotListed,
}

/// The parsed file.
#[derive(Debug, Clone)]
pub struct AllowedSigners {
    pub origin: String,
    pub signers: Vec<Signer>,
}

impl AllowedSigners {
    /// Reads and parses `path`.
    pub fn read(path: &Path) -> Result<AllowedSigners, AllowedSignersError> {
        let text = std::fs::read_to_string(path).map_err(|source| AllowedSignersError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        AllowedSigners::parse(&text, &path.display().to_string())
    }

    /// Parses the file's text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<AllowedSigners, AllowedSignersError> {
        let mut signers = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let signer = parse_line(line, i + 1).map_err(|message| AllowedSignersError::Line {
                origin: origin.to_string(),
                line: i + 1,
                message,
            })?;
            signers.push(signer);
        }
        if signers.is_empty() {
            return Err(AllowedSignersError::Empty {
                origin: origin.to_string(),
            });
        }
        Ok(AllowedSigners {
            origin: origin.to_string(),
            signers,
        })
    }

    /// What the file says about `key` signing for `namespace` at `time` (Unix seconds).
    pub fn lookup(&self, key: &KeyData, namespace: &str, time: i64) -> Lookup<'_> {
        let mut found = Lookup::NotListed;
        for s in self.signers.iter().filter(|s| s.key.key_data() == key) {
            if !s.allows_namespace(namespace) {
                found = Lookup::WrongNamespace;
            } else if !s.valid_at(time) {
                found = Lookup::Expired;
            } else {
                return Lookup::Allowed(&s.principals);
            }
        }
        found
    }
}

fn parse_line(line: &str, number: usize) -> Result<Signer, String> {
    let (principals, rest) = split_field(line);
    let principals: Vec<String> = principals
        .trim_matches('"')
        .split(',')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    if principals.is_empty() || rest.is_empty() {
        return Err("expected a principal, then a key".into());
    }
    let (first, after) = split_field(rest);
    let (options, key_text) = if is_key_type(first) {
        (None, rest)
    } else {
        (Some(first), after)
    };
    let key = PublicKey::from_openssh(key_text)
        .map_err(|e| format!("cannot read the key `{}`: {e}", abbreviate(key_text)))?;
    let mut signer = Signer {
        principals,
        key,
        namespaces: None,
        valid_after: None,
        valid_before: None,
        line: number,
    };
    if let Some(options) = options {
        apply_options(&mut signer, options)?;
    }
    Ok(signer)
}

/// The first whitespace-separated field (double quotes keep spaces and commas in it) and the rest.
fn split_field(text: &str) -> (&str, &str) {
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => return (&text[..i], text[i..].trim_start()),
            _ => {}
        }
    }
    (text, "")
}

fn is_key_type(field: &str) -> bool {
    field.parse::<ssh_key::Algorithm>().is_ok()
}

/// `namespaces="git,file"`, `valid-after="20260101"`, `valid-before="202612312359Z"`.
fn apply_options(signer: &mut Signer, options: &str) -> Result<(), String> {
    for option in split_options(options) {
        let (name, value) = match option.split_once('=') {
            Some((n, v)) => (n, Some(v.trim_matches('"'))),
            None => (option, None),
        };
        match (name.to_ascii_lowercase().as_str(), value) {
            ("namespaces", Some(v)) => signer.namespaces = Some(v.to_string()),
            ("valid-after", Some(v)) => signer.valid_after = Some(parse_time(v)?),
            ("valid-before", Some(v)) => signer.valid_before = Some(parse_time(v)?),
            ("cert-authority", None) => {
                return Err(
                    "cert-authority lines are not supported: list each signer's own key".into(),
                )
            }
            _ => {
                return Err(format!(
                    "unknown option `{option}` (namespaces, valid-after, valid-before)"
                ))
            }
        }
    }
    Ok(())
}

/// Options separated by commas outside double quotes.
fn split_options(options: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut quoted, mut start) = (false, 0);
    for (i, c) in options.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&options[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&options[start..]);
    out.into_iter().filter(|o| !o.is_empty()).collect()
}

/// `YYYYMMDD`, `YYYYMMDDHHMM` or `YYYYMMDDHHMMSS`, optionally ending in `Z`; read as UTC.
fn parse_time(text: &str) -> Result<i64, String> {
    let digits = text.strip_suffix(['Z', 'z']).unwrap_or(text);
    let bad = || format!("`{text}` is not a time: use YYYYMMDD[HHMM[SS]]");
    if !matches!(digits.len(), 8 | 12 | 14) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let field = |from: usize, to: usize| digits.get(from..to).and_then(|s| s.parse::<u32>().ok());
    let date = chrono::NaiveDate::from_ymd_opt(
        field(0, 4).ok_or_else(bad)? as i32,
        field(4, 6).ok_or_else(bad)?,
        field(6, 8).ok_or_else(bad)?,
    )
    .ok_or_else(bad)?;
    let time = date
        .and_hms_opt(
            field(8, 10).unwrap_or(0),
            field(10, 12).unwrap_or(0),
            field(12, 14).unwrap_or(0),
        )
        .ok_or_else(bad)?;
    Ok(time.and_utc().timestamp())
}

/// The start of a long key, for an error message.
fn abbreviate(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAEfeRqFgdfDorxRh18fOpSO8pMhym8Sm0X0xPopGyKl";
    const BOB: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMDSUaGmVV1NRPITbYVk85tdzyTcgU4BSEJCCza4Bzld";

    fn key(text: &str) -> KeyData {
        PublicKey::from_openssh(text).unwrap().key_data().clone()
    }

    #[test]
    fn a_listed_key_is_allowed_with_its_principals() {
        let text = format!("# signers\n\nalice@example.com,a@example.com {ALICE} alice's laptop\n");
        let s = AllowedSigners::parse(&text, "allowed").unwrap();
        assert_eq!(s.signers[0].line, 3);
        assert_eq!(
            s.lookup(&key(ALICE), "git", 0),
            Lookup::Allowed(&["alice@example.com".to_string(), "a@example.com".to_string()])
        );
        assert_eq!(s.lookup(&key(BOB), "git", 0), Lookup::NotListed);
        assert!(s.signers[0].fingerprint().starts_with("SHA256:"));
    }

    #[test]
    fn namespaces_and_validity_are_honoured() {
        let text = format!(
            "ci@example.com namespaces=\"file,git\",valid-after=\"20260101\",valid-before=\"202701010000Z\" {ALICE}\n\
             bob@example.com namespaces=\"file\" {BOB}\n"
        );
        let s = AllowedSigners::parse(&text, "allowed").unwrap();
        let jan_2026 = 1_767_225_600; // 2026-01-01T00:00:00Z
        assert!(matches!(
            s.lookup(&key(ALICE), "git", jan_2026),
            Lookup::Allowed(_)
        ));
        assert_eq!(s.lookup(&key(ALICE), "git", jan_2026 - 1), Lookup::Expired);
        assert_eq!(
            s.lookup(&key(ALICE), "git", jan_2026 + 366 * 86_400),
            Lookup::Expired
        );
        assert_eq!(s.lookup(&key(BOB), "git", jan_2026), Lookup::WrongNamespace);
    }

    #[test]
    fn a_bad_line_names_its_number_and_the_format() {
        let text = format!("alice@example.com {ALICE}\nbob@example.com ssh-ed25519 notbase64!\n");
        let e = AllowedSigners::parse(&text, "/etc/converge/allowed_signers")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/etc/converge/allowed_signers:2: cannot read the key"),
            "{e}"
        );
        assert!(e.contains("= hint: a line is"), "{e}");
        let e = AllowedSigners::parse(&format!("x cert-authority {ALICE}"), "f").unwrap_err();
        assert!(
            e.to_string()
                .contains("cert-authority lines are not supported"),
            "{e}"
        );
        let e = AllowedSigners::parse(&format!("x valid-after=\"2026\" {ALICE}"), "f").unwrap_err();
        assert!(e.to_string().contains("`2026` is not a time"), "{e}");
        let e = AllowedSigners::parse("# nothing\n", "f").unwrap_err();
        assert!(e.to_string().contains("lists no key"), "{e}");
        let e = AllowedSigners::parse("alice@example.com\n", "f").unwrap_err();
        assert!(
            e.to_string().contains("expected a principal, then a key"),
            "{e}"
        );
    }
}
