//! Checking a password against a PostgreSQL SCRAM-SHA-256 verifier (RFC 5802/7677).

use sha2::{Digest, Sha256};

/// Whether `password` matches a `SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>` verifier
/// (RFC 5802/7677: StoredKey = H(HMAC(PBKDF2(password, salt, iter), "Client Key"))).
pub fn scram_matches(verifier: &str, password: &str) -> bool {
    use base64::Engine;
    use hmac::{Hmac, Mac};
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
    let mac = |key: &[u8], data: &[u8]| {
        let mut m = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
        m.update(data);
        m.finalize().into_bytes()
    };
    let mut u = mac(
        password.as_bytes(),
        &[salt.as_slice(), &[0, 0, 0, 1]].concat(),
    );
    let mut salted = u;
    for _ in 1..iterations {
        u = mac(password.as_bytes(), &u);
        for (s, x) in salted.iter_mut().zip(u.iter()) {
            *s ^= x;
        }
    }
    let client_key = mac(&salted, b"Client Key");
    Sha256::digest(client_key).as_slice() == stored.as_slice()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scram_verifiers_are_checked() {
        // The verifier PostgreSQL 15 stored for the password `pw1`.
        let v = "SCRAM-SHA-256$4096:r4/TF2umB5i7y0fB9u4kYw==$MnjZJfEr2RUtFETElGAzhlhAmFTgsn4A3i3SqhXGdNM=:dSBgLtH5K6pag++Kp/fZ/MWt+HXPuIS7T9LtylIu4UM=";
        assert!(scram_matches(v, "pw1"));
        assert!(!scram_matches(v, "pw2"));
        assert!(!scram_matches("md5abc", "pw1"));
        assert!(!scram_matches("SCRAM-SHA-256$bad", "pw1"));
    }
}
