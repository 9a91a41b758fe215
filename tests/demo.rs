//! `scripts/demo` end to end (issue 16), with the binary this suite built (`CONVERGE_BIN`: no
//! second build): its output shows each plan once with new rendered files summarised, the env
//! file it writes drives the stack by hand with the three commands it prints, a plan from a
//! second, fresh state dir says "No changes", and `--clean` removes what it made.
//!
//! Then the proof of issue 17 on the same stack: rows and media files are written and backed up
//! twice, everything of the project but S3 is destroyed (containers, volumes, network, the
//! database and its roles, the local backups, the media directory, the state dir, the rendered
//! files, nginx's site), and `converge recover --env dev` brings the api back through nginx with
//! the same rows and files; again with the newest S3 copy of the database corrupted (the previous
//! one is used, and a note names the one skipped); and a `--drill` while the real stack runs
//! leaves it untouched.
//!
//! The demo's resources are its own and fixed by the example: project `ytempire`, nginx on
//! 127.0.0.1:8080, the api on 8000/8001, PostgreSQL on 55433, S3 on 9001, /opt/ytempire. No other
//! test uses them (the suite's servers are on 55432 and 9000); a demo left running by hand on this
//! machine is converged and then removed.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{docker, text};

/// The demo's work dir; `scripts/demo --clean` runs when it is dropped, also after a failure.
struct Demo {
    work: tempfile::TempDir,
}

impl Demo {
    fn script(&self, args: &[&str]) -> Output {
        Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/demo"))
            .args(args)
            .env("CONVERGE_BIN", env!("CARGO_BIN_EXE_converge"))
            .env("CONVERGE_DEMO_DIR", self.work.path())
            .output()
            .unwrap()
    }

    fn env_file(&self) -> PathBuf {
        self.work.path().join("env")
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.script(&["--clean"]);
    }
}

/// `line` in a shell that has only PATH and HOME: everything else must come from the env file.
fn by_hand(line: &str) -> Output {
    Command::new("bash")
        .args(["-c", line])
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env(
            "HOME",
            std::env::var("HOME").unwrap_or_else(|_| "/root".into()),
        )
        .output()
        .unwrap()
}

/// The demo's output cut at each `$ command` header it prints.
fn steps(out: &str) -> Vec<&str> {
    out.split("\x1b[1m$ ").collect()
}

fn assert_each_plan_is_printed_once_and_short(out: &str) {
    // Two plans are made (the first deploy, the blue-green change), each applied from its saved
    // file without printing it again; the last apply has nothing left to print but "No changes".
    assert_eq!(
        out.matches("converge will perform the following actions")
            .count(),
        2,
        "{out}"
    );
    assert_eq!(
        out.matches("Applying the plan saved in dev.plan").count(),
        2,
        "{out}"
    );
    assert!(out.contains(", rendered from alert-rules)"), "{out}");
    assert!(out.contains("--full shows their text"), "{out}");
    assert!(
        !out.contains("+groups:"),
        "the alert rules are printed in full:\n{out}"
    );
    for step in steps(out) {
        let lines = step.lines().count();
        assert!(lines <= 200, "a step prints {lines} lines:\n{step}");
    }
}

fn assert_env_file_holds_every_variable(path: &Path) {
    let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{} is mode {mode:o}", path.display());
    let env = std::fs::read_to_string(path).unwrap();
    for var in [
        "CONVERGE_POSTGRES_URL",
        "CONVERGE_S3_ENDPOINT",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "PG_APP_PASSWORD",
        "PG_READONLY_PASSWORD",
        "DATABASE_URL",
        "BACKUP_KEY",
        "SLACK_WEBHOOK_URL",
        "PAGER_WEBHOOK_URL",
        "PATH",
    ] {
        assert!(
            env.contains(&format!("export {var}=")),
            "{var} missing:\n{env}"
        );
    }
}

/// The three `source …/env && converge …` lines the demo ends with, run as printed.
fn assert_printed_commands_work(out: &str) {
    let commands: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("  source "))
        .collect();
    assert_eq!(commands.len(), 3, "{out}");
    let expect = [
        ("converge plan ", "No changes."),
        ("converge status ", "SERVICE"),
        ("converge restore database@latest ", "Restored"),
    ];
    for (command, (what, says)) in commands.iter().zip(expect) {
        assert!(command.contains(what), "{command}");
        let o = by_hand(&format!("source {command}"));
        assert_eq!(o.status.code(), Some(0), "{command}\n{}", text(&o));
        assert!(text(&o).contains(says), "{command}\n{}", text(&o));
    }
}

fn assert_clean_removes_what_the_demo_made(demo: &Demo) {
    let o = demo.script(&["--clean"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("Kept, as shared"), "{}", text(&o));
    let left = docker(&["ps", "-aq", "--filter", "label=converge.project=ytempire"]);
    assert!(left.trim().is_empty(), "containers left: {left}");
    assert!(!demo.work.path().exists());
    assert!(!Path::new("/opt/ytempire").exists());
    assert!(!Path::new("/tmp/converge-pg-55433").exists());
    let images = docker(&["image", "ls", "-q", "ytempire/api"]);
    assert!(images.trim().is_empty(), "images left: {images}");
}

// ---- Issue 17: disaster recovery of the demo's stack from S3 alone ----

/// Where the example puts its data, its local backups and nginx's site (environment dev).
const MEDIA: &str = "/opt/ytempire/media";
const LOCAL_BACKUPS: &str = "/var/backups/ytempire";
const NGINX: &str = "/opt/ytempire/nginx";
const SITE: &str = "/opt/ytempire/nginx/conf.d/ytempire.conf";
/// The example's tables (desired-state/migrations/ytempire), each with an `id`.
const TABLES: [&str; 4] = ["channels", "videos", "video_queue", "video_costs"];

/// `'text'` for bash.
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

impl Demo {
    fn state_dir(&self) -> PathBuf {
        self.work.path().join("state")
    }

    /// `source <env> && <line>` by hand, which must succeed; its standard output.
    fn sh(&self, line: &str) -> String {
        let o = by_hand(&format!("source {} && {line}", self.env_file().display()));
        assert_eq!(o.status.code(), Some(0), "{line}\n{}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `converge <command> <desired-state> --env dev --state-dir <state> <rest>` by hand.
    fn converge(&self, command: &str, rest: &str) -> Output {
        by_hand(&format!(
            "source {} && cd {} && converge {command} desired-state --env dev --state-dir {} {rest}",
            self.env_file().display(),
            self.work.path().display(),
            self.state_dir().display()
        ))
    }

    /// Like `converge`, which must succeed; its output.
    fn converge_ok(&self, command: &str, rest: &str) -> String {
        let o = self.converge(command, rest);
        assert_eq!(
            o.status.code(),
            Some(0),
            "converge {command} {rest}\n{}",
            text(&o)
        );
        text(&o)
    }

    /// `sql` in database `db` of the demo's PostgreSQL (the env file's URL); its output, trimmed.
    fn sql(&self, db: &str, sql: &str) -> String {
        self.sh(&format!(
            "psql -qAt -v ON_ERROR_STOP=1 \"${{CONVERGE_POSTGRES_URL%/*}}/{db}\" -c {}",
            quoted(sql)
        ))
        .trim()
        .to_string()
    }

    /// Every row of the example's tables, as text (a table a line).
    fn rows(&self) -> String {
        TABLES
            .iter()
            .map(|t| {
                let all = format!("SELECT string_agg(t::text, ' ' ORDER BY t.id) FROM {t} t");
                format!("{t}: {}\n", self.sql("ytempire", &all))
            })
            .collect()
    }

    /// A signed request to the demo's S3 server with the env file's credentials; the body.
    fn s3(&self, args: &str) -> String {
        self.sh(&format!(
            "curl -sf --aws-sigv4 aws:amz:us-east-1:s3 --user \"$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY\" {args}"
        ))
    }

    /// The ids of Backup `name`'s copies in S3, oldest first.
    fn s3_copies(&self, name: &str) -> Vec<String> {
        let list = self.s3(&format!(
            "\"$CONVERGE_S3_ENDPOINT/ytempire-backups?list-type=2&prefix={name}/\""
        ));
        common::copy_ids_in_listing(&list)
    }

    /// Flips one byte in the middle of copy `id` of Backup `name` as S3 stores it.
    fn corrupt_in_s3(&self, name: &str, id: &str) {
        let url = format!("\"$CONVERGE_S3_ENDPOINT/ytempire-backups/{name}/{id}.cvbak\"");
        let file = self.work.path().join("altered.cvbak");
        self.s3(&format!("-o {} {url}", file.display()));
        let mut bytes = std::fs::read(&file).unwrap();
        assert!(bytes.len() > 100, "{id} was read from S3");
        let at = bytes.len() / 2;
        bytes[at] ^= 0x40;
        std::fs::write(&file, &bytes).unwrap();
        self.s3(&format!(
            "-X PUT -H 'Content-Type: application/octet-stream' --data-binary @{} {url}",
            file.display()
        ));
        let served = self.work.path().join("served.cvbak");
        self.s3(&format!("-o {} {url}", served.display()));
        assert!(
            std::fs::read(&served).unwrap() == bytes,
            "S3 serves the altered {id}"
        );
    }

    /// `GET /` of the api's host through the demo's nginx; empty when nothing answers.
    fn through_nginx(&self) -> String {
        let o = by_hand("curl -s -m 5 -H 'Host: dev.ytempire.local' http://127.0.0.1:8080/");
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// What nginx answers once it says `want` (nginx reloads gracefully), or after 15 s.
    fn nginx_says(&self, want: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let body = self.through_nginx();
            if want(&body) || std::time::Instant::now() > deadline {
                return body;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
}

/// Every file under `dir` (relative path, mode, bytes), however deep.
fn files_under(dir: &Path) -> Vec<(String, u32, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, u32, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let path = e.path();
            if e.file_type().unwrap().is_dir() {
                walk(root, &path, out);
            } else {
                let mode = e.metadata().unwrap().permissions().mode() & 0o777;
                let rel = path.strip_prefix(root).unwrap().display().to_string();
                out.push((rel, mode, std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn write_file(rel: &str, bytes: &[u8], mode: u32) {
    let path = Path::new(MEDIA).join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, bytes).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Runs Backup `name` by hand; the id of the copy it made, which is in S3.
fn back_up(demo: &Demo, name: &str) -> String {
    let out = demo.converge_ok(&format!("backup run {name}"), "");
    let prefix = format!("{name}-");
    let id = out
        .split(|c: char| c.is_whitespace() || c == ':' || c == ',')
        .find(|w| w.starts_with(&prefix) && w.len() == prefix.len() + 16 && w.ends_with('Z'))
        .unwrap_or_else(|| panic!("no copy id in:\n{out}"))
        .to_string();
    assert!(demo.s3_copies(name).contains(&id), "{id} is in S3:\n{out}");
    id
}

/// What the two rounds of backups took: the rows of the first round, and the copy ids of each
/// round as (database, media). The rows and files of the second round are the live ones.
struct Backed {
    first_rows: String,
    first: (String, String),
    second: (String, String),
}

fn write_rows_and_media_and_back_up_twice(demo: &Demo) -> Backed {
    demo.sql(
        "ytempire",
        "INSERT INTO channels (youtube_id, title) VALUES ('UC-alpha', 'Alpha''s channel'), ('UC-beta', 'Beta');\
         INSERT INTO videos (channel_id, title, status) SELECT id, title || ': first video', 'published' FROM channels;\
         INSERT INTO video_queue (video_id) SELECT id FROM videos;\
         INSERT INTO video_costs (video_id, total) SELECT id, 3.1416 FROM videos",
    );
    let image: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    write_file("videos/1/thumbnail.jpg", &image, 0o644);
    write_file("videos/1/render settings.json", b"{\"fps\": 30}\n", 0o640);
    let first_rows = demo.rows();
    let first = (back_up(demo, "database"), back_up(demo, "media"));

    // Copy ids are per second: the next ones are a second later at least.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    demo.sql(
        "ytempire",
        "INSERT INTO channels (youtube_id, title) VALUES ('UC-gamma', 'Gamma');\
         INSERT INTO videos (channel_id, title) SELECT id, 'Gamma, second video' FROM channels WHERE youtube_id = 'UC-gamma'",
    );
    write_file("videos/2/thumbnail.jpg", b"\x89PNG second video\n", 0o600);
    let second = (back_up(demo, "database"), back_up(demo, "media"));
    assert_ne!(demo.rows(), first_rows);
    assert!(
        first.0 != second.0 && first.1 != second.1,
        "{first:?} {second:?}"
    );
    for (name, copies) in [
        ("database", (&first.0, &second.0)),
        ("media", (&first.1, &second.1)),
    ] {
        let in_s3 = demo.s3_copies(name);
        let n = in_s3.len();
        assert!(
            n >= 2 && in_s3[n - 2] == *copies.0 && in_s3[n - 1] == *copies.1,
            "{name}: {in_s3:?}"
        );
    }
    Backed {
        first_rows,
        first,
        second,
    }
}

/// The `converge.project` labels of every container, volume and network of the engine.
fn docker_projects() -> Vec<String> {
    let mut all = Vec::new();
    for what in [&["ps", "-a"][..], &["volume", "ls"], &["network", "ls"]] {
        let mut args = what.to_vec();
        args.extend(["--format", "{{.Label \"converge.project\"}}"]);
        all.extend(docker(&args).lines().map(str::to_string));
    }
    all.retain(|p| !p.is_empty());
    all
}

/// The names of every container, volume and network of the engine.
fn docker_names() -> Vec<String> {
    let mut all = Vec::new();
    for what in [
        &["ps", "-a", "--format", "{{.Names}}"][..],
        &["volume", "ls", "--format", "{{.Name}}"],
        &["network", "ls", "--format", "{{.Name}}"],
    ] {
        all.extend(docker(what).lines().map(str::to_string));
    }
    all
}

/// The drills' scratch directories in the temporary directory (`converge-drill-…`).
fn scratch_dirs() -> Vec<String> {
    let mut dirs: Vec<String> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("converge-drill"))
        .collect();
    dirs.sort();
    dirs
}

/// The host is lost but S3: the project's containers, volumes and network, its databases and
/// roles, the local backups, the media directory, the state dir and the rendered files are gone,
/// and nginx (the host's, kept) has lost the site: it no longer reaches the api.
fn destroy_everything_but_s3(demo: &Demo, api: &str) {
    common::cleanup("ytempire");
    let left: Vec<String> = docker_projects()
        .into_iter()
        .filter(|p| p.starts_with("ytempire"))
        .collect();
    assert!(left.is_empty(), "left in Docker: {left:?}");
    let dbs = demo.sql(
        "postgres",
        "SELECT datname FROM pg_database WHERE datname LIKE 'ytempire%'",
    );
    for db in dbs.lines() {
        demo.sql("postgres", &format!("DROP DATABASE \"{db}\" WITH (FORCE)"));
    }
    // Roles are cluster-wide: a new server has none (a recovery recreated them, the first time).
    demo.sql("postgres", "DROP ROLE ytempire_app");
    demo.sql("postgres", "DROP ROLE ytempire_readonly");
    for path in [
        LOCAL_BACKUPS.to_string(),
        MEDIA.to_string(),
        demo.state_dir().display().to_string(),
        SITE.to_string(),
        "/opt/ytempire/prometheus".into(),
        "/opt/ytempire/alertmanager".into(),
        "/opt/ytempire/grafana".into(),
    ] {
        by_hand(&format!("rm -rf {path}"));
        assert!(!Path::new(&path).exists(), "{path}");
    }
    demo.sh(&format!(
        "nginx -s reload -p {NGINX}/ -c nginx.conf -e {NGINX}/error.log"
    ));
    let body = demo.nginx_says(|b| b != api);
    assert_ne!(body, api, "nginx still reaches the api");
    assert_eq!(
        demo.sql(
            "postgres",
            "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'ytempire%'"
        ),
        "0"
    );
}

/// The lines of `out` from the first line holding `from` up to the next one holding `to`.
fn section<'a>(out: &'a str, from: &str, to: &str) -> &'a str {
    let start = out
        .find(from)
        .unwrap_or_else(|| panic!("no {from:?} in:\n{out}"));
    let rest = &out[start..];
    let end = rest.find(to).unwrap_or(rest.len());
    &rest[..end]
}

/// The outcome measures the RTO of every phase and names each restored copy with its age.
fn assert_rto_per_phase_and_rpo(out: &str, database: &str, media: &str) {
    let rto = section(out, "(RTO", "RPO (");
    for phase in [
        "restore database/ytempire",
        &format!("restore files {MEDIA}"),
    ] {
        assert!(
            rto.lines()
                .any(|l| l.trim_start().starts_with(phase) && l.trim_end().ends_with('s')),
            "{phase} is timed:\n{out}"
        );
    }
    assert!(rto.lines().count() >= 5, "every phase is timed:\n{out}");
    let rpo = &out[out.find("RPO (").unwrap()..];
    for (label, copy) in [
        ("database/ytempire", database),
        (&format!("files {MEDIA}"), media),
    ] {
        assert!(
            rpo.lines().any(|l| l.contains(label) && l.contains(copy)),
            "the RPO names {copy}:\n{out}"
        );
    }
}

/// `converge recover --env dev`: exit 0, and the stack is back from S3: the api answers through
/// nginx, the roles are back (login, with a password), a plan has no changes. Its output.
fn recover(demo: &Demo, api: &str) -> String {
    let started = std::time::Instant::now();
    let out = demo.converge_ok("recover", "");
    eprintln!(
        "converge recover took {:.1}s:\n{out}",
        started.elapsed().as_secs_f64()
    );
    assert!(
        out.contains("s3://ytempire-backups/database/")
            && out.contains("s3://ytempire-backups/media/"),
        "restored from S3, all that was left:\n{out}"
    );
    let body = demo.nginx_says(|b| b == api);
    assert_eq!(body, api, "the api answers through nginx:\n{out}");
    assert_eq!(
        demo.sql(
            "postgres",
            "SELECT string_agg(rolname || ' ' || rolcanlogin || ' ' || (rolpassword IS NOT NULL), ', ' ORDER BY rolname) FROM pg_authid WHERE rolname LIKE 'ytempire%'"
        ),
        "ytempire_app true true, ytempire_readonly true true",
        "the roles are back, with their passwords"
    );
    let plan = demo.converge("plan", "--detailed-exitcode");
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    out
}

fn assert_the_stack_comes_back_from_s3_alone(demo: &Demo) {
    let api = demo.through_nginx();
    assert!(api.starts_with("ytempire api "), "{api}");
    let backed = write_rows_and_media_and_back_up_twice(demo);
    let rows = demo.rows();
    let media = files_under(Path::new(MEDIA));

    // The newest copies come back.
    destroy_everything_but_s3(demo, &api);
    let out = recover(demo, &api);
    assert_eq!(demo.rows(), rows, "{out}");
    assert!(
        files_under(Path::new(MEDIA)) == media,
        "the same files:\n{out}"
    );
    assert_rto_per_phase_and_rpo(&out, &backed.second.0, &backed.second.1);

    // The newest S3 copy of the database is corrupt: the previous one is used, and said so.
    destroy_everything_but_s3(demo, &api);
    demo.corrupt_in_s3("database", &backed.second.0);
    let out = recover(demo, &api);
    assert_eq!(
        demo.rows(),
        backed.first_rows,
        "the first backup's rows:\n{out}"
    );
    assert!(
        files_under(Path::new(MEDIA)) == media,
        "the same files:\n{out}"
    );
    assert_rto_per_phase_and_rpo(&out, &backed.first.0, &backed.second.1);
    assert!(
        out.lines()
            .any(|l| l.trim_start().starts_with("note") && l.contains(&backed.second.0)),
        "a note names the corrupt copy skipped:\n{out}"
    );

    assert_a_drill_leaves_the_real_stack_untouched(demo, &api);
}

/// A drill while the real stack runs (and has moved on since its backups): the api answers
/// through nginx all along, the same containers run, the site, rows and files are the same
/// afterwards, and no scratch database, directory or drill container is left.
fn assert_a_drill_leaves_the_real_stack_untouched(demo: &Demo, api: &str) {
    demo.sql(
        "ytempire",
        "INSERT INTO channels (youtube_id, title) VALUES ('UC-after', 'After the backups')",
    );
    write_file(
        "videos/1/thumbnail.jpg",
        b"edited after the backups\n",
        0o644,
    );
    let containers = || {
        docker(&[
            "ps",
            "-q",
            "--no-trunc",
            "--filter",
            "label=converge.project=ytempire",
        ])
    };
    let (ids, site, rows, media) = (
        containers(),
        std::fs::read(SITE).unwrap(),
        demo.rows(),
        files_under(Path::new(MEDIA)),
    );
    assert_eq!(ids.lines().count(), 3, "api, worker, renderer: {ids}");

    let scratch = scratch_dirs();
    let started = std::time::Instant::now();
    // The real api is asked through nginx all along the drill: it keeps answering.
    let drilling = std::sync::atomic::AtomicBool::new(true);
    let (out, answers) = std::thread::scope(|s| {
        let asking = s.spawn(|| {
            let mut answers = Vec::new();
            while drilling.load(std::sync::atomic::Ordering::SeqCst) {
                answers.push(demo.through_nginx());
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            answers
        });
        let out = demo.converge("recover", "--drill");
        drilling.store(false, std::sync::atomic::Ordering::SeqCst);
        (out, asking.join().unwrap())
    });
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = text(&out);
    eprintln!(
        "converge recover --drill took {:.1}s (the api answered {} times through nginx meanwhile):\n{out}",
        started.elapsed().as_secs_f64(),
        answers.len()
    );
    assert!(out.contains("RTO") && out.contains("RPO"), "{out}");
    // The api ran as the drill's own project, on the scratch database, and passed its gate.
    assert!(
        out.contains("service api: env DATABASE_URL names the scratch database ytempire_drill_")
            && out.contains(
                "service api: ytempire-drill-api-blue-1 started and passed its health gate"
            ),
        "{out}"
    );
    let other: Vec<&String> = answers.iter().filter(|a| **a != api).collect();
    assert!(
        other.is_empty(),
        "during the drill, nginx answered {other:?}:\n{out}"
    );

    assert_eq!(containers(), ids, "the same containers run:\n{out}");
    assert!(
        std::fs::read(SITE).unwrap() == site,
        "the site is the same:\n{out}"
    );
    assert_eq!(demo.through_nginx(), api, "{out}");
    assert_eq!(demo.rows(), rows, "{out}");
    assert!(
        files_under(Path::new(MEDIA)) == media,
        "the same files:\n{out}"
    );
    assert_eq!(
        demo.sql(
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'ytempire\\_drill\\_%'"
        ),
        "0",
        "{out}"
    );
    let drills: Vec<String> = docker_projects()
        .into_iter()
        .filter(|p| p.starts_with("ytempire") && p != "ytempire")
        .chain(
            docker_names()
                .into_iter()
                .filter(|n| n.starts_with("ytempire") && n.contains("drill")),
        )
        .collect();
    assert!(drills.is_empty(), "the drill left {drills:?}:\n{out}");
    assert_eq!(
        scratch_dirs(),
        scratch,
        "the drill's scratch directories are removed:\n{out}"
    );
    let plan = demo.converge("plan", "--detailed-exitcode");
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
}

#[test]
fn the_demo_prints_each_plan_once_and_leaves_an_env_file_that_plans_no_changes_from_a_fresh_state_dir(
) {
    let demo = Demo {
        work: tempfile::tempdir().unwrap(),
    };
    let o = demo.script(&[]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("CONVERGE_BIN: no build"), "{out}");
    assert!(!out.contains("Compiling"), "{out}");
    assert_each_plan_is_printed_once_and_short(&out);
    // It ends with a recovery drill and its measured RTO and RPO.
    assert!(
        out.contains("Recovery drill of project ytempire: a scratch copy recovered in ")
            && out.contains("Achieved RPO (age of each restored copy):"),
        "{out}"
    );
    assert_env_file_holds_every_variable(&demo.env_file());
    assert_printed_commands_work(&out);

    // Another machine (CI, a laptop): the same variables, its own empty state dir.
    let fresh = tempfile::tempdir().unwrap();
    let o = by_hand(&format!(
        "source {} && converge plan {} --env dev --state-dir {} --detailed-exitcode",
        demo.env_file().display(),
        demo.work.path().join("desired-state").display(),
        fresh.path().display()
    ));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("No changes."), "{}", text(&o));

    assert_the_stack_comes_back_from_s3_alone(&demo);

    assert_clean_removes_what_the_demo_made(&demo);
}
