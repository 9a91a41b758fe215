//! What a provider's observe, apply or undo reports: what failed, where, and what to do.

use thiserror::Error;

use crate::providers::files::FileError;
use crate::providers::postgres::PgError;
use crate::providers::runtime::RuntimeError;
use crate::providers::s3::S3Error;
use crate::providers::services::ContainerError;
use crate::providers::swarm::SwarmError;
use crate::secrets::SecretError;

#[derive(Debug, Error)]
pub enum ProviderError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Postgres(#[from] PgError),
    #[error(transparent)]
    S3(#[from] S3Error),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Containers(#[from] ContainerError),
    #[error(transparent)]
    Files(#[from] FileError),
    #[error(transparent)]
    Swarm(#[from] SwarmError),
    /// No provider in this build or this project applies this kind.
    #[error("no provider in this version of converge can {action} {resource}{hint}")]
    Unsupported {
        action: String,
        resource: String,
        hint: String,
    },
    /// A step failed; the message names what failed and why.
    #[error("{0}")]
    Step(String),
}

impl From<String> for ProviderError {
    fn from(message: String) -> Self {
        ProviderError::Step(message)
    }
}

impl From<&str> for ProviderError {
    fn from(message: &str) -> Self {
        ProviderError::Step(message.to_string())
    }
}
