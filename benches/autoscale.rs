//! Autoscaler benchmark (issue #9): the wall time of one evaluation (`Autoscaler::sample` +
//! `Autoscaler::decide`) over 100 scaled services, each with one running container and a
//! `queue_depth` query, against the real Docker engine and a real PostgreSQL; and the process's
//! CPU between evaluations.
//!
//! Needs what `bench/autoscale` sets up (containers applied by `converge apply`, a database with
//! a `video_queue` table), and these variables:
//!   CVB_DIR           the desired-state directory (100 scaled services)
//!   CVB_PROJECT       the project name (its containers are observed)
//!   CVB_PG_URL        the PostgreSQL URL of `providers.postgres` (resolved)
//!   CVB_ROUNDS        evaluations (default 20), CVB_GAP_MS idle after each (default 2000)
//!   CVB_IDLE_SECS     a sleep with no work at all, for its CPU (default 10)
//!   CVB_PEER_ROUNDS   rounds of each peer (default 5)
//! The first evaluation has no CPU rate yet (CPU is a rate between two of our own readings), so
//! it is reported on its own; the others give min/median/p90/max.
//!
//! Process CPU is utime+stime of /proc/self/stat (whole process, exited threads included; clock
//! ticks) and, finer, the sum of /proc/self/task/*/schedstat (ns on CPU of the live threads).
//!
//! Peers, same run, after converge's rounds, over the same 100 containers and queries:
//!   - `docker stats --no-stream --format ...` of the 100 containers (one CLI call);
//!   - one `psql` running the 100 queue queries;
//!   - 100 `psql -c` calls, one per service (what a per-service shell loop does).
//!
//! Target: one evaluation under 1 s wall; negligible CPU between evaluations.
//! Run with `bench/autoscale` (it sets up and cleans up); std + the crate's own deps only.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use converge::engine::autoscale::Autoscaler;
use converge::load::load_dir;
use converge::model::{Kind, ResourceId};
use converge::providers::docker::Docker;
use converge::providers::postgres::Postgres;
use converge::scale::Autoscaled;

const TARGET_MS: f64 = 1000.0;

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run bench/autoscale"))
}

fn var_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64
}

/// utime + stime of the whole process, in ms (clock ticks, usually 10 ms each).
fn cpu_ticks_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the `(comm)`; utime and stime are fields 14 and 15 of the whole line.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    let hz = 100.0; // USER_HZ on Linux
    ticks as f64 * 1000.0 / hz
}

/// Nanoseconds on CPU of the live threads (first field of each task's schedstat), in ms.
fn cpu_sched_ms() -> f64 {
    let mut ns: u64 = 0;
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for t in dir.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) {
                ns += s
                    .split_whitespace()
                    .next()
                    .and_then(|x| x.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    ns as f64 / 1e6
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}

fn stats(v: &[f64]) -> (f64, f64, f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let pick = |q: f64| s[((q * (s.len() - 1) as f64).round() as usize).min(s.len() - 1)];
    let median = if s.len() % 2 == 1 {
        s[s.len() / 2]
    } else {
        (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2.0
    };
    (s[0], median, pick(0.9), s[s.len() - 1])
}

fn row(label: &str, v: &[f64]) {
    if v.is_empty() {
        println!("  {label:<52} (no samples)");
        return;
    }
    let (min, med, p90, max) = stats(v);
    println!("  {label:<52} {min:>8.1} {med:>8.1} {p90:>8.1} {max:>8.1}");
}

/// Wall ms of one command; panics with its stderr when it fails.
fn timed(cmd: &mut Command) -> (f64, String) {
    let t = Instant::now();
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .expect("run a peer command");
    let ms = t.elapsed().as_secs_f64() * 1e3;
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (ms, String::from_utf8_lossy(&out.stdout).into_owned())
}

fn main() {
    let dir = PathBuf::from(var("CVB_DIR"));
    let project = var("CVB_PROJECT");
    let pg_url = var("CVB_PG_URL");
    let rounds = var_or("CVB_ROUNDS", 20).max(2) as usize;
    let gap = Duration::from_millis(var_or("CVB_GAP_MS", 2000));
    let idle = Duration::from_secs(var_or("CVB_IDLE_SECS", 10));
    let peer_rounds = var_or("CVB_PEER_ROUNDS", 5) as usize;

    let desired = match load_dir(&dir, None) {
        Ok(d) => d,
        Err(e) => panic!("the desired state does not load:\n{e}"),
    };
    let scaled: Vec<String> = desired
        .services()
        .filter(|s| s.scale.is_some())
        .map(|s| s.name.to_string())
        .collect();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");

    let docker = Docker::connect(None, &project).expect("connect to Docker");
    let t = Instant::now();
    let mut live = converge::model::live::LiveState::default();
    rt.block_on(docker.observe(&mut live)).expect("observe");
    let observe_ms = t.elapsed().as_secs_f64() * 1e3;
    let containers: Vec<String> = scaled
        .iter()
        .filter_map(|n| live.service(&ResourceId::new(Kind::Service, n.as_str())))
        .flat_map(|s| s.containers.iter().filter(|c| c.running))
        .map(|c| c.name.clone())
        .collect();
    let t = Instant::now();
    let postgres = rt
        .block_on(Postgres::connect(&pg_url))
        .expect("connect to PostgreSQL");
    let pg_connect_ms = t.elapsed().as_secs_f64() * 1e3;

    println!("converge autoscaler benchmark (issue #9)");
    println!(
        "  desired: {} services, {} scaled; live: {} running containers of project {project}",
        desired.services().count(),
        scaled.len(),
        containers.len()
    );
    println!(
        "  setup (not timed below): observe {observe_ms:.1} ms, PostgreSQL admin connection {pg_connect_ms:.1} ms"
    );
    println!(
        "  {rounds} evaluations (sample + decide), {} ms idle between the end of one and the start of the next; tokio multi-thread runtime on {} CPUs",
        gap.as_millis(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );

    let mut autoscaler = Autoscaler::default();
    let chosen: BTreeMap<String, Autoscaled> = BTreeMap::new();
    let mut wall = Vec::new();
    let mut sample_ms = Vec::new();
    let mut decide_ms = Vec::new();
    let mut cpu_eval = Vec::new();
    let mut gap_cpu_ticks = 0.0;
    let mut gap_cpu_sched = 0.0;
    let mut gap_wall = 0.0;
    let mut last_decisions = Vec::new();
    let mut rounds_seen = Vec::new();
    let mut prev_end: Option<(Instant, f64, f64)> = None;
    for i in 0..rounds {
        if i > 0 {
            // The gap runs from the end of one evaluation to the start of the next, so it is
            // a real idle period even when an evaluation takes longer than the gap.
            std::thread::sleep(gap);
        }
        let c0 = cpu_ticks_ms();
        let s0 = cpu_sched_ms();
        let t0 = Instant::now();
        if let Some((end, ct, cs)) = prev_end {
            // The gap since the previous evaluation ended: nothing of ours runs in it.
            gap_wall += (t0 - end).as_secs_f64() * 1e3;
            gap_cpu_ticks += c0 - ct;
            gap_cpu_sched += s0 - cs;
        }
        let now = now_ms();
        let round =
            rt.block_on(autoscaler.sample(&desired, &live, Some(&docker), Some(&postgres), now));
        let t1 = Instant::now();
        let decisions = autoscaler.decide(&desired, &chosen, now);
        let t2 = Instant::now();
        let c1 = cpu_ticks_ms();
        let s1 = cpu_sched_ms();
        wall.push((t2 - t0).as_secs_f64() * 1e3);
        sample_ms.push((t1 - t0).as_secs_f64() * 1e3);
        decide_ms.push((t2 - t1).as_secs_f64() * 1e3);
        cpu_eval.push((c1 - c0, s1 - s0));
        rounds_seen.push((round, decisions.len()));
        last_decisions = decisions;
        prev_end = Some((t2, c1, s1));
    }

    // A sleep with no work at all, after the last evaluation (connections still open).
    let threads_idle = threads();
    let c0 = cpu_ticks_ms();
    let s0 = cpu_sched_ms();
    std::thread::sleep(idle);
    let idle_ticks = cpu_ticks_ms() - c0;
    let idle_sched = cpu_sched_ms() - s0;

    println!();
    for (i, (r, d)) in rounds_seen.iter().enumerate() {
        if i == 0 || i == rounds - 1 || r.errors > 0 {
            println!(
                "  round {:>2}: {} services, {} containers read, {} queries, {} errors, {d} decisions",
                i + 1,
                r.services,
                r.containers,
                r.queries,
                r.errors
            );
        }
    }
    let mut by_reason: BTreeMap<String, usize> = BTreeMap::new();
    for (_, d) in &last_decisions {
        let metric = d.reason.split_whitespace().next().unwrap_or("").to_string();
        *by_reason
            .entry(format!("{}→{} on {metric}", d.from, d.to))
            .or_default() += 1;
    }
    println!(
        "  decisions of the last round: {} ({})",
        last_decisions.len(),
        by_reason
            .iter()
            .map(|(k, n)| format!("{n}× {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some((name, d)) = last_decisions.first() {
        println!("    e.g. {name}: {} → {}, {}", d.from, d.to, d.reason);
    }
    println!("    (decided with no journal, so no cooldown; nothing is applied by this benchmark)");

    println!();
    println!(
        "  {:<52} {:>8} {:>8} {:>8} {:>8}",
        "converge (ms)", "min", "median", "p90", "max"
    );
    println!(
        "  first evaluation (no CPU rate yet): {:.1} ms (sample {:.1}, decide {:.3})",
        wall[0], sample_ms[0], decide_ms[0]
    );
    row(
        &format!("evaluation, sample + decide (rounds 2..{rounds})"),
        &wall[1..],
    );
    row(
        "  sample (Docker stats ×100 + 100 queries)",
        &sample_ms[1..],
    );
    row("  decide", &decide_ms[1..]);
    let ev_ticks: Vec<f64> = cpu_eval[1..].iter().map(|x| x.0).collect();
    let ev_sched: Vec<f64> = cpu_eval[1..].iter().map(|x| x.1).collect();
    row("process CPU per evaluation, schedstat (ms)", &ev_sched);
    row(
        "process CPU per evaluation, /proc/self/stat (ms)",
        &ev_ticks,
    );

    println!();
    println!("  process CPU between evaluations:");
    println!(
        "    the {} gaps ({:.1} s in all): {:.1} ms by /proc/self/stat, {:.2} ms by schedstat = {:.4}% of one core",
        rounds - 1,
        gap_wall / 1e3,
        gap_cpu_ticks,
        gap_cpu_sched,
        gap_cpu_sched * 100.0 / gap_wall.max(1.0)
    );
    println!(
        "    a {} s sleep with no work ({threads_idle} threads, connections open): {:.1} ms by /proc/self/stat, {:.2} ms by schedstat = {:.4}% of one core",
        idle.as_secs(),
        idle_ticks,
        idle_sched,
        idle_sched * 100.0 / (idle.as_secs_f64() * 1e3)
    );
    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|x| x.parse::<f64>().ok())
            })
        })
        .unwrap_or(f64::NAN);
    println!(
        "    peak RSS of the benchmark process (VmHWM): {:.1} MB",
        rss / 1024.0
    );

    // Peers: what a shell-script autoscaler runs for the same services.
    println!();
    println!(
        "  {:<52} {:>8} {:>8} {:>8} {:>8}",
        "peer, same containers and queries (ms)", "min", "median", "p90", "max"
    );
    let queries: Vec<String> = desired
        .services()
        .filter_map(|s| s.scale.as_ref()?.queue_depth.as_ref())
        .map(|q| q.sql.clone())
        .collect();
    let db = desired
        .services()
        .filter_map(|s| s.scale.as_ref()?.queue_depth.as_ref())
        .map(|q| q.database.clone())
        .next()
        .unwrap_or_default();
    let db_url = match pg_url.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{db}"),
        None => pg_url.clone(),
    };
    let mut stats_ms = Vec::new();
    let mut psql_one = Vec::new();
    let mut psql_each = Vec::new();
    let mut shown = String::new();
    let script: String = queries.iter().map(|q| format!("{q};\n")).collect();
    let script_path =
        std::env::temp_dir().join(format!("cvb-autoscale-{}.sql", std::process::id()));
    std::fs::write(&script_path, &script).expect("write the peer's SQL");
    for _ in 0..peer_rounds {
        let (ms, out) = timed(
            Command::new("docker")
                .args([
                    "stats",
                    "--no-stream",
                    "--format",
                    "{{.Name}} {{.CPUPerc}} {{.MemPerc}}",
                ])
                .args(&containers),
        );
        stats_ms.push(ms);
        shown = out;
        let (ms, out) = timed(Command::new("psql").args([
            db_url.as_str(),
            "-XAtq",
            "-f",
            script_path.to_str().unwrap(),
        ]));
        assert_eq!(out.lines().count(), queries.len(), "one value per query");
        psql_one.push(ms);
        let t = Instant::now();
        for q in &queries {
            timed(Command::new("psql").args([db_url.as_str(), "-XAtqc", q.as_str()]));
        }
        psql_each.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let _ = std::fs::remove_file(&script_path);
    row(
        &format!("docker stats --no-stream, {} containers", containers.len()),
        &stats_ms,
    );
    row(
        &format!("one psql running the {} queries", queries.len()),
        &psql_one,
    );
    row(
        &format!("{} psql -c calls, one per service", queries.len()),
        &psql_each,
    );
    let both: Vec<f64> = stats_ms.iter().zip(&psql_one).map(|(a, b)| a + b).collect();
    row("docker stats + one psql (sequential, as a script)", &both);
    println!(
        "    ({} rounds each; docker stats printed {} lines, e.g. `{}`)",
        peer_rounds,
        shown.lines().count(),
        shown.lines().next().unwrap_or("")
    );

    let (_, med, p90, max) = stats(&wall[1..]);
    println!();
    println!(
        "target: evaluation median {med:.1} ms, p90 {p90:.1}, max {max:.1} (first {:.1}) < {TARGET_MS} ms: {}; CPU between evaluations {:.4}% of one core",
        wall[0],
        if max.max(wall[0]) < TARGET_MS { "ok" } else { "MISSED" },
        gap_cpu_sched * 100.0 / gap_wall.max(1.0)
    );
}
