//! Notifier checks: exactly one of webhook or command, and a valid webhook URL.

use super::{span_at, Ctx};
use crate::load::diagnostic::Diagnostic;
use crate::load::yaml::Node;
use crate::model::Notifier;

pub(super) fn check_notifier(x: &Notifier, n: &Node, ctx: &mut Ctx) {
    match (&x.webhook, &x.command) {
        (Some(_), Some(_)) | (None, None) => ctx.diags.push(
            Diagnostic::at(
                &n.span,
                format!(
                    "notifier/{} needs exactly one of `webhook` or `command`",
                    x.name
                ),
            )
            .hint("e.g. `webhook: \"${env:SLACK_WEBHOOK_URL}\"`"),
        ),
        _ => {}
    }
    if let Some(w) = &x.webhook {
        if !(w.is_sensitive() || w.raw().starts_with("https://") || w.raw().starts_with("http://"))
        {
            ctx.diags.push(
                Diagnostic::at(&span_at(n, &["webhook"]), "invalid webhook URL").hint(
                    "expected an `https://` URL, or a reference like `${env:SLACK_WEBHOOK_URL}`",
                ),
            );
        }
    }
}
