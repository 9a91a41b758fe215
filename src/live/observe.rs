//! Gathers the live state from every provider this build has: Docker (containers, networks,
//! volumes), rendered files on disk, and the deferred steps the journal still holds.

use crate::load::validate::published_ports;
use crate::model::service::Strategy;
use crate::model::{DesiredState, Kind, Resource, ResourceId};

use super::docker::{Docker, DockerError};
use super::{Color, LiveState, PendingStep};

/// Kinds that have a provider in this build; the others are planned offline only.
pub const RECONCILED: &[Kind] = &[Kind::Service, Kind::Router, Kind::ConfigFile];

/// Observes everything `desired` could touch.
pub async fn observe(
    desired: &DesiredState,
    docker: &Docker,
    pending: Vec<PendingStep>,
) -> Result<LiveState, DockerError> {
    let mut live = LiveState {
        pending,
        ..Default::default()
    };
    docker.observe(&mut live).await?;
    for r in desired.resources.values() {
        let path = match r {
            Resource::Router(x) => &x.path,
            Resource::ConfigFile(x) => &x.path,
            _ => continue,
        };
        if let Ok(text) = tokio::fs::read_to_string(path).await {
            live.files.insert(path.clone(), text);
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
