//! Routers and ConfigFiles: paths, routes (a DNS host and a URL path each, to a service that
//! publishes a port), and their templates (found, compiled, then rendered against the loaded
//! state).

use std::collections::BTreeMap;

use super::{check_abs_path, inputs, published_ports, reference, span_at, Checked, Ctx};
use crate::load::diagnostic::{suggestion, Diagnostic};
use crate::load::source::SourceTree;
use crate::load::yaml::{Node, Span};
use crate::load::Typed;
use crate::model::service::Strategy;
use crate::model::types::{Duration, HostIp};
use crate::model::{ConfigFile, DesiredState, Kind, Resource, ResourceId, Router, Service};
use crate::render;

pub(super) fn check_router(r: &Router, t: &Typed, ctx: &mut Ctx, checked: &mut Checked) {
    let n = &t.node;
    check_abs_path(&r.path, n, "path", ctx);
    check_action_timeout(r.action_timeout, n, ctx);
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
        let host = span_at(n, &["routes", &idx, "host"]);
        ctx.diags.extend(inputs::route_host(&route.host, &host));
        let path = span_at(n, &["routes", &idx, "path"]);
        ctx.diags.extend(inputs::url_path(
            "route path",
            &route.path,
            &path,
            "path: /api/",
        ));
        let span = span_at(n, &["routes", &idx, "service"]);
        if let Some(s) = reference(ctx, Kind::Service, &route.service, &span, "route") {
            if let Resource::Service(svc) = &s.resource {
                if published_ports(svc).is_empty() {
                    ctx.diags.push(
                        Diagnostic::at(&span, format!("service/{} publishes no host port, so the router cannot reach it", route.service))
                            .hint("give the service `deploy.blue`/`deploy.green` ports (blue-green) or a `ports: [{container: N, host: M}]`"),
                    );
                }
                check_reachable(&t.resource.id(), svc, &s.node, ctx);
            }
        }
    }
    template(&r.template, &t.resource.id(), n, ctx, checked);
}

/// The router's upstream is `127.0.0.1:PORT` (each color's port for blue-green, else the first
/// published one): a port bound to another address than `127.0.0.1` or `0.0.0.0` is out of
/// its reach.
fn check_reachable(router: &ResourceId, svc: &Service, node: &Node, ctx: &mut Ctx) {
    let bound: Vec<(HostIp, u16, Span)> = if svc.deploy.strategy == Strategy::BlueGreen {
        [("blue", &svc.deploy.blue), ("green", &svc.deploy.green)]
            .into_iter()
            .filter_map(|(color, c)| {
                let c = c.as_ref()?;
                let span = span_at(node, &["deploy", color, "host_ip"]);
                Some((c.host_ip, c.port.get(), span))
            })
            .collect()
    } else {
        svc.ports
            .iter()
            .enumerate()
            .find(|(_, p)| p.host.is_some())
            .and_then(|(i, p)| {
                let span = span_at(node, &["ports", &i.to_string(), "host_ip"]);
                Some((p.host_ip?, p.host?.get(), span))
            })
            .into_iter()
            .collect()
    };
    for (ip, port, span) in bound {
        if ip != HostIp::LOOPBACK && ip != HostIp::ANY {
            ctx.diags.push(
                Diagnostic::at(
                    &span,
                    format!(
                        "{router} reaches service/{} at 127.0.0.1:{port}, but `host_ip: {ip}` binds that port to another address",
                        svc.name
                    ),
                )
                .hint("bind it to `127.0.0.1` (the default for colors) or `0.0.0.0`: a Router's upstream is always 127.0.0.1:PORT"),
            );
        }
    }
}

pub(super) fn check_configfile(c: &ConfigFile, t: &Typed, ctx: &mut Ctx, checked: &mut Checked) {
    let n = &t.node;
    check_abs_path(&c.path, n, "path", ctx);
    check_action_timeout(c.action_timeout, n, ctx);
    template(&c.template, &t.resource.id(), n, ctx, checked);
}

/// `action_timeout` stops a hung check or reload: 0s would fail every action, and more than an
/// hour would hold the apply (and the agent) that long.
fn check_action_timeout(timeout: Option<Duration>, n: &Node, ctx: &mut Ctx) {
    let Some(t) = timeout else { return };
    if t.as_millis() == 0 || t.as_millis() > 3_600_000 {
        ctx.diags.push(
            Diagnostic::at(
                &span_at(n, &["action_timeout"]),
                format!("action_timeout {t} is out of range: a check or reload may run from 1ms to 1h"),
            )
            .hint("the default (60s for a command, 30s for an HTTP request) fits most proxies; `nginx -t` takes well under a second"),
        );
    }
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
