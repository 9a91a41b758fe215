//! `converge status`: per service the declared, autoscaled and running replicas with the last
//! scaling decision; per budget the spend, its projection to the period's end, the percentage
//! and the active limit; the last recovery drill and recovery (RTO, RPO) from the journal.
//! Read-only: nothing is recorded or changed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::Serialize;

use super::runtime;
use super::{load_or_report, Outcome};
use crate::budget::BudgetStatus;
use crate::cost::money;
use crate::disaster::{self, Figures, RecoveryKind};
use crate::engine::budgets;
use crate::engine::journal::{self, Journal};
use crate::engine::{state_dir, Engine};
use crate::model::live::TaskRow;
use crate::model::{DesiredState, Kind, ResourceId};

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[arg(default_value = "desired-state")]
    pub dir: PathBuf,
    #[arg(long)]
    pub env: Option<String>,
    #[arg(long)]
    pub host: Option<String>,
    #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
    pub format: StatusFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFormat {
    Text,
    Json,
}

#[derive(Debug, Serialize)]
pub struct ServiceRow {
    pub service: String,
    pub desired: u32,
    /// What the autoscaler or a budget chose, when it differs from `desired`.
    pub autoscaled: Option<u32>,
    pub reason: Option<String>,
    pub running: u32,
    pub scale: Option<String>,
    /// The autoscaler's last decision, from the journal.
    pub last_scaling: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub project: String,
    pub environment: Option<String>,
    pub services: Vec<ServiceRow>,
    pub budgets: Vec<BudgetStatus>,
    pub recovery: RecoveryRow,
    /// Swarm's tasks of this project, with the node each runs on (`providers.swarm` only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<TaskRow>,
    pub warnings: Vec<String>,
}

/// The last recovery drill and recovery the journal recorded.
#[derive(Debug, Serialize)]
pub struct RecoveryRow {
    /// `recovery.drill.schedule`, when the Project declares a drill.
    pub drill_schedule: Option<String>,
    pub last_drill: Option<Figures>,
    pub last_recovery: Option<Figures>,
}

impl RecoveryRow {
    fn of(desired: &DesiredState, entries: &[journal::Entry]) -> RecoveryRow {
        RecoveryRow {
            drill_schedule: desired
                .project
                .recovery
                .as_ref()
                .and_then(|r| r.drill.as_ref())
                .map(|d| d.schedule.as_str().to_string()),
            last_drill: disaster::last(entries, RecoveryKind::Drill),
            last_recovery: disaster::last(entries, RecoveryKind::Recovery),
        }
    }

    /// A line each for the drill and the recovery, when there is something to say.
    fn text(&self) -> String {
        let mut out = String::new();
        if self.drill_schedule.is_some() || self.last_drill.is_some() {
            let schedule = self
                .drill_schedule
                .as_deref()
                .map(|s| format!(" (schedule {s})"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "Recovery drill{schedule}: {}",
                figures_text(self.last_drill.as_ref())
            );
        }
        if let Some(f) = &self.last_recovery {
            let _ = writeln!(out, "Recovery: {}", figures_text(Some(f)));
        }
        out
    }
}

/// `last 2026-12-02T16:00:00Z drilled: RTO 3.2s, RPO 5m 1s`, or `none recorded`.
fn figures_text(f: Option<&Figures>) -> String {
    let Some(f) = f else {
        return "none recorded".to_string();
    };
    let rpo = f
        .data_age_seconds
        .map(|a| format!(", RPO {}", disaster::duration(a as f64)))
        .unwrap_or_default();
    format!(
        "last {} {}: RTO {}{rpo}",
        crate::plan::text::utc(f.at),
        f.outcome,
        disaster::duration(f.rto_seconds)
    )
}

pub fn run(args: StatusArgs, state: Option<&Path>) -> anyhow::Result<Outcome> {
    let Some(desired) = load_or_report(&args.dir, args.env.as_deref())? else {
        return Ok(Outcome::Failure);
    };
    crate::engine::check_host(&desired, args.host.as_deref())?;
    let report = runtime()?.block_on(gather(&desired, args.host.as_deref(), state_dir(state)))?;
    match args.format {
        StatusFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        StatusFormat::Text => print!("{}", text(&report)),
    }
    Ok(Outcome::Success)
}

async fn gather(
    desired: &DesiredState,
    host: Option<&str>,
    state_dir: PathBuf,
) -> anyhow::Result<Report> {
    let session = Engine::open_connections_only(desired, state_dir.clone()).await?;
    let live = session.observe(desired).await?;
    let project = desired.project.name.as_str();
    let entries = Journal::entries(&state_dir, project);
    let mut last: std::collections::BTreeMap<String, String> = Default::default();
    for e in &entries {
        let journal::Event::Scaled { at, data } = &e.event else {
            continue;
        };
        if let Some(name) = at
            .resource
            .as_deref()
            .and_then(|r| r.strip_prefix("service/"))
        {
            last.insert(
                name.to_string(),
                format!(
                    "{} → {}: {} ({})",
                    data.from,
                    data.to,
                    at.detail.as_deref().unwrap_or(""),
                    crate::plan::text::utc(e.ts)
                ),
            );
        }
    }
    let services = desired
        .services()
        .filter(|s| {
            host.is_none_or(|h| crate::model::service::hosts_of(s, &desired.project).contains(&h))
        })
        .map(|s| {
            let o = live.overrides.get(s.name.as_str());
            let running = live
                .service(&ResourceId::new(Kind::Service, s.name.as_str()))
                .map(|l| l.containers.iter().filter(|c| c.running).count() as u32)
                .unwrap_or(0);
            ServiceRow {
                service: s.name.to_string(),
                desired: s.replicas,
                autoscaled: o.map(|o| o.replicas),
                reason: o.map(|o| o.reason.clone()),
                running,
                scale: s
                    .scale
                    .as_ref()
                    .map(|x| format!("{}..{}, cooldown {}", x.min, x.max, x.cooldown)),
                last_scaling: last.get(s.name.as_str()).cloned(),
            }
        })
        .collect();
    let previous = journal::budget_statuses(&state_dir, project);
    let (budgets, warnings) = budgets::evaluate_all(
        desired,
        &live,
        &entries,
        session.registry().postgres(),
        &previous,
        journal::now(),
    )
    .await;
    let tasks = match session.registry().swarm() {
        Some(swarm) => swarm.task_rows().await?,
        None => Vec::new(),
    };
    Ok(Report {
        project: project.to_string(),
        environment: desired.environment.clone(),
        services,
        budgets,
        recovery: RecoveryRow::of(desired, &entries),
        tasks,
        warnings,
    })
}

/// The report as terminal text.
pub fn text(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "converge status for project {}, environment {}\n",
        r.project,
        r.environment.as_deref().unwrap_or("(base)")
    );
    let w = r
        .services
        .iter()
        .map(|s| s.service.len())
        .max()
        .unwrap_or(7)
        .max(7);
    let _ = writeln!(
        out,
        "{:<w$}  {:>7}  {:>10}  {:>7}  SCALING",
        "SERVICE", "DESIRED", "AUTOSCALED", "RUNNING"
    );
    for s in &r.services {
        let auto = s
            .autoscaled
            .map(|a| a.to_string())
            .unwrap_or_else(|| "-".into());
        let mut why = Vec::new();
        if let Some(x) = &s.scale {
            why.push(format!("bounds {x}"));
        }
        if let Some(x) = &s.reason {
            why.push(x.clone());
        }
        if let Some(x) = &s.last_scaling {
            why.push(format!("last: {x}"));
        }
        let _ = writeln!(
            out,
            "{:<w$}  {:>7}  {:>10}  {:>7}  {}",
            s.service,
            s.desired,
            auto,
            s.running,
            if why.is_empty() {
                "-".into()
            } else {
                why.join("; ")
            }
        );
    }
    if !r.budgets.is_empty() {
        out.push('\n');
        for b in &r.budgets {
            let _ = writeln!(
                out,
                "{} ({}): spent {} of {} ({}: infrastructure {}, recorded {}), projected {} by the period's end; limit: {}",
                b.budget,
                b.period,
                money(b.spend, &b.currency),
                money(b.amount, &b.currency),
                b.percent(),
                money(b.infrastructure, &b.currency),
                money(b.external, &b.currency),
                money(b.projected, &b.currency),
                b.limit.map(|l| l.as_str()).unwrap_or("none")
            );
        }
    }
    if !r.tasks.is_empty() {
        out.push('\n');
        out.push_str(&tasks_text(&r.tasks));
    }
    let recovery = r.recovery.text();
    if !recovery.is_empty() {
        out.push('\n');
        out.push_str(&recovery);
    }
    for w in &r.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}

/// Tasks per node: node → rows.
fn by_node(rows: &[TaskRow]) -> BTreeMap<&str, Vec<&TaskRow>> {
    let mut out: BTreeMap<&str, Vec<&TaskRow>> = BTreeMap::new();
    for r in rows {
        out.entry(r.node.as_str()).or_default().push(r);
    }
    out
}

/// `Swarm tasks by node:` then `  NODE  SERVICE  SLOT  STATE` rows.
fn tasks_text(rows: &[TaskRow]) -> String {
    let service = |r: &TaskRow| {
        let name = r.resource.trim_start_matches("service/");
        match &r.color {
            Some(c) => format!("{name} ({c})"),
            None => name.to_string(),
        }
    };
    let nw = rows.iter().map(|r| r.node.len()).max().unwrap_or(4).max(4);
    let sw = rows
        .iter()
        .map(|r| service(r).len())
        .max()
        .unwrap_or(7)
        .max(7);
    let mut out = String::from("Swarm tasks by node:\n");
    let _ = writeln!(
        out,
        "  {:<nw$}  {:<sw$}  {:>4}  STATE",
        "NODE", "SERVICE", "SLOT"
    );
    for (node, tasks) in by_node(rows) {
        for r in tasks {
            let why = r
                .message
                .as_deref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {node:<nw$}  {:<sw$}  {:>4}  {}{why}",
                service(r),
                r.slot,
                r.state
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(resource: &str, color: Option<&str>, slot: u32, node: &str, state: &str) -> TaskRow {
        TaskRow {
            resource: resource.into(),
            color: color.map(str::to_string),
            slot,
            node: node.into(),
            state: state.into(),
            message: None,
        }
    }

    #[test]
    fn swarm_tasks_are_listed_by_node() {
        let mut pending = row("service/worker", None, 2, "worker-2", "pending");
        pending.message = Some("no suitable node".into());
        let rows = vec![
            row("service/api", Some("green"), 1, "manager-1", "running"),
            row("service/worker", None, 1, "worker-2", "running"),
            pending,
        ];
        assert_eq!(
            tasks_text(&rows),
            "Swarm tasks by node:\n  \
             NODE       SERVICE      SLOT  STATE\n  \
             manager-1  api (green)     1  running\n  \
             worker-2   worker          1  running\n  \
             worker-2   worker          2  pending (no suitable node)\n"
        );
    }
}
