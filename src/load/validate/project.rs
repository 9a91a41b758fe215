//! Project-level checks: duplicate hosts and environments, the sync interval, provider endpoints.

use std::collections::BTreeSet;

use super::{span_at, Ctx};
use crate::load::diagnostic::Diagnostic;
use crate::load::yaml::Span;
use crate::model::types::SecretString;
use crate::model::Project;

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
