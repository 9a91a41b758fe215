//! What an apply leaves in the journal for later runs: the specs it deployed (for `converge
//! rollback`), the specs whose deploy failed (held back until the desired state changes), the
//! latest declared `prune` of volumes, and the safety copies taken before data was dropped.

use crate::diff::{ChangeAction, ServiceChange};
use crate::model::{DesiredState, Kind, Resource, ResourceId};
use crate::plan::{Plan, Step, StepAction};
use crate::providers::services::containers::spec_attributes;
use crate::providers::services::ContainerError;
use crate::providers::{Context, ProviderError, Undo};

use super::apply::{Changes, Run, StepError};
use super::event::{Deployed, Event, SpecHash, VolumeIntent};
use super::journal::{Journal, JournalError};

/// Down files drop data: before they run, the database gets a safety copy through the run's
/// safety net (encrypted with the project's backup key when there is one, listed like a
/// pruned database's), and the undo's own plain dump is then not needed. Without a net (crash
/// recovery) or a PostgreSQL provider, the undo keeps its plain `pg_dump` into a private file.
pub(super) async fn with_safety_copy(
    undo: &Undo,
    step: &Step,
    ctx: &Run<'_>,
    journal: &mut Journal,
    progress: &mut dyn FnMut(&str),
) -> Result<Undo, JournalError> {
    let Undo::MigrateDown {
        database,
        files,
        dump_to: Some(_),
    } = undo
    else {
        return Ok(undo.clone());
    };
    let Some(pg) = ctx.registry.postgres() else {
        return Ok(undo.clone());
    };
    if ctx.safety_net.is_none() {
        return Ok(undo.clone());
    }
    let what = crate::providers::Dropping::Database(database);
    if let Err(e) = crate::providers::safety::copy_before_drop(&ctx.ctx, Some(pg), what).await {
        // The undo's own dump runs next: a failed copy must not lose the chance of one.
        progress(&format!("      {e}; falling back to a plain pg_dump"));
        return Ok(undo.clone());
    }
    record_saved(step, ctx, journal, progress, &mut Vec::new())?;
    Ok(Undo::MigrateDown {
        database: database.clone(),
        files: files.clone(),
        dump_to: None,
    })
}

/// After `step` failed with `failure`, remembers the specs it was deploying as failed, so they
/// are not deployed again by themselves: only when the new version ran and proved bad.
pub(super) fn record_failed_specs(
    step: &Step,
    failure: &StepError,
    changes: &Changes<'_>,
    ctx: &Run<'_>,
    journal: &mut Journal,
) -> Result<(), JournalError> {
    if !failure.condemns_the_spec() {
        return Ok(());
    }
    for resource in deploys_implicated(step, changes, ctx.desired) {
        if let Some(hash) = spec_hash(&resource, changes, &ctx.ctx) {
            journal.record(Event::SpecFailed {
                resource: resource.to_string(),
                data: SpecHash { hash },
            })?;
        }
    }
    Ok(())
}

impl StepError {
    /// Whether the failure says the new spec is bad (it failed its health gate or after the
    /// switch, or the engine refused it), rather than that something was unreachable (a lost
    /// engine or registry, a missing image or secret): those are retried by the next apply.
    pub fn condemns_the_spec(&self) -> bool {
        match self {
            StepError::Verify(_)
            | StepError::SwitchedBack(_)
            | StepError::SwitchBackFailed { .. } => true,
            StepError::Provider(ProviderError::Containers(e)) => container_condemns(e),
            StepError::Provider(ProviderError::Runtime(e)) => !e.is_transient(),
            StepError::Provider(ProviderError::Swarm(e)) => e.condemns_the_spec(),
            // A router's file that cannot be written or reloaded, a secret or a database that
            // cannot be reached: nothing the new spec did.
            StepError::Provider(_) => false,
            StepError::NoProvider { .. } | StepError::Journal(_) => false,
        }
    }
}

fn container_condemns(e: &ContainerError) -> bool {
    match e {
        ContainerError::Gate(_) => true,
        ContainerError::Runtime { error, .. } | ContainerError::List { error, .. } => {
            !error.is_transient()
        }
        ContainerError::Image { .. }
        | ContainerError::Secret { .. }
        | ContainerError::RegistrySecret { .. } => false,
        ContainerError::Restored { error } | ContainerError::NotRestored { error, .. } => {
            container_condemns(error)
        }
        ContainerError::Restore { .. }
        | ContainerError::NoImage { .. }
        | ContainerError::MissingService { .. }
        | ContainerError::Unsupported { .. } => true,
    }
}

/// Prints and journals the safety copies `step` took before dropping data.
pub(super) fn record_saved(
    step: &Step,
    ctx: &Run<'_>,
    journal: &mut Journal,
    progress: &mut dyn FnMut(&str),
    saved: &mut Vec<String>,
) -> Result<(), JournalError> {
    for line in ctx.safety.take() {
        progress(&format!("      saved: {line}"));
        journal.record(Event::SafetyCopy {
            resource: step.resource.to_string(),
            detail: line.clone(),
        })?;
        saved.push(line);
    }
    Ok(())
}

/// Services whose new spec the failed step was deploying: those are remembered as failed.
fn deploys_implicated(
    step: &Step,
    changes: &Changes<'_>,
    desired: &DesiredState,
) -> Vec<ResourceId> {
    let deploying = |id: &ResourceId| {
        matches!(
            changes.get(id).and_then(|c| c.service.as_ref()),
            Some(
                ServiceChange::Start { .. }
                    | ServiceChange::Deploy { .. }
                    | ServiceChange::Replace { .. }
            )
        )
    };
    match (step.resource.kind, step.action) {
        (
            Kind::Service,
            StepAction::Create | StepAction::StartColor | StepAction::Replace | StepAction::Switch,
        ) => {
            vec![step.resource.clone()]
        }
        (Kind::Router, StepAction::Switch) => switched_services(&step.resource, desired)
            .into_iter()
            .filter(|id| deploying(id))
            .collect(),
        _ => Vec::new(),
    }
}

/// The services every route of a router sends traffic to.
pub(super) fn switched_services(router: &ResourceId, desired: &DesiredState) -> Vec<ResourceId> {
    match desired.get(router) {
        Some(Resource::Router(r)) => r
            .routes
            .iter()
            .map(|rt| ResourceId::new(Kind::Service, rt.service.as_str()))
            .collect(),
        _ => Vec::new(),
    }
}

/// The spec hash the plan recorded for a service's change (computed again for a plan saved by
/// an earlier version, which did not record it).
fn spec_hash(id: &ResourceId, changes: &Changes<'_>, ctx: &Context<'_>) -> Option<String> {
    if let Some(hash) = changes.get(id).and_then(|c| c.spec_hash.clone()) {
        return Some(hash);
    }
    let s = ctx.desired.service(&id.name)?;
    Some(spec_attributes(ctx.secrets, s).spec_hash())
}

/// After a successful apply, the spec of every service it deployed, for `converge rollback`.
pub(super) fn record_deployed(
    plan: &Plan,
    ctx: &Run<'_>,
    journal: &mut Journal,
) -> Result<(), JournalError> {
    for c in &plan.changes {
        if c.id.kind == Kind::Volume && c.action != ChangeAction::Delete {
            let prune = c.attributes.iter().find(|a| a.key == "prune");
            let prune = prune
                .and_then(|a| a.after.as_ref())
                .map(|v| v.display() == "true");
            journal.record(Event::VolumeIntent {
                resource: c.id.to_string(),
                data: VolumeIntent {
                    prune: prune.unwrap_or(false),
                },
            })?;
        }
        let color = match &c.service {
            Some(ServiceChange::Start { color, .. }) => *color,
            Some(ServiceChange::Deploy { to, .. }) => Some(*to),
            Some(ServiceChange::Replace { .. }) => None,
            _ => continue,
        };
        let Some(s) = ctx.desired.service(&c.id.name) else {
            continue;
        };
        let hash = c
            .spec_hash
            .clone()
            .unwrap_or_else(|| spec_attributes(ctx.secrets, s).spec_hash());
        journal.record(Event::Deployed {
            resource: c.id.to_string(),
            data: Deployed {
                hash,
                color,
                service: serde_json::to_value(s).unwrap_or_default(),
            },
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::health::GateError;
    use crate::providers::runtime::RuntimeError;

    fn runtime(e: RuntimeError) -> StepError {
        StepError::Provider(ProviderError::Containers(ContainerError::Runtime {
            container: "shop-api-green-1".into(),
            error: e,
        }))
    }

    #[test]
    fn a_spec_is_held_back_only_when_it_ran_and_proved_bad() {
        let gate = StepError::Provider(ProviderError::Containers(ContainerError::Gate(
            GateError::Exited {
                name: "shop-api-green-1".into(),
                code: Some(1),
            },
        )));
        assert!(gate.condemns_the_spec());
        assert!(StepError::Verify("failed after the switch".into()).condemns_the_spec());
        let refused = runtime(RuntimeError::Api {
            what: "create container".into(),
            message: "invalid mount config".into(),
        });
        assert!(refused.condemns_the_spec());
        let lost = runtime(RuntimeError::Connect {
            endpoint: "unix:///var/run/docker.sock".into(),
            message: "connection closed before message completed".into(),
        });
        assert!(!lost.condemns_the_spec());
        let image = StepError::Provider(ProviderError::Containers(ContainerError::Image {
            service: "api".into(),
            error: RuntimeError::Image {
                image: "ghcr.io/shop/api:1.4.2".into(),
                message: "unauthorized".into(),
            },
        }));
        assert!(!image.condemns_the_spec());
        let reload = StepError::Provider(ProviderError::Step("nginx -s reload: no pid".into()));
        assert!(!reload.condemns_the_spec());
    }
}
