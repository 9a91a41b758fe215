//! Project-level checks: duplicate hosts and environments, host labels (template inputs), the
//! sync interval, provider endpoints and registry logins, the recovery objectives and drill.

use std::collections::BTreeSet;

use super::{inputs, reference, span_at, Ctx};
use crate::load::diagnostic::Diagnostic;
use crate::load::yaml::{NodeValue, Span};
use crate::model::project::RecoveryDrill;
use crate::model::types::SecretString;
use crate::model::{Kind, Project};

/// The position of `path` in the Project's document.
fn project_span(ctx: &Ctx, path: &[&str]) -> Option<Span> {
    ctx.project_node.map(|n| span_at(n, path))
}

pub(super) fn check_project(p: &Project, ctx: &mut Ctx) {
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
    check_labels(p, ctx);
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
    check_recovery(p, ctx);
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
    check_registries(p, ctx);
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

const HOST_HINT: &str = "write the host as image references name it: `ghcr.io`, `registry.example.com:5000`, `docker.io`";

/// `providers.docker.registries`: a host as image references name it, once; a username; the
/// password a secret reference, never written in Git.
fn check_registries(p: &Project, ctx: &mut Ctx) {
    let Some(docker) = &p.providers.docker else {
        return;
    };
    let mut seen = BTreeSet::new();
    for (i, r) in docker.registries.iter().enumerate() {
        let idx = i.to_string();
        let at = |ctx: &Ctx, field: &str| {
            project_span(ctx, &["providers", "docker", "registries", &idx, field])
        };
        let host = r.host.as_str();
        if host.is_empty() || host.contains("://") || host.contains(['/', ' ', '\t', '@']) {
            let what = format!("invalid registry host `{}`", host.escape_debug());
            ctx.diags
                .push(Diagnostic::new(at(ctx, "host"), what).hint(HOST_HINT));
        } else if !seen.insert(host) {
            ctx.diags.push(Diagnostic::new(
                at(ctx, "host"),
                format!("registry `{host}` is listed twice in providers.docker.registries"),
            ));
        }
        if r.username.trim().is_empty() {
            ctx.diags.push(Diagnostic::new(
                at(ctx, "username"),
                format!("the username for registry `{host}` is empty"),
            ));
        }
        if !r.password.is_sensitive() {
            let what = format!(
                "the password for registry `{host}` is written literally in the desired state"
            );
            ctx.diags.push(
                Diagnostic::new(at(ctx, "password"), what).hint(
                    "reference it instead: `${env:REGISTRY_TOKEN}` or `${file:/path/to/token}`",
                ),
            );
        }
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

/// Host labels reach ConfigFile templates (`hosts[].labels`): keys and values are template inputs.
fn check_labels(p: &Project, ctx: &mut Ctx) {
    for (i, h) in p.hosts.iter().enumerate() {
        let idx = i.to_string();
        for (key, value) in &h.labels {
            let path = ["hosts", idx.as_str(), "labels", key.as_str()];
            let Some(value_span) = project_span(ctx, &path) else {
                continue;
            };
            let key_span = label_key_span(ctx, &path).unwrap_or_else(|| value_span.clone());
            let what = format!("a label name of host `{}`", h.name);
            let example = "write a label such as `zone: eu-west`";
            if let Some(d) = inputs::text(&what, key, &key_span, example) {
                ctx.diags.push(d);
                continue;
            }
            let what = format!("label `{key}` of host `{}`", h.name);
            ctx.diags
                .extend(inputs::text(&what, value, &value_span, example));
        }
    }
}

/// The position of a label's key (`path` ends with the key), for problems with the key itself.
fn label_key_span(ctx: &Ctx, path: &[&str]) -> Option<Span> {
    let (key, parent) = path.split_last()?;
    let labels = ctx.project_node?;
    let labels = parent
        .iter()
        .try_fold(labels, |node, seg| match &node.value {
            NodeValue::Map(_) => node.get(seg),
            NodeValue::Seq(items) => seg.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        })?;
    match &labels.value {
        NodeValue::Map(entries) => entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(k, _)| k.span.clone()),
        _ => None,
    }
}

/// `recovery.rto` and `recovery.rpo`, when given, are more than zero; the drill's schedule is a
/// template input and its `notify` names declared Notifiers.
fn check_recovery(p: &Project, ctx: &mut Ctx) {
    let Some(r) = &p.recovery else { return };
    if let Some(d) = &r.drill {
        check_drill(d, ctx);
    }
    for (field, value) in [("rto", r.rto), ("rpo", r.rpo)] {
        if value.is_some_and(|d| d.as_millis() == 0) {
            let span = project_span(ctx, &["recovery", field]);
            ctx.diags.push(Diagnostic::new(
                span,
                format!("recovery.{field} must be more than 0s"),
            ));
        }
    }
}

fn check_drill(d: &RecoveryDrill, ctx: &mut Ctx) {
    if let Some(span) = project_span(ctx, &["recovery", "drill", "schedule"]) {
        ctx.diags.extend(inputs::text(
            "recovery drill schedule",
            d.schedule.as_str(),
            &span,
            "write five cron fields separated by spaces, e.g. `0 4 * * 0`",
        ));
    }
    for (i, name) in d.notify.iter().enumerate() {
        let idx = i.to_string();
        if let Some(span) = project_span(ctx, &["recovery", "drill", "notify", &idx]) {
            reference(ctx, Kind::Notifier, name, &span, "recovery drill notify");
        }
    }
}
