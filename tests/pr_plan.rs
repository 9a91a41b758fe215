//! `plan --base REV`: what a change does, read from a git repository built in the test (two
//! commits), offline, as text and as a pull-request comment.

mod common;

use std::process::Command;

use common::{text, Repo};

fn stack(replicas: u32, image: &str) -> String {
    format!(
        "kind: Project\nname: prshop\nhosts: [{{name: local}}]\n---\nkind: Service\nname: worker\nimage: {image}\nreplicas: {replicas}\nenv: {{TOKEN: \"${{env:PR_TOKEN}}\"}}\n"
    )
}

fn plan(repo: &Repo, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_converge"))
        .current_dir(repo.work())
        .arg("plan")
        .arg("deploy")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_plan_of_a_change_compares_two_commits_without_a_checkout() {
    let repo = Repo::new();
    repo.push(
        "one",
        &[("deploy/converge.yaml", &stack(1, "shop/worker:1"))],
    );
    repo.push(
        "two",
        &[("deploy/converge.yaml", &stack(2, "shop/worker:2"))],
    );
    let o = plan(
        &repo,
        &[
            "--base",
            "HEAD~1",
            "--head",
            "HEAD",
            "--offline",
            "--detailed-exitcode",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains("# service/worker must be replaced: image changed"),
        "{out}"
    );
    assert!(
        out.contains(r#"~ image    = "shop/worker:1" -> "shop/worker:2" # forces replacement"#),
        "{out}"
    );
    assert!(out.contains(r#"~ replicas = "1" -> "2""#), "{out}");
    assert!(!out.contains("PR_TOKEN"), "{out}");

    // The working tree against the last commit: an uncommitted edit is the change.
    std::fs::write(
        repo.work().join("deploy/converge.yaml"),
        stack(3, "shop/worker:2"),
    )
    .unwrap();
    let o = plan(
        &repo,
        &["--base", "HEAD", "--offline", "--format", "markdown"],
    );
    let md = text(&o);
    assert!(
        md.starts_with("<!-- converge-plan -->\n**Plan: 0 to add, 1 to change, 0 to destroy.**"),
        "{md}"
    );
    assert!(
        md.contains("| `~` | `service/worker` | replicas 2 → 3 |"),
        "{md}"
    );
}

#[test]
fn an_unknown_revision_is_a_clear_error() {
    let repo = Repo::new();
    repo.push(
        "one",
        &[("deploy/converge.yaml", &stack(1, "shop/worker:1"))],
    );
    let o = plan(&repo, &["--base", "no-such-rev", "--offline"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("cannot resolve `no-such-rev`"),
        "{}",
        text(&o)
    );
}
