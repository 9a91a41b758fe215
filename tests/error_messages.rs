//! Every folder under `tests/bad/` is a desired state with problems; `converge validate` must
//! exit 1 and print exactly `tests/bad/<case>.expected` on stderr (extra flags in `<case>.args`).
//! Run with `CONVERGE_BLESS=1` to rewrite the expected files after an intended change.

use std::path::Path;
use std::process::Command;

fn run_case(root: &Path, case: &str) -> Result<(), String> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_converge"));
    cmd.current_dir(root)
        .arg("validate")
        .arg(format!("tests/bad/{case}"));
    let args_file = root.join(format!("tests/bad/{case}.args"));
    if let Ok(args) = std::fs::read_to_string(&args_file) {
        cmd.args(args.split_whitespace());
    }
    let out = cmd.output().expect("run converge");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let expected_file = root.join(format!("tests/bad/{case}.expected"));
    if std::env::var_os("CONVERGE_BLESS").is_some() {
        std::fs::write(&expected_file, &stderr).unwrap();
    }
    let expected = std::fs::read_to_string(&expected_file).unwrap_or_default();
    let mut problems = Vec::new();
    if out.status.code() != Some(1) {
        problems.push(format!("exit code {:?}, expected 1", out.status.code()));
    }
    if !out.stdout.is_empty() {
        problems.push(format!(
            "stdout not empty: {}",
            String::from_utf8_lossy(&out.stdout)
        ));
    }
    if stderr != expected {
        problems.push(format!(
            "stderr differs.\n--- expected\n{expected}\n--- actual\n{stderr}"
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("case {case}:\n{}", problems.join("\n")))
    }
}

#[test]
fn every_bad_input_gets_its_exact_error_and_exit_code_1() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cases: Vec<String> = std::fs::read_dir(root.join("tests/bad"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 20,
        "expected the bad-input catalogue, found {} cases",
        cases.len()
    );
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| run_case(root, c).err())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
