//! The plan as a pull-request comment: summary first, a table by action, long diffs folded.

use std::fmt::Write;

use super::text::{change_block, summary_line, symbol};
use super::Plan;

/// A hidden line a bot uses to find and update its own comment.
pub const MARKER: &str = "<!-- converge-plan -->";

/// Diffs longer than this are folded in `<details>`.
const FOLD_LINES: usize = 12;

pub fn render(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{MARKER}");
    let _ = writeln!(out, "**{}**\n", summary_line(plan));
    let _ = writeln!(
        out,
        "Project `{}`, environment `{}`, revision `{}`.\n",
        plan.project,
        plan.environment.as_deref().unwrap_or("(base)"),
        plan.revision.as_deref().unwrap_or("(working tree)")
    );
    if !plan.is_empty() {
        out.push_str("| | resource | reason |\n|---|---|---|\n");
        for c in &plan.changes {
            let _ = writeln!(
                out,
                "| `{}` | `{}` | {} |",
                symbol(c.action),
                c.id,
                c.reason.replace('|', "\\|")
            );
        }
        out.push('\n');
        for c in &plan.changes {
            let block = change_block(c);
            let lines = block.lines().count();
            if lines > FOLD_LINES {
                let _ = writeln!(out, "<details><summary><code>{}</code> {} lines</summary>\n\n```diff\n{}```\n\n</details>\n", c.id, lines, block);
            } else {
                let _ = writeln!(out, "```diff\n{block}```\n");
            }
        }
    }
    if !plan.notes.is_empty() {
        out.push_str("**Notes**\n\n");
        for n in &plan.notes {
            let _ = writeln!(out, "- {n}");
        }
        out.push('\n');
    }
    out
}
