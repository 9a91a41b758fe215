//! The engine and its providers through the real binary, without any server: a desired state
//! with no services never contacts a container engine, and a journal written by an earlier
//! binary (a committed fixture) is still recovered.

use std::path::Path;
use std::process::{Command, Output};

const PROJECT: &str = "kind: Project\nname: enginetest\n";

fn converge(args: &[&str], docker_host: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_converge"))
        .args(args)
        .env("DOCKER_HOST", docker_host)
        .output()
        .expect("run converge")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A desired state of one ConfigFile rendered from a template of the directory.
fn config_state(dir: &Path, target: &Path) {
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::write(dir.join("templates/app.hbs"), "rendered by converge\n").unwrap();
    std::fs::write(
        dir.join("converge.yaml"),
        format!(
            "{PROJECT}---\nkind: ConfigFile\nname: app\ntemplate: templates/app.hbs\npath: {}\n",
            target.display()
        ),
    )
    .unwrap();
}

const NO_ENGINE: &str = "unix:///nonexistent/converge-test/docker.sock";

#[test]
fn a_state_without_services_is_planned_and_applied_without_a_container_engine() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, state, target) = (
        tmp.path().join("ds"),
        tmp.path().join("state"),
        tmp.path().join("app.conf"),
    );
    config_state(&dir, &target);
    let (d, s) = (dir.to_str().unwrap(), state.to_str().unwrap());
    let o = converge(&["plan", d, "--state-dir", s], NO_ENGINE);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).ends_with("Plan: 1 to add, 0 to change, 0 to destroy.\n"),
        "{}",
        text(&o.stdout)
    );
    let o = converge(&["apply", d, "--auto-approve", "--state-dir", s], NO_ENGINE);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "rendered by converge\n"
    );
    let o = converge(&["plan", d, "--state-dir", s], NO_ENGINE);
    assert!(
        text(&o.stdout).contains("No changes. Live state matches the desired state."),
        "{}",
        text(&o.stdout)
    );
}

#[test]
fn a_state_with_services_reports_the_unreachable_engine_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ds");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("converge.yaml"),
        format!("{PROJECT}---\nkind: Service\nname: web\nimage: converge-test/httpd:v1\n"),
    )
    .unwrap();
    let state = tmp.path().join("state");
    let o = converge(
        &[
            "plan",
            dir.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ],
        NO_ENGINE,
    );
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(err.starts_with("error: cannot connect to Docker"), "{err}");
    assert!(
        err.contains("= hint: is the Docker engine running"),
        "{err}"
    );
}

#[test]
fn a_journal_written_by_an_earlier_binary_is_recovered() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, state, target) = (
        tmp.path().join("ds"),
        tmp.path().join("state"),
        tmp.path().join("app.conf"),
    );
    config_state(&dir, &target);
    // The interrupted run had written its file and recorded how to put the old one back.
    std::fs::write(&target, "written by the interrupted run\n").unwrap();
    let fixture = include_str!("fixtures/journal-interrupted-render.jsonl");
    std::fs::create_dir_all(state.join("journal")).unwrap();
    std::fs::write(
        state.join("journal/enginetest.jsonl"),
        fixture.replace("@PATH@", target.to_str().unwrap()),
    )
    .unwrap();
    let (d, s) = (dir.to_str().unwrap(), state.to_str().unwrap());
    let o = converge(&["apply", d, "--auto-approve", "--state-dir", s], NO_ENGINE);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(
        out.starts_with(
            "recovery: undid `render configfile/app` of the interrupted run r1764600000-fixture\n\
             recovery: the interrupted run r1764600000-fixture is rolled back; converging from here\n"
        ),
        "{out}"
    );
    // Recovery put the old file back; the plan after it re-rendered the file.
    assert!(out.contains("~ configfile/app"), "{out}");
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "rendered by converge\n"
    );
    let journal = std::fs::read_to_string(state.join("journal/enginetest.jsonl")).unwrap();
    assert!(
        journal.contains("\"event\":\"recovered\""),
        "the recovery is journaled: {journal}"
    );
}
