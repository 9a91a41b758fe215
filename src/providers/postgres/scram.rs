//! PostgreSQL SCRAM-SHA-256 password verifiers (RFC 5802/7677): computing one on the client, so a
//! role's password never travels to the server (nor into its log) in plain text, and checking a
//! password against the verifier the server stores.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// What PostgreSQL itself uses (`scram_iterations`' default, a 16-byte salt).
const ITERATIONS: u32 = 4096;
const SALT_LEN: usize = 16;

#[derive(Debug, Error)]
#[error("cannot draw a random salt for a SCRAM-SHA-256 verifier: {0}\n  = hint: the operating system's random source (getrandom) failed; check /dev/urandom")]
pub struct SaltError(String);

/// `SCRAM-SHA-256$4096:<salt>$<StoredKey>:<ServerKey>` for `password` with a random salt: what
/// `ALTER ROLE … PASSWORD` takes instead of the password (the server stores it as it is).
pub fn scram_verifier(password: &str) -> Result<String, SaltError> {
    let mut salt = [0u8; SALT_LEN];
    getrandom::fill(&mut salt).map_err(|e| SaltError(e.to_string()))?;
    Ok(verifier_with(password, &salt, ITERATIONS))
}

/// The verifier for a given salt and iteration count.
fn verifier_with(password: &str, salt: &[u8], iterations: u32) -> String {
    let salted = salted_password(password, salt, iterations);
    let client_key = mac(&salted, b"Client Key");
    let stored_key = Sha256::digest(client_key);
    let server_key = mac(&salted, b"Server Key");
    let b64 = base64::engine::general_purpose::STANDARD;
    format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        b64.encode(salt),
        b64.encode(stored_key),
        b64.encode(server_key)
    )
}

/// Whether `password` matches a `SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>` verifier
/// (RFC 5802/7677: StoredKey = H(HMAC(PBKDF2(password, salt, iter), "Client Key"))).
pub fn scram_matches(verifier: &str, password: &str) -> bool {
    let b64 = base64::engine::general_purpose::STANDARD;
    let parse = || -> Option<(u32, Vec<u8>, Vec<u8>)> {
        let rest = verifier.strip_prefix("SCRAM-SHA-256$")?;
        let (params, keys) = rest.split_once('$')?;
        let (iter, salt) = params.split_once(':')?;
        let (stored, _server) = keys.split_once(':')?;
        Some((
            iter.parse().ok()?,
            b64.decode(salt).ok()?,
            b64.decode(stored).ok()?,
        ))
    };
    let Some((iterations, salt, stored)) = parse() else {
        return false;
    };
    if iterations == 0 {
        return false;
    }
    let client_key = mac(&salted_password(password, &salt, iterations), b"Client Key");
    Sha256::digest(client_key).as_slice() == stored.as_slice()
}

/// PBKDF2-HMAC-SHA-256 of the SASLprep-ed password (RFC 5802's `Hi`), one 32-byte block.
fn salted_password(password: &str, salt: &[u8], iterations: u32) -> [u8; 32] {
    // As PostgreSQL and libpq do: SASLprep (RFC 4013) when the password allows it, else the
    // password's bytes as they are.
    let prepared = stringprep::saslprep(password)
        .map(|p| p.into_owned())
        .unwrap_or_else(|_| password.to_string());
    let key = prepared.as_bytes();
    let mut u = mac(key, &[salt, &[0, 0, 0, 1]].concat());
    let mut salted = u;
    for _ in 1..iterations {
        u = mac(key, &u);
        for (s, x) in salted.iter_mut().zip(u.iter()) {
            *s ^= x;
        }
    }
    salted
}

fn mac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    m.update(data);
    m.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The verifier PostgreSQL 15 stored for the password `pw1`.
    const PG_PW1: &str = "SCRAM-SHA-256$4096:r4/TF2umB5i7y0fB9u4kYw==$MnjZJfEr2RUtFETElGAzhlhAmFTgsn4A3i3SqhXGdNM=:dSBgLtH5K6pag++Kp/fZ/MWt+HXPuIS7T9LtylIu4UM=";

    #[test]
    fn scram_verifiers_are_checked() {
        assert!(scram_matches(PG_PW1, "pw1"));
        assert!(!scram_matches(PG_PW1, "pw2"));
        assert!(!scram_matches("md5abc", "pw1"));
        assert!(!scram_matches("SCRAM-SHA-256$bad", "pw1"));
        assert!(!scram_matches("SCRAM-SHA-256$0:AAAA$AAAA:AAAA", "pw1"));
    }

    /// Computed with PostgreSQL's salt, the verifier is byte for byte the one the server made.
    #[test]
    fn the_computed_verifier_is_the_one_postgresql_computes() {
        let b64 = base64::engine::general_purpose::STANDARD;
        let salt = b64.decode("r4/TF2umB5i7y0fB9u4kYw==").unwrap();
        assert_eq!(verifier_with("pw1", &salt, 4096), PG_PW1);
    }

    /// Non-ASCII passwords are SASLprep-ed as the server and libpq do: PostgreSQL 15 stored these
    /// for `ﬁ\u{a0}pass` (a ligature and a no-break space: NFKC gives `fi pass`) and for a
    /// password SASLprep refuses (a control character: the bytes are used as they are).
    #[test]
    fn non_ascii_passwords_are_prepared_as_postgresql_does() {
        let b64 = base64::engine::general_purpose::STANDARD;
        for (password, pg) in [
            ("\u{fb01}\u{a0}pass", PG_LIGATURE),
            ("bell\u{7}pass", PG_CONTROL),
        ] {
            let salt = pg.split(['$', ':']).nth(2).unwrap();
            let salt = b64.decode(salt).unwrap();
            assert_eq!(verifier_with(password, &salt, 4096), pg, "{password:?}");
            assert!(scram_matches(pg, password));
        }
        assert!(
            scram_matches(PG_LIGATURE, "fi pass"),
            "NFKC and space mapping"
        );
    }

    #[test]
    fn a_fresh_verifier_has_a_random_salt_4096_iterations_and_matches() {
        let a = scram_verifier("s3cret").unwrap();
        let b = scram_verifier("s3cret").unwrap();
        assert_ne!(a, b, "a new salt each time");
        assert!(a.starts_with("SCRAM-SHA-256$4096:"), "{a}");
        let b64 = base64::engine::general_purpose::STANDARD;
        let salt = a.split(['$', ':']).nth(2).unwrap();
        assert_eq!(b64.decode(salt).unwrap().len(), 16);
        assert!(scram_matches(&a, "s3cret") && scram_matches(&b, "s3cret"));
        assert!(!scram_matches(&a, "s3cret "));
        assert!(!a.contains("s3cret"));
    }

    const PG_LIGATURE: &str = "SCRAM-SHA-256$4096:s1g6lsVNuPll9tvy0smU9w==$3GfGiFE9zzPyYdfqBdUnYoBPcG27jm/Ux93Zh9n3Hh0=:0XGiIXg9sYV709CK9yIOixCJptCGL8gkMlrmjDkC18I=";
    const PG_CONTROL: &str = "SCRAM-SHA-256$4096:D5+MLjKwyQ0CVoThVF57Eg==$JoTmZ4k/6HnFuXvlkIkxv0Eb1KQ90pDT8PGobB842DM=:NSjs8NH/8cjwZM9naLs8wUIYfbG9/2tYOIAU4WfKleI=";
}
