//! Deferred steps: drains of the old color that run `drain` after a switch, kept in the journal
//! until they do (so they survive a restart), cancelled when their color takes traffic again.

use std::path::Path;

use crate::model::live::Color;
use crate::model::ResourceId;
use crate::providers::services::drain_color;

use super::apply::Run;
use super::journal::{self, Journal, JournalError};

/// Stops `color` of a service on the runtime.
async fn drain(ctx: &Run<'_>, id: &ResourceId, color: Color) -> Result<(), String> {
    if let Some(swarm) = ctx.registry.swarm() {
        return swarm.drain_color(id.name.as_str(), color).await;
    }
    let rt = ctx
        .registry
        .runtime()
        .ok_or("no container runtime is connected")?;
    drain_color(rt, ctx.desired.project.name.as_str(), id, color)
        .await
        .map_err(|e| e.to_string())
}

/// A new deploy into `color` supersedes a drain of that color still pending.
pub fn cancel_drains(
    journal: &mut Journal,
    resource: &ResourceId,
    color: Color,
) -> Result<(), JournalError> {
    for d in journal::open_deferred(&journal.read_all()) {
        if d.resource == resource.to_string() && d.action == "drain" && d.color == Some(color) {
            journal.record(journal::drain_done(
                &d,
                format!("cancelled: a new deploy uses {color}"),
            ))?;
        }
    }
    Ok(())
}

/// Runs deferred drains that are due; one whose color takes traffic again is cancelled instead.
pub async fn run_due_deferred(
    ctx: &Run<'_>,
    journal: &mut Journal,
    state_dir: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<(), JournalError> {
    let project = ctx.desired.project.name.as_str();
    for entry in journal::open_deferred(&Journal::entries(state_dir, project)) {
        if entry.due > journal::now() || entry.action != "drain" {
            continue;
        }
        let resource = entry.resource.clone();
        let Some(id) = ResourceId::parse(&resource, None) else {
            continue;
        };
        let color = entry.color;
        let active = ctx.live.service(&id).and_then(|l| l.active_color);
        let outcome = match color {
            Some(c) if active == Some(c) => "cancelled: that color takes traffic again".to_string(),
            Some(c) => match drain(ctx, &id, c).await {
                Ok(()) => format!("stopped {c}"),
                Err(e) => {
                    progress(&format!("  drain {resource} failed, will retry: {e}"));
                    continue;
                }
            },
            None => "nothing to drain".into(),
        };
        progress(&format!("  deferred drain {resource}: {outcome}"));
        journal.record(journal::drain_done(&entry, outcome))?;
    }
    Ok(())
}
