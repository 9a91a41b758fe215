//! Hostile input (issue 14): whatever a desired state holds, `converge validate` ends with exit
//! code 1 and exactly `tests/hostile/<case>.expected` on stderr, within a time cap and under a
//! memory cap: an error, never a crash or a hog. Small cases are folders under `tests/hostile/`;
//! large ones are generated here into a temporary directory at run time. Run with
//! `CONVERGE_BLESS=1` to rewrite the expected files after an intended change.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A case that takes longer is killed and fails.
const TIME_CAP: Duration = Duration::from_secs(10);
/// The address space a case may use (the binary itself needs well under 100 MiB).
const MEMORY_CAP: u64 = 512 * 1024 * 1024;

const PROJECT: &str = "kind: Project\nname: shop\nhosts: [{name: web-1}]\n";
const SERVICE: &str = "kind: Service\nname: api\nimage: nginx:1.27\n";

#[derive(Clone, Copy, Debug)]
enum MemoryCap {
    Prlimit,
    Ulimit,
    None,
}

/// How to cap the child's memory here: `prlimit`, else `ulimit -v` in `sh`, else not at all.
fn memory_cap() -> MemoryCap {
    static CAP: OnceLock<MemoryCap> = OnceLock::new();
    *CAP.get_or_init(|| {
        let works = |cmd: &mut Command| {
            cmd.stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if works(
            Command::new("prlimit")
                .arg(format!("--as={MEMORY_CAP}"))
                .arg("true"),
        ) {
            MemoryCap::Prlimit
        } else if works(
            Command::new("sh")
                .arg("-c")
                .arg(format!("ulimit -v {} && exec true", MEMORY_CAP / 1024)),
        ) {
            MemoryCap::Ulimit
        } else {
            eprintln!("note: neither prlimit nor `ulimit -v` works here: no memory cap");
            MemoryCap::None
        }
    })
}

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
    timed_out: bool,
}

/// Runs `converge validate <dir>` in `cwd` under the caps.
fn validate(cwd: &Path, dir: &str) -> Outcome {
    let exe = env!("CARGO_BIN_EXE_converge");
    let mut cmd = match memory_cap() {
        MemoryCap::Prlimit => {
            let mut c = Command::new("prlimit");
            c.arg(format!("--as={MEMORY_CAP}")).arg(exe);
            c
        }
        MemoryCap::Ulimit => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!(
                    "ulimit -v {} && exec \"$0\" \"$@\"",
                    MEMORY_CAP / 1024
                ))
                .arg(exe);
            c
        }
        MemoryCap::None => Command::new(exe),
    };
    // Output goes to files, so that a child that never ends cannot block on a full pipe.
    let out = tempfile::tempfile().unwrap();
    let err = tempfile::tempfile().unwrap();
    let start = Instant::now();
    let mut child = cmd
        .current_dir(cwd)
        .args(["validate", dir])
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .spawn()
        .expect("run converge");
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > TIME_CAP {
            timed_out = true;
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = start.elapsed();
    let read = |mut f: std::fs::File| {
        use std::io::{Read, Seek};
        let mut bytes = Vec::new();
        f.rewind().unwrap();
        f.read_to_end(&mut bytes).unwrap();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    Outcome {
        code: status.code(),
        stdout: read(out),
        stderr: read(err),
        elapsed,
        timed_out,
    }
}

/// Runs one case and compares it with `tests/hostile/<case>.expected`.
fn check(cwd: &Path, dir: &str, case: &str) -> Result<(), String> {
    let o = validate(cwd, dir);
    let expected_file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/hostile/{case}.expected"));
    if std::env::var_os("CONVERGE_BLESS").is_some() && !o.timed_out {
        std::fs::write(&expected_file, &o.stderr).unwrap();
    }
    let expected = std::fs::read_to_string(&expected_file).unwrap_or_default();
    let mut problems = Vec::new();
    if o.timed_out {
        problems.push(format!("killed after {:?} (time cap)", TIME_CAP));
    }
    if o.code != Some(1) {
        problems.push(format!(
            "exit code {:?}, expected 1 (none: killed by a signal, e.g. a crash or the {} MiB memory cap, {:?})",
            o.code,
            MEMORY_CAP >> 20,
            memory_cap()
        ));
    }
    if !o.stdout.is_empty() {
        problems.push(format!("stdout not empty: {}", o.stdout));
    }
    if o.stderr != expected {
        let shown: String = o.stderr.chars().take(4000).collect();
        problems.push(format!(
            "stderr differs.\n--- expected\n{expected}\n--- actual\n{shown}"
        ));
    }
    eprintln!("{case}: exit {:?} in {:?}", o.code, o.elapsed);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("case {case}:\n{}", problems.join("\n")))
    }
}

fn committed_cases() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile");
    let mut cases: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    cases.sort();
    cases
}

/// The files of a generated case, besides its `converge.yaml`.
type Generator = fn() -> Vec<(&'static str, Vec<u8>)>;

fn generated_cases() -> Vec<(&'static str, Generator)> {
    vec![
        ("flow_nesting_100k", || {
            // `[[[[…]]]]`, 50,000 deep: the YAML scanner's own limit stops it.
            let n = 50_000;
            let text = format!("{SERVICE}command: {}{}\n", "[".repeat(n), "]".repeat(n));
            vec![("services.yaml", text.into_bytes())]
        }),
        ("block_nesting_100k", || {
            // `- - - - …`, 50,000 deep: this overflowed the stack (exit 134).
            let text = format!("{SERVICE}command:\n{}x\n", "- ".repeat(50_000));
            vec![("services.yaml", text.into_bytes())]
        }),
        ("alias_bomb", || {
            // "Billion laughs": 9 levels of 9 aliases each, 9^9 values once expanded (this grew
            // to 6 GB).
            let mut text = String::from("a: &a [x,x,x,x,x,x,x,x,x]\n");
            let names: Vec<char> = "abcdefghi".chars().collect();
            for w in names.windows(2) {
                let refs = vec![format!("*{}", w[0]); 9].join(",");
                writeln!(text, "{}: &{} [{refs}]", w[1], w[1]).unwrap();
            }
            vec![("bomb.yaml", text.into_bytes())]
        }),
        ("nested_anchors", || {
            // 60 anchored lists one inside the other around 240,000 values: each anchor kept a
            // copy of all it holds (480 KB grew to 1.4 GB).
            let opens: String = (0..60).map(|i| format!("&a{i} [")).collect();
            let text = format!(
                "{SERVICE}command: {opens}{}x{}\n",
                "x,".repeat(240_000),
                "]".repeat(60)
            );
            vec![("services.yaml", text.into_bytes())]
        }),
        ("keys_40000", || {
            // 40,000 keys in one mapping and one duplicate (the check was quadratic: 21 s).
            let mut text = format!("{SERVICE}env:\n");
            for i in 0..40_000 {
                writeln!(text, "  K{i}: v").unwrap();
            }
            text.push_str("  K0: again\n");
            vec![("services.yaml", text.into_bytes())]
        }),
        ("merge_keys_40000", || {
            // A merge key bringing 20,000 keys into a mapping of 20,000 more, and one duplicate.
            let mut text = format!("{SERVICE}env:\n  <<: {{");
            let merged: Vec<String> = (0..20_000).map(|i| format!("K{i}: m")).collect();
            text.push_str(&merged.join(", "));
            text.push_str("}\n");
            for i in 0..20_000 {
                writeln!(text, "  K{i}: v").unwrap();
            }
            text.push_str("  K7: again\n");
            vec![("services.yaml", text.into_bytes())]
        }),
        ("file_too_large", || {
            let text = format!("{SERVICE}# {}\n", "x".repeat(5 << 20));
            vec![("services.yaml", text.into_bytes())]
        }),
        ("too_many_values", || {
            // 1.2 MB of `x,`: 600,000 values in one file.
            let text = format!("{SERVICE}command: [{}x]\n", "x,".repeat(600_000));
            vec![("services.yaml", text.into_bytes())]
        }),
        ("too_many_documents", || {
            let doc = |i: usize| format!("kind: Service\nname: s{i}\nimage: nginx:1.27\n");
            let a: Vec<String> = (0..6_000).map(doc).collect();
            let b: Vec<String> = (6_000..12_000).map(doc).collect();
            vec![
                ("a.yaml", a.join("---\n").into_bytes()),
                ("b.yaml", b.join("---\n").into_bytes()),
            ]
        }),
    ]
}

#[test]
fn every_committed_hostile_case_is_an_error_within_the_caps() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cases = committed_cases();
    assert!(
        cases.len() >= 5,
        "expected the hostile catalogue, found {cases:?}"
    );
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| check(root, &format!("tests/hostile/{c}"), c).err())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_generated_hostile_case_is_an_error_within_the_caps() {
    let tmp = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (case, generate) in generated_cases() {
        let dir = tmp.path().join(case);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("converge.yaml"), PROJECT).unwrap();
        for (name, content) in generate() {
            std::fs::write(dir.join(name), content).unwrap();
        }
        if let Err(e) = check(tmp.path(), case, case) {
            failures.push(e);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_expected_file_belongs_to_a_case() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile");
    let mut known = committed_cases();
    known.extend(generated_cases().iter().map(|(c, _)| c.to_string()));
    for entry in std::fs::read_dir(root).unwrap().filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().to_string();
        if let Some(case) = name.strip_suffix(".expected") {
            assert!(known.iter().any(|k| k == case), "{name} belongs to no case");
        }
    }
    for case in &known {
        let file =
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/hostile/{case}.expected"));
        assert!(
            file.exists() || std::env::var_os("CONVERGE_BLESS").is_some(),
            "{case} has no expected file"
        );
    }
}
