//! Budget checks: the currency (a template input), amount, rates, alert thresholds, soft/hard
//! limits and references.

use super::{inputs, reference, span_at, Ctx};
use crate::load::diagnostic::Diagnostic;
use crate::load::yaml::Node;
use crate::model::{Budget, Kind};

pub(super) fn check_budget(b: &Budget, n: &Node, ctx: &mut Ctx) {
    ctx.diags.extend(inputs::text(
        "budget currency",
        &b.currency,
        &span_at(n, &["currency"]),
        "write a currency code such as `USD` or `EUR`",
    ));
    if b.amount.is_nan() || b.amount <= 0.0 {
        ctx.diags.push(Diagnostic::at(
            &span_at(n, &["amount"]),
            format!("amount must be more than 0, found {}", b.amount),
        ));
    }
    for (k, v) in &b.rates {
        if *v < 0.0 {
            ctx.diags.push(Diagnostic::at(
                &span_at(n, &["rates", k]),
                format!("rate `{k}` is negative ({v})"),
            ));
        }
    }
    for (i, a) in b.alerts.iter().enumerate() {
        if !(*a > 0.0 && *a <= 10.0) {
            ctx.diags.push(
                Diagnostic::at(
                    &span_at(n, &["alerts", &i.to_string()]),
                    format!("alert threshold {a} is not a fraction of the amount"),
                )
                .hint("write fractions: 0.5 is 50%, 1.0 is 100%"),
            );
        }
    }
    if let (Some(s), Some(h)) = (&b.soft_limit, &b.hard_limit) {
        if h.at < s.at {
            ctx.diags.push(
                Diagnostic::at(
                    &span_at(n, &["hard_limit", "at"]),
                    format!("hard_limit.at ({}) is below soft_limit.at ({})", h.at, s.at),
                )
                .hint("the hard limit acts after the soft one: raise `hard_limit.at`"),
            );
        }
    }
    if let Some(h) = &b.hard_limit {
        if h.pause.contains(&crate::model::service::Priority::Critical) {
            ctx.diags.push(
                Diagnostic::at(
                    &span_at(n, &["hard_limit", "pause"]),
                    "critical services are never paused",
                )
                .hint("list `low` and `normal` only"),
            );
        }
    }
    if let Some(s) = &b.spend {
        reference(
            ctx,
            Kind::Database,
            &s.database,
            &span_at(n, &["spend", "database"]),
            "budget spend",
        );
    }
    for (i, name) in b.notify.iter().enumerate() {
        reference(
            ctx,
            Kind::Notifier,
            name,
            &span_at(n, &["notify", &i.to_string()]),
            "budget notify",
        );
    }
}
