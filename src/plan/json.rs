//! The plan as versioned JSON for machines: `format_version` changes when fields change meaning.

use serde::Serialize;

use super::{Plan, Step, Summary};
use crate::diff::{AttrChange, Change};
use crate::model::live::PendingStep;

pub const FORMAT_VERSION: &str = "1.0";

#[derive(Serialize)]
struct PlanJson<'a> {
    format_version: &'static str,
    project: &'a str,
    revision: Option<&'a str>,
    environment: Option<&'a str>,
    host: Option<&'a str>,
    fingerprint: &'a str,
    summary: Summary,
    changes: Vec<ChangeJson<'a>>,
    steps: &'a [Step],
    notes: &'a [String],
    pending: &'a [PendingStep],
    errors: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    cost: Option<&'a crate::cost::CostSummary>,
    /// Services left on an earlier spec because the desired one failed (a difference).
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    held_back: &'a [String],
    /// What recovery of an interrupted run does before the next apply.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    recovery: &'a [String],
    /// Made without reading live state (`plan --offline`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    offline: bool,
}

#[derive(Serialize)]
struct ChangeJson<'a> {
    id: &'a crate::model::ResourceId,
    action: crate::diff::ChangeAction,
    reason: &'a str,
    attributes: Vec<AttrJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<FileJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    service: Option<&'a crate::diff::ServiceChange>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    migrations: &'a [String],
    #[serde(skip_serializing_if = "<[crate::lint::Lint]>::is_empty")]
    lints: &'a [crate::lint::Lint],
    #[serde(skip_serializing_if = "<[crate::model::ResourceId]>::is_empty")]
    depends_on: &'a [crate::model::ResourceId],
    #[serde(skip_serializing_if = "Option::is_none")]
    origin: Option<crate::scale::Origin>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cost: Option<crate::cost::CostDelta>,
}

#[derive(Serialize)]
struct AttrJson<'a> {
    key: &'a str,
    before: Option<&'a str>,
    after: Option<&'a str>,
    sensitive: bool,
    forces_replacement: bool,
}

#[derive(Serialize)]
struct FileJson<'a> {
    path: &'a str,
    diff: String,
}

fn attr(a: &AttrChange) -> AttrJson<'_> {
    AttrJson {
        key: &a.key,
        before: a.before.as_ref().map(|v| v.display()),
        after: a.after.as_ref().map(|v| v.display()),
        sensitive: a
            .before
            .iter()
            .chain(a.after.iter())
            .any(|v| v.is_sensitive()),
        forces_replacement: a.replaces && a.before.is_some() && a.after.is_some(),
    }
}

fn change(c: &Change) -> ChangeJson<'_> {
    ChangeJson {
        id: &c.id,
        action: c.action,
        reason: &c.reason,
        attributes: c.attributes.iter().map(attr).collect(),
        file: c.file.as_ref().map(|f| FileJson {
            path: &f.path,
            diff: similar::TextDiff::from_lines(
                f.before.as_deref().unwrap_or(""),
                f.after.as_str(),
            )
            .unified_diff()
            .header(
                if f.before.is_some() {
                    &f.path
                } else {
                    "/dev/null"
                },
                &f.path,
            )
            .to_string(),
        }),
        service: c.service.as_ref(),
        migrations: &c.migrations,
        lints: &c.lints,
        depends_on: &c.depends_on,
        origin: c.origin,
        cost: c.cost,
    }
}

pub fn render(plan: &Plan) -> String {
    let doc = PlanJson {
        format_version: FORMAT_VERSION,
        project: &plan.project,
        revision: plan.revision.as_deref(),
        environment: plan.environment.as_deref(),
        host: plan.host.as_deref(),
        fingerprint: &plan.fingerprint,
        summary: plan.summary(),
        changes: plan.changes.iter().map(change).collect(),
        steps: &plan.steps,
        notes: &plan.notes,
        pending: &plan.pending,
        errors: &plan.errors,
        cost: plan.cost.as_ref(),
        held_back: &plan.held_back,
        recovery: &plan.recovery,
        offline: plan.offline,
    };
    let mut s = serde_json::to_string_pretty(&doc).expect("plan serializes");
    s.push('\n');
    s
}
