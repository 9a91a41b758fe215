//! Verification after a traffic switch: the new color keeps running and passing its health
//! check for `verify_for`; otherwise the switch is undone.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::diff::ServiceChange;
use crate::model::live::Color;
use crate::providers::health::probe;
use crate::providers::services::containers::container_name;

use super::apply::{Changes, Run};
use crate::model::ResourceId;

/// The (service, color) pairs that `services` move to in this plan.
pub fn new_colors(services: Vec<ResourceId>, changes: &Changes<'_>) -> Vec<(ResourceId, Color)> {
    services
        .into_iter()
        .filter_map(|id| {
            let color = match changes.get(&id).and_then(|c| c.service.as_ref()) {
                Some(ServiceChange::Deploy { to, .. }) => *to,
                Some(ServiceChange::Start { color: Some(c), .. }) => *c,
                _ => return None,
            };
            Some((id, color))
        })
        .collect()
}

/// What a switch step's time went to: `switched in 38 ms; verified api/green for 5.0s`. A
/// first deploy says what its verification cannot do: there is no earlier color to go back to.
pub fn spent(
    ctx: &Run<'_>,
    targets: &[(ResourceId, Color)],
    changes: &Changes<'_>,
    switched: std::time::Duration,
    verified: std::time::Duration,
) -> String {
    let mut parts = Vec::new();
    if !switched.is_zero() {
        parts.push(format!("switched in {} ms", switched.as_millis()));
    }
    let checked: Vec<String> = targets
        .iter()
        .filter(|(id, _)| {
            ctx.desired
                .service(&id.name)
                .is_some_and(|s| s.health.is_some())
        })
        .map(|(id, color)| format!("{}/{color}", id.name))
        .collect();
    if checked.is_empty() {
        parts.push("nothing verified: no health check declared".into());
    } else {
        let secs = verified.as_secs_f64();
        parts.push(format!("verified {} for {secs:.1}s", checked.join(", ")));
    }
    let first: Vec<&str> = targets
        .iter()
        .filter(|(id, _)| {
            matches!(
                changes.get(id).and_then(|c| c.service.as_ref()),
                Some(ServiceChange::Start { .. })
            )
        })
        .map(|(id, _)| id.name.as_str())
        .collect();
    if !first.is_empty() {
        parts.push(format!(
            "first deploy of {}: no earlier color to switch back to, so a failure here could only take the route away, not restore service",
            first.join(", ")
        ));
    }
    parts.join("; ")
}

/// Keeps probing the new color for `verify_for` after the switch: the container must stay up
/// and its health check must not fail twice in a row.
pub async fn verify(ctx: &Run<'_>, targets: &[(ResourceId, Color)]) -> Result<(), String> {
    if let Some(swarm) = ctx.registry.swarm() {
        for (id, color) in targets {
            if let Some(s) = ctx.desired.service(&id.name) {
                swarm.verify_color(s, *color).await?;
            }
        }
        return Ok(());
    }
    let project = ctx.desired.project.name.as_str();
    let Some(rt) = ctx.registry.runtime() else {
        return Ok(());
    };
    for (id, color) in targets {
        let Some(s) = ctx.desired.service(&id.name) else {
            continue;
        };
        let Some(h) = &s.health else { continue };
        let deadline = Instant::now() + s.deploy.verify_for.to_std();
        let names: Vec<String> = (1..=s.replicas)
            .map(|r| container_name(project, s.name.as_str(), Some(*color), r))
            .collect();
        let mut failures: BTreeMap<&str, u32> = BTreeMap::new();
        while Instant::now() < deadline {
            for name in &names {
                let status = rt.status(name).await.map_err(|e| e.to_string())?;
                let Some(st) = status.filter(|st| st.running) else {
                    return Err(format!(
                        "{name} stopped during the {} verification after the switch",
                        s.deploy.verify_for
                    ));
                };
                match probe(rt, name, st.ip.as_deref(), h).await {
                    Ok(()) => {
                        failures.insert(name, 0);
                    }
                    Err(e) => {
                        let n = failures.entry(name).or_default();
                        *n += 1;
                        if *n >= 2 {
                            return Err(format!("{name} failed its health check during the {} verification after the switch: {e}", s.deploy.verify_for));
                        }
                    }
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            tokio::time::sleep(h.interval.to_std().min(left)).await;
        }
    }
    Ok(())
}
