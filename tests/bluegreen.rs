//! Blue-green deploys with the real Docker engine and a real nginx: the health gate, the atomic
//! switch, verification after the switch, `nginx -t` failures, deferred drains across restarts
//! of converge, and `converge rollback`.

mod common;

use common::{docker, text, Nginx, Project};

fn api(image: &str, blue: u16, verify: &str, drain: &str) -> String {
    format!(
        "kind: Service\nname: api\nimage: {image}\nports: [{{container: 8000}}]\nhealth: {{http: {{path: /health, port: 8000}}, interval: 200ms, timeout: 1s, healthy_after: 2, retries: 20}}\ndeploy: {{strategy: blue-green, blue: {{port: {blue}}}, green: {{port: {}}}, verify_for: {verify}, drain: {drain}}}\n",
        blue + 1
    )
}

fn stack(nginx: &Nginx, image: &str, blue: u16, verify: &str, drain: &str) -> String {
    format!(
        "{}---\n{}",
        api(image, blue, verify, drain),
        nginx.router("api", "nginx-site")
    )
}

fn running(p: &Project) -> Vec<String> {
    p.containers()
        .into_iter()
        .filter(|c| c.ends_with(" running"))
        .map(|c| c.trim_end_matches(" running").to_string())
        .collect()
}

#[test]
fn a_new_version_takes_traffic_and_the_old_color_drains_after_a_restart_of_converge() {
    let nginx = Nginx::start(18201);
    let p = Project::new(
        "bgswitch",
        &stack(&nginx, "converge-test/httpd:v1", 18211, "1s", "2s"),
    );
    let o = p.apply();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(nginx.get(), "v1");
    assert!(nginx.site().contains("server 127.0.0.1:18211;"));
    // A first deploy says what its verification cannot do.
    assert!(
        text(&o).contains("verified api/blue for 1.")
            && text(&o).contains("first deploy of api: no earlier color to switch back to"),
        "{}",
        text(&o)
    );

    p.write(&stack(&nginx, "converge-test/httpd:v2", 18211, "1s", "2s"));
    let o = p.apply();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("switch router/public"), "{out}");
    // Each step says what its time went to: the switch itself, then the verification; the
    // drain says when blue stops and who stops it.
    let switch = out
        .lines()
        .find(|l| l.contains("] switch router/public"))
        .unwrap_or_default();
    assert!(
        switch.contains(": switched in ")
            && switch.contains(" ms; verified api/green for ")
            && !switch.contains("first deploy"),
        "{out}"
    );
    assert!(
        out.contains("deferred: blue keeps serving what it has in flight until ")
            && out.contains("(2s drain); the next apply or the running agent stops it then"),
        "{out}"
    );
    assert_eq!(nginx.get(), "v2");
    assert!(nginx.site().contains("server 127.0.0.1:18212;"));
    assert_eq!(
        running(&p),
        vec![
            format!("{}-api-blue-1", p.name),
            format!("{}-api-green-1", p.name)
        ],
        "blue drains later"
    );
    let plan = text(&p.converge(&["plan", "DIR"]));
    assert!(
        plan.contains(
            "Pending from earlier applies:\n  - drain service/api: stop blue 2s after the switch"
        ),
        "{plan}"
    );

    // Each converge run is a new process: the drain survives in the journal and runs when due.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let o = p.apply();
    assert!(
        text(&o).contains("deferred drain service/api: stopped blue"),
        "{}",
        text(&o)
    );
    assert_eq!(running(&p), vec![format!("{}-api-green-1", p.name)]);
    assert_eq!(p.plan_exit(), 0);
    assert_eq!(nginx.get(), "v2");
}

#[test]
fn a_version_that_never_passes_its_health_gate_never_gets_traffic_and_is_not_retried() {
    let nginx = Nginx::start(18202);
    let p = Project::new(
        "bggate",
        &stack(&nginx, "converge-test/httpd:v1", 18221, "1s", "1m"),
    );
    assert_eq!(p.apply().status.code(), Some(0));
    p.write(&stack(
        &nginx,
        "converge-test/httpd:broken",
        18221,
        "1s",
        "1m",
    ));
    let o = p.apply();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("failed its health check 20 times"),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("Rolled back"), "{}", text(&o));
    assert_eq!(nginx.get(), "v1");
    assert_eq!(
        running(&p),
        vec![format!("{}-api-blue-1", p.name)],
        "the new color is gone"
    );
    let plan = p.converge(&["plan", "DIR", "--detailed-exitcode"]);
    assert_eq!(
        plan.status.code(),
        Some(2),
        "the failed spec is not retried, and live differing from Git is a difference: {}",
        text(&plan)
    );
    assert!(
        text(&plan).contains(
            "Held back (live differs from the desired state):\n  ! service/api: this spec"
        ) && text(&plan).contains("failed and was rolled back; it is not retried"),
        "{}",
        text(&plan)
    );
    assert!(
        text(&plan).ends_with("No changes to apply, but live state does not match the desired state: 1 resource(s) held back on an earlier spec.\n"),
        "{}",
        text(&plan)
    );
    let retry = text(&p.converge(&["plan", "DIR", "--retry-failed"]));
    assert!(
        retry.contains("blue-green: green takes over from blue"),
        "{retry}"
    );
}

#[test]
fn a_version_that_fails_after_the_switch_is_switched_back_automatically() {
    let nginx = Nginx::start(18203);
    let p = Project::new(
        "bgverify",
        &stack(&nginx, "converge-test/httpd:v1", 18231, "1s", "1m"),
    );
    assert_eq!(p.apply().status.code(), Some(0));
    p.write(&stack(
        &nginx,
        "converge-test/httpd:dies",
        18231,
        "8s",
        "1m",
    ));
    let o = p.apply();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("verification after the switch"), "{out}");
    assert!(out.contains("traffic was switched back"), "{out}");
    assert!(
        nginx.site().contains("server 127.0.0.1:18231;"),
        "router points at blue again"
    );
    assert_eq!(nginx.get(), "v1");
    assert_eq!(running(&p), vec![format!("{}-api-blue-1", p.name)]);
}

#[test]
fn a_failing_nginx_check_keeps_the_old_file_and_rolls_back() {
    let nginx = Nginx::start(18204);
    let p = Project::new(
        "bgcheck",
        &stack(&nginx, "converge-test/httpd:v1", 18241, "1s", "1m"),
    );
    assert_eq!(p.apply().status.code(), Some(0));
    let before = nginx.site();
    std::fs::create_dir_all(p.path().join("templates")).unwrap();
    std::fs::write(
        p.path().join("templates/bad.conf.hbs"),
        "server { listen {{listen}}; not_a_directive on; }\n",
    )
    .unwrap();
    p.write(&format!(
        "{}---\n{}",
        api("converge-test/httpd:v2", 18241, "1s", "1m"),
        nginx.router("api", "templates/bad.conf.hbs")
    ));
    let o = p.apply();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("check failed, previous file restored"),
        "{}",
        text(&o)
    );
    assert_eq!(nginx.site(), before, "the previous file is back");
    assert_eq!(nginx.get(), "v1");
    assert_eq!(running(&p), vec![format!("{}-api-blue-1", p.name)]);
}

#[test]
fn rollback_is_instant_while_the_old_color_runs_and_redeploys_the_previous_spec_after() {
    let nginx = Nginx::start(18205);
    let p = Project::new(
        "bgrollback",
        &stack(&nginx, "converge-test/httpd:v1", 18251, "1s", "2s"),
    );
    assert_eq!(p.apply().status.code(), Some(0));
    p.write(&stack(&nginx, "converge-test/httpd:v2", 18251, "1s", "2s"));
    assert_eq!(p.apply().status.code(), Some(0));
    assert_eq!(nginx.get(), "v2");

    let o = p.converge(&["rollback", "api", "DIR"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("traffic is back on blue"), "{}", text(&o));
    assert!(text(&o).contains("this was instant"), "{}", text(&o));
    assert_eq!(nginx.get(), "v1");
    let plan = p.converge(&["plan", "DIR", "--detailed-exitcode"]);
    assert_eq!(
        plan.status.code(),
        Some(2),
        "live (v1) differs from Git (v2): {}",
        text(&plan)
    );
    assert!(
        text(&plan).contains("Held back (live differs from the desired state):")
            && !text(&plan).contains("will perform the following actions"),
        "v2 is not redeployed in a loop: {}",
        text(&plan)
    );

    // After the drain green is gone; deploy v2 again by a new change, then roll back the slow way.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let _ = p.apply();
    assert_eq!(running(&p), vec![format!("{}-api-blue-1", p.name)]);
    p.write(
        &stack(&nginx, "converge-test/httpd:v2", 18251, "1s", "1s")
            .replace("retries: 20", "retries: 21"),
    );
    assert_eq!(p.apply().status.code(), Some(0));
    assert_eq!(nginx.get(), "v2");
    std::thread::sleep(std::time::Duration::from_secs(2));
    let _ = p.apply();
    assert_eq!(running(&p), vec![format!("{}-api-green-1", p.name)]);
    let o = p.converge(&["rollback", "api", "DIR"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("Rolled back service/api to its previous spec"),
        "{}",
        text(&o)
    );
    assert_eq!(nginx.get(), "v1");
    let image = docker(&[
        "inspect",
        &format!("{}-api-blue-1", p.name),
        "--format",
        "{{.Config.Image}}",
    ]);
    assert_eq!(image.trim(), "converge-test/httpd:v1");
}

/// `HostIp:HostPort` of each binding of a container's first port (`docker inspect`).
fn bindings(container: &str) -> String {
    docker(&[
        "inspect",
        container,
        "--format",
        "{{range $p, $b := .HostConfig.PortBindings}}{{range $b}}{{.HostIp}}:{{.HostPort}} {{end}}{{end}}",
    ])
    .trim()
    .to_string()
}

/// An address of this host that is not loopback (a local /32 in the kernel's routing tables).
fn host_address() -> std::net::IpAddr {
    let trie = std::fs::read_to_string("/proc/net/fib_trie").expect("/proc/net/fib_trie");
    let lines: Vec<&str> = trie.lines().map(str::trim).collect();
    lines
        .windows(2)
        .filter(|w| w[1] == "/32 host LOCAL")
        .filter_map(|w| w[0].strip_prefix("|-- ")?.parse::<std::net::IpAddr>().ok())
        .find(|a| !a.is_loopback())
        .expect("a non-loopback address on this host")
}

/// The body of `GET /` at `addr:port`, or `None` when nothing answers there.
fn get_at(addr: std::net::IpAddr, port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let timeout = std::time::Duration::from_secs(3);
    let mut s = std::net::TcpStream::connect_timeout(&(addr, port).into(), timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.split("\r\n\r\n").nth(1).map(|b| b.trim().to_string())
}

#[test]
fn color_ports_are_bound_to_loopback_unless_host_ip_says_otherwise() {
    let nginx = Nginx::start(18206);
    let p = Project::new(
        "bgbind",
        &stack(&nginx, "converge-test/httpd:v1", 18261, "1s", "1s"),
    );
    let o = p.apply();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // The health gate and the verification probe the container's own address, the router
    // 127.0.0.1: both still reach a color bound to loopback.
    assert_eq!(nginx.get(), "v1");
    let blue = format!("{}-api-blue-1", p.name);
    assert_eq!(bindings(&blue), "127.0.0.1:18261");
    let outside = host_address();
    assert_eq!(
        get_at("127.0.0.1".parse().unwrap(), 18261).as_deref(),
        Some("v1")
    );
    assert_eq!(
        get_at(outside, 18261),
        None,
        "blue answers on {outside}, around nginx"
    );

    p.write(
        &stack(&nginx, "converge-test/httpd:v1", 18261, "1s", "1s").replace(
            "green: {port: 18262}",
            "green: {port: 18262, host_ip: 0.0.0.0}",
        ),
    );
    let plan = text(&p.converge(&["plan", "DIR"]));
    assert!(
        plan.contains("blue-green: green takes over from blue (deploy.green.host_ip changed)")
            && plan.contains("~ deploy.green.host_ip = \"127.0.0.1\" -> \"0.0.0.0\""),
        "{plan}"
    );
    let o = p.apply();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(nginx.get(), "v1");
    assert!(nginx.site().contains("server 127.0.0.1:18262;"));
    let green = format!("{}-api-green-1", p.name);
    assert_eq!(bindings(&green), "0.0.0.0:18262");
    assert_eq!(get_at(outside, 18262).as_deref(), Some("v1"));
    assert_eq!(p.plan_exit(), 0, "{}", text(&p.converge(&["plan", "DIR"])));
}

#[test]
fn a_crash_during_the_switch_never_leaves_traffic_on_a_color_being_removed() {
    let nginx = Nginx::start(18207);
    let p = Project::new(
        "bgcrashswitch",
        &stack(&nginx, "converge-test/httpd:v1", 18271, "10s", "1s"),
    );
    // The first deploy has nothing to verify against; v1 is served from blue.
    let o = p.apply();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(nginx.get(), "v1");
    p.write(&stack(&nginx, "converge-test/httpd:v2", 18271, "10s", "1s"));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_converge"))
        .arg("--state-dir")
        .arg(p.state.path())
        .args(["apply", p.path().to_str().unwrap(), "--auto-approve"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed while the switch watches green: the router already sends traffic there.
    common::wait_until(60, "the switch to green", || {
        p.journal().contains("\"step-prepared\"") && nginx.get() == "v2"
    });
    child.kill().unwrap();
    let _ = child.wait();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        let port = nginx.port;
        std::thread::spawn(move || {
            let (mut ok, mut failed) = (0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                match common::http(port, "GET", "/", &[], "") {
                    (200, _) => ok += 1,
                    (status, body) => failed.push(format!("{status} {}", body.trim())),
                }
            }
            (ok, failed)
        })
    };
    // Recovery first puts the router back on blue, then removes green; the apply then deploys
    // v2 again through the gate and the switch.
    let o = p.apply();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (ok, failed) = load.join().unwrap();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("recovery: undid `switch router/"), "{out}");
    assert!(
        ok > 0 && failed.is_empty(),
        "{ok} ok, failed: {failed:?}\n{out}"
    );
    assert_eq!(nginx.get(), "v2");
    let left: Vec<_> = std::fs::read_dir(p.state.path().join("undo").join(&p.name))
        .map(|d| d.collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "undo copies left: {left:?}");
}
