//! Budgets at run time (the agent's budget tick and `converge status`): which services' usage changed (recorded in the journal, so accrued cost
//! knows what ran and how long), each budget's spend (accrued infrastructure cost plus its
//! `spend.sql`), and the messages limits and thresholds send.

use std::collections::BTreeMap;

use crate::budget::{self, BudgetStatus, Limit};
use crate::cost::{live_usage, Rates, Usage};
use crate::engine::journal::{usage_of, Entry};
use crate::model::live::LiveState;
use crate::model::{Budget, DesiredState, Kind, Resource};
use crate::providers::postgres::Postgres;

/// Services whose running usage differs from the journal's last record of it.
pub fn usage_changes(live: &LiveState, entries: &[Entry]) -> Vec<(String, Usage)> {
    let mut last: BTreeMap<String, Usage> = BTreeMap::new();
    for r in usage_of(entries) {
        last.insert(r.resource, r.usage);
    }
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (id, r) in &live.resources {
        if id.kind != Kind::Service {
            continue;
        }
        let key = id.to_string();
        let now = live_usage(r);
        seen.insert(key.clone());
        let before = last.get(&key).copied().unwrap_or_default();
        if before != now && !(before.replicas == 0 && now.replicas == 0) {
            out.push((key, now));
        }
    }
    for (key, u) in last {
        if u.replicas > 0 && !seen.contains(&key) {
            out.push((key, Usage::default()));
        }
    }
    out
}

/// The budgets of `desired`.
pub fn budgets(desired: &DesiredState) -> impl Iterator<Item = &Budget> {
    desired.resources.values().filter_map(|r| match r {
        Resource::Budget(b) => Some(b),
        _ => None,
    })
}

/// Evaluates every budget now. A failing spend query leaves the external spend at the last
/// known value (`previous`) and is returned as a warning; nothing else is guessed.
pub async fn evaluate_all(
    desired: &DesiredState,
    live: &LiveState,
    entries: &[Entry],
    postgres: Option<&Postgres>,
    previous: &[BudgetStatus],
    now: u64,
) -> (Vec<BudgetStatus>, Vec<String>) {
    let usage = usage_of(entries);
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    for b in budgets(desired) {
        let rates = Rates::of(b);
        let (start, _) = budget::period_bounds(b.period, now);
        let infrastructure = budget::accrue(&usage, &rates, start, now);
        let hourly_now: f64 = live
            .resources
            .iter()
            .filter(|(id, _)| id.kind == Kind::Service)
            .map(|(_, r)| rates.hourly(&live_usage(r)))
            .sum();
        let id = format!("budget/{}", b.name);
        let period = budget::period_key(b.period, now);
        let last_external = previous
            .iter()
            .find(|p| p.budget == id && p.period == period)
            .map(|p| p.external)
            .unwrap_or(0.0);
        let external = match (&b.spend, postgres) {
            (None, _) => 0.0,
            (Some(_), None) => {
                warnings.push(format!("{id}: spend.sql needs a PostgreSQL provider"));
                last_external
            }
            (Some(s), Some(pg)) => match spend(pg, &s.database, &s.sql).await {
                Ok(v) => v,
                Err(e) => {
                    warnings.push(format!("{id}: spend query failed: {e}"));
                    last_external
                }
            },
        };
        out.push(budget::evaluate(
            b,
            infrastructure,
            hourly_now,
            external,
            now,
        ));
    }
    (out, warnings)
}

async fn spend(pg: &Postgres, database: &str, sql: &str) -> Result<f64, String> {
    let connection = pg
        .open_connection(database)
        .await
        .map_err(|e| e.to_string())?;
    connection.scalar(sql).await
}

/// What a budget notification says when a limit switches on or off.
pub fn limit_message(b: &Budget, s: &BudgetStatus, previous: Option<Limit>) -> String {
    let at = format!(
        "budget/{} at {} of {} ({} spent, {} projected by the period's end)",
        b.name,
        s.percent(),
        crate::cost::money(b.amount, &b.currency),
        crate::cost::money(s.spend, &b.currency),
        crate::cost::money(s.projected, &b.currency)
    );
    let names = |ps: &[crate::model::service::Priority]| {
        ps.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ")
    };
    match s.limit {
        Some(Limit::Hard) => format!(
            "{at}: hard limit reached; pausing {} services (critical ones keep running)",
            names(
                b.hard_limit
                    .as_ref()
                    .map(|h| h.pause.as_slice())
                    .unwrap_or(&[])
            )
        ),
        Some(Limit::Soft) => format!(
            "{at}: soft limit reached; {} services run at their scale.min",
            names(
                b.soft_limit
                    .as_ref()
                    .map(|s| s.scale_to_min.as_slice())
                    .unwrap_or(&[])
            )
        ),
        None => format!(
            "{at}: {} limit lifted; services return to their declared replicas",
            previous.map(|l| l.as_str()).unwrap_or("the")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::live::{LiveContainer, LiveResource, LiveService};
    use crate::model::{Attributes, ResourceId};

    fn live_with(replicas: usize) -> LiveState {
        let mut attributes = Attributes::default();
        attributes.text("resources.cpus", "0.5");
        let mut live = LiveState::default();
        live.resources.insert(
            ResourceId::new(Kind::Service, "worker"),
            LiveResource {
                attributes,
                service: Some(LiveService {
                    containers: (0..replicas)
                        .map(|i| LiveContainer {
                            name: format!("p-worker-{i}"),
                            running: true,
                            ..Default::default()
                        })
                        .collect(),
                    active_color: None,
                    image_now: None,
                }),
                ..Default::default()
            },
        );
        live
    }

    fn usage_entry(replicas: u32) -> Entry {
        Entry {
            ts: 1,
            run: "r".into(),
            event: crate::engine::journal::Event::Usage {
                resource: "service/worker".into(),
                data: Usage {
                    replicas,
                    cpus: 0.5,
                    memory_bytes: 0,
                    gpus: 0,
                },
            },
        }
    }

    #[test]
    fn usage_is_recorded_only_when_it_changes() {
        let changes = usage_changes(&live_with(2), &[]);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].1.replicas, 2);
        assert!(usage_changes(&live_with(2), &[usage_entry(2)]).is_empty());
        assert_eq!(
            usage_changes(&live_with(3), &[usage_entry(2)])[0]
                .1
                .replicas,
            3
        );
    }

    #[test]
    fn a_service_that_disappears_is_recorded_at_zero() {
        let changes = usage_changes(&LiveState::default(), &[usage_entry(2)]);
        assert_eq!(
            changes,
            vec![("service/worker".to_string(), Usage::default())]
        );
    }
}
