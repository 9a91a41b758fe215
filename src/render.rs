//! Renders handlebars templates (built-in or the user's) into config files: routers see each
//! service's active color; config files see the whole desired state. Pure: no file is read here.

use std::collections::BTreeMap;

use handlebars::Handlebars;
use serde::Serialize;
use thiserror::Error;

use crate::model::budget::Period;
use crate::model::service::Strategy;
use crate::model::service::{hosts_of, metrics_host_ports, published_ports};
use crate::model::{
    Backup, Budget, ConfigFile, DesiredState, Notifier, Project, Resource, Router, Service,
};

/// Built-in templates, referenced by bare name: (name, file under `templates/`, source).
const BUILTINS: &[(&str, &str, &str)] = &[
    (
        "nginx-site",
        "nginx-site.conf.hbs",
        include_str!("../templates/nginx-site.conf.hbs"),
    ),
    (
        "prometheus",
        "prometheus.yml.hbs",
        include_str!("../templates/prometheus.yml.hbs"),
    ),
    (
        "alert-rules",
        "alert-rules.yml.hbs",
        include_str!("../templates/alert-rules.yml.hbs"),
    ),
    (
        "alertmanager",
        "alertmanager.yml.hbs",
        include_str!("../templates/alertmanager.yml.hbs"),
    ),
    (
        "grafana-dashboard",
        "grafana-dashboard.json.hbs",
        include_str!("../templates/grafana-dashboard.json.hbs"),
    ),
];

/// Names of the built-in templates.
pub const BUILTIN_NAMES: &[&str] = &[
    "nginx-site",
    "prometheus",
    "alert-rules",
    "alertmanager",
    "grafana-dashboard",
];

pub fn builtin(name: &str) -> Option<&'static str> {
    BUILTINS.iter().find(|b| b.0 == name).map(|b| b.2)
}

/// Where a built-in template lives in converge's repository, for error positions.
pub fn builtin_file(name: &str) -> Option<String> {
    BUILTINS
        .iter()
        .find(|b| b.0 == name)
        .map(|b| format!("<built-in>/templates/{}", b.1))
}

/// The directory a Notifier's webhook URL is read from by Alertmanager, one file per notifier.
pub const ALERTMANAGER_SECRETS_DIR: &str = "/etc/alertmanager/secrets";

/// The port `converge agent` serves `/metrics` on in a monitored setup.
pub const AGENT_METRICS_PORT: u16 = 9470;

/// A bare name (no `/`, no extension) names a built-in template; anything else is a user file.
pub fn is_builtin_reference(name: &str) -> bool {
    !name.contains('/') && !name.contains('.')
}

#[derive(Debug, Clone, Error)]
#[error("{message}")]
pub struct TemplateError {
    pub message: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
}

#[derive(Debug, Error)]
pub enum RenderError {
    #[error("template `{template}`{}: {message}", position(*line, *column))]
    Template {
        template: String,
        message: String,
        line: Option<usize>,
        column: Option<usize>,
        fault: Fault,
    },
}

/// What kind of mistake a render error is, for the hint that goes with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A name the context does not have (strict mode).
    MissingVariable,
    /// A helper that is not registered.
    UnknownHelper,
    Other,
}

/// The helpers a template can call: handlebars' built-ins (no custom ones are registered).
pub const HELPERS: &[&str] = &[
    "if", "unless", "each", "with", "lookup", "raw", "log", "eq", "ne", "gt", "gte", "lt", "lte",
    "and", "or", "not", "len",
];

fn position(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" line {l}, column {c}"),
        (Some(l), None) => format!(" line {l}"),
        _ => String::new(),
    }
}

impl RenderError {
    fn not_loaded(template: &str) -> Self {
        RenderError::Template {
            template: template.into(),
            message: "not loaded".into(),
            line: None,
            column: None,
            fault: Fault::Other,
        }
    }

    /// Describes what handlebars found, in the template's own terms.
    fn from_handlebars(template: &str, e: &handlebars::RenderError) -> Self {
        use handlebars::RenderErrorReason as R;
        let (mut line, mut column) = (e.line_no, e.column_no);
        let (message, fault) = match e.reason() {
            R::MissingVariable(Some(v)) => (
                format!("`{v}` is not in the template context"),
                Fault::MissingVariable,
            ),
            R::MissingVariable(None) => (
                "a variable is not in the template context".to_string(),
                Fault::MissingVariable,
            ),
            R::HelperNotFound(h) => (format!("unknown helper `{h}`"), Fault::UnknownHelper),
            R::TemplateError(t) => {
                line = t.pos().map(|p| p.0);
                column = t.pos().map(|p| p.1);
                (format!("invalid template: {}", t.reason()), Fault::Other)
            }
            other => (other.to_string(), Fault::Other),
        };
        RenderError::Template {
            template: template.into(),
            message,
            line,
            column,
            fault,
        }
    }
}

/// Checks that `source` compiles as a handlebars template.
pub fn compile(name: &str, source: &str) -> Result<(), TemplateError> {
    handlebars::Template::compile(source)
        .map(|_| ())
        .map_err(|e| TemplateError {
            message: format!("{}: {}", name, e.reason()),
            line: e.pos().map(|p| p.0),
            column: e.pos().map(|p| p.1),
        })
}

/// Which color of a blue-green service takes traffic, and the host port it publishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ActiveColor {
    pub color: String,
    pub port: u16,
}

#[derive(Serialize)]
struct RouteContext<'a> {
    host: &'a str,
    path: &'a str,
    service: &'a str,
    color: String,
    port: u16,
    upstream: String,
}

#[derive(Serialize)]
struct RouterContext<'a> {
    project: &'a str,
    environment: &'a str,
    listen: u16,
    /// Seconds an idle client connection stays open (`keepalive_timeout`).
    client_keepalive: u64,
    routes: Vec<RouteContext<'a>>,
}

fn engine() -> Handlebars<'static> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    hb.register_escape_fn(handlebars::no_escape);
    hb
}

fn source<'a>(state: &'a DesiredState, template: &str) -> Result<&'a str, RenderError> {
    let found = if is_builtin_reference(template) {
        builtin(template)
    } else {
        state.templates.get(template).map(String::as_str)
    };
    found.ok_or_else(|| RenderError::not_loaded(template))
}

fn render_with<T: Serialize>(template: &str, source: &str, ctx: &T) -> Result<String, RenderError> {
    engine()
        .render_template(source, ctx)
        .map_err(|e| RenderError::from_handlebars(template, &e))
}

/// Renders a router with `colors`: the color each blue-green service will have after the plan.
pub fn render_router(
    router: &Router,
    state: &DesiredState,
    colors: &BTreeMap<String, ActiveColor>,
) -> Result<String, RenderError> {
    let routes = router
        .routes
        .iter()
        .map(|r| {
            let (color, port) = match colors.get(&r.service) {
                Some(c) => (c.color.clone(), c.port),
                None => {
                    let port = state
                        .service(&r.service)
                        .and_then(|s| published_ports(s).first().copied())
                        .unwrap_or(0);
                    ("none".to_string(), port)
                }
            };
            RouteContext {
                host: &r.host,
                path: &r.path,
                service: &r.service,
                upstream: format!("127.0.0.1:{port}"),
                color,
                port,
            }
        })
        .collect();
    let ctx = RouterContext {
        project: state.project.name.as_str(),
        environment: state.environment.as_deref().unwrap_or("default"),
        listen: router.listen.get(),
        client_keepalive: router.client_keepalive.as_millis().div_ceil(1000),
        routes,
    };
    render_with(&router.template, source(state, &router.template)?, &ctx)
}

/// The color each blue-green service starts with (blue), for rendering without live state.
pub fn starting_colors(state: &DesiredState) -> BTreeMap<String, ActiveColor> {
    state
        .services()
        .filter(|s| s.deploy.strategy == Strategy::BlueGreen)
        .filter_map(|s| {
            let port = s.deploy.blue.as_ref()?.port.get();
            Some((
                s.name.to_string(),
                ActiveColor {
                    color: "blue".into(),
                    port,
                },
            ))
        })
        .collect()
}

#[derive(Serialize)]
struct MetricsContext<'a> {
    port: u16,
    path: &'a str,
}

#[derive(Serialize)]
struct ServiceContext<'a> {
    name: &'a str,
    image: Option<&'a str>,
    replicas: u32,
    priority: &'a str,
    strategy: &'a str,
    ports: Vec<u16>,
    /// Host ports taking traffic: the active color's for blue-green, else every published one.
    host_ports: Vec<u16>,
    hosts: Vec<&'a str>,
    color: Option<String>,
    /// The declared metrics endpoint, or null when the service is not scraped.
    metrics: Option<MetricsContext<'a>>,
    /// `host:port` pairs Prometheus scrapes (empty without `metrics`).
    metrics_targets: Vec<String>,
}

#[derive(Serialize)]
struct HostContext<'a> {
    name: &'a str,
    labels: &'a BTreeMap<String, String>,
}

#[derive(Serialize)]
struct BackupContext<'a> {
    name: &'a str,
    schedule: &'a str,
    /// The RPO as written (`1h`), or null.
    rpo: Option<String>,
    rpo_seconds: Option<u64>,
}

#[derive(Serialize)]
struct ThresholdContext {
    /// Fraction of the amount, as PromQL reads it: `0.8`, `1`.
    ratio: String,
    /// The same as a percentage: `80`.
    percent: String,
    /// `warning` below the whole amount, `critical` at or above it.
    severity: &'static str,
}

#[derive(Serialize)]
struct BudgetContext<'a> {
    name: &'a str,
    /// The amount as written: `5000`, `99.5`.
    amount: String,
    currency: &'a str,
    period: Period,
    alerts: &'a [f64],
    thresholds: Vec<ThresholdContext>,
}

#[derive(Serialize)]
struct NotifierContext<'a> {
    name: &'a str,
    events: Vec<String>,
    severities: Vec<&'static str>,
    /// Whether the notifier has a webhook (its URL itself never enters the context).
    webhook: bool,
    /// The file Alertmanager reads the webhook URL from.
    url_file: String,
}

#[derive(Serialize)]
struct StateContext<'a> {
    project: &'a str,
    environment: &'a str,
    agent_port: u16,
    hosts: Vec<HostContext<'a>>,
    services: Vec<ServiceContext<'a>>,
    backups: Vec<BackupContext<'a>>,
    budgets: Vec<BudgetContext<'a>>,
    notifiers: Vec<NotifierContext<'a>>,
}

/// The top-level names a ConfigFile template sees.
pub const CONFIGFILE_CONTEXT: &[&str] = &[
    "project",
    "environment",
    "agent_port",
    "hosts",
    "services",
    "backups",
    "budgets",
    "notifiers",
];

/// The top-level names a Router template sees.
pub const ROUTER_CONTEXT: &[&str] = &[
    "project",
    "environment",
    "listen",
    "client_keepalive",
    "routes",
];

fn service_context<'a>(
    s: &'a Service,
    project: &'a Project,
    colors: &BTreeMap<String, ActiveColor>,
) -> ServiceContext<'a> {
    let hosts = hosts_of(s, project);
    let active = colors.get(s.name.as_str());
    let bg = s.deploy.strategy == Strategy::BlueGreen;
    let host_ports = match (bg, active) {
        (true, Some(c)) => vec![c.port],
        _ => published_ports(s),
    };
    let metrics_ports = match (bg, active) {
        (true, Some(c)) => metrics_host_ports(s)
            .into_iter()
            .filter(|p| *p == c.port)
            .collect(),
        (true, None) => metrics_host_ports(s).into_iter().take(1).collect(),
        (false, _) => metrics_host_ports(s),
    };
    let metrics_targets = metrics_ports
        .iter()
        .flat_map(|p| hosts.iter().map(move |h| format!("{h}:{p}")))
        .collect();
    ServiceContext {
        name: s.name.as_str(),
        image: s.image.as_deref(),
        replicas: s.replicas,
        priority: s.priority.as_str(),
        strategy: s.deploy.strategy.as_str(),
        ports: s.ports.iter().map(|p| p.container.get()).collect(),
        host_ports,
        hosts,
        color: active.map(|c| c.color.clone()),
        metrics: s.metrics.as_ref().map(|m| MetricsContext {
            port: m.port.get(),
            path: &m.path,
        }),
        metrics_targets,
    }
}

fn backup_context(b: &Backup) -> BackupContext<'_> {
    BackupContext {
        name: b.name.as_str(),
        schedule: b.schedule.as_str(),
        rpo: b.rpo.map(|d| d.to_string()),
        rpo_seconds: b.rpo.map(|d| d.as_millis() / 1000),
    }
}

/// A fraction written the way people and PromQL read it: `0.8`, `1`, never `0.8000000000000002`.
fn fraction(x: f64) -> String {
    let rounded = (x * 1e6).round() / 1e6;
    format!("{rounded}")
}

fn budget_context(b: &Budget) -> BudgetContext<'_> {
    BudgetContext {
        name: b.name.as_str(),
        amount: fraction(b.amount),
        currency: &b.currency,
        period: b.period,
        alerts: &b.alerts,
        thresholds: b
            .alerts
            .iter()
            .map(|a| ThresholdContext {
                ratio: fraction(*a),
                percent: fraction(a * 100.0),
                severity: if *a >= 1.0 { "critical" } else { "warning" },
            })
            .collect(),
    }
}

fn notifier_context(n: &Notifier) -> NotifierContext<'_> {
    NotifierContext {
        name: n.name.as_str(),
        events: n
            .events
            .iter()
            .filter_map(|e| serde_json::to_value(e).ok()?.as_str().map(str::to_string))
            .collect(),
        severities: n.severities.iter().map(|s| s.as_str()).collect(),
        webhook: n.webhook.is_some(),
        url_file: format!("{ALERTMANAGER_SECRETS_DIR}/{}.url", n.name),
    }
}

/// Renders a config file with the whole desired state (never a secret) as context.
pub fn render_configfile(
    file: &ConfigFile,
    state: &DesiredState,
    colors: &BTreeMap<String, ActiveColor>,
) -> Result<String, RenderError> {
    let project = &state.project;
    let mut backups = Vec::new();
    let mut budgets = Vec::new();
    let mut notifiers = Vec::new();
    for r in state.resources.values() {
        match r {
            Resource::Backup(b) => backups.push(backup_context(b)),
            Resource::Budget(b) => budgets.push(budget_context(b)),
            Resource::Notifier(n) => notifiers.push(notifier_context(n)),
            _ => {}
        }
    }
    let ctx = StateContext {
        project: project.name.as_str(),
        environment: state.environment.as_deref().unwrap_or("default"),
        agent_port: AGENT_METRICS_PORT,
        hosts: project
            .hosts
            .iter()
            .map(|h| HostContext {
                name: h.name.as_str(),
                labels: &h.labels,
            })
            .collect(),
        services: state
            .services()
            .map(|s| service_context(s, project, colors))
            .collect(),
        backups,
        budgets,
        notifiers,
    };
    render_with(&file.template, source(state, &file.template)?, &ctx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{load, SourceTree};
    use crate::model::{Kind, ResourceId};

    const STATE: &str = "kind: Project\nname: shop\nhosts: [{name: a}, {name: b}]\n---\n\
        kind: Service\nname: api\nimage: api:1\nports: [{container: 8000}]\nmetrics: {port: 8000}\n\
        health: {http: {path: /health, port: 8000}}\n\
        deploy: {strategy: blue-green, blue: {port: 8000}, green: {port: 8001}}\n---\n\
        kind: Notifier\nname: pager\nwebhook: \"${env:PAGER_URL}\"\nseverities: [critical, warning]\n---\n\
        kind: ConfigFile\nname: custom\ntemplate: templates/t.hbs\npath: /etc/t\n";

    fn state(template: &str) -> DesiredState {
        let tree = SourceTree::new("mem")
            .with_file("converge.yaml", STATE)
            .with_file("templates/t.hbs", template);
        load(&tree, None).unwrap_or_else(|d| panic!("{d}"))
    }

    fn render(state: &DesiredState, colors: &BTreeMap<String, ActiveColor>) -> String {
        let Some(Resource::ConfigFile(c)) = state.get(&ResourceId::new(Kind::ConfigFile, "custom"))
        else {
            panic!("configfile/custom")
        };
        render_configfile(c, state, colors).unwrap()
    }

    #[test]
    fn blue_green_metrics_targets_follow_the_active_color_on_every_host() {
        let s = state(
            "{{#each services}}{{color}} {{#each metrics_targets}}{{this}},{{/each}}{{/each}}",
        );
        assert_eq!(render(&s, &starting_colors(&s)), "blue a:8000,b:8000,");
        let green = BTreeMap::from([(
            "api".to_string(),
            ActiveColor {
                color: "green".into(),
                port: 8001,
            },
        )]);
        assert_eq!(render(&s, &green), "green a:8001,b:8001,");
    }

    #[test]
    fn notifiers_show_their_severities_and_url_file_but_never_the_url() {
        let s = state("{{#each notifiers}}{{name}} {{webhook}} {{url_file}} {{#each severities}}{{this}} {{/each}}{{/each}}");
        assert_eq!(
            render(&s, &BTreeMap::new()),
            "pager true /etc/alertmanager/secrets/pager.url critical warning "
        );
    }

    #[test]
    fn fractions_read_as_written() {
        assert_eq!(fraction(0.8), "0.8");
        assert_eq!(fraction(0.8 * 100.0), "80");
        assert_eq!(fraction(1.0), "1");
        assert_eq!(fraction(5000.0), "5000");
        assert_eq!(fraction(0.125), "0.125");
    }

    #[test]
    fn a_missing_variable_is_reported_with_its_position() {
        let tree = SourceTree::new("mem")
            .with_file("converge.yaml", STATE)
            .with_file(
                "templates/t.hbs",
                "ok\n  {{#each services}}{{nmae}}{{/each}}",
            );
        let diags = load(&tree, None).unwrap_err();
        let text = diags.to_string();
        assert!(
            text.contains("template error: `nmae` is not in the template context"),
            "{text}"
        );
        assert!(text.contains("--> mem/templates/t.hbs:2:21"), "{text}");
        assert!(text.contains("used by configfile/custom at "), "{text}");
    }

    #[test]
    fn every_builtin_renders_against_a_state_with_each_kind() {
        for name in BUILTIN_NAMES {
            assert!(builtin(name).is_some(), "{name}");
            assert!(builtin_file(name).is_some(), "{name}");
        }
        let s = state("{{project}}");
        for name in BUILTIN_NAMES.iter().filter(|n| **n != "nginx-site") {
            let file = ConfigFile {
                name: crate::model::types::Name::try_from("x".to_string()).unwrap(),
                template: name.to_string(),
                path: "/etc/x".into(),
                check: None,
                reload: None,
                action_timeout: None,
            };
            let out = render_configfile(&file, &s, &starting_colors(&s))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(out.contains("shop"), "{name}: {out}");
        }
    }
}
