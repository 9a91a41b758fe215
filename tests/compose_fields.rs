//! The compose-style service settings against the real Docker engine: a service using most of
//! them is applied, `docker inspect` shows each, the next plan is empty, and a changed field
//! shows in the plan and replaces the container.
//! Needs the images made by `scripts/make-image` (scripts/test makes them).

mod common;

use common::{docker, text, Project};
use serde_json::Value;

fn worker(user: &str) -> String {
    format!(
        r#"kind: Service
name: worker
image: converge-test/worker:v1
entrypoint: [/bin/work]
user: "{user}"
working_dir: /tmp
labels: {{team: payments, tier: batch}}
read_only: true
init: true
stop_signal: SIGINT
stop_grace_period: 7s
tmpfs: [/run, "/scratch:size=64m"]
shm_size: 128Mi
sysctls: {{net.core.somaxconn: "1024"}}
ulimits: {{nofile: {{soft: 1024, hard: 2048}}, nproc: 4096}}
cap_add: [NET_ADMIN]
cap_drop: [MKNOD]
extra_hosts: {{db.local: 10.0.0.5}}
logging: {{driver: json-file, options: {{max-size: 10m}}}}
aliases: [jobs, batch]
networks: [{{name: backend, aliases: [queue]}}]
health: {{command: [/bin/busybox, "true"], interval: 200ms, retries: 25, start_period: 30s}}
"#
    )
}

fn inspect(name: &str) -> Value {
    let out = docker(&["inspect", name]);
    let all: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    all[0].clone()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn compose_fields_reach_the_container_and_a_change_replaces_it() {
    let p = Project::new("compose", &worker("1000:1000"));
    let o = p.apply();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let name = format!("{}-worker-1", p.name);
    let c = inspect(&name);
    let config = &c["Config"];
    let host = &c["HostConfig"];
    assert_eq!(strings(&config["Entrypoint"]), ["/bin/work"]);
    assert_eq!(config["User"], "1000:1000");
    assert_eq!(config["WorkingDir"], "/tmp");
    assert_eq!(config["Labels"]["team"], "payments");
    assert_eq!(config["Labels"]["tier"], "batch");
    assert_eq!(config["Labels"]["converge.resource"], "service/worker");
    assert_eq!(config["StopSignal"], "SIGINT");
    assert_eq!(config["StopTimeout"], 7);
    assert_eq!(config["Healthcheck"]["StartPeriod"], 30_000_000_000i64);
    assert_eq!(
        strings(&config["Healthcheck"]["Test"]),
        ["CMD", "/bin/busybox", "true"]
    );
    assert_eq!(host["ReadonlyRootfs"], true);
    assert_eq!(host["Init"], true);
    assert_eq!(host["Tmpfs"]["/run"], "");
    assert_eq!(host["Tmpfs"]["/scratch"], "size=64m");
    assert_eq!(host["ShmSize"], 128 * 1024 * 1024);
    assert_eq!(host["Sysctls"]["net.core.somaxconn"], "1024");
    let ulimits = host["Ulimits"].as_array().expect("ulimits");
    let limit = |n: &str| {
        let u = ulimits.iter().find(|u| u["Name"] == n).expect(n);
        (u["Soft"].as_i64().unwrap(), u["Hard"].as_i64().unwrap())
    };
    assert_eq!(limit("nofile"), (1024, 2048));
    assert_eq!(limit("nproc"), (4096, 4096));
    assert!(strings(&host["CapAdd"])
        .iter()
        .any(|c| c.ends_with("NET_ADMIN")));
    assert!(strings(&host["CapDrop"])
        .iter()
        .any(|c| c.ends_with("MKNOD")));
    assert_eq!(strings(&host["ExtraHosts"]), ["db.local:10.0.0.5"]);
    assert_eq!(host["LogConfig"]["Type"], "json-file");
    assert_eq!(host["LogConfig"]["Config"]["max-size"], "10m");
    assert_eq!(c["State"]["Running"], true, "{}", c["State"]);
    let aliases = strings(&c["NetworkSettings"]["Networks"][&p.name]["Aliases"]);
    for a in ["worker", "jobs", "batch"] {
        assert!(aliases.iter().any(|x| x == a), "{a} not in {aliases:?}");
    }
    let backend = format!("{}_backend", p.name);
    let aliases = strings(&c["NetworkSettings"]["Networks"][&backend]["Aliases"]);
    for a in ["worker", "jobs", "queue"] {
        assert!(
            aliases.iter().any(|x| x == a),
            "{a} not on {backend}: {aliases:?}"
        );
    }
    let label = docker(&[
        "network",
        "inspect",
        &backend,
        "--format",
        "{{index .Labels \"converge.project\"}} {{.Driver}}",
    ]);
    assert_eq!(label.trim(), format!("{} bridge", p.name));

    assert_eq!(p.plan_exit(), 0, "the second plan must be empty");

    let id = c["Id"].as_str().unwrap().to_string();
    p.write(&worker("1001:1001"));
    let plan = text(&p.converge(&["plan", "DIR"]));
    assert!(
        plan.contains(r#"~ user = "1000:1000" -> "1001:1001" # forces replacement"#),
        "{plan}"
    );
    let o = p.apply();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let after = inspect(&name);
    assert_ne!(
        after["Id"].as_str().unwrap(),
        id,
        "the container is replaced"
    );
    assert_eq!(after["Config"]["User"], "1001:1001");
    assert_eq!(p.plan_exit(), 0, "nothing left to change");

    // The last service leaves (prune is on; the Project names the engine, which is still read
    // with no Service declared): its extra network goes with the project's.
    std::fs::write(
        p.path().join("converge.yaml"),
        format!(
            "kind: Project\nname: {}\nhosts: [{{name: local}}]\nsync: {{prune: true}}\nproviders: {{docker: {{}}}}\n",
            p.name
        ),
    )
    .unwrap();
    let o = p.apply();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let left = docker(&[
        "network",
        "ls",
        "-q",
        "--filter",
        &format!("label=converge.project={}", p.name),
    ]);
    assert!(left.trim().is_empty(), "networks left: {left}");
}

#[test]
fn a_service_without_the_new_fields_keeps_the_engine_defaults() {
    let p = Project::new(
        "compose-defaults",
        "kind: Service\nname: worker\nimage: converge-test/worker:v1\n",
    );
    let o = p.apply();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let c = inspect(&format!("{}-worker-1", p.name));
    assert_eq!(c["HostConfig"]["ReadonlyRootfs"], false);
    assert_eq!(c["HostConfig"]["Init"], true, "converge's default init");
    assert_eq!(c["Config"]["User"], "");
    assert!(c["Config"]["StopTimeout"].is_null(), "{}", c["Config"]);
    assert!(c["Config"]["Healthcheck"].is_null(), "{}", c["Config"]);
}

fn env(c: &Value) -> Vec<String> {
    strings(&c["Config"]["Env"])
}

#[test]
fn env_file_values_reach_the_container_but_never_the_plan_or_the_journal() {
    let body = "kind: Service\nname: worker\nimage: converge-test/worker:v1\nenv_file: [app.env, .env]\nenv: {OVERRIDDEN: from-env}\n";
    let p = Project::new("compose-envfile", body);
    let write_env = |token: &str| {
        std::fs::write(
            p.path().join("app.env"),
            format!("# secrets\nFROM_FILE=\"{token}\"\nOVERRIDDEN=from-file\nLATER=app\n"),
        )
        .unwrap();
        std::fs::write(p.path().join(".env"), "export LATER='dot env'\n").unwrap();
    };
    write_env("file-secret-one");
    let o = p.apply();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    let name = format!("{}-worker-1", p.name);
    let c = inspect(&name);
    let vars = env(&c);
    for want in [
        "FROM_FILE=file-secret-one",
        "OVERRIDDEN=from-env",
        "LATER=dot env",
    ] {
        assert!(vars.iter().any(|v| v == want), "{want} not in {vars:?}");
    }
    assert!(!out.contains("file-secret-one"), "{out}");
    assert_eq!(p.plan_exit(), 0, "the second plan must be empty");

    write_env("file-secret-two");
    let plan = text(&p.converge(&["plan", "DIR"]));
    assert!(
        plan.contains("~ env.FROM_FILE = (sensitive) # forces replacement"),
        "{plan}"
    );
    assert!(!plan.contains("file-secret"), "{plan}");
    let o = p.apply();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(env(&inspect(&name))
        .iter()
        .any(|v| v == "FROM_FILE=file-secret-two"));
    let journal = p.journal();
    assert!(!journal.is_empty());
    assert!(!journal.contains("file-secret"), "{journal}");
}

fn slow_starter(start_period: &str) -> String {
    format!(
        r#"kind: Service
name: slow
image: converge-test/worker:v1
entrypoint: [/bin/sh, -c, "sleep 2; echo > /tmp/ready; exec /bin/work"]
health: {{command: [/bin/sh, -c, "test -f /tmp/ready"], interval: 200ms, retries: 3{start_period}}}
"#
    )
}

#[test]
fn failures_within_the_health_start_period_do_not_fail_the_gate() {
    let p = Project::new("compose-start-period", &slow_starter(""));
    let o = p.apply();
    assert_ne!(
        o.status.code(),
        Some(0),
        "3 tries 200ms apart end before the process is ready: {}",
        text(&o)
    );
    assert!(text(&o).contains("failed its health check"), "{}", text(&o));
    p.write(&slow_starter(", start_period: 20s"));
    let o = p.apply();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(p.containers(), [format!("{}-slow-1 running", p.name)]);
}
