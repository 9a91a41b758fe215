//! Compares the desired state with the live state: `diff(desired, live) -> Vec<Change>`.
//! Pure: no I/O. Decides create / update / replace / delete and, for blue-green services,
//! which color takes over, so routers can be rendered against the colors after the change.

mod change;
mod service;
pub mod synthetic;

pub use change::*;
use service::*;

use std::collections::{BTreeMap, BTreeSet};

use crate::model::live::{Color, LiveService, LiveState};
use crate::model::service::Strategy;
use crate::model::service::{hosts_of, published_ports};
use crate::model::{AttrValue, Attributes, DesiredState, Kind, Resource, ResourceId, Service};
use crate::render::{self, ActiveColor};

/// Compares desired and live state.
pub fn diff(desired: &DesiredState, live: &LiveState, opts: &DiffOptions) -> Diff {
    let mut out = Diff::default();
    // On Swarm, services are the whole swarm's: Swarm places them, not `--host`.
    let swarm = desired.project.providers.swarm.is_some();
    let services: Vec<&Service> = desired
        .services()
        .filter(|s| match opts.host {
            Some(h) if !swarm => hosts_of(s, &desired.project).contains(&h),
            _ => true,
        })
        .collect();
    infrastructure(desired, live, &services, &mut out);
    for s in &services {
        diff_service(s, live, opts, swarm, &mut out);
    }
    for s in desired.services() {
        if s.deploy.strategy == Strategy::BlueGreen && !out.colors.contains_key(s.name.as_str()) {
            if let Some(c) = current_color(s, live.service(&id_of(Kind::Service, s.name.as_str())))
            {
                out.colors.insert(s.name.to_string(), c);
            }
        }
    }
    for (id, resource) in &desired.resources {
        if matches!(id.kind, Kind::Backup | Kind::Budget | Kind::Notifier) && opts.kinds.is_some() {
            // Schedules and routing that the agent and `converge backup` act on: nothing to create.
            continue;
        }
        if !opts.reconciles(id.kind) {
            out.notes.push(format!("{id} is not reconciled: this version of converge has no provider for {} resources yet", id.kind));
            continue;
        }
        match resource {
            Resource::Service(_) => {}
            Resource::Router(r) => {
                let rendered = render::render_router(r, desired, &out.colors);
                diff_file(id, &r.path, rendered, resource, live, &mut out);
            }
            Resource::ConfigFile(c) => {
                let rendered = render::render_configfile(c, desired, &out.colors);
                diff_file(id, &c.path, rendered, resource, live, &mut out);
            }
            _ => diff_attributes(id, resource, desired, live, opts, &mut out),
        }
    }
    orphans(desired, live, &services, opts, &mut out);
    let network = ResourceId::new(Kind::Network, desired.project.name.as_str());
    for change in &mut out.changes {
        let Subject::Resource(_) = change.subject else {
            continue;
        };
        let Some(r) = desired.get(&change.id) else {
            continue;
        };
        change.depends_on = r.dependencies().to_vec();
        if let Resource::ConfigFile(_) = r {
            // Config files see every service (ports, colors): render after they change.
            change.depends_on = desired
                .services()
                .map(|s| ResourceId::new(Kind::Service, s.name.as_str()))
                .collect();
        }
        if let Resource::Service(s) = r {
            // Containers need the project network and their named volumes first.
            change.depends_on.push(network.clone());
            change.depends_on.extend(
                s.volumes
                    .iter()
                    .filter(|v| v.is_named_volume())
                    .map(|v| ResourceId::new(Kind::Volume, v.source.as_str())),
            );
            // In the order of their ids' text, as plans have always listed them.
            change.depends_on.sort_by_key(|d| d.to_string());
            change.depends_on.dedup();
        }
    }
    let in_scope = |s: &Service| match opts.host {
        Some(h) => hosts_of(s, &desired.project).contains(&h),
        None => true,
    };
    let deleted: BTreeSet<String> = out
        .changes
        .iter()
        .filter(|c| c.action == ChangeAction::Delete)
        .map(|c| c.id.to_string())
        .collect();
    out.cost = crate::cost::estimate(desired, live, &in_scope, &|id| deleted.contains(id));
    // Each change that moves a resource's cost carries its before and after.
    if let Some(summary) = &out.cost {
        for c in out.changes.iter_mut() {
            if let Some(d) = summary
                .resources
                .get(&c.id.to_string())
                .filter(|d| !d.is_zero())
            {
                c.cost = Some(*d);
            }
        }
    }
    out
}

pub(super) fn id_of(kind: Kind, name: &str) -> ResourceId {
    ResourceId::new(kind, name)
}

/// The project network and the named volumes that the services need.
pub(super) fn infrastructure(
    desired: &DesiredState,
    live: &LiveState,
    services: &[&Service],
    out: &mut Diff,
) {
    let network = desired.project.name.to_string();
    if !services.is_empty() && !live.networks.contains(&network) {
        let mut c = Change::new(
            ResourceId::new(Kind::Network, network.as_str()),
            Subject::Network,
            ChangeAction::Create,
            "the project's network does not exist",
        );
        let driver = if desired.project.providers.swarm.is_some() {
            "overlay"
        } else {
            "bridge"
        };
        c.attributes.push(added("driver", driver));
        out.changes.push(c);
    }
    let mut volumes: BTreeMap<&str, bool> = BTreeMap::new();
    for s in services {
        for v in s.volumes.iter().filter(|v| v.is_named_volume()) {
            *volumes.entry(v.source.as_str()).or_default() |= v.prune;
        }
    }
    for (name, prune) in volumes {
        if let Some(v) = live.volumes.get(name).filter(|v| v.prune != prune) {
            let mut c = Change::new(
                ResourceId::new(Kind::Volume, name),
                Subject::Volume,
                ChangeAction::Update,
                "its declared `prune` changed: the latest one decides if it is ever deleted",
            );
            c.attributes.push(AttrChange {
                before: Some(AttrValue::Text(v.prune.to_string())),
                ..added("prune", prune)
            });
            out.changes.push(c);
        }
        if !live.volumes.contains_key(name) {
            let mut c = Change::new(
                ResourceId::new(Kind::Volume, name),
                Subject::Volume,
                ChangeAction::Create,
                "the volume does not exist",
            );
            c.attributes.push(added("prune", prune));
            out.changes.push(c);
        }
    }
}

pub(super) fn added(key: &str, value: impl ToString) -> AttrChange {
    AttrChange {
        key: key.into(),
        before: None,
        after: Some(AttrValue::Text(value.to_string())),
        replaces: false,
    }
}

/// Attribute differences; `only` restricts the comparison to keys it accepts.
pub(super) fn attr_changes(
    before: Option<&Attributes>,
    after: &Attributes,
    only: &dyn Fn(&str, bool) -> bool,
) -> Vec<AttrChange> {
    let empty = Attributes::default();
    let before = before.unwrap_or(&empty);
    let keys: BTreeSet<&String> = before.0.keys().chain(after.0.keys()).collect();
    keys.into_iter()
        .filter_map(|k| {
            let b = before.0.get(k);
            let a = after.0.get(k);
            let replaces = a.or(b).is_some_and(|x| x.replaces);
            if !only(k, replaces) || b.map(|x| &x.value) == a.map(|x| &x.value) {
                return None;
            }
            Some(AttrChange {
                key: k.clone(),
                before: b.map(|x| x.value.clone()),
                after: a.map(|x| x.value.clone()),
                replaces,
            })
        })
        .collect()
}

pub(super) fn diff_file(
    id: &ResourceId,
    path: &str,
    rendered: Result<String, render::RenderError>,
    resource: &Resource,
    live: &LiveState,
    out: &mut Diff,
) {
    let after = match rendered {
        Ok(text) => text,
        Err(e) => {
            out.notes.push(format!("{id}: cannot render: {e}"));
            return;
        }
    };
    let before = live.files.get(path);
    if before == Some(&after) {
        return;
    }
    let (action, reason) = match before {
        None => (ChangeAction::Create, format!("{path} does not exist")),
        Some(_) => (
            ChangeAction::Update,
            format!("{path} differs from the rendered template"),
        ),
    };
    let mut c = Change::new(id.clone(), Subject::Resource(id.kind), action, reason);
    if before.is_none() {
        let attrs = resource.attributes(&crate::model::attributes::ReferenceDigest);
        c.attributes = attr_changes(None, &attrs, &|_, _| true);
    }
    c.file = Some(FileChange {
        path: path.to_string(),
        before: before.cloned(),
        after,
    });
    out.changes.push(c);
}

pub(super) fn diff_attributes(
    id: &ResourceId,
    resource: &Resource,
    desired: &DesiredState,
    live: &LiveState,
    opts: &DiffOptions,
    out: &mut Diff,
) {
    let attrs = desired_attributes(resource, opts);
    let observed = live.resources.get(id);
    let files = desired
        .migrations
        .get(id)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let pending_files = match (resource, observed) {
        (Resource::Database(db), Some(o)) => check_migrations(db, files, o, &mut out.errors),
        _ => files.iter().collect(),
    };
    let pending: Vec<String> = pending_files.iter().map(|m| m.stem()).collect();
    let lock_timeout = match resource {
        Resource::Database(db) => db
            .migrations
            .as_ref()
            .map(|m| m.lock_timeout)
            .unwrap_or_default(),
        _ => Default::default(),
    };
    let lints = match resource {
        Resource::Database(db) => crate::lint::lint_database(db, &pending_files),
        _ => crate::lint::lint(&pending_files, lock_timeout),
    };
    // converge's own migration settings have no live counterpart to compare with.
    let observable = |k: &str, _: bool| observed.is_none() || !k.starts_with("migrations.");
    let changes = attr_changes(observed.map(|o| &o.attributes), &attrs, &observable);
    if let (Some(before), Some(after)) = (
        observed.and_then(|o| o.attributes.get("encoding")),
        attrs.get("encoding"),
    ) {
        if before.value != after.value {
            out.errors.push(format!(
                "{id}: the encoding is {} and the desired state says {}; converge never changes it in place: dump, create the database anew and restore",
                before.value.display(),
                after.value.display()
            ));
        }
    }
    let (action, reason) = match (observed, changes.is_empty(), pending.is_empty()) {
        (None, _, _) => (ChangeAction::Create, "does not exist".to_string()),
        (Some(_), false, _) => {
            let keys: Vec<&str> = changes.iter().map(|c| c.key.as_str()).collect();
            (ChangeAction::Update, format!("{} changed", keys.join(", ")))
        }
        (Some(_), true, false) => (
            ChangeAction::Update,
            format!("{} pending migration(s)", pending.len()),
        ),
        (Some(_), true, true) => return,
    };
    let mut c = Change::new(id.clone(), Subject::Resource(id.kind), action, reason);
    c.attributes = changes;
    c.migrations = pending;
    c.lints = lints;
    out.changes.push(c);
}

/// Applied migrations must match their files; returns the pending ones (errors when not).
pub(super) fn check_migrations<'a>(
    db: &crate::model::Database,
    files: &'a [crate::model::MigrationFile],
    live: &crate::model::live::LiveResource,
    errors: &mut Vec<String>,
) -> Vec<&'a crate::model::MigrationFile> {
    let id = format!("database/{}", db.name);
    for (version, applied) in &live.applied_migrations {
        match files.iter().find(|f| f.version == *version) {
            Some(f) if f.checksum != applied.checksum => errors.push(format!(
                "{id}: migration {} was applied, and its file {} has changed since (checksum {} then, {} now)\n  = hint: put the file back as it was; to accept the new file on purpose run `converge migrations repair {}`",
                f.stem(),
                f.up_path,
                &applied.checksum[..applied.checksum.len().min(12)],
                &f.checksum[..12.min(f.checksum.len())],
                db.name
            )),
            Some(_) => {}
            None => errors.push(format!(
                "{id}: migration {}_{} is applied but its file is missing from {}\n  = hint: restore the file; applied migrations stay in the directory",
                crate::model::database::version_text(*version, files),
                applied.name,
                db.migrations.as_ref().map(|m| m.dir.as_str()).unwrap_or("the migrations directory")
            )),
        }
    }
    let latest = live.applied_migrations.keys().max().copied().unwrap_or(0);
    let allow = db.migrations.as_ref().is_some_and(|m| m.allow_out_of_order);
    let pending: Vec<_> = files
        .iter()
        .filter(|f| !live.applied_migrations.contains_key(&f.version))
        .collect();
    let latest_text = crate::model::database::version_text(latest, files);
    for f in &pending {
        if f.version < latest && !allow {
            errors.push(format!(
                "{id}: {} is older than the latest applied migration ({latest_text}) and has not run\n  = hint: give it a version above {latest_text}, or set `allow_out_of_order: true`",
                f.up_path
            ));
        }
    }
    pending
}

/// The attributes a provider records for a non-service resource, `prune` included for the
/// kinds that hold data (so deletion after removal from Git knows whether it was allowed).
pub fn desired_attributes(resource: &Resource, opts: &DiffOptions) -> Attributes {
    let mut attrs = resource.attributes(opts.secrets);
    match resource {
        Resource::Database(db) => attrs.text("prune", db.prune),
        Resource::Bucket(b) => attrs.text("prune", b.prune),
        _ => {}
    }
    attrs
}

/// Live resources that left the desired state: deleted only when pruning allows it.
pub(super) fn orphans(
    desired: &DesiredState,
    live: &LiveState,
    services: &[&Service],
    opts: &DiffOptions,
    out: &mut Diff,
) {
    let prune = desired.project.sync.prune;
    for (id, observed) in &live.resources {
        if desired.resources.contains_key(id) || !opts.reconciles(id.kind) {
            continue;
        }
        let holds_data = matches!(id.kind, Kind::Database | Kind::Bucket);
        let opted_in = observed
            .attributes
            .get("prune")
            .map(|a| a.value.display() == "true")
            .unwrap_or(false);
        if !prune {
            out.notes.push(format!(
                "{id} is no longer declared; kept because sync.prune is off"
            ));
            continue;
        }
        if holds_data && !opted_in {
            out.notes.push(format!("{id} is no longer declared; kept because it holds data and was not declared with `prune: true`"));
            continue;
        }
        let mut c = Change::new(
            id.clone(),
            Subject::Resource(id.kind),
            ChangeAction::Delete,
            "no longer declared (sync.prune is on)",
        );
        c.attributes = attr_changes(
            Some(&observed.attributes),
            &Attributes::default(),
            &|_, _| true,
        );
        if let Some(ls) = &observed.service {
            c.service = Some(ServiceChange::Remove {
                containers: ls.containers.iter().map(|c| c.name.clone()).collect(),
            });
        }
        out.changes.push(c);
    }
    let network = desired.project.name.to_string();
    if prune && services.is_empty() && live.networks.contains(&network) {
        out.changes.push(Change::new(
            ResourceId::new(Kind::Network, network.as_str()),
            Subject::Network,
            ChangeAction::Delete,
            "no service uses it",
        ));
    }
    let used: BTreeSet<&str> = desired
        .services()
        .flat_map(|s| s.volumes.iter().map(|v| v.source.as_str()))
        .collect();
    for (name, v) in &live.volumes {
        if used.contains(name.as_str()) {
            continue;
        }
        if prune && v.prune {
            out.changes.push(Change::new(
                ResourceId::new(Kind::Volume, name.as_str()),
                Subject::Volume,
                ChangeAction::Delete,
                "no longer used; it was declared with `prune: true`",
            ));
        } else {
            out.notes.push(format!("volume/{name} is no longer used; kept because volumes are deleted only with `prune: true`"));
        }
    }
}
