//! `converge completions SHELL` and `converge man`: what the real binary prints for shells and man.

use std::process::{Command, Output};

fn converge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_converge"))
        .args(args)
        .output()
        .expect("run converge")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn bash_completion_offers_the_subcommands_and_their_options() {
    let o = converge(&["completions", "bash"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let script = stdout(&o);
    assert!(script.contains("complete -F _converge"), "{script}");
    for word in [
        "apply",
        "plan",
        "validate",
        "rollback",
        "--detailed-exitcode",
        "--env",
    ] {
        assert!(script.contains(word), "bash completion lacks {word}");
    }
}

#[test]
fn every_supported_shell_gets_a_script_naming_converge() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let o = converge(&["completions", shell]);
        assert_eq!(o.status.code(), Some(0), "{shell}");
        let script = stdout(&o);
        assert!(
            script.contains("converge") && script.contains("apply"),
            "{shell}: {script}"
        );
    }
}

#[test]
fn an_unknown_shell_is_refused_with_the_choices() {
    let o = converge(&["completions", "tcsh"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bash") && err.contains("zsh"), "{err}");
    assert!(o.stdout.is_empty());
}

#[test]
fn man_page_is_roff_titled_converge_and_lists_the_subcommands() {
    let o = converge(&["man"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let page = stdout(&o);
    assert!(page.contains("\n.TH converge 1 "), "{page}");
    assert!(page.contains(".SH SYNOPSIS"), "{page}");
    for sub in [
        "validate",
        "plan",
        "apply",
        "rollback",
        "schema",
        "completions",
    ] {
        assert!(
            page.contains(&format!("converge\\-{sub}(1)")),
            "the page does not list {sub}"
        );
    }
}

#[test]
fn man_page_of_a_subcommand_documents_its_options() {
    let o = converge(&["man", "plan"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let page = stdout(&o);
    assert!(page.contains(".TH converge-plan 1 "), "{page}");
    assert!(page.contains("\\fBconverge plan\\fR"), "{page}");
    assert!(page.contains("\\-\\-detailed\\-exitcode"), "{page}");
}

#[test]
fn man_page_of_an_unknown_subcommand_names_the_real_ones() {
    let o = converge(&["man", "deploy"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no subcommand `deploy`"), "{err}");
    assert!(err.contains("plan, apply"), "{err}");
    assert!(o.stdout.is_empty());
}
