//! The real binary on the example desired state: exact output lines and exit codes.

use std::process::{Command, Output};

fn converge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_converge"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .expect("run converge")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn validate_checks_the_base_and_every_environment() {
    let o = converge(&["validate"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "desired-state is valid: project ytempire, 15 resource(s), environments dev, staging, prod.\n"
    );
    for env in ["dev", "staging", "prod"] {
        let o = converge(&["validate", "desired-state", "--env", env]);
        assert_eq!(o.status.code(), Some(0), "{env}: {}", stderr(&o));
    }
}

#[test]
fn offline_plan_says_so_plans_what_a_live_plan_would_and_detailed_exitcode_is_2() {
    let o = converge(&["plan", "--offline", "--env", "dev"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.lines().nth(1)
            == Some(
                "OFFLINE: no server was contacted; everything is planned as if nothing existed yet"
            ),
        "{out}"
    );
    // The kinds providers reconcile, as a live plan: no Notifier, Backup or Budget creations.
    assert!(
        out.ends_with("\nPlan: 11 to add, 0 to change, 0 to destroy.\n"),
        "{out}"
    );
    assert!(!out.contains("does not exist"), "{out}");
    assert!(
        out.contains("will be created: offline: live state not read"),
        "{out}"
    );
    let o = converge(&["plan", "--offline", "--env", "dev", "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn json_plan_is_versioned_and_holds_no_secret() {
    let o = converge(&["plan", "--offline", "--env", "prod", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["format_version"], "1.0");
    assert_eq!(v["summary"]["add"], 11);
    assert_eq!(v["offline"], true);
    assert!(!stdout(&o).contains("${env:"), "secret references leaked");
}

#[test]
fn saved_plan_is_written_with_its_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plan.json");
    let o = converge(&["plan", "--offline", "--out", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(saved["plan"]["fingerprint"].as_str().unwrap().len(), 32);
    assert_eq!(saved["desired_digest"].as_str().unwrap().len(), 32);
    assert_eq!(saved["format_version"], "1.0");
    assert!(stderr(&o).contains("Saved the plan to"));
}

#[test]
fn plan_for_an_unknown_host_says_which_hosts_exist() {
    let o = converge(&["plan", "--offline", "--host", "web-9"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "error: unknown host `web-9` (--host)\n  = hint: the Project lists: web-1\n"
    );
}

#[test]
fn a_missing_directory_is_a_clear_error() {
    let o = converge(&["validate", "no-such-dir"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "error: cannot read desired state at no-such-dir: No such file or directory (os error 2)\n"
    );
}

#[test]
fn render_writes_router_and_config_files_under_out() {
    let dir = tempfile::tempdir().unwrap();
    let o = converge(&[
        "render",
        "--env",
        "prod",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let nginx = std::fs::read_to_string(dir.path().join("etc/nginx/conf.d/ytempire.conf")).unwrap();
    assert!(nginx.contains("server_name app.ytempire.com;"));
    assert!(nginx.contains("server 127.0.0.1:8000;"));
    let prom = std::fs::read_to_string(dir.path().join("etc/prometheus/prometheus.yml")).unwrap();
    assert!(prom.contains("monitor: 'ytempire-prod'"));
    for file in [
        "etc/prometheus/alerts/converge.yml",
        "etc/alertmanager/alertmanager.yml",
        "var/lib/grafana/dashboards/converge.json",
    ] {
        assert!(dir.path().join(file).is_file(), "{file} not rendered");
    }
}

#[test]
fn schema_prints_one_schema_for_every_kind() {
    let o = converge(&["schema"]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        v["properties"]["kind"]["enum"].as_array().unwrap().len(),
        10
    );
}
