//! Migrations against a real PostgreSQL (CONVERGE_TEST_PG_URL, see scripts/pg) with the real
//! binary: a 44-file set in golang-migrate's shapes (files wrapping their own BEGIN … COMMIT,
//! indexes on tables created a few files earlier, renames, drops, type changes, down files)
//! converges to the schema `psql -f` makes of the same files and bootstraps under `--strict`;
//! failures are forward-only and name the version; down files run only when opted in, after a
//! dump; a file's own transaction never hides a half-applied migration; a killed backend
//! leaves a recorded version.

mod common;

use std::path::Path;
use std::process::Command;

use common::{pg_url, psql, text, Project};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/migrations-golang"
);

/// A project with one database (no roles), dropped afterwards.
struct Db {
    p: Project,
    name: String,
}

impl Db {
    fn new(test: &str, migrations: &str) -> Db {
        let name = format!("cvm_{test}_{}", std::process::id());
        let p = Project::new(&format!("mig{test}"), "");
        std::fs::create_dir_all(p.path().join("migrations")).unwrap();
        let db = Db { p, name };
        db.write(migrations);
        db
    }

    /// `migrations` is the flow mapping's extra fields, e.g. `rollback: down-files`.
    fn write(&self, migrations: &str) {
        let project = format!(
            "kind: Project\nname: {}\nhosts: [{{name: local}}]\nproviders: {{postgres: {{url: \"{}\"}}}}\nsync: {{prune: true}}\n---\n",
            self.p.name,
            pg_url()
        );
        let body = format!(
            "kind: Database\nname: {}\nmigrations: {{dir: migrations, lock_timeout: 2s{migrations}}}\n",
            self.name
        );
        std::fs::write(self.p.path().join("converge.yaml"), project + &body).unwrap();
    }

    fn migration(&self, file: &str, sql: &str) {
        std::fs::write(self.p.path().join("migrations").join(file), sql).unwrap();
    }

    fn sql(&self, sql: &str) -> String {
        psql(&self.name, sql)
    }

    fn version(&self) -> String {
        self.sql("SELECT coalesce(max(version), 0) FROM converge.schema_migrations")
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        drop_database(&self.name);
    }
}

fn drop_database(name: &str) {
    if std::env::var("CONVERGE_TEST_PG_URL").is_ok() {
        psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        );
    }
}

fn url_of(db: &str) -> String {
    let url = pg_url();
    format!("{}/{db}", url.rsplit_once('/').unwrap().0)
}

/// `pg_dump --schema-only` of `db` without converge's own schema, owners, privileges and the
/// lines that differ from one dump to the next.
fn schema_of(db: &str) -> String {
    let out = Command::new("pg_dump")
        .args([
            "--schema-only",
            "--no-owner",
            "--no-privileges",
            "--exclude-schema=converge",
            "-d",
            &url_of(db),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .filter(|l| !l.starts_with("-- Dumped"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn copy_fixture(to: &Path) -> Vec<String> {
    let mut ups = Vec::new();
    for e in std::fs::read_dir(FIXTURE).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        std::fs::copy(e.path(), to.join(&name)).unwrap();
        if name.ends_with(".up.sql") {
            ups.push(name);
        }
    }
    ups.sort();
    ups
}

#[test]
fn a_golang_migrate_style_set_bootstraps_under_strict_and_matches_psql() {
    let d = Db::new("golang", "");
    let ups = copy_fixture(&d.p.path().join("migrations"));
    assert!(ups.len() >= 40, "{}", ups.len());

    let strict = d.p.converge(&["plan", "DIR", "--strict"]);
    let plan = text(&strict);
    assert_eq!(strict.status.code(), Some(0), "{plan}");
    assert!(
        plan.contains("000001_create_users, 000002_create_channels"),
        "{plan}"
    );
    assert!(
        plan.contains("migrations/000001_create_users.up.sql:1 manages its own transaction"),
        "{plan}"
    );

    let o = d.p.apply();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        d.sql("SELECT count(*) FROM converge.schema_migrations"),
        ups.len().to_string()
    );
    assert_eq!(
        d.p.plan_exit(),
        0,
        "{}",
        text(&d.p.converge(&["plan", "DIR"]))
    );

    let reference = format!("{}_psql", d.name);
    drop_database(&reference);
    psql("postgres", &format!("CREATE DATABASE {reference}"));
    for up in &ups {
        let out = Command::new("psql")
            .args(["-q", "-v", "ON_ERROR_STOP=1", &url_of(&reference), "-f"])
            .arg(Path::new(FIXTURE).join(up))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{up}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (ours, theirs) = (schema_of(&d.name), schema_of(&reference));
    drop_database(&reference);
    assert!(ours.contains("CREATE TABLE public.\"AuditLog\""), "{ours}");
    assert_eq!(ours, theirs);
}

#[test]
fn a_failing_migration_stops_there_and_the_earlier_ones_of_the_apply_stay_applied() {
    let d = Db::new("forward", "");
    d.migration("000040_items.up.sql", "CREATE TABLE items (id int);\n");
    d.migration("000040_items.down.sql", "DROP TABLE items;\n");
    d.migration(
        "000041_labels.up.sql",
        "BEGIN;\nCREATE TABLE labels (id int);\nCOMMIT;\n",
    );
    d.migration("000041_labels.down.sql", "DROP TABLE labels;\n");
    d.migration(
        "000042_add_index.up.sql",
        "CREATE INDEX i ON nowhere (id);\n",
    );
    d.migration("000042_add_index.down.sql", "DROP INDEX i;\n");
    let plan = text(&d.p.converge(&["plan", "DIR"]));
    assert!(
        plan.contains("(forward-only: a failure stops at the failed file"),
        "{plan}"
    );
    let o = d.p.apply();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains(&format!("database {} is at version 000041 (000042_add_index.up.sql failed; earlier migrations of this apply stay applied)", d.name)),
        "{out}"
    );
    assert_eq!(
        d.sql("SELECT to_regclass('items') IS NOT NULL AND to_regclass('labels') IS NOT NULL"),
        "t"
    );
    assert_eq!(d.version(), "41");
    // Fixed, the next apply continues from there.
    d.migration("000042_add_index.up.sql", "CREATE INDEX i ON items (id);\n");
    let again = d.p.apply();
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert_eq!(d.version(), "42");
}

#[test]
fn with_rollback_down_files_a_dump_is_taken_first_and_the_down_files_run() {
    let d = Db::new("downfiles", ", rollback: down-files");
    applied_items_then_a_failing_third(
        &d,
        "BEGIN;\nALTER TABLE items ADD COLUMN views bigint;\nCOMMIT;\n",
    );
    let o = d.p.apply();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("were rolled back with their down files after a pg_dump to"),
        "{out}"
    );
    assert!(
        out.contains(&format!("database {} is at version 0001", d.name)),
        "{out}"
    );
    let dumps: Vec<_> = std::fs::read_dir(d.p.state.path().join("dumps"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(dumps.len(), 1, "one dump before the down files");
    let list = Command::new("pg_restore")
        .arg("--list")
        .arg(dumps[0].path())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&list.stdout).contains("TABLE public items"));
    assert_eq!(d.sql("SELECT count(*) FROM information_schema.columns WHERE table_name = 'items' AND column_name = 'views'"), "0");
    assert_eq!(d.sql("SELECT count(*) FROM items"), "1");
    assert_eq!(d.version(), "1");
}

#[test]
fn when_the_dump_fails_the_down_files_do_not_run_and_the_error_says_so() {
    let d = Db::new("dumpfails", ", rollback: down-files");
    applied_items_then_a_failing_third(&d, "ALTER TABLE items ADD COLUMN views bigint;\n");
    // No pg_dump on PATH: the dump cannot run.
    let empty = tempfile::tempdir().unwrap();
    let o = d.p.converge_env(
        &["apply", "DIR", "--auto-approve"],
        &[("PATH", empty.path().to_str().unwrap())],
    );
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("did not run because the pg_dump before them failed"),
        "{out}"
    );
    assert!(
        out.contains(&format!("database {} is at version 0002", d.name)),
        "{out}"
    );
    assert_eq!(d.version(), "2");
    assert_eq!(d.sql("SELECT count(*) FROM information_schema.columns WHERE table_name = 'items' AND column_name = 'views'"), "1");
}

#[test]
fn a_file_with_its_own_transaction_that_fails_after_its_commit_is_reported_half_applied() {
    let d = Db::new("owntx", "");
    d.migration(
        "0001_a.up.sql",
        "BEGIN;\nCREATE TABLE a ();\nCOMMIT;\nSELECT 1/0;\n",
    );
    let o = d.p.apply();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("migrations/0001_a.up.sql:4: division by zero"),
        "{out}"
    );
    assert!(out.contains("its statements up to line 3 were committed before: the migration is half-applied and not recorded"), "{out}");
    assert_eq!(d.sql("SELECT to_regclass('a') IS NOT NULL"), "t");
    assert_eq!(d.version(), "0");
}

#[test]
fn a_file_with_its_own_transaction_keeps_the_timeouts_and_is_recorded_with_its_commit() {
    let d = Db::new("owntimeout", ", statement_timeout: 1s");
    d.migration(
        "0001_a.up.sql",
        "BEGIN;\nCREATE TABLE a (id int);\nCOMMIT;\n",
    );
    d.migration(
        "0002_slow.up.sql",
        "BEGIN;\nCREATE TABLE b (id int);\nSELECT pg_sleep(3);\nCOMMIT;\n",
    );
    let o = d.p.apply();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("canceling statement due to statement timeout"),
        "{out}"
    );
    assert!(
        out.contains(&format!("database {} is at version 0001", d.name)),
        "{out}"
    );
    assert_eq!(d.sql("SELECT to_regclass('b') IS NULL"), "t");
    assert_eq!(d.version(), "1");
}

#[test]
fn terminating_the_migrating_backend_leaves_a_recorded_version_and_the_next_apply_converges() {
    let d = Db::new("terminate", "");
    d.migration("0001_a.up.sql", "CREATE TABLE a (id int);\n");
    d.migration(
        "0002_slow.up.sql",
        "CREATE TABLE b (id int);\nSELECT pg_sleep(5);\n",
    );
    d.migration("0003_c.up.sql", "CREATE TABLE c (id int);\n");
    let o = std::thread::scope(|s| {
        let apply = s.spawn(|| d.p.apply());
        let started = std::time::Instant::now();
        loop {
            assert!(
                started.elapsed().as_secs() < 30,
                "the migration never started"
            );
            let n = psql(
                "postgres",
                &format!("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{}' AND query LIKE '%pg_sleep(5)%' AND pid <> pg_backend_pid()", d.name),
            );
            if n != "0" {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        apply.join().unwrap()
    });
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains(&format!("database {} is at version 0001", d.name)),
        "{out}"
    );
    assert_eq!(d.version(), "1");
    assert_eq!(d.sql("SELECT to_regclass('b') IS NULL"), "t");
    let again = d.p.apply();
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert_eq!(d.version(), "3");
    assert_eq!(d.p.plan_exit(), 0);
}

#[test]
fn rollback_down_files_without_a_down_file_is_a_validation_error() {
    let d = Db::new("nodown", ", rollback: down-files");
    d.migration("0001_a.up.sql", "CREATE TABLE a (id int);\n");
    let o = d.p.converge(&["plan", "DIR"]);
    let out = text(&o);
    assert_ne!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("`rollback: down-files` needs a down file for every migration; migrations/0001_a.up.sql has none"), "{out}");
    assert!(out.contains("converge.yaml:"), "{out}");
    d.write(", rollback: sometimes");
    let bad = text(&d.p.converge(&["plan", "DIR"]));
    assert!(bad.contains("sometimes"), "{bad}");
    assert!(bad.contains("converge.yaml:"), "{bad}");
}

/// `0001_items` applied with a row in it; then `0002_views` (up as given) and a `0003` that
/// fails, each with a down file.
fn applied_items_then_a_failing_third(d: &Db, views_up: &str) {
    d.migration("0001_items.up.sql", "CREATE TABLE items (id int);\n");
    d.migration("0001_items.down.sql", "DROP TABLE items;\n");
    assert_eq!(d.p.apply().status.code(), Some(0));
    d.sql("INSERT INTO items VALUES (7)");
    d.migration("0002_views.up.sql", views_up);
    d.migration(
        "0002_views.down.sql",
        "ALTER TABLE items DROP COLUMN views;\n",
    );
    d.migration("0003_broken.up.sql", "SELECT no_such_function();\n");
    d.migration("0003_broken.down.sql", "SELECT 1;\n");
}
