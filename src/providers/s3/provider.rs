//! `S3Provider`: buckets and their settings.

use std::any::Any;

use async_trait::async_trait;

use crate::diff::Change;
use crate::model::live::LiveState;
use crate::model::{DesiredState, Kind, Resource};
use crate::plan::{Step, StepAction};
use crate::providers::{Context, Provider, ProviderError, Undo};
use crate::secrets::Secrets;

use super::S3;

pub const KINDS: &[Kind] = &[Kind::Bucket];

pub struct S3Provider {
    s3: S3,
}

impl S3Provider {
    pub fn new(s3: S3) -> Self {
        S3Provider { s3 }
    }

    pub fn s3(&self) -> &S3 {
        &self.s3
    }
}

#[async_trait]
impl Provider for S3Provider {
    fn name(&self) -> &'static str {
        "s3"
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
        Ok(self.s3.observe(desired, live).await?)
    }

    async fn apply(
        &self,
        step: &Step,
        _change: Option<&Change>,
        ctx: &Context<'_>,
    ) -> Result<Undo, ProviderError> {
        let name = step.resource.name.as_str();
        if step.action == StepAction::Delete {
            self.s3.delete_bucket(name).await?;
            return Ok(Undo::Nothing);
        }
        let Some(Resource::Bucket(b)) = ctx.desired.get(&step.resource) else {
            return Err(format!("{} is not in the desired state", step.resource).into());
        };
        self.s3
            .reconcile(b, ctx.desired.project.name.as_str())
            .await?;
        Ok(Undo::Nothing)
    }

    async fn undo(&self, _undo: &Undo) -> Result<(), ProviderError> {
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
