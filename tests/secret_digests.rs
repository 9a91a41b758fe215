//! Secrets compare by value from any machine: a plan made with another state directory (another
//! host, CI) than the apply's sees no change after the apply, and still sees a real change of a
//! secret's value. Read-only commands resolve only the secrets they need. Real Docker.

mod common;

use common::{text, Project};

fn service() -> &'static str {
    "kind: Service\nname: worker\nimage: converge-test/worker:v1\nenv: {DATABASE_URL: \"${env:CVT_SECRET}\", MODE: plain}\n"
}

fn plan_from(p: &Project, state: &std::path::Path, secret: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_converge"))
        .arg("--state-dir")
        .arg(state)
        .args(["plan", p.path().to_str().unwrap(), "--detailed-exitcode"])
        .env("CVT_SECRET", secret)
        .output()
        .unwrap()
}

#[test]
fn a_plan_from_another_state_dir_sees_no_change_after_an_apply_and_a_real_secret_change() {
    let p = Project::new("otherstate", service());
    let o = p.apply();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let other = tempfile::tempdir().unwrap();
    // Another machine: its own digest key, the same secret value.
    let o = plan_from(&p, other.path(), "sup3r-s3cret-value");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("No changes."), "{}", text(&o));
    assert!(!text(&o).contains("sup3r-s3cret-value"));
    // The secret's value changed: the other machine sees it, without printing either value.
    let o = plan_from(&p, other.path(), "rotated-value");
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(out.contains("env.DATABASE_URL"), "{out}");
    assert!(
        !out.contains("rotated-value") && !out.contains("sup3r-s3cret-value"),
        "{out}"
    );
    // And the applying machine still agrees with itself.
    assert_eq!(p.plan_exit(), 0);
}

#[test]
fn status_reads_live_state_without_the_secrets_only_apply_needs() {
    let p = Project::new("statusnosecret", service());
    let o = p.apply();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let bare = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_converge"))
            .arg("--state-dir")
            .arg(p.state.path())
            .args(args)
            .arg(p.path())
            .env_remove("CVT_SECRET")
            .output()
            .unwrap()
    };
    let o = bare(&["status"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("worker"), "{}", text(&o));
    // A plan compares the env, so it does need the secret, and says which.
    let o = bare(&["plan"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("CVT_SECRET"), "{}", text(&o));
}
