//! The built-in monitoring templates on the example desired state, rendered by the real binary
//! (`converge render --out DIR`): Prometheus scrapes the agents and the declared metrics ports,
//! the alert rules hold the handbook's and converge's alerts, Alertmanager routes by severity
//! without any secret, the Grafana dashboard is JSON. `promtool` and `amtool` check the files
//! when they are installed (scripts/test installs them).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Values the secret references of the example resolve to; none may appear in a rendered file.
const SECRETS: &[(&str, &str)] = &[
    (
        "SLACK_WEBHOOK_URL",
        "https://hooks.slack.test/services/T000/B000/slack-s3cret",
    ),
    ("PAGER_WEBHOOK_URL", "https://pager.test/hook/pager-s3cret"),
    ("BACKUP_KEY", "backup-key-s3cret"),
    ("DATABASE_URL", "postgres://app:db-s3cret@db/ytempire"),
    ("PG_APP_PASSWORD", "pg-app-s3cret"),
];

fn converge(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_converge"));
    cmd.current_dir(dir).args(args);
    for (k, v) in SECRETS {
        cmd.env(k, v);
    }
    cmd.output().expect("run converge")
}

struct Rendered {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Rendered {
    /// `converge render` of `state` (relative to the repository) for `env`.
    fn of(state: &Path, env: &str) -> Rendered {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let o = converge(
            Path::new(env!("CARGO_MANIFEST_DIR")),
            &[
                "render",
                state.to_str().unwrap(),
                "--env",
                env,
                "--out",
                root.to_str().unwrap(),
            ],
        );
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        Rendered { _dir: dir, root }
    }

    fn example(env: &str) -> Rendered {
        Rendered::of(Path::new("desired-state"), env)
    }

    fn path(&self, file: &str) -> PathBuf {
        self.root.join(file)
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.path(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
    }

    fn files(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                if e.path().is_dir() {
                    walk(&e.path(), out);
                } else {
                    out.push(e.path());
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.root, &mut out);
        out
    }
}

const PROMETHEUS: &str = "etc/prometheus/prometheus.yml";
const RULES: &str = "etc/prometheus/alerts/converge.yml";
const ALERTMANAGER: &str = "etc/alertmanager/alertmanager.yml";
const DASHBOARD: &str = "var/lib/grafana/dashboards/converge.json";

/// The rules of one alert: each `- alert: NAME` block of the rules file.
fn alert_blocks<'a>(rules: &'a str, name: &str) -> Vec<&'a str> {
    let marker = format!("- alert: {name}\n");
    rules
        .split("      - alert: ")
        .skip(1)
        .filter(|b| format!("- alert: {b}").starts_with(&marker))
        .collect()
}

/// Runs `tool args`; `None` when the tool is not installed.
fn run_tool(tool: &str, args: &[&str]) -> Option<Output> {
    match Command::new(tool).args(args).output() {
        Ok(o) => Some(o),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("skipped: {tool} not installed (apt-get install prometheus prometheus-alertmanager)");
            None
        }
        Err(e) => panic!("{tool}: {e}"),
    }
}

fn assert_tool_ok(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn prometheus_scrapes_the_agents_and_only_declared_metrics_ports() {
    let r = Rendered::example("prod");
    let prom = r.read(PROMETHEUS);
    assert!(prom.contains("job_name: 'converge-agent'"), "{prom}");
    assert!(prom.contains("- targets: ['web-1:9470']"), "{prom}");
    // The api declares `metrics: {port: 8000}`; blue-green: only the active color's port (a
    // fresh plan starts blue on 8000), never the idle green 8001.
    assert!(prom.contains("job_name: 'ytempire-api'"), "{prom}");
    assert!(prom.contains("metrics_path: '/metrics'"), "{prom}");
    assert!(prom.contains("- targets: ['web-1:8000']"), "{prom}");
    assert!(prom.contains("color: 'blue'"), "{prom}");
    assert!(!prom.contains("8001"), "the idle color is scraped:\n{prom}");
    // worker and renderer declare no metrics port: not scraped.
    assert!(!prom.contains("ytempire-worker"), "{prom}");
    assert!(!prom.contains("ytempire-renderer"), "{prom}");
    assert!(prom.contains("rule_files:\n  - 'alerts/*.yml'"), "{prom}");
    assert!(
        r.path(RULES).is_file(),
        "the rules sit where rule_files points"
    );
}

#[test]
fn alert_rules_hold_the_handbook_alerts_with_its_thresholds() {
    let rules = Rendered::example("prod").read(RULES);
    let expect = [
        ("ServiceDown", "up == 0", "1m", "critical"),
        (
            "HighErrorRate",
            "rate(http_requests_total{status=~\"5..\"}[5m])",
            "5m",
            "critical",
        ),
        ("DatabaseDown", "pg_up == 0", "1m", "critical"),
        (
            "HighCPUUsage",
            "rate(process_cpu_seconds_total[5m]) > 0.8",
            "10m",
            "warning",
        ),
        (
            "HighMemoryUsage",
            "(1 - (node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)) > 0.9",
            "5m",
            "warning",
        ),
        (
            "DiskSpaceLow",
            "node_filesystem_size_bytes{mountpoint=\"/\"}) < 0.1",
            "5m",
            "warning",
        ),
    ];
    for (name, expr, for_, severity) in expect {
        let blocks = alert_blocks(&rules, name);
        assert_eq!(blocks.len(), 1, "{name} once:\n{rules}");
        let b = blocks[0];
        assert!(b.contains(expr), "{name} expr:\n{b}");
        assert!(b.contains(&format!("for: {for_}\n")), "{name} for:\n{b}");
        assert!(
            b.contains(&format!("severity: {severity}\n")),
            "{name} severity:\n{b}"
        );
        assert!(
            b.contains("summary: ") && b.contains("description: "),
            "{b}"
        );
    }
    // Prometheus' own templating survives handlebars.
    assert!(rules.contains("{{ $labels.instance }}"), "{rules}");
}

#[test]
fn converge_alerts_watch_the_agent_metrics() {
    let rules = Rendered::example("prod").read(RULES);
    let agent = alert_blocks(&rules, "ConvergeAgentDown");
    assert!(agent[0].contains("up{job=\"converge-agent\"} == 0"));
    let failed = alert_blocks(&rules, "ConvergeApplyFailed");
    assert!(failed[0].contains("increase(converge_apply_failures_total["));
    let drift = alert_blocks(&rules, "ConvergeDrift");
    assert!(drift[0].contains("converge_drifted_resources > 0"));
    assert!(drift[0].contains("for: 10m"));
    for name in ["ConvergeAgentDown", "ConvergeApplyFailed", "ConvergeDrift"] {
        let b = alert_blocks(&rules, name);
        assert_eq!(b.len(), 1, "{name}");
        assert!(
            b[0].contains("severity: critical\n") || b[0].contains("severity: warning\n"),
            "{name}: {}",
            b[0]
        );
    }
}

#[test]
fn one_rpo_rule_per_backup_with_its_rpo_in_seconds() {
    let rules = Rendered::example("prod").read(RULES);
    let blocks = alert_blocks(&rules, "ConvergeBackupOlderThanRpo");
    assert_eq!(blocks.len(), 2, "database and media:\n{rules}");
    // desired-state/data/backups.yaml: database rpo 1h, media rpo 24h.
    for (backup, seconds) in [("database", 3600), ("media", 86400)] {
        let expr = format!(
            "expr: time() - converge_backup_last_success_timestamp_seconds{{backup=\"{backup}\"}} > {seconds}\n"
        );
        let matching: Vec<_> = blocks.iter().filter(|b| b.contains(&expr)).collect();
        assert_eq!(matching.len(), 1, "{expr} in\n{rules}");
        assert!(matching[0].contains("severity: critical\n"));
        assert!(matching[0].contains(&format!("backup: {backup}\n")));
    }
}

#[test]
fn one_budget_alert_per_threshold_critical_at_the_whole_amount() {
    let rules = Rendered::example("prod").read(RULES);
    let blocks = alert_blocks(&rules, "ConvergeBudgetThreshold");
    // desired-state/data/budget.yaml: alerts [0.5, 0.8, 0.9, 1.0].
    assert_eq!(blocks.len(), 4, "{rules}");
    for (ratio, severity) in [
        ("0.5", "warning"),
        ("0.8", "warning"),
        ("0.9", "warning"),
        ("1", "critical"),
    ] {
        let expr = format!("expr: converge_budget_spend_ratio{{budget=\"monthly\"}} >= {ratio}\n");
        let b: Vec<_> = blocks.iter().filter(|b| b.contains(&expr)).collect();
        assert_eq!(b.len(), 1, "{expr} in\n{rules}");
        assert!(
            b[0].contains(&format!("severity: {severity}\n")),
            "{ratio}: {}",
            b[0]
        );
    }
    // The dev override lowers the amount to 500; the alert text follows the environment.
    let dev = Rendered::example("dev").read("opt/ytempire/prometheus/alerts/converge.yml");
    assert!(dev.contains("of 500 USD"), "{dev}");
}

#[test]
fn alertmanager_routes_by_severity_and_reads_urls_from_files() {
    let am = Rendered::example("prod").read(ALERTMANAGER);
    // ops takes warnings (Slack), oncall takes criticals (the pager); both continue.
    assert!(
        am.contains(
            "    - matchers: ['severity=\"warning\"']\n      receiver: 'ops'\n      continue: true\n"
        ),
        "{am}"
    );
    assert!(
        am.contains(
            "    - matchers: ['severity=\"critical\"']\n      receiver: 'oncall'\n      continue: true\n"
        ),
        "{am}"
    );
    assert!(
        am.contains("api_url_file: '/etc/alertmanager/secrets/ops.url'"),
        "{am}"
    );
    assert!(
        am.contains("api_url_file: '/etc/alertmanager/secrets/oncall.url'"),
        "{am}"
    );
    assert!(!am.contains("api_url:"), "a URL written inline:\n{am}");
    assert!(am.contains("never written into this file"), "{am}");
}

#[test]
fn no_rendered_file_holds_a_secret_value() {
    let r = Rendered::example("prod");
    let files = r.files();
    assert!(files.len() >= 5, "{files:?}");
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (name, value) in SECRETS {
            assert!(!text.contains(value), "{name}'s value in {}", f.display());
        }
        assert!(!text.contains("${env:"), "a reference in {}", f.display());
    }
}

#[test]
fn the_dashboard_is_json_with_a_panel_per_backup_and_budget() {
    let text = Rendered::example("prod").read(DASHBOARD);
    let v: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let panels = v["panels"].as_array().expect("panels");
    let exprs: Vec<String> = panels
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_string))
        .collect();
    let has = |needle: &str| exprs.iter().any(|e| e.contains(needle));
    for service in ["api", "worker", "renderer"] {
        assert!(
            has(&format!(
                "converge_service_running_replicas{{service=\"{service}\"}}"
            )),
            "{exprs:?}"
        );
    }
    assert!(has("converge_service_active_color"));
    assert!(has("converge_reconcile_total"));
    assert!(has("converge_drifted_resources"));
    assert!(has("process_cpu_seconds_total"));
    assert!(has("process_resident_memory_bytes"));
    assert!(has(
        "converge_backup_last_success_timestamp_seconds{backup=\"database\"}"
    ));
    assert!(has(
        "converge_backup_last_success_timestamp_seconds{backup=\"media\"}"
    ));
    assert!(has("vector(3600)") && has("vector(86400)"), "RPO lines");
    assert!(has("converge_budget_spend_ratio{budget=\"monthly\"}"));
    let budget = panels
        .iter()
        .find(|p| {
            p["title"]
                .as_str()
                .unwrap_or("")
                .starts_with("budget/monthly")
        })
        .expect("budget panel");
    let steps = budget["fieldConfig"]["defaults"]["thresholds"]["steps"]
        .as_array()
        .unwrap();
    let values: Vec<f64> = steps.iter().filter_map(|s| s["value"].as_f64()).collect();
    assert_eq!(values, vec![0.5, 0.8, 0.9, 1.0]);
    // Grafana's own legend templating survives handlebars.
    assert!(text.contains("\"legendFormat\": \"{{service}}: {{color}}\""));
}

#[test]
fn promtool_accepts_the_rules_and_the_prometheus_config() {
    let r = Rendered::example("prod");
    let Some(o) = run_tool(
        "promtool",
        &["check", "rules", r.path(RULES).to_str().unwrap()],
    ) else {
        return;
    };
    assert_tool_ok(&o, "promtool check rules");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("SUCCESS: 15 rules found"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    // rule_files is relative to prometheus.yml, and render wrote the rules next to it.
    let o = run_tool(
        "promtool",
        &["check", "config", r.path(PROMETHEUS).to_str().unwrap()],
    )
    .unwrap();
    assert_tool_ok(&o, "promtool check config");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("SUCCESS: 1 rule files found"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

#[test]
fn amtool_accepts_the_alertmanager_config() {
    let r = Rendered::example("prod");
    let Some(o) = run_tool(
        "amtool",
        &["check-config", r.path(ALERTMANAGER).to_str().unwrap()],
    ) else {
        return;
    };
    assert_tool_ok(&o, "amtool check-config");
}

/// A project with no notifier, no backup and no budget still renders valid files.
#[test]
fn a_bare_project_renders_valid_monitoring_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("converge.yaml"),
        "kind: Project\nname: bare\nenvironments: [prod]\nhosts: [{name: h1}, {name: h2}]\n---\n\
         kind: Service\nname: web\nimage: web:1\nports: [{container: 80, host: 8080}, {container: 9100, host: 9100}]\nmetrics: {port: 9100, path: /stats}\n---\n\
         kind: ConfigFile\nname: prometheus\ntemplate: prometheus\npath: /etc/prometheus/prometheus.yml\n---\n\
         kind: ConfigFile\nname: alert-rules\ntemplate: alert-rules\npath: /etc/prometheus/alerts/converge.yml\n---\n\
         kind: ConfigFile\nname: alertmanager\ntemplate: alertmanager\npath: /etc/alertmanager/alertmanager.yml\n---\n\
         kind: ConfigFile\nname: dashboard\ntemplate: grafana-dashboard\npath: /var/lib/grafana/dashboards/converge.json\n",
    )
    .unwrap();
    let r = Rendered::of(dir.path(), "prod");
    let prom = r.read(PROMETHEUS);
    assert!(prom.contains("- targets: ['h1:9470', 'h2:9470']"), "{prom}");
    assert!(prom.contains("metrics_path: '/stats'"), "{prom}");
    assert!(
        prom.contains("- targets: ['h1:9100', 'h2:9100']"),
        "only the port publishing 9100:\n{prom}"
    );
    assert!(!prom.contains("8080"), "{prom}");
    let rules = r.read(RULES);
    assert!(alert_blocks(&rules, "ConvergeBackupOlderThanRpo").is_empty());
    assert!(alert_blocks(&rules, "ConvergeBudgetThreshold").is_empty());
    let am = r.read(ALERTMANAGER);
    assert!(am.contains("receiver: 'null'"), "{am}");
    assert!(am.contains("receivers:\n  - name: 'null'\n"), "{am}");
    let dash = r.read(DASHBOARD);
    serde_json::from_str::<serde_json::Value>(&dash).unwrap_or_else(|e| panic!("{e}\n{dash}"));
    if let Some(o) = run_tool(
        "amtool",
        &["check-config", r.path(ALERTMANAGER).to_str().unwrap()],
    ) {
        assert_tool_ok(&o, "amtool check-config (no notifiers)");
    }
    if let Some(o) = run_tool(
        "promtool",
        &["check", "config", r.path(PROMETHEUS).to_str().unwrap()],
    ) {
        assert_tool_ok(&o, "promtool check config (no backups, no budgets)");
    }
}
