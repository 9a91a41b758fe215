//! The plan as terminal text, in the form operators know from Terraform.

use std::fmt::Write;

use similar::TextDiff;

use super::{Plan, Step};
use crate::cost::{money, signed};
use crate::diff::{AttrChange, Change, ChangeAction, ServiceChange};
use crate::model::AttrValue;

/// How much of a rendered file that is being created the text shows. Diffs of files that
/// change are always shown in full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Content {
    /// One line: how many lines, rendered from which template (the terminal's default).
    #[default]
    Summary,
    /// Every line, as a diff from /dev/null (`--full`).
    Full,
}

/// The plan with new rendered files summarised.
pub fn render(plan: &Plan) -> String {
    render_with(plan, Content::Summary)
}

/// The plan as terminal text, with new rendered files shown as `content` says.
pub fn render_with(plan: &Plan, content: Content) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", header(plan));
    out.push('\n');
    if !plan.errors.is_empty() {
        for e in &plan.errors {
            let _ = writeln!(out, "error: {e}");
        }
        let _ = writeln!(
            out,
            "\nThis plan cannot be applied: {} problem(s) above; nothing was changed.",
            plan.errors.len()
        );
        return out;
    }
    if plan.is_empty() {
        notes(plan, &mut out);
        let _ = writeln!(out, "{}", summary_line(plan));
        return out;
    }
    out.push_str("converge will perform the following actions:\n\n");
    let currency = plan.cost.as_ref().map(|c| c.currency.as_str());
    for c in &plan.changes {
        change(c, currency, content, &mut out);
    }
    steps(&plan.steps, &mut out);
    notes(plan, &mut out);
    if plan.changes.iter().any(|c| summarised(c, content)) {
        out.push_str("New rendered files are summarised; --full shows their text.\n\n");
    }
    if let Some(cost) = &plan.cost {
        let _ = writeln!(out, "{}", cost.line());
    }
    let _ = writeln!(out, "{}", summary_line(plan));
    out
}

pub fn header(plan: &Plan) -> String {
    let offline = if plan.offline {
        "\nOFFLINE: no server was contacted; everything is planned as if nothing existed yet"
    } else {
        ""
    };
    format!(
        "converge plan for project {}, environment {}, host {}, revision {}{offline}",
        plan.project,
        plan.environment.as_deref().unwrap_or("(base)"),
        plan.host.as_deref().unwrap_or("(all)"),
        plan.revision.as_deref().unwrap_or("(working tree)")
    )
}

pub fn summary_line(plan: &Plan) -> String {
    if plan.converged() {
        return "No changes. Live state matches the desired state.".into();
    }
    if plan.is_empty() {
        let mut what = Vec::new();
        if !plan.recovery.is_empty() {
            what.push("an interrupted run is recovered first".to_string());
        }
        if !plan.held_back.is_empty() {
            what.push(format!(
                "{} resource(s) held back on an earlier spec",
                plan.held_back.len()
            ));
        }
        return format!(
            "No changes to apply, but live state does not match the desired state: {}.",
            what.join("; ")
        );
    }
    let s = plan.summary();
    format!(
        "Plan: {} to add, {} to change, {} to destroy.",
        s.add, s.change, s.destroy
    )
}

pub fn symbol(action: ChangeAction) -> &'static str {
    match action {
        ChangeAction::Create => "+",
        ChangeAction::Update => "~",
        ChangeAction::Replace => "-/+",
        ChangeAction::Delete => "-",
    }
}

pub fn verb(action: ChangeAction) -> &'static str {
    match action {
        ChangeAction::Create => "will be created",
        ChangeAction::Update => "will be updated in place",
        ChangeAction::Replace => "must be replaced",
        ChangeAction::Delete => "will be destroyed",
    }
}

/// One resource's block: header with the reason, attribute lines, file diff (in full),
/// migrations.
pub fn change_block(c: &Change, currency: Option<&str>) -> String {
    let mut out = String::new();
    change(c, currency, Content::Full, &mut out);
    out
}

fn change(c: &Change, currency: Option<&str>, content: Content, out: &mut String) {
    let _ = writeln!(out, "  # {} {}: {}", c.id, verb(c.action), c.reason);
    let _ = writeln!(out, "{:>3} {} {{", symbol(c.action), c.id);
    if let (Some(d), Some(cur)) = (&c.cost, currency) {
        let _ = writeln!(
            out,
            "      # cost: {} → {} a month ({}/month)",
            money(d.before, cur),
            money(d.after, cur),
            signed(d.delta(), cur)
        );
    }
    let summary = file_summary(c, content);
    let width = c
        .attributes
        .iter()
        .map(|a| a.key.len())
        .chain(summary.as_ref().map(|_| CONTENT.len()))
        .max()
        .unwrap_or(0);
    let forces = match (&c.action, &c.service) {
        (ChangeAction::Replace, _) => " # forces replacement",
        (_, Some(ServiceChange::Deploy { .. })) => " # deploys a new color",
        _ => "",
    };
    for a in &c.attributes {
        let _ = writeln!(out, "      {}", attr_line(a, width, forces));
    }
    if !c.migrations.is_empty() {
        let _ = writeln!(out, "      migrations to apply:");
        for m in &c.migrations {
            let _ = writeln!(out, "        + {m}");
        }
        for l in &c.lints {
            let _ = writeln!(out, "      warning: {l}");
        }
    }
    if let Some(s) = summary {
        let _ = writeln!(out, "      + {CONTENT:width$} = ({s})");
    } else if let Some(f) = &c.file {
        let before = f.before.as_deref().unwrap_or("");
        let diff = TextDiff::from_lines(before, f.after.as_str());
        let old = if f.before.is_some() {
            f.path.clone()
        } else {
            "/dev/null".into()
        };
        let text = diff
            .unified_diff()
            .context_radius(3)
            .header(&old, &f.path)
            .to_string();
        for line in text.lines() {
            let _ = writeln!(out, "        {line}");
        }
    }
    out.push_str("    }\n\n");
}

const CONTENT: &str = "content";

/// Whether the block shows a new file as one summary line instead of its text.
fn summarised(c: &Change, content: Content) -> bool {
    content == Content::Summary && c.file.as_ref().is_some_and(|f| f.before.is_none())
}

/// `138 lines, rendered from alert-rules` for a new file shown in summary.
fn file_summary(c: &Change, content: Content) -> Option<String> {
    if !summarised(c, content) {
        return None;
    }
    let lines = c.file.as_ref()?.after.lines().count();
    let noun = if lines == 1 { "line" } else { "lines" };
    let template = c
        .attributes
        .iter()
        .find_map(|a| match (a.key.as_str(), &a.after) {
            ("template", Some(AttrValue::Text(t))) => Some(t.as_str()),
            _ => None,
        });
    Some(match template {
        Some(t) => format!("{lines} {noun}, rendered from {t}"),
        None => format!("{lines} {noun}"),
    })
}

fn value(v: &AttrValue) -> String {
    match v {
        AttrValue::Sensitive(_) => "(sensitive)".into(),
        AttrValue::Text(t) if t.starts_with('[') => t.clone(),
        AttrValue::Text(t) => format!("\"{t}\""),
    }
}

fn attr_line(a: &AttrChange, width: usize, forces: &str) -> String {
    let forces = if a.replaces && a.before.is_some() && a.after.is_some() {
        forces
    } else {
        ""
    };
    match (&a.before, &a.after) {
        (None, Some(after)) => format!("+ {:width$} = {}", a.key, value(after)),
        (Some(before), None) => format!("- {:width$} = {}", a.key, value(before)),
        (Some(b), Some(after)) if b.is_sensitive() || after.is_sensitive() => {
            format!("~ {:width$} = (sensitive){forces}", a.key)
        }
        (Some(b), Some(after)) => format!(
            "~ {:width$} = {} -> {}{forces}",
            a.key,
            value(b),
            value(after)
        ),
        (None, None) => String::new(),
    }
}

fn steps(steps: &[Step], out: &mut String) {
    out.push_str("Steps, in order:\n");
    let rw = steps
        .iter()
        .map(|s| s.resource.to_string().len())
        .max()
        .unwrap_or(0);
    for s in steps {
        let mut tail = Vec::new();
        if s.deferred {
            tail.push("deferred".to_string());
        }
        if !s.waits_for.is_empty() {
            let w: Vec<String> = s.waits_for.iter().map(|w| w.to_string()).collect();
            tail.push(format!("after {}", w.join(", ")));
        }
        let tail = if tail.is_empty() {
            String::new()
        } else {
            format!("  ({})", tail.join("; "))
        };
        let _ = writeln!(
            out,
            "  {:>3}. {:<11} {:<rw$}  {}{tail}",
            s.id,
            s.action.as_str(),
            s.resource,
            s.detail
        );
    }
    out.push('\n');
}

fn notes(plan: &Plan, out: &mut String) {
    if !plan.recovery.is_empty() {
        out.push_str("Recovery first (an earlier apply was interrupted):\n");
        for r in &plan.recovery {
            let _ = writeln!(out, "  ! {r}");
        }
        out.push('\n');
    }
    if !plan.held_back.is_empty() {
        out.push_str("Held back (live differs from the desired state):\n");
        for h in &plan.held_back {
            let _ = writeln!(out, "  ! {h}");
        }
        out.push('\n');
    }
    if !plan.pending.is_empty() {
        out.push_str("Pending from earlier applies:\n");
        for p in &plan.pending {
            let _ = writeln!(
                out,
                "  - {} {}: {} (due {})",
                p.action,
                p.resource,
                p.detail,
                utc(p.due)
            );
        }
        out.push('\n');
    }
    if !plan.notes.is_empty() {
        out.push_str("Notes:\n");
        for n in &plan.notes {
            let _ = writeln!(out, "  - {n}");
        }
        out.push('\n');
    }
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (civil-from-days, proleptic Gregorian).
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_formats_unix_seconds() {
        assert_eq!(super::utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::utc(1_790_000_000), "2026-09-21T14:13:20Z");
        assert_eq!(super::utc(951_782_400), "2000-02-29T00:00:00Z");
    }
}
