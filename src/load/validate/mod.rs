//! Checks across fields and resources that types alone cannot express: references resolve,
//! no dependency cycles, ports do not collide, limits are ordered, files referenced exist.
//!
//! This module holds the entry points, the shared context and reference helpers, and the
//! dispatch by kind; each kind's checks live in a file of their own.

mod backup;
mod bucket;
mod budget;
mod build;
mod cycles;
mod database;
mod env_file;
mod inputs;
mod notifier;
mod ports;
mod project;
mod router;
mod service;
mod service_runtime;

use std::collections::{BTreeMap, BTreeSet};

use super::diagnostic::{did_you_mean, Diagnostic};
use super::source::SourceTree;
use super::yaml::{Node, NodeValue, Span};
use super::Typed;
pub use crate::model::service::{hosts_of, metrics_host_ports, published_ports};
use crate::model::types::SecretString;
use crate::model::{Kind, MigrationFile, Project, Resource, ResourceId};

pub use bucket::bucket_name_problem;
pub use build::build_contexts;
pub use database::checksum;
pub use env_file::env_files;
pub use router::{render_templates, template_uses};

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
        project::check_project(p, &mut ctx);
    }
    for t in typed {
        let n = &t.node;
        match &t.resource {
            Resource::Service(s) => service::check_service(s, n, &mut ctx),
            Resource::Router(r) => router::check_router(r, t, &mut ctx, &mut checked),
            Resource::ConfigFile(c) => router::check_configfile(c, t, &mut ctx, &mut checked),
            Resource::Database(d) => {
                if let Some(files) = database::check_database(d, n, &mut ctx) {
                    checked.migrations.insert(t.resource.id(), files);
                }
            }
            Resource::Bucket(b) => bucket::check_bucket(b, n, &mut ctx),
            Resource::Backup(b) => backup::check_backup(b, n, &mut ctx),
            Resource::Budget(b) => budget::check_budget(b, n, &mut ctx),
            Resource::Notifier(x) => notifier::check_notifier(x, n, &mut ctx),
        }
    }
    ports::check_host_ports(typed, &mut ctx);
    cycles::check_cycles(typed, &mut ctx);
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

fn check_abs_path(path: &str, n: &Node, key: &str, ctx: &mut Ctx) {
    if !path.starts_with('/') {
        ctx.diags.push(
            Diagnostic::at(
                &span_at(n, &[key]),
                format!("expected an absolute path, found `{path}`"),
            )
            .hint("write the full path, e.g. `/etc/nginx/conf.d/site.conf`"),
        );
    } else if path.ends_with('/')
        || path
            .split('/')
            .skip(1)
            .any(|c| c.is_empty() || c == "." || c == "..")
        || path.chars().any(char::is_control)
    {
        ctx.diags.push(
            Diagnostic::at(
                &span_at(n, &[key]),
                format!("expected a plain absolute file path, found `{}`", path.escape_debug()),
            )
            .hint("no `.` or `..` components, empty components, trailing `/` or control characters: e.g. `/etc/nginx/conf.d/site.conf`"),
        );
    }
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
