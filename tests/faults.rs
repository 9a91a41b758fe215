//! Faults and the data-safety promises: a check that hangs, a notifier that never answers, an S3
//! connection cut in the middle of an upload, a local destination that fills up. Each must end
//! in a clear error after a bounded time, with nothing left behind: no process, no `.partial`
//! file, no incomplete multipart upload. The S3 test needs `CONVERGE_TEST_S3_ENDPOINT` (moto,
//! started by scripts/test); the full-disk test mounts a tmpfs (root only).

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
