//! Sends events to `Notifier` resources: Slack-compatible JSON to a webhook, or JSON on a
//! command's standard input. Runs in the background; a failing notifier is logged, never fatal.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::model::notifier::{EventKind, Notifier};
use crate::model::{DesiredState, Resource};
use crate::secrets::Secrets;

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Slack shows this.
    pub text: String,
    pub event: EventKind,
    pub project: String,
    pub revision: Option<String>,
}

/// Sends `event` to every notifier that wants it, without waiting.
pub fn send(desired: &DesiredState, secrets: Arc<Secrets>, event: Event) {
    send_to(desired, secrets, event, &[]);
}

/// The notifiers subscribed to `kind`, limited to those named in `only` when it is not empty.
fn wanted<'d>(
    desired: &'d DesiredState,
    kind: EventKind,
    only: &'d [String],
) -> impl Iterator<Item = &'d Notifier> + 'd {
    desired.resources.values().filter_map(move |r| match r {
        Resource::Notifier(n)
            if n.events.contains(&kind)
                && (only.is_empty() || only.iter().any(|o| o == n.name.as_str())) =>
        {
            Some(n)
        }
        _ => None,
    })
}

/// Like `send`, limited to the notifiers named in `only` when it is not empty (a Budget's `notify`).
pub fn send_to(desired: &DesiredState, secrets: Arc<Secrets>, event: Event, only: &[String]) {
    for n in wanted(desired, event.event, only) {
        let notifier = n.clone();
        let event = event.clone();
        let secrets = secrets.clone();
        tokio::spawn(async move {
            if let Err(e) = deliver(&notifier, &secrets, &event, None).await {
                tracing::warn!(notifier = %notifier.name, error = %e, "notification failed");
            }
        });
    }
}

/// Like `send_to`, waiting for every delivery (all at once): for a command that exits when done,
/// such as `converge recover`. One line per notifier that failed.
pub async fn deliver_all(
    desired: &DesiredState,
    secrets: &Secrets,
    event: &Event,
    only: &[String],
) -> Vec<String> {
    let deliveries = wanted(desired, event.event, only).map(|n| async move {
        deliver(n, secrets, event, None)
            .await
            .err()
            .map(|e| format!("notifier/{}: {e}", n.name))
    });
    futures_util::future::join_all(deliveries)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// How long a webhook may take to answer when the caller sets no timeout.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a notifier command may run when the caller sets no timeout; then it is killed.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Why one notification was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("the webhook URL: {0}")]
    Secret(String),
    #[error("POST to the webhook: {0}\n  = hint: check that the webhook URL is right and its server answers within {1:?}")]
    Webhook(String, Duration),
    #[error("the webhook answered {0}")]
    WebhookStatus(reqwest::StatusCode),
    #[error("`{argv}`: cannot start it: {error}")]
    Spawn { argv: String, error: std::io::Error },
    #[error("`{argv}`: {error}")]
    Io { argv: String, error: std::io::Error },
    #[error("`{argv}` did not finish within {timeout:?} and was killed\n  = hint: a notifier command must read the event from stdin and exit")]
    Timeout { argv: String, timeout: Duration },
    #[error("`{argv}` exited with {status}")]
    Exit {
        argv: String,
        status: std::process::ExitStatus,
    },
}

/// Sends `event` to notifier `n` and waits for the outcome; a webhook or command that takes
/// longer than `timeout` (default `WEBHOOK_TIMEOUT`, `COMMAND_TIMEOUT`) fails, the command killed.
pub async fn deliver(
    n: &Notifier,
    secrets: &Secrets,
    event: &Event,
    timeout: Option<Duration>,
) -> Result<(), NotifyError> {
    match (&n.webhook, &n.command) {
        (Some(url), _) => {
            let url = secrets
                .resolve(url)
                .map_err(|e| NotifyError::Secret(e.to_string()))?;
            post(&url, event, timeout.unwrap_or(WEBHOOK_TIMEOUT)).await
        }
        (None, Some(argv)) => run(argv, event, timeout.unwrap_or(COMMAND_TIMEOUT)).await,
        (None, None) => Ok(()),
    }
}

async fn post(url: &str, event: &Event, timeout: Duration) -> Result<(), NotifyError> {
    let fail = |e: reqwest::Error| NotifyError::Webhook(e.without_url().to_string(), timeout);
    let client = reqwest::Client::builder()
        .connect_timeout(timeout)
        .timeout(timeout)
        .build()
        .map_err(fail)?;
    let resp = client.post(url).json(event).send().await.map_err(fail)?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(NotifyError::WebhookStatus(resp.status()))
    }
}

async fn run(argv: &[String], event: &Event, timeout: Duration) -> Result<(), NotifyError> {
    use tokio::io::AsyncWriteExt;
    let shown = argv.join(" ");
    let mut child = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| NotifyError::Spawn {
            argv: shown.clone(),
            error,
        })?;
    let json = serde_json::to_vec(event).unwrap_or_default();
    let mut stdin = child.stdin.take();
    let talk = async {
        if let Some(stdin) = stdin.as_mut() {
            stdin.write_all(&json).await?;
        }
        // Closed, so a command that reads to the end of its input sees it.
        drop(stdin.take());
        child.wait().await
    };
    let outcome = tokio::time::timeout(timeout, talk).await;
    let status = match outcome {
        Ok(status) => status.map_err(|error| NotifyError::Io {
            argv: shown.clone(),
            error,
        })?,
        Err(_) => {
            crate::providers::files::kill_group(child.id());
            let _ = child.kill().await;
            return Err(NotifyError::Timeout {
                argv: shown,
                timeout,
            });
        }
    };
    if status.success() {
        Ok(())
    } else {
        Err(NotifyError::Exit {
            argv: shown,
            status,
        })
    }
}
