//! The README's examples are the binary's real output: each input block marked
//! `<!-- readme-example: NAME-input PATH -->` is written to PATH in a scratch directory, the
//! command runs there, and its output must equal the block marked `NAME-output`.

use std::process::Command;

/// The fenced block that follows the marker line starting with `marker`, and the rest of that
/// marker line.
fn block_after(readme: &str, marker: &str) -> (String, String) {
    let at = readme
        .find(marker)
        .unwrap_or_else(|| panic!("README has no `{marker}`"));
    let rest = &readme[at + marker.len()..];
    let (line, after) = rest.split_once('\n').unwrap();
    let after = after.trim_start();
    assert!(after.starts_with("```"), "no fenced block after `{marker}`");
    let body = after.split_once('\n').unwrap().1;
    let end = body.find("\n```").expect("the block is closed");
    (
        line.trim_end_matches("-->").trim().to_string(),
        body[..end + 1].to_string(),
    )
}

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap()
}

#[test]
fn the_readmes_validate_example_is_what_validate_prints() {
    let readme = readme();
    let (path, input) = block_after(&readme, "<!-- readme-example: validate-input");
    let (_, expected) = block_after(&readme, "<!-- readme-example: validate-output");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(&path);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, input).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_converge"))
        .current_dir(dir.path())
        .args(["validate", "desired-state"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(printed, expected);
}

#[test]
fn every_command_in_the_readmes_cli_block_is_a_real_subcommand() {
    let readme = readme();
    let start = readme.find("## CLI").unwrap();
    let block = block_after(&readme[start..], "## CLI").1;
    let help = Command::new(env!("CARGO_BIN_EXE_converge"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    for line in block.lines().filter(|l| l.starts_with("converge ")) {
        let sub = line.split_whitespace().nth(1).unwrap();
        assert!(
            help.lines().any(|h| h.trim_start().starts_with(sub)),
            "README lists `converge {sub}`, which --help does not:\n{help}"
        );
        let help_of = |args: &[&str]| {
            let o = Command::new(env!("CARGO_BIN_EXE_converge"))
                .args(args)
                .arg("--help")
                .output()
                .unwrap();
            o.status
                .success()
                .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
        };
        let mut text = help_of(&[sub]).unwrap_or_else(|| panic!("converge {sub} --help"));
        // `backup run|list|verify`: the flags may be those of a nested subcommand.
        if let Some(nested) = line.split_whitespace().nth(2) {
            for n in nested.split('|') {
                text.push_str(&help_of(&[sub, n]).unwrap_or_default());
            }
        }
        for flag in line
            .split(|c: char| c.is_whitespace() || "[]|".contains(c))
            .filter(|w| w.starts_with("--"))
        {
            let flag = flag.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
            assert!(
                text.contains(flag),
                "README gives `converge {sub}` the flag {flag}, which its --help does not list"
            );
        }
    }
}
