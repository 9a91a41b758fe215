//! `PostgresProvider`: databases, their roles, grants, extensions and migrations.

use std::any::Any;

use async_trait::async_trait;

use crate::diff::Change;
use crate::model::live::LiveState;
use crate::model::{DesiredState, Kind, Resource};
use crate::plan::{Step, StepAction};
use crate::providers::{Context, Provider, ProviderError, Undo};
use crate::secrets::Secrets;

use super::{database, Postgres};

pub const KINDS: &[Kind] = &[Kind::Database];

pub struct PostgresProvider {
    pg: Postgres,
}

impl PostgresProvider {
    pub fn new(pg: Postgres) -> Self {
        PostgresProvider { pg }
    }

    pub fn postgres(&self) -> &Postgres {
        &self.pg
    }
}

#[async_trait]
impl Provider for PostgresProvider {
    fn name(&self) -> &'static str {
        "postgres"
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
        Ok(self.pg.observe(desired, secrets, live).await?)
    }

    async fn apply(
        &self,
        step: &Step,
        change: Option<&Change>,
        ctx: &Context<'_>,
    ) -> Result<Undo, ProviderError> {
        let name = step.resource.name.as_str();
        if step.action == StepAction::Delete {
            let what = crate::providers::Dropping::Database(name);
            crate::providers::safety::copy_before_drop(ctx, Some(&self.pg), what).await?;
            return Ok(database::drop(&self.pg, name).await?);
        }
        let Some(Resource::Database(db)) = ctx.desired.get(&step.resource) else {
            return Err(format!("{} is not in the desired state", step.resource).into());
        };
        Ok(match step.action {
            StepAction::Create | StepAction::Update => {
                database::reconcile(&self.pg, ctx, db).await?
            }
            StepAction::Migrate => database::migrate(&self.pg, ctx, db, change).await?,
            other => return Err(format!("cannot {} a database", other.as_str()).into()),
        })
    }

    async fn undo(&self, undo: &Undo) -> Result<(), ProviderError> {
        if let Undo::MigrateDown {
            database,
            files,
            dump_to,
        } = undo
        {
            database::migrate_down(&self.pg, database, files, dump_to.as_deref()).await?;
        }
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
