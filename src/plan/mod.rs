//! Turns changes into an ordered plan of steps, each with what it waits for and what undoes it.
//! A plan is data: it renders as text, JSON or markdown, and can be saved and applied later.

pub mod json;
pub mod markdown;
mod step;
pub mod text;

pub use step::{Compensation, Step, StepAction};

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use serde::{Deserialize, Serialize};

use crate::diff::{Change, ChangeAction, Diff, ServiceChange, Subject};
use crate::model::live::PendingStep;
use crate::model::service::Strategy;
use crate::model::{DesiredState, Kind, Resource, ResourceId};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub add: usize,
    pub change: usize,
    pub destroy: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub project: String,
    pub revision: Option<String>,
    pub environment: Option<String>,
    pub host: Option<String>,
    /// Fingerprint of the live state this plan was made against.
    pub fingerprint: String,
    pub changes: Vec<Change>,
    pub steps: Vec<Step>,
    pub notes: Vec<String>,
    /// Deferred steps from earlier applies that have not run yet.
    pub pending: Vec<PendingStep>,
    /// Problems that stop this plan from being applied.
    #[serde(default)]
    pub errors: Vec<String>,
    /// Projected monthly cost before and after, when a Budget declares rates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<crate::cost::CostSummary>,
    /// Resources held back on an earlier spec because the desired one failed: a difference
    /// between live and desired state that applying will not close.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held_back: Vec<String>,
    /// What recovery of an interrupted run will do before the next apply plans anew.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recovery: Vec<String>,
    /// Made without reading live state (`plan --offline`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub offline: bool,
}

impl Plan {
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for c in &self.changes {
            match c.action {
                ChangeAction::Create => s.add += 1,
                ChangeAction::Update => s.change += 1,
                ChangeAction::Delete => s.destroy += 1,
                ChangeAction::Replace => {
                    s.add += 1;
                    s.destroy += 1
                }
            }
        }
        s
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Whether live state matches the desired state: no change, nothing held back and no
    /// interrupted run to recover (what `--detailed-exitcode` reports).
    pub fn converged(&self) -> bool {
        self.changes.is_empty() && self.held_back.is_empty() && self.recovery.is_empty()
    }

    /// Lint warnings of every pending migration.
    pub fn lints(&self) -> impl Iterator<Item = &crate::lint::Lint> {
        self.changes.iter().flat_map(|c| c.lints.iter())
    }
}

/// Where a plan comes from, for its header.
pub struct PlanContext<'a> {
    pub revision: Option<&'a str>,
    pub host: Option<&'a str>,
    pub fingerprint: String,
    pub pending: Vec<PendingStep>,
}

/// Orders the changes (dependencies, then phases; deletions last, in reverse) and expands them into steps.
pub fn plan(desired: &DesiredState, diff: Diff, ctx: PlanContext) -> Plan {
    let Diff {
        changes,
        notes,
        colors: _,
        errors,
        cost,
        held_back,
    } = diff;
    let (deletes, others): (Vec<Change>, Vec<Change>) = changes
        .into_iter()
        .partition(|c| c.action == ChangeAction::Delete);
    let mut ordered = order(others);
    let mut deletes = order(deletes);
    deletes.reverse();
    ordered.extend(deletes);

    let mut builder = StepBuilder::default();
    let mut drains = Vec::new();
    for change in &ordered {
        builder.expand(change, desired, &mut drains);
    }
    for (resource, detail, after) in drains {
        let mut waits = vec![after];
        waits.extend(builder.switches_for(&resource.to_string()));
        builder.push(&resource, StepAction::Drain, detail, waits, None, true);
    }
    Plan {
        project: desired.project.name.to_string(),
        revision: ctx.revision.map(str::to_string),
        environment: desired.environment.clone(),
        host: ctx.host.map(str::to_string),
        fingerprint: ctx.fingerprint,
        changes: ordered,
        steps: builder.steps,
        notes,
        pending: ctx.pending,
        errors,
        cost,
        held_back,
        recovery: Vec::new(),
        offline: false,
    }
}

fn phase(c: &Change) -> u8 {
    match c.subject {
        Subject::Network | Subject::Volume => 0,
        Subject::Resource(Kind::Bucket) | Subject::Resource(Kind::Notifier) => 0,
        Subject::Resource(Kind::Database) => 1,
        Subject::Resource(Kind::Service) => 2,
        Subject::Resource(Kind::Router) | Subject::Resource(Kind::ConfigFile) => 3,
        Subject::Resource(_) => 4,
    }
}

/// Kahn's algorithm; among ready changes the lowest phase, then the id, goes first.
fn order(changes: Vec<Change>) -> Vec<Change> {
    let index: BTreeMap<&ResourceId, usize> = changes
        .iter()
        .enumerate()
        .map(|(i, c)| (&c.id, i))
        .collect();
    // Among ready changes, ties go by the id's text, as plans have always been ordered.
    let texts: Vec<String> = changes.iter().map(|c| c.id.to_string()).collect();
    let mut waiting = vec![0usize; changes.len()];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); changes.len()];
    for (i, c) in changes.iter().enumerate() {
        for dep in &c.depends_on {
            if let Some(&j) = index.get(dep) {
                waiting[i] += 1;
                dependents[j].push(i);
            }
        }
    }
    let key = |i: usize| Reverse((phase(&changes[i]), &texts[i], i));
    let mut ready: BinaryHeap<_> = (0..changes.len())
        .filter(|&i| waiting[i] == 0)
        .map(key)
        .collect();
    let mut out = Vec::with_capacity(changes.len());
    while let Some(Reverse((_, _, i))) = ready.pop() {
        out.push(i);
        for &d in &dependents[i] {
            waiting[d] -= 1;
            if waiting[d] == 0 {
                ready.push(key(d));
            }
        }
    }
    // Validation rejects cycles; anything left (it cannot be) keeps its place rather than vanish.
    for i in 0..changes.len() {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    let mut slots: Vec<Option<Change>> = changes.into_iter().map(Some).collect();
    out.into_iter().filter_map(|i| slots[i].take()).collect()
}

#[derive(Default)]
struct StepBuilder {
    steps: Vec<Step>,
    /// The last step of each resource, for `waits_for`.
    last: BTreeMap<ResourceId, usize>,
    /// Router steps that switch traffic, by the service they switch.
    switches: BTreeMap<String, Vec<usize>>,
}

impl StepBuilder {
    fn push(
        &mut self,
        resource: &ResourceId,
        action: StepAction,
        detail: String,
        waits_for: Vec<usize>,
        compensation: Option<Compensation>,
        deferred: bool,
    ) -> usize {
        let id = self.steps.len() + 1;
        let mut waits: Vec<usize> = waits_for;
        if let Some(prev) = self.last.get(resource) {
            waits.push(*prev);
        }
        waits.sort();
        waits.dedup();
        self.steps.push(Step {
            id,
            resource: resource.clone(),
            action,
            detail,
            waits_for: waits,
            compensation,
            deferred,
        });
        self.last.insert(resource.clone(), id);
        id
    }

    fn deps(&self, change: &Change) -> Vec<usize> {
        change
            .depends_on
            .iter()
            .filter_map(|d| self.last.get(d).copied())
            .collect()
    }

    /// Steps that switch traffic for `service_id`.
    fn switches_for(&self, service_id: &str) -> Vec<usize> {
        self.switches.get(service_id).cloned().unwrap_or_default()
    }

    fn expand(
        &mut self,
        c: &Change,
        desired: &DesiredState,
        drains: &mut Vec<(ResourceId, String, usize)>,
    ) {
        let deps = self.deps(c);
        let id = &c.id;
        let comp = |action, detail: &str| {
            Some(Compensation {
                action,
                detail: detail.to_string(),
            })
        };
        match (&c.service, c.action, c.subject) {
            (Some(sc), _, _) => self.expand_service(c, sc, desired, deps, drains),
            (None, ChangeAction::Delete, subject) => {
                let holds_data =
                    matches!(subject, Subject::Volume | Subject::Resource(Kind::Database));
                let save = if holds_data {
                    "save a safety copy, then "
                } else {
                    ""
                };
                self.push(
                    id,
                    StepAction::Delete,
                    format!("{save}delete {id}"),
                    deps,
                    None,
                    false,
                );
            }
            (None, _, Subject::Network) => {
                self.push(
                    id,
                    StepAction::Create,
                    if desired.project.providers.swarm.is_some() {
                        "create the overlay network".into()
                    } else {
                        "create the bridge network".into()
                    },
                    deps,
                    comp(StepAction::Delete, "remove the network"),
                    false,
                );
            }
            (None, action, Subject::Volume) => {
                let (a, detail) = match action {
                    ChangeAction::Update => (StepAction::Update, "record its declared `prune`"),
                    _ => (StepAction::Create, "create the named volume"),
                };
                self.push(id, a, detail.into(), deps, None, false);
            }
            (None, action, Subject::Resource(Kind::Router | Kind::ConfigFile)) => {
                let file = c.file.as_ref().map(|f| f.path.as_str()).unwrap_or("");
                let switching = self.router_switches(c, desired);
                let (step_action, detail) = if switching.is_empty() {
                    (StepAction::Render, format!("write {file}, check, reload"))
                } else {
                    (
                        StepAction::Switch,
                        format!(
                            "route {} to the new color: write {file}, check, reload",
                            switching
                                .iter()
                                .map(|s| s.to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                };
                let mut waits = deps;
                for s in &switching {
                    waits.extend(self.last.get(s).copied());
                }
                let undo = if action == ChangeAction::Create {
                    "remove the file and reload"
                } else {
                    "restore the previous file and reload"
                };
                let step = self.push(
                    id,
                    step_action,
                    detail,
                    waits,
                    comp(step_action, undo),
                    false,
                );
                for s in switching {
                    self.switches.entry(s.to_string()).or_default().push(step);
                }
            }
            (None, action, Subject::Resource(kind)) => {
                let verb = if action == ChangeAction::Create {
                    StepAction::Create
                } else {
                    StepAction::Update
                };
                let has_attr_change = action == ChangeAction::Create || !c.attributes.is_empty();
                if has_attr_change {
                    let undo = match (action, kind) {
                        // Data-holding resources are never removed or reverted by a compensation.
                        (_, Kind::Database | Kind::Bucket) => None,
                        (ChangeAction::Create, _) => comp(StepAction::Delete, "remove it"),
                        _ => comp(StepAction::Update, "restore the previous settings"),
                    };
                    self.push(
                        id,
                        verb,
                        format!("{} {}", verb.as_str(), id),
                        deps.clone(),
                        undo,
                        false,
                    );
                }
                if !c.migrations.is_empty() {
                    self.push_migrations(c, desired, deps);
                }
            }
        }
    }

    fn push_migrations(&mut self, c: &Change, desired: &DesiredState, deps: Vec<usize>) {
        let files: Vec<&crate::model::MigrationFile> = desired
            .migrations
            .get(&c.id)
            .map(|fs| {
                fs.iter()
                    .filter(|m| c.migrations.contains(&m.stem()))
                    .collect()
            })
            .unwrap_or_default();
        let note = crate::lint::migrate_step_note(desired.get(&c.id), &files);
        let undo = note.reversible.then(|| Compensation {
            action: StepAction::Migrate,
            detail: "run the down migrations in reverse".into(),
        });
        let detail = format!(
            "apply {} migration(s): {}{}",
            c.migrations.len(),
            c.migrations.join(", "),
            note.text
        );
        self.push(&c.id, StepAction::Migrate, detail, deps, undo, false);
    }

    /// Ids of the blue-green services this router routes that change color in this plan.
    fn router_switches(&self, c: &Change, desired: &DesiredState) -> Vec<ResourceId> {
        let Some(Resource::Router(r)) = desired.get(&c.id) else {
            return Vec::new();
        };
        let mut ids: Vec<ResourceId> = r
            .routes
            .iter()
            .map(|rt| ResourceId::new(Kind::Service, rt.service.as_str()))
            .filter(|s| {
                self.steps
                    .iter()
                    .any(|st| st.resource == *s && st.action == StepAction::StartColor)
            })
            .collect();
        // All are services: by name is the order of their ids' text.
        ids.sort_by(|a, b| a.name.cmp(&b.name));
        ids.dedup();
        ids
    }

    fn expand_service(
        &mut self,
        c: &Change,
        sc: &ServiceChange,
        desired: &DesiredState,
        deps: Vec<usize>,
        drains: &mut Vec<(ResourceId, String, usize)>,
    ) {
        let id = &c.id;
        let routed = desired.resources.values().any(|r| match r {
            Resource::Router(rt) => rt
                .routes
                .iter()
                .any(|x| id.kind == Kind::Service && x.service == id.name.as_str()),
            _ => false,
        });
        let comp = |action, detail: String| Some(Compensation { action, detail });
        match sc {
            ServiceChange::Start {
                replicas,
                color: Some(color),
            } => {
                self.push(
                    id,
                    StepAction::StartColor,
                    format!("start {replicas} replica(s) as {color}, wait for the health gate"),
                    deps,
                    comp(StepAction::Delete, format!("remove the {color} containers")),
                    false,
                );
            }
            ServiceChange::Start {
                replicas,
                color: None,
            } => {
                self.push(
                    id,
                    StepAction::Create,
                    format!("start {replicas} replica(s)"),
                    deps,
                    comp(StepAction::Delete, "remove the new containers".into()),
                    false,
                );
            }
            ServiceChange::Replace { strategy, replicas } => {
                let swarm = desired.project.providers.swarm.is_some();
                let how = match strategy {
                    Strategy::Rolling if swarm => {
                        "Swarm updates one task at a time and rolls back on failure"
                    }
                    Strategy::Rolling => "one replica at a time, each health-gated",
                    _ if swarm => "Swarm replaces all tasks at once and rolls back on failure",
                    _ => "stop the old containers, start the new ones",
                };
                self.push(
                    id,
                    StepAction::Replace,
                    format!(
                        "{strategy} {replicas} replica(s): {how}",
                        strategy = strategy.as_str()
                    ),
                    deps,
                    comp(
                        StepAction::Replace,
                        "restore the previous containers".into(),
                    ),
                    false,
                );
            }
            ServiceChange::Deploy {
                from,
                to,
                replicas,
                verify_for,
                drain,
            } => {
                let start = self.push(
                    id,
                    StepAction::StartColor,
                    format!("start {replicas} replica(s) as {to}, wait for the health gate"),
                    deps,
                    comp(StepAction::Delete, format!("remove the {to} containers")),
                    false,
                );
                if !routed {
                    let step = self.push(id, StepAction::Switch, format!("make {to} the active color (no router routes this service), verify for {verify_for}"), vec![start], comp(StepAction::Switch, format!("make {from} active again")), false);
                    self.switches.entry(id.to_string()).or_default().push(step);
                }
                drains.push((
                    id.clone(),
                    format!("stop {from} {drain} after the switch"),
                    start,
                ));
            }
            ServiceChange::Scale { from, to, color } => {
                let of = color.map(|c| format!(" ({c})")).unwrap_or_default();
                self.push(
                    id,
                    StepAction::Scale,
                    format!("replicas {from} → {to}{of}"),
                    deps,
                    comp(StepAction::Scale, format!("back to {from} replica(s)")),
                    false,
                );
            }
            ServiceChange::Repair { stopped } => {
                self.push(
                    id,
                    StepAction::Start,
                    format!("start stopped container(s): {}", stopped.join(", ")),
                    deps,
                    None,
                    false,
                );
            }
            ServiceChange::Drain { color } => {
                self.push(
                    id,
                    StepAction::Drain,
                    format!("stop the idle {color} containers"),
                    deps,
                    None,
                    false,
                );
            }
            ServiceChange::Remove { containers } => {
                self.push(
                    id,
                    StepAction::Delete,
                    format!("remove container(s): {}", containers.join(", ")),
                    deps,
                    None,
                    false,
                );
            }
        }
    }
}
