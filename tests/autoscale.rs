//! The autoscaler and budgets in the real agent, against the real Docker engine and a real
//! PostgreSQL holding `video_queue` and `video_costs`: a worker scales up as the queue grows and
//! down as it drains, one replica at a time with its cooldown; a budget past its hard limit pauses
//! a `low` service and never a `critical` one, and raising the budget in Git brings it back.

mod common;

use std::process::Command;

use common::{pg_url, psql, wait_until, Agent, Project};

/// A project on PostgreSQL whose database holds the handbook's two tables; dropped afterwards.
struct Stack {
    p: Project,
    db: String,
}

impl Stack {
    fn new(test: &str) -> Stack {
        let db = format!("cvt_{test}_{}", std::process::id());
        let p = Project::new(test, "");
        std::fs::create_dir_all(p.path().join("migrations")).unwrap();
        std::fs::write(
            p.path().join("migrations/0001_tables.up.sql"),
            "CREATE TABLE video_queue (id serial PRIMARY KEY, status text NOT NULL DEFAULT 'pending');\n\
             CREATE TABLE video_costs (id serial PRIMARY KEY, total numeric NOT NULL, created_at timestamptz NOT NULL DEFAULT now());\n",
        )
        .unwrap();
        Stack { p, db }
    }

    fn write(&self, body: &str) {
        let project = format!(
            "kind: Project\nname: {}\nhosts: [{{name: local}}]\nproviders: {{postgres: {{url: \"{}\"}}}}\nsync: {{interval: 30s, prune: true}}\n---\nkind: Database\nname: {}\nmigrations: {{dir: migrations}}\n---\n",
            self.p.name,
            pg_url(),
            self.db
        );
        let path = self.p.path().join("converge.yaml");
        let tmp = self.p.path().join(".converge.yaml.tmp");
        std::fs::write(&tmp, project + body).unwrap();
        std::fs::rename(tmp, path).unwrap();
    }

    fn sql(&self, sql: &str) -> String {
        psql(&self.db, sql)
    }

    fn running(&self, service: &str) -> usize {
        self.p
            .containers()
            .iter()
            .filter(|c| c.contains(&format!("-{service}-")) && c.ends_with(" running"))
            .count()
    }

    fn journal_events(&self, event: &str) -> Vec<serde_json::Value> {
        self.p
            .journal()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| e["event"] == event)
            .collect()
    }

    fn agent(&self, port: u16) -> Agent {
        Agent::start(
            self.p.state.path(),
            port,
            &[
                "--source",
                self.p.path().to_str().unwrap(),
                "--scale-interval",
                "1s",
                "--budget-interval",
                "1s",
            ],
            &[],
        )
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let Ok(url) = std::env::var("CONVERGE_TEST_PG_URL") else {
            return;
        };
        let _ = Command::new("psql")
            .args([
                &url,
                "-qc",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db),
            ])
            .output();
    }
}

fn worker(db: &str) -> String {
    format!(
        "kind: Service\nname: worker\nimage: converge-test/worker:v1\nreplicas: 1\nresources: {{cpus: 0.1, memory: 32Mi}}\n\
         scale:\n  min: 1\n  max: 3\n  cooldown: 5s\n  up: [{{metric: queue_depth, above: 5}}]\n  down: [{{metric: queue_depth, below: 1}}]\n  \
         queue_depth: {{database: {db}, sql: \"SELECT count(*) FROM video_queue WHERE status = 'pending'\"}}\n"
    )
}

#[test]
fn a_worker_scales_up_as_the_queue_grows_and_down_as_it_drains_one_replica_per_cooldown() {
    let s = Stack::new("scaleq");
    s.write(&worker(&s.db));
    let agent = s.agent(19541);
    wait_until(60, "the worker and the tables", || {
        s.running("worker") == 1
            && psql(
                &s.db,
                "SELECT count(*) FROM pg_tables WHERE tablename = 'video_queue'",
            ) == "1"
    });

    s.sql("INSERT INTO video_queue (status) SELECT 'pending' FROM generate_series(1, 40)");
    wait_until(30, "three workers", || s.running("worker") == 3);
    let ups = s.journal_events("scaled");
    assert_eq!(ups.len(), 2, "one replica at a time: {ups:?}");
    assert_eq!(
        (
            ups[0]["data"]["from"].as_u64(),
            ups[0]["data"]["to"].as_u64()
        ),
        (Some(1), Some(2))
    );
    assert_eq!(
        (
            ups[1]["data"]["from"].as_u64(),
            ups[1]["data"]["to"].as_u64()
        ),
        (Some(2), Some(3))
    );
    assert_eq!(ups[0]["detail"], "queue_depth 40 > 5");
    assert_eq!(ups[0]["data"]["metrics"]["queue_depth"], 40.0);
    let gap = ups[1]["ts"].as_u64().unwrap() - ups[0]["ts"].as_u64().unwrap();
    assert!(
        gap >= 4,
        "the second change waited for the 5s cooldown: {gap}s"
    );

    // Never above max, however long the queue stays long.
    std::thread::sleep(std::time::Duration::from_secs(7));
    assert_eq!(s.running("worker"), 3);
    assert_eq!(s.journal_events("scaled").len(), 2);

    // Scaling is not drift: the agent does not put the declared `replicas: 1` back.
    let status = agent.status();
    let w = &status["resources"]["service/worker"];
    assert_eq!(w["desired"], 1, "{status}");
    assert_eq!(w["autoscaled"], 3, "{status}");
    assert_eq!(w["running"], 3, "{status}");
    assert!(
        w["last_scaling"]
            .as_str()
            .unwrap()
            .starts_with("2 → 3: queue_depth 40 > 5"),
        "{status}"
    );
    assert_eq!(status["drift"], serde_json::json!([]), "{status}");
    let metrics = agent.get("/metrics").1;
    assert!(
        metrics.contains("converge_service_autoscaled_replicas{service=\"worker\"} 3"),
        "{metrics}"
    );
    assert!(metrics.contains("converge_drift_total 0"), "{metrics}");

    s.sql("UPDATE video_queue SET status = 'done'");
    wait_until(40, "back to one worker", || s.running("worker") == 1);
    let all = s.journal_events("scaled");
    assert_eq!(all.len(), 4, "3 → 2 → 1: {all:?}");
    assert_eq!(all[3]["data"]["to"], 1);
    assert_eq!(all[2]["detail"], "queue_depth 0 < 1");

    // The CLI sees the same: declared 1, autoscaled 1 (no override), running 1.
    drop(agent);
    let out = s.p.converge(&["status", "DIR"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("worker"), "{text}");
    assert!(text.contains("last: 2 → 1: queue_depth 0 < 1"), "{text}");
}

fn budget(amount: u32, db: &str) -> String {
    format!(
        "kind: Budget\nname: monthly\namount: {amount}\nrates: {{cpu_hour: 0.05, memory_gb_hour: 0.01}}\n\
         spend: {{database: {db}, sql: \"SELECT coalesce(sum(total), 0) FROM video_costs WHERE created_at >= date_trunc('month', now())\"}}\n\
         alerts: [0.5, 1.0]\nsoft_limit: {{at: 0.9, scale_to_min: [low]}}\nhard_limit: {{at: 1.1, pause: [low, normal]}}\n"
    )
}

const SERVICES: &str = "kind: Service\nname: batch\nimage: converge-test/worker:v1\npriority: low\nresources: {cpus: 0.1}\n---\n\
kind: Service\nname: core\nimage: converge-test/worker:v1\npriority: critical\nresources: {cpus: 0.1}\n";

#[test]
fn a_budget_past_its_hard_limit_pauses_low_services_never_critical_ones_until_it_is_raised() {
    let s = Stack::new("budget");
    s.write(&format!("{}---\n{SERVICES}", budget(100, &s.db)));
    let agent = s.agent(19542);
    wait_until(60, "both services and the tables", || {
        s.running("batch") == 1
            && s.running("core") == 1
            && psql(
                &s.db,
                "SELECT count(*) FROM pg_tables WHERE tablename = 'video_costs'",
            ) == "1"
    });

    s.sql("INSERT INTO video_costs (total) VALUES (60), (52)");
    wait_until(30, "batch paused", || s.running("batch") == 0);
    assert_eq!(s.running("core"), 1, "critical services are never paused");
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(s.running("core"), 1);
    assert_eq!(
        s.running("batch"),
        0,
        "not repaired back: a pause is not drift"
    );

    let limits = s.journal_events("budget-limit");
    assert_eq!(limits.len(), 1, "{limits:?}");
    assert_eq!(limits[0]["data"]["limit"], "hard");
    assert!(
        limits[0]["detail"]
            .as_str()
            .unwrap()
            .contains("budget/monthly at 112% of $100.00"),
        "{limits:?}"
    );
    let alerts: Vec<String> = s
        .journal_events("budget-alert")
        .iter()
        .map(|e| e["data"]["threshold"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(alerts, vec!["0.5", "1"], "each threshold once per period");

    let status = agent.status();
    let b = &status["budgets"][0];
    assert_eq!(b["budget"], "budget/monthly", "{status}");
    assert_eq!(b["limit"], "hard", "{status}");
    assert!(b["spend"].as_f64().unwrap() >= 112.0, "{status}");
    assert_eq!(
        status["resources"]["service/batch"]["scaling"], "paused by budget/monthly at 112% of $100",
        "{status}"
    );
    let metrics = agent.get("/metrics").1;
    assert!(
        metrics.contains("converge_budget_limit_active{budget=\"monthly\",limit=\"hard\"} 1"),
        "{metrics}"
    );

    let plan = s.p.converge(&["plan", "DIR"]);
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(
        text.contains("service/batch: not running (paused by budget/monthly at 112% of $100)"),
        "{text}"
    );

    // Raising the budget in Git lifts the limit: batch runs again.
    s.write(&format!("{}---\n{SERVICES}", budget(1000, &s.db)));
    wait_until(40, "batch back", || s.running("batch") == 1);
    assert_eq!(s.running("core"), 1);
    wait_until(10, "the limit lifted in the journal", || {
        s.journal_events("budget-limit").len() == 2
    });
    assert_eq!(
        s.journal_events("budget-limit")[1]["data"]["limit"],
        serde_json::Value::Null
    );
}

#[test]
fn a_busy_worker_scales_up_on_cpu_measured_against_its_declared_limit() {
    let body = "kind: Service\nname: burner\nimage: converge-test/worker:v1\n\
        command: [/bin/sh, -c, \"trap 'exit 0' TERM; while :; do :; done\"]\n\
        resources: {cpus: 0.2, memory: 32Mi}\n\
        scale:\n  min: 1\n  max: 2\n  cooldown: 1m\n  up: [{metric: cpu, above: 50, for: 2s}]\n  down: [{metric: cpu, below: 10, for: 10m}]\n";
    let p = Project::new("scalecpu", body);
    let agent = Agent::start(
        p.state.path(),
        19543,
        &[
            "--source",
            p.path().to_str().unwrap(),
            "--scale-interval",
            "1s",
        ],
        &[],
    );
    let running = |p: &Project| {
        p.containers()
            .iter()
            .filter(|c| c.ends_with(" running"))
            .count()
    };
    wait_until(30, "one burner", || running(&p) == 1);
    wait_until(30, "two burners", || running(&p) == 2);
    let scaled: Vec<serde_json::Value> = p
        .journal()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "scaled")
        .collect();
    assert_eq!(scaled.len(), 1, "{scaled:?}");
    let cpu = scaled[0]["data"]["metrics"]["cpu"].as_f64().unwrap();
    assert!(cpu > 50.0, "a busy loop under a 0.2-core limit: {cpu}%");
    assert!(
        scaled[0]["data"]["metrics"]["memory"].as_f64().unwrap() < 100.0,
        "{scaled:?}"
    );
    assert!(
        scaled[0]["detail"]
            .as_str()
            .unwrap()
            .ends_with("> 50% for 2s"),
        "{scaled:?}"
    );
    std::thread::sleep(std::time::Duration::from_secs(4));
    assert_eq!(running(&p), 2, "max 2, and the 1m cooldown holds");
    drop(agent);
}
