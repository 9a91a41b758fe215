//! Backups are authenticated end to end (issue 14, part 5), against the real binary, PostgreSQL
//! and S3: planted, unMACed, legacy and altered manifests are refused; tampered or swapped copies
//! fail the restore before the target exists; no manifest id deletes outside its store; a
//! passphrase goes through Argon2id with a salt per copy; raw keys still work; rotated keys are
//! named; no secret is ever printed or recorded.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{env, psql, table_fingerprint, text, Setup};

const HEX_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// What converge before format 2 recorded as the key id of `key`: one SHA-256 away from it.
fn old_key_id(key: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(b"converge-key-id:");
    h.update(key);
    hex(&h.finalize())[..16].to_string()
}

/// The key converge before format 2 made of a passphrase: its SHA-256.
fn old_passphrase_key(pass: &str) -> Vec<u8> {
    Sha256::digest(pass.as_bytes()).to_vec()
}

fn hex_key_bytes() -> Vec<u8> {
    (0..32)
        .map(|i| u8::from_str_radix(&HEX_KEY[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

fn stamp(secs: u64) -> String {
    chrono::DateTime::from_timestamp(secs as i64, 0)
        .unwrap()
        .format("%Y%m%dT%H%M%SZ")
        .to_string()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn database_exists(db: &str) -> bool {
    psql(
        "postgres",
        &format!("SELECT count(*) FROM pg_database WHERE datname = '{db}'"),
    ) == "1"
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn write_json(path: &Path, v: &Value) {
    std::fs::write(path, serde_json::to_vec_pretty(v).unwrap()).unwrap();
}

/// Runs Python with an S3 client `s3` on the test endpoint.
fn s3_py(code: &str) -> String {
    let py = format!(
        "import boto3\ns3 = boto3.client('s3', endpoint_url='{}', region_name='us-east-1')\n{code}",
        env("CONVERGE_TEST_S3_ENDPOINT")
    );
    let out = Command::new("python3").args(["-c", &py]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl Setup {
    /// The local manifests, oldest first (ids sort by time).
    fn manifests(&self) -> Vec<PathBuf> {
        self.copies()
            .into_iter()
            .filter(|f| f.ends_with(".manifest.json"))
            .map(|f| self.local.join(f))
            .collect()
    }

    fn target(&self) -> String {
        format!("{}_restored", self.db)
    }

    /// A backup that must succeed; a second one in the same second would reuse the id.
    fn backup(&self, key: &str) -> String {
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let o = self.run(&["backup", "run", "db", "DIR"], key);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        text(&o)
    }

    /// `restore db@latest` (or an id) into the target, expected to fail before the target exists.
    fn refused_restore(&self, id: &str, key: &str) -> String {
        let o = self.run(&["restore", id, "--to", &self.target(), "DIR"], key);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        assert!(
            !database_exists(&self.target()),
            "nothing may change: {}",
            text(&o)
        );
        text(&o)
    }

    fn refused_verify(&self, key: &str) -> String {
        let o = self.run(&["backup", "verify", "db", "DIR"], key);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        assert!(!text(&o).contains("authenticate."), "{}", text(&o));
        text(&o)
    }
}

#[test]
fn a_planted_unencrypted_manifest_is_refused_by_verify_and_restore() {
    let s = Setup::new("planted", "7d", None);
    s.seed();
    s.backup("k1");
    psql(&s.db, "CREATE TABLE evil (x int)");
    let url = env("CONVERGE_TEST_PG_URL");
    let (base, _) = url.rsplit_once('/').unwrap();
    let dump = Command::new("pg_dump")
        .args(["-Fc", "-d", &format!("{base}/{}", s.db)])
        .output()
        .unwrap();
    assert!(dump.status.success());
    let started = now() + 120;
    let id = format!("db-{}", stamp(started));
    std::fs::write(s.local.join(format!("{id}.cvbak")), &dump.stdout).unwrap();
    let planted = json!({
        "format_version": 2, "id": id, "backup": "db", "source": "database x",
        "compression": "none", "encryption": "none", "key_id": null,
        "started_at": started, "finished_at": started,
        "raw_bytes": dump.stdout.len(), "stored_bytes": dump.stdout.len(),
        "sha256": sha256_hex(&dump.stdout),
    });
    write_json(&s.local.join(format!("{id}.manifest.json")), &planted);
    let verify = s.refused_verify("k1");
    assert!(
        verify.contains(&id)
            && verify.contains("is not an authenticated copy")
            && verify.contains("encryption: none")
            && verify.contains("= hint:"),
        "{verify}"
    );
    let restore = s.refused_restore("db@latest", "k1");
    assert!(
        restore.contains("is not an authenticated copy"),
        "{restore}"
    );
}

#[test]
fn a_manifest_without_its_mac_altered_or_from_an_earlier_converge_is_refused() {
    let s = Setup::new("mac", "7d", None);
    s.seed();
    s.backup("k1");
    let path = s.manifests().pop().unwrap();
    let good = read_json(&path);
    assert_eq!(good["mac"].as_str().map(str::len), Some(64), "{good}");
    let mut no_mac = good.clone();
    no_mac.as_object_mut().unwrap().remove("mac");
    let mut altered = good.clone();
    altered["raw_bytes"] = json!(good["raw_bytes"].as_u64().unwrap() + 1);
    let mut legacy = no_mac.clone();
    legacy["format_version"] = json!(1);
    legacy.as_object_mut().unwrap().remove("kdf");
    for (manifest, expected) in [
        (&no_mac, "the manifest has no MAC"),
        (&altered, "the manifest fails authentication"),
        (
            &legacy,
            "made by an earlier converge without a manifest MAC",
        ),
    ] {
        write_json(&path, manifest);
        let e = s.refused_verify("k1");
        assert!(e.contains(expected) && e.contains("= hint:"), "{e}");
        let e = s.refused_restore("db@latest", "k1");
        assert!(e.contains(expected), "{e}");
    }
    let e = s.refused_verify("k1");
    assert!(e.contains("run `converge backup run db`"), "{e}");
    write_json(&path, &good);
    let ok = s.run(&["backup", "verify", "db", "DIR"], "k1");
    assert!(
        text(&ok).contains("manifest MAC, checksum and every chunk authenticate"),
        "{}",
        text(&ok)
    );
}

#[test]
fn a_tampered_or_swapped_copy_fails_the_restore_before_anything_changes() {
    let s = Setup::new("swap", "7d", None);
    s.seed();
    s.backup("k1");
    psql(&s.db, "DELETE FROM items WHERE id > 10");
    s.backup("k1");
    let copies: Vec<PathBuf> = s
        .copies()
        .into_iter()
        .filter(|f| f.ends_with(".cvbak"))
        .map(|f| s.local.join(f))
        .collect();
    let (older, newer) = (&copies[0], &copies[1]);
    let original = std::fs::read(newer).unwrap();
    // Another authentic copy under the same key: every chunk authenticates.
    std::fs::copy(older, newer).unwrap();
    let e = s.refused_restore("db@latest", "k1");
    assert!(e.contains("fails its checksum"), "{e}");
    let mut appended = original.clone();
    appended.extend_from_slice(b"trailing bytes");
    std::fs::write(newer, &appended).unwrap();
    let e = s.refused_restore("db@latest", "k1");
    assert!(e.contains("fails its checksum"), "{e}");
    let mut flipped = original.clone();
    let at = flipped.len() / 2;
    flipped[at] ^= 0x40;
    std::fs::write(newer, &flipped).unwrap();
    let e = s.refused_restore("db@latest", "k1");
    assert!(e.contains("fails its checksum"), "{e}");
    std::fs::write(newer, &original).unwrap();
    let o = s.run(&["restore", "db@latest", "--to", &s.target(), "DIR"], "k1");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(psql(&s.target(), "SELECT count(*) FROM items"), "10");
}

#[test]
fn a_manifest_id_that_leaves_the_store_never_deletes_outside_it() {
    let mut s = Setup::new("victim", "1s", None);
    s.local = s.p.state.path().join("store/backups");
    s.write("1s", None);
    s.seed();
    s.backup("k1");
    let outside = s.p.state.path();
    for f in ["victim.cvbak", "victim.manifest.json"] {
        std::fs::write(outside.join(f), b"precious").unwrap();
    }
    let planted_file = "db-20200101T000000Z.manifest.json";
    let planted = |id: &str| {
        json!({
            "format_version": 2, "id": id, "backup": "db", "source": "x",
            "compression": "none", "encryption": "none", "key_id": null,
            "started_at": 1_577_836_800u64, "finished_at": 1_577_836_800u64,
            "raw_bytes": 0, "stored_bytes": 0, "sha256": "",
        })
    };
    write_json(&s.local.join(planted_file), &planted("../../victim"));
    let body = serde_json::to_string(&planted("../victim")).unwrap();
    s3_py(&format!(
        "b = '{bucket}'\ns3.put_object(Bucket=b, Key='db/{planted_file}', Body={body:?})\nfor k in ['victim.cvbak', 'victim.manifest.json']:\n    s3.put_object(Bucket=b, Key=k, Body=b'precious')",
        bucket = s.bucket,
    ));
    let out = s.backup("k1");
    assert!(
        out.contains("warning: skipped invalid manifest")
            && out.contains(planted_file)
            && out.contains("\"../../victim\""),
        "{out}"
    );
    for f in ["victim.cvbak", "victim.manifest.json"] {
        assert_eq!(std::fs::read(outside.join(f)).unwrap(), b"precious", "{f}");
    }
    assert!(s.local.join(planted_file).exists(), "skipped, not deleted");
    let left = s3_py(&format!(
        "print(sorted(o['Key'] for o in s3.list_objects_v2(Bucket='{}')['Contents'] if 'victim' in o['Key'] or '2020' in o['Key']))",
        s.bucket
    ));
    assert_eq!(
        left,
        format!("['db/{planted_file}', 'victim.cvbak', 'victim.manifest.json']")
    );
    let list = s.run(&["backup", "list", "db", "DIR"], "k1");
    assert!(
        text(&list).contains("(invalid)") && text(&list).contains("\"../victim\""),
        "{}",
        text(&list)
    );
    let by_id = s.refused_restore("db-20200101T000000Z", "k1");
    assert!(by_id.contains("is not a manifest converge made"), "{by_id}");
}

#[test]
fn a_passphrase_goes_through_argon2id_with_a_salt_per_copy() {
    let s = Setup::new("argon", "7d", None);
    s.seed();
    s.backup("k1");
    s.backup("k1");
    let ms: Vec<Value> = s.manifests().iter().map(|p| read_json(p)).collect();
    assert_eq!(ms.len(), 2);
    for m in &ms {
        assert_eq!(m["format_version"], 3, "{m}");
        assert_eq!(m["kdf"]["algorithm"], "argon2id", "{m}");
        assert_eq!(m["kdf"]["m_kib"], 19456, "{m}");
        assert_eq!(m["kdf"]["salt"].as_str().map(str::len), Some(32), "{m}");
        let id = m["key_id"].as_str().unwrap();
        let guessable = [sha256_hex(b"k1"), old_key_id(&old_passphrase_key("k1"))];
        assert!(
            guessable.iter().all(|g| !g.starts_with(id)),
            "{id} is one hash away from the passphrase"
        );
    }
    assert_ne!(ms[0]["kdf"]["salt"], ms[1]["kdf"]["salt"]);
    assert_ne!(
        ms[0]["key_id"], ms[1]["key_id"],
        "the key id depends on the salt"
    );
    let o = s.run(&["restore", "db@latest", "--to", &s.target(), "DIR"], "k1");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn raw_hex_and_base64_keys_work_and_a_rotated_key_is_named() {
    let s = Setup::new("rawkeys", "7d", None);
    s.seed();
    s.backup(HEX_KEY);
    let hex_copy = read_json(&s.manifests()[0]);
    assert!(
        hex_copy.get("kdf").is_none() && hex_copy["mac"].is_string(),
        "{hex_copy}"
    );
    let hex_id = hex_copy["id"].as_str().unwrap().to_string();
    let o = s.run(
        &["restore", "db@latest", "--to", &s.target(), "DIR"],
        HEX_KEY,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        table_fingerprint(&s.target(), "items"),
        table_fingerprint(&s.db, "items")
    );
    psql(
        "postgres",
        &format!("DROP DATABASE {} WITH (FORCE)", s.target()),
    );
    let b64 = base64::engine::general_purpose::STANDARD.encode([0x5au8; 32]);
    s.backup(&b64);
    let o = s.run(&["restore", "db@latest", "--to", &s.target(), "DIR"], &b64);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    psql(
        "postgres",
        &format!("DROP DATABASE {} WITH (FORCE)", s.target()),
    );
    let e = s.refused_restore(&hex_id, &b64);
    assert!(
        e.contains(&hex_id)
            && e.contains(hex_copy["key_id"].as_str().unwrap())
            && e.contains("restore needs the key it was made with"),
        "{e}"
    );
    let e = s.refused_restore(&hex_id, "k1");
    assert!(
        e.contains("was made with a raw key, and the configured key is a passphrase"),
        "{e}"
    );
}

#[test]
fn no_secret_appears_in_manifests_output_or_journal() {
    let s = Setup::new("nosecret", "7d", None);
    s.seed();
    let pass = "sup3r-secret-passphrase";
    let mut seen = s.backup(pass);
    for (args, key) in [
        (&["backup", "verify", "db", "DIR"][..], pass),
        (&["backup", "verify", "db", "DIR"][..], "a-wrong-passphrase"),
        (&["backup", "list", "db", "DIR"][..], pass),
    ] {
        seen.push_str(&text(&s.run(args, key)));
    }
    seen.push_str(&s.backup(HEX_KEY));
    seen.push_str(&text(&s.run(&["backup", "verify", "db", "DIR"], "k2")));
    for p in s.manifests() {
        seen.push_str(&std::fs::read_to_string(p).unwrap());
    }
    seen.push_str(&s.p.journal());
    let b64 = base64::engine::general_purpose::STANDARD;
    let leaks = [
        pass.to_string(),
        sha256_hex(pass.as_bytes()),
        old_key_id(&old_passphrase_key(pass)),
        HEX_KEY.to_string(),
        b64.encode(hex_key_bytes()),
        old_key_id(&hex_key_bytes()),
    ];
    for leak in leaks {
        assert!(!seen.contains(&leak), "{leak} in:\n{seen}");
    }
    assert!(seen.contains("key_id"), "{seen}");
}

#[test]
fn a_backup_without_a_key_is_never_said_to_authenticate() {
    let s = Setup::new("nokey", "7d", None);
    let path = s.p.path().join("converge.yaml");
    let yaml = std::fs::read_to_string(&path).unwrap();
    let unkeyed = yaml.replace("encryption: {key: \"${env:CVT_BACKUP_KEY}\"}\n", "");
    assert_ne!(yaml, unkeyed);
    std::fs::write(&path, unkeyed).unwrap();
    s.seed();
    let out = s.backup("unused");
    assert!(
        out.contains("(zstd, none)")
            && out.contains(
                "checksum matches; not authenticated (backup/db declares no encryption key)"
            )
            && !out.contains("authenticate."),
        "{out}"
    );
    let m = read_json(&s.manifests()[0]);
    assert!(m.get("mac").is_none() && m["key_id"].is_null(), "{m}");
}
