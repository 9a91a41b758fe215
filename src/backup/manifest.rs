//! The manifest of a copy and what makes it trustworthy. Its id must be exactly the one converge
//! makes (`<backup>-<UTC start, YYYYMMDDTHHMMSSZ>`) and the name of the file it was read from, so
//! no id can name a path outside its store. Under a Backup that declares a key, the manifest is
//! authenticated: HMAC-SHA256 (an HKDF subkey of the backup key) over a canonical serialization
//! of every other field, including the sha256 of the stored bytes, so a MAC that checks vouches
//! for the whole copy. Such a Backup refuses unencrypted copies, manifests without a MAC and
//! manifests written by converge before format 2. A database copy's manifest (format 3) records
//! the rows of every table, counted in the snapshot its dump reads.

use std::collections::BTreeMap;
use std::ops::Deref;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::crypto::{Kdf, Key, Secret};
use super::BackupError;
use crate::model::types::Name;

/// 2: a MAC, an HKDF key id and, for a passphrase, the Argon2id salt. 3: a database copy's row
/// counts (`rows`).
pub const FORMAT_VERSION: u32 = 3;
/// The first format with a MAC: a Backup that declares a key refuses older manifests.
pub const MAC_FORMAT: u32 = 2;
/// What `encryption` says of an encrypted copy.
pub const AES: &str = "aes-256-gcm";
/// `<id>` + this is a manifest's file name.
pub const MANIFEST_SUFFIX: &str = ".manifest.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    /// `<backup>-<YYYYMMDDTHHMMSSZ>`.
    pub id: String,
    pub backup: String,
    pub source: String,
    pub compression: String,
    /// `aes-256-gcm` or `none`.
    pub encryption: String,
    /// An HKDF subkey id of the copy's key (never a hash of the secret).
    pub key_id: Option<String>,
    /// For a passphrase: the Argon2id parameters and this copy's salt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kdf: Option<Kdf>,
    /// Unix seconds.
    pub started_at: u64,
    pub finished_at: u64,
    pub raw_bytes: u64,
    pub stored_bytes: u64,
    /// sha256 of the stored bytes.
    pub sha256: String,
    /// HMAC-SHA256 of `canonical`, hex; none without a key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// A database copy (format 3): the exact row count of every table in its user schemas, by
    /// qualified name (`public.items`, quoted as `quote_ident` does), counted in the snapshot the
    /// dump reads. None for other sources and before format 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<BTreeMap<String, i64>>,
}

/// `20261128T143800Z`.
pub fn stamp(secs: u64) -> String {
    crate::plan::text::utc(secs).replace(['-', ':'], "")
}

/// The id of backup `name`'s copy started at `started_at`: the only ids converge makes.
pub fn copy_id(name: &str, started_at: u64) -> String {
    format!("{name}-{}", stamp(started_at))
}

/// The MAC input: every field but `mac`, as a JSON array in this fixed order after a label;
/// from format 3 on, `rows` is appended (an object, its keys sorted), so a format 2 manifest
/// keeps the bytes, and the MAC, it was sealed with. Never reorder or drop an entry: that would
/// change the MAC of every copy made since.
pub fn canonical(m: &Manifest) -> Vec<u8> {
    let kdf = m
        .kdf
        .as_ref()
        .map(|k| json!([k.algorithm, k.m_kib, k.t, k.p, k.salt]));
    let mut fields = json!([
        "converge-backup-manifest",
        m.format_version,
        m.id,
        m.backup,
        m.source,
        m.compression,
        m.encryption,
        m.key_id,
        kdf,
        m.started_at,
        m.finished_at,
        m.raw_bytes,
        m.stored_bytes,
        m.sha256,
    ]);
    if m.format_version >= 3 {
        let rows = json!(m.rows);
        fields.as_array_mut().expect("an array").push(rows);
    }
    serde_json::to_vec(&fields).expect("JSON values serialize")
}

/// Sets `mac` under `key`.
pub fn seal(m: &mut Manifest, key: &Key) {
    m.mac = Some(key.mac(&canonical(m)));
}

/// Why a manifest read from `<stem>.manifest.json` is not one converge made, if it is not.
pub fn invalid_reason(m: &Manifest, stem: &str) -> Option<String> {
    if Name::try_from(m.backup.clone()).is_err() {
        return Some(format!("{:?} is not a backup name", m.backup));
    }
    let expected = copy_id(&m.backup, m.started_at);
    if m.id != expected {
        return Some(format!(
            "id {:?} is not the id converge makes for it ({expected:?})",
            m.id
        ));
    }
    if m.id != stem {
        return Some(format!(
            "id {:?} does not match its file name {:?}",
            m.id,
            format!("{stem}{MANIFEST_SUFFIX}")
        ));
    }
    None
}

/// A manifest that passed every check for its Backup; the only thing a copy is opened from.
#[derive(Debug, Clone)]
pub struct Checked {
    manifest: Manifest,
    key: Option<Key>,
    /// Every stored byte was read and checked by this process (`verify_checksum`): a restore
    /// right after it need not read the copy once more before it starts (the bytes are still
    /// hashed while they are restored).
    bytes_verified: bool,
}

impl Deref for Checked {
    type Target = Manifest;
    fn deref(&self) -> &Manifest {
        &self.manifest
    }
}

impl Checked {
    /// Whether `verify_checksum` read every stored byte of it in this process.
    pub fn bytes_verified(&self) -> bool {
        self.bytes_verified
    }

    pub(super) fn mark_bytes_verified(&mut self) {
        self.bytes_verified = true;
    }

    /// Whether the manifest's MAC checked (the Backup declares a key).
    pub fn authenticated(&self) -> bool {
        self.key.is_some()
    }

    /// The key the copy is decrypted with.
    pub(super) fn key(&self) -> Option<&Key> {
        self.key.as_ref()
    }
}

/// Checks `m`, a copy of backup `backup`, against the Backup's key (`secret`, if it declares one).
/// Row counts in a manifest before format 3 are dropped: its MAC does not cover them.
pub fn check(
    mut m: Manifest,
    backup: &str,
    secret: Option<&Secret>,
) -> Result<Checked, BackupError> {
    let (id, backup) = (m.id.clone(), backup.to_string());
    if m.format_version < 3 {
        m.rows = None;
    }
    if m.format_version > FORMAT_VERSION {
        return Err(BackupError::NewerFormat {
            id,
            version: m.format_version,
        });
    }
    let Some(secret) = secret else {
        if m.encryption != "none" {
            return Err(BackupError::KeyMissing { id, backup });
        }
        return Ok(Checked {
            manifest: m,
            key: None,
            bytes_verified: false,
        });
    };
    if m.encryption != AES {
        let encryption = m.encryption.escape_debug().to_string();
        return Err(BackupError::Unencrypted {
            id,
            backup,
            encryption,
        });
    }
    if m.format_version < MAC_FORMAT {
        return Err(BackupError::LegacyManifest { id, backup });
    }
    let Some(tag) = m.mac.as_deref() else {
        return Err(BackupError::ManifestMacMissing { id, backup });
    };
    let key = secret.key_for(&id, m.kdf.as_ref())?;
    let configured = key.id();
    if m.key_id.as_deref() != Some(configured.as_str()) {
        let made_with = m.key_id.clone();
        return Err(BackupError::WrongKey {
            id,
            made_with,
            configured,
        });
    }
    if !key.mac_matches(&canonical(&m), tag) {
        return Err(BackupError::ManifestMac { id, backup });
    }
    Ok(Checked {
        manifest: m,
        key: Some(key),
        bytes_verified: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_795_876_680; // 2026-11-28T14:38:00Z

    fn manifest(encryption: &str) -> Manifest {
        Manifest {
            format_version: FORMAT_VERSION,
            id: copy_id("db", T),
            backup: "db".into(),
            source: "database app".into(),
            compression: "zstd".into(),
            encryption: encryption.into(),
            key_id: None,
            kdf: None,
            started_at: T,
            finished_at: T + 3,
            raw_bytes: 10,
            stored_bytes: 20,
            sha256: "ab".repeat(32),
            mac: None,
            rows: None,
        }
    }

    fn rows() -> BTreeMap<String, i64> {
        [
            ("public.items".to_string(), 1234),
            ("public.tags".into(), 0),
        ]
        .into()
    }

    fn sealed(secret: &Secret) -> Manifest {
        let mut m = manifest(AES);
        let (key, kdf) = secret.new_copy_key(&m.id).unwrap();
        m.key_id = Some(key.id());
        m.kdf = kdf;
        seal(&mut m, &key);
        m
    }

    fn refusal(m: Manifest, secret: &Secret) -> String {
        check(m, "db", Some(secret)).unwrap_err().to_string()
    }

    #[test]
    fn the_canonical_form_is_fixed() {
        let m = Manifest {
            format_version: 2,
            ..manifest("none")
        };
        assert_eq!(m.id, "db-20261128T143800Z");
        assert_eq!(
            String::from_utf8(canonical(&m)).unwrap(),
            format!("[\"converge-backup-manifest\",2,\"db-20261128T143800Z\",\"db\",\"database app\",\"zstd\",\"none\",null,null,{T},{},10,20,\"{}\"]", T + 3, "ab".repeat(32))
        );
        let with_kdf = Manifest {
            kdf: Some(Kdf {
                salt: "00".repeat(16),
                ..Kdf::fresh()
            }),
            mac: Some("ignored".into()),
            ..m
        };
        let text = String::from_utf8(canonical(&with_kdf)).unwrap();
        assert!(
            text.contains(&format!(
                ",null,[\"argon2id\",19456,2,1,\"{}\"],",
                "00".repeat(16)
            )),
            "{text}"
        );
        assert!(!text.contains("ignored"), "the mac is not its own input");
    }

    #[test]
    fn from_format_3_the_row_counts_end_the_canonical_form() {
        let m = Manifest {
            rows: Some(rows()),
            ..manifest("none")
        };
        let text = String::from_utf8(canonical(&m)).unwrap();
        assert!(
            text.starts_with("[\"converge-backup-manifest\",3,"),
            "{text}"
        );
        assert!(
            text.ends_with(&format!(
                ",\"{}\",{{\"public.items\":1234,\"public.tags\":0}}]",
                "ab".repeat(32)
            )),
            "{text}"
        );
        let none = String::from_utf8(canonical(&manifest("none"))).unwrap();
        assert!(none.ends_with(",null]"), "{none}");
        let format_2 = Manifest {
            format_version: 2,
            ..m
        };
        let text = String::from_utf8(canonical(&format_2)).unwrap();
        assert!(!text.contains("public.items"), "{text}");
    }

    /// A format 2 manifest sealed by converge before format 3 (its MAC computed then, under the
    /// raw key 11…11): it still checks, and its key is accepted.
    #[test]
    fn a_format_2_manifest_sealed_before_format_3_still_checks() {
        let secret = Secret::parse(&"11".repeat(32));
        let m = Manifest {
            format_version: 2,
            key_id: Some("442f761aaeceb21a".into()),
            mac: Some("ee4b7bf33bad945e2dfe83ffbe262cbfd2ad13c20930ce4927b4bf6dc668b3e5".into()),
            ..manifest(AES)
        };
        let c = check(m.clone(), "db", Some(&secret)).unwrap();
        assert!(c.authenticated());
        assert_eq!(c.format_version, 2);
        assert_eq!(c.rows, None);
        let planted = Manifest {
            rows: Some(rows()),
            ..m
        };
        let c = check(planted, "db", Some(&secret)).unwrap();
        assert_eq!(c.rows, None, "counts its MAC does not cover are dropped");
    }

    #[test]
    fn a_changed_row_count_fails_the_mac() {
        let secret = Secret::parse(&"11".repeat(32));
        let good = Manifest {
            rows: Some(rows()),
            ..sealed(&secret)
        };
        let mut good = good;
        let (key, _) = secret.new_copy_key(&good.id).unwrap();
        seal(&mut good, &key);
        let c = check(good.clone(), "db", Some(&secret)).unwrap();
        assert_eq!(c.rows, Some(rows()));
        let mut more = rows();
        more.insert("public.items".into(), 1235);
        let mut fewer = rows();
        fewer.remove("public.tags");
        let mut added = rows();
        added.insert("public.extra".into(), 1);
        for rows in [Some(more), Some(fewer), Some(added), None] {
            let e = refusal(
                Manifest {
                    rows,
                    ..good.clone()
                },
                &secret,
            );
            assert!(e.contains("fails authentication"), "{e}");
        }
    }

    #[test]
    fn a_sealed_manifest_checks_after_a_round_trip_through_json() {
        for secret in [Secret::parse(&"11".repeat(32)), Secret::parse("k1")] {
            let m = sealed(&secret);
            let json = serde_json::to_vec_pretty(&m).unwrap();
            let back: Manifest = serde_json::from_slice(&json).unwrap();
            let c = check(back, "db", Some(&secret)).unwrap();
            assert!(c.authenticated());
            assert_eq!(c.id, m.id);
        }
    }

    #[test]
    fn any_changed_field_fails_the_mac() {
        let secret = Secret::parse(&"11".repeat(32));
        let good = sealed(&secret);
        let changed: Vec<Manifest> = vec![
            Manifest {
                sha256: "cd".repeat(32),
                ..good.clone()
            },
            Manifest {
                stored_bytes: 21,
                ..good.clone()
            },
            Manifest {
                compression: "none".into(),
                ..good.clone()
            },
            Manifest {
                finished_at: T + 4,
                ..good.clone()
            },
            Manifest {
                source: "database other".into(),
                ..good.clone()
            },
        ];
        for m in changed {
            let e = refusal(m, &secret);
            assert!(e.contains("fails authentication"), "{e}");
        }
    }

    #[test]
    fn a_keyed_backup_refuses_unencrypted_legacy_and_unmacd_copies() {
        let secret = Secret::parse("k1");
        let e = refusal(manifest("none"), &secret);
        assert!(
            e.contains("not an authenticated copy") && e.contains("encryption: none"),
            "{e}"
        );
        let legacy = Manifest {
            format_version: 1,
            key_id: Some("0123456789abcdef".into()),
            ..manifest(AES)
        };
        let e = refusal(legacy, &secret);
        assert!(
            e.contains("earlier converge") && e.contains("converge backup run db"),
            "{e}"
        );
        let e = refusal(
            Manifest {
                mac: None,
                ..sealed(&secret)
            },
            &secret,
        );
        assert!(e.contains("has no MAC"), "{e}");
        let e = refusal(sealed(&secret), &Secret::parse("k2"));
        assert!(e.contains("restore needs the key it was made with"), "{e}");
        let e = refusal(
            Manifest {
                format_version: FORMAT_VERSION + 1,
                ..sealed(&secret)
            },
            &secret,
        );
        assert!(
            e.contains("newer converge") && e.contains("reads formats 1 to 3"),
            "{e}"
        );
    }

    #[test]
    fn without_a_key_a_copy_is_accepted_but_not_authenticated() {
        let c = check(manifest("none"), "db", None).unwrap();
        assert!(!c.authenticated());
        let e = check(manifest(AES), "db", None).unwrap_err();
        assert!(e.to_string().contains("declares no key"), "{e}");
    }

    #[test]
    fn only_the_id_converge_makes_under_its_own_file_name_is_valid() {
        let m = manifest("none");
        assert_eq!(invalid_reason(&m, "db-20261128T143800Z"), None);
        let victim = Manifest {
            id: "../../victim".into(),
            ..m.clone()
        };
        let why = invalid_reason(&victim, "db-20261128T143800Z").unwrap();
        assert!(why.contains("\"../../victim\""), "{why}");
        assert!(invalid_reason(&m, "db-20261128T143801Z")
            .unwrap()
            .contains("file name"));
        let other_time = Manifest {
            started_at: T + 1,
            ..m.clone()
        };
        assert!(invalid_reason(&other_time, &m.id).is_some());
        let bad_name = Manifest {
            backup: "../x".into(),
            id: copy_id("../x", T),
            ..m
        };
        assert!(invalid_reason(&bad_name, "x")
            .unwrap()
            .contains("not a backup name"));
    }
}
