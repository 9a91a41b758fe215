//! Pulling an image from its registry: the credentials (`providers.docker.registries`, else the
//! Docker client's configuration), the engine's pull with them, a line per finished layer on a
//! terminal, and a failure that says which registry refused and why.

use std::io::IsTerminal;

use bollard::auth::DockerCredentials;
use bollard::query_parameters::CreateImageOptions;
use futures_util::StreamExt;

use super::credentials::{self, Login};
use super::registry::{ImageRef, PullError, DOCKER_HUB};
use super::{short, unreachable, Docker, DockerError};

impl Docker {
    /// Pulls `image`, logging in with `login`, else with what config.json gives for its host.
    pub(super) async fn pull(&self, image: &str, login: Option<Login>) -> Result<(), DockerError> {
        let r = ImageRef::parse(image);
        let login = match login {
            Some(login) => Some(login),
            None => credentials::from_docker_config(r.host)
                .await
                .map_err(|error| {
                    pull_error(PullError::Credentials {
                        image: image.to_string(),
                        error,
                    })
                })?,
        };
        let source = login.as_ref().map(|l| l.source.clone());
        let (from_image, tag) = r.pull_args();
        let mut stream = self.client.create_image(
            Some(CreateImageOptions {
                from_image: Some(from_image.to_string()),
                tag: Some(tag.to_string()),
                ..Default::default()
            }),
            None,
            login.map(|l| docker_credentials(l, r.host)),
        );
        let progress = std::io::stderr().is_terminal();
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| self.pull_failed(image, e, source.as_deref()))?;
            if progress && info.status.as_deref() == Some("Pull complete") {
                eprintln!("  {image}: layer {} pulled", info.id.unwrap_or_default());
            }
        }
        Ok(())
    }

    /// The engine not answering is a connection error; anything else is the registry's answer.
    fn pull_failed(
        &self,
        image: &str,
        e: bollard::errors::Error,
        login: Option<&str>,
    ) -> DockerError {
        if unreachable(&e) {
            return self.fail(format!("pull {image}"))(e);
        }
        let message = match e {
            bollard::errors::Error::DockerStreamError { error } => error,
            other => short(&other),
        };
        pull_error(PullError::failed(image, &message, login))
    }
}

fn pull_error(e: PullError) -> DockerError {
    DockerError::Pull(Box::new(e))
}

pub(crate) fn docker_credentials(login: Login, host: &str) -> DockerCredentials {
    DockerCredentials {
        username: Some(login.username),
        password: Some(login.password),
        serveraddress: Some(match host {
            DOCKER_HUB => credentials::HUB_KEY.to_string(),
            other => other.to_string(),
        }),
        ..Default::default()
    }
}
