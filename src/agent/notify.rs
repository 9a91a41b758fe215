//! Sends events to `Notifier` resources: Slack-compatible JSON to a webhook, or JSON on a
//! command's standard input. Runs in the background; a failing notifier is logged, never fatal.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::model::notifier::EventKind;
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

/// Like `send`, limited to the notifiers named in `only` when it is not empty (a Budget's `notify`).
pub fn send_to(desired: &DesiredState, secrets: Arc<Secrets>, event: Event, only: &[String]) {
    for r in desired.resources.values() {
        let Resource::Notifier(n) = r else { continue };
        if !n.events.contains(&event.event) {
            continue;
        }
        if !only.is_empty() && !only.iter().any(|o| o == n.name.as_str()) {
            continue;
        }
        let name = n.name.to_string();
        let webhook = n.webhook.clone();
        let command = n.command.clone();
        let event = event.clone();
        let secrets = secrets.clone();
        tokio::spawn(async move {
            let result = match (webhook, command) {
                (Some(url), _) => match secrets.resolve(&url) {
                    Ok(url) => post(&url, &event).await,
                    Err(e) => Err(e.to_string()),
                },
                (None, Some(argv)) => run(&argv, &event).await,
                (None, None) => Ok(()),
            };
            if let Err(e) = result {
                tracing::warn!(notifier = %name, error = %e, "notification failed");
            }
        });
    }
}

async fn post(url: &str, event: &Event) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.without_url().to_string())?;
    let resp = client
        .post(url)
        .json(event)
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("the webhook answered {}", resp.status()))
    }
}

async fn run(argv: &[String], event: &Event) -> Result<(), String> {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("`{}`: {e}", argv[0]))?;
    if let Some(mut stdin) = child.stdin.take() {
        let json = serde_json::to_vec(event).unwrap_or_default();
        stdin.write_all(&json).await.map_err(|e| e.to_string())?;
    }
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .map_err(|_| "the command took longer than 30s".to_string())?
        .map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{}` exited with {status}", argv[0]))
    }
}
