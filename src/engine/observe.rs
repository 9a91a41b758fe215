//! Observe: every connected provider adds what it sees to one `LiveState`; then what spans
//! providers is derived (a blue-green service's active color from its router's file) and the
//! journal's memory is added (deferred steps, failed specs, replica overrides).

use crate::model::live::{Color, LiveState};
use crate::model::service::published_ports;
use crate::model::service::Strategy;
use crate::model::{DesiredState, Kind, Resource, ResourceId};
use crate::providers::{ProviderError, Registry};
use crate::secrets::Secrets;

use super::journal::{self, Journal};
use super::EngineError;

/// What a provider's observation failure is called in messages.
fn label(provider: &str) -> &'static str {
    match provider {
        "postgres" => "PostgreSQL",
        "s3" => "S3",
        _ => "live state",
    }
}

/// Observes everything `desired` could touch, with the journal's deferred steps, failed specs
/// and replica overrides.
pub async fn observe(
    registry: &Registry,
    secrets: &Secrets,
    desired: &DesiredState,
    state_dir: &std::path::Path,
) -> Result<LiveState, EngineError> {
    let project = desired.project.name.as_str();
    let entries = Journal::entries(state_dir, project);
    let mut live = LiveState {
        pending: journal::pending_of(&entries),
        ..Default::default()
    };
    for p in registry.providers() {
        p.observe(desired, secrets, &mut live)
            .await
            .map_err(|error: ProviderError| EngineError::Observe {
                what: label(p.name()),
                error: Box::new(error),
            })?;
    }
    active_colors_from_routers(desired, &mut live);
    latest_volume_intents(&entries, &mut live);
    live.failed = journal::failed_of(&entries);
    live.overrides = crate::scale::overrides(
        desired,
        &journal::autoscaled_of(&entries),
        &journal::budget_statuses(state_dir, project),
        journal::now(),
    );
    Ok(live)
}

/// Containers and rendered files only (what the autoscaler and budgets sample), without the
/// journal's memory: cheap enough for every sampling tick.
pub async fn observe_services(
    registry: &Registry,
    secrets: &Secrets,
    desired: &DesiredState,
) -> Result<LiveState, EngineError> {
    let mut live = LiveState::default();
    for p in registry.providers() {
        let kinds = p.kinds();
        let services = kinds.contains(&Kind::Service) || kinds.contains(&Kind::Router);
        if services {
            p.observe(desired, secrets, &mut live)
                .await
                .map_err(|error| EngineError::Observe {
                    what: "services",
                    error: Box::new(error),
                })?;
        }
    }
    active_colors_from_routers(desired, &mut live);
    Ok(live)
}

/// A blue-green service's active color is the one its router's file sends traffic to.
fn active_colors_from_routers(desired: &DesiredState, live: &mut LiveState) {
    for r in desired.resources.values() {
        let Resource::Router(router) = r else {
            continue;
        };
        let Some(text) = live.files.get(&router.path).cloned() else {
            continue;
        };
        for route in &router.routes {
            let Some(s) = desired.service(&route.service) else {
                continue;
            };
            if s.deploy.strategy != Strategy::BlueGreen || published_ports(s).len() != 2 {
                continue;
            }
            let ports = published_ports(s);
            let has = |p: u16| {
                text.contains(&format!(":{p};"))
                    || text.contains(&format!(":{p}\n"))
                    || text.contains(&format!(":{p} "))
            };
            let color = match (has(ports[0]), has(ports[1])) {
                (true, false) => Color::Blue,
                (false, true) => Color::Green,
                _ => continue,
            };
            let id = ResourceId::new(Kind::Service, s.name.as_str());
            if let Some(ls) = live.resources.get_mut(&id).and_then(|r| r.service.as_mut()) {
                ls.active_color = Some(color);
            }
        }
    }
}

/// A volume's `prune` is the latest one an apply recorded, not the label it was created with.
fn latest_volume_intents(entries: &[super::event::Entry], live: &mut LiveState) {
    for e in entries {
        if let super::event::Event::VolumeIntent { resource, data } = &e.event {
            let name = resource.strip_prefix("volume/").unwrap_or(resource);
            if let Some(v) = live.volumes.get_mut(name) {
                v.prune = data.prune;
            }
        }
    }
}
