//! `providers: {swarm: {}}` on a real single-node Docker Swarm: services become Swarm services,
//! a rolling update Swarm rolls back is reported while traffic keeps flowing, blue-green
//! switches a real nginx between two Swarm services, a rotated secret is a new Swarm secret
//! whose value shows nowhere, a service edited or scaled by hand is put back, the autoscaler
//! scales a Swarm service, and prune removes what left Git. Skipped (with a message) when the
//! engine is not a swarm manager; scripts/test makes it one.

mod common;

use common::{docker, text, wait_until, Agent, Nginx, Project};

/// Whether the engine is a swarm manager; says why a test is skipped when it is not.
fn swarm() -> bool {
    let state = docker(&["info", "--format", "{{.Swarm.ControlAvailable}}"]);
    if state.trim() == "true" {
        return true;
    }
    eprintln!(
        "skipped: the Docker engine is not a swarm manager (scripts/test runs `docker swarm init`)"
    );
    false
}

/// A project whose services run on Swarm.
fn project(test: &str, body: &str) -> Project {
    let p = Project::new(test, "");
    write(&p, body);
    p
}

fn write(p: &Project, body: &str) {
    let head = format!(
        "kind: Project\nname: {}\nhosts: [{{name: local}}]\nproviders: {{swarm: {{}}}}\nsync: {{prune: true}}\n---\n",
        p.name
    );
    std::fs::write(p.path().join("converge.yaml"), head + body).unwrap();
}

fn web(image: &str, replicas: u32, verify: &str) -> String {
    format!(
        "kind: Service\nname: web\nimage: {image}\nreplicas: {replicas}\nports: [{{container: 8000}}]\nenv: {{MODE: plain, TOKEN: \"${{env:CVT_SWARM_TOKEN}}\"}}\nhealth: {{http: {{path: /health, port: 8000}}, interval: 300ms, timeout: 1s, retries: 3}}\ndeploy: {{strategy: rolling, verify_for: {verify}}}\n"
    )
}

fn apply(p: &Project, token: &str) -> std::process::Output {
    p.converge_env(
        &["apply", "DIR", "--auto-approve"],
        &[("CVT_SWARM_TOKEN", token)],
    )
}

fn plan(p: &Project, token: &str) -> (i32, String) {
    let o = p.converge_env(
        &["plan", "DIR", "--detailed-exitcode"],
        &[("CVT_SWARM_TOKEN", token)],
    );
    (o.status.code().unwrap_or(-1), text(&o))
}

/// `docker service inspect -f FORMAT NAME`, trimmed.
fn inspect(name: &str, format: &str) -> String {
    docker(&["service", "inspect", "-f", format, name])
        .trim()
        .to_string()
}

/// This project's Swarm secrets, by name.
fn secrets(p: &Project) -> Vec<String> {
    let mut v: Vec<String> = docker(&[
        "secret",
        "ls",
        "--filter",
        &format!("label=converge.project={}", p.name),
        "--format",
        "{{.Name}}",
    ])
    .lines()
    .map(str::to_string)
    .collect();
    v.sort();
    v
}

/// Runs `sh` in a running task container of `service`.
fn exec(service: &str, sh: &str) -> String {
    let id = docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=com.docker.swarm.service.name={service}"),
    ]);
    let id = id.lines().next().expect("a running task").to_string();
    docker(&["exec", &id, "/bin/busybox", "sh", "-c", sh])
}

#[test]
fn services_become_swarm_services_and_a_second_plan_is_empty() {
    if !swarm() {
        return;
    }
    let p = project("swcreate", &web("converge-test/httpd:v1", 2, "1s"));
    let (_, planned) = plan(&p, "t0k3n-one");
    assert!(planned.contains("create the overlay network"), "{planned}");
    let o = apply(&p, "t0k3n-one");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let svc = format!("{}-web", p.name);
    assert_eq!(inspect(&svc, "{{.Spec.Mode.Replicated.Replicas}}"), "2");
    assert_eq!(
        inspect(&svc, "{{index .Spec.Labels \"converge.resource\"}}"),
        "service/web"
    );
    assert_eq!(
        docker(&["network", "inspect", "-f", "{{.Driver}}", &p.name]).trim(),
        "overlay"
    );
    // The secret is a Swarm secret mounted as a file, with a *_FILE variable pointing at it.
    assert_eq!(exec(&svc, "cat /run/secrets/TOKEN").trim(), "t0k3n-one");
    assert_eq!(exec(&svc, "echo $TOKEN_FILE").trim(), "/run/secrets/TOKEN");
    let spec = docker(&["service", "inspect", &svc]);
    assert!(
        !spec.contains("t0k3n-one"),
        "the value is in the service spec"
    );
    assert!(!text(&o).contains("t0k3n-one") && !p.journal().contains("t0k3n-one"));
    assert_eq!(plan(&p, "t0k3n-one").0, 0, "second plan must be empty");
    // Status shows the tasks on their node.
    let status = text(&p.converge_env(&["status", "DIR"], &[("CVT_SWARM_TOKEN", "t0k3n-one")]));
    assert!(status.contains("Swarm tasks by node:"), "{status}");
    assert_eq!(status.matches(" running").count(), 2, "{status}");
}

#[test]
fn a_failing_rolling_update_is_rolled_back_by_swarm_and_traffic_never_fails() {
    if !swarm() {
        return;
    }
    let p = project("swroll", &web("converge-test/httpd:v1", 2, "2s"));
    let o = apply(&p, "x");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // A client on the project's overlay network asks `web` every 100 ms for ~25 s.
    let client = docker(&[
        "run", "-d", "--network", &p.name, "--label", &format!("converge.project={}", p.name),
        "converge-test/httpd:v1", "/bin/busybox", "sh", "-c",
        "ok=0; bad=0; i=0; while [ $i -lt 250 ]; do if /bin/busybox wget -q -O /dev/null http://web:8000/; then ok=$((ok+1)); else bad=$((bad+1)); fi; i=$((i+1)); /bin/busybox usleep 100000; done; echo ok=$ok bad=$bad",
    ]);
    let client = client.trim().to_string();
    std::thread::sleep(std::time::Duration::from_secs(1));
    write(&p, &web("converge-test/httpd:broken", 2, "2s"));
    let o = apply(&p, "x");
    let out = text(&o);
    assert_ne!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("rolled back by Swarm"), "{out}");
    let svc = format!("{}-web", p.name);
    assert_eq!(
        inspect(&svc, "{{.Spec.TaskTemplate.ContainerSpec.Image}}"),
        "converge-test/httpd:v1"
    );
    assert_eq!(
        inspect(&svc, "{{.UpdateStatus.State}}"),
        "rollback_completed"
    );
    // Bounded: a request that hangs fails the test rather than blocking it.
    let waited = std::process::Command::new("timeout")
        .args(["120", "docker", "wait", &client])
        .status()
        .unwrap();
    assert!(waited.success(), "the client did not finish");
    let counts = docker(&["logs", &client]);
    assert!(
        counts.contains(" bad=0"),
        "requests failed during the update: {counts}"
    );
    assert!(!counts.contains("ok=0 "), "{counts}");
    // The failed spec is held back until Git changes.
    let (_, planned) = plan(&p, "x");
    assert!(planned.contains("failed and was rolled back"), "{planned}");
}

fn api(image: &str, blue: u16) -> String {
    format!(
        "kind: Service\nname: api\nimage: {image}\nports: [{{container: 8000}}]\nhealth: {{http: {{path: /health, port: 8000}}, interval: 300ms, timeout: 1s, retries: 3}}\ndeploy: {{strategy: blue-green, blue: {{port: {blue}}}, green: {{port: {}}}, verify_for: 1s, drain: 1s}}\n",
        blue + 1
    )
}

#[test]
fn blue_green_switches_nginx_between_two_swarm_services() {
    if !swarm() {
        return;
    }
    let nginx = Nginx::start(18601);
    let stack = |image: &str| {
        format!(
            "{}---\n{}",
            api(image, 18611),
            nginx.router("api", "nginx-site")
        )
    };
    let p = project("swbg", &stack("converge-test/httpd:v1"));
    let o = apply(&p, "x");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(nginx.get(), "v1");
    let blue = format!("{}-api-blue", p.name);
    let green = format!("{}-api-green", p.name);
    assert_eq!(
        inspect(&blue, "{{index .Spec.Labels \"converge.color\"}}"),
        "blue"
    );

    write(&p, &stack("converge-test/httpd:v2"));
    let o = apply(&p, "x");
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("switch router/public"), "{out}");
    assert_eq!(nginx.get(), "v2");
    assert!(
        nginx.site().contains("server 127.0.0.1:18612;"),
        "{}",
        nginx.site()
    );
    assert_eq!(
        inspect(&green, "{{.Spec.TaskTemplate.ContainerSpec.Image}}"),
        "converge-test/httpd:v2"
    );
    // The old color drains when its time is up (the next run does it).
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let o = apply(&p, "x");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(inspect(&blue, "{{.ID}}"), "", "blue is drained");
    assert_eq!(nginx.get(), "v2");
    assert_eq!(plan(&p, "x").0, 0, "{}", plan(&p, "x").1);
}

#[test]
fn a_rotated_secret_is_a_new_swarm_secret_and_the_old_one_is_removed() {
    if !swarm() {
        return;
    }
    let p = project("swsecret", &web("converge-test/httpd:v1", 1, "1s"));
    assert_eq!(apply(&p, "first-Value-1").status.code(), Some(0));
    let before = secrets(&p);
    assert_eq!(before.len(), 1, "{before:?}");
    let (code, planned) = plan(&p, "second-Value-2");
    assert_eq!(code, 2, "{planned}");
    assert!(planned.contains("env.TOKEN = (sensitive)"), "{planned}");
    let o = apply(&p, "second-Value-2");
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    let after = secrets(&p);
    assert_eq!(after.len(), 1, "the old secret is removed: {after:?}");
    assert_ne!(before, after);
    let svc = format!("{}-web", p.name);
    wait_until(20, "the new task", || {
        exec(&svc, "cat /run/secrets/TOKEN").trim() == "second-Value-2"
    });
    let everywhere = format!(
        "{planned}{out}{}{}",
        p.journal(),
        docker(&["service", "inspect", &svc])
    );
    for value in ["first-Value-1", "second-Value-2"] {
        assert!(!everywhere.contains(value), "{value} leaked");
    }
}

#[test]
fn a_service_edited_or_scaled_by_hand_is_put_back() {
    if !swarm() {
        return;
    }
    let p = project("swdrift", &web("converge-test/httpd:v1", 1, "1s"));
    assert_eq!(apply(&p, "x").status.code(), Some(0));
    let svc = format!("{}-web", p.name);
    docker(&["service", "update", "-d", "--env-add", "HAND=1", &svc]);
    let (code, planned) = plan(&p, "x");
    assert_eq!(code, 2, "{planned}");
    assert!(
        planned.contains("drift: changed outside converge"),
        "{planned}"
    );
    assert_eq!(apply(&p, "x").status.code(), Some(0));
    assert!(!inspect(&svc, "{{.Spec.TaskTemplate.ContainerSpec.Env}}").contains("HAND"));

    docker(&["service", "scale", "-d", &format!("{svc}=3")]);
    let (code, planned) = plan(&p, "x");
    assert_eq!(code, 2, "{planned}");
    assert!(planned.contains("replicas 3 → 1"), "{planned}");
    let o = apply(&p, "x");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(inspect(&svc, "{{.Spec.Mode.Replicated.Replicas}}"), "1");
    assert_eq!(plan(&p, "x").0, 0);
}

#[test]
fn prune_removes_a_service_that_left_git_and_its_secrets() {
    if !swarm() {
        return;
    }
    let worker = "kind: Service\nname: worker\nimage: converge-test/worker:v1\nenv: {KEY: \"${env:CVT_SWARM_TOKEN}\"}\nvolumes: [{source: data, target: /data}]\n";
    let p = project(
        "swprune",
        &format!("{}---\n{worker}", web("converge-test/httpd:v1", 1, "1s")),
    );
    let o = apply(&p, "x");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(secrets(&p).len(), 2);
    write(&p, &web("converge-test/httpd:v1", 1, "1s"));
    let (_, planned) = plan(&p, "x");
    assert!(planned.contains("- service/worker"), "{planned}");
    let o = apply(&p, "x");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(inspect(&format!("{}-worker", p.name), "{{.ID}}"), "");
    assert_eq!(secrets(&p).len(), 1, "{:?}", secrets(&p));
    // The volume holds data: it stays unless it opted in to prune.
    assert!(docker(&["volume", "ls", "-q"]).contains(&format!("{}_data", p.name)));
}

#[test]
fn the_autoscaler_scales_a_swarm_service_on_cpu() {
    if !swarm() {
        return;
    }
    let burn = "kind: Service\nname: burn\nimage: converge-test/worker:v1\ncommand: [/bin/busybox, sh, -c, \"while :; do :; done\"]\nresources: {cpus: 0.2}\nscale: {min: 1, max: 2, cooldown: 1s, up: [{metric: cpu, above: 50, for: 2s}]}\n";
    let p = project("swscale", burn);
    let agent = Agent::start(
        p.state.path(),
        18621,
        &[
            "--source",
            p.path().to_str().unwrap(),
            "--scale-interval",
            "1s",
        ],
        &[],
    );
    let svc = format!("{}-burn", p.name);
    wait_until(60, "the autoscaler to scale burn to 2", || {
        inspect(&svc, "{{.Spec.Mode.Replicated.Replicas}}") == "2"
    });
    // The only manager leads the swarm, so its agent applies; /status shows the tasks per node.
    wait_until(20, "/status to list the tasks", || {
        agent.status()["swarm_tasks"]
            .as_array()
            .is_some_and(|t| !t.is_empty())
    });
    let status = agent.status();
    assert_eq!(status["swarm_role"], "applies", "{status}");
    let task = &status["swarm_tasks"][0];
    assert_eq!(task["resource"], "service/burn", "{status}");
    assert!(
        task["node"].as_str().is_some_and(|n| !n.is_empty()),
        "{status}"
    );
}

#[test]
fn a_service_scaled_to_zero_and_back_starts_again() {
    if !swarm() {
        return;
    }
    let p = project("swzero", &web("converge-test/httpd:v1", 1, "1s"));
    assert_eq!(apply(&p, "x").status.code(), Some(0));
    let svc = format!("{}-web", p.name);
    write(&p, &web("converge-test/httpd:v1", 0, "1s"));
    let o = apply(&p, "x");
    assert!(text(&o).contains("replicas 1 → 0"), "{}", text(&o));
    assert_eq!(inspect(&svc, "{{.Spec.Mode.Replicated.Replicas}}"), "0");
    write(&p, &web("converge-test/httpd:v1", 1, "1s"));
    let o = apply(&p, "x");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(inspect(&svc, "{{.Spec.Mode.Replicated.Replicas}}"), "1");
    assert_eq!(plan(&p, "x").0, 0);
}

#[test]
fn a_color_that_fails_after_the_switch_is_switched_back() {
    if !swarm() {
        return;
    }
    let nginx = Nginx::start(18631);
    let stack = |image: &str, verify: &str| {
        let api = api(image, 18641).replace("verify_for: 1s", &format!("verify_for: {verify}"));
        format!("{api}---\n{}", nginx.router("api", "nginx-site"))
    };
    let p = project("swbgback", &stack("converge-test/httpd:v1", "1s"));
    let o = apply(&p, "x");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(nginx.get(), "v1");
    // `dies` passes its health check for 3 s, then fails it: Swarm replaces the task while
    // converge watches the new color, and traffic goes back to blue.
    write(&p, &stack("converge-test/httpd:dies", "10s"));
    let o = apply(&p, "x");
    let out = text(&o);
    assert_ne!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("verification after the switch"), "{out}");
    assert_eq!(nginx.get(), "v1");
    assert!(
        nginx.site().contains("server 127.0.0.1:18641;"),
        "{}",
        nginx.site()
    );
    assert_eq!(
        inspect(&format!("{}-api-green", p.name), "{{.ID}}"),
        "",
        "green is removed"
    );
}
