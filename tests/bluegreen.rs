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

    p.write(&stack(&nginx, "converge-test/httpd:v2", 18211, "1s", "2s"));
    let o = p.apply();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("switch router/public"), "{}", text(&o));
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
        Some(0),
        "the failed spec is not retried: {}",
        text(&plan)
    );
    assert!(
        text(&plan).contains("failed and was rolled back; it is not retried"),
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
        Some(0),
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
