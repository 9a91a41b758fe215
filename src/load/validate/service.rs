//! Service checks: image or build, env names, port bindings, volumes, depends_on, placement,
//! health, deploy strategy, scale rules and the metrics port and path.

use super::{hosts_of, inputs, metrics_host_ports, reference, span_at, Ctx};
use crate::load::diagnostic::{suggestion, Diagnostic};
use crate::load::yaml::Node;
use crate::model::service::{Metric, Strategy};
use crate::model::{Kind, ResourceId, Service};

pub(super) fn check_service(s: &Service, n: &Node, ctx: &mut Ctx) {
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
        (Some(image), None) => {
            let span = span_at(n, &["image"]);
            if let Some(d) = inputs::text(
                &format!("the image of service/{}", s.name),
                image,
                &span,
                "expected `name:tag`, e.g. `ytempire/api:1.4.2`",
            ) {
                ctx.diags.push(d);
            } else if image.trim().is_empty() || image.contains(char::is_whitespace) {
                ctx.diags.push(
                    Diagnostic::at(&span, format!("invalid image reference `{image}`"))
                        .hint("expected `name:tag`, e.g. `ytempire/api:1.4.2`"),
                )
            }
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
    for (i, p) in s.ports.iter().enumerate() {
        if let (Some(ip), None) = (p.host_ip, p.host) {
            ctx.diags.push(
                Diagnostic::at(
                    &span_at(n, &["ports", &i.to_string(), "host_ip"]),
                    format!("`host_ip: {ip}` binds nothing: this port mapping publishes no `host` port"),
                )
                .hint(if s.deploy.strategy == Strategy::BlueGreen {
                    "a blue-green service publishes per color: write `host_ip` under `deploy.blue` and `deploy.green`"
                } else {
                    "add `host: N` to publish the port on the host, or remove `host_ip`"
                }),
            );
        }
    }
    for (i, v) in s.volumes.iter().enumerate() {
        for (field, path) in [("source", &v.source), ("target", &v.target)] {
            if path.contains(':') {
                ctx.diags.push(
                    Diagnostic::at(
                        &span_at(n, &["volumes", &i.to_string(), field]),
                        format!("a volume {field} cannot contain `:`, found `{path}`"),
                    )
                    .hint("the engine reads `:` as a separator: rename the directory or mount its parent"),
                );
            }
        }
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
    super::service_runtime::check_runtime(s, n, ctx);
}

/// The metrics port must be a container port that a host port publishes, so Prometheus reaches it.
fn check_metrics(s: &Service, n: &Node, ctx: &mut Ctx) {
    let Some(m) = &s.metrics else { return };
    ctx.diags.extend(inputs::url_path(
        "metrics path",
        &m.path,
        &span_at(n, &["metrics", "path"]),
        "path: /metrics",
    ));
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
    if p.providers.swarm.is_some() {
        // Swarm places tasks by its nodes' names and labels, not the Project's hosts.
        if let Some(r) = crate::model::project::SwarmProvider::refuses(s) {
            ctx.diags.push(
                Diagnostic::at(
                    &span_at(n, r.path),
                    format!("service/{} cannot run on Swarm: {}", s.name, r.why),
                )
                .hint(r.hint),
            );
        }
        return;
    }
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
