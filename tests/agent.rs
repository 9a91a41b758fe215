//! `converge agent` with a real git repository (pushed over file://), the real Docker engine and
//! a real nginx: pushes converge, invalid commits are refused, webhooks are authenticated, drift
//! is repaired or reported, SIGTERM stops between steps, and kill -9 at any point of a blue-green
//! apply is recovered.

mod common;

use std::time::Duration;

use common::{docker, pg_url, wait_until, Agent, Nginx, Project, Repo};

fn project(name: &str, sync: &str) -> String {
    format!("kind: Project\nname: {name}\nhosts: [{{name: local}}]\nsync: {{{sync}}}\n---\n")
}

fn worker(replicas: u32) -> String {
    format!("kind: Service\nname: worker\nimage: converge-test/worker:v1\nreplicas: {replicas}\n")
}

fn running(p: &Project) -> usize {
    p.containers()
        .iter()
        .filter(|c| c.ends_with(" running"))
        .count()
}

#[test]
fn a_push_converges_an_invalid_commit_is_refused_and_the_fix_applies() {
    let p = Project::new("agentgit", "");
    let repo = Repo::new();
    repo.push(
        "one",
        &[(
            "deploy/converge.yaml",
            &(project(&p.name, "interval: 1s, prune: true") + &worker(1)),
        )],
    );
    let agent = Agent::start(
        p.state.path(),
        19501,
        &["--source", &repo.url(), "--path", "deploy"],
        &[],
    );
    wait_until(30, "one worker", || running(&p) == 1);
    wait_until(10, "/ready", || agent.get("/ready").0 == 200);

    let bad = project(&p.name, "interval: 1s, prune: true") + &worker(2) + "imgae: typo\n";
    repo.push("bad", &[("deploy/converge.yaml", &bad)]);
    wait_until(20, "the invalid revision reported", || {
        agent.status()["invalid_revision"].is_string()
    });
    let status = agent.status();
    assert!(
        status["last_error"]
            .as_str()
            .unwrap()
            .contains("unknown field `imgae` in Service"),
        "{status}"
    );
    assert_eq!(running(&p), 1, "the last good revision stays");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(running(&p), 1);

    repo.push(
        "fix",
        &[(
            "deploy/converge.yaml",
            &(project(&p.name, "interval: 1s, prune: true") + &worker(2)),
        )],
    );
    wait_until(30, "two workers", || running(&p) == 2);
    wait_until(10, "status clean", || {
        agent.status()["invalid_revision"].is_null()
    });
    wait_until(10, "the gauges of the next reconcile", || {
        agent
            .get("/metrics")
            .1
            .contains("converge_service_running_replicas{service=\"worker\"} 2")
    });
    let metrics = agent.get("/metrics").1;
    assert!(
        metrics.contains("converge_invalid_revisions_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("converge_reconcile_total{outcome=\"applied\"}"),
        "{metrics}"
    );
}

#[test]
fn the_webhook_needs_a_valid_signature_and_then_fetches_at_once() {
    let p = Project::new("agenthook", "");
    let repo = Repo::new();
    let stack = |n| project(&p.name, "interval: 1h") + &worker(n);
    repo.push("one", &[("converge.yaml", &stack(1))]);
    let agent = Agent::start(
        p.state.path(),
        19502,
        &["--source", &repo.url()],
        &[("CONVERGE_WEBHOOK_SECRET", "hook-secret")],
    );
    wait_until(30, "one worker", || running(&p) == 1);
    repo.push("two", &[("converge.yaml", &stack(2))]);
    let body = r#"{"ref":"refs/heads/main"}"#;
    let (code, _) = common::http(
        agent.port,
        "POST",
        "/hooks/git",
        &[("X-Hub-Signature-256", "sha256=0000")],
        body,
    );
    assert_eq!(code, 401);
    let (code, _) = common::http(agent.port, "POST", "/hooks/git", &[], body);
    assert_eq!(code, 401, "a missing signature");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(running(&p), 1, "nothing changed");
    let sig = {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"hook-secret").unwrap();
        mac.update(body.as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let (code, _) = common::http(
        agent.port,
        "POST",
        "/hooks/git",
        &[
            ("X-Hub-Signature-256", &format!("sha256={sig}")),
            ("X-GitHub-Delivery", "5c0e2f4a-1d2b-4c3d-9e8f-0a1b2c3d4e5f"),
        ],
        body,
    );
    assert_eq!(code, 202);
    wait_until(20, "two workers after the webhook", || running(&p) == 2);
}

#[test]
fn drift_is_reported_without_self_heal_and_repaired_with_it() {
    let p = Project::new("agentdrift", "");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("converge.yaml"),
        project(&p.name, "interval: 1s, self_heal: false") + &worker(1),
    )
    .unwrap();
    let source = dir.path().to_str().unwrap().to_string();
    let agent = Agent::start(p.state.path(), 19503, &["--source", &source], &[]);
    wait_until(30, "one worker", || running(&p) == 1);
    docker(&["stop", &format!("{}-worker-1", p.name)]);
    wait_until(20, "drift reported", || {
        agent.status()["drift"]
            .as_array()
            .is_some_and(|d| !d.is_empty())
    });
    assert!(agent.get("/metrics").1.contains("converge_drift_total"));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(running(&p), 0, "self_heal: false touches nothing");
    // The directory source is watched: turning self-heal on repairs at once.
    std::fs::write(
        dir.path().join("converge.yaml"),
        project(&p.name, "interval: 1s, self_heal: true") + &worker(1),
    )
    .unwrap();
    wait_until(20, "repaired", || running(&p) == 1);
    drop(agent);
}

#[test]
fn sigterm_finishes_the_current_step_and_a_restart_recovers() {
    let p = Project::new("agentterm", "");
    let slow = "kind: Service\nname: aaa-slow\nimage: converge-test/httpd:v1\nports: [{container: 8000}]\nhealth: {http: {path: /health, port: 8000}, interval: 400ms, healthy_after: 8, retries: 30}\n---\n";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("converge.yaml"),
        project(&p.name, "interval: 1h") + slow + &worker(1) + "depends_on: [service/aaa-slow]\n",
    )
    .unwrap();
    let source = dir.path().to_str().unwrap().to_string();
    let mut agent = Agent::start(p.state.path(), 19504, &["--source", &source], &[]);
    wait_until(20, "the slow step started", || {
        p.journal()
            .contains("\"action\":\"create\",\"detail\":\"start 1 replica(s)\"")
    });
    let pid = agent.child.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let status = agent.child.wait().unwrap();
    assert!(
        status.success(),
        "exits cleanly after the step: {status:?}\n{}",
        agent.log()
    );
    let journal = p.journal();
    assert!(
        journal.contains("\"event\":\"apply-interrupted\""),
        "{journal}"
    );
    assert!(
        !journal.contains("\"resource\":\"service/worker\",\"action\":\"create\""),
        "the next step never started"
    );
    let _again = Agent::start(p.state.path(), 19505, &["--source", &source], &[]);
    wait_until(30, "both services", || running(&p) == 2);
    assert!(p.journal().contains("\"event\":\"recovered\""));
}

fn bg_stack(name: &str, nginx: &Nginx, image: &str, tag: &str) -> String {
    project(name, "interval: 1s, prune: true")
        + &format!(
            "kind: Service\nname: api\nimage: {image}\nenv: {{TAG: {tag}}}\nports: [{{container: 8000}}]\nhealth: {{http: {{path: /health, port: 8000}}, interval: 300ms, healthy_after: 5, retries: 30}}\ndeploy: {{strategy: blue-green, blue: {{port: 18521}}, green: {{port: 18522}}, verify_for: 1s, drain: 1s}}\n---\n"
        )
        + &nginx.router("api", "nginx-site")
}

/// The router points at a color whose container runs and is healthy, and it serves `body`.
fn converged(p: &Project, nginx: &Nginx, body: &str) -> bool {
    let site = nginx.site();
    let color = if site.contains("127.0.0.1:18521;") {
        "blue"
    } else if site.contains("127.0.0.1:18522;") {
        "green"
    } else {
        return false;
    };
    let containers = p.containers();
    let active = format!("{}-api-{color}-1 running", p.name);
    containers.contains(&active)
        && common::http_body(nginx.port) == body
        && containers.iter().filter(|c| c.contains("-api-")).count() == 1
}

#[test]
fn kill_9_at_any_point_of_a_blue_green_apply_is_recovered_without_orphans() {
    let nginx = Nginx::start(18520);
    let p = Project::new("agentkill", "");
    let repo = Repo::new();
    repo.push(
        "v1",
        &[(
            "converge.yaml",
            &bg_stack(&p.name, &nginx, "converge-test/httpd:v1", "a"),
        )],
    );
    let state = p.state.path().to_path_buf();
    let mut agent = Agent::start(&state, 19510, &["--source", &repo.url()], &[]);
    wait_until(60, "v1 served", || converged(&p, &nginx, "v1"));

    // Kill points: during the health gate, after the new color passed it, after the switch.
    let points = [
        (
            "v2",
            "converge-test/httpd:v2",
            "b",
            "\"event\":\"step-started\",\"step\":1",
        ),
        (
            "v1",
            "converge-test/httpd:v1",
            "c",
            "\"event\":\"step-done\",\"step\":1",
        ),
        (
            "v2",
            "converge-test/httpd:v2",
            "d",
            "\"event\":\"step-done\",\"step\":2",
        ),
    ];
    for (body, image, tag, marker) in points {
        let before = p.journal().matches(marker).count();
        repo.push(
            tag,
            &[("converge.yaml", &bg_stack(&p.name, &nginx, image, tag))],
        );
        wait_until(60, &format!("journal reaches {marker}"), || {
            p.journal().matches(marker).count() > before
        });
        agent.kill9();
        // Whatever was half done, the router points at a running color.
        let site = nginx.site();
        let color = if site.contains(":18521;") {
            "blue"
        } else {
            "green"
        };
        assert!(
            p.containers()
                .contains(&format!("{}-api-{color}-1 running", p.name)),
            "router points at a running color: {:?}",
            p.containers()
        );
        agent = Agent::start(&state, 19510, &["--source", &repo.url()], &[]);
        wait_until(90, &format!("{body} ({tag}) served after recovery"), || {
            converged(&p, &nginx, body)
        });
    }
    let journal = p.journal();
    assert!(
        journal.matches("\"event\":\"recovered\"").count() >= 1,
        "an interrupted run was recovered: {journal}"
    );
    assert!(
        !docker(&["ps", "-a", "--format", "{{.Names}}"]).contains(".old-"),
        "no retired container is left"
    );
}

#[test]
fn two_agents_share_one_cluster_lock_and_the_survivor_takes_it() {
    let url = pg_url();
    let p = Project::new("agentlock", "");
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "kind: Project\nname: {}\nhosts: [{{name: a}}, {{name: b}}]\nproviders: {{postgres: {{url: \"${{env:CVT_PG_URL}}\"}}}}\nsync: {{interval: 1s}}\n---\nkind: Service\nname: worker\nimage: converge-test/worker:v1\nplacement: {{hosts: [a]}}\n",
        p.name
    );
    std::fs::write(dir.path().join("converge.yaml"), yaml).unwrap();
    let source = dir.path().to_str().unwrap().to_string();
    let state_b = tempfile::tempdir().unwrap();
    let env = [("CVT_PG_URL", url.as_str())];
    let mut a = Agent::start(
        p.state.path(),
        19520,
        &["--source", &source, "--host", "a"],
        &env,
    );
    let mut b = Agent::start(
        state_b.path(),
        19521,
        &["--source", &source, "--host", "b"],
        &env,
    );
    let lock = |x: &Agent| {
        x.status()["cluster_lock"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    wait_until(20, "both agents polled the lock", || {
        !lock(&a).is_empty() && !lock(&b).is_empty()
    });
    wait_until(20, "exactly one holder", || {
        let (la, lb) = (lock(&a), lock(&b));
        (la == "held" && lb == "waiting") || (la == "waiting" && lb == "held")
    });
    assert!(!lock(&a).starts_with("error") && !lock(&b).starts_with("error"));
    wait_until(30, "host a runs the worker", || running(&p) == 1);
    let (holder, other) = if lock(&a) == "held" {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    assert!(holder
        .get("/metrics")
        .1
        .contains("converge_cluster_lock_held 1"));
    holder.kill9();
    wait_until(20, "the survivor takes the lock", || lock(other) == "held");
}

#[test]
fn notifiers_receive_slack_json_and_a_broken_one_never_blocks_an_apply() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = received.clone();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = vec![0u8; 65536];
            let mut got = Vec::new();
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&got);
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        break;
                    }
                }
            }
            sink.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&got).to_string());
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        }
    });
    let p = Project::new("agentnotify", "");
    let dir = tempfile::tempdir().unwrap();
    let notifiers = format!(
        "kind: Notifier\nname: slack\nwebhook: \"http://127.0.0.1:{port}/hook\"\nevents: [applied]\n---\nkind: Notifier\nname: broken\nwebhook: \"http://127.0.0.1:9/nothing\"\n---\n"
    );
    std::fs::write(
        dir.path().join("converge.yaml"),
        project(&p.name, "interval: 1h") + &notifiers + &worker(1),
    )
    .unwrap();
    let source = dir.path().to_str().unwrap().to_string();
    let agent = Agent::start(p.state.path(), 19530, &["--source", &source], &[]);
    wait_until(30, "the worker", || running(&p) == 1);
    wait_until(20, "the applied event", || {
        !received.lock().unwrap().is_empty()
    });
    let request = received.lock().unwrap()[0].clone();
    assert!(request.starts_with("POST /hook HTTP/1.1"), "{request}");
    let body = request.split("\r\n\r\n").nth(1).unwrap();
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(json["event"], "applied");
    assert!(
        json["text"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}: applied", p.name)),
        "{json}"
    );
    // The applied event is sent before the reconcile ends and records its outcome.
    wait_until(10, "the reconcile's outcome", || {
        agent.status()["last_outcome"].as_str().is_some()
    });
    wait_until(10, "the broken notifier is logged", || {
        agent.log().contains("notification failed")
    });
    assert!(
        !agent.log().contains("127.0.0.1:9/nothing"),
        "webhook URLs are not logged"
    );
}
