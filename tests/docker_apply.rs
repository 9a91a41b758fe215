//! `converge apply` against the real Docker engine: create, no-op, replace, scale, drift, prune,
//! compensation, stale saved plans, secrets, and other projects left alone.
//! Needs the images made by `scripts/make-image` (scripts/test makes them).

mod common;

use common::{docker, text, Project};

fn web(image: &str, port: u16) -> String {
    format!(
        "kind: Service\nname: web\nimage: {image}\nports: [{{container: 8000, host: {port}}}]\nenv: {{MODE: plain, TOKEN: \"${{env:CVT_SECRET}}\"}}\nhealth: {{http: {{path: /health, port: 8000}}, interval: 200ms, retries: 25}}\n"
    )
}

fn worker(replicas: u32, strategy: &str) -> String {
    format!("kind: Service\nname: worker\nimage: converge-test/worker:v1\nreplicas: {replicas}\ndeploy: {{strategy: {strategy}}}\nvolumes: [{{source: data, target: /data}}]\n")
}

#[test]
fn create_from_nothing_then_the_second_plan_is_empty() {
    let p = Project::new(
        "create",
        &format!(
            "{}---\n{}",
            web("converge-test/httpd:v1", 18101),
            worker(2, "recreate")
        ),
    );
    let o = p.apply();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("Apply complete! Resources: 4 added, 0 changed, 0 destroyed."),
        "{}",
        text(&o)
    );
    assert_eq!(
        p.containers(),
        vec![
            format!("{}-web-1 running", p.name),
            format!("{}-worker-1 running", p.name),
            format!("{}-worker-2 running", p.name)
        ]
    );
    assert_eq!(common::http_body(18101), "v1");
    assert_eq!(p.plan_exit(), 0, "second plan must be empty");
    let again = p.apply();
    assert!(text(&again).contains("No changes. Live state matches the desired state."));
}

#[test]
fn a_new_image_replaces_the_containers() {
    let p = Project::new("replace", &web("converge-test/httpd:v1", 18102));
    assert_eq!(p.apply().status.code(), Some(0));
    p.write(&web("converge-test/httpd:v2", 18102));
    let plan = text(&p.converge(&["plan", "DIR"]));
    assert!(plan.contains("-/+ service/web {"), "{plan}");
    assert!(
        plan.contains(
            r#"~ image = "converge-test/httpd:v1" -> "converge-test/httpd:v2" # forces replacement"#
        ),
        "{plan}"
    );
    let o = p.apply();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(common::http_body(18102), "v2");
    assert_eq!(
        p.containers(),
        vec![format!("{}-web-1 running", p.name)],
        "old container removed"
    );
    assert_eq!(p.plan_exit(), 0);
}

#[test]
fn scaling_up_and_down_changes_only_the_replica_count() {
    let p = Project::new("scale", &worker(1, "rolling"));
    assert_eq!(p.apply().status.code(), Some(0));
    p.write(&worker(3, "rolling"));
    let o = p.apply();
    assert!(
        text(&o).contains("scale service/worker: replicas 1 → 3"),
        "{}",
        text(&o)
    );
    assert_eq!(p.containers().len(), 3);
    p.write(&worker(1, "rolling"));
    let o = p.apply();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(p.containers(), vec![format!("{}-worker-1 running", p.name)]);
    assert_eq!(p.plan_exit(), 0);
}

#[test]
fn drift_made_by_hand_is_planned_exactly_and_repaired() {
    let p = Project::new(
        "drift",
        &format!(
            "{}---\n{}",
            web("converge-test/httpd:v1", 18103),
            worker(2, "recreate")
        ),
    );
    assert_eq!(p.apply().status.code(), Some(0));
    docker(&["stop", &format!("{}-worker-2", p.name)]);
    docker(&["rm", "-f", &format!("{}-web-1", p.name)]);
    let plan = text(&p.converge(&["plan", "DIR"]));
    assert!(plan.contains(&format!("# service/worker will be updated in place: drift: 1 of 2 containers stopped ({}-worker-2)", p.name)), "{plan}");
    assert!(
        plan.contains("# service/web will be created: not running"),
        "{plan}"
    );
    assert!(
        plan.contains("Plan: 1 to add, 1 to change, 0 to destroy."),
        "{plan}"
    );
    assert_eq!(p.apply().status.code(), Some(0));
    assert_eq!(p.plan_exit(), 0);
    assert_eq!(common::http_body(18103), "v1");
}

#[test]
fn removed_services_are_deleted_only_with_prune_and_volumes_only_with_their_own_prune() {
    let keep = "kind: Service\nname: keeper\nimage: converge-test/worker:v1\nvolumes: [{source: scratch, target: /s, prune: true}]\n";
    let p = Project::new("prune", &format!("{}---\n{keep}", worker(1, "recreate")));
    assert_eq!(p.apply().status.code(), Some(0));
    p.write_with(
        "kind: Service\nname: other\nimage: converge-test/worker:v1\n",
        "prune: false",
    );
    let o = p.apply();
    assert!(
        text(&o).contains("service/worker is no longer declared; kept because sync.prune is off"),
        "{}",
        text(&o)
    );
    assert!(p.containers().iter().any(|c| c.contains("-worker-1")));
    p.write_with(
        "kind: Service\nname: other\nimage: converge-test/worker:v1\n",
        "prune: true",
    );
    let o = p.apply();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(p.containers(), vec![format!("{}-other-1 running", p.name)]);
    let vols = docker(&[
        "volume",
        "ls",
        "-q",
        "--filter",
        &format!("label=converge.project={}", p.name),
    ]);
    assert!(
        vols.contains(&format!("{}_data", p.name)),
        "a volume without prune: true survives: {vols}"
    );
    assert!(
        !vols.contains(&format!("{}_scratch", p.name)),
        "a volume with prune: true goes: {vols}"
    );
}

#[test]
fn a_failing_step_rolls_back_the_completed_ones() {
    let p = Project::new(
        "compensate",
        &format!(
            "{}---\nkind: Service\nname: zz-broken\nimage: converge-test/does-not-exist:1\n",
            worker(1, "recreate")
        ),
    );
    let o = p.apply();
    assert_eq!(o.status.code(), Some(1));
    let out = text(&o);
    assert!(
        out.contains("Apply failed at `create service/zz-broken`"),
        "{out}"
    );
    assert!(
        out.contains("Rolled back the steps that can be undone. Kept, as data-holding or harmless to keep:\n  - create volume/data"),
        "the new (empty) volume is kept, and said so: {out}"
    );
    assert!(
        p.containers().is_empty(),
        "worker removed again: {:?}",
        p.containers()
    );
    let journal = p.journal();
    assert!(
        journal.contains("\"event\":\"compensation-done\""),
        "{journal}"
    );
    assert!(journal.contains("\"detail\":\"rolled-back\""), "{journal}");
}

#[test]
fn a_rolling_replace_whose_health_gate_fails_restores_the_old_containers() {
    let p = Project::new(
        "rollgate",
        &web("converge-test/httpd:v1", 18104).replace(
            "kind: Service\nname: web\n",
            "kind: Service\nname: web\ndeploy: {strategy: rolling}\n",
        ),
    );
    assert_eq!(p.apply().status.code(), Some(0));
    p.write(&web("converge-test/httpd:broken", 18104).replace(
        "kind: Service\nname: web\n",
        "kind: Service\nname: web\ndeploy: {strategy: rolling}\n",
    ));
    let o = p.apply();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("failed its health check 25 times"),
        "{}",
        text(&o)
    );
    assert_eq!(p.containers(), vec![format!("{}-web-1 running", p.name)]);
    assert_eq!(
        common::http_body(18104),
        "v1",
        "the old version serves again"
    );
}

#[test]
fn a_saved_plan_is_refused_when_live_state_changed() {
    let p = Project::new("stale", &worker(2, "recreate"));
    let file = p.state.path().join("plan.json");
    let o = p.converge(&["plan", "DIR", "--out", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let fresh = p.converge(&["apply", file.to_str().unwrap(), "--auto-approve"]);
    assert_eq!(fresh.status.code(), Some(0), "{}", text(&fresh));
    let file2 = p.state.path().join("plan2.json");
    p.write(&worker(3, "recreate"));
    assert_eq!(
        p.converge(&["plan", "DIR", "--out", file2.to_str().unwrap()])
            .status
            .code(),
        Some(0)
    );
    docker(&["stop", &format!("{}-worker-1", p.name)]);
    let o = p.converge(&["apply", file2.to_str().unwrap(), "--auto-approve"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("live state changed since this plan was made; nothing was applied"),
        "{}",
        text(&o)
    );
    assert_eq!(p.containers().len(), 2, "nothing applied");
}

#[test]
fn secrets_never_reach_labels_or_the_journal() {
    let p = Project::new("secrets", &web("converge-test/httpd:v1", 18105));
    assert_eq!(p.apply().status.code(), Some(0));
    let labels = docker(&[
        "inspect",
        &format!("{}-web-1", p.name),
        "--format",
        "{{json .Config.Labels}}",
    ]);
    assert!(labels.contains("converge.spec-hash"), "{labels}");
    assert!(!labels.contains("sup3r-s3cret-value"), "{labels}");
    assert!(!labels.contains("CVT_SECRET"), "{labels}");
    assert!(!p.journal().contains("sup3r-s3cret-value"));
    let plan = text(&p.converge(&["plan", "DIR", "--format", "json"]));
    assert!(!plan.contains("sup3r-s3cret-value"));
}

#[test]
fn containers_of_other_projects_and_unmanaged_ones_survive_pruning() {
    let p = Project::new("others", &worker(1, "recreate"));
    let other = format!("{}-foreign", p.name);
    let unmanaged = format!("{}-unmanaged", p.name);
    docker(&[
        "run",
        "-d",
        "--name",
        &other,
        "--label",
        "converge.managed=true",
        "--label",
        &format!("converge.project={}-x", p.name),
        "--label",
        "converge.resource=service/worker",
        "converge-test/worker:v1",
    ]);
    docker(&["run", "-d", "--name", &unmanaged, "converge-test/worker:v1"]);
    assert_eq!(p.apply().status.code(), Some(0));
    p.write("kind: Service\nname: solo\nimage: converge-test/worker:v1\n");
    assert_eq!(p.apply().status.code(), Some(0));
    let names = docker(&["ps", "--format", "{{.Names}}"]);
    assert!(names.contains(&other), "{names}");
    assert!(names.contains(&unmanaged), "{names}");
    docker(&["rm", "-f", &other, &unmanaged]);
}

#[test]
fn apply_without_a_terminal_needs_auto_approve() {
    let p = Project::new("tty", &worker(1, "recreate"));
    let o = p.converge(&["apply", "DIR"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("refusing to apply without approval: standard input is not a terminal"),
        "{}",
        text(&o)
    );
    assert!(p.containers().is_empty());
}

#[test]
fn a_service_with_build_is_built_through_the_docker_api_and_rebuilt_when_its_args_change() {
    let p = Project::new("build", "");
    std::fs::create_dir_all(p.path().join("app")).unwrap();
    std::fs::write(
        p.path().join("app/Dockerfile"),
        "FROM converge-test/httpd:v1\nARG BODY=built\nRUN echo $BODY > /www/index.html\n",
    )
    .unwrap();
    let svc = |body: &str| {
        format!("kind: Service\nname: site\nbuild: {{context: app, args: {{BODY: {body}}}}}\nports: [{{container: 8000, host: 18106}}]\nhealth: {{http: {{path: /health, port: 8000}}, interval: 200ms}}\n")
    };
    p.write(&svc("first"));
    let o = p.apply();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(common::http_body(18106), "first");
    assert_eq!(p.plan_exit(), 0);
    p.write(&svc("second"));
    let plan = text(&p.converge(&["plan", "DIR"]));
    assert!(
        plan.contains(r#"~ build.args.BODY = "first" -> "second" # forces replacement"#),
        "{plan}"
    );
    assert_eq!(p.apply().status.code(), Some(0));
    assert_eq!(common::http_body(18106), "second");
}

#[test]
fn an_edit_inside_the_build_context_is_a_change() {
    let p = Project::new("buildctx", "kind: Service\nname: site\nbuild: {context: app}\nports: [{container: 8000, host: 18107}]\nhealth: {http: {path: /health, port: 8000}, interval: 200ms}\n");
    std::fs::create_dir_all(p.path().join("app")).unwrap();
    std::fs::write(
        p.path().join("app/Dockerfile"),
        "FROM converge-test/httpd:v1\nCOPY index.html /www/index.html\n",
    )
    .unwrap();
    std::fs::write(p.path().join("app/index.html"), "one\n").unwrap();
    assert_eq!(p.apply().status.code(), Some(0));
    assert_eq!(common::http_body(18107), "one");
    assert_eq!(p.plan_exit(), 0);
    std::fs::write(p.path().join("app/index.html"), "two\n").unwrap();
    let plan = text(&p.converge(&["plan", "DIR"]));
    assert!(plan.contains("~ build.context = \"app (sha256:"), "{plan}");
    assert_eq!(p.apply().status.code(), Some(0));
    assert_eq!(common::http_body(18107), "two");
}
