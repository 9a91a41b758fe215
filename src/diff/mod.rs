//! Compares the desired state with the live state: `diff(desired, live) -> Vec<Change>`.
//! Pure: no I/O. Decides create / update / replace / delete and, for blue-green services,
//! which color takes over, so routers can be rendered against the colors after the change.

pub mod synthetic;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::model::live::{Color, LiveService, LiveState};
use crate::model::service::Strategy;
use crate::model::service::{hosts_of, published_ports};
use crate::model::types::Duration;
use crate::model::{
    AttrValue, Attributes, DesiredState, Kind, Resource, ResourceId, SecretDigest, Service,
};
use crate::render::{self, ActiveColor};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeAction {
    Create,
    Update,
    Replace,
    Delete,
}

/// What a change is about: a declared kind, or a network/volume that services imply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Subject {
    Network,
    Volume,
    Resource(Kind),
}

/// One attribute's before and after; `None` is absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttrChange {
    pub key: String,
    pub before: Option<AttrValue>,
    pub after: Option<AttrValue>,
    /// Changing it needs new containers.
    pub replaces: bool,
}

/// A rendered file's content before and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileChange {
    pub path: String,
    pub before: Option<String>,
    pub after: String,
}

/// What happens to a service's containers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ServiceChange {
    /// Start `replicas` containers (in `color` for blue-green).
    Start { replicas: u32, color: Option<Color> },
    /// New containers replace the old ones, all at once (`recreate`) or one by one (`rolling`).
    Replace { strategy: Strategy, replicas: u32 },
    /// Blue-green: start `to`, gate, switch routers, verify, drain `from` after `drain`.
    Deploy {
        from: Color,
        to: Color,
        replicas: u32,
        verify_for: Duration,
        drain: Duration,
    },
    /// Change the number of running containers.
    Scale {
        from: u32,
        to: u32,
        color: Option<Color>,
    },
    /// Start containers that were stopped by hand.
    Repair { stopped: Vec<String> },
    /// Stop an idle color that is still running with no drain pending.
    Drain { color: Color },
    /// Remove every container of the service.
    Remove { containers: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub id: String,
    pub subject: Subject,
    pub action: ChangeAction,
    pub reason: String,
    pub attributes: Vec<AttrChange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileChange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceChange>,
    /// Pending migrations, by file name stem (`0002_add_channels`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub migrations: Vec<String>,
    /// Warnings about dangerous statements in the pending migrations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lints: Vec<crate::lint::Lint>,
    /// Ids of changes this one must wait for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// Set when the replica count comes from the autoscaler or a budget, not from Git: such a
    /// change is not drift.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<crate::scale::Origin>,
    /// Projected monthly cost before and after, when a Budget declares rates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<crate::cost::CostDelta>,
}

impl Change {
    fn new(id: String, subject: Subject, action: ChangeAction, reason: impl Into<String>) -> Self {
        Change {
            id,
            subject,
            action,
            reason: reason.into(),
            attributes: Vec::new(),
            file: None,
            service: None,
            migrations: Vec::new(),
            lints: Vec::new(),
            depends_on: Vec::new(),
            origin: None,
            cost: None,
        }
    }
}

/// What the diff saw but will not change, e.g. resources kept because pruning is off.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Diff {
    pub changes: Vec<Change>,
    pub notes: Vec<String>,
    /// The active color of each blue-green service once the changes are applied.
    pub colors: BTreeMap<String, ActiveColor>,
    /// Problems that stop the plan (a changed applied migration, an encoding change).
    #[serde(default)]
    pub errors: Vec<String>,
    /// Projected monthly cost before and after, when a Budget declares rates.
    #[serde(default)]
    pub cost: Option<crate::cost::CostSummary>,
}

pub struct DiffOptions<'a> {
    /// Only services placed on this host (all services when `None`).
    pub host: Option<&'a str>,
    pub secrets: &'a dyn SecretDigest,
    /// Kinds that a provider observed (all kinds when `None`, as offline); the others are noted, not planned.
    pub kinds: Option<&'a [Kind]>,
    /// Deploy specs that failed before anyway (`--retry-failed`).
    pub retry_failed: bool,
}

impl DiffOptions<'_> {
    fn reconciles(&self, kind: Kind) -> bool {
        self.kinds.is_none_or(|k| k.contains(&kind))
    }
}

/// Compares desired and live state.
pub fn diff(desired: &DesiredState, live: &LiveState, opts: &DiffOptions) -> Diff {
    let mut out = Diff::default();
    let services: Vec<&Service> = desired
        .services()
        .filter(|s| match opts.host {
            Some(h) => hosts_of(s, &desired.project).contains(&h),
            None => true,
        })
        .collect();
    infrastructure(desired, live, &services, &mut out);
    for s in &services {
        diff_service(s, live, opts, &mut out);
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
    let network = format!("network/{}", desired.project.name);
    for change in &mut out.changes {
        let Subject::Resource(kind) = change.subject else {
            continue;
        };
        let name = change.id.split_once('/').map(|(_, n)| n).unwrap_or("");
        let Some(r) = desired.get(&ResourceId::new(kind, name)) else {
            continue;
        };
        change.depends_on = r.dependencies().iter().map(|d| d.to_string()).collect();
        if let Resource::ConfigFile(_) = r {
            // Config files see every service (ports, colors): render after they change.
            change.depends_on = desired
                .services()
                .map(|s| format!("service/{}", s.name))
                .collect();
        }
        if let Resource::Service(s) = r {
            // Containers need the project network and their named volumes first.
            change.depends_on.push(network.clone());
            change.depends_on.extend(
                s.volumes
                    .iter()
                    .filter(|v| v.is_named_volume())
                    .map(|v| format!("volume/{}", v.source)),
            );
            change.depends_on.sort();
            change.depends_on.dedup();
        }
    }
    let in_scope = |s: &Service| match opts.host {
        Some(h) => hosts_of(s, &desired.project).contains(&h),
        None => true,
    };
    out.cost = crate::cost::estimate(desired, live, &in_scope, &mut out.changes);
    out
}

fn id_of(kind: Kind, name: &str) -> ResourceId {
    ResourceId::new(kind, name)
}

/// The project network and the named volumes that the services need.
fn infrastructure(desired: &DesiredState, live: &LiveState, services: &[&Service], out: &mut Diff) {
    let network = desired.project.name.to_string();
    if !services.is_empty() && !live.networks.contains(&network) {
        let mut c = Change::new(
            format!("network/{network}"),
            Subject::Network,
            ChangeAction::Create,
            "the project's network does not exist",
        );
        c.attributes.push(added("driver", "bridge"));
        out.changes.push(c);
    }
    let mut volumes: BTreeMap<&str, bool> = BTreeMap::new();
    for s in services {
        for v in s.volumes.iter().filter(|v| v.is_named_volume()) {
            *volumes.entry(v.source.as_str()).or_default() |= v.prune;
        }
    }
    for (name, prune) in volumes {
        if !live.volumes.contains_key(name) {
            let mut c = Change::new(
                format!("volume/{name}"),
                Subject::Volume,
                ChangeAction::Create,
                "the volume does not exist",
            );
            c.attributes.push(added("prune", prune));
            out.changes.push(c);
        }
    }
}

fn added(key: &str, value: impl ToString) -> AttrChange {
    AttrChange {
        key: key.into(),
        before: None,
        after: Some(AttrValue::Text(value.to_string())),
        replaces: false,
    }
}

/// Attribute differences; `only` restricts the comparison to keys it accepts.
fn attr_changes(
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

fn service_attributes(s: &Service, opts: &DiffOptions) -> Attributes {
    Resource::Service(s.clone()).attributes(opts.secrets)
}

/// Attributes that live containers can show: the spec and the replica count.
fn container_visible(key: &str, replaces: bool) -> bool {
    replaces || key == "replicas"
}

fn diff_service(s: &Service, live: &LiveState, opts: &DiffOptions, out: &mut Diff) {
    let id = id_of(Kind::Service, s.name.as_str());
    let desired = service_attributes(s, opts);
    let hash = desired.spec_hash();
    let observed = live.resources.get(&id);
    let ls = observed
        .and_then(|r| r.service.as_ref())
        .filter(|ls| !ls.containers.is_empty());
    let bg = s.deploy.strategy == Strategy::BlueGreen;
    let spec_failed = !opts.retry_failed
        && live
            .failed
            .get(&id.to_string())
            .is_some_and(|f| f.contains(&hash));
    let failed_note = || {
        format!(
            "{id}: this spec ({hash}) failed and was rolled back; it is not retried until the desired state changes or --retry-failed is given"
        )
    };
    let overridden = live.overrides.get(s.name.as_str());
    let Some(ls) = ls else {
        if spec_failed {
            out.notes.push(failed_note());
            return;
        }
        if s.replicas == 0 {
            let why = overridden
                .map(|o| o.reason.as_str())
                .unwrap_or("replicas: 0");
            out.notes.push(format!("{id}: not running ({why})"));
            return;
        }
        let color = bg.then_some(Color::Blue);
        let mut c = Change::new(
            id.to_string(),
            Subject::Resource(Kind::Service),
            ChangeAction::Create,
            "not running",
        );
        c.attributes = attr_changes(None, &desired, &container_visible);
        c.service = Some(ServiceChange::Start {
            replicas: s.replicas,
            color,
        });
        if let Some(color) = color {
            c.reason = format!("not running; starts as {color}");
            out.colors.insert(s.name.to_string(), color_port(s, color));
        }
        out.changes.push(c);
        return;
    };
    let mut before = observed.map(|r| r.attributes.clone()).unwrap_or_default();
    let active = if bg { Some(active_color(ls)) } else { None };
    let current: Vec<_> = ls.of_color(active).collect();
    before.text("replicas", current.iter().filter(|c| c.running).count());
    let attrs = attr_changes(Some(&before), &desired, &container_visible);
    let spec_changed = current.is_empty() || current.iter().any(|c| c.spec_hash != hash);
    let changed_keys: Vec<&str> = attrs
        .iter()
        .filter(|a| a.replaces)
        .map(|a| a.key.as_str())
        .collect();
    let why = if changed_keys.is_empty() {
        "container spec changed".to_string()
    } else {
        format!("{} changed", changed_keys.join(", "))
    };
    if spec_changed && spec_failed {
        out.notes.push(failed_note());
        if let Some(from) = active {
            out.colors.insert(s.name.to_string(), color_port(s, from));
        }
        return;
    }
    let mut change = |action, reason: String, sc| {
        let mut c = Change::new(
            id.to_string(),
            Subject::Resource(Kind::Service),
            action,
            reason,
        );
        c.attributes = attrs.clone();
        c.service = Some(sc);
        out.changes.push(c);
    };
    if let Some(from) = active {
        let to = from.other();
        if spec_changed {
            change(
                ChangeAction::Update,
                format!("blue-green: {to} takes over from {from} ({why})"),
                ServiceChange::Deploy {
                    from,
                    to,
                    replicas: s.replicas,
                    verify_for: s.deploy.verify_for,
                    drain: s.deploy.drain,
                },
            );
            out.colors.insert(s.name.to_string(), color_port(s, to));
            return;
        }
        out.colors.insert(s.name.to_string(), color_port(s, from));
    } else if spec_changed {
        change(
            ChangeAction::Replace,
            why,
            ServiceChange::Replace {
                strategy: s.deploy.strategy,
                replicas: s.replicas,
            },
        );
        return;
    }
    let stopped: Vec<String> = current
        .iter()
        .filter(|c| !c.running)
        .map(|c| c.name.clone())
        .collect();
    let running = (current.len() - stopped.len()) as u32;
    if !stopped.is_empty() && current.len() as u32 <= s.replicas {
        change(
            ChangeAction::Update,
            format!(
                "drift: {} of {} containers stopped ({})",
                stopped.len(),
                current.len(),
                stopped.join(", ")
            ),
            ServiceChange::Repair { stopped },
        );
    } else if current.len() as u32 != s.replicas || running != current.len() as u32 {
        let mut reason = format!("replicas {} → {}", current.len(), s.replicas);
        if let Some(o) = overridden.filter(|o| o.replicas == s.replicas) {
            reason = format!("{reason}: {}", o.reason);
        }
        change(
            ChangeAction::Update,
            reason,
            ServiceChange::Scale {
                from: current.len() as u32,
                to: s.replicas,
                color: active,
            },
        );
    }
    if let Some(active) = active {
        let idle = active.other();
        let idle_running = ls.of_color(Some(idle)).any(|c| c.running);
        let drain_pending = live
            .pending
            .iter()
            .any(|p| p.resource == id.to_string() && p.action == "drain");
        if idle_running && !drain_pending {
            change(
                ChangeAction::Update,
                format!("idle color {idle} is still running with no drain pending"),
                ServiceChange::Drain { color: idle },
            );
        }
    }
    if let Some(o) = overridden.filter(|o| o.replicas == s.replicas) {
        let id = id.to_string();
        for c in out.changes.iter_mut().filter(|c| c.id == id) {
            if matches!(c.service, Some(ServiceChange::Scale { .. })) {
                c.origin = Some(o.origin);
            }
        }
    }
}

/// The color taking traffic: as the provider derived it, else the one with running containers.
fn active_color(ls: &LiveService) -> Color {
    ls.active_color
        .or_else(|| {
            ls.containers
                .iter()
                .find(|c| c.running)
                .and_then(|c| c.color)
        })
        .or_else(|| ls.containers.first().and_then(|c| c.color))
        .unwrap_or(Color::Blue)
}

fn current_color(s: &Service, ls: Option<&LiveService>) -> Option<ActiveColor> {
    let ls = ls.filter(|l| !l.containers.is_empty())?;
    Some(color_port(s, active_color(ls)))
}

fn color_port(s: &Service, color: Color) -> ActiveColor {
    let port = match color {
        Color::Blue => s.deploy.blue.as_ref(),
        Color::Green => s.deploy.green.as_ref(),
    }
    .map(|c| c.port.get())
    .or_else(|| published_ports(s).first().copied())
    .unwrap_or(0);
    ActiveColor {
        color: color.as_str().into(),
        port,
    }
}

fn diff_file(
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
    let mut c = Change::new(id.to_string(), Subject::Resource(id.kind), action, reason);
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

fn diff_attributes(
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
    let lints = crate::lint::lint(&pending_files, lock_timeout);
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
    let mut c = Change::new(id.to_string(), Subject::Resource(id.kind), action, reason);
    c.attributes = changes;
    c.migrations = pending;
    c.lints = lints;
    out.changes.push(c);
}

/// Applied migrations must match their files; returns the pending ones (errors when not).
fn check_migrations<'a>(
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
                "{id}: migration {:04}_{} is applied but its file is missing from {}\n  = hint: restore the file; applied migrations stay in the directory",
                version,
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
    for f in &pending {
        if f.version < latest && !allow {
            errors.push(format!(
                "{id}: {} is older than the latest applied migration ({latest:04}) and has not run\n  = hint: give it a version above {latest:04}, or set `allow_out_of_order: true`",
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
fn orphans(
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
            id.to_string(),
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
            format!("network/{network}"),
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
                format!("volume/{name}"),
                Subject::Volume,
                ChangeAction::Delete,
                "no longer used; it was declared with `prune: true`",
            ));
        } else {
            out.notes.push(format!("volume/{name} is no longer used; kept because volumes are deleted only with `prune: true`"));
        }
    }
}
