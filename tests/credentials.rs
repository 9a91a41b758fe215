//! Issue 14, part 4: credentials stay secret, with the real binary. A token in the `--source` URL
//! (served by a real `git http-backend` that requires it) is in neither `/status`, the log nor a
//! fetch error; an empty webhook secret refuses to start; a webhook delivery is accepted once,
//! across restarts too; a damaged digest key is an error, never silently replaced.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{http, text, wait_until, Agent, Project, Repo};

const TOKEN: &str = "ghp_Tok3nNeverShown";

fn project(name: &str) -> String {
    format!("kind: Project\nname: {name}\nhosts: [{{name: local}}]\nsync: {{interval: 1h}}\n")
}

/// Git's smart HTTP protocol on 127.0.0.1: each request runs `git http-backend` (CGI) over the
/// directory `root`, after checking Basic credentials `alice:TOKEN`.
struct GitHttp {
    port: u16,
    authorized: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl GitHttp {
    fn start(root: PathBuf) -> GitHttp {
        use base64::Engine as _;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let authorized = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = authorized.clone();
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("alice:{TOKEN}"))
        );
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (root, expected, count) = (root.clone(), expected.clone(), count.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, &root, &expected, &count);
                });
            }
        });
        GitHttp { port, authorized }
    }
}

fn serve(
    stream: TcpStream,
    root: &Path,
    expected: &str,
    authorized: &std::sync::atomic::AtomicUsize,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end().to_string();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = header("content-length").and_then(|n| n.parse().ok()) {
        body = vec![0; n];
        reader.read_exact(&mut body)?;
    }
    if header("authorization").as_deref() != Some(expected) {
        return out.write_all(
            b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
    }
    authorized.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut cgi = Command::new("git")
        .arg("http-backend")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", &method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("CONTENT_TYPE", header("content-type").unwrap_or_default())
        .env("CONTENT_LENGTH", body.len().to_string())
        .env(
            "HTTP_CONTENT_ENCODING",
            header("content-encoding").unwrap_or_default(),
        )
        .env("GIT_PROTOCOL", header("git-protocol").unwrap_or_default())
        .env("REMOTE_USER", "alice")
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    cgi.stdin.take().unwrap().write_all(&body)?;
    let response = cgi.wait_with_output()?.stdout;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4))
        .or_else(|| {
            response
                .windows(2)
                .position(|w| w == b"\n\n")
                .map(|i| (i, i + 2))
        })
        .unwrap_or((response.len(), response.len()));
    let head = String::from_utf8_lossy(&response[..split.0]).to_string();
    let mut status = "200 OK".to_string();
    let mut reply = String::new();
    for h in head.lines() {
        match h.strip_prefix("Status:") {
            Some(s) => status = s.trim().to_string(),
            None => reply.push_str(&format!("{h}\r\n")),
        }
    }
    let content = &response[split.1..];
    out.write_all(
        format!(
            "HTTP/1.1 {status}\r\n{reply}Content-Length: {}\r\nConnection: close\r\n\r\n",
            content.len()
        )
        .as_bytes(),
    )?;
    out.write_all(content)
}

#[test]
fn a_token_in_the_source_url_is_used_but_never_shown() {
    let p = Project::new("credurl", "");
    let repo = Repo::new();
    repo.push("one", &[("converge.yaml", &project(&p.name))]);
    let server = GitHttp::start(repo.dir.path().to_path_buf());
    let url = format!("http://alice:{TOKEN}@127.0.0.1:{}/remote.git", server.port);
    let shown = format!("http://alice:***@127.0.0.1:{}/remote.git", server.port);

    let agent = Agent::start(p.state.path(), 19561, &["--source", &url], &[]);
    wait_until(30, "the revision fetched with the token", || {
        agent.status()["revision"].is_string()
    });
    assert!(
        server.authorized.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "the credentials of the URL are still sent"
    );
    let status = agent.get("/status").1;
    assert!(!status.contains(TOKEN), "{status}");
    assert_eq!(agent.status()["source"], format!("{shown} (main)"));
    let log = agent.log();
    assert!(log.contains(&format!("source={shown} (main)")), "{log}");
    assert!(!log.contains(TOKEN), "{log}");

    // A fetch that fails says where, without the token.
    let other = tempfile::tempdir().unwrap();
    let missing = Agent::start(
        other.path(),
        19562,
        &["--source", &url, "--branch", "nope"],
        &[],
    );
    wait_until(30, "the fetch error", || {
        missing.status()["last_error"].is_string()
    });
    let error = missing.status()["last_error"].as_str().unwrap().to_string();
    assert!(
        error.contains(&format!("branch `nope` not found at {shown}")),
        "{error}"
    );
    let (status, log) = (missing.get("/status").1, missing.log());
    assert!(
        !status.contains(TOKEN) && !log.contains(TOKEN),
        "{status}\n{log}"
    );

    // Refused credentials: the error is the server's answer, not the URL.
    let wrong = url.replace(TOKEN, &format!("{TOKEN}-revoked"));
    let third = tempfile::tempdir().unwrap();
    let refused = Agent::start(third.path(), 19563, &["--source", &wrong], &[]);
    wait_until(30, "the refused fetch", || {
        refused.status()["last_error"].is_string()
    });
    let error = refused.status()["last_error"].as_str().unwrap().to_string();
    assert!(
        error.contains(&format!(
            "authentication refused by {shown}: it did not accept the credentials in the --source URL (user alice)"
        )),
        "{error}"
    );
    let (status, log) = (refused.get("/status").1, refused.log());
    assert!(
        !status.contains(TOKEN) && !log.contains(TOKEN),
        "{status}\n{log}"
    );
}

#[test]
fn an_empty_webhook_secret_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("converge.yaml"), project("cvt-credempty")).unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_converge"))
        .arg("--state-dir")
        .arg(state.path())
        .args(["agent", "--source", dir.path().to_str().unwrap()])
        .args(["--listen", "127.0.0.1:19564"])
        .env("CONVERGE_WEBHOOK_SECRET", "")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the agent started with an empty CONVERGE_WEBHOOK_SECRET");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error: CONVERGE_WEBHOOK_SECRET is set but empty")
            && stderr.contains("hint: set it to the webhook's secret")
            && stderr.contains("or unset it to disable POST /hooks/git"),
        "{stderr}"
    );
}

fn signed(body: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"hook-secret").unwrap();
    mac.update(body.as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

fn deliver(agent: &Agent, id: Option<&str>, body: &str) -> (u16, String) {
    let sig = signed(body);
    let mut headers = vec![("X-Hub-Signature-256", sig.as_str())];
    if let Some(id) = id {
        headers.push(("X-GitHub-Delivery", id));
    }
    http(agent.port, "POST", "/hooks/git", &headers, body)
}

fn reconciles(agent: &Agent) -> u64 {
    agent.status()["reconciles"].as_u64().unwrap_or(0)
}

/// Nothing reconciles for a while.
fn stays(agent: &Agent, count: u64) {
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(reconciles(agent), count, "{}", agent.log());
}

#[test]
fn a_webhook_delivery_is_accepted_once_even_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("converge.yaml"), project("cvt-credhook")).unwrap();
    let source = dir.path().to_str().unwrap().to_string();
    let state = tempfile::tempdir().unwrap();
    let env = [("CONVERGE_WEBHOOK_SECRET", "hook-secret")];
    let mut agent = Agent::start(state.path(), 19565, &["--source", &source], &env);
    wait_until(30, "the startup reconcile", || reconciles(&agent) == 1);

    let push = r#"{"ref":"refs/heads/main","after":"1111"}"#;
    let first = "72d3162e-cc78-11e3-81ab-4c9367dc0958";
    assert_eq!(
        deliver(&agent, Some(first), push),
        (202, "fetching\n".into())
    );
    wait_until(20, "the webhook's reconcile", || reconciles(&agent) == 2);

    let duplicate = (200, "duplicate delivery, ignored\n".to_string());
    assert_eq!(deliver(&agent, Some(first), push), duplicate);
    // The id is not signed: the same body under a fresh id is the same delivery.
    let fresh = "0b9a1f6e-1111-4222-8333-444455556666";
    assert_eq!(deliver(&agent, Some(fresh), push), duplicate);
    let (code, body) = deliver(&agent, None, r#"{"ref":"refs/heads/main","after":"2222"}"#);
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("missing or malformed X-GitHub-Delivery"),
        "{body}"
    );
    stays(&agent, 2);

    let next = r#"{"ref":"refs/heads/main","after":"3333"}"#;
    assert_eq!(deliver(&agent, Some(first), next), duplicate, "id seen");
    let third = "9d1c2b3a-aaaa-4bbb-8ccc-dddddddddddd";
    assert_eq!(deliver(&agent, Some(third), next).0, 202);
    wait_until(20, "the second webhook's reconcile", || {
        reconciles(&agent) == 3
    });

    let file = state.path().join("webhook-deliveries");
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(mode, 0o600);

    agent.kill9();
    let agent = Agent::start(state.path(), 19565, &["--source", &source], &env);
    wait_until(30, "the startup reconcile", || reconciles(&agent) == 1);
    assert_eq!(
        deliver(&agent, Some(first), push),
        duplicate,
        "after a restart"
    );
    assert_eq!(
        deliver(&agent, Some(third), next),
        duplicate,
        "after a restart"
    );
    stays(&agent, 1);
}

#[test]
fn a_damaged_digest_key_stops_the_binary_and_is_left_alone() {
    let p = Project::new("credkey", "");
    let key = p.state.path().join("digest.key");
    std::fs::write(&key, [7u8; 31]).unwrap();
    let o = p.converge(&["plan", "DIR"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains(&format!(
            "the digest key {} is damaged: it has 31 bytes, a key has 32",
            key.display()
        )) && stderr.contains("hint: restore it from a backup of the state directory"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&key).unwrap(), [7u8; 31], "left as it was");
}
