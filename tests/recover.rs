//! `converge recover` (issue 17) against real Docker, PostgreSQL and S3 (moto): a project whose
//! database and files directory are backed up is destroyed — database, files, containers, the
//! local backup directory and the state directory: only S3 remains — and comes back from S3 with
//! its rows, its files and its service running; the RTO per phase and the RPO are reported. A
//! corrupted newest S3 copy is passed over with a note, and a recovery that stopped resumes
//! without restoring twice.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{cleanup, docker, pg_url, psql, text, Project};

const KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn s3_endpoint() -> String {
    std::env::var("CONVERGE_TEST_S3_ENDPOINT")
        .expect("CONVERGE_TEST_S3_ENDPOINT: run scripts/test (it starts an S3 server)")
}

/// A project with a database, a service using a bind-mounted directory, and backups of both.
struct Stack {
    p: Project,
    db: String,
    bucket: String,
    /// The `file://` destination of the database backup.
    local: tempfile::TempDir,
    /// Holds `media/`, the service's bind-mounted directory (backed up to S3).
    data: tempfile::TempDir,
}

impl Stack {
    fn new(test: &str) -> Stack {
        let pid = std::process::id();
        let s = Stack {
            p: Project::new(&format!("rec{test}"), ""),
            db: format!("cvt_rec{test}_{pid}"),
            bucket: format!("cvt-rec{test}-{pid}"),
            local: tempfile::tempdir().unwrap(),
            data: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(s.p.path().join("migrations")).unwrap();
        std::fs::write(
            s.p.path().join("migrations/0001_items.up.sql"),
            "CREATE TABLE items (id int PRIMARY KEY, name text);\nINSERT INTO items VALUES (1, 'a'), (2, 'b'), (3, 'c');\n",
        )
        .unwrap();
        std::fs::create_dir_all(s.media()).unwrap();
        s.write_yaml();
        s
    }

    fn media(&self) -> PathBuf {
        self.data.path().join("media")
    }

    fn write_yaml(&self) {
        let yaml = format!(
            "kind: Project\nname: {p}\nhosts: [{{name: local}}]\nproviders:\n  docker: {{}}\n  postgres: {{url: \"{pg}\"}}\n  s3: {{endpoint: \"{s3}\", region: us-east-1}}\nrecovery: {{rto: 1h, rpo: 1h}}\n\
---\nkind: Database\nname: {db}\nmigrations: {{dir: migrations}}\n\
---\nkind: Bucket\nname: {bucket}\n\
---\nkind: Service\nname: worker\nimage: converge-test/worker:v1\nenv: {{DATABASE_URL: \"postgres://app@db:5432/{db}?sslmode=disable\"}}\nvolumes: [{{source: {media}, target: /media}}]\n\
---\nkind: Backup\nname: db\nsource: {{database: {db}}}\nschedule: \"0 * * * *\"\nencryption: {{key: \"${{env:CVT_BACKUP_KEY}}\"}}\nrpo: 1h\ndestinations:\n  - {{url: \"file://{local}\", keep: 7d}}\n  - {{url: \"s3://{bucket}/db/\", keep: 30d}}\n\
---\nkind: Backup\nname: media\nsource: {{files: {media}}}\nschedule: \"0 * * * *\"\nencryption: {{key: \"${{env:CVT_BACKUP_KEY}}\"}}\ndestinations: [{{url: \"s3://{bucket}/media/\", keep: 30d}}]\n",
            p = self.p.name,
            pg = pg_url(),
            s3 = s3_endpoint(),
            db = self.db,
            bucket = self.bucket,
            media = self.media().display(),
            local = self.local.path().display(),
        );
        std::fs::write(self.p.path().join("converge.yaml"), yaml).unwrap();
    }

    fn converge(&self, args: &[&str]) -> Output {
        self.p.converge_env(args, &[("CVT_BACKUP_KEY", KEY)])
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.converge(args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", text(&o));
        text(&o)
    }

    /// Applied, with 5 rows and two files, backed up once (database and files).
    fn applied_and_backed_up(test: &str) -> Stack {
        let s = Stack::new(test);
        s.ok(&["apply", "DIR", "--auto-approve"]);
        psql(&s.db, "INSERT INTO items VALUES (4, 'd'), (5, 'e')");
        std::fs::write(s.media().join("a.txt"), "alpha\n").unwrap();
        std::fs::create_dir_all(s.media().join("sub")).unwrap();
        std::fs::write(s.media().join("sub/b.txt"), "beta\n").unwrap();
        s.ok(&["backup", "run", "db", "DIR"]);
        s.ok(&["backup", "run", "media", "DIR"]);
        s
    }

    /// The ids of backup `name`'s copies in S3, oldest first.
    fn s3_copies(&self, name: &str) -> Vec<String> {
        let list = curl(&[&format!(
            "{}/{}?list-type=2&prefix={name}/",
            s3_endpoint(),
            self.bucket
        )]);
        common::copy_ids_in_listing(&String::from_utf8_lossy(&list))
    }

    /// Flips one byte in the middle of copy `id`'s stored bytes in S3.
    fn corrupt_in_s3(&self, prefix: &str, id: &str) {
        let url = format!("{}/{}/{prefix}/{id}.cvbak", s3_endpoint(), self.bucket);
        let mut bytes = curl(&[&url]);
        assert!(bytes.len() > 100, "the copy {url} was read");
        let at = bytes.len() / 2;
        bytes[at] ^= 0x40;
        let file = self.data.path().join("altered.cvbak");
        std::fs::write(&file, &bytes).unwrap();
        let upload = format!("@{}", file.display());
        curl(&[
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/octet-stream",
            "--data-binary",
            &upload,
            &url,
        ]);
        assert_eq!(curl(&[&url]), bytes, "the altered copy is what S3 serves");
    }

    /// Everything of the project but its S3 copies is gone.
    fn destroy(&self) {
        psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db),
        );
        cleanup(&self.p.name);
        remove_contents(&self.media());
        std::fs::remove_dir(self.media()).unwrap();
        remove_contents(self.local.path());
        remove_contents(self.p.state.path());
        assert!(self.p.containers().is_empty());
    }

    fn rows(&self) -> String {
        psql(
            &self.db,
            "SELECT string_agg(name, ',' ORDER BY id) FROM items",
        )
    }

    /// `cat` of `path` inside the running worker container.
    fn in_worker(&self, path: &str) -> String {
        let filter = format!("label=converge.project={}", self.p.name);
        let ids = docker(&["ps", "-q", "--filter", &filter]);
        let id = ids.split_whitespace().next().expect("a running container");
        docker(&["exec", id, "cat", path])
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let Ok(url) = std::env::var("CONVERGE_TEST_PG_URL") else {
            return;
        };
        let _ = Command::new("psql")
            .args([
                &url,
                "-c",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db),
            ])
            .output();
    }
}

/// A signed request to the test S3 server; the response body.
fn curl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("curl")
        .args(["-sf", "--aws-sigv4", "aws:amz:us-east-1:s3", "--user"])
        .arg("converge-test:converge-test")
        .args(args)
        .output()
        .expect("curl");
    assert!(out.status.success(), "curl {args:?} failed");
    out.stdout
}

fn remove_contents(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            std::fs::remove_dir_all(e.path()).unwrap();
        } else {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
}

/// The lines of the RTO report (from `Recovered project` to `Achieved RPO`).
fn rto_lines(out: &str) -> String {
    let from = out.find("Recovered project").expect("an RTO report");
    let to = out[from..].find("Achieved RPO").unwrap() + from;
    out[from..to].to_string()
}

#[test]
fn a_destroyed_project_comes_back_from_s3_with_its_rows_files_and_service() {
    let s = Stack::applied_and_backed_up("full");
    let db_copy = s.s3_copies("db").pop().unwrap();
    let media_copy = s.s3_copies("media").pop().unwrap();
    s.destroy();

    let plan = s.ok(&["recover", "DIR", "--plan"]);
    let db_s3 = format!("s3://{}/db/", s.bucket);
    assert!(
        plan.contains(&format!(
            "+ restore database/{} <- {db_copy} from {db_s3}",
            s.db
        )),
        "{plan}"
    );
    assert!(
        plan.contains(&format!(
            "+ restore files {} <- {media_copy} from s3://{}/media/",
            s.media().display(),
            s.bucket
        )),
        "{plan}"
    );
    assert!(
        plan.contains("age ") && plan.contains("(rpo 1h: within)"),
        "{plan}"
    );
    assert!(
        plan.contains("MB/s from S3, the restore drill in BENCHMARKS.md"),
        "{plan}"
    );
    assert!(plan.contains("Nothing was changed (--plan)."), "{plan}");
    let exists = format!(
        "SELECT count(*) FROM pg_database WHERE datname = '{}'",
        s.db
    );
    assert_eq!(psql("postgres", &exists), "0", "--plan changes nothing");
    assert!(s.p.containers().is_empty() && !s.media().exists());

    let out = s.ok(&["recover", "DIR"]);
    eprintln!("{out}");
    assert_eq!(s.rows(), "a,b,c,d,e");
    assert_eq!(
        std::fs::read_to_string(s.media().join("sub/b.txt")).unwrap(),
        "beta\n"
    );
    assert_eq!(s.in_worker("/media/a.txt"), "alpha\n");
    let running = s.p.containers();
    assert!(
        running.len() == 1 && running[0].ends_with(" running"),
        "{running:?}"
    );
    let rto = rto_lines(&out);
    for phase in [
        "select copies".to_string(),
        "infrastructure".to_string(),
        format!("restore database/{}", s.db),
        format!("restore files {}", s.media().display()),
        "apply".to_string(),
        "verify".to_string(),
    ] {
        assert!(rto.contains(&format!("  {phase}  ")), "{phase}: {rto}");
    }
    assert!(
        out.contains(&format!("database/{}  {db_copy}  ", s.db)),
        "the RPO names the copy: {out}"
    );
    assert!(
        out.contains(&format!("database/{}: 2 table(s), 6 row(s)", s.db)),
        "items and converge.schema_migrations: {out}"
    );
    assert!(out.contains("2 file(s)"), "{out}");
    assert!(out.contains("Objectives met: rto 1h rpo 1h."), "{out}");
    assert!(
        out.contains("live state matches the desired state"),
        "{out}"
    );
    let journal = s.p.journal();
    for event in ["recovery-started", "recovery-restored", "recovery-finished"] {
        assert!(
            journal.contains(&format!("\"{event}\"")),
            "{event}: {journal}"
        );
    }
    assert!(journal.contains("\"detail\":\"recovered\""), "{journal}");
    assert_eq!(
        s.p.plan_exit(),
        0,
        "a plan after the recovery has no changes"
    );

    // A completed recovery is not resumed: restoring again over the data is refused.
    let again = s.converge(&["recover", "DIR"]);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    assert!(
        text(&again).contains(&format!("database {} already holds 1 table(s)", s.db))
            || text(&again).contains(&format!("database {} already holds", s.db)),
        "{}",
        text(&again)
    );
    assert_eq!(s.rows(), "a,b,c,d,e");

    // One host of several (`--host`): data another host's recovery restored is left as it is,
    // and that host's services are brought up on it.
    psql(&s.db, "INSERT INTO items VALUES (7, 'g')");
    let out = s.ok(&["recover", "DIR", "--host", "local"]);
    assert!(
        out.contains(&format!(
            "database/{} already holds data: left as it is (--host:",
            s.db
        )),
        "{out}"
    );
    assert_eq!(s.rows(), "a,b,c,d,e,g", "nothing was restored over it");
}

#[test]
fn a_corrupted_newest_copy_is_passed_over_and_a_stopped_recovery_resumes() {
    let s = Stack::applied_and_backed_up("corrupt");
    // Copy ids have a resolution of one second: the next copy is at least two seconds later.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    psql(&s.db, "INSERT INTO items VALUES (6, 'f')");
    s.ok(&["backup", "run", "db", "DIR"]);
    let copies = s.s3_copies("db");
    assert_eq!(copies.len(), 2, "{copies:?}");
    let (older, newer) = (&copies[0], &copies[1]);
    s.corrupt_in_s3("db", newer);
    s.destroy();

    let plan = s.ok(&["recover", "DIR", "--plan"]);
    let db_s3 = format!("s3://{}/db/", s.bucket);
    assert!(
        plan.contains(&format!("<- {older} from {db_s3}")),
        "the previous copy is used: {plan}"
    );
    assert!(
        plan.contains(&format!("note: skipped {newer} at {db_s3}"))
            && plan.contains("fails its checksum"),
        "{plan}"
    );

    // --at a second before the newest copy: the previous one is chosen, the newest not tried.
    let newer_at = chrono::NaiveDateTime::parse_from_str(&newer[3..], "%Y%m%dT%H%M%SZ").unwrap()
        - chrono::Duration::seconds(1);
    let at = newer_at.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let plan = s.ok(&["recover", "DIR", "--plan", "--at", &at]);
    assert!(
        plan.contains(&format!("at or before {at}"))
            && plan.contains(&format!("<- {older} from {db_s3}"))
            && !plan.contains(newer.as_str()),
        "{plan}"
    );

    // The files directory holds a stray file: the recovery restores the database, then stops.
    std::fs::create_dir_all(s.media()).unwrap();
    std::fs::write(s.media().join("stray"), "x").unwrap();
    let stopped = s.converge(&["recover", "DIR"]);
    assert_eq!(stopped.status.code(), Some(1), "{}", text(&stopped));
    assert!(
        text(&stopped).contains("is not empty"),
        "{}",
        text(&stopped)
    );
    assert_eq!(s.rows(), "a,b,c,d,e", "the database was restored");

    std::fs::remove_file(s.media().join("stray")).unwrap();
    let out = s.ok(&["recover", "DIR"]);
    eprintln!("{out}");
    assert!(
        out.contains(&format!(
            "database/{} was restored from {older} by the interrupted recovery (journal): not restored again",
            s.db
        )),
        "{out}"
    );
    assert!(
        !rto_lines(&out).contains(&format!("restore database/{}", s.db)),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "note: database/{}: skipped {newer} at {db_s3}",
            s.db
        )),
        "the outcome says the newest copy was passed over: {out}"
    );
    assert_eq!(s.rows(), "a,b,c,d,e");
    assert_eq!(s.in_worker("/media/sub/b.txt"), "beta\n");

    // Over data that moved on, --force restores only after a safety copy of each target.
    psql(&s.db, "INSERT INTO items VALUES (9, 'z')");
    let out = s.ok(&["recover", "DIR", "--force"]);
    for (label, what) in [
        (format!("database/{}", s.db), format!("database {}", s.db)),
        (
            format!("files {}", s.media().display()),
            format!("directory {}", s.media().display()),
        ),
    ] {
        assert!(
            out.contains(&format!(
                "{label}: before replacing it, {what} saved as safety-"
            )),
            "{out}"
        );
    }
    assert_eq!(s.rows(), "a,b,c,d,e");
    // The worker mounts the directory: it was stopped while it was replaced, then started again.
    assert!(
        out.contains(&format!(
            "stopped {}-worker-1 (service worker uses files {}) until the data is back",
            s.p.name,
            s.media().display()
        )),
        "{out}"
    );
    assert!(s.p.containers().iter().all(|c| c.ends_with(" running")));
    assert_eq!(s.in_worker("/media/sub/b.txt"), "beta\n");
    let list = s.ok(&["backup", "list", &format!("safety-db-{}", s.db), "DIR"]);
    assert!(list.contains("kept until removed by hand"), "{list}");
}

#[test]
fn an_unreachable_destination_stops_the_choice_instead_of_falling_back_to_older_copies() {
    let s = Stack::applied_and_backed_up("unreach");
    let yaml = std::fs::read_to_string(s.p.path().join("converge.yaml")).unwrap();
    let down = yaml.replace(&s3_endpoint(), "http://127.0.0.1:9");
    std::fs::write(s.p.path().join("converge.yaml"), down).unwrap();
    let o = s.converge(&["recover", "DIR", "--plan"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains(&format!("s3://{}/", s.bucket))
            && out.contains("cannot be listed")
            && out.contains("name one with --from"),
        "{out}"
    );
    assert!(!out.contains("<- "), "no copy was chosen: {out}");
}

#[test]
fn recovery_objectives_must_be_more_than_zero() {
    let p = Project::new("recobj", "");
    std::fs::write(
        p.path().join("converge.yaml"),
        format!(
            "kind: Project\nname: {}\nrecovery: {{rto: 0s, rpo: 15m}}\n",
            p.name
        ),
    )
    .unwrap();
    let o = p.converge(&["validate", "DIR"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("recovery.rto must be more than 0s"),
        "{}",
        text(&o)
    );
    assert!(!text(&o).contains("recovery.rpo"), "{}", text(&o));
}

/// The databases named `<db>_drill_…` on the test server.
fn drill_databases(db: &str) -> String {
    psql(
        "postgres",
        &format!("SELECT count(*) FROM pg_database WHERE datname LIKE '{db}\\_drill\\_%'"),
    )
}

#[test]
fn a_drill_while_the_project_runs_leaves_it_untouched_and_reports_rto_and_rpo() {
    let s = Stack::applied_and_backed_up("drill");
    let told = s.data.path().join("told.jsonl");
    let mut yaml = std::fs::read_to_string(s.p.path().join("converge.yaml")).unwrap();
    yaml = yaml.replace(
        "recovery: {rto: 1h, rpo: 1h}",
        "recovery: {rto: 1h, rpo: 1h, drill: {schedule: \"0 4 * * 0\", notify: [log]}}",
    );
    yaml.push_str(&format!(
        "---\nkind: Notifier\nname: log\ncommand: [sh, -c, \"cat >> {} && echo >> {}\"]\nevents: [recovery-completed, recovery-failed]\n",
        told.display(),
        told.display()
    ));
    std::fs::write(s.p.path().join("converge.yaml"), yaml).unwrap();
    // The real stack moves on after its backup: the drill must not bring the copy's data back.
    psql(&s.db, "INSERT INTO items VALUES (6, 'f')");
    std::fs::write(s.media().join("a.txt"), "alpha, edited\n").unwrap();
    let ids = || {
        let filter = format!("label=converge.project={}", s.p.name);
        docker(&["ps", "-aq", "--no-trunc", "--filter", &filter])
    };
    let before = ids();
    assert!(!before.trim().is_empty());
    // What a drill killed half-way leaves: a scratch database, directory and container.
    let drill_project = format!("{}-drill", s.p.name);
    let left_db = format!("{}_drill_1000000000", s.db);
    psql("postgres", &format!("CREATE DATABASE {left_db}"));
    let left_dir = std::env::temp_dir().join(format!("converge-drill-{}+killed", s.p.name));
    std::fs::create_dir_all(left_dir.join("sub")).unwrap();
    docker(&[
        "run",
        "-d",
        "--name",
        &format!("{drill_project}-worker-1"),
        "--label",
        "converge.managed=true",
        "--label",
        &format!("converge.project={drill_project}"),
        "converge-test/worker:v1",
    ]);

    let out = s.ok(&["recover", "DIR", "--drill"]);
    assert!(
        out.contains(&format!(
            "torn down: dropped database {left_db} (left by an interrupted drill)"
        )) && out.contains(&format!(
            "torn down: removed {} (left by an interrupted drill)",
            left_dir.display()
        )) && out.contains("swept 1 container(s) left by an interrupted drill"),
        "{out}"
    );
    assert!(!left_dir.exists());
    eprintln!("{out}");
    assert!(
        out.contains(&format!("Recovery drill of project {}", s.p.name)),
        "{out}"
    );
    let rto = &out[out.find("(RTO, wall time):").expect("an RTO")..];
    for phase in [
        "select copies".to_string(),
        format!("restore database/{}", s.db),
        format!("restore files {}", s.media().display()),
        "verify".to_string(),
        "services".to_string(),
    ] {
        assert!(rto.contains(&format!("  {phase}  ")), "{phase}: {out}");
    }
    assert!(out.contains("Achieved RPO"), "{out}");
    // The services ran as their own project against the scratch copies, then were removed.
    assert!(
        out.contains(&format!("service worker: {drill_project}-worker-"))
            && out.contains("started and running (it declares no health check)"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "service worker: env DATABASE_URL names the scratch database {}_drill_",
            s.db
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "torn down: 1 container(s) of project {drill_project}"
        )),
        "{out}"
    );
    let left = docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=converge.project={drill_project}"),
    ]);
    assert!(left.trim().is_empty(), "drill containers left: {left}");
    assert!(
        out.contains(&format!("database/{}: 2 table(s), 6 row(s)", s.db))
            && out.contains(&format!("in the scratch copy database {}_drill_", s.db)),
        "the copy's 5 rows and the migrations' row, counted in the scratch database: {out}"
    );
    assert!(out.contains("2 file(s) in the scratch copy /"), "{out}");
    assert!(out.contains("Objectives met: rto 1h rpo 1h."), "{out}");
    assert!(out.contains("the real stack was not touched"), "{out}");
    assert!(
        out.contains(&format!("torn down: dropped database {}_drill_", s.db)),
        "{out}"
    );
    let removed = out
        .lines()
        .find_map(|l| l.strip_prefix("torn down: removed "))
        .expect("the scratch directory is named");
    assert!(!Path::new(removed).exists(), "{removed} is gone");

    // The real stack is untouched, and no scratch copy is left.
    assert_eq!(s.rows(), "a,b,c,d,e,f");
    assert_eq!(
        std::fs::read_to_string(s.media().join("a.txt")).unwrap(),
        "alpha, edited\n"
    );
    assert_eq!(ids(), before, "the same containers run");
    assert!(s.p.containers().iter().all(|c| c.ends_with(" running")));
    assert_eq!(drill_databases(&s.db), "0");

    let journal = s.p.journal();
    assert!(journal.contains("\"detail\":\"drilled\""), "{journal}");
    assert!(journal.contains("\"data_age_seconds\":"), "{journal}");
    assert!(
        !journal.contains("\"recovery-started\""),
        "a drill leaves a recovery's resume alone: {journal}"
    );

    let status: serde_json::Value =
        serde_json::from_str(&s.ok(&["status", "DIR", "--format", "json"])).unwrap();
    let drill = &status["recovery"]["last_drill"];
    assert_eq!(drill["kind"], "drill", "{status}");
    assert_eq!(drill["ok"], true, "{status}");
    assert!(drill["rto_seconds"].as_f64().unwrap() > 0.0, "{status}");
    assert!(drill["data_age_seconds"].as_u64().is_some(), "{status}");
    assert_eq!(status["recovery"]["drill_schedule"], "0 4 * * 0");
    assert!(status["recovery"]["last_recovery"].is_null(), "{status}");
    let text = s.ok(&["status", "DIR"]);
    assert!(
        text.contains("Recovery drill (schedule 0 4 * * 0): last ")
            && text.contains(" drilled: RTO "),
        "{text}"
    );

    let event: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&told)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(event["event"], "recovery-completed");
    let said = event["text"].as_str().unwrap();
    assert!(
        said.starts_with(&format!(
            "{}: recovery drill restored a scratch copy in ",
            s.p.name
        )) && said.contains("(RPO)"),
        "{said}"
    );
}

#[test]
fn the_agent_drills_on_its_schedule_and_exports_the_figures() {
    let s = Stack::applied_and_backed_up("agentdrill");
    let yaml = std::fs::read_to_string(s.p.path().join("converge.yaml"))
        .unwrap()
        .replace(
            "recovery: {rto: 1h, rpo: 1h}",
            "recovery: {rto: 1h, rpo: 1h, drill: {schedule: \"* * * * *\"}}\nsync: {interval: 1s}",
        );
    std::fs::write(s.p.path().join("converge.yaml"), yaml).unwrap();
    let source = s.p.path().to_str().unwrap().to_string();
    let agent = common::Agent::start(
        s.p.state.path(),
        19570,
        &["--source", &source],
        &[("CVT_BACKUP_KEY", KEY)],
    );
    // The schedule fires at the next minute: up to 60 s, then the drill.
    common::wait_until(80, "a scheduled drill", || {
        agent
            .get("/metrics")
            .1
            .contains("converge_recovery_duration_seconds{kind=\"drill\"}")
    });
    let metrics = agent.get("/metrics").1;
    assert!(
        metrics.contains("converge_recovery_data_age_seconds{kind=\"drill\"}"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("converge_recovery_drill_last_success_timestamp_seconds 0.0"),
        "{metrics}"
    );
    assert!(
        agent.log().contains("scheduled recovery drill"),
        "{}",
        agent.log()
    );
    assert_eq!(agent.status()["last_drill"]["outcome"], "drilled");
    assert_eq!(drill_databases(&s.db), "0");
    assert_eq!(s.rows(), "a,b,c,d,e");
}

#[test]
fn a_drill_must_name_declared_notifiers_and_a_valid_schedule() {
    let p = Project::new("recdrillbad", "");
    std::fs::write(
        p.path().join("converge.yaml"),
        format!(
            "kind: Project\nname: {}\nrecovery: {{rto: 1h, drill: {{schedule: \"0 4 * * 0\", notify: [opss]}}}}\n---\nkind: Notifier\nname: ops\ncommand: [\"true\"]\n",
            p.name
        ),
    )
    .unwrap();
    let o = p.converge(&["validate", "DIR"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("recovery drill notify refers to `notifier/opss`, which does not exist")
            && text(&o).contains("did you mean `ops`?"),
        "{}",
        text(&o)
    );
    std::fs::write(
        p.path().join("converge.yaml"),
        format!(
            "kind: Project\nname: {}\nrecovery: {{drill: {{schedule: \"every sunday\"}}}}\n",
            p.name
        ),
    )
    .unwrap();
    let o = p.converge(&["validate", "DIR"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("5-field cron schedule"), "{}", text(&o));
}
