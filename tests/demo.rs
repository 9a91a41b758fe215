//! `scripts/demo` end to end (issue 16), with the binary this suite built (`CONVERGE_BIN`: no
//! second build): its output shows each plan once with new rendered files summarised, the env
//! file it writes drives the stack by hand with the three commands it prints, a plan from a
//! second, fresh state dir says "No changes", and `--clean` removes what it made.
//!
//! The demo's resources are its own and fixed by the example: project `ytempire`, nginx on
//! 127.0.0.1:8080, the api on 8000/8001, PostgreSQL on 55433, S3 on 9001, /opt/ytempire. No other
//! test uses them (the suite's servers are on 55432 and 9000); a demo left running by hand on this
//! machine is converged and then removed.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{docker, text};

/// The demo's work dir; `scripts/demo --clean` runs when it is dropped, also after a failure.
struct Demo {
    work: tempfile::TempDir,
}

impl Demo {
    fn script(&self, args: &[&str]) -> Output {
        Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/demo"))
            .args(args)
            .env("CONVERGE_BIN", env!("CARGO_BIN_EXE_converge"))
            .env("CONVERGE_DEMO_DIR", self.work.path())
            .output()
            .unwrap()
    }

    fn env_file(&self) -> PathBuf {
        self.work.path().join("env")
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.script(&["--clean"]);
    }
}

/// `line` in a shell that has only PATH and HOME: everything else must come from the env file.
fn by_hand(line: &str) -> Output {
    Command::new("bash")
        .args(["-c", line])
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env(
            "HOME",
            std::env::var("HOME").unwrap_or_else(|_| "/root".into()),
        )
        .output()
        .unwrap()
}

/// The demo's output cut at each `$ command` header it prints.
fn steps(out: &str) -> Vec<&str> {
    out.split("\x1b[1m$ ").collect()
}

fn assert_each_plan_is_printed_once_and_short(out: &str) {
    // Two plans are made (the first deploy, the blue-green change), each applied from its saved
    // file without printing it again; the last apply has nothing left to print but "No changes".
    assert_eq!(
        out.matches("converge will perform the following actions")
            .count(),
        2,
        "{out}"
    );
    assert_eq!(
        out.matches("Applying the plan saved in dev.plan").count(),
        2,
        "{out}"
    );
    assert!(out.contains(", rendered from alert-rules)"), "{out}");
    assert!(out.contains("--full shows their text"), "{out}");
    assert!(
        !out.contains("+groups:"),
        "the alert rules are printed in full:\n{out}"
    );
    for step in steps(out) {
        let lines = step.lines().count();
        assert!(lines <= 200, "a step prints {lines} lines:\n{step}");
    }
}

fn assert_env_file_holds_every_variable(path: &Path) {
    let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{} is mode {mode:o}", path.display());
    let env = std::fs::read_to_string(path).unwrap();
    for var in [
        "CONVERGE_POSTGRES_URL",
        "CONVERGE_S3_ENDPOINT",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "PG_APP_PASSWORD",
        "PG_READONLY_PASSWORD",
        "DATABASE_URL",
        "BACKUP_KEY",
        "SLACK_WEBHOOK_URL",
        "PAGER_WEBHOOK_URL",
        "PATH",
    ] {
        assert!(
            env.contains(&format!("export {var}=")),
            "{var} missing:\n{env}"
        );
    }
}

/// The three `source …/env && converge …` lines the demo ends with, run as printed.
fn assert_printed_commands_work(out: &str) {
    let commands: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("  source "))
        .collect();
    assert_eq!(commands.len(), 3, "{out}");
    let expect = [
        ("converge plan ", "No changes."),
        ("converge status ", "SERVICE"),
        ("converge restore database@latest ", "Restored"),
    ];
    for (command, (what, says)) in commands.iter().zip(expect) {
        assert!(command.contains(what), "{command}");
        let o = by_hand(&format!("source {command}"));
        assert_eq!(o.status.code(), Some(0), "{command}\n{}", text(&o));
        assert!(text(&o).contains(says), "{command}\n{}", text(&o));
    }
}

fn assert_clean_removes_what_the_demo_made(demo: &Demo) {
    let o = demo.script(&["--clean"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("Kept, as shared"), "{}", text(&o));
    let left = docker(&["ps", "-aq", "--filter", "label=converge.project=ytempire"]);
    assert!(left.trim().is_empty(), "containers left: {left}");
    assert!(!demo.work.path().exists());
    assert!(!Path::new("/opt/ytempire").exists());
    assert!(!Path::new("/tmp/converge-pg-55433").exists());
    let images = docker(&["image", "ls", "-q", "ytempire/api"]);
    assert!(images.trim().is_empty(), "images left: {images}");
}

#[test]
fn the_demo_prints_each_plan_once_and_leaves_an_env_file_that_plans_no_changes_from_a_fresh_state_dir(
) {
    let demo = Demo {
        work: tempfile::tempdir().unwrap(),
    };
    let o = demo.script(&[]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("CONVERGE_BIN: no build"), "{out}");
    assert!(!out.contains("Compiling"), "{out}");
    assert_each_plan_is_printed_once_and_short(&out);
    // It ends with a recovery drill and its measured RTO and RPO.
    assert!(
        out.contains("Recovery drill of project ytempire: a scratch copy recovered in ")
            && out.contains("Achieved RPO (age of each restored copy):"),
        "{out}"
    );
    assert_env_file_holds_every_variable(&demo.env_file());
    assert_printed_commands_work(&out);

    // Another machine (CI, a laptop): the same variables, its own empty state dir.
    let fresh = tempfile::tempdir().unwrap();
    let o = by_hand(&format!(
        "source {} && converge plan {} --env dev --state-dir {} --detailed-exitcode",
        demo.env_file().display(),
        demo.work.path().join("desired-state").display(),
        fresh.path().display()
    ));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("No changes."), "{}", text(&o));

    assert_clean_removes_what_the_demo_made(&demo);
}
