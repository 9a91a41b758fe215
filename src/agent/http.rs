//! The agent's HTTP endpoints: `/health`, `/ready`, `/metrics`, `/status`, and `POST /hooks/git`,
//! which triggers a fetch at once when it carries a valid GitHub-style HMAC signature and a
//! delivery id not seen before (see [`super::webhook`]).

use std::sync::{Arc, RwLock};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::mpsc;

use super::metrics::Metrics;
use super::status::Status;
use super::webhook::{valid_delivery_id, Delivery, Webhook};
use super::Trigger;

pub struct Shared {
    pub status: RwLock<Status>,
    pub metrics: Metrics,
    pub trigger: mpsc::Sender<Trigger>,
    /// `CONVERGE_WEBHOOK_SECRET` and the deliveries seen; the hook is refused without it.
    pub webhook: Option<Webhook>,
    pub branch: String,
}

pub fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .route("/hooks/git", post(hook))
        .with_state(shared)
}

async fn ready(State(s): State<Arc<Shared>>) -> impl IntoResponse {
    let st = s.status.read().expect("status lock");
    if st.ready {
        (StatusCode::OK, "ready\n".to_string())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no revision applied since start\n".to_string(),
        )
    }
}

async fn metrics(State(s): State<Arc<Shared>>) -> impl IntoResponse {
    (
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

async fn status(State(s): State<Arc<Shared>>) -> impl IntoResponse {
    let st = s.status.read().expect("status lock").clone();
    axum::Json(st)
}

async fn hook(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    let Some(webhook) = &s.webhook else {
        return (
            StatusCode::FORBIDDEN,
            "webhook disabled: set CONVERGE_WEBHOOK_SECRET for the agent\n",
        );
    };
    let signature = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    if !signature.is_some_and(|sig| valid_signature(&webhook.secret, &body, sig)) {
        tracing::warn!("webhook refused: missing or bad X-Hub-Signature-256");
        return (
            StatusCode::UNAUTHORIZED,
            "bad or missing X-Hub-Signature-256\n",
        );
    }
    // The signature covers the body only: without a delivery id, nothing tells a replay apart.
    let Some(id) = headers
        .get("x-github-delivery")
        .and_then(|v| v.to_str().ok())
        .filter(|id| valid_delivery_id(id))
    else {
        tracing::warn!("webhook refused: missing or malformed X-GitHub-Delivery");
        return (
            StatusCode::BAD_REQUEST,
            "missing or malformed X-GitHub-Delivery: each delivery needs a unique id (1-128 of A-Z a-z 0-9 . _ -), as GitHub and Gitea send\n",
        );
    };
    // The record is synced to disk before the answer: off the async workers.
    match tokio::task::block_in_place(|| webhook.deliveries.record(id, &body)) {
        Ok(Delivery::New) => {}
        // 2xx, as idempotent receivers answer: a redelivery (GitHub keeps the id) is no error.
        Ok(Delivery::Duplicate) => {
            tracing::warn!(
                delivery = id,
                "webhook ignored: a delivery seen before (replay?)"
            );
            return (StatusCode::OK, "duplicate delivery, ignored\n");
        }
        Err(e) => {
            tracing::error!(delivery = id, "webhook refused: {e}");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot record the delivery; see the agent's log\n",
            );
        }
    }
    if let Ok(payload) = serde_json::from_slice::<serde_json::Value>(&body) {
        if let Some(r) = payload.get("ref").and_then(|r| r.as_str()) {
            if r != format!("refs/heads/{}", s.branch) {
                return (StatusCode::ACCEPTED, "ignored: another branch\n");
            }
        }
    }
    let _ = s.trigger.try_send(Trigger::Webhook);
    (StatusCode::ACCEPTED, "fetching\n")
}

/// `sha256=<hex>` of HMAC-SHA256(secret, body), compared in constant time.
pub fn valid_signature(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hexsig) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Some(sig) = decode_hex(hexsig) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_signatures_are_checked() {
        // The example from GitHub's documentation on validating webhook deliveries.
        let secret = b"It's a Secret to Everybody";
        let body = b"Hello, World!";
        let good = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(valid_signature(secret, body, good));
        assert!(!valid_signature(secret, b"Hello, World?", good));
        assert!(!valid_signature(b"wrong", body, good));
        assert!(!valid_signature(secret, body, "sha1=abc"));
        assert!(!valid_signature(secret, body, "sha256=zz"));
    }
}
