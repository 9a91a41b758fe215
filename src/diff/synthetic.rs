//! The live state that a successful apply of a diff would leave, computed in memory. It lets the
//! pure core be tested and benchmarked without servers (idempotence: a second diff is empty).

use crate::diff::{diff, Change, ChangeAction, DiffOptions, ServiceChange, Subject};
use crate::model::service::Strategy;
use crate::model::{Attributes, DesiredState, Kind, Resource, ResourceId};

use crate::model::live::{Color, LiveContainer, LiveResource, LiveService, LiveState, LiveVolume};

/// `live` with every change of `diff(desired, live)` carried out.
pub fn after_apply(desired: &DesiredState, live: &LiveState, opts: &DiffOptions) -> LiveState {
    let d = diff(desired, live, opts);
    let mut next = live.clone();
    for change in &d.changes {
        apply_change(desired, change, opts, &mut next);
    }
    next
}

fn apply_change(desired: &DesiredState, c: &Change, opts: &DiffOptions, live: &mut LiveState) {
    let name = c.id.name.clone();
    match (c.subject, c.action) {
        (Subject::Network, ChangeAction::Delete) => {
            live.networks.remove(&name);
        }
        (Subject::Network, _) => {
            live.networks.insert(name);
        }
        (Subject::Volume, ChangeAction::Delete) => {
            live.volumes.remove(&name);
        }
        (Subject::Volume, _) => {
            let prune = desired
                .services()
                .flat_map(|s| s.volumes.iter())
                .any(|v| v.source == name && v.prune);
            live.volumes.insert(name, LiveVolume { prune });
        }
        (Subject::Resource(kind), ChangeAction::Delete) => {
            live.resources.remove(&ResourceId::new(kind, name));
        }
        (Subject::Resource(kind), _) => {
            let id = ResourceId::new(kind, &name);
            let Some(resource) = desired.get(&id) else {
                return;
            };
            if let Some(f) = &c.file {
                live.files.insert(f.path.clone(), f.after.clone());
            }
            let entry = live.resources.entry(id.clone()).or_default();
            match resource {
                Resource::Service(s) => {
                    let attrs = resource.attributes(opts.secrets);
                    let hash = attrs.spec_hash();
                    entry.attributes =
                        Attributes(attrs.0.into_iter().filter(|(_, a)| a.replaces).collect());
                    let color = match (&c.service, s.deploy.strategy) {
                        (Some(ServiceChange::Deploy { to, .. }), _) => Some(*to),
                        (_, Strategy::BlueGreen) => Some(
                            entry
                                .service
                                .as_ref()
                                .and_then(|l| l.active_color)
                                .unwrap_or(Color::Blue),
                        ),
                        _ => None,
                    };
                    entry.service = Some(LiveService {
                        containers: (0..s.replicas)
                            .map(|i| LiveContainer {
                                name: container_name(desired, &name, color, i),
                                color,
                                replica: i,
                                spec_hash: hash.clone(),
                                running: true,
                                revision: None,
                                image_digest: None,
                            })
                            .collect(),
                        active_color: color,
                        image_now: None,
                    });
                }
                Resource::Router(_) | Resource::ConfigFile(_) => {}
                _ => {
                    entry.attributes = crate::diff::desired_attributes(resource, opts);
                    if kind == Kind::Database {
                        if let Some(ms) = desired.migrations.get(&id) {
                            entry.applied_migrations = ms
                                .iter()
                                .map(|m| {
                                    let applied = crate::model::live::AppliedMigration {
                                        name: m.name.clone(),
                                        checksum: m.checksum.clone(),
                                    };
                                    (m.version, applied)
                                })
                                .collect();
                        }
                    }
                }
            }
            let _: &mut LiveResource = entry;
        }
    }
}

fn container_name(
    desired: &DesiredState,
    service: &str,
    color: Option<Color>,
    replica: u32,
) -> String {
    match color {
        Some(c) => format!("{}-{service}-{c}-{}", desired.project.name, replica + 1),
        None => format!("{}-{service}-{}", desired.project.name, replica + 1),
    }
}
