//! `FilesProvider`: observes the files routers and config files render to, installs new
//! contents (check, reload) and puts previous contents back.

use std::any::Any;
use std::path::Path;

use async_trait::async_trait;

use crate::diff::Change;
use crate::model::live::LiveState;
use crate::model::types::Duration;
use crate::model::{Action, DesiredState, Kind, Resource, ResourceId};
use crate::plan::{Step, StepAction};
use crate::policy::HostPolicy;
use crate::providers::{Context, Provider, ProviderError, Undo};
use crate::secrets::Secrets;

pub const KINDS: &[Kind] = &[Kind::Router, Kind::ConfigFile];

pub struct FilesProvider;

/// A router's or config file's check and reload actions, and their timeout.
fn file_actions(
    desired: &DesiredState,
    id: &ResourceId,
) -> (Option<Action>, Option<Action>, Option<Duration>) {
    match desired.get(id) {
        Some(Resource::Router(r)) => (r.check.clone(), r.reload.clone(), r.action_timeout),
        Some(Resource::ConfigFile(c)) => (c.check.clone(), c.reload.clone(), c.action_timeout),
        _ => (None, None, None),
    }
}

/// The paths of the desired state's routers and config files, when this host allows them all.
fn checked_paths(
    desired: &DesiredState,
    policy: &HostPolicy,
) -> Result<Vec<String>, ProviderError> {
    let project = desired.project.name.as_str();
    let mut paths = Vec::new();
    let mut refused = Vec::new();
    for r in desired.resources.values() {
        let path = match r {
            Resource::Router(x) => &x.path,
            Resource::ConfigFile(x) => &x.path,
            _ => continue,
        };
        match policy.check_write(project, path) {
            Ok(_) => paths.push(path.clone()),
            Err(e) => refused.push(format!("{}: {e}", r.id())),
        }
    }
    if refused.is_empty() {
        Ok(paths)
    } else {
        Err(not_allowed(refused))
    }
}

/// One error for every refused path.
fn not_allowed(refused: Vec<String>) -> ProviderError {
    super::FileError::NotAllowed {
        count: refused.len(),
        list: crate::policy::one_hint(refused),
    }
    .into()
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
        secrets: &Secrets,
        live: &mut LiveState,
    ) -> Result<(), ProviderError> {
        let paths = checked_paths(desired, secrets.policy())?;
        for path in paths {
            match super::read_live(Path::new(&path)) {
                Ok(Some(previous)) => {
                    live.files.insert(path, previous.text);
                }
                Ok(None) => {}
                Err(error) => {
                    return Err(super::FileError::Read {
                        path: path.into(),
                        error,
                    }
                    .into())
                }
            }
        }
        Ok(())
    }

    /// The previous contents, kept before a router's switch touches its file, so that a crash
    /// mid-switch puts traffic back where it was.
    async fn prepare(
        &self,
        step: &Step,
        change: Option<&Change>,
        ctx: &Context<'_>,
    ) -> Result<Option<Undo>, ProviderError> {
        let Some(file) = change.and_then(|c| c.file.as_ref()) else {
            return Ok(None);
        };
        let path = Path::new(&file.path);
        let previous = super::read_live(path).map_err(|error| super::FileError::Read {
            path: path.into(),
            error,
        })?;
        let saved = previous
            .map(|p| super::stash::save(ctx.state_dir, ctx.desired.project.name.as_str(), &p.text))
            .transpose()
            .map_err(|error| super::FileError::Stash {
                path: path.into(),
                error,
            })?;
        let (_, reload, _) = file_actions(ctx.desired, &step.resource);
        Ok(Some(Undo::RestoreFile {
            path: file.path.clone(),
            previous: None,
            saved,
            reload,
        }))
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
        let (check, reload, timeout) = file_actions(ctx.desired, &step.resource);
        let path = Path::new(&file.path);
        ctx.secrets
            .policy()
            .check_write(ctx.desired.project.name.as_str(), &file.path)
            .map_err(|e| not_allowed(vec![format!("{}: {e}", step.resource)]))?;
        let previous = super::read_live(path)
            .map_err(|error| super::FileError::Read {
                path: path.into(),
                error,
            })?
            .map(|p| p.text);
        let saved = previous
            .as_deref()
            .map(|text| super::stash::save(ctx.state_dir, ctx.desired.project.name.as_str(), text))
            .transpose()
            .map_err(|error| super::FileError::Stash {
                path: path.into(),
                error,
            })?;
        let installed = super::install(
            path,
            &file.after,
            previous.as_deref(),
            check.as_ref(),
            reload.as_ref(),
            timeout,
        )
        .await;
        if let Err(e) = installed {
            saved.as_deref().map(super::stash::discard);
            return Err(e.into());
        }
        Ok(Undo::RestoreFile {
            path: file.path.clone(),
            previous: None,
            saved,
            reload,
        })
    }

    async fn undo(&self, undo: &Undo) -> Result<(), ProviderError> {
        let Undo::RestoreFile {
            path,
            previous,
            saved,
            reload,
        } = undo
        else {
            return Ok(());
        };
        let restore_error = |error| super::FileError::Restore {
            path: path.clone(),
            error,
        };
        let previous = match saved {
            Some(copy) => Some(super::stash::load(copy).map_err(restore_error)?),
            None => previous.clone(),
        };
        super::restore(Path::new(path), previous.as_deref()).map_err(restore_error)?;
        if let Some(r) = reload {
            super::run_action(r, None).await?;
        }
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
