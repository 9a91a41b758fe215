//! The agent's side of fetching: a source that keeps failing is retried with backoff and each
//! failure logged once per backoff step, while the last good revision stays applied; a revision
//! refused for its signature or its validation is reported (log, `/status`, metric, notifiers)
//! once, and never applied.

use std::sync::Arc;
use std::time::Instant;

use tracing::{error, info, warn};

use super::metrics::ReasonLabel;
use super::reconcile::Agent;
use super::source::{Fetched, SourceError};
use super::{notify, Trigger};
use crate::load::signature::SignatureError;
use crate::model::notifier::EventKind;
use crate::secrets::Secrets;

/// The source's key in its backoff.
const SOURCE: &str = "source";

impl Agent {
    /// The source's current revision; `None` while it backs off after failures, or when this
    /// fetch failed (both reported). A webhook fetches at once all the same.
    pub(super) async fn fetch_next(&mut self, trigger: Trigger) -> Option<Fetched> {
        let now = Instant::now();
        let backing_off = self
            .source_backoff
            .retry_in(SOURCE, now)
            .is_some_and(|d| !d.is_zero());
        if backing_off && trigger != Trigger::Webhook {
            return None;
        }
        let source = self.source.clone();
        match tokio::task::spawn_blocking(move || source.fetch()).await {
            Ok(Ok(fetched)) => {
                self.source_recovered();
                Some(fetched)
            }
            Ok(Err(e)) => {
                self.source_failed(&e, now);
                None
            }
            Err(e) => {
                error!("the fetch task failed: {e}");
                None
            }
        }
    }

    fn source_failed(&mut self, e: &SourceError, now: Instant) {
        self.source_backoff.failed(SOURCE, now);
        let retry_in = self
            .source_backoff
            .retry_in(SOURCE, now)
            .unwrap_or_default()
            .as_secs();
        self.shared
            .metrics
            .source_failures
            .get_or_create(&ReasonLabel {
                reason: e.reason().into(),
            })
            .inc();
        let text = format!("fetching the desired state: {e}");
        let keeping_last_good = self.good.is_some();
        if self.source_failure.as_deref() == Some(text.as_str()) {
            warn!(
                next_try_in_s = retry_in,
                keeping_last_good, "still failing: {text}"
            );
        } else {
            error!(next_try_in_s = retry_in, keeping_last_good, "{text}");
        }
        self.status(|s| {
            s.source_error = Some(text.clone());
            s.last_error = Some(text.clone());
        });
        self.source_failure = Some(text);
    }

    fn source_recovered(&mut self) {
        self.source_backoff.succeeded(SOURCE);
        if let Some(failure) = self.source_failure.take() {
            info!("the source answers again");
            self.status(|s| {
                s.source_error = None;
                if s.last_error.as_deref() == Some(failure.as_str()) {
                    s.last_error = None;
                }
            });
        }
    }

    /// A commit whose signature is missing, invalid or by a key not allowed: reported once.
    pub(super) fn refuse_signature(&mut self, id: &str, e: &SignatureError) {
        if self.refused.as_deref() == Some(id) {
            return;
        }
        error!(
            revision = &id[..12.min(id.len())],
            "revision refused; keeping the last good one\n{e}"
        );
        self.refused = Some(id.to_string());
        self.refuse(id, e.to_string());
    }

    /// Marks revision `id` as not to be applied, for `reason`: `/status`, the metric, and the
    /// notifiers of the last good revision (as `apply-failed`: it will not be applied).
    pub(super) fn refuse(&mut self, id: &str, reason: String) {
        self.shared.metrics.invalid_revisions.inc();
        self.status(|s| {
            s.invalid_revision = Some(id.to_string());
            s.last_error = Some(reason.clone());
        });
        let Some((_, desired)) = &self.good else {
            return;
        };
        match Secrets::load_or_create(&self.opts.state_dir) {
            Ok(secrets) => notify::send(
                desired,
                Arc::new(secrets),
                notify::Event {
                    text: format!(
                        "{}: revision {} is not applied: {}",
                        desired.project.name,
                        &id[..12.min(id.len())],
                        reason.lines().next().unwrap_or("")
                    ),
                    event: EventKind::ApplyFailed,
                    project: desired.project.name.to_string(),
                    revision: Some(id.to_string()),
                },
            ),
            Err(e) => warn!(error = %e, "cannot notify of the refused revision"),
        }
    }
}
