//! Checks across fields and resources that types alone cannot express: references resolve,
//! no dependency cycles, ports do not collide, limits are ordered, files referenced exist.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

use super::diagnostic::{did_you_mean, suggestion, Diagnostic};
use super::source::SourceTree;
use super::yaml::{Node, NodeValue, Span};
use super::Typed;
use crate::model::attributes::hex;
pub use crate::model::service::{hosts_of, metrics_host_ports, published_ports};
use crate::model::service::{Metric, Strategy};
use crate::model::types::SecretString;
use crate::model::{
    Backup, Bucket, Budget, Database, DesiredState, Kind, MigrationFile, Notifier, Project,
    Resource, ResourceId, Service,
};
use crate::render;

/// What validation learned that the model keeps: template sources and migration files.
#[derive(Default)]
pub struct Checked {
    pub templates: BTreeMap<String, String>,
    pub migrations: BTreeMap<ResourceId, Vec<MigrationFile>>,
}

struct Ctx<'a> {
    project: Option<&'a Project>,
    /// The Project's document, for the positions of project-level problems.
    project_node: Option<&'a Node>,
    tree: &'a SourceTree,
    ids: BTreeSet<ResourceId>,
    by_id: BTreeMap<ResourceId, &'a Typed>,
    diags: &'a mut Vec<Diagnostic>,
}

/// The span of the node at `path` (keys, or list indices as numbers), or the nearest ancestor's.
pub fn span_at(node: &Node, path: &[&str]) -> Span {
    let mut current = node;
    for seg in path {
        let next = match &current.value {
            NodeValue::Map(_) => current.get(seg),
            NodeValue::Seq(items) => seg.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        };
        match next {
            Some(n) => current = n,
            None => break,
        }
    }
    current.span.clone()
}

pub fn check(
    project: Option<(&Project, &Node)>,
    typed: &[Typed],
    tree: &SourceTree,
    diags: &mut Vec<Diagnostic>,
) -> Checked {
    let mut ctx = Ctx {
        project: project.map(|p| p.0),
        project_node: project.map(|p| p.1),
        tree,
        ids: typed.iter().map(|t| t.resource.id()).collect(),
        by_id: typed.iter().map(|t| (t.resource.id(), t)).collect(),
        diags,
    };
    let mut checked = Checked::default();
    if let Some((p, _)) = project {
        check_project(p, &mut ctx);
    }
    for t in typed {
        let n = &t.node;
        match &t.resource {
            Resource::Service(s) => check_service(s, n, &mut ctx),
            Resource::Router(r) => {
                check_abs_path(&r.path, n, "path", &mut ctx);
                if r.routes.is_empty() {
                    ctx.diags.push(
                        Diagnostic::at(
                            &span_at(n, &["routes"]),
                            "a Router needs at least one route",
                        )
                        .hint("add `routes: [{host: app.example.com, service: api}]`"),
                    );
                }
                for (i, route) in r.routes.iter().enumerate() {
                    let idx = i.to_string();
                    let span = span_at(n, &["routes", &idx, "service"]);
                    if let Some(s) =
                        reference(&mut ctx, Kind::Service, &route.service, &span, "route")
                    {
                        if let Resource::Service(svc) = &s.resource {
                            if published_ports(svc).is_empty() {
                                ctx.diags.push(
                                    Diagnostic::at(&span, format!("service/{} publishes no host port, so the router cannot reach it", route.service))
                                        .hint("give the service `deploy.blue`/`deploy.green` ports (blue-green) or a `ports: [{container: N, host: M}]`"),
                                );
                            }
                        }
                    }
                }
                template(&r.template, &t.resource.id(), n, &mut ctx, &mut checked);
            }
            Resource::ConfigFile(c) => {
                check_abs_path(&c.path, n, "path", &mut ctx);
                template(&c.template, &t.resource.id(), n, &mut ctx, &mut checked);
            }
            Resource::Database(d) => {
                if let Some(files) = check_database(d, n, &mut ctx) {
                    checked.migrations.insert(t.resource.id(), files);
                }
            }
            Resource::Bucket(b) => check_bucket(b, n, &mut ctx),
            Resource::Backup(b) => check_backup(b, n, &mut ctx),
            Resource::Budget(b) => check_budget(b, n, &mut ctx),
            Resource::Notifier(x) => check_notifier(x, n, &mut ctx),
        }
    }
    check_host_ports(typed, &mut ctx);
    check_cycles(typed, &mut ctx);
    checked
}

/// Reports a dangling reference; returns the referenced resource when it exists.
fn reference<'a>(
    ctx: &mut Ctx<'a>,
    kind: Kind,
    name: &str,
    span: &Span,
    what: &str,
) -> Option<&'a Typed> {
    let id = ResourceId::new(kind, name);
    if let Some(t) = ctx.by_id.get(&id) {
        return Some(t);
    }
    let names: Vec<&str> = ctx
        .ids
        .iter()
        .filter(|i| i.kind == kind)
        .map(|i| i.name.as_str())
        .collect();
    let hint = match did_you_mean(name, names.iter().copied()) {
        Some(c) => format!("did you mean `{c}`?"),
        None if names.is_empty() => format!("declare a `kind: {kind}` resource named `{name}`"),
        None => format!("declared {kind} resources: {}", names.join(", ")),
    };
    ctx.diags.push(
        Diagnostic::at(
            span,
            format!("{what} refers to `{id}`, which does not exist"),
        )
        .hint(hint),
    );
    None
}

/// The position of `path` in the Project's document.
fn project_span(ctx: &Ctx, path: &[&str]) -> Option<Span> {
    ctx.project_node.map(|n| span_at(n, path))
}

fn check_project(p: &Project, ctx: &mut Ctx) {
    let mut seen = BTreeSet::new();
    for (i, h) in p.hosts.iter().enumerate() {
        if !seen.insert(h.name.as_str()) {
            let span = project_span(ctx, &["hosts", &i.to_string(), "name"]);
            ctx.diags.push(Diagnostic::new(
                span,
                format!("host `{}` is listed twice in the Project", h.name),
            ));
        }
    }
    let mut envs = BTreeSet::new();
    for (i, e) in p.environments.iter().enumerate() {
        if !envs.insert(e.as_str()) {
            let span = project_span(ctx, &["environments", &i.to_string()]);
            ctx.diags.push(Diagnostic::new(
                span,
                format!("environment `{e}` is listed twice in the Project"),
            ));
        }
    }
    if p.sync.interval.as_millis() < 1000 {
        let span = project_span(ctx, &["sync", "interval"]);
        ctx.diags.push(
            Diagnostic::new(span, "sync.interval must be at least 1s")
                .hint("30s is a good default"),
        );
    }
    if let Some(e) = p
        .providers
        .docker
        .as_ref()
        .and_then(|d| d.endpoint.as_ref())
    {
        if !["unix://", "tcp://", "http://", "https://", "npipe://"]
            .iter()
            .any(|s| e.starts_with(s))
        {
            let span = project_span(ctx, &["providers", "docker", "endpoint"]);
            ctx.diags.push(
                Diagnostic::new(span, format!("invalid Docker endpoint `{e}`"))
                    .hint("expected `unix:///var/run/docker.sock` or `tcp://host:2375`"),
            );
        }
    }
    if let Some(pg) = &p.providers.postgres {
        literal_url(
            &pg.url,
            &["postgres://", "postgresql://"],
            &["providers", "postgres", "url"],
            ctx,
        );
    }
    if let Some(Some(e)) = p.providers.s3.as_ref().map(|s| &s.endpoint) {
        literal_url(
            e,
            &["http://", "https://"],
            &["providers", "s3", "endpoint"],
            ctx,
        );
    }
}

fn literal_url(value: &SecretString, schemes: &[&str], path: &[&str], ctx: &mut Ctx) {
    if !value.is_sensitive() && !schemes.iter().any(|s| value.raw().starts_with(s)) {
        let span = project_span(ctx, path);
        ctx.diags.push(
            Diagnostic::new(
                span,
                format!("invalid URL in {}: `{}`", path.join("."), value.raw()),
            )
            .hint(format!(
                "expected a URL starting with {}",
                schemes.join(" or ")
            )),
        );
    }
}

fn check_abs_path(path: &str, n: &Node, key: &str, ctx: &mut Ctx) {
    if !path.starts_with('/') {
        ctx.diags.push(
            Diagnostic::at(
                &span_at(n, &[key]),
                format!("expected an absolute path, found `{path}`"),
            )
            .hint("write the full path, e.g. `/etc/nginx/conf.d/site.conf`"),
        );
    }
}

fn check_service(s: &Service, n: &Node, ctx: &mut Ctx) {
    match (&s.image, &s.build) {
        (None, None) => ctx.diags.push(
            Diagnostic::at(
                &n.span,
                format!("service/{} has neither `image` nor `build`", s.name),
            )
            .hint("add `image: name:tag` or `build: {context: path}`"),
        ),
        (Some(_), Some(_)) => ctx.diags.push(
            Diagnostic::at(
                &span_at(n, &["build"]),
                format!("service/{} has both `image` and `build`", s.name),
            )
            .hint("keep one of them"),
        ),
        (Some(image), None) if image.trim().is_empty() || image.contains(char::is_whitespace) => {
            ctx.diags.push(
                Diagnostic::at(
                    &span_at(n, &["image"]),
                    format!("invalid image reference `{image}`"),
                )
                .hint("expected `name:tag`, e.g. `ytempire/api:1.4.2`"),
            )
        }
        _ => {}
    }
    if let Some(cmd) = &s.command {
        if cmd.is_empty() {
            ctx.diags.push(
                Diagnostic::at(&span_at(n, &["command"]), "`command` is an empty list")
                    .hint("remove it to use the image's default command"),
            );
        }
    }
    for key in s.env.keys() {
        if key.is_empty() || key.contains('=') || key.contains(char::is_whitespace) {
            ctx.diags.push(Diagnostic::at(
                &span_at(n, &["env", key]),
                format!("invalid environment variable name `{key}`"),
            ));
        }
    }
    for (i, v) in s.volumes.iter().enumerate() {
        if !v.target.starts_with('/') {
            ctx.diags.push(Diagnostic::at(
                &span_at(n, &["volumes", &i.to_string(), "target"]),
                format!(
                    "volume target must be an absolute path, found `{}`",
                    v.target
                ),
            ));
        }
    }
    for (i, dep) in s.depends_on.iter().enumerate() {
        let span = span_at(n, &["depends_on", &i.to_string()]);
        match ResourceId::parse(dep, Some(Kind::Service)) {
            Some(id) if id.kind == Kind::Project || id.kind == Kind::Environment => ctx.diags.push(
                Diagnostic::at(&span, format!("cannot depend on `{dep}`"))
                    .hint("depend on a resource: `database/name`, `service/name`, `bucket/name`"),
            ),
            Some(id) => {
                reference(ctx, id.kind, &id.name, &span, "depends_on");
            }
            None => ctx.diags.push(
                Diagnostic::at(&span, format!("`{dep}` is not a resource id"))
                    .hint("write `kind/name`, e.g. `database/ytempire`"),
            ),
        }
    }
    check_placement(s, n, ctx);
    check_health(s, n, ctx);
    check_deploy(s, n, ctx);
    check_scale(s, n, ctx);
    check_metrics(s, n, ctx);
}

/// The metrics port must be a container port that a host port publishes, so Prometheus reaches it.
fn check_metrics(s: &Service, n: &Node, ctx: &mut Ctx) {
    let Some(m) = &s.metrics else { return };
    if !m.path.starts_with('/') {
        ctx.diags.push(
            Diagnostic::at(
                &span_at(n, &["metrics", "path"]),
                format!("metrics path must start with `/`, found `{}`", m.path),
            )
            .hint("e.g. `path: /metrics`"),
        );
    }
    let span = span_at(n, &["metrics", "port"]);
    let port = m.port.get();
    let containers: Vec<String> = s.ports.iter().map(|p| p.container.to_string()).collect();
    if !s.ports.iter().any(|p| p.container.get() == port) {
        let hint = if containers.is_empty() {
            format!("add `ports: [{{container: {port}}}]` to the service")
        } else {
            format!(
                "the service's container ports are {}; use one of them, or add {port} to `ports`",
                containers.join(", ")
            )
        };
        ctx.diags.push(
            Diagnostic::at(
                &span,
                format!(
                    "metrics port {port} is not a container port of service/{}",
                    s.name
                ),
            )
            .hint(hint),
        );
        return;
    }
    if metrics_host_ports(s).is_empty() {
        let hint = if s.deploy.strategy == Strategy::BlueGreen {
            format!("a blue-green service publishes only its first container port ({}) on the color ports; serve metrics there", containers[0])
        } else {
            format!("publish it: `ports: [{{container: {port}, host: N}}]`")
        };
        ctx.diags.push(
            Diagnostic::at(
                &span,
                format!("metrics port {port} of service/{} is not published on the host, so Prometheus cannot scrape it", s.name),
            )
            .hint(hint),
        );
    }
}

fn check_placement(s: &Service, n: &Node, ctx: &mut Ctx) {
    let Some(p) = ctx.project else { return };
    let names: Vec<&str> = p.hosts.iter().map(|h| h.name.as_str()).collect();
    for (i, h) in s.placement.hosts.iter().enumerate() {
        if !names.contains(&h.as_str()) {
            ctx.diags.push(
                Diagnostic::at(
                    &span_at(n, &["placement", "hosts", &i.to_string()]),
                    format!("placement names host `{h}`, which the Project does not list"),
                )
                .hint(suggestion(h, &names, "the Project's hosts are")),
            );
        }
    }
    if hosts_of(s, p).is_empty()
        && s.placement
            .hosts
            .iter()
            .all(|h| names.contains(&h.as_str()))
    {
        ctx.diags.push(
            Diagnostic::at(
                &span_at(n, &["placement"]),
                format!("no host matches the placement of service/{}", s.name),
            )
            .hint("check `placement.labels` against the labels of the Project's hosts"),
        );
    }
}

fn check_health(s: &Service, n: &Node, ctx: &mut Ctx) {
    let Some(h) = &s.health else { return };
    let span = span_at(n, &["health"]);
    let probes = [h.http.is_some(), h.tcp.is_some(), h.command.is_some()]
        .iter()
        .filter(|x| **x)
        .count();
    if probes != 1 {
        ctx.diags.push(
            Diagnostic::at(
                &span,
                format!("health needs exactly one of `http`, `tcp` or `command`, found {probes}"),
            )
            .hint("e.g. `http: {path: /health, port: 8000}`"),
        );
    }
    if let Some(http) = &h.http {
        if !http.path.starts_with('/') {
            ctx.diags.push(Diagnostic::at(
                &span_at(n, &["health", "http", "path"]),
                format!("health path must start with `/`, found `{}`", http.path),
            ));
        }
    }
    if h.healthy_after == 0 {
        ctx.diags.push(Diagnostic::at(
            &span_at(n, &["health", "healthy_after"]),
            "healthy_after must be at least 1",
        ));
    }
    if h.retries < h.healthy_after {
        ctx.diags.push(
            Diagnostic::at(
                &span_at(n, &["health", "retries"]),
                format!(
                    "retries ({}) is less than healthy_after ({}), so the gate can never pass",
                    h.retries, h.healthy_after
                ),
            )
            .hint("raise `retries`"),
        );
    }
    if h.interval.as_millis() == 0 || h.timeout.as_millis() == 0 {
        ctx.diags.push(Diagnostic::at(
            &span,
            "health interval and timeout must be more than 0s",
        ));
    }
}

fn check_deploy(s: &Service, n: &Node, ctx: &mut Ctx) {
    let d = &s.deploy;
    if d.strategy != Strategy::BlueGreen {
        if d.blue.is_some() || d.green.is_some() {
            ctx.diags.push(
                Diagnostic::at(
                    &span_at(n, &["deploy"]),
                    format!(
                        "deploy.blue/green ports are only for blue-green, but the strategy is `{}`",
                        d.strategy.as_str()
                    ),
                )
                .hint("set `strategy: blue-green` or remove the color ports"),
            );
        }
        return;
    }
    match (&d.blue, &d.green) {
        (Some(b), Some(g)) if b.port == g.port => ctx.diags.push(
            Diagnostic::at(
                &span_at(n, &["deploy", "green", "port"]),
                format!("blue and green both publish port {}", b.port),
            )
            .hint("each color needs its own host port, e.g. blue 8000 and green 8001"),
        ),
        (Some(_), Some(_)) => {}
        _ => ctx.diags.push(
            Diagnostic::at(
                &span_at(n, &["deploy"]),
                "blue-green needs a host port for each color",
            )
            .hint("add `blue: {port: 8000}` and `green: {port: 8001}` under `deploy`"),
        ),
    }
    for (i, p) in s.ports.iter().enumerate() {
        if p.host.is_some() {
            ctx.diags.push(
                Diagnostic::at(&span_at(n, &["ports", &i.to_string(), "host"]), "a blue-green service publishes per color, not through `ports[].host`")
                    .hint("remove `host:` here; `deploy.blue.port` and `deploy.green.port` are the host ports"),
            );
        }
    }
    if s.ports.is_empty() {
        ctx.diags.push(
            Diagnostic::at(
                &span_at(n, &["deploy"]),
                "blue-green needs a container port to publish",
            )
            .hint("add `ports: [{container: 8000}]`"),
        );
    }
    if s.health.is_none() {
        ctx.diags.push(
            Diagnostic::at(
                &span_at(n, &["deploy", "strategy"]),
                "blue-green needs a health check: traffic only moves to a color that passed it",
            )
            .hint("add `health: {http: {path: /health, port: 8000}}`"),
        );
    }
}

fn check_scale(s: &Service, n: &Node, ctx: &mut Ctx) {
    let Some(sc) = &s.scale else { return };
    if sc.min > sc.max {
        ctx.diags.push(
            Diagnostic::at(
                &span_at(n, &["scale", "min"]),
                format!(
                    "scale.min ({}) is greater than scale.max ({})",
                    sc.min, sc.max
                ),
            )
            .hint("swap them, or raise `max`"),
        );
    } else if s.replicas < sc.min || s.replicas > sc.max {
        ctx.diags.push(
            Diagnostic::at(
                &span_at(n, &["replicas"]),
                format!(
                    "replicas ({}) is outside the scale bounds {}..{}",
                    s.replicas, sc.min, sc.max
                ),
            )
            .hint("set `replicas` within `scale.min` and `scale.max`"),
        );
    }
    for (dir, rules) in [("up", &sc.up), ("down", &sc.down)] {
        for (i, r) in rules.iter().enumerate() {
            let span = span_at(n, &["scale", dir, &i.to_string()]);
            match (r.above, r.below) {
                (Some(_), None) | (None, Some(_)) => {}
                _ => ctx.diags.push(
                    Diagnostic::at(
                        &span,
                        "a scale rule needs exactly one of `above` or `below`",
                    )
                    .hint("e.g. `{metric: cpu, above: 80, for: 5m}`"),
                ),
            }
            if r.metric == Metric::QueueDepth && sc.queue_depth.is_none() {
                ctx.diags.push(
                    Diagnostic::at(&span, "rule uses metric `queue_depth` but `scale.queue_depth` is not declared")
                        .hint("add `queue_depth: {database: NAME, sql: \"SELECT count(*) …\"}` under `scale`"),
                );
            }
        }
    }
    if let Some(q) = &sc.queue_depth {
        reference(
            ctx,
            Kind::Database,
            &q.database,
            &span_at(n, &["scale", "queue_depth", "database"]),
            "scale.queue_depth",
        );
    }
}

/// Two services that may share a host must not publish the same host port; nor may replicas on one host.
fn check_host_ports(typed: &[Typed], ctx: &mut Ctx) {
    let Some(p) = ctx.project else { return };
    let mut taken: BTreeMap<(String, u16), (String, Span)> = BTreeMap::new();
    for t in typed {
        let Resource::Service(s) = &t.resource else {
            continue;
        };
        let hosts = hosts_of(s, p);
        let ports = published_ports(s);
        let bg = s.deploy.strategy == Strategy::BlueGreen;
        for (i, port) in ports.iter().enumerate() {
            let span = if bg {
                span_at(
                    &t.node,
                    &["deploy", if i == 0 { "blue" } else { "green" }, "port"],
                )
            } else {
                port_span(&t.node, *port)
            };
            for host in &hosts {
                let key = (host.to_string(), *port);
                match taken.get(&key) {
                    Some((other, first)) if other != s.name.as_str() => {
                        ctx.diags.push(
                            Diagnostic::at(&span, format!("service/{} and service/{other} both publish host port {port} on host {host}", s.name))
                                .note(format!("service/{other} publishes it at {first}"))
                                .hint("give one of them another host port, or place them on different hosts"),
                        );
                    }
                    Some(_) => {}
                    None => {
                        taken.insert(key, (s.name.to_string(), span.clone()));
                    }
                }
            }
        }
        if !ports.is_empty() && !hosts.is_empty() && s.replicas as usize > hosts.len() {
            ctx.diags.push(
                Diagnostic::at(&span_at(&t.node, &["replicas"]), format!(
                    "service/{} runs {} replicas on {} host(s) but publishes fixed host port(s) {}: two replicas on one host cannot share a port",
                    s.name, s.replicas, hosts.len(), ports.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ")
                ))
                .hint("lower `replicas` to the number of hosts, add hosts to its placement, or stop publishing a fixed host port"),
            );
        }
    }
}

fn port_span(node: &Node, port: u16) -> Span {
    if let Some(NodeValue::Seq(items)) = node.get("ports").map(|p| &p.value) {
        for item in items {
            if let Some(h) = item.get("host") {
                if h.as_str() == Some(&port.to_string()) {
                    return h.span.clone();
                }
            }
        }
    }
    span_at(node, &["ports"])
}

fn check_cycles(typed: &[Typed], ctx: &mut Ctx) {
    let graph: BTreeMap<ResourceId, Vec<ResourceId>> = typed
        .iter()
        .map(|t| {
            let deps = t
                .resource
                .dependencies()
                .into_iter()
                .filter(|d| ctx.ids.contains(d))
                .collect();
            (t.resource.id(), deps)
        })
        .collect();
    let mut state: BTreeMap<&ResourceId, u8> = BTreeMap::new();
    let mut reported: BTreeSet<Vec<ResourceId>> = BTreeSet::new();
    for start in graph.keys() {
        let mut stack: Vec<&ResourceId> = Vec::new();
        visit(start, &graph, &mut state, &mut stack, &mut |cycle| {
            let mut key = cycle.to_vec();
            key.sort();
            if reported.insert(key) {
                let names: Vec<String> = cycle
                    .iter()
                    .chain(cycle.first())
                    .map(|i| i.to_string())
                    .collect();
                let span = ctx
                    .by_id
                    .get(&cycle[0])
                    .map(|t| span_at(&t.node, &["depends_on"]));
                ctx.diags.push(
                    Diagnostic::new(span, format!("dependency cycle: {}", names.join(" → ")))
                        .hint("remove one of these dependencies"),
                );
            }
        });
    }
}

fn visit<'g>(
    id: &'g ResourceId,
    graph: &'g BTreeMap<ResourceId, Vec<ResourceId>>,
    state: &mut BTreeMap<&'g ResourceId, u8>,
    stack: &mut Vec<&'g ResourceId>,
    on_cycle: &mut dyn FnMut(&[ResourceId]),
) {
    match state.get(id) {
        Some(2) => return,
        Some(1) => {
            let pos = stack.iter().position(|x| *x == id).unwrap_or(0);
            let cycle: Vec<ResourceId> = stack[pos..].iter().map(|x| (*x).clone()).collect();
            on_cycle(&cycle);
            return;
        }
        _ => {}
    }
    state.insert(id, 1);
    stack.push(id);
    for dep in graph.get(id).into_iter().flatten() {
        if let Some((key, _)) = graph.get_key_value(dep) {
            visit(key, graph, state, stack, on_cycle);
        }
    }
    stack.pop();
    state.insert(id, 2);
}

fn template(name: &str, id: &ResourceId, n: &Node, ctx: &mut Ctx, checked: &mut Checked) {
    let span = span_at(n, &["template"]);
    if render::is_builtin_reference(name) {
        if render::builtin(name).is_none() {
            ctx.diags.push(
                Diagnostic::at(&span, format!("unknown built-in template `{name}`")).hint(
                    suggestion(name, render::BUILTIN_NAMES, "built-in templates are"),
                ),
            );
        }
        return;
    }
    let Some(source) = ctx.tree.text(name) else {
        ctx.diags.push(
            Diagnostic::at(&span, format!("template file `{name}` not found"))
                .hint(format!("paths are relative to the desired-state directory ({}); built-in templates are named without `/` or extension", ctx.tree.root)),
        );
        return;
    };
    if let Err(e) = render::compile(name, source) {
        let file = std::sync::Arc::from(ctx.tree.display(name));
        let at = Span::new(&file, e.line.unwrap_or(1), e.column.unwrap_or(1));
        ctx.diags.push(
            Diagnostic::at(&at, format!("template error: {}", e.message))
                .note(format!("used by {id} at {span}"))
                .hint("every `{{#name}}` needs its `{{/name}}` and every `{{` its `}}`; write `\\{{` for a literal `{{`, e.g. Prometheus's `\\{{ $value }}`"),
        );
        return;
    }
    checked
        .templates
        .insert(name.to_string(), source.to_string());
}

/// Where each Router and ConfigFile names its template, for notes on render errors.
pub fn template_uses(typed: &[Typed]) -> BTreeMap<ResourceId, Span> {
    typed
        .iter()
        .filter(|t| matches!(t.resource, Resource::Router(_) | Resource::ConfigFile(_)))
        .map(|t| (t.resource.id(), span_at(&t.node, &["template"])))
        .collect()
}

/// Renders every Router and ConfigFile template against the loaded state (pure: no file is
/// read or written), so that a variable missing from the context, an unknown helper or a
/// syntax error fails validation at the template's own file, line and column.
pub fn render_templates(
    state: &DesiredState,
    uses: &BTreeMap<ResourceId, Span>,
    tree: &SourceTree,
) -> Vec<Diagnostic> {
    let colors = render::starting_colors(state);
    let mut diags = Vec::new();
    for (id, resource) in &state.resources {
        let (template, rendered, context) = match resource {
            Resource::Router(r) => (
                &r.template,
                render::render_router(r, state, &colors),
                render::ROUTER_CONTEXT,
            ),
            Resource::ConfigFile(c) => (
                &c.template,
                render::render_configfile(c, state, &colors),
                render::CONFIGFILE_CONTEXT,
            ),
            _ => continue,
        };
        let Err(render::RenderError::Template {
            message,
            line,
            column,
            fault,
            ..
        }) = rendered
        else {
            continue;
        };
        let file = match render::builtin_file(template) {
            Some(f) if render::is_builtin_reference(template) => f,
            _ => tree.display(template),
        };
        let at = Span::new(
            &std::sync::Arc::from(file),
            line.unwrap_or(1),
            column.unwrap_or(1),
        );
        let used = uses
            .get(id)
            .map(|s| format!("used by {id} at {s}"))
            .unwrap_or_else(|| format!("used by {id}"));
        diags.push(
            Diagnostic::at(&at, format!("template error: {message}"))
                .note(used)
                .maybe_hint(render_hint(fault, id.kind, context)),
        );
    }
    diags
}

fn render_hint(fault: render::Fault, kind: Kind, context: &[&str]) -> Option<String> {
    match fault {
        render::Fault::MissingVariable => Some(format!(
            "a {kind} template sees {}; inside `{{{{#each}}}}` names are the item's, and `../name` reaches the outer context",
            context.join(", ")
        )),
        render::Fault::UnknownHelper => Some(format!(
            "the helpers are handlebars' built-ins: {}",
            render::HELPERS.join(", ")
        )),
        render::Fault::Other => None,
    }
}

/// Checks each build context and Dockerfile exist, and records a digest of the context's files.
pub fn build_contexts(typed: &mut [Typed], tree: &SourceTree, diags: &mut Vec<Diagnostic>) {
    for t in typed.iter_mut() {
        let Resource::Service(s) = &mut t.resource else {
            continue;
        };
        let Some(b) = s.build.as_mut() else { continue };
        let dir = b
            .context
            .trim_end_matches('/')
            .trim_start_matches("./")
            .to_string();
        if !tree.has_dir(&dir) {
            diags.push(
                Diagnostic::at(
                    &span_at(&t.node, &["build", "context"]),
                    format!("build context `{}` not found", b.context),
                )
                .hint(format!(
                    "paths are relative to the desired-state directory ({})",
                    tree.root
                )),
            );
            continue;
        }
        let dockerfile = format!("{dir}/{}", b.dockerfile.as_deref().unwrap_or("Dockerfile"));
        if !tree.contains(&dockerfile) {
            diags.push(Diagnostic::at(
                &span_at(&t.node, &["build"]),
                format!("`{dockerfile}` not found in the build context"),
            ));
        }
        let mut h = Sha256::new();
        let prefix = format!("{dir}/");
        for (path, content) in tree.files.iter().filter(|(p, _)| p.starts_with(&prefix)) {
            h.update(path.as_bytes());
            h.update([0]);
            h.update(content);
        }
        b.context_digest = Some(format!("sha256:{}", hex(&h.finalize()[..6])));
    }
}

fn check_database(d: &Database, n: &Node, ctx: &mut Ctx) -> Option<Vec<MigrationFile>> {
    let mut names = BTreeSet::new();
    for (i, r) in d.roles.iter().enumerate() {
        let idx = i.to_string();
        if !names.insert(r.name.as_str()) {
            ctx.diags.push(Diagnostic::at(
                &span_at(n, &["roles", &idx, "name"]),
                format!("role `{}` is declared twice", r.name),
            ));
        }
        if let Some(p) = &r.password {
            must_be_secret(
                p,
                &span_at(n, &["roles", &idx, "password"]),
                "a role password",
                ctx,
            );
        }
        for (gi, g) in r.grants.iter().enumerate() {
            for p in &g.privileges {
                if *p != crate::model::database::Privilege::All
                    && !g.on.privileges().contains(&p.sql())
                {
                    ctx.diags.push(
                        Diagnostic::at(
                            &span_at(n, &["roles", &idx, "grants", &gi.to_string(), "privileges"]),
                            format!("privilege {} does not apply to {}", p.sql(), g.on.as_str()),
                        )
                        .hint(format!(
                            "{} takes: {}",
                            g.on.as_str(),
                            g.on.privileges().join(", ")
                        )),
                    );
                }
            }
        }
        if r.connection_limit < -1 {
            ctx.diags.push(Diagnostic::at(
                &span_at(n, &["roles", &idx, "connection_limit"]),
                "connection_limit must be -1 (unlimited) or more",
            ));
        }
    }
    for e in &d.extensions {
        if e.is_empty()
            || !e
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            ctx.diags.push(Diagnostic::at(
                &span_at(n, &["extensions"]),
                format!("invalid extension name `{e}`"),
            ));
        }
    }
    let m = d.migrations.as_ref()?;
    let span = span_at(n, &["migrations", "dir"]);
    if !ctx.tree.has_dir(&m.dir) {
        ctx.diags.push(
            Diagnostic::at(&span, format!("migrations directory `{}` not found", m.dir)).hint(
                format!(
                    "paths are relative to the desired-state directory ({})",
                    ctx.tree.root
                ),
            ),
        );
        return None;
    }
    migrations(&m.dir, &span, ctx)
}

fn migrations(dir: &str, span: &Span, ctx: &mut Ctx) -> Option<Vec<MigrationFile>> {
    let mut ups: BTreeMap<u64, MigrationFile> = BTreeMap::new();
    let mut downs: BTreeMap<u64, String> = BTreeMap::new();
    let mut ok = true;
    for path in ctx.tree.list_dir(dir) {
        let file = path.rsplit('/').next().unwrap_or(path);
        if !file.ends_with(".sql") {
            continue;
        }
        let Some((version, name, up)) = parse_migration_name(file) else {
            ctx.diags.push(
                Diagnostic::at(span, format!("migration file `{file}` is not named `NNNN_name.up.sql` or `NNNN_name.down.sql`"))
                    .hint("rename it, e.g. `0003_add_videos.up.sql`"),
            );
            ok = false;
            continue;
        };
        if !up {
            downs.insert(version, path.to_string());
            continue;
        }
        if let Some(prev) = ups.get(&version) {
            ctx.diags.push(Diagnostic::at(
                span,
                format!(
                    "migration version {version} is used twice: `{}` and `{path}`",
                    prev.up_path
                ),
            ));
            ok = false;
            continue;
        }
        let text = ctx
            .tree
            .files
            .get(path)
            .map(|b| b.as_slice())
            .unwrap_or_default();
        let sql = String::from_utf8_lossy(text).replace("\r\n", "\n");
        ups.insert(
            version,
            MigrationFile {
                version,
                name,
                up_path: path.to_string(),
                down_path: None,
                checksum: checksum(text),
                no_transaction: sql
                    .lines()
                    .next()
                    .is_some_and(|l| l.trim() == "-- converge:no-transaction"),
                up_sql: sql,
                down_sql: None,
            },
        );
    }
    for (version, path) in downs {
        match ups.get_mut(&version) {
            Some(m) => {
                let text = ctx
                    .tree
                    .files
                    .get(&path)
                    .map(|b| b.as_slice())
                    .unwrap_or_default();
                m.down_sql = Some(String::from_utf8_lossy(text).replace("\r\n", "\n"));
                m.down_path = Some(path);
            }
            None => {
                ctx.diags.push(Diagnostic::at(
                    span,
                    format!("`{path}` has no matching up migration"),
                ));
                ok = false;
            }
        }
    }
    ok.then(|| ups.into_values().collect())
}

/// `0001_create_videos.up.sql` → (1, "create_videos", true).
fn parse_migration_name(file: &str) -> Option<(u64, String, bool)> {
    let (stem, up) = if let Some(s) = file.strip_suffix(".up.sql") {
        (s, true)
    } else {
        (file.strip_suffix(".down.sql")?, false)
    };
    let (num, name) = stem.split_once('_')?;
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) || name.is_empty() {
        return None;
    }
    Some((num.parse().ok()?, name.to_string(), up))
}

/// sha256 with CRLF normalised to LF, so a checkout on Windows does not look like an edit.
pub fn checksum(bytes: &[u8]) -> String {
    let mut h = Sha256::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        h.update([bytes[i]]);
        i += 1;
    }
    hex(&h.finalize())
}

fn must_be_secret(value: &SecretString, span: &Span, what: &str, ctx: &mut Ctx) {
    if !value.is_sensitive() {
        ctx.diags.push(
            Diagnostic::at(
                span,
                format!("{what} is written literally in the desired state"),
            )
            .hint("reference it instead: `${env:NAME}` or `${file:/path/to/secret}`"),
        );
    }
}

/// S3's bucket naming rules.
pub fn bucket_name_problem(name: &str) -> Option<&'static str> {
    let b = name.as_bytes();
    if !(3..=63).contains(&b.len()) {
        return Some("must be 3 to 63 characters long");
    }
    if !b
        .iter()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'.')
    {
        return Some("may hold only lowercase letters, digits, `-` and `.`");
    }
    if !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return Some("must start and end with a letter or digit");
    }
    if name.contains("..") {
        return Some("must not contain two adjacent periods");
    }
    if name.split('.').count() == 4 && name.split('.').all(|p| p.parse::<u8>().is_ok()) {
        return Some("must not look like an IP address");
    }
    if name.starts_with("xn--")
        || name.starts_with("sthree-")
        || name.ends_with("-s3alias")
        || name.ends_with("--ol-s3")
    {
        return Some("must not use a prefix or suffix reserved by S3");
    }
    None
}

fn check_bucket(b: &Bucket, n: &Node, ctx: &mut Ctx) {
    if let Some(problem) = bucket_name_problem(b.name.as_str()) {
        ctx.diags.push(
            Diagnostic::at(
                &span_at(n, &["name"]),
                format!("invalid S3 bucket name `{}`: it {problem}", b.name),
            )
            .hint("e.g. `ytempire-backups`"),
        );
    }
    for (i, r) in b.lifecycle.iter().enumerate() {
        let span = span_at(n, &["lifecycle", &i.to_string()]);
        if r.transition.is_none()
            && r.expire_after.is_none()
            && r.abort_incomplete_uploads_after.is_none()
        {
            ctx.diags.push(
                Diagnostic::at(&span, "a lifecycle rule needs `transition`, `expire_after` or `abort_incomplete_uploads_after`"),
            );
        }
        if let (Some(t), Some(e)) = (&r.transition, r.expire_after) {
            if e <= t.after {
                ctx.diags.push(
                    Diagnostic::at(
                        &span_at(n, &["lifecycle", &i.to_string(), "expire_after"]),
                        format!(
                            "expire_after ({e}) is not later than the transition ({})",
                            t.after
                        ),
                    )
                    .hint("objects would expire before (or as) they move to the colder tier"),
                );
            }
        }
    }
}

fn check_backup(b: &Backup, n: &Node, ctx: &mut Ctx) {
    let src = &b.source;
    let count = [
        src.database.is_some(),
        src.files.is_some(),
        src.command.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if count != 1 {
        ctx.diags.push(
            Diagnostic::at(&span_at(n, &["source"]), format!("a backup source needs exactly one of `database`, `files` or `command`, found {count}"))
                .hint("e.g. `source: {database: ytempire}`"),
        );
    }
    if let Some(db) = &src.database {
        reference(
            ctx,
            Kind::Database,
            db,
            &span_at(n, &["source", "database"]),
            "backup source",
        );
    }
    if let Some(f) = &src.files {
        if !f.starts_with('/') {
            ctx.diags.push(Diagnostic::at(
                &span_at(n, &["source", "files"]),
                format!("expected an absolute path, found `{f}`"),
            ));
        }
    }
    if let Some(c) = &src.command {
        if c.is_empty() {
            ctx.diags.push(Diagnostic::at(
                &span_at(n, &["source", "command"]),
                "backup command is an empty list",
            ));
        }
    }
    if b.destinations.is_empty() {
        ctx.diags.push(
            Diagnostic::at(
                &span_at(n, &["destinations"]),
                "a backup needs at least one destination",
            )
            .hint("e.g. `- {url: \"file:///var/backups/db\", keep: 7d}`"),
        );
    }
    for (i, d) in b.destinations.iter().enumerate() {
        let span = span_at(n, &["destinations", &i.to_string(), "url"]);
        let valid = match d.url.split_once("://") {
            Some(("file", path)) => path.starts_with('/'),
            Some(("s3", rest)) => crate::model::s3_bucket_of(&format!("s3://{rest}"))
                .is_some_and(|b| bucket_name_problem(b).is_none()),
            _ => false,
        };
        if !valid {
            ctx.diags.push(
                Diagnostic::at(&span, format!("invalid destination URL `{}`", d.url))
                    .hint("expected `file:///absolute/dir` or `s3://bucket/prefix/`"),
            );
        }
        if d.keep.as_millis() == 0 {
            ctx.diags.push(Diagnostic::at(
                &span_at(n, &["destinations", &i.to_string(), "keep"]),
                "keep must be more than 0s",
            ));
        }
    }
    if let Some(e) = &b.encryption {
        must_be_secret(
            &e.key,
            &span_at(n, &["encryption", "key"]),
            "the encryption key",
            ctx,
        );
    }
    if b.rpo.is_some_and(|r| r.as_millis() == 0) {
        ctx.diags.push(Diagnostic::at(
            &span_at(n, &["rpo"]),
            "rpo must be more than 0s",
        ));
    }
}

fn check_budget(b: &Budget, n: &Node, ctx: &mut Ctx) {
    if b.amount.is_nan() || b.amount <= 0.0 {
        ctx.diags.push(Diagnostic::at(
            &span_at(n, &["amount"]),
            format!("amount must be more than 0, found {}", b.amount),
        ));
    }
    for (k, v) in &b.rates {
        if *v < 0.0 {
            ctx.diags.push(Diagnostic::at(
                &span_at(n, &["rates", k]),
                format!("rate `{k}` is negative ({v})"),
            ));
        }
    }
    for (i, a) in b.alerts.iter().enumerate() {
        if !(*a > 0.0 && *a <= 10.0) {
            ctx.diags.push(
                Diagnostic::at(
                    &span_at(n, &["alerts", &i.to_string()]),
                    format!("alert threshold {a} is not a fraction of the amount"),
                )
                .hint("write fractions: 0.5 is 50%, 1.0 is 100%"),
            );
        }
    }
    if let (Some(s), Some(h)) = (&b.soft_limit, &b.hard_limit) {
        if h.at < s.at {
            ctx.diags.push(
                Diagnostic::at(
                    &span_at(n, &["hard_limit", "at"]),
                    format!("hard_limit.at ({}) is below soft_limit.at ({})", h.at, s.at),
                )
                .hint("the hard limit acts after the soft one: raise `hard_limit.at`"),
            );
        }
    }
    if let Some(h) = &b.hard_limit {
        if h.pause.contains(&crate::model::service::Priority::Critical) {
            ctx.diags.push(
                Diagnostic::at(
                    &span_at(n, &["hard_limit", "pause"]),
                    "critical services are never paused",
                )
                .hint("list `low` and `normal` only"),
            );
        }
    }
    if let Some(s) = &b.spend {
        reference(
            ctx,
            Kind::Database,
            &s.database,
            &span_at(n, &["spend", "database"]),
            "budget spend",
        );
    }
    for (i, name) in b.notify.iter().enumerate() {
        reference(
            ctx,
            Kind::Notifier,
            name,
            &span_at(n, &["notify", &i.to_string()]),
            "budget notify",
        );
    }
}

fn check_notifier(x: &Notifier, n: &Node, ctx: &mut Ctx) {
    match (&x.webhook, &x.command) {
        (Some(_), Some(_)) | (None, None) => ctx.diags.push(
            Diagnostic::at(
                &n.span,
                format!(
                    "notifier/{} needs exactly one of `webhook` or `command`",
                    x.name
                ),
            )
            .hint("e.g. `webhook: \"${env:SLACK_WEBHOOK_URL}\"`"),
        ),
        _ => {}
    }
    if let Some(w) = &x.webhook {
        if !(w.is_sensitive() || w.raw().starts_with("https://") || w.raw().starts_with("http://"))
        {
            ctx.diags.push(
                Diagnostic::at(&span_at(n, &["webhook"]), "invalid webhook URL").hint(
                    "expected an `https://` URL, or a reference like `${env:SLACK_WEBHOOK_URL}`",
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_s3_rules() {
        assert_eq!(bucket_name_problem("ytempire-backups"), None);
        assert!(bucket_name_problem("Ytempire").is_some());
        assert!(bucket_name_problem("ab").is_some());
        assert!(bucket_name_problem("192.168.1.1").is_some());
        assert!(bucket_name_problem("a..b").is_some());
    }

    #[test]
    fn migration_names_parse() {
        assert_eq!(
            parse_migration_name("0001_create.up.sql"),
            Some((1, "create".into(), true))
        );
        assert_eq!(
            parse_migration_name("0002_x.down.sql"),
            Some((2, "x".into(), false))
        );
        assert_eq!(parse_migration_name("create.up.sql"), None);
    }

    #[test]
    fn checksums_ignore_line_endings() {
        assert_eq!(checksum(b"a;\r\nb;\r\n"), checksum(b"a;\nb;\n"));
    }
}
