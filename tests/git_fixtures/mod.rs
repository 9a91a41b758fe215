//! Git fixtures for tests/git_sources.rs: a bare remote with a working clone that commits (signed
//! with `git commit -S`, gpg.format=ssh, when asked) and pushes; SSH keys made by ssh-keygen.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use converge::agent::source::{Fetched, Revision};

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env_remove("SSH_AUTH_SOCK")
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A bare repository (at `bare`) and a working clone that commits and pushes to it.
pub struct Remote {
    pub tmp: tempfile::TempDir,
    pub bare: PathBuf,
}

impl Remote {
    pub fn new() -> Remote {
        let tmp = tempfile::tempdir().unwrap();
        let bare = tmp.path().join("remote.git");
        Remote::at(tmp, bare)
    }

    pub fn at(tmp: tempfile::TempDir, bare: PathBuf) -> Remote {
        git(
            tmp.path(),
            &["init", "-q", "--bare", bare.to_str().unwrap()],
        );
        git(tmp.path(), &["init", "-q", "-b", "main", "work"]);
        Remote { tmp, bare }
    }

    pub fn work(&self) -> PathBuf {
        self.tmp.path().join("work")
    }

    /// Writes `files`, commits (signed with the private key `sign` when given), pushes; the id.
    pub fn commit(&self, message: &str, files: &[(&str, &str)], sign: Option<&Path>) -> String {
        let w = self.work();
        for (rel, content) in files {
            let p = w.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        git(&w, &["add", "-A"]);
        let key = sign.map(|k| format!("user.signingkey={}", k.display()));
        let mut args = vec!["-c", "user.email=t@example.com", "-c", "user.name=test"];
        if let Some(k) = &key {
            args.extend(["-c", "gpg.format=ssh", "-c", k, "commit", "-S"]);
        } else {
            args.push("commit");
        }
        args.extend(["-q", "--allow-empty", "-m", message]);
        git(&w, &args);
        git(
            &w,
            &["push", "-q", "-f", self.bare.to_str().unwrap(), "main"],
        );
        git(&w, &["rev-parse", "HEAD"])
    }
}

/// An ed25519 key pair made by ssh-keygen: (private key path, public key line).
pub fn keypair(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .output()
        .expect("ssh-keygen");
    assert!(out.status.success(), "{out:?}");
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    (path, public.trim().to_string())
}

/// `SHA256:...` of a public key file, as ssh-keygen prints it.
pub fn ssh_fingerprint(public: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(public)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

pub fn revision(fetched: Fetched) -> Revision {
    match fetched {
        Fetched::Revision(r) => r,
        Fetched::Refused { error, .. } => panic!("refused: {error}"),
    }
}

pub fn file(rev: &Revision, rel: &str) -> String {
    String::from_utf8_lossy(&rev.tree.files[rel]).into_owned()
}

/// Alice's key is allowed, Bob's is not: (tempdir, alice's key, bob's key, allowed_signers).
pub fn signers() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let (alice, alice_public) = keypair(tmp.path(), "alice");
    let (bob, _) = keypair(tmp.path(), "bob");
    let allowed = tmp.path().join("allowed_signers");
    std::fs::write(
        &allowed,
        format!("alice@example.com namespaces=\"git\" {alice_public}\n"),
    )
    .unwrap();
    (tmp, alice, bob, allowed)
}

/// The median of `runs` timings of `f`, in microseconds.
pub fn median_us(runs: usize, mut f: impl FnMut()) -> f64 {
    let mut t: Vec<f64> = (0..runs)
        .map(|_| {
            let start = std::time::Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[runs / 2]
}
