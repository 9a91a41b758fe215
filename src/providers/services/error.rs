//! What a service step reports: which service or container failed, and why.
//!
//! Every message reads exactly as before these were typed; the wrapped runtime, secret and
//! gate errors are fields rather than `#[source]`s because the message already includes
//! them (a `{:#}` chain would otherwise print them twice).

use thiserror::Error;

use crate::providers::health::GateError;
use crate::providers::runtime::RuntimeError;
use crate::secrets::SecretError;

#[derive(Debug, Error)]
pub enum ContainerError {
    /// Pulling or building the service's image failed.
    #[error("{error}")]
    Image {
        service: String,
        error: RuntimeError,
    },
    /// The service declares neither `image` nor `build`.
    #[error("the service has neither image nor build")]
    NoImage { service: String },
    /// An `env` value of the service refers to a secret that cannot be resolved. The message
    /// names the variable and the reference, never a value.
    #[error("env.{key}: {error}")]
    Secret {
        service: String,
        key: String,
        error: SecretError,
    },
    /// The password `providers.docker.registries` gives for the image's registry refers to a
    /// secret that cannot be resolved (the message names the reference, never a value).
    #[error("providers.docker.registries (host {host}) password: {error}")]
    RegistrySecret {
        service: String,
        host: String,
        error: SecretError,
    },
    /// The runtime failed on one container (remove, run, start, stop, rename).
    #[error("{error}")]
    Runtime {
        container: String,
        error: RuntimeError,
    },
    /// Listing the containers of a resource failed.
    #[error("{error}")]
    List {
        resource: String,
        error: RuntimeError,
    },
    /// A new container did not pass its health gate; it was removed again.
    #[error(transparent)]
    Gate(#[from] GateError),
    /// The step names a service the desired state does not hold.
    #[error("the service is not in the desired state")]
    MissingService { service: String },
    /// The step's action is not one the services provider carries out.
    #[error("cannot {action} {resource} in this version of converge")]
    Unsupported { action: String, resource: String },
    /// Putting retired containers back failed for some of them (each failure, in order).
    #[error("{}", join(.failures))]
    Restore { failures: Vec<ContainerError> },
    /// A replace failed; the previous containers run again.
    #[error("{error}; the previous containers were restored")]
    Restored { error: Box<ContainerError> },
    /// A replace failed, and so did putting the previous containers back.
    #[error("{error}; restoring the previous containers failed: {restore}")]
    NotRestored {
        error: Box<ContainerError>,
        restore: Box<ContainerError>,
    },
}

impl ContainerError {
    /// A runtime error on container `container`.
    pub fn runtime(container: &str) -> impl FnOnce(RuntimeError) -> ContainerError + '_ {
        move |error| ContainerError::Runtime {
            container: container.to_string(),
            error,
        }
    }

    /// A runtime error listing the containers of `resource`.
    pub fn list(resource: &str) -> impl FnOnce(RuntimeError) -> ContainerError + '_ {
        move |error| ContainerError::List {
            resource: resource.to_string(),
            error,
        }
    }
}

fn join(failures: &[ContainerError]) -> String {
    failures
        .iter()
        .map(|f| f.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(what: &str) -> RuntimeError {
        RuntimeError::Api {
            what: what.into(),
            message: "boom".into(),
        }
    }

    #[test]
    fn messages_read_as_the_strings_they_replace() {
        let gate = ContainerError::from(GateError::Exited {
            name: "p-web-1".into(),
            code: Some(1),
        });
        assert_eq!(
            ContainerError::Restored {
                error: Box::new(gate)
            }
            .to_string(),
            "container p-web-1 exited (code Some(1)) before passing its health check; \
             the previous containers were restored"
        );
        let restore = ContainerError::Restore {
            failures: vec![
                ContainerError::runtime("a")(api("rename a")),
                ContainerError::runtime("b")(api("start b")),
            ],
        };
        assert_eq!(
            ContainerError::NotRestored {
                error: Box::new(ContainerError::list("service/web")(api("list"))),
                restore: Box::new(restore),
            }
            .to_string(),
            "docker: list: boom; restoring the previous containers failed: \
             docker: rename a: boom; docker: start b: boom"
        );
        assert_eq!(
            ContainerError::Unsupported {
                action: "drain".into(),
                resource: "service/web".into(),
            }
            .to_string(),
            "cannot drain service/web in this version of converge"
        );
    }
}
