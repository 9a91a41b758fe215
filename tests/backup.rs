//! Buckets and backups against a real S3 HTTP endpoint (moto, started by scripts/test) and a real
//! PostgreSQL: bucket create and drift, backup → restore with identical data, a wrong key, a
//! tampered copy, retention, and a failed upload that leaves no manifest. `backup/auth.rs`: the
//! authentication of copies (manifest MAC, keys, ids, checksums on restore). `backup/counts.rs`:
//! the row counts a database copy's manifest records, taken in the dump's snapshot.

#[path = "backup/auth.rs"]
mod auth;
mod common;
#[path = "backup/counts.rs"]
mod counts;

use std::process::Command;

use common::{text, Project};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name}: run scripts/test (it starts PostgreSQL and an S3 server)")
    })
}

fn psql(db: &str, sql: &str) -> String {
    let url = env("CONVERGE_TEST_PG_URL")
        .rsplit_once('/')
        .map(|(b, _)| format!("{b}/{db}"))
        .unwrap();
    let out = Command::new("psql")
        .args(["-qAt", "-v", "ON_ERROR_STOP=1", &url, "-c", sql])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

struct Setup {
    p: Project,
    db: String,
    bucket: String,
    local: std::path::PathBuf,
}

impl Setup {
    fn new(test: &str, keep_local: &str, s3_bucket_override: Option<&str>) -> Setup {
        let pid = std::process::id();
        let p = Project::new(&format!("bk{test}"), "");
        let db = format!("cvt_bk{test}_{pid}");
        let bucket = format!("cvt-bk{test}-{pid}");
        let local = p.state.path().join("local-backups");
        let s = Setup {
            p,
            db,
            bucket,
            local,
        };
        s.write(keep_local, s3_bucket_override);
        s
    }

    fn write(&self, keep_local: &str, s3_bucket_override: Option<&str>) {
        let s3_bucket = s3_bucket_override.unwrap_or(&self.bucket);
        let yaml = format!(
            "kind: Project\nname: {p}\nhosts: [{{name: local}}]\nproviders:\n  postgres: {{url: \"{pg}\"}}\n  s3: {{endpoint: \"{s3}\", region: us-east-1}}\n---\nkind: Database\nname: {db}\n---\nkind: Bucket\nname: {bucket}\nversioning: true\nlifecycle: [{{prefix: db/, transition: {{after: 30d, storage_class: GLACIER}}, expire_after: 365d}}, {{abort_incomplete_uploads_after: 7d}}]\n---\nkind: Backup\nname: db\nsource: {{database: {db}}}\nschedule: \"0 * * * *\"\nencryption: {{key: \"${{env:CVT_BACKUP_KEY}}\"}}\ndestinations:\n  - {{url: \"file://{local}\", keep: {keep_local}}}\n  - {{url: \"s3://{s3_bucket}/db/\", keep: 30d}}\nverify: checksum\n",
            p = self.p.name,
            pg = env("CONVERGE_TEST_PG_URL"),
            s3 = env("CONVERGE_TEST_S3_ENDPOINT"),
            db = self.db,
            bucket = self.bucket,
            local = self.local.display(),
        );
        std::fs::write(self.p.path().join("converge.yaml"), yaml).unwrap();
    }

    fn run(&self, args: &[&str], key: &str) -> std::process::Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_converge"));
        cmd.arg("--state-dir").arg(self.p.state.path());
        for a in args {
            cmd.arg(if *a == "DIR" {
                self.p.path().to_str().unwrap()
            } else {
                a
            });
        }
        cmd.env("CVT_BACKUP_KEY", key)
            .env("CVT_SECRET", "x")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    }

    fn seed(&self) {
        assert_eq!(
            self.run(&["apply", "DIR", "--auto-approve"], "k1")
                .status
                .code(),
            Some(0)
        );
        psql(&self.db, "CREATE TABLE items (id int PRIMARY KEY, name text, price numeric); INSERT INTO items SELECT g, 'item ' || g, g * 1.5 FROM generate_series(1, 5000) g; CREATE TABLE tags (item int, tag text); INSERT INTO tags SELECT g % 100, 't' || g FROM generate_series(1, 2000) g;");
    }

    fn copies(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.local)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        if let Ok(url) = std::env::var("CONVERGE_TEST_PG_URL") {
            for db in [self.db.clone(), format!("{}_restored", self.db)] {
                let _ = Command::new("psql")
                    .args([
                        &url,
                        "-qc",
                        &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
                    ])
                    .output();
            }
        }
    }
}

fn table_fingerprint(db: &str, table: &str) -> String {
    psql(db, &format!("SELECT count(*) || ':' || md5(string_agg(t::text, ',' ORDER BY t::text)) FROM {table} t"))
}

#[test]
fn a_bucket_is_created_and_its_drift_repaired() {
    let s = Setup::new("bucket", "7d", None);
    let o = s.run(&["apply", "DIR", "--auto-approve"], "k1");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        s.run(&["plan", "DIR", "--detailed-exitcode"], "k1")
            .status
            .code(),
        Some(0)
    );
    let py = format!(
        "import boto3; s3 = boto3.client('s3', endpoint_url='{}', region_name='us-east-1'); s3.put_bucket_versioning(Bucket='{}', VersioningConfiguration={{'Status': 'Suspended'}})",
        env("CONVERGE_TEST_S3_ENDPOINT"),
        s.bucket
    );
    let out = Command::new("python3").args(["-c", &py]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan = text(&s.run(&["plan", "DIR"], "k1"));
    assert!(
        plan.contains("~ versioning = \"disabled\" -> \"enabled\""),
        "{plan}"
    );
    assert_eq!(
        s.run(&["apply", "DIR", "--auto-approve"], "k1")
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        s.run(&["plan", "DIR", "--detailed-exitcode"], "k1")
            .status
            .code(),
        Some(0)
    );
}

#[test]
fn a_backup_restores_identical_data() {
    let s = Setup::new("roundtrip", "7d", None);
    s.seed();
    let o = s.run(&["backup", "run", "db", "DIR"], "k1");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains("(zstd, aes-256-gcm)") && out.contains("Verified db-"),
        "{out}"
    );
    let list = text(&s.run(&["backup", "list", "db", "DIR"], "k1"));
    assert!(
        list.contains(&format!("s3://{}/db/", s.bucket)) && list.contains("kept (7d)"),
        "{list}"
    );
    let target = format!("{}_restored", s.db);
    let o = s.run(&["restore", "db@latest", "--to", &target, "DIR"], "k1");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    for table in ["items", "tags"] {
        assert_eq!(
            table_fingerprint(&target, table),
            table_fingerprint(&s.db, table),
            "{table}"
        );
    }
    let again = s.run(&["restore", "db@latest", "--to", &target, "DIR"], "k1");
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again).contains("restore refuses to overwrite it"),
        "{}",
        text(&again)
    );
    let drill = s.run(
        &["backup", "verify", "db", "DIR", "--mode", "restore"],
        "k1",
    );
    assert!(
        text(&drill).contains("restored 2 table(s), 7000 row(s)"),
        "{}",
        text(&drill)
    );
}

#[test]
fn a_wrong_key_and_a_tampered_copy_fail_clearly() {
    let s = Setup::new("tamper", "7d", None);
    s.seed();
    assert_eq!(
        s.run(&["backup", "run", "db", "DIR"], "k1").status.code(),
        Some(0)
    );
    let wrong = s.run(&["backup", "verify", "db", "DIR"], "another-key");
    assert_eq!(wrong.status.code(), Some(1));
    assert!(
        text(&wrong).contains("was encrypted with key")
            && text(&wrong).contains("restore needs the key it was made with"),
        "{}",
        text(&wrong)
    );
    let copy = s
        .copies()
        .into_iter()
        .find(|f| f.ends_with(".cvbak"))
        .unwrap();
    let path = s.local.join(copy);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();
    let bad = s.run(&["backup", "verify", "db", "DIR"], "k1");
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad).contains("fails its checksum"), "{}", text(&bad));
}

#[test]
fn retention_deletes_old_copies_but_keeps_the_newest() {
    let s = Setup::new("retention", "1s", None);
    s.seed();
    for _ in 0..3 {
        assert_eq!(
            s.run(&["backup", "run", "db", "DIR"], "k1").status.code(),
            Some(0)
        );
        std::thread::sleep(std::time::Duration::from_millis(2100));
    }
    let copies = s.copies();
    assert_eq!(
        copies.iter().filter(|c| c.ends_with(".cvbak")).count(),
        1,
        "{copies:?}"
    );
    assert_eq!(
        copies
            .iter()
            .filter(|c| c.ends_with(".manifest.json"))
            .count(),
        1,
        "{copies:?}"
    );
    let list = text(&s.run(&["backup", "list", "db", "DIR"], "k1"));
    assert_eq!(
        list.matches(&format!("s3://{}/db/", s.bucket)).count(),
        3,
        "the S3 tier keeps 30d: {list}"
    );
}

#[test]
fn a_failed_upload_leaves_no_manifest_anywhere() {
    let s = Setup::new("failed", "7d", Some("no-such-bucket-for-converge"));
    s.seed();
    let o = s.run(&["backup", "run", "db", "DIR"], "k1");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("Nothing was kept that looks like a good backup"),
        "{}",
        text(&o)
    );
    assert!(s.copies().is_empty(), "{:?}", s.copies());
    assert!(s.p.journal().contains("\"event\":\"backup-failed\""));
}

#[test]
fn the_agent_runs_a_backup_when_its_schedule_fires() {
    let s = Setup::new("schedule", "7d", None);
    s.seed();
    let yaml = std::fs::read_to_string(s.p.path().join("converge.yaml"))
        .unwrap()
        .replace("schedule: \"0 * * * *\"", "schedule: \"* * * * *\"")
        .replace(
            "hosts: [{name: local}]",
            "hosts: [{name: local}]\nsync: {interval: 1s}",
        );
    std::fs::write(s.p.path().join("converge.yaml"), yaml).unwrap();
    let source = s.p.path().to_str().unwrap().to_string();
    let agent = common::Agent::start(
        s.p.state.path(),
        19540,
        &["--source", &source],
        &[("CVT_BACKUP_KEY", "k1")],
    );
    common::wait_until(90, "a scheduled backup", || {
        s.copies().iter().any(|c| c.ends_with(".manifest.json"))
    });
    common::wait_until(10, "the backup metric", || {
        agent
            .get("/metrics")
            .1
            .contains("converge_backup_last_success_timestamp_seconds{backup=\"db\"}")
    });
    assert!(agent.log().contains("scheduled backup"), "{}", agent.log());
}
