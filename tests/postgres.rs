//! The PostgreSQL provider against a real server (started by scripts/test, see scripts/pg):
//! create from empty, no-op, role and grant drift, changed checksums rejected then repaired,
//! CRLF files, concurrent runners, failing migrations, CONCURRENTLY indexes, rollback of
//! migrations when a later step fails, and the lints.

mod common;

use std::process::Command;

use common::{pg_url, psql, text, Project};

/// A project with one database `<prefix>` and roles `<prefix>_app`, `<prefix>_ro`, dropped afterwards.
struct Db {
    p: Project,
    name: String,
}

impl Db {
    fn new(test: &str) -> Db {
        let name = format!("cvt_{test}_{}", std::process::id());
        let p = Project::new(&format!("pg{test}"), "");
        std::fs::create_dir_all(p.path().join("migrations")).unwrap();
        let db = Db { p, name };
        db.write("");
        db
    }

    /// Writes the database document; `extra` is appended to it (YAML fields or more documents).
    fn write(&self, extra: &str) {
        let n = &self.name;
        let body = format!(
            "kind: Database\nname: {n}\nowner: {n}_app\nextensions: [pgcrypto]\nroles:\n  - {{name: {n}_app, login: true, password: \"${{env:CVT_SECRET}}\"}}\n  - {{name: {n}_ro, login: true, grants: [{{privileges: [SELECT], on: all-tables, schema: public}}, {{privileges: [USAGE], on: schema}}]}}\nmigrations: {{dir: migrations, lock_timeout: 2s}}\n{extra}"
        );
        let project = format!(
            "kind: Project\nname: {}\nhosts: [{{name: local}}]\nproviders: {{postgres: {{url: \"{}\"}}}}\nsync: {{prune: true}}\n---\n",
            self.p.name,
            pg_url()
        );
        std::fs::write(self.p.path().join("converge.yaml"), project + &body).unwrap();
    }

    /// Opts in to down files (`rollback: down-files`); migrations are forward-only otherwise.
    fn opt_in_down_files(&self) {
        let path = self.p.path().join("converge.yaml");
        let yaml = std::fs::read_to_string(&path).unwrap().replace(
            "lock_timeout: 2s}",
            "lock_timeout: 2s, rollback: down-files}",
        );
        std::fs::write(path, yaml).unwrap();
    }

    fn migration(&self, file: &str, sql: &str) {
        std::fs::write(self.p.path().join("migrations").join(file), sql).unwrap();
    }

    fn sql(&self, sql: &str) -> String {
        psql(&self.name, sql)
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let Ok(url) = std::env::var("CONVERGE_TEST_PG_URL") else {
            return;
        };
        let n = &self.name;
        let _ = Command::new("psql")
            .args([
                &url,
                "-qc",
                &format!("DROP DATABASE IF EXISTS {n} WITH (FORCE)"),
            ])
            .output();
        for r in [format!("{n}_app"), format!("{n}_ro")] {
            let _ = Command::new("psql")
                .args([&url, "-qc", &format!("DROP ROLE IF EXISTS {r}")])
                .output();
        }
    }
}

#[test]
fn create_from_empty_then_no_op_then_role_and_grant_drift_repaired() {
    let d = Db::new("create");
    d.migration(
        "0001_items.up.sql",
        "CREATE TABLE items (id bigserial PRIMARY KEY, name text NOT NULL);\n",
    );
    d.migration("0001_items.down.sql", "DROP TABLE items;\n");
    let o = d.p.apply();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(d.sql("SELECT count(*) FROM items"), "0");
    assert_eq!(
        d.sql("SELECT version || ' ' || name FROM converge.schema_migrations"),
        "1 items"
    );
    assert_eq!(
        d.sql(&format!(
            "SELECT has_table_privilege('{}_ro', 'items', 'SELECT')",
            d.name
        )),
        "t"
    );
    assert_eq!(
        d.sql("SELECT extname FROM pg_extension WHERE extname = 'pgcrypto'"),
        "pgcrypto"
    );
    assert_eq!(
        psql(
            "postgres",
            &format!(
                "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{}'",
                d.name
            )
        ),
        format!("{}_app", d.name)
    );
    assert_eq!(
        d.p.plan_exit(),
        0,
        "{}",
        text(&d.p.converge(&["plan", "DIR"]))
    );

    d.sql(&format!(
        "REVOKE SELECT ON items FROM {0}_ro; ALTER ROLE {0}_ro NOLOGIN CONNECTION LIMIT 3",
        d.name
    ));
    let plan = text(&d.p.converge(&["plan", "DIR"]));
    assert!(
        plan.contains(&format!(
            "~ roles.{}_ro           = \"nologin, connection limit 3\" -> \"login\"",
            d.name
        )),
        "{plan}"
    );
    assert!(
        plan.contains(&format!(
            "+ roles.{}_ro.grants[0] = \"SELECT on all-tables in public\"",
            d.name
        )),
        "{plan}"
    );
    assert_eq!(d.p.apply().status.code(), Some(0));
    assert_eq!(d.p.plan_exit(), 0);
    assert_eq!(
        d.sql(&format!(
            "SELECT has_table_privilege('{}_ro', 'items', 'SELECT')",
            d.name
        )),
        "t"
    );

    // A password changed by hand is drift too: the server's SCRAM verifier is checked.
    d.sql(&format!(
        "ALTER ROLE {}_app PASSWORD 'changed-by-hand'",
        d.name
    ));
    let plan = text(&d.p.converge(&["plan", "DIR"]));
    assert!(
        plan.contains(&format!("~ roles.{}_app.password = (sensitive)", d.name)),
        "{plan}"
    );
    assert!(
        !plan.contains("changed-by-hand") && !plan.contains("sup3r-s3cret-value"),
        "{plan}"
    );
    assert_eq!(d.p.apply().status.code(), Some(0));
    assert_eq!(d.p.plan_exit(), 0);
}

#[test]
fn a_changed_applied_migration_stops_the_plan_until_repaired_and_crlf_is_not_a_change() {
    let d = Db::new("checksum");
    d.migration(
        "0001_items.up.sql",
        "CREATE TABLE items (id int);\nCREATE TABLE more (id int);\n",
    );
    assert_eq!(d.p.apply().status.code(), Some(0));
    d.migration(
        "0001_items.up.sql",
        "CREATE TABLE items (id int);\r\nCREATE TABLE more (id int);\r\n",
    );
    assert_eq!(d.p.plan_exit(), 0, "CRLF line endings are the same file");
    d.migration("0001_items.up.sql", "CREATE TABLE items (id bigint);\n");
    let o = d.p.converge(&["plan", "DIR"]);
    assert_eq!(o.status.code(), Some(1));
    let out = text(&o);
    assert!(out.contains("migration 0001_items was applied, and its file migrations/0001_items.up.sql has changed since"), "{out}");
    assert!(
        out.contains(&format!("converge migrations repair {}", d.name)),
        "{out}"
    );
    assert!(out.contains("This plan cannot be applied"), "{out}");
    assert_eq!(d.p.apply().status.code(), Some(1), "apply refuses too");
    let o = d.p.converge(&["migrations", "repair", &d.name, "DIR"]);
    assert!(
        text(&o).contains("Accepted the current checksum of 1 applied migration(s)"),
        "{}",
        text(&o)
    );
    assert_eq!(d.p.plan_exit(), 0);
}

#[test]
fn a_failing_migration_leaves_the_database_as_it_was_before_it() {
    let d = Db::new("failing");
    d.migration("0001_items.up.sql", "CREATE TABLE items (id int);\n");
    assert_eq!(d.p.apply().status.code(), Some(0));
    d.migration(
        "0002_broken.up.sql",
        "CREATE TABLE half (id int);\nINSERT INTO items VALUES (1);\nSELECT no_such_function();\n",
    );
    let o = d.p.apply();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o)
            .contains("migrations/0002_broken.up.sql: function no_such_function() does not exist"),
        "{}",
        text(&o)
    );
    assert_eq!(d.sql("SELECT to_regclass('half') IS NULL"), "t");
    assert_eq!(d.sql("SELECT count(*) FROM items"), "0");
    assert_eq!(
        d.sql("SELECT max(version) FROM converge.schema_migrations"),
        "1"
    );
}

#[test]
fn a_no_transaction_migration_builds_its_index_concurrently() {
    let d = Db::new("concurrently");
    d.migration(
        "0001_items.up.sql",
        "CREATE TABLE items (id int, name text);\n",
    );
    d.migration(
        "0002_index.up.sql",
        "-- converge:no-transaction\nCREATE INDEX CONCURRENTLY items_name ON items (name);\n",
    );
    let o = d.p.apply();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        d.sql("SELECT indexname FROM pg_indexes WHERE indexname = 'items_name'"),
        "items_name"
    );
    assert_eq!(
        d.sql("SELECT count(*) FROM converge.schema_migrations"),
        "2"
    );
}

#[test]
fn two_runners_migrating_one_database_run_each_migration_once() {
    let d = Db::new("concurrent");
    // The database and roles first, so both runners plan only migrations.
    d.migration("0001_init.up.sql", "CREATE TABLE t1 (id int);\n");
    assert_eq!(d.p.apply().status.code(), Some(0));
    for i in 2..=20 {
        d.migration(
            &format!("{i:04}_t{i}.up.sql"),
            &format!("CREATE TABLE t{i} (id int); SELECT pg_sleep(0.02);\n"),
        );
    }
    let other_state = tempfile::tempdir().unwrap();
    let spawn = |state: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_converge"))
            .arg("--state-dir")
            .arg(state)
            .args(["apply", d.p.path().to_str().unwrap(), "--auto-approve"])
            .env("CVT_SECRET", "sup3r-s3cret-value")
            .stdin(std::process::Stdio::null())
            .output()
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| spawn(d.p.state.path()).unwrap());
        let b = s.spawn(|| spawn(other_state.path()).unwrap());
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(a.status.code(), Some(0), "{}", text(&a));
    assert_eq!(b.status.code(), Some(0), "{}", text(&b));
    assert_eq!(
        d.sql("SELECT count(*) FROM converge.schema_migrations"),
        "20"
    );
    assert_eq!(
        d.sql("SELECT count(DISTINCT version) FROM converge.schema_migrations"),
        "20"
    );
    assert_eq!(d.p.plan_exit(), 0);
}

#[test]
fn when_a_later_step_fails_the_migrations_of_that_apply_are_rolled_back() {
    let d = Db::new("rollback");
    d.opt_in_down_files();
    d.migration("0001_items.up.sql", "CREATE TABLE items (id int);\n");
    d.migration("0001_items.down.sql", "DROP TABLE items;\n");
    assert_eq!(d.p.apply().status.code(), Some(0));
    d.migration(
        "0002_views.up.sql",
        "ALTER TABLE items ADD COLUMN views bigint;\n",
    );
    d.migration(
        "0002_views.down.sql",
        "ALTER TABLE items DROP COLUMN views;\n",
    );
    let broken = format!("---\nkind: Service\nname: web\nimage: converge-test/httpd:broken\nports: [{{container: 8000}}]\ndepends_on: [database/{}]\nhealth: {{http: {{path: /health, port: 8000}}, interval: 200ms, retries: 5}}\n", d.name);
    d.write(&broken);
    d.opt_in_down_files();
    let plan = text(&d.p.converge(&["plan", "DIR"]));
    assert!(
        plan.contains("apply 1 migration(s): 0002_views\n"),
        "no warning: the migration can be rolled back: {plan}"
    );
    let o = d.p.apply();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("undo migrate database/{} ... ok", d.name)),
        "{}",
        text(&o)
    );
    assert_eq!(d.sql("SELECT count(*) FROM information_schema.columns WHERE table_name = 'items' AND column_name = 'views'"), "0");
    assert_eq!(
        d.sql("SELECT max(version) FROM converge.schema_migrations"),
        "1"
    );
}

#[test]
fn in_prod_a_dump_is_taken_before_down_migrations_run() {
    let d = Db::new("proddump");
    d.opt_in_down_files();
    d.migration("0001_items.up.sql", "CREATE TABLE items (id int);\n");
    d.migration("0001_items.down.sql", "DROP TABLE items;\n");
    let apply = |d: &Db| {
        d.p.converge(&["apply", "DIR", "--env", "prod", "--auto-approve"])
    };
    assert_eq!(apply(&d).status.code(), Some(0));
    d.sql("INSERT INTO items VALUES (42)");
    d.migration(
        "0002_views.up.sql",
        "ALTER TABLE items ADD COLUMN views bigint;\n",
    );
    d.migration(
        "0002_views.down.sql",
        "ALTER TABLE items DROP COLUMN views;\n",
    );
    d.write(&format!("---\nkind: Service\nname: web\nimage: converge-test/httpd:broken\nports: [{{container: 8000}}]\ndepends_on: [database/{}]\nhealth: {{http: {{path: /health, port: 8000}}, interval: 200ms, retries: 3}}\n", d.name));
    d.opt_in_down_files();
    let o = apply(&d);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    // The safety copy is taken before the down file runs, and is a restorable backup copy.
    let saved = format!("saved: database {} saved as safety-db-{}-", d.name, d.name);
    let undo = format!("undo migrate database/{}", d.name);
    let (at_copy, at_undo) = (out.find(&saved), out.find(&undo));
    assert!(
        at_copy.is_some() && at_undo.is_some() && at_copy < at_undo,
        "one safety copy before the down migration: {out}"
    );
    let copy = format!("{}_before", d.name);
    let id = format!("safety-db-{}@latest", d.name);
    let o = d.p.converge(&["restore", &id, "DIR", "--to", &copy]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        psql(&copy, "SELECT count(views) + max(id) FROM items"),
        "42"
    );
    psql("postgres", &format!("DROP DATABASE {copy}"));
    assert_eq!(d.sql("SELECT count(*) FROM information_schema.columns WHERE table_name = 'items' AND column_name = 'views'"), "0");
}

#[test]
fn dangerous_migrations_are_linted_and_strict_fails_on_them() {
    let d = Db::new("lint");
    d.migration("0001_items.up.sql", "CREATE TABLE items (id int);\n");
    assert_eq!(d.p.apply().status.code(), Some(0));
    d.migration("0002_bad.up.sql", "CREATE INDEX items_id ON items (id);\nALTER TABLE items ADD COLUMN price int NOT NULL;\nALTER TABLE items RENAME COLUMN id TO item_id;\n");
    let o = d.p.converge(&["plan", "DIR"]);
    assert_eq!(o.status.code(), Some(0));
    let out = text(&o);
    assert!(out.contains("warning: migrations/0002_bad.up.sql:1: CREATE INDEX without CONCURRENTLY blocks writes to `items`"), "{out}");
    assert!(
        out.contains(
            "warning: migrations/0002_bad.up.sql:2: ADD COLUMN … NOT NULL without a default"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "warning: migrations/0002_bad.up.sql:3: RENAME breaks the version still running"
        ),
        "{out}"
    );
    let strict = d.p.converge(&["plan", "DIR", "--strict"]);
    assert_eq!(strict.status.code(), Some(1));
    assert!(text(&strict).contains("3 migration lint warning(s) and --strict"));
}

#[test]
fn out_of_order_migrations_are_refused_unless_allowed() {
    let d = Db::new("order");
    d.migration("0002_b.up.sql", "CREATE TABLE b (id int);\n");
    assert_eq!(d.p.apply().status.code(), Some(0));
    d.migration("0001_a.up.sql", "CREATE TABLE a (id int);\n");
    let o = d.p.converge(&["plan", "DIR"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o)
            .contains("migrations/0001_a.up.sql is older than the latest applied migration (0002)"),
        "{}",
        text(&o)
    );
    let allowed = std::fs::read_to_string(d.p.path().join("converge.yaml"))
        .unwrap()
        .replace(
            "lock_timeout: 2s}",
            "lock_timeout: 2s, allow_out_of_order: true}",
        );
    std::fs::write(d.p.path().join("converge.yaml"), allowed).unwrap();
    assert_eq!(d.p.apply().status.code(), Some(0));
    assert_eq!(
        d.sql("SELECT count(*) FROM converge.schema_migrations"),
        "2"
    );
}

#[test]
fn grants_on_a_schema_a_migration_creates_and_database_grants_converge_in_one_apply() {
    let d = Db::new("schemagrant");
    d.migration(
        "0001_reports.up.sql",
        "CREATE SCHEMA reports; CREATE TABLE reports.daily (d date);\n",
    );
    let n = &d.name;
    let yaml = format!(
        "kind: Project\nname: {}\nhosts: [{{name: local}}]\nproviders: {{postgres: {{url: \"{}\"}}}}\n---\nkind: Database\nname: {n}\nroles:\n  - name: {n}_ro\n    login: true\n    grants:\n      - {{privileges: [CONNECT], on: database}}\n      - {{privileges: [USAGE], on: schema, schema: reports}}\n      - {{privileges: [SELECT], on: all-tables, schema: reports}}\nmigrations: {{dir: migrations}}\n",
        d.p.name,
        pg_url()
    );
    std::fs::write(d.p.path().join("converge.yaml"), yaml).unwrap();
    let o = d.p.apply();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        d.sql(&format!(
            "SELECT has_table_privilege('{n}_ro', 'reports.daily', 'SELECT')"
        )),
        "t"
    );
    assert_eq!(
        d.p.plan_exit(),
        0,
        "{}",
        text(&d.p.converge(&["plan", "DIR"]))
    );
}

/// Issue 14, part 4: with `log_statement = all` (on converge's own connections only, through
/// the URL's `options`), the server log shows the SCRAM verifier and never the password; the
/// password is still checked against the server's record (no change, then a rotation).
#[test]
fn role_passwords_reach_the_server_only_as_scram_verifiers() {
    let d = Db::new("scramlog");
    d.migration("0001_t.up.sql", "CREATE TABLE t (id int);\n");
    let logged = format!("{}?options=-c%20log_statement%3Dall", pg_url());
    let yaml = std::fs::read_to_string(d.p.path().join("converge.yaml"))
        .unwrap()
        .replace(
            &format!("url: \"{}\"", pg_url()),
            &format!("url: \"{logged}\""),
        );
    std::fs::write(d.p.path().join("converge.yaml"), yaml).unwrap();
    let log = server_log();
    let run = |command: &str, password: &str| {
        Command::new(env!("CARGO_BIN_EXE_converge"))
            .arg("--state-dir")
            .arg(d.p.state.path())
            .arg(command)
            .arg(d.p.path())
            .arg(match command {
                "plan" => "--detailed-exitcode",
                _ => "--auto-approve",
            })
            .env("CVT_SECRET", password)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let first = format!("first-pw-{}-Zq7", std::process::id());
    let second = format!("second-pw-{}-Xk2", std::process::id());
    let before = std::fs::metadata(&log).unwrap().len();

    let o = run("apply", &first);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = run("plan", &first);
    assert_eq!(
        o.status.code(),
        Some(0),
        "the verifier matches: {}",
        text(&o)
    );
    let o = run("plan", &second);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("~ roles.{}_app.password = (sensitive)", d.name)),
        "{}",
        text(&o)
    );
    let o = run("apply", &second);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(run("plan", &second).status.code(), Some(0));

    let stored = psql(
        "postgres",
        &format!(
            "SELECT rolpassword FROM pg_authid WHERE rolname = '{}_app'",
            d.name
        ),
    );
    assert!(stored.starts_with("SCRAM-SHA-256$4096:"), "{stored}");
    assert!(converge::providers::postgres::scram_matches(
        &stored, &second
    ));

    let bytes = std::fs::read(&log).unwrap();
    let written = String::from_utf8_lossy(&bytes[before as usize..]);
    for password in [&first, &second] {
        assert!(
            !written.contains(password.as_str()),
            "the password is in the server log {}",
            log.display()
        );
    }
    let sets = format!(
        "ALTER ROLE \"{}_app\" PASSWORD 'SCRAM-SHA-256$4096:",
        d.name
    );
    assert_eq!(
        written.matches(&sets).count(),
        2,
        "log_statement = all logged both password changes, as verifiers:\n{written}"
    );
}

/// The test server's log: `pg_current_logfile()` with the logging collector, else the file
/// scripts/pg starts the server with (`<dir>/server.log`, next to `<dir>/data`).
fn server_log() -> std::path::PathBuf {
    let data = std::path::PathBuf::from(psql("postgres", "SHOW data_directory"));
    let current = psql("postgres", "SELECT coalesce(pg_current_logfile(), '')");
    let log = if current.is_empty() {
        data.parent().unwrap().join("server.log")
    } else {
        data.join(current)
    };
    assert!(
        log.is_file(),
        "cannot find the test server's log at {}: start it with scripts/pg",
        log.display()
    );
    log
}
