//! `kill -9` at every step of a blue-green deploy (v1 -> v2) under continuous HTTP load through
//! nginx: not one request fails during the crash and the recovery, the apply after the crash
//! converges on v2, the drain of the old color runs, and nothing is left behind. The crash
//! points: while the new color passes its health gate, as the switch starts, while the switch
//! verifies the new color, at the drain step, exactly after the records written microseconds
//! apart at the end of the run (see `Crash::After`), and while a later apply drains the old color.

mod common;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{text, Nginx, Project};

fn stack(nginx: &Nginx, image: &str, blue: u16) -> String {
    format!(
        "kind: Service\nname: api\nimage: {image}\nports: [{{container: 8000}}]\nhealth: {{http: {{path: /health, port: 8000}}, interval: 200ms, timeout: 1s, healthy_after: 2, retries: 20}}\ndeploy: {{strategy: blue-green, blue: {{port: {blue}}}, green: {{port: {}}}, verify_for: 3s, drain: 1s}}\n---\n{}",
        blue + 1,
        nginx.router("api", "nginx-site")
    )
}

/// The journal's records (JSON lines).
fn records(p: &Project) -> Vec<serde_json::Value> {
    p.journal()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// `event action` of each record of run `run`, in order.
fn run_events(p: &Project, run: &str) -> Vec<String> {
    records(p)
        .into_iter()
        .filter(|r| r["run"] == run)
        .map(|r| {
            format!(
                "{} {}",
                r["event"].as_str().unwrap_or(""),
                r["action"].as_str().unwrap_or("")
            )
            .trim()
            .to_string()
        })
        .collect()
}

/// GETs through nginx until stopped: (200s, everything else).
fn load(port: u16, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(u32, Vec<String>)> {
    std::thread::spawn(move || {
        let (mut ok, mut failed) = (0u32, Vec::new());
        while !stop.load(Ordering::SeqCst) {
            match common::http(port, "GET", "/", &[], "") {
                (200, _) => ok += 1,
                (status, body) => failed.push(format!("{status} {}", body.trim())),
            }
        }
        (ok, failed)
    })
}

fn running(p: &Project) -> Vec<String> {
    p.containers()
        .into_iter()
        .filter_map(|c| c.strip_suffix(" running").map(str::to_string))
        .collect()
}

/// Where the v2 apply stops.
#[derive(Clone, Copy)]
enum Crash {
    /// SIGKILL as soon as the journal shows `event` for `action` (polled every 2 ms: the kill
    /// lands while that step runs, or right after when it is shorter than that).
    Kill(&'static str, &'static str),
    /// A crash exactly after the record `event` for `action`, between records written within
    /// microseconds of each other (no kill lands there): the apply runs to the end, then the
    /// journal is cut after that record and the undo copies the run still had at that moment are
    /// put back (the router file it replaced). Nothing live changes between those records.
    After(&'static str, &'static str),
}

fn is(r: &serde_json::Value, event: &str, action: &str) -> bool {
    r["event"] == event && r["action"] == action
}

/// Deploys v1, then v2 under load and crashes converge at `crash`; the next applies must
/// recover and converge on v2 without a single failed request.
fn crash_at(test: &str, nginx_port: u16, blue: u16, crash: Crash) {
    let started = Instant::now();
    let nginx = Nginx::start(nginx_port);
    let p = Project::new(test, &stack(&nginx, "converge-test/httpd:v1", blue));
    let o = p.apply();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(nginx.get(), "v1");
    let v1_site = nginx.site();

    let stop = Arc::new(AtomicBool::new(false));
    let load = load(nginx.port, stop.clone());
    let before = records(&p).len();
    p.write(&stack(&nginx, "converge-test/httpd:v2", blue));
    let run = match crash {
        Crash::Kill(event, action) => {
            let mut child = Command::new(env!("CARGO_BIN_EXE_converge"))
                .arg("--state-dir")
                .arg(p.state.path())
                .args(["apply", p.path().to_str().unwrap(), "--auto-approve"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(60);
            let run = loop {
                let recs = records(&p);
                if let Some(r) = recs.iter().skip(before).find(|r| is(r, event, action)) {
                    break r["run"].as_str().unwrap().to_string();
                }
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "converge exited ({status}) before `{event} {action}`:\n{}",
                        p.journal()
                    );
                }
                assert!(
                    Instant::now() < deadline,
                    "no `{event} {action}` in 60s:\n{}",
                    p.journal()
                );
                std::thread::sleep(Duration::from_millis(2));
            };
            child.kill().unwrap();
            let _ = child.wait();
            run
        }
        Crash::After(event, action) => {
            let o = p.apply();
            assert_eq!(o.status.code(), Some(0), "{}", text(&o));
            let journal = p.journal();
            let lines: Vec<&str> = journal.lines().collect();
            let cut = (before..lines.len())
                .find(|&i| {
                    serde_json::from_str(lines[i])
                        .is_ok_and(|r: serde_json::Value| is(&r, event, action))
                })
                .unwrap_or_else(|| panic!("no `{event} {action}`:\n{journal}"));
            let kept: Vec<serde_json::Value> = lines[before..=cut]
                .iter()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            // The copies of completed steps were still there; a step's prepared copy goes when
            // it ends.
            for r in kept.iter().filter(|r| r["event"] == "step-done") {
                if let Some(saved) = r["data"]["saved"].as_str() {
                    use std::os::unix::fs::OpenOptionsExt;
                    std::fs::create_dir_all(std::path::Path::new(saved).parent().unwrap()).unwrap();
                    let mut f = std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .open(saved)
                        .unwrap();
                    std::io::Write::write_all(&mut f, v1_site.as_bytes()).unwrap();
                }
            }
            let mut cut_journal = lines[..=cut].join("\n");
            cut_journal.push('\n');
            std::fs::write(
                p.state.path().join(format!("journal/{}.jsonl", p.name)),
                cut_journal,
            )
            .unwrap();
            kept[0]["run"].as_str().unwrap().to_string()
        }
    };
    let at_kill = run_events(&p, &run);

    // Recovery, then the deploy of v2 again.
    let recovery = p.apply();
    let out = text(&recovery);
    assert_eq!(
        recovery.status.code(),
        Some(0),
        "killed after {at_kill:?}:\n{out}"
    );
    assert_eq!(nginx.get(), "v2", "killed after {at_kill:?}:\n{out}");
    // The drain of blue comes due; the next apply stops it.
    std::thread::sleep(Duration::from_millis(1500));
    let drain = p.apply();
    let drained = text(&drain);
    assert_eq!(drain.status.code(), Some(0), "{drained}");

    stop.store(true, Ordering::SeqCst);
    let (ok, failed) = load.join().unwrap();
    eprintln!(
        "crash: killed after {at_kill:?}; {ok} ok, {} failed; {:.1}s\n{out}{drained}",
        failed.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        ok > 0 && failed.is_empty(),
        "killed after {at_kill:?}: {ok} ok, failed: {failed:?}\n{out}{drained}"
    );
    assert_eq!(nginx.get(), "v2");
    assert_eq!(
        running(&p),
        vec![format!("{}-api-green-1", p.name)],
        "blue is drained:\n{out}{drained}"
    );
    let plan = p.converge(&["plan", "DIR", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    let left: Vec<_> = std::fs::read_dir(p.state.path().join("undo").join(&p.name))
        .map(|d| d.collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "undo copies left: {left:?}");
}

#[test]
fn a_kill_while_the_new_color_starts_and_passes_its_health_gate() {
    crash_at(
        "bgk-start",
        18701,
        18801,
        Crash::Kill("step-started", "start-color"),
    );
}

#[test]
fn a_kill_as_the_switch_starts() {
    crash_at(
        "bgk-switch",
        18702,
        18803,
        Crash::Kill("step-started", "switch"),
    );
}

#[test]
fn a_kill_while_the_switch_verifies_the_new_color() {
    crash_at(
        "bgk-verify",
        18703,
        18805,
        Crash::Kill("step-prepared", "switch"),
    );
}

/// The drain step only journals a deferred drain: the kill lands once it is done.
#[test]
fn a_kill_at_the_drain_step() {
    crash_at(
        "bgk-drain",
        18704,
        18807,
        Crash::Kill("step-started", "drain"),
    );
}

#[test]
fn a_crash_right_after_the_switch_completed() {
    crash_at(
        "bgk-switched",
        18705,
        18809,
        Crash::After("step-done", "switch"),
    );
}

/// Recovery puts traffic back on blue while the dead run's drain of blue is still open.
#[test]
fn a_crash_after_the_drain_of_the_old_color_was_deferred() {
    crash_at(
        "bgk-deferred",
        18706,
        18811,
        Crash::After("deferred", "drain"),
    );
}

#[test]
fn a_crash_after_the_last_step_before_the_run_was_closed() {
    crash_at("bgk-last", 18707, 18813, Crash::After("step-done", "drain"));
}

/// The drain of the old color runs in a later apply (when due): killed while it stops blue,
/// the next apply finishes it. Traffic is on green throughout. Here httpd ignores SIGTERM, so
/// the stop takes its whole grace period (30 s) and the kill lands in the middle of it.
#[test]
fn a_kill_while_the_old_color_drains() {
    let started = Instant::now();
    let nginx = Nginx::start(18708);
    let slow = |image: &str| {
        stack(&nginx, image, 18815).replace(
            "ports: [",
            "command: [/bin/sh, -c, \"trap '' TERM; exec /bin/busybox httpd -f -p 8000 -h /www\"]\nports: [",
        )
    };
    let p = Project::new("bgk-stopold", &slow("converge-test/httpd:v1"));
    let o = p.apply();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    p.write(&slow("converge-test/httpd:v2"));
    let o = p.apply();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(nginx.get(), "v2");

    let stop = Arc::new(AtomicBool::new(false));
    let load = load(nginx.port, stop.clone());
    std::thread::sleep(Duration::from_millis(1500));
    let mut child = Command::new(env!("CARGO_BIN_EXE_converge"))
        .arg("--state-dir")
        .arg(p.state.path())
        .args(["apply", p.path().to_str().unwrap(), "--auto-approve"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the apply is still stopping blue:\n{}",
        p.journal()
    );
    child.kill().unwrap();
    let _ = child.wait();
    assert!(
        !p.journal().contains("\"deferred-done\""),
        "killed before the drain was recorded done"
    );

    let o = p.apply();
    let out = text(&o);
    stop.store(true, Ordering::SeqCst);
    let (ok, failed) = load.join().unwrap();
    eprintln!(
        "crash: killed while draining blue; {ok} ok, {} failed; {:.1}s\n{out}",
        failed.len(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains("deferred drain service/api: stopped blue"),
        "{out}"
    );
    assert!(
        ok > 0 && failed.is_empty(),
        "{ok} ok, failed: {failed:?}\n{out}"
    );
    assert_eq!(nginx.get(), "v2");
    assert_eq!(
        p.containers(),
        vec![format!("{}-api-green-1 running", p.name)]
    );
    let plan = p.converge(&["plan", "DIR", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    assert!(
        !text(&plan).contains("Pending from earlier applies"),
        "{}",
        text(&plan)
    );
}
