//! Plan pipeline benchmark (issue #2): `load` + `diff` + `plan` + `plan::text::render` on a
//! generated desired state of 1,000 services in 50 YAML files, against a synthetic live state
//! of the same size with drift (replacements, blue-green deploys, creations, scaling, repairs,
//! deletions). Prints min/median/max per stage and in total, and the peak RSS (VmHWM).
//!
//! Peer: a plain PyYAML parse (no typing, no validation) of the same bytes, timed inside
//! `python3` with `time.perf_counter`, when `python3` and PyYAML are available.
//!
//! Run: `cargo bench --bench plan_pipeline` (or `bench/run`). Targets: total < 150 ms, RSS < 100 MB.
//! `CONVERGE_BENCH_PLAN_OUT=FILE` also writes the rendered plan text to FILE, to inspect it.
//! std only: no criterion.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use converge::diff::synthetic::after_apply;
use converge::diff::{diff, ChangeAction, DiffOptions};
use converge::load::{load, SourceTree};
use converge::model::attributes::ReferenceDigest;
use converge::model::live::{LiveContainer, LiveResource, LiveService, LiveState, LiveVolume};
use converge::model::{DesiredState, Kind, ResourceId};
use converge::plan::{self, PlanContext};

const SERVICES: usize = 1_000;
const FILES: usize = 50;
const PER_FILE: usize = SERVICES / FILES;
const DATABASES: usize = 10;
const WARMUP: usize = 3;
const ITERATIONS: usize = 20;
const ENV: Option<&str> = Some("prod");
const TARGET_TOTAL_MS: f64 = 150.0;
const TARGET_RSS_MB: f64 = 100.0;

/// Blue-green services: every 25th (40), each with its own pair of host ports.
fn is_blue_green(i: usize) -> bool {
    i.is_multiple_of(25)
}

/// Services publishing one fixed host port (40), replicas 1, on the web hosts.
fn has_host_port(i: usize) -> bool {
    i % 25 == 5
}

fn service_name(i: usize) -> String {
    format!("svc-{i:04}")
}

fn service_yaml(i: usize, out: &mut String) {
    let name = service_name(i);
    let db = i % DATABASES;
    let _ = writeln!(out, "# Service {i} of {SERVICES}.");
    let _ = writeln!(out, "kind: Service");
    let _ = writeln!(out, "name: {name}");
    let _ = writeln!(out, "image: bench/app-{}:1.{}.{}", i % 37, i % 7, i % 11);
    let _ = writeln!(out, "env:");
    let _ = writeln!(out, "  LOG_FORMAT: json");
    let _ = writeln!(out, "  SERVICE_INDEX: \"{i}\"");
    let _ = writeln!(out, "  DATABASE_URL: \"${{env:DB_{db}_URL}}\"");
    if i.is_multiple_of(4) {
        let _ = writeln!(
            out,
            "command: [/app/bin/{name}, --port, \"8080\", --workers, \"{}\"]",
            1 + i % 8
        );
    }
    let _ = writeln!(
        out,
        "resources: {{cpus: {}.5, memory: {}Mi}}",
        i % 4,
        256 * (1 + i % 8)
    );
    let _ = writeln!(out, "priority: {}", ["critical", "normal", "low"][i % 3]);
    let mut deps = vec![format!("database/db-{db}")];
    if i % 10 == 9 {
        // A chain to an earlier service: dependencies between services, never a cycle.
        deps.push(format!("service/{}", service_name(i - 9)));
    }
    let _ = writeln!(out, "depends_on: [{}]", deps.join(", "));
    if is_blue_green(i) {
        let k = i / 25;
        let _ = writeln!(out, "ports: [{{container: 8080}}]");
        let _ = writeln!(
            out,
            "volumes: [{{source: cache-{}, target: /var/cache/app}}]",
            i % 50
        );
        let _ = writeln!(out, "placement: {{labels: {{role: web}}}}");
        let _ = writeln!(out, "replicas: {}", 1 + i % 2);
        let _ = writeln!(out, "health:");
        let _ = writeln!(out, "  http: {{path: /health, port: 8080}}");
        let _ = writeln!(out, "  interval: 5s");
        let _ = writeln!(out, "  healthy_after: 2");
        let _ = writeln!(out, "deploy:");
        let _ = writeln!(out, "  strategy: blue-green");
        let _ = writeln!(out, "  blue: {{port: {}}}", 20_000 + 2 * k);
        let _ = writeln!(out, "  green: {{port: {}}}", 20_001 + 2 * k);
        let _ = writeln!(out, "  verify_for: 60s");
        let _ = writeln!(out, "  drain: 5m");
    } else if has_host_port(i) {
        let k = i / 25;
        let _ = writeln!(out, "ports: [{{container: 8080, host: {}}}]", 30_000 + k);
        let _ = writeln!(out, "placement: {{labels: {{role: web}}}}");
        let _ = writeln!(out, "replicas: 1");
        let _ = writeln!(out, "health: {{tcp: {{port: 8080}}}}");
        let _ = writeln!(out, "deploy: {{strategy: rolling}}");
    } else {
        let _ = writeln!(
            out,
            "ports: [{{container: 9000}}, {{container: 9001, protocol: udp}}]"
        );
        if i.is_multiple_of(3) {
            let _ = writeln!(
                out,
                "volumes:\n  - {{source: cache-{}, target: /var/cache/app}}\n  - {{source: /srv/shared, target: /srv/shared, read_only: true}}",
                i % 50
            );
        }
        let _ = writeln!(out, "placement: {{labels: {{role: worker}}}}");
        let replicas = 1 + i % 3;
        let _ = writeln!(out, "replicas: {replicas}");
        let _ = writeln!(
            out,
            "deploy: {{strategy: {}}}",
            if i.is_multiple_of(2) {
                "rolling"
            } else {
                "recreate"
            }
        );
        if i.is_multiple_of(7) {
            let _ = writeln!(out, "scale:");
            let _ = writeln!(out, "  min: 1");
            let _ = writeln!(out, "  max: 10");
            let _ = writeln!(out, "  cooldown: 5m");
            let _ = writeln!(out, "  up:");
            let _ = writeln!(out, "    - {{metric: cpu, above: 80, for: 5m}}");
            let _ = writeln!(out, "    - {{metric: queue_depth, above: 50}}");
            let _ = writeln!(out, "  down: [{{metric: cpu, below: 30, for: 10m}}]");
            let _ = writeln!(
                out,
                "  queue_depth: {{database: db-{db}, sql: \"SELECT count(*) FROM jobs WHERE service = '{name}'\"}}"
            );
        }
    }
}

/// The generated desired state, by relative path.
fn generate() -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    files.insert(
        "converge.yaml".to_string(),
        "# Generated by benches/plan_pipeline.rs.\n\
         kind: Project\n\
         name: bench\n\
         environments: [dev, staging, prod]\n\
         hosts:\n\
         \x20 - {name: web-1, labels: {role: web}}\n\
         \x20 - {name: web-2, labels: {role: web}}\n\
         \x20 - {name: worker-1, labels: {role: worker}}\n\
         \x20 - {name: worker-2, labels: {role: worker}}\n\
         \x20 - {name: worker-3, labels: {role: worker}}\n\
         \x20 - {name: worker-4, labels: {role: worker}}\n\
         providers:\n\
         \x20 docker: {}\n\
         \x20 postgres: {url: \"${env:CONVERGE_POSTGRES_URL}\"}\n\
         \x20 s3: {endpoint: \"${env:CONVERGE_S3_ENDPOINT}\", region: eu-west-1}\n\
         sync: {interval: 30s, self_heal: true, prune: true}\n"
            .to_string(),
    );
    files.insert(
        "environments.yaml".to_string(),
        "kind: Environment\n\
         name: dev\n\
         overrides:\n\
         \x20 service/svc-0001: {replicas: 1}\n\
         ---\n\
         kind: Environment\n\
         name: prod\n\
         overrides:\n\
         \x20 service/svc-0001: {replicas: 3}\n\
         \x20 service/svc-0002: {env: {LOG_LEVEL: warn}}\n\
         \x20 service/svc-0100: {deploy: {verify_for: 2m}}\n\
         \x20 database/db-0: {extensions: [pgcrypto, pg_trgm]}\n"
            .to_string(),
    );

    let mut data = String::new();
    for d in 0..DATABASES {
        if d > 0 {
            data.push_str("---\n");
        }
        let _ = writeln!(data, "kind: Database");
        let _ = writeln!(data, "name: db-{d}");
        let _ = writeln!(data, "owner: app_{d}");
        let _ = writeln!(data, "extensions: [pgcrypto]");
        let _ = writeln!(data, "roles:");
        let _ = writeln!(
            data,
            "  - {{name: app_{d}, login: true, password: \"${{env:PG_APP_{d}_PASSWORD}}\"}}"
        );
        let _ = writeln!(data, "  - name: readonly_{d}");
        let _ = writeln!(data, "    login: true");
        let _ = writeln!(data, "    password: \"${{env:PG_RO_{d}_PASSWORD}}\"");
        let _ = writeln!(
            data,
            "    grants: [{{privileges: [SELECT], on: all-tables, schema: public}}]"
        );
        if d == 0 {
            let _ = writeln!(
                data,
                "migrations: {{dir: migrations/db-0, lock_timeout: 5s}}"
            );
        }
        let _ = writeln!(data, "prune: {}", d % 2 == 0);
    }
    data.push_str(
        "---\n\
         kind: Bucket\n\
         name: bench-backups\n\
         versioning: true\n\
         lifecycle:\n\
         \x20 - {prefix: db/, transition: {after: 30d, storage_class: GLACIER}, expire_after: 365d}\n\
         ---\n\
         kind: Backup\n\
         name: db-0\n\
         source: {database: db-0}\n\
         schedule: \"0 * * * *\"\n\
         encryption: {key: \"${env:BACKUP_KEY}\"}\n\
         destinations:\n\
         \x20 - {url: \"file:///var/backups/db-0\", keep: 7d}\n\
         \x20 - {url: \"s3://bench-backups/db/\", keep: 30d}\n\
         rpo: 1h\n",
    );
    files.insert("data/databases.yaml".to_string(), data);
    for (v, name) in ["create_jobs", "add_index", "add_owner"].iter().enumerate() {
        let stem = format!("migrations/db-0/{:04}_{name}", v + 1);
        files.insert(
            format!("{stem}.up.sql"),
            format!("-- {name}\nCREATE TABLE t{v} (id bigint);\n"),
        );
        files.insert(format!("{stem}.down.sql"), format!("DROP TABLE t{v};\n"));
    }

    let mut routing = String::from(
        "kind: Router\n\
         name: public\n\
         template: nginx-site\n\
         path: /etc/nginx/conf.d/bench.conf\n\
         listen: 80\n\
         check: [nginx, -t]\n\
         reload: [nginx, -s, reload]\n\
         routes:\n",
    );
    for i in (0..SERVICES).filter(|&i| is_blue_green(i) || has_host_port(i)) {
        let _ = writeln!(
            routing,
            "  - {{host: {}.bench.example.com, service: {}}}",
            service_name(i),
            service_name(i)
        );
    }
    routing.push_str(
        "---\n\
         kind: ConfigFile\n\
         name: prometheus\n\
         template: prometheus\n\
         path: /etc/prometheus/prometheus.yml\n\
         reload: {http: {method: POST, url: \"http://127.0.0.1:9090/-/reload\"}}\n",
    );
    files.insert("routing.yaml".to_string(), routing);

    for f in 0..FILES {
        let mut text = String::new();
        for j in 0..PER_FILE {
            if j > 0 {
                text.push_str("---\n");
            }
            service_yaml(f * PER_FILE + j, &mut text);
        }
        files.insert(format!("services/group-{f:02}.yaml"), text);
    }
    files
}

/// Live state as a full apply leaves it, then drift: ~10% stale specs, missing and extra resources.
fn drifted_live(desired: &DesiredState, opts: &DiffOptions) -> LiveState {
    let mut live = after_apply(desired, &LiveState::default(), opts);
    assert!(
        diff(desired, &live, opts).changes.is_empty(),
        "the synthetic live state should match the desired state before drift"
    );
    let svc = |i: usize| ResourceId::new(Kind::Service, service_name(i));
    for i in 0..SERVICES {
        let Some(ls) = live
            .resources
            .get_mut(&svc(i))
            .and_then(|r| r.service.as_mut())
        else {
            continue;
        };
        if i % 10 == 5 {
            // A stale spec: replace (recreate/rolling) or a blue-green deploy to the other color.
            for c in &mut ls.containers {
                c.spec_hash = format!("stale-{i}");
            }
        } else if i % 100 == 11 {
            // One replica short (or none left): scale (or start).
            ls.containers.pop();
        } else if i % 100 == 13 {
            ls.containers[0].running = false;
        }
    }
    for i in (0..SERVICES).filter(|i| i % 100 == 7) {
        live.resources.remove(&svc(i));
    }
    live.resources
        .remove(&ResourceId::new(Kind::Database, "db-9"));
    if let Some(db0) = live
        .resources
        .get_mut(&ResourceId::new(Kind::Database, "db-0"))
    {
        db0.applied_migrations.remove(&3);
    }
    live.volumes.remove("cache-7");
    live.volumes
        .insert("old-cache".into(), LiveVolume { prune: true });
    for n in 0..5 {
        let name = format!("retired-{n}");
        live.resources.insert(
            ResourceId::new(Kind::Service, &name),
            LiveResource {
                service: Some(LiveService {
                    containers: vec![LiveContainer {
                        name: format!("bench-{name}-1"),
                        color: None,
                        replica: 0,
                        spec_hash: "old".into(),
                        running: true,
                        revision: None,
                        image_digest: None,
                    }],
                    active_color: None,
                    image_now: None,
                }),
                ..LiveResource::default()
            },
        );
    }
    live
}

#[derive(Default)]
struct Samples(Vec<Duration>);

impl Samples {
    fn ms(&self) -> (f64, f64, f64) {
        let mut v: Vec<f64> = self.0.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        (v[0], median, v[n - 1])
    }
}

fn row(label: &str, (min, median, max): (f64, f64, f64)) {
    println!("  {label:<26} {min:>9.2} {median:>9.2} {max:>9.2}");
}

fn proc_status_mb(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Resets VmHWM to the current RSS (Linux `clear_refs` 5), so the next peak is the loop's own.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn write_tree(files: &BTreeMap<String, String>) -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("converge-plan-bench-{}", std::process::id()));
    for (rel, text) in files {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().expect("a file has a parent"))?;
        std::fs::write(path, text)?;
    }
    Ok(dir)
}

const PEER: &str = r#"
import os, statistics, sys, time
import yaml
root, warmup, iters = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
paths = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith(".yaml"))
data = [open(p, "rb").read() for p in paths]
loaders = [("SafeLoader", yaml.SafeLoader)]
if getattr(yaml, "CSafeLoader", None) is not None:
    loaders.append(("CSafeLoader", yaml.CSafeLoader))
print("info python %s, PyYAML %s, %d files, %d bytes" % (sys.version.split()[0], yaml.__version__, len(data), sum(map(len, data))))
for name, loader in loaders:
    times = []
    for i in range(warmup + iters):
        t = time.perf_counter()
        docs = 0
        for b in data:
            docs += sum(1 for _ in yaml.load_all(b, Loader=loader))
        if i >= warmup:
            times.append((time.perf_counter() - t) * 1e3)
    print("peer %s %d %.3f %.3f %.3f" % (name, docs, min(times), statistics.median(times), max(times)))
"#;

/// One PyYAML loader's result: documents parsed per run and min/median/max in ms.
struct PeerRow {
    loader: String,
    documents: usize,
    ms: (f64, f64, f64),
}

/// Runs the PyYAML peer on the files in `dir`: an info line and one row per loader.
fn python_peer(dir: &Path) -> Result<(String, Vec<PeerRow>), String> {
    let out = Command::new("python3")
        .arg("-c")
        .arg(PEER)
        .arg(dir)
        .arg(WARMUP.to_string())
        .arg(ITERATIONS.to_string())
        .output()
        .map_err(|e| format!("cannot run python3: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "python3 failed: {}",
            err.lines().last().unwrap_or("").trim()
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut info = String::new();
    let mut rows = Vec::new();
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("info ") {
            info = rest.to_string();
        } else if let Some(rest) = line.strip_prefix("peer ") {
            let f: Vec<&str> = rest.split_whitespace().collect();
            let num = |i: usize| {
                f.get(i)
                    .and_then(|x| x.parse::<f64>().ok())
                    .unwrap_or(f64::NAN)
            };
            rows.push(PeerRow {
                loader: f[0].to_string(),
                documents: f.get(1).and_then(|x| x.parse().ok()).unwrap_or(0),
                ms: (num(2), num(3), num(4)),
            });
        }
    }
    Ok((info, rows))
}

fn main() {
    let files = generate();
    let bytes: usize = files.values().map(String::len).sum();
    let tree = files.iter().fold(SourceTree::new("bench"), |t, (p, text)| {
        t.with_file(p, text.as_bytes())
    });
    let opts = DiffOptions {
        host: None,
        secrets: &ReferenceDigest,
        // Every kind, as offline: all of them are planned.
        kinds: None,
        retry_failed: false,
    };
    let desired = match load(&tree, ENV) {
        Ok(d) => d,
        Err(diags) => panic!("the generated desired state does not validate:\n{diags}"),
    };
    let live = drifted_live(&desired, &opts);
    let containers: usize = live
        .resources
        .values()
        .filter_map(|r| r.service.as_ref())
        .map(|s| s.containers.len())
        .sum();

    println!("converge plan pipeline benchmark (issue #2)");
    println!(
        "  desired: {} services, {} resources in {} files ({} YAML, {:.1} KiB), env {}",
        desired.services().count(),
        desired.resources.len(),
        files.len(),
        tree.yaml_files().count(),
        bytes as f64 / 1024.0,
        ENV.unwrap_or("(none)")
    );
    println!(
        "  live:    {} resources, {} containers, {} volumes, {} files",
        live.resources.len(),
        containers,
        live.volumes.len(),
        live.files.len()
    );
    let setup_rss = proc_status_mb("VmRSS:").unwrap_or(f64::NAN);
    let setup_hwm = proc_status_mb("VmHWM:").unwrap_or(f64::NAN);
    drop(desired);
    let loop_peak_only = reset_peak_rss();

    const STAGES: [&str; 6] = [
        "load (parse+type+validate)",
        "diff",
        "live fingerprint",
        "plan",
        "render (text)",
        "total",
    ];
    let mut stages: Vec<Samples> = STAGES.iter().map(|_| Samples::default()).collect();
    let mut last = None;
    for i in 0..WARMUP + ITERATIONS {
        let t0 = Instant::now();
        let desired = load(&tree, ENV).expect("validated above");
        let t1 = Instant::now();
        let d = diff(&desired, &live, &opts);
        let t2 = Instant::now();
        let fingerprint = live.fingerprint();
        let t3 = Instant::now();
        let p = plan::plan(
            &desired,
            d,
            PlanContext {
                revision: Some("bench"),
                host: None,
                fingerprint,
                pending: live.pending.clone(),
            },
        );
        let t4 = Instant::now();
        let text = plan::text::render(&p);
        let t5 = Instant::now();
        if i >= WARMUP {
            for (s, d) in
                stages
                    .iter_mut()
                    .zip([t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t5 - t0])
            {
                s.0.push(d);
            }
        }
        last = Some((p, text));
    }
    let loop_hwm = proc_status_mb("VmHWM:").unwrap_or(f64::NAN);
    let (p, text) = last.expect("at least one iteration");

    let mut by_action: BTreeMap<&str, usize> = BTreeMap::new();
    for c in &p.changes {
        let a = match c.action {
            ChangeAction::Create => "create",
            ChangeAction::Update => "update",
            ChangeAction::Replace => "replace",
            ChangeAction::Delete => "delete",
        };
        *by_action.entry(a).or_default() += 1;
    }
    let s = p.summary();
    println!(
        "  plan:    {} changes ({}), {} steps, {} notes; {} to add, {} to change, {} to destroy",
        p.changes.len(),
        by_action
            .iter()
            .map(|(a, n)| format!("{n} {a}"))
            .collect::<Vec<_>>()
            .join(", "),
        p.steps.len(),
        p.notes.len(),
        s.add,
        s.change,
        s.destroy
    );
    println!(
        "  text:    {} lines, {:.1} KiB",
        text.lines().count(),
        text.len() as f64 / 1024.0
    );
    if let Some(out) = std::env::var_os("CONVERGE_BENCH_PLAN_OUT") {
        std::fs::write(&out, &text).expect("write the plan text");
        println!("  (plan text written to {})", Path::new(&out).display());
    }
    println!();
    println!("timings over {ITERATIONS} iterations after {WARMUP} warm-up runs (ms):");
    println!(
        "  {:<26} {:>9} {:>9} {:>9}",
        "stage", "min", "median", "max"
    );
    for (label, samples) in STAGES.iter().zip(&stages) {
        row(label, samples.ms());
    }

    // Only the YAML parse of load, for an apples-to-apples comparison with the peer.
    let mut t_parse = Samples::default();
    let texts: Vec<(Arc<str>, &str)> = tree
        .yaml_files()
        .map(|(p, b)| (Arc::from(p), std::str::from_utf8(b).expect("UTF-8")))
        .collect();
    let mut documents = 0;
    for i in 0..WARMUP + ITERATIONS {
        let t = Instant::now();
        documents = 0;
        for (file, text) in &texts {
            documents += converge::load::yaml::parse_documents(file, text)
                .expect("parses")
                .len();
        }
        if i >= WARMUP {
            t_parse.0.push(t.elapsed());
        }
    }
    println!();
    println!(
        "YAML parse only, same {} files ({documents} documents), no typing or validation (ms):",
        texts.len()
    );
    println!(
        "  {:<26} {:>9} {:>9} {:>9}",
        "parser", "min", "median", "max"
    );
    row("converge (yaml-rust2)", t_parse.ms());
    match write_tree(&files) {
        Err(e) => println!("  peer skipped: cannot write the files to a temp dir: {e}"),
        Ok(dir) => {
            match python_peer(&dir) {
                Ok((info, rows)) => {
                    for r in rows {
                        row(&format!("PyYAML {}", r.loader), r.ms);
                        if r.documents != documents {
                            println!(
                                "    (PyYAML saw {} documents, converge {documents})",
                                r.documents
                            );
                        }
                    }
                    println!("  peer: {info}; timed in python with time.perf_counter");
                }
                Err(e) => {
                    println!("  peer skipped: {e} (needs python3 with PyYAML: pip install pyyaml)")
                }
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    let total_median = stages[5].ms().1;
    let peak = proc_status_mb("VmHWM:").unwrap_or(f64::NAN);
    println!();
    println!("memory:");
    println!("  RSS after setup (desired + live built):  {setup_rss:.1} MB (peak so far {setup_hwm:.1} MB)");
    if loop_peak_only {
        println!("  peak RSS during the timed pipeline loop: {loop_hwm:.1} MB");
    }
    println!("  peak RSS of the process (VmHWM):         {peak:.1} MB");
    println!();
    let verdict = |ok: bool| if ok { "ok" } else { "MISSED" };
    println!(
        "targets: total median {total_median:.1} ms < {TARGET_TOTAL_MS} ms: {}; peak RSS {peak:.1} MB < {TARGET_RSS_MB} MB: {}",
        verdict(total_median < TARGET_TOTAL_MS),
        verdict(peak < TARGET_RSS_MB)
    );
}
