//! `FilesProvider`: observes the files routers and config files render to, installs new
//! contents (check, reload) and puts previous contents back.

use std::any::Any;
use std::path::Path;

use async_trait::async_trait;

use crate::diff::Change;
use crate::model::live::LiveState;
use crate::model::{Action, DesiredState, Kind, Resource, ResourceId};
use crate::plan::{Step, StepAction};
use crate::providers::{Context, Provider, ProviderError, Undo};
use crate::secrets::Secrets;

pub const KINDS: &[Kind] = &[Kind::Router, Kind::ConfigFile];

pub struct FilesProvider;

/// A router's or config file's check and reload actions.
fn file_actions(desired: &DesiredState, id: &ResourceId) -> (Option<Action>, Option<Action>) {
    match desired.get(id) {
        Some(Resource::Router(r)) => (r.check.clone(), r.reload.clone()),
        Some(Resource::ConfigFile(c)) => (c.check.clone(), c.reload.clone()),
        _ => (None, None),
    }
}

#[async_trait]
impl Provider for FilesProvider {
    fn name(&self) -> &'static str {
        "files"
    }

    fn kinds(&self) -> &'static [Kind] {
        KINDS
    }

    async fn observe(
        &self,
        desired: &DesiredState,
        _secrets: &Secrets,
        live: &mut LiveState,
    ) -> Result<(), ProviderError> {
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
        Ok(())
    }

    /// Renders a file into place. For a switch, the engine verifies the new colors afterwards
    /// and runs the undo when they fail.
    async fn apply(
        &self,
        step: &Step,
        change: Option<&Change>,
        ctx: &Context<'_>,
    ) -> Result<Undo, ProviderError> {
        if !matches!(step.action, StepAction::Render | StepAction::Switch) {
            return Err(ProviderError::Unsupported {
                action: step.action.as_str().into(),
                resource: step.resource.to_string(),
                hint: String::new(),
            });
        }
        let file =
            change
                .and_then(|c| c.file.as_ref())
                .ok_or_else(|| super::FileError::NotRendered {
                    resource: step.resource.to_string(),
                })?;
        let (check, reload) = file_actions(ctx.desired, &step.resource);
        let previous = super::install(
            Path::new(&file.path),
            &file.after,
            check.as_ref(),
            reload.as_ref(),
        )
        .await?;
        Ok(Undo::RestoreFile {
            path: file.path.clone(),
            previous,
            reload,
        })
    }

    async fn undo(&self, undo: &Undo) -> Result<(), ProviderError> {
        let Undo::RestoreFile {
            path,
            previous,
            reload,
        } = undo
        else {
            return Ok(());
        };
        super::restore(Path::new(path), previous.as_deref()).map_err(|error| {
            super::FileError::Restore {
                path: path.clone(),
                error,
            }
        })?;
        if let Some(r) = reload {
            super::run_action(r).await?;
        }
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
