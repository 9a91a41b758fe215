//! Git sources the way production agents reach them, against real servers: OpenSSH's sshd with a
//! deploy key and a pinned known_hosts (`scripts/sshd`, CONVERGE_TEST_SSHD), git http-backend
//! behind nginx with basic auth (`scripts/git-http`, CONVERGE_TEST_GIT_HTTP), and commits signed
//! with `git commit -S` (gpg.format=ssh) checked by the real `converge agent` and `converge plan`.
//! A test whose server is not set up says so and is skipped.

mod common;
mod git_fixtures;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{wait_until, Agent};
use converge::agent::git_auth::{GitAuth, Token};
use converge::agent::source::{Fetched, Source, SourceError};
use git_fixtures::{file, keypair, median_us, revision, signers, ssh_fingerprint, Remote};

/// `scripts/sshd start`'s directory, or `None` (and a message) when the test has no server.
fn sshd() -> Option<PathBuf> {
    let dir = std::env::var_os("CONVERGE_TEST_SSHD").map(PathBuf::from);
    if dir.is_none() {
        eprintln!("skipped: CONVERGE_TEST_SSHD is not set; run `export CONVERGE_TEST_SSHD=$(scripts/sshd start)`");
    }
    dir
}

/// `scripts/git-http start`'s directory, or `None` (and a message).
fn git_http() -> Option<PathBuf> {
    let dir = std::env::var_os("CONVERGE_TEST_GIT_HTTP").map(PathBuf::from);
    if dir.is_none() {
        eprintln!("skipped: CONVERGE_TEST_GIT_HTTP is not set; run `export CONVERGE_TEST_GIT_HTTP=$(scripts/git-http start)`");
    }
    dir
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name))
        .unwrap()
        .trim()
        .to_string()
}

/// A repository served by sshd, with one commit, and its ssh:// URL.
fn ssh_repo(server: &Path) -> (Remote, String) {
    let remote = Remote::new();
    remote.commit(
        "one",
        &[("converge.yaml", "kind: Project\nname: overssh\n")],
        None,
    );
    let url = format!("{}{}", read(server, "url"), remote.bare.display());
    (remote, url)
}

fn ssh_auth(server: &Path, known_hosts: &Path) -> GitAuth {
    GitAuth {
        ssh_key: Some(server.join("deploy_key")),
        known_hosts: Some(known_hosts.to_path_buf()),
        ..Default::default()
    }
}

fn fetch(url: &str, branch: &str, auth: GitAuth) -> Result<Fetched, SourceError> {
    let state = tempfile::tempdir().unwrap();
    Source::new(url, branch, None, state.path())
        .with_auth(auth)
        .fetch()
}

#[test]
fn ssh_with_a_deploy_key_and_a_pinned_known_hosts_reads_the_branch() {
    let Some(server) = sshd() else { return };
    let (_remote, url) = ssh_repo(&server);
    let rev =
        revision(fetch(&url, "main", ssh_auth(&server, &server.join("known_hosts"))).unwrap());
    assert_eq!(
        file(&rev, "converge.yaml"),
        "kind: Project\nname: overssh\n"
    );
    // The same host, hashed (`ssh-keygen -H`, HashKnownHosts yes) is trusted too.
    let tmp = tempfile::tempdir().unwrap();
    let hashed = tmp.path().join("known_hosts");
    std::fs::copy(server.join("known_hosts"), &hashed).unwrap();
    let out = Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&hashed)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(std::fs::read_to_string(&hashed).unwrap().starts_with("|1|"));
    revision(fetch(&url, "main", ssh_auth(&server, &hashed)).unwrap());
}

#[test]
fn a_changed_host_key_is_refused_with_both_fingerprints() {
    let Some(server) = sshd() else { return };
    let (_remote, url) = ssh_repo(&server);
    let tmp = tempfile::tempdir().unwrap();
    let (other, other_public) = keypair(tmp.path(), "impostor");
    let known_hosts = tmp.path().join("known_hosts");
    std::fs::write(
        &known_hosts,
        format!("[127.0.0.1]:{} {other_public}\n", port(&server)),
    )
    .unwrap();
    let e = fetch(&url, "main", ssh_auth(&server, &known_hosts)).unwrap_err();
    assert!(matches!(e, SourceError::HostKeyChanged { .. }), "{e}");
    let text = e.to_string();
    let presented = ssh_fingerprint(&server.join("ssh_host_ed25519_key.pub"));
    let expected = ssh_fingerprint(&other.with_extension("pub"));
    assert!(
        text.starts_with(&format!(
            "the SSH host key of [127.0.0.1]:{} changed: it presented ssh-ed25519 {presented}, {} expects {expected}",
            port(&server),
            known_hosts.display()
        )),
        "{text}"
    );
    assert!(
        text.contains("= hint: if the git host rotated its key"),
        "{text}"
    );
}

#[test]
fn an_unknown_host_is_refused_with_its_fingerprint_and_the_command_that_adds_it() {
    let Some(server) = sshd() else { return };
    let (_remote, url) = ssh_repo(&server);
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("known_hosts");
    let e = fetch(&url, "main", ssh_auth(&server, &missing)).unwrap_err();
    assert!(matches!(e, SourceError::HostKeyUnknown { .. }), "{e}");
    let text = e.to_string();
    let presented = ssh_fingerprint(&server.join("ssh_host_ed25519_key.pub"));
    assert!(
        text.contains(&format!(
            "(ssh-ed25519 {presented}) is not in {}",
            missing.display()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "`ssh-keyscan -p {} 127.0.0.1 >> {}`",
            port(&server),
            missing.display()
        )),
        "{text}"
    );
}

#[test]
fn a_key_the_server_does_not_authorize_is_refused_by_name() {
    let Some(server) = sshd() else { return };
    let (_remote, url) = ssh_repo(&server);
    let tmp = tempfile::tempdir().unwrap();
    let (stranger, _) = keypair(tmp.path(), "stranger");
    let auth = GitAuth {
        ssh_key: Some(stranger.clone()),
        ..ssh_auth(&server, &server.join("known_hosts"))
    };
    let e = fetch(&url, "main", auth).unwrap_err();
    assert!(matches!(e, SourceError::AuthRefused { .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.starts_with(&format!(
            "authentication refused by {url}: it did not accept the SSH key {}",
            stranger.display()
        )),
        "{text}"
    );
    assert!(text.contains("as a read-only deploy key"), "{text}");
}

#[test]
fn a_missing_branch_is_named_with_the_branches_there() {
    let Some(server) = sshd() else { return };
    let (_remote, url) = ssh_repo(&server);
    let e = fetch(&url, "prod", ssh_auth(&server, &server.join("known_hosts"))).unwrap_err();
    assert!(matches!(e, SourceError::BranchMissing { .. }), "{e}");
    assert!(
        e.to_string().starts_with(&format!(
            "branch `prod` not found at {url}; it has: main\n  = hint: check --branch"
        )),
        "{e}"
    );
}

#[test]
fn an_unreachable_remote_says_so_for_ssh_and_https() {
    // Port 1 on loopback: nothing listens there.
    for url in [
        "ssh://git@127.0.0.1:1/srv/infra.git",
        "http://127.0.0.1:1/infra.git",
    ] {
        let e = fetch(url, "main", GitAuth::default()).unwrap_err();
        assert!(matches!(e, SourceError::Unreachable { .. }), "{url}: {e}");
        let text = e.to_string();
        assert!(text.starts_with(&format!("cannot reach {url}: ")), "{text}");
        assert!(
            text.contains("= hint: check the URL, and that the git server is up"),
            "{text}"
        );
    }
}

fn port(server: &Path) -> String {
    read(server, "url").rsplit(':').next().unwrap().to_string()
}

/// A repository served by the HTTP server (removed when dropped) and its URL.
struct HttpRepo {
    remote: Remote,
    url: String,
}

impl Drop for HttpRepo {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.remote.bare);
    }
}

fn http_repo(server: &Path, name: &str) -> HttpRepo {
    let bare = server
        .join("repos")
        .join(format!("{name}-{}.git", std::process::id()));
    let _ = std::fs::remove_dir_all(&bare);
    let remote = Remote::at(tempfile::tempdir().unwrap(), bare.clone());
    let url = format!(
        "{}/{}",
        read(server, "url"),
        bare.file_name().unwrap().to_str().unwrap()
    );
    HttpRepo { remote, url }
}

#[test]
fn https_reads_with_a_token_file_and_a_wrong_token_is_refused_without_showing_it() {
    let Some(server) = git_http() else { return };
    let repo = http_repo(&server, "token");
    repo.remote.commit(
        "one",
        &[("converge.yaml", "kind: Project\nname: overhttp\n")],
        None,
    );
    let tmp = tempfile::tempdir().unwrap();
    let token_file = tmp.path().join("token");
    std::fs::write(&token_file, format!("{}\n", read(&server, "token"))).unwrap();
    let auth = GitAuth {
        token: Some(Token::File(token_file.clone())),
        username: Some(read(&server, "user")),
        ..Default::default()
    };
    let rev = revision(fetch(&repo.url, "main", auth.clone()).unwrap());
    assert_eq!(
        file(&rev, "converge.yaml"),
        "kind: Project\nname: overhttp\n"
    );

    std::fs::write(&token_file, "wrong-s3cret-token\n").unwrap();
    let e = fetch(&repo.url, "main", auth.clone()).unwrap_err();
    assert!(matches!(e, SourceError::AuthRefused { .. }), "{e}");
    let text = format!("{e} {e:?}");
    assert!(
        text.starts_with(&format!(
            "authentication refused by {}: it did not accept the token from the file {} (user converge)",
            repo.url,
            token_file.display()
        )),
        "{text}"
    );
    assert!(!text.contains("wrong-s3cret-token"), "{text}");
    let e = fetch(&repo.url, "main", GitAuth::default()).unwrap_err();
    assert!(e.to_string().contains("no token is set"), "{e}");
    assert!(e.to_string().contains("CONVERGE_GIT_TOKEN_FILE"), "{e}");
}

fn config_project(name: &str, target: &Path) -> String {
    format!(
        "kind: Project\nname: {name}\nsync: {{interval: 1s}}\n---\nkind: ConfigFile\nname: app\ntemplate: templates/app.hbs\npath: {}\n",
        target.display()
    )
}

fn rendered(target: &Path) -> String {
    std::fs::read_to_string(target).unwrap_or_default()
}

#[test]
fn the_agent_reads_https_with_a_token_file_backs_off_and_never_shows_the_token() {
    let Some(server) = git_http() else { return };
    let repo = http_repo(&server, "agent");
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("app.conf");
    let project = config_project(&format!("cvt-githttp-{}", std::process::id()), &target);
    repo.remote.commit(
        "one",
        &[("converge.yaml", &project), ("templates/app.hbs", "v1\n")],
        None,
    );
    let token = read(&server, "token");
    let token_file = tmp.path().join("token");
    std::fs::write(&token_file, &token).unwrap();
    let state = tempfile::tempdir().unwrap();
    let agent = Agent::start(
        state.path(),
        19561,
        &["--source", &repo.url],
        &[
            ("CONVERGE_GIT_TOKEN_FILE", token_file.to_str().unwrap()),
            ("CONVERGE_GIT_USERNAME", "converge"),
        ],
    );
    wait_until(30, "v1 rendered", || rendered(&target) == "v1\n");

    std::fs::write(&token_file, "wrong-s3cret-token").unwrap();
    repo.remote
        .commit("two", &[("templates/app.hbs", "v2\n")], None);
    wait_until(20, "the refused token in /status", || {
        agent.status()["source_error"].is_string()
    });
    let status = agent.get("/status").1;
    assert!(
        status.contains("authentication refused by http://127.0.0.1"),
        "{status}"
    );
    // One failure, logged once: the next try waits for its backoff, not for the 1 s interval.
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(
        agent.log().matches("authentication refused by").count(),
        1,
        "{}",
        agent.log()
    );
    assert_eq!(rendered(&target), "v1\n", "the last good revision stays");
    let metrics = agent.get("/metrics").1;
    assert!(
        metrics.contains("converge_source_fetch_failures_total{reason=\"auth-refused\"} 1"),
        "{metrics}"
    );

    std::fs::write(&token_file, &token).unwrap();
    wait_until(30, "v2 rendered once the token is right", || {
        rendered(&target) == "v2\n"
    });
    wait_until(10, "the source error cleared", || {
        agent.status()["source_error"].is_null()
    });
    let shown = format!(
        "{}{}{}",
        agent.get("/status").1,
        agent.get("/metrics").1,
        agent.log()
    );
    for secret in [token.as_str(), "wrong-s3cret-token"] {
        assert!(!shown.contains(secret), "{secret} shown:\n{shown}");
    }
}

#[test]
fn the_agent_applies_only_commits_signed_by_an_allowed_key() {
    let (keys, alice, bob, allowed) = signers();
    let target = keys.path().join("app.conf");
    let project = config_project(&format!("cvt-gitsig-{}", std::process::id()), &target);
    let remote = Remote::new();
    remote.commit(
        "one",
        &[("converge.yaml", &project), ("templates/app.hbs", "v1\n")],
        Some(&alice),
    );
    let url = format!("file://{}", remote.bare.display());
    let state = tempfile::tempdir().unwrap();
    let agent = Agent::start(
        state.path(),
        19562,
        &[
            "--source",
            &url,
            "--verify-signatures",
            allowed.to_str().unwrap(),
        ],
        &[],
    );
    wait_until(30, "v1 rendered", || rendered(&target) == "v1\n");
    let status = agent.status();
    assert!(
        status["signed_by"]
            .as_str()
            .unwrap()
            .starts_with("alice@example.com (SHA256:"),
        "{status}"
    );

    let by_bob = remote.commit("two", &[("templates/app.hbs", "v2\n")], Some(&bob));
    wait_until(20, "bob's commit refused", || {
        agent.status()["invalid_revision"].as_str() == Some(by_bob.as_str())
    });
    let error = agent.status()["last_error"].as_str().unwrap().to_string();
    let bob_fp = ssh_fingerprint(&bob.with_extension("pub"));
    assert!(
        error.starts_with(&format!(
            "commit {} is signed by key {bob_fp}, which is not in the allowed signers {}",
            &by_bob[..12],
            allowed.display()
        )),
        "{error}"
    );

    let unsigned = remote.commit("three", &[("templates/app.hbs", "v3\n")], None);
    wait_until(20, "the unsigned commit refused", || {
        agent.status()["invalid_revision"].as_str() == Some(unsigned.as_str())
    });
    let error = agent.status()["last_error"].as_str().unwrap().to_string();
    assert!(
        error.starts_with(&format!("commit {} is not signed", &unsigned[..12])),
        "{error}"
    );
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(rendered(&target), "v1\n", "live state is unchanged");
    let metrics = agent.get("/metrics").1;
    assert!(
        metrics.contains("converge_invalid_revisions_total 2"),
        "{metrics}"
    );
    let log = agent.log();
    assert!(
        log.contains(&format!(
            "commit {} is signed by key {bob_fp}",
            &by_bob[..12]
        )),
        "{log}"
    );

    remote.commit("four", &[("templates/app.hbs", "v4\n")], Some(&alice));
    wait_until(30, "alice's next commit applied", || {
        rendered(&target) == "v4\n"
    });
    wait_until(10, "status clean", || {
        agent.status()["invalid_revision"].is_null()
    });
}

#[test]
fn plan_refuses_an_unsigned_head_and_accepts_a_signed_one() {
    let (keys, alice, _, allowed) = signers();
    let target = keys.path().join("app.conf");
    let remote = Remote::new();
    let project = config_project("planverify", &target);
    let files = |v: &str| {
        vec![
            ("desired-state/converge.yaml".to_string(), project.clone()),
            (
                "desired-state/templates/app.hbs".to_string(),
                format!("{v}\n"),
            ),
        ]
    };
    let commit = |v: &str, sign: Option<&Path>| {
        let f = files(v);
        let refs: Vec<(&str, &str)> = f.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        remote.commit(v, &refs, sign)
    };
    commit("v1", Some(&alice));
    let unsigned = commit("v2", None);
    let plan = || {
        Command::new(env!("CARGO_BIN_EXE_converge"))
            .current_dir(remote.work())
            .args([
                "plan",
                "desired-state",
                "--base",
                "HEAD~1",
                "--head",
                "HEAD",
                "--offline",
            ])
            .arg("--verify-signatures")
            .arg(&allowed)
            .output()
            .unwrap()
    };
    let out = plan();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with(&format!("error: commit {} is not signed", &unsigned[..12])),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "no plan is printed");

    commit("v3", Some(&alice));
    let out = plan();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("is signed by alice@example.com (SHA256:"),
        "{stderr}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("app"),
        "{out:?}"
    );
}

#[test]
#[ignore = "a measurement: bench/git-signatures runs it in a release build"]
fn measure_what_signature_checks_add_to_a_fetch() {
    use converge::load::allowed_signers::AllowedSigners;
    use converge::load::git::CommitSignature;
    use converge::load::signature;

    let (_keys, alice, _, allowed) = signers();
    let remote = Remote::new();
    let files: Vec<(String, String)> = (0..20)
        .map(|i| {
            let yaml = format!("kind: Service\nname: s{i}\nimage: shop/s{i}:1.{i}\n");
            (format!("services/s{i}.yaml"), yaml)
        })
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    remote.commit("state", &refs, Some(&alice));
    let repo = git2::Repository::open_bare(&remote.bare).unwrap();
    let commit = repo
        .find_reference("refs/heads/main")
        .unwrap()
        .peel_to_commit()
        .unwrap();
    let signers = AllowedSigners::read(&allowed).unwrap();
    let sig = CommitSignature::of(&repo, &commit).unwrap();
    let runs = 2000;
    let verify = median_us(runs, || {
        signature::verify(&sig.as_signed(), &signers).unwrap();
    });
    let whole = median_us(runs, || {
        let s = AllowedSigners::read(&allowed).unwrap();
        let c = CommitSignature::of(&repo, &commit).unwrap();
        signature::verify(&c.as_signed(), &s).unwrap();
    });
    println!("signature::verify (ed25519, SSHSIG sha512): {verify:.1} µs median of {runs}");
    println!("read allowed_signers + extract gpgsig + verify: {whole:.1} µs median of {runs}");

    let mut sources = vec![(
        "file://",
        format!("file://{}", remote.bare.display()),
        GitAuth::default(),
    )];
    if let Some(server) = std::env::var_os("CONVERGE_TEST_SSHD").map(PathBuf::from) {
        let url = format!("{}{}", read(&server, "url"), remote.bare.display());
        sources.push((
            "ssh (loopback sshd)",
            url,
            ssh_auth(&server, &server.join("known_hosts")),
        ));
    }
    for (name, url, auth) in sources {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let plain = Source::new(&url, "main", None, a.path()).with_auth(auth.clone());
        let checked = Source::new(&url, "main", None, b.path())
            .with_auth(auth)
            .with_signers(Some(allowed.clone()));
        revision(plain.fetch().unwrap());
        revision(checked.fetch().unwrap());
        let fetches = 40;
        let alone = median_us(fetches, || drop(plain.fetch().unwrap()));
        let with = median_us(fetches, || drop(revision(checked.fetch().unwrap())));
        println!(
            "{name}: fetch {:.2} ms, fetch + verify {:.2} ms (+{:.0} µs) median of {fetches}",
            alone / 1e3,
            with / 1e3,
            with - alone
        );
    }
}
