//! Faults and the data-safety promises: a check that hangs, a notifier that never answers, an S3
//! connection cut in the middle of an upload, S3 down for a whole backup, a local destination
//! that fills up, PostgreSQL restarted in the middle of a migration, the Docker engine lost in
//! the middle of an apply. Each must end in a clear error after a bounded time, with nothing
//! left behind (no process, no `.partial` file, no incomplete multipart upload, no half-applied
//! migration), and the next run must converge. The S3 tests need `CONVERGE_TEST_S3_ENDPOINT`
//! (moto, started by scripts/test); the full-disk test mounts a tmpfs (root only); the
//! PostgreSQL test starts a private server with scripts/pg on port 18581; the Docker test needs
//! the engine at /var/run/docker.sock and the converge-test images.

mod common;
#[path = "common/proxy.rs"]
mod proxy;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn converge(state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_converge"))
        .arg("--state-dir")
        .arg(state)
        .args(args)
        .env(
            "DOCKER_HOST",
            "unix:///nonexistent/converge-test/docker.sock",
        )
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run converge")
}

fn all_output(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A `sleep` whose argument no other process has, so `pgrep -f` finds only ours.
fn unique_sleep(tag: u32) -> String {
    format!("sleep 3600.{}{tag}", std::process::id())
}

fn running(pattern: &str) -> bool {
    Command::new("pgrep")
        .args(["-f", pattern])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Waits up to 5s for the processes matching `pattern` to be gone.
fn gone(pattern: &str) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if !running(pattern) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn a_hung_check_fails_after_its_timeout_the_previous_file_is_back_and_the_command_is_killed() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, state, target) = (
        tmp.path().join("ds"),
        tmp.path().join("state"),
        tmp.path().join("app.conf"),
    );
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::write(dir.join("templates/app.hbs"), "new contents\n").unwrap();
    std::fs::write(&target, "previous contents\n").unwrap();
    let sleep = unique_sleep(1);
    std::fs::write(
        dir.join("converge.yaml"),
        format!(
            "kind: Project\nname: faultcheck\n---\nkind: ConfigFile\nname: app\ntemplate: templates/app.hbs\npath: {}\ncheck: [sh, -c, \"{sleep}; true\"]\naction_timeout: 1s\n",
            target.display()
        ),
    )
    .unwrap();
    let start = Instant::now();
    let o = converge(&state, &["apply", dir.to_str().unwrap(), "--auto-approve"]);
    let out = all_output(&o);
    assert_ne!(o.status.code(), Some(0), "{out}");
    assert!(start.elapsed() < Duration::from_secs(30), "{out}");
    assert!(
        out.contains(&format!(
            "`sh -c {sleep}; true` did not finish within 1s and was stopped"
        )),
        "{out}"
    );
    assert!(
        out.contains("check failed, previous file restored"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "previous contents\n"
    );
    assert!(
        gone(&sleep),
        "`{sleep}` still runs after the check timed out"
    );
}

#[test]
fn an_action_timeout_of_zero_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ds");
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::write(dir.join("templates/app.hbs"), "x\n").unwrap();
    std::fs::write(
        dir.join("converge.yaml"),
        format!(
            "kind: Project\nname: faultzero\n---\nkind: ConfigFile\nname: app\ntemplate: templates/app.hbs\npath: {}\ncheck: [\"true\"]\naction_timeout: 0s\n",
            tmp.path().join("app.conf").display()
        ),
    )
    .unwrap();
    let o = converge(&tmp.path().join("state"), &["plan", dir.to_str().unwrap()]);
    let out = all_output(&o);
    assert_ne!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("action_timeout 0s is out of range"), "{out}");
}

fn notifier(yaml: serde_json::Value) -> converge::model::Notifier {
    serde_json::from_value(yaml).unwrap()
}

fn event() -> converge::agent::notify::Event {
    converge::agent::notify::Event {
        text: "apply failed".into(),
        event: converge::model::notifier::EventKind::ApplyFailed,
        project: "faults".into(),
        revision: None,
    }
}

#[tokio::test]
async fn a_notifier_that_never_answers_is_given_up_on_and_its_command_killed() {
    use converge::agent::notify::deliver;
    let state = tempfile::tempdir().unwrap();
    let secrets = converge::secrets::Secrets::load_or_create(state.path()).unwrap();

    // A webhook that accepts the connection and never replies.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = std::thread::spawn(move || listener.accept().map(|(c, _)| c));
    let hook = notifier(serde_json::json!({
        "name": "hook", "webhook": format!("http://127.0.0.1:{port}/hook")
    }));
    let start = Instant::now();
    let e = deliver(&hook, &secrets, &event(), Some(Duration::from_secs(1)))
        .await
        .unwrap_err()
        .to_string();
    assert!(start.elapsed() < Duration::from_secs(10), "{e}");
    assert!(e.starts_with("POST to the webhook: "), "{e}");
    drop(held);

    // A command that never exits (a shell with a child of its own).
    let sleep = unique_sleep(2);
    let cmd = notifier(serde_json::json!({
        "name": "cmd", "command": ["sh", "-c", format!("{sleep}; true")]
    }));
    let start = Instant::now();
    let e = deliver(&cmd, &secrets, &event(), Some(Duration::from_secs(1)))
        .await
        .unwrap_err()
        .to_string();
    assert!(start.elapsed() < Duration::from_secs(10), "{e}");
    assert!(e.contains("did not finish within 1s and was killed"), "{e}");
    assert!(
        gone(&sleep),
        "`{sleep}` still runs after the notifier timed out"
    );
}

/// A Backup of `bytes` bytes from a command, into `destination`, with an S3 provider at `s3`.
fn backup_project(dir: &Path, name: &str, s3: Option<&str>, destination: &str, bytes: u64) {
    let providers = s3
        .map(|e| format!("providers:\n  s3: {{endpoint: \"{e}\", region: us-east-1}}\n"))
        .unwrap_or_default();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("converge.yaml"),
        format!(
            "kind: Project\nname: {name}\nhosts: [{{name: local}}]\n{providers}---\nkind: Backup\nname: data\nsource: {{command: [head, -c, \"{bytes}\", /dev/urandom]}}\ncompression: none\nschedule: \"0 * * * *\"\ndestinations:\n  - {{url: \"{destination}\", keep: 7d}}\n"
        ),
    )
    .unwrap();
}

fn curl(args: &[&str]) -> String {
    let o = Command::new("curl")
        .args(["-sS"])
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "curl {args:?}: {}", all_output(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn an_s3_upload_cut_mid_way_fails_naming_the_endpoint_and_leaves_no_incomplete_upload() {
    let moto = std::env::var("CONVERGE_TEST_S3_ENDPOINT")
        .expect("CONVERGE_TEST_S3_ENDPOINT: run scripts/test (it starts an S3 server)");
    let bucket = format!("cvt-faults-{}", std::process::id());
    curl(&["-X", "PUT", &format!("{moto}/{bucket}")]);
    let proxy = proxy::CuttingProxy::start(moto.trim_start_matches("http://"), 256 * 1024);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ds");
    backup_project(
        &dir,
        "faults3",
        Some(&proxy.url()),
        &format!("s3://{bucket}/db/"),
        3_000_000,
    );
    let o = converge(
        &tmp.path().join("state"),
        &["backup", "run", "data", dir.to_str().unwrap()],
    );
    let out = all_output(&o);
    assert_ne!(o.status.code(), Some(0), "{out}");
    assert!(proxy.cuts() > 0, "the proxy cut nothing: {out}");
    assert!(
        out.contains(&format!("s3: upload part {bucket}/db/data-")),
        "{out}"
    );
    assert!(
        out.contains(&format!("cannot reach the S3 endpoint {}: ", proxy.url())),
        "{out}"
    );
    assert!(out.contains("= hint: check providers.s3.endpoint"), "{out}");
    let uploads = curl(&[&format!("{moto}/{bucket}?uploads")]);
    assert!(
        uploads.contains("ListMultipartUploadsResult") && !uploads.contains("<Upload>"),
        "an incomplete upload was left behind: {uploads}"
    );
}

/// A 64 KiB tmpfs, unmounted when dropped.
struct TinyDisk(std::path::PathBuf);

impl TinyDisk {
    fn mount(dir: &Path) -> TinyDisk {
        std::fs::create_dir_all(dir).unwrap();
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "mount a tmpfs (needs root): {}",
            all_output(&o)
        );
        TinyDisk(dir.to_path_buf())
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).output();
    }
}

#[test]
fn a_local_backup_into_a_full_disk_fails_naming_the_directory_and_leaves_no_partial_file() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = TinyDisk::mount(&tmp.path().join("disk"));
    let dir = tmp.path().join("ds");
    let dest = disk.0.clone();
    backup_project(
        &dir,
        "faultdisk",
        None,
        &format!("file://{}", dest.display()),
        3_000_000,
    );
    let o = converge(
        &tmp.path().join("state"),
        &["backup", "run", "data", dir.to_str().unwrap()],
    );
    let out = all_output(&o);
    assert_ne!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("No space left on device"), "{out}");
    assert!(out.contains(&dest.display().to_string()), "{out}");
    let left: Vec<String> = std::fs::read_dir(&dest)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// `name id` of the project's containers, sorted.
fn container_ids(project: &str) -> Vec<String> {
    let out = common::docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=converge.project={project}"),
        "--format",
        "{{.Names}} {{.ID}}",
    ]);
    let mut v: Vec<String> = out.lines().map(str::to_string).collect();
    v.sort();
    v
}

#[test]
fn a_docker_engine_lost_mid_apply_fails_naming_it_and_the_next_apply_creates_only_what_is_missing()
{
    let sockets = tempfile::tempdir().unwrap();
    let sock = sockets.path().join("docker.sock");
    // The engine disappears when the second container is about to be created.
    let proxy =
        proxy::SocketProxy::stop_at_second(&sock, "/var/run/docker.sock", "/containers/create");
    let p = common::Project::new(
        "faultdocker",
        "kind: Service\nname: aa\nimage: converge-test/worker:v1\n---\nkind: Service\nname: bb\nimage: converge-test/worker:v1\ndepends_on: [service/aa]\n---\nkind: Service\nname: cc\nimage: converge-test/httpd:v1\ndepends_on: [service/bb]\n",
    );
    let host = proxy.host();
    let start = Instant::now();
    let o = p.converge_env(
        &["apply", "DIR", "--auto-approve"],
        &[("DOCKER_HOST", host.as_str())],
    );
    let out = common::text(&o);
    assert!(
        proxy.is_stopped(),
        "the proxy never saw a second create: {out}"
    );
    assert_ne!(o.status.code(), Some(0), "{out}");
    assert!(start.elapsed() < Duration::from_secs(30), "{out}");
    assert!(
        out.contains(&format!(
            "Apply failed at `create service/bb`: cannot connect to Docker at {host}: create container {}-bb-1: ",
            p.name
        )),
        "{out}"
    );
    assert!(
        out.contains("= hint: is the Docker engine running"),
        "{out}"
    );
    let before = container_ids(&p.name);
    assert_eq!(before.len(), 1, "only aa was created: {before:?}\n{out}");
    assert!(
        before[0].starts_with(&format!("{}-aa-1 ", p.name)),
        "{before:?}"
    );

    // The engine is back (directly): only bb and cc are created, aa is kept as it is. bb's
    // spec is not held back as failed: only the connection failed, not the spec.
    let again = p.converge_env(
        &["apply", "DIR", "--auto-approve"],
        &[("DOCKER_HOST", "unix:///var/run/docker.sock")],
    );
    let again_out = common::text(&again);
    assert_eq!(again.status.code(), Some(0), "{again_out}");
    let after = container_ids(&p.name);
    assert_eq!(after.len(), 3, "{after:?}\n{again_out}");
    assert!(
        after.contains(&before[0]),
        "aa was recreated: {before:?} -> {after:?}"
    );
    assert!(
        p.containers().iter().all(|c| c.ends_with(" running")),
        "{:?}",
        p.containers()
    );
    let plan = p.converge_env(
        &["plan", "DIR", "--detailed-exitcode"],
        &[("DOCKER_HOST", "unix:///var/run/docker.sock")],
    );
    assert_eq!(plan.status.code(), Some(0), "{}", common::text(&plan));
}

/// A PostgreSQL of this test's own (scripts/pg on `port`, its files in a temporary directory),
/// so restarting it disturbs no other test; stopped when dropped.
struct PrivatePg {
    dir: tempfile::TempDir,
    port: u16,
}

impl PrivatePg {
    fn start(port: u16) -> PrivatePg {
        let pg = PrivatePg {
            dir: tempfile::tempdir().unwrap(),
            port,
        };
        pg.ctl("start");
        pg
    }

    fn ctl(&self, what: &str) {
        let o = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pg"))
            .arg(what)
            .env("PGPORT", self.port.to_string())
            .env("CONVERGE_PG_DIR", self.dir.path())
            .output()
            .unwrap();
        assert!(o.status.success(), "scripts/pg {what}: {}", all_output(&o));
    }

    fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// `sql` in `db`, its output trimmed (`None` when psql fails).
    fn psql(&self, db: &str, sql: &str) -> Option<String> {
        let o = Command::new("psql")
            .args(["-qAt", "-v", "ON_ERROR_STOP=1", &self.url(db), "-c", sql])
            .output()
            .unwrap();
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        self.ctl("stop");
    }
}

#[test]
fn a_postgres_restart_mid_migration_keeps_earlier_ones_applies_nothing_half_and_the_next_apply_converges(
) {
    let pg = PrivatePg::start(18581);
    let tmp = tempfile::tempdir().unwrap();
    let (dir, state) = (tmp.path().join("ds"), tmp.path().join("state"));
    std::fs::create_dir_all(dir.join("migrations")).unwrap();
    let db = "cvf_restart";
    std::fs::write(
        dir.join("converge.yaml"),
        format!(
            "kind: Project\nname: faultpg\nproviders: {{postgres: {{url: \"{}\"}}}}\n---\nkind: Database\nname: {db}\nmigrations: {{dir: migrations, lock_timeout: 2s}}\n",
            pg.url("postgres")
        ),
    )
    .unwrap();
    for (file, sql) in [
        ("0001_a.up.sql", "CREATE TABLE a (id int);\n"),
        ("0002_b.up.sql", "CREATE TABLE b (id int);\n"),
        (
            "0003_slow.up.sql",
            "CREATE TABLE c (id int);\nSELECT pg_sleep(3);\n",
        ),
        ("0004_d.up.sql", "CREATE TABLE d (id int);\n"),
    ] {
        std::fs::write(dir.join("migrations").join(file), sql).unwrap();
    }
    let apply = || converge(&state, &["apply", dir.to_str().unwrap(), "--auto-approve"]);

    // The server restarts while 0003 sleeps.
    let o = std::thread::scope(|s| {
        let running = s.spawn(apply);
        let start = Instant::now();
        while pg
            .psql(
                "postgres",
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(3)%' AND pid <> pg_backend_pid()",
            )
            .as_deref()
            != Some("1")
        {
            assert!(
                start.elapsed() < Duration::from_secs(30) && !running.is_finished(),
                "0003 never started"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        pg.ctl("stop");
        pg.ctl("start");
        running.join().unwrap()
    });
    let out = all_output(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains(&format!("database {db} is at version 0002")),
        "{out}"
    );
    assert!(out.contains("migrations/0003_slow.up.sql"), "{out}");
    assert!(
        out.contains("57P01"),
        "the server's shutdown is not named: {out}"
    );
    let versions = |pg: &PrivatePg| {
        pg.psql(db, "SELECT string_agg(version::text, ',' ORDER BY version) FROM converge.schema_migrations")
            .unwrap()
    };
    assert_eq!(versions(&pg), "1,2", "{out}");
    assert_eq!(
        pg.psql(
            db,
            "SELECT to_regclass('c') IS NULL, to_regclass('d') IS NULL"
        )
        .unwrap(),
        "t|t",
        "0003 is half applied: {out}"
    );

    // The server is down when the next apply starts and comes up a moment later: the
    // connection is retried, and the apply converges.
    pg.ctl("stop");
    let o = std::thread::scope(|s| {
        let running = s.spawn(apply);
        std::thread::sleep(Duration::from_millis(300));
        pg.ctl("start");
        running.join().unwrap()
    });
    let out = all_output(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert_eq!(versions(&pg), "1,2,3,4", "{out}");
    let plan = converge(
        &state,
        &["plan", dir.to_str().unwrap(), "--detailed-exitcode"],
    );
    assert_eq!(plan.status.code(), Some(0), "{}", all_output(&plan));
}

#[test]
fn a_backup_while_s3_is_down_fails_in_bounded_time_naming_endpoint_and_bucket_and_leaves_no_partial_file(
) {
    let moto = std::env::var("CONVERGE_TEST_S3_ENDPOINT")
        .expect("CONVERGE_TEST_S3_ENDPOINT: run scripts/test (it starts an S3 server)");
    let bucket = format!("cvt-faults3down-{}", std::process::id());
    curl(&["-X", "PUT", &format!("{moto}/{bucket}")]);
    // A port nothing listens on (yet).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let tmp = tempfile::tempdir().unwrap();
    let (dir, state, local) = (
        tmp.path().join("ds"),
        tmp.path().join("state"),
        tmp.path().join("local"),
    );
    std::fs::create_dir_all(&local).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    // A local copy first, then S3: the S3 failure must take the local copy-in-progress with it.
    std::fs::write(
        dir.join("converge.yaml"),
        format!(
            "kind: Project\nname: faults3down\nhosts: [{{name: local}}]\nproviders:\n  s3: {{endpoint: \"{endpoint}\", region: us-east-1}}\n---\nkind: Backup\nname: data\nsource: {{command: [head, -c, \"300000\", /dev/urandom]}}\ncompression: none\nschedule: \"0 * * * *\"\ndestinations:\n  - {{url: \"file://{}\", keep: 7d}}\n  - {{url: \"s3://{bucket}/db/\", keep: 7d}}\n",
            local.display()
        ),
    )
    .unwrap();
    let run = || converge(&state, &["backup", "run", "data", dir.to_str().unwrap()]);
    let local_files = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&local)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };

    let start = Instant::now();
    let o = run();
    let took = start.elapsed();
    let out = all_output(&o);
    assert_ne!(o.status.code(), Some(0), "{out}");
    // Retried with backoff (4 attempts, ≤ 3.5 s of waits), not forever.
    assert!(took < Duration::from_secs(20), "took {took:?}: {out}");
    assert!(
        out.contains(&format!("s3: start upload {bucket}/db/data-")),
        "the bucket is not named: {out}"
    );
    assert!(
        out.contains(&format!("cannot reach the S3 endpoint {endpoint}: ")),
        "the endpoint is not named: {out}"
    );
    assert!(out.contains("= hint: check providers.s3.endpoint"), "{out}");
    assert_eq!(local_files(), Vec::<String>::new(), "left behind locally");

    // An endpoint that accepts connections and drops them: each call is tried 4 times in all.
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    listener.set_nonblocking(true).unwrap();
    let o = std::thread::scope(|s| {
        let running = s.spawn(run);
        let mut accepted = 0;
        while !running.is_finished() {
            match listener.accept() {
                Ok((c, _)) => {
                    accepted += 1;
                    drop(c);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        let o = running.join().unwrap();
        assert_eq!(accepted, 4, "{}", all_output(&o));
        o
    });
    let out = all_output(&o);
    assert_ne!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains(&format!("s3: start upload {bucket}/db/data-")),
        "{out}"
    );
    assert_eq!(local_files(), Vec::<String>::new(), "left behind locally");
    drop(listener);

    // S3 is back on the same endpoint: the next run succeeds, to both destinations.
    let _up = proxy::CuttingProxy::start_on(port, moto.trim_start_matches("http://"), u64::MAX);
    let o = run();
    let out = all_output(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    let files = local_files();
    assert!(
        files.len() == 2
            && files.iter().any(|f| f.ends_with(".cvbak"))
            && files.iter().any(|f| f.ends_with(".manifest.json")),
        "{files:?}"
    );
    let listing = curl(&[&format!("{moto}/{bucket}?list-type=2&prefix=db/")]);
    assert!(
        listing.contains(".cvbak</Key>") && listing.contains(".manifest.json</Key>"),
        "{listing}"
    );
}
