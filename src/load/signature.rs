//! Whether a commit is signed by an allowed key: its `gpgsig` header (an SSH signature made by
//! `git commit -S` with `gpg.format=ssh`, namespace `git`) checked over the commit object without
//! that header, against the allowed signers. Pure: bytes in, verdict out.

use ssh_key::{HashAlg, PublicKey, SshSig};
use thiserror::Error;

use super::allowed_signers::{AllowedSigners, Lookup};

/// The namespace git signs commits in.
pub const NAMESPACE: &str = "git";

const SIGN_HINT: &str = "sign with a key listed there: `git -c gpg.format=ssh -c user.signingkey=~/.ssh/id_ed25519.pub commit -S` (or `git config gpg.format ssh` once)";

/// A commit's signature as git stores it, and what it signs.
#[derive(Debug, Clone, Copy)]
pub struct SignedCommit<'a> {
    /// The commit's short id, for messages.
    pub id: &'a str,
    /// The `gpgsig` header's value; `None` for an unsigned commit.
    pub signature: Option<&'a [u8]>,
    /// The commit object without its `gpgsig` header.
    pub payload: &'a [u8],
    /// The committer's time (Unix seconds): `valid-after`/`valid-before` are checked against it.
    pub time: i64,
}

/// A good signature: by which key, listed for whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub fingerprint: String,
    pub principals: Vec<String>,
}

/// Why a commit is refused. Each names the commit and, when there is one, the key.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignatureError {
    #[error("commit {commit} is not signed, and --verify-signatures asks for a signature by a key in {origin}\n  = hint: {SIGN_HINT}")]
    Unsigned { commit: String, origin: String },
    #[error("commit {commit} is signed with OpenPGP; only SSH signatures are verified\n  = hint: {SIGN_HINT}")]
    NotSsh { commit: String },
    #[error(
        "commit {commit} has a signature that cannot be read: {reason}\n  = hint: {SIGN_HINT}"
    )]
    Malformed { commit: String, reason: String },
    #[error("commit {commit} is signed by key {fingerprint} for namespace `{namespace}`, not `git`\n  = hint: git signs commits in namespace `git`: sign it with `git commit -S`, not `ssh-keygen -Y sign -n {namespace}`")]
    Namespace {
        commit: String,
        fingerprint: String,
        namespace: String,
    },
    #[error("commit {commit} is signed by key {fingerprint}, which is not in the allowed signers {origin}\n  = hint: if that key may change this infrastructure, add its public key to {origin} (`principal ssh-ed25519 AAAA...`); otherwise find out who pushed the commit")]
    NotAllowed {
        commit: String,
        fingerprint: String,
        origin: String,
    },
    #[error("commit {commit} is signed by key {fingerprint}, which {origin} does not allow for namespace `git`\n  = hint: add `git` to the key's namespaces=\"...\" option")]
    NamespaceNotAllowed {
        commit: String,
        fingerprint: String,
        origin: String,
    },
    #[error("commit {commit} is signed by key {fingerprint}, which {origin} does not allow at the commit's time\n  = hint: the key's valid-after/valid-before window does not hold the committer date: re-sign with a current key")]
    Expired {
        commit: String,
        fingerprint: String,
        origin: String,
    },
    #[error("commit {commit}: the signature by key {fingerprint} does not match the commit: it was changed after it was signed, or the signature is corrupt\n  = hint: do not apply it; re-sign the commit if its content is right")]
    Invalid { commit: String, fingerprint: String },
}

/// Checks `commit`'s signature against `signers`.
pub fn verify(
    commit: &SignedCommit<'_>,
    signers: &AllowedSigners,
) -> Result<Verified, SignatureError> {
    let sig = parse(commit, signers)?;
    let key = PublicKey::new(sig.public_key().clone(), "");
    let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
    let id = commit.id.to_string();
    if sig.namespace() != NAMESPACE {
        return Err(SignatureError::Namespace {
            commit: id,
            fingerprint,
            namespace: sig.namespace().to_string(),
        });
    }
    let origin = signers.origin.clone();
    let principals = match signers.lookup(key.key_data(), NAMESPACE, commit.time) {
        Lookup::Allowed(p) => p.to_vec(),
        Lookup::NotListed => {
            return Err(SignatureError::NotAllowed {
                commit: id,
                fingerprint,
                origin,
            })
        }
        Lookup::WrongNamespace => {
            return Err(SignatureError::NamespaceNotAllowed {
                commit: id,
                fingerprint,
                origin,
            })
        }
        Lookup::Expired => {
            return Err(SignatureError::Expired {
                commit: id,
                fingerprint,
                origin,
            })
        }
    };
    key.verify(NAMESPACE, commit.payload, &sig)
        .map_err(|_| SignatureError::Invalid {
            commit: id,
            fingerprint: fingerprint.clone(),
        })?;
    Ok(Verified {
        fingerprint,
        principals,
    })
}

/// The SSH signature in the `gpgsig` header.
fn parse(commit: &SignedCommit<'_>, signers: &AllowedSigners) -> Result<SshSig, SignatureError> {
    let id = commit.id.to_string();
    let Some(raw) = commit.signature else {
        return Err(SignatureError::Unsigned {
            commit: id,
            origin: signers.origin.clone(),
        });
    };
    let malformed = |reason: String| SignatureError::Malformed {
        commit: id.clone(),
        reason,
    };
    let text = std::str::from_utf8(raw).map_err(|_| malformed("it is not text".into()))?;
    let text = text.trim();
    if text.starts_with("-----BEGIN PGP") {
        return Err(SignatureError::NotSsh { commit: id });
    }
    if !text.starts_with("-----BEGIN SSH SIGNATURE-----") {
        return Err(malformed("it is not an SSH signature".into()));
    }
    SshSig::from_pem(text).map_err(|e| malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAYLOAD: &[u8] = include_bytes!("../../tests/fixtures/signatures/commit.txt");
    const TIME: i64 = 1_767_225_600;

    fn signers() -> AllowedSigners {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/signatures");
        let mut text = String::new();
        for (who, key) in [("alice", "alice"), ("carol", "carol"), ("dave", "dave")] {
            let public = std::fs::read_to_string(format!("{dir}/{key}.pub")).unwrap();
            text += &format!("{who}@example.com {public}");
        }
        AllowedSigners::parse(&text, "allowed_signers").unwrap()
    }

    fn signature(name: &str) -> Vec<u8> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/signatures");
        std::fs::read(format!("{dir}/{name}.sig")).unwrap()
    }

    fn check(sig: Option<&[u8]>, payload: &[u8]) -> Result<Verified, SignatureError> {
        let commit = SignedCommit {
            id: "0123456789ab",
            signature: sig,
            payload,
            time: TIME,
        };
        verify(&commit, &signers())
    }

    #[test]
    fn signatures_made_by_ssh_keygen_verify_for_each_key_type() {
        for (name, principal) in [
            ("alice", "alice@example.com"),
            ("carol", "carol@example.com"),
            ("dave", "dave@example.com"),
        ] {
            let v =
                check(Some(&signature(name)), PAYLOAD).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(v.principals, vec![principal.to_string()]);
        }
        let v = check(Some(&signature("alice")), PAYLOAD).unwrap();
        assert_eq!(
            v.fingerprint,
            "SHA256:aIXYkxWK+tjQUr8nAqmexzinQku1lz17tr4NyUtqSaA"
        );
    }

    #[test]
    fn an_unlisted_key_is_refused_with_its_fingerprint() {
        let e = check(Some(&signature("bob")), PAYLOAD).unwrap_err();
        assert!(matches!(e, SignatureError::NotAllowed { .. }), "{e}");
        let text = e.to_string();
        assert!(
            text.starts_with("commit 0123456789ab is signed by key SHA256:"),
            "{text}"
        );
        assert!(
            text.contains("not in the allowed signers allowed_signers"),
            "{text}"
        );
    }

    #[test]
    fn a_changed_commit_does_not_verify() {
        let mut changed = PAYLOAD.to_vec();
        changed.extend_from_slice(b"one more line\n");
        let e = check(Some(&signature("alice")), &changed).unwrap_err();
        assert_eq!(
            e,
            SignatureError::Invalid {
                commit: "0123456789ab".into(),
                fingerprint: "SHA256:aIXYkxWK+tjQUr8nAqmexzinQku1lz17tr4NyUtqSaA".into()
            }
        );
    }

    #[test]
    fn unsigned_openpgp_garbled_and_wrong_namespace_signatures_are_refused() {
        let e = check(None, PAYLOAD).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("commit 0123456789ab is not signed"),
            "{e}"
        );
        let pgp = b"-----BEGIN PGP SIGNATURE-----\n\niQEz\n-----END PGP SIGNATURE-----\n";
        assert!(matches!(
            check(Some(pgp), PAYLOAD),
            Err(SignatureError::NotSsh { .. })
        ));
        let garbled = b"-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n";
        assert!(matches!(
            check(Some(garbled), PAYLOAD),
            Err(SignatureError::Malformed { .. })
        ));
        let e = check(Some(&signature("alice-file")), PAYLOAD).unwrap_err();
        assert!(
            matches!(e, SignatureError::Namespace { ref namespace, .. } if namespace == "file"),
            "{e}"
        );
    }
}
