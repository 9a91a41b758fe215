//! Renders handlebars templates (built-in or the user's) into config files: routers see each
//! service's active color; config files see the whole desired state. Pure: no file is read here.

use std::collections::BTreeMap;

use handlebars::Handlebars;
use serde::Serialize;
use thiserror::Error;

use crate::load::validate::published_ports;
use crate::model::service::Strategy;
use crate::model::{ConfigFile, DesiredState, Router};

/// Built-in templates, referenced by bare name.
pub const BUILTIN_NAMES: &[&str] = &["nginx-site", "prometheus"];

pub fn builtin(name: &str) -> Option<&'static str> {
    match name {
        "nginx-site" => Some(include_str!("../templates/nginx-site.conf.hbs")),
        "prometheus" => Some(include_str!("../templates/prometheus.yml.hbs")),
        _ => None,
    }
}

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
    #[error("template `{template}`: {message}")]
    Template { template: String, message: String },
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
    found.ok_or_else(|| RenderError::Template {
        template: template.into(),
        message: "not loaded".into(),
    })
}

fn render_with<T: Serialize>(template: &str, source: &str, ctx: &T) -> Result<String, RenderError> {
    engine()
        .render_template(source, ctx)
        .map_err(|e| RenderError::Template {
            template: template.into(),
            message: e.to_string(),
        })
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

#[derive(Serialize)]
struct ServiceContext<'a> {
    name: &'a str,
    image: Option<&'a str>,
    replicas: u32,
    priority: &'a str,
    strategy: &'a str,
    ports: Vec<u16>,
    host_ports: Vec<u16>,
    hosts: Vec<&'a str>,
    color: Option<String>,
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
    rpo_seconds: Option<u64>,
}

#[derive(Serialize)]
struct BudgetContext<'a> {
    name: &'a str,
    amount: f64,
    currency: &'a str,
    alerts: &'a [f64],
}

#[derive(Serialize)]
struct NotifierContext<'a> {
    name: &'a str,
    events: Vec<String>,
}

#[derive(Serialize)]
struct StateContext<'a> {
    project: &'a str,
    environment: &'a str,
    hosts: Vec<HostContext<'a>>,
    services: Vec<ServiceContext<'a>>,
    backups: Vec<BackupContext<'a>>,
    budgets: Vec<BudgetContext<'a>>,
    notifiers: Vec<NotifierContext<'a>>,
}

/// Renders a config file with the whole desired state (never a secret) as context.
pub fn render_configfile(
    file: &ConfigFile,
    state: &DesiredState,
    colors: &BTreeMap<String, ActiveColor>,
) -> Result<String, RenderError> {
    use crate::model::Resource;
    let project = &state.project;
    let services = state
        .services()
        .map(|s| {
            let hosts = crate::load::validate::hosts_of(s, project);
            let host_ports = match (s.deploy.strategy, colors.get(s.name.as_str())) {
                (Strategy::BlueGreen, Some(c)) => vec![c.port],
                _ => published_ports(s),
            };
            let metrics_targets = host_ports
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
                color: colors.get(s.name.as_str()).map(|c| c.color.clone()),
                metrics_targets,
            }
        })
        .collect();
    let mut backups = Vec::new();
    let mut budgets = Vec::new();
    let mut notifiers = Vec::new();
    for r in state.resources.values() {
        match r {
            Resource::Backup(b) => backups.push(BackupContext {
                name: b.name.as_str(),
                schedule: b.schedule.as_str(),
                rpo_seconds: b.rpo.map(|d| d.as_millis() / 1000),
            }),
            Resource::Budget(b) => budgets.push(BudgetContext {
                name: b.name.as_str(),
                amount: b.amount,
                currency: &b.currency,
                alerts: &b.alerts,
            }),
            Resource::Notifier(n) => notifiers.push(NotifierContext {
                name: n.name.as_str(),
                events: n
                    .events
                    .iter()
                    .filter_map(|e| serde_json::to_value(e).ok()?.as_str().map(str::to_string))
                    .collect(),
            }),
            _ => {}
        }
    }
    let ctx = StateContext {
        project: project.name.as_str(),
        environment: state.environment.as_deref().unwrap_or("default"),
        hosts: project
            .hosts
            .iter()
            .map(|h| HostContext {
                name: h.name.as_str(),
                labels: &h.labels,
            })
            .collect(),
        services,
        backups,
        budgets,
        notifiers,
    };
    render_with(&file.template, source(state, &file.template)?, &ctx)
}
