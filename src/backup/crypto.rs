//! Key material for backups. The configured secret is either a raw 256-bit key (64 hex digits, or
//! base64 of exactly 32 bytes) or a passphrase, stretched by Argon2id with a random salt per
//! copy (recorded in the manifest). Every use of the resulting key goes through its own HKDF-SHA256
//! subkey: wrapping the data key (`stream`), the manifest MAC (HMAC-SHA256) and the key id. The key
//! id reveals nothing guessable: for a passphrase, checking a guess against it costs an Argon2id
//! run. Keys never print: their `Debug` is redacted.

mod stream;

use std::fmt;

use argon2::{Algorithm, Argon2, Params, Version};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::BackupError;
use crate::model::attributes::hex;

pub use stream::{Decryptor, Encryptor, CHUNK};

/// HKDF `info` labels: one subkey per purpose.
const INFO_WRAP: &[u8] = b"converge/backup/v2/data-key-wrap";
const INFO_MAC: &[u8] = b"converge/backup/v2/manifest-mac";
const INFO_KEY_ID: &[u8] = b"converge/backup/v2/key-id";

/// Argon2id cost for new copies: memory in KiB, passes, lanes (OWASP's first recommendation).
pub const ARGON2_M_KIB: u32 = 19_456;
pub const ARGON2_T: u32 = 2;
pub const ARGON2_P: u32 = 1;
/// What a manifest may ask for: its parameters are read before it can be authenticated.
const MAX_M_KIB: u32 = 262_144;
const MAX_T: u32 = 10;
const MAX_P: u32 = 8;
const SALT_BYTES: usize = 16;

pub(crate) fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the OS random source");
    b
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// A 256-bit backup key (raw, or derived from a passphrase).
#[derive(Clone, PartialEq, Eq)]
pub struct Key([u8; 32]);

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(redacted)")
    }
}

impl Key {
    pub fn from_bytes(bytes: [u8; 32]) -> Key {
        Key(bytes)
    }

    fn subkey(&self, info: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        Hkdf::<Sha256>::new(None, &self.0)
            .expand(info, &mut out)
            .expect("32 bytes is a valid HKDF-SHA256 length");
        out
    }

    /// The key that wraps each copy's data key.
    pub(crate) fn wrapping_key(&self) -> [u8; 32] {
        self.subkey(INFO_WRAP)
    }

    /// A short id, safe to record: 16 hex digits of an HKDF subkey.
    pub fn id(&self) -> String {
        hex(&self.subkey(INFO_KEY_ID)[..8])
    }

    fn hmac(&self) -> Hmac<Sha256> {
        <Hmac<Sha256> as Mac>::new_from_slice(&self.subkey(INFO_MAC))
            .expect("HMAC takes any key length")
    }

    /// HMAC-SHA256 of `msg` under the MAC subkey, hex.
    pub fn mac(&self, msg: &[u8]) -> String {
        let mut h = self.hmac();
        h.update(msg);
        hex(&h.finalize().into_bytes())
    }

    /// Whether `tag` (hex) is the MAC of `msg`; compared in constant time.
    pub fn mac_matches(&self, msg: &[u8], tag: &str) -> bool {
        let Some(tag) = unhex(tag) else {
            return false;
        };
        let mut h = self.hmac();
        h.update(msg);
        h.verify_slice(&tag).is_ok()
    }
}

/// How a passphrase became a copy's key: Argon2id with these parameters and salt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kdf {
    /// `argon2id`.
    pub algorithm: String,
    /// Memory, KiB.
    pub m_kib: u32,
    /// Passes.
    pub t: u32,
    /// Lanes.
    pub p: u32,
    /// 16 random bytes, hex.
    pub salt: String,
}

impl Kdf {
    /// The parameters for a new copy, with a fresh salt.
    pub fn fresh() -> Kdf {
        Kdf {
            algorithm: "argon2id".into(),
            m_kib: ARGON2_M_KIB,
            t: ARGON2_T,
            p: ARGON2_P,
            salt: hex(&random::<SALT_BYTES>()),
        }
    }

    /// Argon2id parameters and salt, or why a manifest's are refused.
    fn checked(&self) -> Result<(Params, Vec<u8>), String> {
        if self.algorithm != "argon2id" {
            return Err(format!("unknown algorithm {:?}", self.algorithm));
        }
        let salt = unhex(&self.salt)
            .filter(|s| s.len() == SALT_BYTES)
            .ok_or("the salt is not 16 bytes of hex")?;
        if self.m_kib > MAX_M_KIB || self.t > MAX_T || self.p > MAX_P {
            return Err(format!(
                "m={} KiB, t={}, p={} exceed the limits (m<={MAX_M_KIB}, t<={MAX_T}, p<={MAX_P})",
                self.m_kib, self.t, self.p
            ));
        }
        let params =
            Params::new(self.m_kib, self.t, self.p, Some(32)).map_err(|e| e.to_string())?;
        Ok((params, salt))
    }
}

/// Argon2id of `passphrase` under `kdf`.
fn stretch(passphrase: &str, kdf: &Kdf, id: &str) -> Result<Key, BackupError> {
    let (params, salt) = kdf.checked().map_err(|reason| BackupError::BadKdf {
        id: id.to_string(),
        reason,
    })?;
    let mut out = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), &salt, &mut out)
        .map_err(|e| BackupError::KeyDerivation {
            reason: e.to_string(),
        })?;
    Ok(Key(out))
}

/// The configured secret: a raw key, or a passphrase that needs a copy's salt to become one.
#[derive(Clone)]
pub enum Secret {
    Raw(Key),
    Passphrase(String),
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Secret::Raw(_) => "Secret::Raw(redacted)",
            Secret::Passphrase(_) => "Secret::Passphrase(redacted)",
        })
    }
}

impl Secret {
    /// 64 hex digits or base64 of exactly 32 bytes: a raw key; any other text: a passphrase.
    /// Surrounding whitespace (a secret file's newline) is ignored.
    pub fn parse(text: &str) -> Secret {
        use base64::Engine;
        let s = text.trim();
        if s.len() == 64 {
            if let Some(k) = unhex(s).and_then(|b| <[u8; 32]>::try_from(b).ok()) {
                return Secret::Raw(Key(k));
            }
        }
        if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(s) {
            if let Ok(k) = <[u8; 32]>::try_from(bytes.as_slice()) {
                return Secret::Raw(Key(k));
            }
        }
        Secret::Passphrase(s.to_string())
    }

    pub fn is_empty(&self) -> bool {
        matches!(self, Secret::Passphrase(p) if p.is_empty())
    }

    /// `a raw key` or `a passphrase`.
    pub fn kind(&self) -> &'static str {
        match self {
            Secret::Raw(_) => "a raw key",
            Secret::Passphrase(_) => "a passphrase",
        }
    }

    /// The key of a new copy and, for a passphrase, the Argon2id parameters with a fresh salt.
    pub fn new_copy_key(&self, id: &str) -> Result<(Key, Option<Kdf>), BackupError> {
        match self {
            Secret::Raw(k) => Ok((k.clone(), None)),
            Secret::Passphrase(p) => {
                let kdf = Kdf::fresh();
                Ok((stretch(p, &kdf, id)?, Some(kdf)))
            }
        }
    }

    /// The key copy `id` was made with, when it was made with this secret: `kdf` is the
    /// manifest's (none for a raw key).
    pub fn key_for(&self, id: &str, kdf: Option<&Kdf>) -> Result<Key, BackupError> {
        match (self, kdf) {
            (Secret::Raw(k), None) => Ok(k.clone()),
            (Secret::Passphrase(p), Some(kdf)) => stretch(p, kdf, id),
            (s, kdf) => Err(BackupError::KeyKind {
                id: id.to_string(),
                made_with: if kdf.is_some() {
                    "a passphrase"
                } else {
                    "a raw key"
                },
                configured: s.kind(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    const PASS: &str = "correct horse battery staple";

    fn kdf(salt: &[u8]) -> Kdf {
        Kdf {
            salt: hex(salt),
            ..Kdf::fresh()
        }
    }

    fn raw(s: &Secret) -> [u8; 32] {
        match s {
            Secret::Raw(k) => k.0,
            Secret::Passphrase(_) => panic!("{s:?} should be a raw key"),
        }
    }

    #[test]
    fn sixty_four_hex_digits_and_base64_of_32_bytes_are_raw_keys() {
        assert_eq!(raw(&Secret::parse(&"00".repeat(32))), [0u8; 32]);
        let mixed = format!("{}AB\n", "ab".repeat(31));
        assert_eq!(raw(&Secret::parse(&mixed))[31], 0xab);
        let b64 = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
        assert_eq!(raw(&Secret::parse(b64)), [1u8; 32]);
        for text in [
            "k1",
            PASS,
            &"0".repeat(63),
            &"g".repeat(64),
            "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ==", // 31 bytes
        ] {
            assert!(
                matches!(Secret::parse(text), Secret::Passphrase(_)),
                "{text}"
            );
        }
        assert!(Secret::parse(" \n").is_empty());
    }

    #[test]
    fn a_passphrase_goes_through_argon2id_with_the_salt() {
        // The reference implementation: `echo -n "$PASS" | argon2 0123456789abcdef -id -t 2
        // -k 19456 -p 1 -l 32 -r`.
        let k = stretch(PASS, &kdf(b"0123456789abcdef"), "x").unwrap();
        assert_eq!(
            hex(&k.0),
            "832e52b959b967b570ee4781f6c7bda7ced019ca266ac781fd2d94d4e853b0cd"
        );
        let other_salt = stretch(PASS, &kdf(b"0123456789abcdeg"), "x").unwrap();
        assert_ne!(k, other_salt);
        let s = Secret::parse(PASS);
        let (k1, kdf1) = s.new_copy_key("x").unwrap();
        let (k2, kdf2) = s.new_copy_key("x").unwrap();
        let (kdf1, kdf2) = (kdf1.unwrap(), kdf2.unwrap());
        assert_ne!(kdf1.salt, kdf2.salt, "a fresh salt per copy");
        assert_eq!(kdf1.salt.len(), 32);
        assert_ne!(k1.id(), k2.id(), "the key id depends on the salt");
        assert_eq!(s.key_for("x", Some(&kdf1)).unwrap(), k1);
    }

    #[test]
    fn the_key_id_is_an_hkdf_subkey_and_no_hash_of_the_secret() {
        // HKDF-SHA256 (RFC 5869, no salt) of 32 zero bytes, info "converge/backup/v2/key-id",
        // computed independently with Python's hmac module.
        let zero = Key([0u8; 32]);
        assert_eq!(zero.id(), "3cca0cdf0c1af8b1");
        let k = stretch(PASS, &kdf(b"0123456789abcdef"), "x").unwrap();
        let id = k.id();
        assert_eq!(id.len(), 16);
        let sha = Sha256::digest(PASS.as_bytes());
        let mut old = Sha256::new();
        old.update(b"converge-key-id:");
        old.update(sha);
        for guessable in [hex(&sha), hex(&old.finalize()), hex(&k.0)] {
            assert!(!guessable.starts_with(&id), "{guessable}");
        }
    }

    #[test]
    fn each_purpose_has_its_own_subkey() {
        let k = Key([9u8; 32]);
        let subkeys = [
            k.wrapping_key(),
            k.subkey(INFO_MAC),
            k.subkey(INFO_KEY_ID),
            k.0,
        ];
        for (i, a) in subkeys.iter().enumerate() {
            for b in &subkeys[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn a_mac_checks_only_under_its_key_and_for_its_message() {
        let k = Key([3u8; 32]);
        let tag = k.mac(b"manifest");
        assert_eq!(tag.len(), 64);
        assert!(k.mac_matches(b"manifest", &tag));
        assert!(!k.mac_matches(b"manifesT", &tag));
        assert!(!Key([4u8; 32]).mac_matches(b"manifest", &tag));
        assert!(!k.mac_matches(b"manifest", &tag[..62]));
        assert!(!k.mac_matches(b"manifest", "zz"));
        assert!(!k.mac_matches(b"manifest", ""));
    }

    #[test]
    fn a_manifest_cannot_ask_for_a_costly_or_odd_derivation() {
        let ok = kdf(&[1u8; 16]);
        for (bad, why) in [
            (
                Kdf {
                    m_kib: 4 << 20,
                    ..ok.clone()
                },
                "exceed",
            ),
            (
                Kdf {
                    t: 1000,
                    ..ok.clone()
                },
                "exceed",
            ),
            (
                Kdf {
                    algorithm: "scrypt".into(),
                    ..ok.clone()
                },
                "unknown algorithm",
            ),
            (
                Kdf {
                    salt: "00".into(),
                    ..ok.clone()
                },
                "16 bytes",
            ),
            (
                Kdf {
                    salt: "zz".repeat(16),
                    ..ok.clone()
                },
                "16 bytes",
            ),
        ] {
            let e = stretch(PASS, &bad, "db-x").unwrap_err();
            assert!(matches!(e, BackupError::BadKdf { .. }), "{e:?}");
            assert!(e.to_string().contains(why), "{e}");
        }
    }

    #[test]
    fn a_secret_of_the_other_kind_says_so() {
        let e = Secret::parse("k1").key_for("db-x", None).unwrap_err();
        assert!(e.to_string().contains("made with a raw key"), "{e}");
        let e = Secret::parse(&"00".repeat(32))
            .key_for("db-x", Some(&Kdf::fresh()))
            .unwrap_err();
        assert!(e.to_string().contains("made with a passphrase"), "{e}");
    }

    #[test]
    fn keys_and_secrets_never_print() {
        let s = Secret::parse(PASS);
        let k = Key([0xab; 32]);
        let text = format!("{s:?} {k:?} {:?}", Secret::Raw(k.clone()));
        assert!(!text.contains("horse") && !text.contains("abab"), "{text}");
    }

    /// `cargo test --release --lib -- --ignored argon2id_cost --nocapture`
    #[test]
    #[ignore]
    fn argon2id_cost() {
        let k = kdf(&[5u8; 16]);
        let runs = 20;
        let started = std::time::Instant::now();
        for _ in 0..runs {
            stretch(PASS, &k, "x").unwrap();
        }
        let ms = started.elapsed().as_secs_f64() * 1000.0 / f64::from(runs);
        println!(
            "argon2id m={ARGON2_M_KIB} KiB t={ARGON2_T} p={ARGON2_P}: {ms:.1} ms per derivation"
        );
    }
}
