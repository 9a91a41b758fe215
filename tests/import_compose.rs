//! `converge import compose`, run as the real binary on compose files written in the shapes
//! real projects use: a web + database + cache stack with a `.env`, an override file,
//! `extends`, profiles, healthchecks and secrets; the YTEMPIRE handbook's compose-era stack
//! diffed against `desired-state/`; and an imported file applied next to `docker-compose up`
//! on the local engine, the two containers compared field by field.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use converge::model::Service;

/// Variables the fixtures read: never taken from the test's own environment.
const FIXTURE_VARS: [&str; 10] = [
    "WEB_TAG",
    "POSTGRES_PASSWORD",
    "LOG_LEVEL",
    "REGISTRY",
    "WEB_PORT",
    "API_TOKEN",
    "DATABASE_URL",
    "COMPOSE_PROFILES",
    "API_VERSION",
    "WORKER_VERSION",
];

const STACK: [&str; 2] = ["docker-compose.yml", "docker-compose.override.yml"];

/// A copy of `tests/fixtures/compose/NAME` in a temporary directory.
fn fixture(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/compose")
            .join(name),
        dir.path(),
    );
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// `converge ARGS` in `dir`, with `env` and none of the fixtures' variables otherwise.
fn converge_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_converge"));
    for v in FIXTURE_VARS {
        cmd.env_remove(v);
    }
    cmd.current_dir(dir)
        .args(args)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn import(dir: &Path, files: &[&str], extra: &[&str]) -> Output {
    let mut args = vec!["import", "compose"];
    args.extend_from_slice(files);
    args.extend_from_slice(&["--out", "out"]);
    args.extend_from_slice(extra);
    converge_in(dir, &args, &[])
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The first line of each warning, as `file:line: field: what`.
fn warnings(o: &Output) -> Vec<String> {
    stderr(o)
        .lines()
        .filter_map(|l| l.strip_prefix("warning: "))
        .map(str::to_string)
        .collect()
}

fn read(dir: &Path, rel: &str) -> String {
    std::fs::read_to_string(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn validate(dir: &Path) {
    let v = converge_in(dir, &["validate", "out"], &[]);
    assert!(
        v.status.success(),
        "validate failed:\n{}{}",
        stdout(&v),
        stderr(&v)
    );
}

/// The services of a desired-state directory, as converge loads them.
fn services(dir: &Path) -> std::collections::BTreeMap<String, Service> {
    let state =
        converge::load::load_dir(dir, None).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    state
        .services()
        .map(|s| (s.name.as_str().to_string(), s.clone()))
        .collect()
}

#[test]
fn a_web_database_cache_stack_with_an_override_imports_and_validates() {
    let dir = fixture("stack");
    let out = import(dir.path(), &STACK, &[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    validate(dir.path());
    let s = services(&dir.path().join("out"));
    assert_eq!(
        s.keys().map(String::as_str).collect::<Vec<_>>(),
        ["cache", "db", "migrate", "web", "worker"],
        "adminer is in the `debug` profile"
    );
    let web = &s["web"];
    // .env interpolation: ${REGISTRY:-shop}/web:${WEB_TAG:?…} with WEB_TAG from .env.
    assert_eq!(web.image.as_deref(), Some("shop/web:1.4.2"));
    assert_eq!(
        web.command.as_deref(),
        Some(&["serve".to_string(), "--port".into(), "8000".into()][..])
    );
    // The override wins for LOG_LEVEL and replicas; the extended base (common.yml) gives LOG_FORMAT and user.
    assert_eq!(web.env["LOG_LEVEL"].raw(), "debug");
    assert_eq!(web.env["LOG_FORMAT"].raw(), "json");
    assert_eq!(web.env["PRICE"].raw(), "$5", "$$ is a literal $");
    assert_eq!(web.replicas, 1);
    assert_eq!(web.user.as_deref(), Some("1000:1000"));
    assert_eq!(web.working_dir.as_deref(), Some("/srv"));
    assert_eq!(web.stop_grace_period.map(|d| d.as_millis()), Some(90_000));
    // Ports: the base's loopback port and the override's, appended.
    let ports: Vec<(u16, Option<u16>, Option<String>)> = web
        .ports
        .iter()
        .map(|p| {
            (
                p.container.get(),
                p.host.map(|h| h.get()),
                p.host_ip.as_ref().map(|i| i.to_string()),
            )
        })
        .collect();
    assert_eq!(
        ports,
        [
            (8000, Some(8080), Some("127.0.0.1".into())),
            (8443, Some(8443), None)
        ]
    );
    // Volumes merged by target: the override's bind (read-write) replaces the base's read-only one,
    // and its relative path is resolved against the compose file's directory.
    let html = dir.path().join("html");
    let vols: Vec<(String, String, bool)> = web
        .volumes
        .iter()
        .map(|v| (v.source.clone(), v.target.clone(), v.read_only))
        .collect();
    assert_eq!(
        vols,
        [
            ("uploads".to_string(), "/srv/uploads".to_string(), false),
            (html.display().to_string(), "/srv/html".into(), false)
        ]
    );
    assert_eq!(web.resources.cpus, Some(0.5));
    assert_eq!(
        web.resources.memory.map(|m| m.bytes()),
        Some(512 << 20),
        "compose's 512M is 512 MiB"
    );
    assert_eq!(web.depends_on, ["db", "cache", "migrate"]);
    let health = web.health.as_ref().unwrap();
    assert_eq!(
        health.command.as_deref().unwrap(),
        ["wget", "-qO-", "http://localhost:8000/health"]
    );
    assert_eq!(
        (
            health.interval.as_millis(),
            health.timeout.as_millis(),
            health.retries
        ),
        (15_000, 3_000, 4)
    );
    assert_eq!(health.start_period.map(|d| d.as_millis()), Some(30_000));
    assert_eq!(
        web.logging.as_ref().map(|l| l.driver.as_str()),
        Some("json-file")
    );

    let db = &s["db"];
    assert_eq!(
        db.health.as_ref().unwrap().command.as_deref().unwrap(),
        ["/bin/sh", "-c", "pg_isready -U shop"]
    );
    assert_eq!(
        db.env["POSTGRES_PASSWORD_FILE"].raw(),
        "/run/secrets/db_password"
    );
    assert_eq!(db.shm_size.map(|m| m.bytes()), Some(128 << 20));
    assert_eq!(db.aliases, ["postgres"], "the default network's aliases");
    let cache = &s["cache"];
    assert_eq!(
        cache.command.as_ref().unwrap()[4],
        "${REDIS_PASSWORD}",
        "a string command is split like a shell; $${{ is a literal ${{"
    );
    assert_eq!(cache.resources.memory.map(|m| m.bytes()), Some(256 << 20));
    // worker extends migrate (same file), which extends app-base (common.yml).
    let worker = &s["worker"];
    assert_eq!(worker.image.as_deref(), Some("shop/web:1.4.2"));
    assert_eq!(
        worker.command.as_deref().unwrap(),
        ["worker", "--queue", "default"]
    );
    assert_eq!(
        worker.env["LOG_LEVEL"].raw(),
        "warn",
        "${{LOG_LEVEL-info}} from .env"
    );
    assert_eq!(worker.init, Some(true));
    assert_eq!(worker.restart.as_str(), "on-failure");
    assert_eq!(s["migrate"].restart.as_str(), "no");
    // The header names the compose source.
    assert!(read(dir.path(), "out/services/web.yaml").starts_with(
        "# Service web, imported from docker-compose.yml + docker-compose.override.yml (docker-compose.yml:10).\n"
    ));
    assert!(read(dir.path(), "out/converge.yaml").contains("kind: Project\nname: shop\n"));
}

#[test]
fn what_converge_cannot_express_is_listed_exactly_with_file_and_line() {
    let dir = fixture("stack");
    let out = import(dir.path(), &STACK, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        warnings(&out),
        [
            "docker-compose.yml:32: depends_on: migrate (condition: service_completed_successfully): not supported by converge",
            "docker-compose.yml:57: secrets: db_password: not supported by converge",
            "docker-compose.yml:72: network_mode: host: not supported by converge",
            "docker-compose.yml:73: env_file: cache.env (2 variable(s)): imported, but converge differs",
            "docker-compose.yml:92: restart: on-failure:5: not supported by converge",
            "docker-compose.yml:96: deploy.resources.reservations.memory: not supported by converge",
            "docker-compose.yml:107: volumes.uploads.external: not supported by converge",
        ]
    );
    assert!(stderr(&out).contains("  = hint: converge runs every service on the project's network"));
    assert!(stdout(&out).contains("7 compose setting(s) not carried over"));
    assert!(stdout(&out)
        .contains("skipped   service adminer: in profile(s) debug (--profile debug includes it)"));
    // --strict turns the list into a failure (the files are still written).
    let strict = import(dir.path(), &STACK, &["--strict"]);
    assert_eq!(strict.status.code(), Some(1));
}

#[test]
fn secrets_are_written_as_env_references_and_never_printed() {
    let dir = fixture("stack");
    let out = import(dir.path(), &STACK, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let s = services(&dir.path().join("out"));
    // By key name (the value came from .env), by a bare `- POSTGRES_PASSWORD`, and a literal key.
    assert_eq!(
        s["web"].env["POSTGRES_PASSWORD"].raw(),
        "${env:POSTGRES_PASSWORD}"
    );
    assert_eq!(
        s["db"].env["POSTGRES_PASSWORD"].raw(),
        "${env:POSTGRES_PASSWORD}"
    );
    assert_eq!(
        s["web"].env["STRIPE_API_KEY"].raw(),
        "${env:STRIPE_API_KEY}"
    );
    let mut everything = stdout(&out) + &stderr(&out);
    for f in ["web", "db", "cache", "migrate", "worker"] {
        everything += &read(dir.path(), &format!("out/services/{f}.yaml"));
    }
    // From an env_file too: the password by reference, the rest copied.
    assert_eq!(
        s["cache"].env["REDIS_PASSWORD"].raw(),
        "${env:REDIS_PASSWORD}"
    );
    assert_eq!(s["cache"].env["REDIS_MAXMEMORY"].raw(), "64mb");
    for value in [
        "from-dotenv-never-printed",
        "sk_live_not_a_real_key",
        "hunter3-never-printed",
    ] {
        assert!(
            !everything.contains(value),
            "a secret value leaked: {value}"
        );
    }
    assert!(stdout(&out)
        .contains("set POSTGRES_PASSWORD, REDIS_PASSWORD, STRIPE_API_KEY where converge applies"));
}

#[test]
fn a_second_import_of_unchanged_files_writes_nothing() {
    let dir = fixture("stack");
    assert!(import(dir.path(), &STACK, &[]).status.success());
    let files = [
        "converge.yaml",
        "services/web.yaml",
        "services/db.yaml",
        "services/cache.yaml",
        "services/migrate.yaml",
        "services/worker.yaml",
    ];
    let before: Vec<(Vec<u8>, std::time::SystemTime)> = files
        .iter()
        .map(|f| {
            let p = dir.path().join("out").join(f);
            (
                std::fs::read(&p).unwrap(),
                std::fs::metadata(&p).unwrap().modified().unwrap(),
            )
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let again = import(dir.path(), &STACK, &[]);
    assert!(again.status.success());
    for (f, (bytes, mtime)) in files.iter().zip(&before) {
        let p = dir.path().join("out").join(f);
        assert_eq!(&std::fs::read(&p).unwrap(), bytes, "{f}");
        assert_eq!(
            &std::fs::metadata(&p).unwrap().modified().unwrap(),
            mtime,
            "{f} was rewritten"
        );
        assert!(
            stdout(&again).contains(&format!("unchanged out/{f}")),
            "{}",
            stdout(&again)
        );
    }
    // A change to the compose file rewrites only the service it touches.
    let compose = dir.path().join("docker-compose.yml");
    let text = std::fs::read_to_string(&compose)
        .unwrap()
        .replace("redis:7-alpine", "redis:7.2-alpine");
    std::fs::write(&compose, text).unwrap();
    let changed = import(dir.path(), &STACK, &[]);
    assert!(
        stdout(&changed).contains("updated   out/services/cache.yaml"),
        "{}",
        stdout(&changed)
    );
    assert!(stdout(&changed).contains("unchanged out/services/web.yaml"));
    // A service that left the compose files: its file is named, not deleted.
    let text = std::fs::read_to_string(&compose).unwrap().replace(
        "  worker:\n    extends: migrate",
        "  jobs:\n    extends: migrate",
    );
    std::fs::write(&compose, text).unwrap();
    let renamed = import(dir.path(), &STACK, &[]);
    assert!(
        stdout(&renamed).contains("stale     out/services/worker.yaml (its service is no longer in the compose files: delete it)"),
        "{}",
        stdout(&renamed)
    );
    assert!(stdout(&renamed).contains("created   out/services/jobs.yaml"));
}

#[test]
fn profiles_leave_services_out_unless_selected() {
    let dir = fixture("stack");
    let out = import(dir.path(), &STACK, &["--profile", "debug"]);
    assert!(out.status.success(), "{}", stderr(&out));
    validate(dir.path());
    let s = services(&dir.path().join("out"));
    assert_eq!(s["adminer"].image.as_deref(), Some("adminer:4"));
    assert_eq!(s["adminer"].ports[0].host.map(|h| h.get()), Some(9090));
    // COMPOSE_PROFILES selects them too, as compose does.
    let dir = fixture("stack");
    let mut args = vec!["import", "compose"];
    args.extend_from_slice(&STACK);
    args.extend_from_slice(&["--out", "out"]);
    let out = converge_in(dir.path(), &args, &[("COMPOSE_PROFILES", "debug")]);
    assert!(out.status.success());
    assert!(dir.path().join("out/services/adminer.yaml").exists());
}

#[test]
fn the_project_is_named_by_the_flag_then_compose_name_then_the_directory() {
    let dir = fixture("stack");
    assert!(import(dir.path(), &STACK, &["--project", "storefront"])
        .status
        .success());
    assert!(read(dir.path(), "out/converge.yaml").contains("name: storefront\n"));
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("My_App");
    std::fs::create_dir(&app).unwrap();
    std::fs::write(
        app.join("compose.yaml"),
        "services:\n  web:\n    image: nginx:1.25\n",
    )
    .unwrap();
    let out = import(&app, &["compose.yaml"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(read(&app, "out/converge.yaml").contains("name: my_app\n"));
}

/// Writes `compose.yaml` with `text` and imports it.
fn import_text(text: &str) -> (tempfile::TempDir, Output) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("compose.yaml"), text).unwrap();
    let out = import(dir.path(), &["compose.yaml"], &["--project", "t"]);
    (dir, out)
}

#[test]
fn a_required_variable_stops_the_import_at_its_line() {
    let (dir, out) =
        import_text("services:\n  web:\n    image: shop/web:${TAG:?set TAG to the release}\n");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out).trim(),
        "error: compose.yaml:3:12: required variable TAG is not set: set TAG to the release"
    );
    assert!(!dir.path().join("out").exists(), "nothing is written");
}

#[test]
fn a_yaml_syntax_error_names_its_file_and_line() {
    let (_dir, out) = import_text("services:\n  web:\n    image: a\n   ports: [\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("error: compose.yaml:4:"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("invalid YAML"));
}

#[test]
fn an_unknown_top_level_key_is_an_error() {
    let (_dir, out) = import_text("services:\n  web: {image: a}\nservice:\n  db: {image: b}\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("error: compose.yaml:3:1: unknown top-level key `service`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn long_syntax_ports_volumes_and_string_healthchecks_convert() {
    let (dir, out) = import_text(
        r#"
services:
  web:
    image: nginx:1.25
    ports:
      - target: 80
        published: "8080"
        host_ip: 127.0.0.1
        protocol: tcp
      - "5000-5001:5000-5001/udp"
    volumes:
      - type: volume
        source: data
        target: /data
        read_only: true
      - type: bind
        source: ./conf
        target: /etc/nginx/conf.d
      - type: tmpfs
        target: /run
      - /anonymous
    healthcheck:
      test: curl -f http://localhost/ || exit 1
    cap_add: [NET_ADMIN]
    networks:
      default:
        aliases: [www]
      backend:
        aliases: [web.backend]
    ulimits:
      nproc: 65535
      nofile: {soft: 20000, hard: 40000}
    extra_hosts: ["host.docker.internal:host-gateway"]
    labels: [com.example.team=web]
    environment:
      DATABASE_URL: postgres://app:hunter2@db/app
networks:
  backend:
    driver: bridge
"#,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    validate(dir.path());
    let web = services(&dir.path().join("out")).remove("web").unwrap();
    let ports: Vec<String> = web
        .ports
        .iter()
        .map(|p| {
            format!(
                "{}:{:?}:{:?}:{:?}",
                p.container.get(),
                p.host.map(|h| h.get()),
                p.host_ip.as_ref().map(|i| i.to_string()),
                p.protocol
            )
        })
        .collect();
    assert_eq!(
        ports,
        [
            "80:Some(8080):Some(\"127.0.0.1\"):Tcp",
            "5000:Some(5000):None:Udp",
            "5001:Some(5001):None:Udp"
        ]
    );
    assert_eq!(web.volumes[0].source, "data");
    assert!(web.volumes[0].read_only);
    assert_eq!(
        web.volumes[1].source,
        dir.path().join("conf").display().to_string()
    );
    assert_eq!(web.tmpfs, ["/run"]);
    assert_eq!(
        web.health.as_ref().unwrap().command.as_deref().unwrap(),
        ["/bin/sh", "-c", "curl -f http://localhost/ || exit 1"]
    );
    assert_eq!(web.cap_add, ["NET_ADMIN"]);
    assert_eq!(web.aliases, ["www"]);
    assert_eq!(web.networks.len(), 1);
    assert_eq!(web.networks[0].name, "backend");
    assert_eq!(web.networks[0].aliases, ["web.backend"]);
    assert_eq!(web.extra_hosts["host.docker.internal"], "host-gateway");
    assert_eq!(web.labels["com.example.team"], "web");
    assert_eq!(web.ulimits.len(), 2);
    assert_eq!(
        web.env["DATABASE_URL"].raw(),
        "${env:DATABASE_URL}",
        "a URL with a password is a secret"
    );
    assert_eq!(
        warnings(&out),
        ["compose.yaml:21: volumes: /anonymous (anonymous): not supported by converge"]
    );
}

/// The YTEMPIRE handbook's compose-era stack, imported and diffed against `desired-state/`.
/// api and worker agree on everything both can say; what converge's desired state adds (the
/// blue-green deploy, autoscaling, priorities, the Database dependency, HTTP health probe,
/// metrics) is compose's gap, listed here field by field.
#[test]
fn the_ytempire_compose_stack_imports_to_the_desired_states_api_and_worker() {
    let dir = fixture("ytempire");
    let out = import(dir.path(), &["docker-compose.yml"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    validate(dir.path());
    assert!(warnings(&out).is_empty(), "{:?}", warnings(&out));
    let imported = services(&dir.path().join("out"));
    assert_eq!(
        imported.keys().map(String::as_str).collect::<Vec<_>>(),
        ["api", "nginx", "postgres", "prometheus", "redis", "worker"]
    );
    let api_file = read(dir.path(), "out/services/api.yaml");
    assert!(
        !api_file.contains("postgres:postgres@") && !stdout(&out).contains("postgres:postgres@"),
        "the URL's password stays out"
    );
    let desired = services(&Path::new(env!("CARGO_MANIFEST_DIR")).join("desired-state"));
    for name in ["api", "worker"] {
        let (i, d) = (&imported[name], &desired[name]);
        assert_eq!(i.image, d.image, "{name}: image");
        assert_eq!(i.command, d.command, "{name}: command");
        assert_eq!(i.volumes, d.volumes, "{name}: volumes");
        assert_eq!(i.resources, d.resources, "{name}: resources");
        assert_eq!(i.replicas, d.replicas, "{name}: replicas");
        assert_eq!(i.restart, d.restart, "{name}: restart");
        // Every variable of the desired state is in the compose file, with the same value or
        // reference (DATABASE_URL carries a password: a reference, never the value).
        for (k, v) in &d.env {
            assert_eq!(
                i.env.get(k).map(|s| s.raw()),
                Some(v.raw()),
                "{name}: env {k}"
            );
        }
        // Documented differences: compose's stack runs Redis in a container (REDIS_URL) and
        // postgres as a service, converge's a Database resource.
        let extra: Vec<&String> = i.env.keys().filter(|k| !d.env.contains_key(*k)).collect();
        assert_eq!(extra, ["REDIS_URL"], "{name}");
        assert_eq!(i.depends_on, ["postgres", "redis"], "{name}");
        assert_eq!(d.depends_on[0], "database/ytempire", "{name}");
        assert_eq!(i.scale, None, "{name}: compose has no autoscaling");
        assert_eq!(i.metrics, None, "{name}: compose has no metrics endpoint");
    }
    // The api: both gate on /health every 10 s, 5 s timeout, 30 attempts; compose runs curl in
    // the container where converge probes HTTP, and blue-green replaces the fixed port 8000.
    let (i, d) = (&imported["api"], &desired["api"]);
    let (ih, dh) = (i.health.as_ref().unwrap(), d.health.as_ref().unwrap());
    assert_eq!(
        (ih.interval, ih.timeout, ih.retries),
        (dh.interval, dh.timeout, dh.retries)
    );
    assert_eq!(
        ih.command.as_deref().unwrap(),
        ["curl", "-f", "http://localhost:8000/health"]
    );
    assert_eq!(dh.http.as_ref().map(|h| h.path.as_str()), Some("/health"));
    assert_eq!(i.ports[0].container, d.ports[0].container);
    assert_eq!(i.ports[0].host.map(|h| h.get()), Some(8000));
    assert_eq!(d.deploy.strategy.as_str(), "blue-green");
    assert_eq!(i.deploy.strategy.as_str(), "recreate");
    assert_eq!(imported["worker"].health, desired["worker"].health);
}

// ---- Applied on the real engine, next to docker-compose ----

struct ComposeProject {
    name: String,
    dir: PathBuf,
}

impl ComposeProject {
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        Command::new("docker-compose")
            .current_dir(&self.dir)
            .args(["-p", &self.name, "-f", "docker-compose.yml"])
            .args(args)
            .envs(env.iter().copied())
            .output()
            .expect("docker-compose")
    }
}

impl Drop for ComposeProject {
    fn drop(&mut self) {
        let _ = self.run(&["down", "-v", "--timeout", "1"], &[("WEB_PORT", "1")]);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn inspect(filter: &[&str]) -> serde_json::Value {
    let mut args = vec!["ps", "-aq"];
    for f in filter {
        args.extend_from_slice(&["--filter", f]);
    }
    let ids = common::docker(&args);
    let id = ids
        .split_whitespace()
        .next()
        .unwrap_or_else(|| panic!("no container for {filter:?}"));
    let json: serde_json::Value = serde_json::from_str(&common::docker(&["inspect", id])).unwrap();
    json[0].clone()
}

fn sorted_env(c: &serde_json::Value) -> Vec<String> {
    let mut env: Vec<String> = c["Config"]["Env"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    env.sort();
    env
}

/// (type, destination, read-write, source for binds or the volume name without its project prefix).
fn mounts(c: &serde_json::Value, project: &str) -> Vec<(String, String, bool, String)> {
    let mut m: Vec<_> = c["Mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let kind = m["Type"].as_str().unwrap_or("").to_string();
            let source = if kind == "bind" {
                m["Source"].as_str().unwrap_or("").to_string()
            } else {
                let name = m["Name"].as_str().unwrap_or("");
                name.strip_prefix(project)
                    .unwrap_or(name)
                    .trim_start_matches(['_', '-'])
                    .to_string()
            };
            (
                kind,
                m["Destination"].as_str().unwrap_or("").to_string(),
                m["RW"].as_bool().unwrap_or(false),
                source,
            )
        })
        .collect();
    m.sort();
    m
}

/// Container port → (host address, host port).
fn port_bindings(c: &serde_json::Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    if let Some(map) = c["HostConfig"]["PortBindings"].as_object() {
        for (port, bindings) in map {
            for b in bindings.as_array().into_iter().flatten() {
                let ip = b["HostIp"].as_str().unwrap_or("").to_string();
                out.push((
                    port.clone(),
                    ip,
                    b["HostPort"].as_str().unwrap_or("").to_string(),
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn an_imported_file_applies_to_containers_like_docker_compose_makes() {
    let dir = fixture("apply");
    let pid = std::process::id();
    let (compose_port, converge_port) = (free_port(), free_port());
    let compose = ComposeProject {
        name: format!("cvtc{pid}"),
        dir: dir.path().to_path_buf(),
    };
    let up = compose.run(
        &["up", "-d"],
        &[
            ("WEB_PORT", &compose_port.to_string()),
            ("API_TOKEN", "t0ken"),
        ],
    );
    assert!(up.status.success(), "docker-compose up: {}", stderr(&up));

    let project = format!("cvt-import-{pid}");
    let _cleanup = Cleanup(project.clone());
    let port = converge_port.to_string();
    let out = converge_in(
        dir.path(),
        &[
            "import",
            "compose",
            "docker-compose.yml",
            "--project",
            &project,
            "--out",
            "out",
        ],
        &[("WEB_PORT", &port)],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(warnings(&out).is_empty(), "{:?}", warnings(&out));
    validate(dir.path());
    let state = tempfile::tempdir().unwrap();
    let apply = converge_in(
        dir.path(),
        &[
            "--state-dir",
            state.path().to_str().unwrap(),
            "apply",
            "out",
            "--auto-approve",
        ],
        &[("API_TOKEN", "t0ken")],
    );
    assert!(
        apply.status.success(),
        "apply:\n{}{}",
        stdout(&apply),
        stderr(&apply)
    );

    for service in ["web", "worker"] {
        let theirs = inspect(&[
            &format!("label=com.docker.compose.project={}", compose.name),
            &format!("label=com.docker.compose.service={service}"),
        ]);
        let ours = inspect(&[
            &format!("label=converge.project={project}"),
            &format!("label=converge.resource=service/{service}"),
        ]);
        let what = |field: &str| format!("{service}: {field}");
        // What compose made, so that the comparison below cannot pass on two empty fields.
        if service == "web" {
            assert_eq!(theirs["HostConfig"]["Memory"], 64 << 20);
            assert_eq!(theirs["HostConfig"]["NanoCpus"], 500_000_000);
            assert_eq!(theirs["Config"]["User"], "1000:1000");
            assert_eq!(theirs["Config"]["Healthcheck"]["Test"][2], "-qO-");
            assert!(sorted_env(&theirs).contains(&"API_TOKEN=t0ken".to_string()));
            assert_eq!(mounts(&theirs, &compose.name).len(), 2);
        } else {
            assert_eq!(theirs["HostConfig"]["Memory"], 32 << 20);
            assert_eq!(sorted_env(&theirs), ["MODE=batch"]);
        }
        assert_eq!(
            ours["Config"]["Image"],
            theirs["Config"]["Image"],
            "{}",
            what("image")
        );
        assert_eq!(sorted_env(&ours), sorted_env(&theirs), "{}", what("env"));
        assert_eq!(
            mounts(&ours, &project),
            mounts(&theirs, &compose.name),
            "{}",
            what("mounts")
        );
        assert_eq!(
            ours["Config"]["User"],
            theirs["Config"]["User"],
            "{}",
            what("user")
        );
        assert_eq!(
            ours["Config"]["WorkingDir"],
            theirs["Config"]["WorkingDir"],
            "{}",
            what("working_dir")
        );
        assert_eq!(
            ours["HostConfig"]["Memory"],
            theirs["HostConfig"]["Memory"],
            "{}",
            what("memory limit")
        );
        assert_eq!(
            ours["HostConfig"]["NanoCpus"],
            theirs["HostConfig"]["NanoCpus"],
            "{}",
            what("cpu limit")
        );
        assert_eq!(
            ours["Config"]["Healthcheck"],
            theirs["Config"]["Healthcheck"],
            "{}",
            what("healthcheck")
        );
        // Ports: the same container port on the same address; the host port differs by design
        // (both run at once).
        let strip = |b: Vec<(String, String, String)>, host: u16| -> Vec<(String, String)> {
            b.into_iter()
                .map(|(p, ip, hp)| {
                    assert_eq!(hp, host.to_string(), "{}", what("host port"));
                    (p, ip)
                })
                .collect()
        };
        let (o, t) = (port_bindings(&ours), port_bindings(&theirs));
        if service == "web" {
            assert_eq!(
                strip(o, converge_port),
                strip(t, compose_port),
                "{}",
                what("ports")
            );
        } else {
            assert!(o.is_empty() && t.is_empty(), "{}", what("ports"));
        }
    }
    assert_eq!(
        common::http_body(converge_port),
        common::http_body(compose_port)
    );
}

struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        common::cleanup(&self.0);
    }
}
