//! Data is copied before converge drops it: a pruned database or volume gets a safety copy
//! (encrypted with the project's backup key when one is declared, else in a private directory),
//! listed in the outcome and restorable with `converge restore`; when the copy fails nothing is
//! dropped. A volume's latest declared `prune` decides, not the one it was created with. A failed
//! database step removes the roles it created. Real PostgreSQL and Docker.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{docker, pg_url, psql, text, Project};

const KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn pg_project(p: &Project, body: &str) {
    let project = format!(
        "kind: Project\nname: {}\nhosts: [{{name: local}}]\nproviders: {{postgres: {{url: \"{}\"}}}}\nsync: {{prune: true}}\n",
        p.name,
        pg_url()
    );
    std::fs::write(p.path().join("converge.yaml"), project + body).unwrap();
}

fn database(name: &str) -> String {
    format!("---\nkind: Database\nname: {name}\nprune: true\nmigrations: {{dir: migrations}}\n")
}

fn drop_database(name: &str) {
    let _ = psql(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    );
}

fn exists(db: &str) -> bool {
    psql(
        "postgres",
        &format!("SELECT count(*) FROM pg_database WHERE datname = '{db}'"),
    ) == "1"
}

/// A project holding database `db` with three rows in `items`.
fn applied_with_rows(test: &str, db: &str, extra: &str) -> Project {
    let p = Project::new(test, "");
    std::fs::create_dir_all(p.path().join("migrations")).unwrap();
    std::fs::write(
        p.path().join("migrations/0001_items.up.sql"),
        "CREATE TABLE items (id int PRIMARY KEY, name text);\nINSERT INTO items VALUES (1, 'a'), (2, 'b'), (3, 'c');\n",
    )
    .unwrap();
    pg_project(&p, &(database(db) + extra));
    let o = p.converge_env(&["apply", "DIR", "--auto-approve"], &[("CVT_KEY", KEY)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(psql(db, "SELECT count(*) FROM items"), "3");
    p
}

#[test]
fn a_pruned_database_is_saved_before_it_is_dropped_and_comes_back_with_restore() {
    let db = format!("cvt_safedrop_{}", std::process::id());
    let p = applied_with_rows("safedrop", &db, "");
    pg_project(&p, "");
    let o = p.apply();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(!exists(&db), "{out}");
    let dir = p.state.path().join("safety").join(&p.name);
    assert!(
        out.contains(&format!("saved: database {db} saved as safety-db-{db}-"))
            && out.contains(&format!("in file://{}", dir.display()))
            && out.contains("not encrypted: no Backup declares a key")
            && out.contains(&format!("restore: converge restore safety-db-{db}-")),
        "{out}"
    );
    assert!(
        out.contains("Saved before dropping data:\n  - database"),
        "{out}"
    );
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    assert!(p.journal().contains("\"safety-copy\""));

    // A database holding only a view is not empty: restore refuses it without --force.
    psql("postgres", &format!("CREATE DATABASE {db}"));
    psql(&db, "CREATE VIEW v AS SELECT 1 AS one");
    let id = format!("safety-db-{db}@latest");
    let o = p.converge(&["restore", &id, "DIR", "--to", &db]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("database {db} already holds 1 view(s)")),
        "{}",
        text(&o)
    );
    drop_database(&db);
    let o = p.converge(&["restore", &id, "DIR", "--to", &db]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        psql(&db, "SELECT string_agg(name, ',' ORDER BY id) FROM items"),
        "a,b,c"
    );
    drop_database(&db);
}

#[test]
fn a_safety_copy_is_encrypted_with_the_projects_backup_key() {
    let db = format!("cvt_safekey_{}", std::process::id());
    let kept = format!("cvt_safekept_{}", std::process::id());
    let backups = tempfile::tempdir().unwrap();
    let backup = format!(
        "---\nkind: Database\nname: {kept}\n---\nkind: Backup\nname: kept\nsource: {{database: {kept}}}\nschedule: \"0 * * * *\"\nencryption: {{key: \"${{env:CVT_KEY}}\"}}\ndestinations: [{{url: \"file://{}\", keep: 7d}}]\n",
        backups.path().display()
    );
    let p = applied_with_rows("safekey", &db, &backup);
    pg_project(&p, &backup);
    let env = [("CVT_KEY", KEY)];
    let o = p.converge_env(&["apply", "DIR", "--auto-approve"], &env);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains("(encrypted with the project's backup key)")
            || out.contains("encrypted with the project's backup key);"),
        "{out}"
    );
    assert!(!exists(&db));
    // The stored bytes are ciphertext: the rows' text is nowhere in them. (The manifest, in
    // clear, records each table's name and row count: format 3.)
    let dir = p.state.path().join("safety").join(&p.name);
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let bytes = std::fs::read(e.path()).unwrap();
        if e.file_name().to_string_lossy().ends_with(".manifest.json") {
            let m: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(m["rows"]["public.items"], 3, "{m}");
            continue;
        }
        assert!(!bytes.windows(5).any(|w| w == b"items"), "{:?}", e.path());
    }
    let id = format!("safety-db-{db}@latest");
    let o = p.converge_env(&["restore", &id, "DIR", "--to", &db], &env);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(psql(&db, "SELECT count(*) FROM items"), "3");
    drop_database(&db);
    drop_database(&kept);
}

#[test]
fn when_the_safety_copy_fails_nothing_is_dropped() {
    let db = format!("cvt_safefail_{}", std::process::id());
    let p = applied_with_rows("safefail", &db, "");
    pg_project(&p, "");
    // A pg_dump that cannot reach the server shadows the real one.
    let bin = tempfile::tempdir().unwrap();
    let fake = bin.path().join("pg_dump");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'pg_dump: error: connection to server failed' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap()
    );
    let o = p.converge_env(&["apply", "DIR", "--auto-approve"], &[("PATH", &path)]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains(&format!(
            "the safety copy of database {db} failed, so nothing was dropped"
        )) && out.contains("connection to server failed"),
        "{out}"
    );
    assert!(exists(&db));
    assert_eq!(psql(&db, "SELECT count(*) FROM items"), "3");
    // With pg_dump working, the next apply copies and drops.
    let o = p.apply();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!exists(&db));
}

fn volume_service(prune: bool) -> String {
    format!("kind: Service\nname: keeper\nimage: converge-test/worker:v1\nvolumes: [{{source: media, target: /media, prune: {prune}}}]\n")
}

fn volumes(p: &Project) -> String {
    docker(&[
        "volume",
        "ls",
        "-q",
        "--filter",
        &format!("label=converge.project={}", p.name),
    ])
}

#[test]
fn a_pruned_volume_is_saved_before_it_is_removed_and_comes_back_with_restore() {
    let p = Project::new("safevol", &volume_service(true));
    assert_eq!(p.apply().status.code(), Some(0));
    let container = format!("{}-keeper-1", p.name);
    docker(&[
        "exec",
        &container,
        "sh",
        "-c",
        "echo frame-0001 > /media/clip.txt",
    ]);
    p.write("kind: Service\nname: other\nimage: converge-test/worker:v1\n");
    let o = p.apply();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains("saved: volume media saved as safety-volume-media-"),
        "{out}"
    );
    assert!(!volumes(&p).contains(&format!("{}_media", p.name)), "{out}");
    let to = tempfile::tempdir().unwrap();
    let target = to.path().join("media");
    let o = p.converge(&[
        "restore",
        "safety-volume-media@latest",
        "DIR",
        "--to-dir",
        target.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(target.join("clip.txt")).unwrap(),
        "frame-0001\n"
    );
}

#[test]
fn a_volumes_latest_declared_prune_decides_not_the_one_it_was_created_with() {
    let p = Project::new("volintent", &volume_service(true));
    assert_eq!(p.apply().status.code(), Some(0));
    // Declared `prune: false` later: the plan shows the change, apply records it.
    p.write(&volume_service(false));
    let plan = p.converge(&["plan", "DIR", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(2), "{}", text(&plan));
    assert!(
        text(&plan).contains("volume/media") && text(&plan).contains("prune"),
        "{}",
        text(&plan)
    );
    let o = p.apply();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(p.plan_exit(), 0);
    p.write("kind: Service\nname: other\nimage: converge-test/worker:v1\n");
    let o = p.apply();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(volumes(&p).contains(&format!("{}_media", p.name)), "{out}");
    assert!(
        out.contains("volume/media is no longer used; kept because volumes are deleted only with `prune: true`"),
        "{out}"
    );
    // And the other way: created without prune, declared `prune: true` later, then unused.
    let q = Project::new("volintent2", &volume_service(false));
    assert_eq!(q.apply().status.code(), Some(0));
    q.write(&volume_service(true));
    assert_eq!(q.apply().status.code(), Some(0));
    q.write("kind: Service\nname: other\nimage: converge-test/worker:v1\n");
    let o = q.apply();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!volumes(&q).contains(&format!("{}_media", q.name)));
}

#[test]
fn a_failed_database_step_removes_the_roles_and_the_database_it_created() {
    let db = format!("cvt_saferoles_{}", std::process::id());
    let p = Project::new("saferoles", "");
    pg_project(
        &p,
        &format!("---\nkind: Database\nname: {db}\nowner: {db}_app\nextensions: [no_such_extension]\nroles:\n  - {{name: {db}_app, login: true}}\n  - {{name: {db}_ro, login: true}}\n"),
    );
    let o = p.apply();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains(&format!(
            "the failed step removed what it had created: database {db}, role {db}_app, role {db}_ro"
        )),
        "{out}"
    );
    assert!(out.contains("live state is as before"), "{out}");
    assert!(!exists(&db));
    let roles = psql(
        "postgres",
        &format!("SELECT count(*) FROM pg_roles WHERE rolname LIKE '{db}%'"),
    );
    assert_eq!(roles, "0", "{out}");
}
