//! The plan as a pull-request comment: summary first, a table by action, long diffs folded,
//! lint warnings, a hidden marker so a bot updates its own comment, and splitting into several
//! comments (each under GitHub's 65,536 characters) without breaking a code block or `<details>`.

use std::fmt::Write;

use super::text::{change_block, summary_line, symbol};
use super::Plan;
use crate::cost::{money, signed, CostSummary};

/// A hidden line a bot uses to find and update its own comment.
pub const MARKER: &str = "<!-- converge-plan -->";

/// Diffs longer than this are folded in `<details>`.
const FOLD_LINES: usize = 12;

/// A comment stays under GitHub's 65,536 characters with room for the bot's own header.
pub const LIMIT: usize = 65_000;

/// One comment, or several separated by `<!-- converge-plan part i/n -->` lines.
pub fn render(plan: &Plan) -> String {
    render_parts(plan, LIMIT).join("\n")
}

/// The comment split into parts of at most `limit` characters.
pub fn render_parts(plan: &Plan, limit: usize) -> Vec<String> {
    let blocks = blocks(plan);
    let mut parts: Vec<String> = Vec::new();
    let mut cur = String::new();
    for b in blocks {
        let b = if b.len() > limit - 200 {
            truncate(&b, limit - 200)
        } else {
            b
        };
        if !cur.is_empty() && cur.len() + b.len() > limit - 100 {
            parts.push(std::mem::take(&mut cur));
        }
        cur.push_str(&b);
    }
    parts.push(cur);
    let n = parts.len();
    parts
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            if i == 0 {
                format!("{MARKER}\n{p}")
            } else {
                format!("<!-- converge-plan part {}/{n} -->\n{p}", i + 1)
            }
        })
        .collect()
}

fn blocks(plan: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    let mut head = String::new();
    let _ = writeln!(head, "**{}**\n", summary_line(plan));
    let _ = writeln!(
        head,
        "Project `{}`, environment `{}`, revision `{}`.\n",
        plan.project,
        plan.environment.as_deref().unwrap_or("(base)"),
        plan.revision.as_deref().unwrap_or("(working tree)")
    );
    for e in &plan.errors {
        let _ = writeln!(head, "> **Error:** {}\n", e.replace('\n', " "));
    }
    if !plan.is_empty() {
        head.push_str("| | resource | reason |\n|---|---|---|\n");
        for c in &plan.changes {
            let _ = writeln!(
                head,
                "| `{}` | `{}` | {} |",
                symbol(c.action),
                c.id,
                c.reason.replace('|', "\\|")
            );
        }
        head.push('\n');
    }
    if let Some(cost) = plan.cost.as_ref().filter(|_| !plan.is_empty()) {
        cost_table(plan, cost, &mut head);
    }
    let lints: Vec<_> = plan.lints().collect();
    if !lints.is_empty() {
        head.push_str("**Migration warnings**\n\n");
        for l in lints {
            let _ = writeln!(
                head,
                "- `{}:{}` {} — safe pattern: {}",
                l.file, l.line, l.message, l.fix
            );
        }
        head.push('\n');
    }
    out.push(head);
    for c in &plan.changes {
        let block = change_block(c, plan.cost.as_ref().map(|x| x.currency.as_str()));
        let lines = block.lines().count();
        let b = if lines > FOLD_LINES {
            format!("<details><summary><code>{}</code> {} lines</summary>\n\n```diff\n{}```\n\n</details>\n\n", c.id, lines, block)
        } else {
            format!("```diff\n{block}```\n\n")
        };
        out.push(b);
    }
    for (title, lines) in [
        ("Recovery first", &plan.recovery),
        (
            "Held back (live differs from the desired state)",
            &plan.held_back,
        ),
    ] {
        if !lines.is_empty() {
            let mut n = format!("**{title}**\n\n");
            for l in lines {
                let _ = writeln!(n, "- {l}");
            }
            n.push('\n');
            out.push(n);
        }
    }
    if !plan.notes.is_empty() {
        let mut n = String::from("**Notes**\n\n");
        for note in &plan.notes {
            let _ = writeln!(n, "- {note}");
        }
        n.push('\n');
        out.push(n);
    }
    out
}

/// Infracost-style: each changed resource's monthly cost before, after and the delta, then the
/// whole desired state's.
fn cost_table(plan: &Plan, cost: &CostSummary, out: &mut String) {
    let cur = cost.currency.as_str();
    let _ = writeln!(
        out,
        "**Monthly cost** (rates of `{}`): {} → {} (**{}/month**)\n",
        cost.budget,
        money(cost.before, cur),
        money(cost.after, cur),
        signed(cost.delta(), cur)
    );
    let rows: Vec<_> = plan
        .changes
        .iter()
        .filter_map(|c| c.cost.map(|d| (c, d)))
        .collect();
    if rows.is_empty() {
        return;
    }
    out.push_str("| resource | before | after | delta |\n|---|---:|---:|---:|\n");
    for (c, d) in rows {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} |",
            c.id,
            money(d.before, cur),
            money(d.after, cur),
            signed(d.delta(), cur)
        );
    }
    let _ = writeln!(
        out,
        "| **total** | {} | {} | **{}** |\n",
        money(cost.before, cur),
        money(cost.after, cur),
        signed(cost.delta(), cur)
    );
}

/// Cuts a block inside its code fence and closes what it opened.
fn truncate(block: &str, limit: usize) -> String {
    let folded = block.starts_with("<details>");
    let mut kept = String::new();
    let mut dropped = 0;
    for line in block.lines() {
        if line == "```" || line == "</details>" || line.is_empty() && kept.ends_with("```\n") {
            continue;
        }
        if kept.len() + line.len() + 120 < limit {
            kept.push_str(line);
            kept.push('\n');
        } else {
            dropped += 1;
        }
    }
    let _ = writeln!(
        kept,
        "… {dropped} more line(s): the full plan is in the job's log"
    );
    kept.push_str("```\n");
    if folded {
        kept.push_str("\n</details>\n");
    }
    kept.push('\n');
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_blocks_are_cut_inside_their_fence_and_closed() {
        let body: String = (0..1000).map(|i| format!("+ line {i}\n")).collect();
        let block =
            format!("<details><summary>x</summary>\n\n```diff\n{body}```\n\n</details>\n\n");
        let cut = truncate(&block, 2_000);
        assert!(cut.len() < 2_000);
        assert!(cut.contains("more line(s)"));
        assert_eq!(cut.matches("```").count(), 2, "the fence is closed: {cut}");
        assert!(cut.trim_end().ends_with("</details>"));
    }
}
