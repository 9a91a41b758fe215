//! Helpers for tests against the real Docker engine: a project of its own per test (so tests run
//! in parallel), the real binary, and cleanup of everything carrying the project's label.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Project {
    pub name: String,
    pub dir: tempfile::TempDir,
    pub state: tempfile::TempDir,
}

impl Project {
    /// A fresh project; `body` is the YAML after the Project document.
    pub fn new(test: &str, body: &str) -> Project {
        let name = format!("cvt-{test}-{}", std::process::id());
        let p = Project {
            name,
            dir: tempfile::tempdir().unwrap(),
            state: tempfile::tempdir().unwrap(),
        };
        p.write(body);
        p
    }

    pub fn write(&self, body: &str) {
        self.write_with(body, "prune: true");
    }

    pub fn write_with(&self, body: &str, sync: &str) {
        let project = format!(
            "kind: Project\nname: {}\nhosts: [{{name: local}}]\nsync: {{{sync}}}\n---\n",
            self.name
        );
        std::fs::write(self.dir.path().join("converge.yaml"), project + body).unwrap();
    }

    pub fn converge(&self, args: &[&str]) -> Output {
        self.converge_env(args, &[])
    }

    /// Like `converge`, with extra environment variables.
    pub fn converge_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_converge"));
        cmd.envs(env.iter().copied());
        cmd.arg("--state-dir").arg(self.state.path());
        for a in args {
            if *a == "DIR" {
                cmd.arg(self.dir.path());
            } else {
                cmd.arg(a);
            }
        }
        cmd.env("CVT_SECRET", "sup3r-s3cret-value")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    }

    pub fn apply(&self) -> Output {
        self.converge(&["apply", "DIR", "--auto-approve"])
    }

    pub fn plan_exit(&self) -> i32 {
        self.converge(&["plan", "DIR", "--detailed-exitcode"])
            .status
            .code()
            .unwrap_or(-1)
    }

    /// `name status` of this project's containers, sorted.
    pub fn containers(&self) -> Vec<String> {
        let out = docker(&[
            "ps",
            "-a",
            "--filter",
            &format!("label=converge.project={}", self.name),
            "--format",
            "{{.Names}} {{.State}}",
        ]);
        let mut v: Vec<String> = out.lines().map(str::to_string).collect();
        v.sort();
        v
    }

    pub fn journal(&self) -> String {
        std::fs::read_to_string(
            self.state
                .path()
                .join(format!("journal/{}.jsonl", self.name)),
        )
        .unwrap_or_default()
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        cleanup(&self.name);
    }
}

pub fn cleanup(project: &str) {
    let filter = format!("label=converge.project={project}");
    // Swarm services first (their tasks' containers go with them), then their secrets.
    let services = docker(&["service", "ls", "-q", "--filter", &filter]);
    for id in services.split_whitespace() {
        docker(&["service", "rm", id]);
    }
    let secrets = docker(&["secret", "ls", "-q", "--filter", &filter]);
    for id in secrets.split_whitespace() {
        docker(&["secret", "rm", id]);
    }
    let ids = docker(&["ps", "-aq", "--filter", &filter]);
    for id in ids.split_whitespace() {
        docker(&["rm", "-f", id]);
    }
    let nets = docker(&["network", "ls", "-q", "--filter", &filter]);
    for id in nets.split_whitespace() {
        docker(&["network", "rm", id]);
    }
    let vols = docker(&["volume", "ls", "-q", "--filter", &filter]);
    for id in vols.split_whitespace() {
        docker(&["volume", "rm", "-f", id]);
    }
}

pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker CLI");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The body of `GET /` on a loopback port, or an empty string when nothing answers.
pub fn http_body(port: u16) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(5)));
    let _ = s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n");
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.split("\r\n\r\n")
        .nth(1)
        .unwrap_or("")
        .trim()
        .to_string()
}

pub fn temp_path(p: &Path, rel: &str) -> PathBuf {
    p.join(rel)
}

/// A private nginx on a loopback port, with its own prefix; stopped when dropped.
pub struct Nginx {
    pub dir: tempfile::TempDir,
    pub port: u16,
}

impl Nginx {
    pub fn start(port: u16) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        std::fs::create_dir_all(dir.path().join("conf.d")).unwrap();
        std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
        let conf = format!(
            "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{ worker_connections 256; }}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/tmp/body;\n  proxy_temp_path {d}/tmp/proxy;\n  fastcgi_temp_path {d}/tmp/fastcgi;\n  uwsgi_temp_path {d}/tmp/uwsgi;\n  scgi_temp_path {d}/tmp/scgi;\n  include {d}/conf.d/*.conf;\n}}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let out = Command::new("nginx")
            .args(Self::args_for(&d))
            .output()
            .expect("nginx is installed");
        assert!(
            out.status.success(),
            "nginx failed to start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Nginx { dir, port }
    }

    fn args_for(d: &str) -> Vec<String> {
        vec![
            "-p".into(),
            format!("{d}/"),
            "-c".into(),
            "nginx.conf".into(),
            "-e".into(),
            format!("{d}/error.log"),
        ]
    }

    /// The Router document that renders into this nginx and checks and reloads it.
    pub fn router(&self, service: &str, template: &str) -> String {
        let d = self.dir.path().display();
        format!(
            "kind: Router\nname: public\ntemplate: {template}\npath: {d}/conf.d/site.conf\nlisten: {}\ncheck: [nginx, -t, -q, -p, {d}/, -c, nginx.conf, -e, {d}/error.log]\nreload: [nginx, -s, reload, -p, {d}/, -c, nginx.conf, -e, {d}/error.log]\nroutes: [{{host: localhost, service: {service}}}]\n",
            self.port
        )
    }

    pub fn site(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("conf.d/site.conf")).unwrap_or_default()
    }

    /// `GET /` through nginx, after its graceful reload has settled.
    pub fn get(&self) -> String {
        std::thread::sleep(std::time::Duration::from_millis(700));
        http_body(self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let d = self.dir.path().display().to_string();
        let mut args = vec!["-s".to_string(), "quit".to_string()];
        args.extend(Self::args_for(&d));
        let _ = Command::new("nginx").args(args).output();
    }
}

/// A raw HTTP/1.0 request to 127.0.0.1:`port`; returns (status, body).
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(10)));
    let mut req = format!(
        "{method} {path} HTTP/1.0\r\nHost: localhost\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    let _ = s.write_all(req.as_bytes());
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    let status = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (
        status,
        buf.split("\r\n\r\n").nth(1).unwrap_or("").to_string(),
    )
}

/// Polls `cond` every 100 ms until it holds or `secs` pass.
pub fn wait_until(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if cond() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("timed out after {secs}s waiting for: {what}");
}

/// A git repository to push desired states to: a bare remote and a working clone.
pub struct Repo {
    pub dir: tempfile::TempDir,
}

impl Repo {
    pub fn new() -> Repo {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        git(d, &["init", "-q", "--bare", "remote.git"]);
        git(d, &["init", "-q", "-b", "main", "work"]);
        git(
            &d.join("work"),
            &["remote", "add", "origin", "../remote.git"],
        );
        Repo { dir }
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.dir.path().join("remote.git").display())
    }

    pub fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    /// Writes `files` (relative path, content), commits and pushes.
    pub fn push(&self, message: &str, files: &[(&str, &str)]) {
        let w = self.work();
        for (rel, content) in files {
            let p = w.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        git(&w, &["add", "-A"]);
        git(
            &w,
            &[
                "-c",
                "user.email=t@example.com",
                "-c",
                "user.name=test",
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                message,
            ],
        );
        git(&w, &["push", "-q", "origin", "main"]);
    }
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A running `converge agent`; killed (SIGKILL) when dropped.
pub struct Agent {
    pub child: std::process::Child,
    pub port: u16,
    pub log: PathBuf,
}

impl Agent {
    pub fn start(state: &Path, port: u16, args: &[&str], env: &[(&str, &str)]) -> Agent {
        let log = state.join(format!(
            "agent-{port}-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis()
        ));
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_converge"));
        cmd.arg("--state-dir")
            .arg(state)
            .arg("agent")
            .args(args)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"));
        cmd.env("CVT_SECRET", "sup3r-s3cret-value");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        let agent = Agent { child, port, log };
        wait_until(30, "the agent's /health", || agent.get("/health").0 == 200);
        agent
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http(self.port, "GET", path, &[], "")
    }

    pub fn status(&self) -> serde_json::Value {
        serde_json::from_str(&self.get("/status").1).unwrap_or(serde_json::Value::Null)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The test PostgreSQL that scripts/test starts.
pub fn pg_url() -> String {
    std::env::var("CONVERGE_TEST_PG_URL")
        .expect("CONVERGE_TEST_PG_URL: run scripts/test (it starts PostgreSQL), or `export CONVERGE_TEST_PG_URL=$(scripts/pg start)`")
}

/// Runs `sql` in database `db` of the test PostgreSQL; its output, trimmed.
pub fn psql(db: &str, sql: &str) -> String {
    let url = pg_url()
        .rsplit_once('/')
        .map(|(base, _)| format!("{base}/{db}"))
        .unwrap();
    let out = Command::new("psql")
        .args(["-qAt", "-v", "ON_ERROR_STOP=1", &url, "-c", sql])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The copy ids (`<backup>-<stamp>`) in an S3 `ListObjectsV2` answer, sorted (oldest first).
pub fn copy_ids_in_listing(xml: &str) -> Vec<String> {
    let mut ids: Vec<String> = xml
        .split("<Key>")
        .skip(1)
        .filter_map(|k| k.split("</Key>").next())
        .filter_map(|k| k.strip_suffix(".cvbak"))
        .map(|k| k.rsplit('/').next().unwrap_or(k).to_string())
        .collect();
    ids.sort();
    ids
}
