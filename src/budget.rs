//! Budgets over time: the current period, infrastructure cost accrued from usage records, the
//! spend ratio and its projection, threshold crossings (once per period), and the soft and hard
//! limits as replica caps by priority. Pure: the agent gathers usage and external spend.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, Duration as ChronoDuration, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::cost::{money, Rates, Usage};
use crate::model::budget::Period;
use crate::model::service::Priority;
use crate::model::{Budget, DesiredState};

/// The start and end (Unix seconds, UTC) of the period that contains `now`.
pub fn period_bounds(period: Period, now: u64) -> (u64, u64) {
    let t: DateTime<Utc> = Utc
        .timestamp_opt(now as i64, 0)
        .single()
        .unwrap_or_default();
    let day = t.date_naive();
    let (start, end) = match period {
        Period::Day => (day, day + ChronoDuration::days(1)),
        Period::Week => {
            let monday = day - ChronoDuration::days(day.weekday().num_days_from_monday() as i64);
            (monday, monday + ChronoDuration::days(7))
        }
        Period::Month => {
            let first = NaiveDate::from_ymd_opt(day.year(), day.month(), 1).unwrap_or(day);
            let next = if day.month() == 12 {
                NaiveDate::from_ymd_opt(day.year() + 1, 1, 1)
            } else {
                NaiveDate::from_ymd_opt(day.year(), day.month() + 1, 1)
            }
            .unwrap_or(day);
            (first, next)
        }
    };
    let secs = |d: NaiveDate| {
        d.and_hms_opt(0, 0, 0)
            .map(|x| x.and_utc().timestamp() as u64)
            .unwrap_or(0)
    };
    (secs(start), secs(end))
}

/// A label for the period containing `now`: `2026-11`, `2026-W48`, `2026-11-28`.
pub fn period_key(period: Period, now: u64) -> String {
    let (start, _) = period_bounds(period, now);
    let t: DateTime<Utc> = Utc
        .timestamp_opt(start as i64, 0)
        .single()
        .unwrap_or_default();
    match period {
        Period::Day => t.format("%Y-%m-%d").to_string(),
        Period::Week => format!("{}-W{:02}", t.iso_week().year(), t.iso_week().week()),
        Period::Month => t.format("%Y-%m").to_string(),
    }
}

/// What one service ran from `at` (Unix seconds) until its next record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageRecord {
    pub at: u64,
    pub resource: String,
    pub usage: Usage,
}

/// Infrastructure cost accrued between `start` and `now` from usage records (in time order):
/// each record prices its resource until that resource's next record, or until `now`.
pub fn accrue(records: &[UsageRecord], rates: &Rates, start: u64, now: u64) -> f64 {
    let mut by_resource: BTreeMap<&str, Vec<&UsageRecord>> = BTreeMap::new();
    for r in records {
        by_resource.entry(&r.resource).or_default().push(r);
    }
    let mut total = 0.0;
    for recs in by_resource.values() {
        for (i, r) in recs.iter().enumerate() {
            let until = recs.get(i + 1).map(|n| n.at).unwrap_or(now).min(now);
            let from = r.at.max(start);
            if until > from {
                total += rates.hourly(&r.usage) * (until - from) as f64 / 3600.0;
            }
        }
    }
    total
}

/// Which limit a budget's spend has reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Limit {
    Soft,
    Hard,
}

impl Limit {
    pub fn as_str(&self) -> &'static str {
        match self {
            Limit::Soft => "soft",
            Limit::Hard => "hard",
        }
    }
}

/// A budget evaluated at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetStatus {
    pub budget: String,
    pub currency: String,
    pub amount: f64,
    pub period: String,
    /// Infrastructure cost accrued this period.
    pub infrastructure: f64,
    /// The `spend.sql` result: costs the application recorded.
    pub external: f64,
    pub spend: f64,
    /// spend / amount.
    pub ratio: f64,
    /// Spend at the period's end at the current rates.
    pub projected: f64,
    pub limit: Option<Limit>,
    pub evaluated_at: u64,
}

impl BudgetStatus {
    pub fn percent(&self) -> String {
        format!("{:.0}%", self.ratio * 100.0)
    }
}

/// Evaluates `budget` at `now` from the infrastructure cost accrued so far, what the services
/// cost per hour now, and the external spend so far.
pub fn evaluate(
    budget: &Budget,
    infrastructure: f64,
    hourly_now: f64,
    external: f64,
    now: u64,
) -> BudgetStatus {
    let (start, end) = period_bounds(budget.period, now);
    let elapsed = now.saturating_sub(start).max(1) as f64;
    let left_hours = end.saturating_sub(now) as f64 / 3600.0;
    let spend = infrastructure + external;
    let external_projected = external * (end - start) as f64 / elapsed;
    let projected = infrastructure + hourly_now * left_hours + external_projected;
    let ratio = if budget.amount > 0.0 {
        spend / budget.amount
    } else {
        0.0
    };
    BudgetStatus {
        budget: format!("budget/{}", budget.name),
        currency: budget.currency.clone(),
        amount: budget.amount,
        period: period_key(budget.period, now),
        infrastructure,
        external,
        spend,
        ratio,
        projected,
        limit: limit_at(budget, ratio),
        evaluated_at: now,
    }
}

/// The highest limit `ratio` has reached.
pub fn limit_at(budget: &Budget, ratio: f64) -> Option<Limit> {
    if budget.hard_limit.as_ref().is_some_and(|h| ratio >= h.at) {
        Some(Limit::Hard)
    } else if budget.soft_limit.as_ref().is_some_and(|s| ratio >= s.at) {
        Some(Limit::Soft)
    } else {
        None
    }
}

/// The alert thresholds `ratio` has crossed that were not notified yet this period.
pub fn new_crossings(alerts: &[f64], ratio: f64, notified: &BTreeSet<String>) -> Vec<f64> {
    alerts
        .iter()
        .copied()
        .filter(|a| ratio >= *a && !notified.contains(&threshold_key(*a)))
        .collect()
}

/// How a threshold is recorded in the journal: `0.8`.
pub fn threshold_key(a: f64) -> String {
    format!("{a}")
}

/// A replica count a budget imposes on a service, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cap {
    pub replicas: u32,
    pub reason: String,
}

/// The caps a budget at `ratio` puts on services: at the hard limit, listed priorities are
/// paused (never `critical`); at the soft limit (and above), listed priorities run at `scale.min`.
pub fn caps(state: &DesiredState, budget: &Budget, ratio: f64) -> BTreeMap<String, Cap> {
    let mut out = BTreeMap::new();
    let Some(limit) = limit_at(budget, ratio) else {
        return out;
    };
    let at = format!(
        "budget/{} at {:.0}% of {}",
        budget.name,
        ratio * 100.0,
        money_short(budget.amount, &budget.currency)
    );
    let pause: &[Priority] = match (&budget.hard_limit, limit) {
        (Some(h), Limit::Hard) => &h.pause,
        _ => &[],
    };
    let to_min: &[Priority] = budget
        .soft_limit
        .as_ref()
        .map(|s| s.scale_to_min.as_slice())
        .unwrap_or(&[]);
    for s in state.services() {
        if s.priority == Priority::Critical {
            continue;
        }
        if pause.contains(&s.priority) {
            out.insert(
                s.name.to_string(),
                Cap {
                    replicas: 0,
                    reason: format!("paused by {at}"),
                },
            );
        } else if to_min.contains(&s.priority) {
            let min = s.scale.as_ref().map(|x| x.min).unwrap_or(s.replicas);
            out.insert(
                s.name.to_string(),
                Cap {
                    replicas: min,
                    reason: format!("scaled to min by {at}"),
                },
            );
        }
    }
    out
}

/// `$5,000` when whole, else with cents.
fn money_short(amount: f64, currency: &str) -> String {
    let m = money(amount, currency);
    if amount.fract() == 0.0 {
        m.replacen(".00", "", 1)
    } else {
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(y: i32, mo: u32, d: u32, h: u32) -> u64 {
        Utc.with_ymd_and_hms(y, mo, d, h, 0, 0).unwrap().timestamp() as u64
    }

    fn rates() -> Rates {
        Rates {
            budget: "budget/monthly".into(),
            currency: "USD".into(),
            cpu_hour: 0.05,
            memory_gb_hour: 0.0,
            gpu_hour: 0.0,
            storage_gb_month: 0.0,
        }
    }

    fn cores(at: u64, resource: &str, replicas: u32) -> UsageRecord {
        UsageRecord {
            at,
            resource: resource.into(),
            usage: Usage {
                replicas,
                cpus: 1.0,
                memory_bytes: 0,
                gpus: 0,
            },
        }
    }

    #[test]
    fn periods_start_at_utc_midnight_of_month_week_and_day() {
        let now = ts(2026, 11, 28, 15);
        assert_eq!(
            period_bounds(Period::Month, now),
            (ts(2026, 11, 1, 0), ts(2026, 12, 1, 0))
        );
        assert_eq!(
            period_bounds(Period::Month, ts(2026, 12, 31, 23)),
            (ts(2026, 12, 1, 0), ts(2027, 1, 1, 0))
        );
        assert_eq!(
            period_bounds(Period::Week, now),
            (ts(2026, 11, 23, 0), ts(2026, 11, 30, 0))
        );
        assert_eq!(
            period_bounds(Period::Day, now),
            (ts(2026, 11, 28, 0), ts(2026, 11, 29, 0))
        );
        assert_eq!(period_key(Period::Month, now), "2026-11");
        assert_eq!(period_key(Period::Week, now), "2026-W48");
    }

    #[test]
    fn accrual_prices_each_record_until_the_next_and_clips_to_the_period() {
        let start = ts(2026, 11, 1, 0);
        let records = vec![
            cores(ts(2026, 10, 31, 14), "service/worker", 1), // 10 h before the period
            cores(ts(2026, 11, 1, 10), "service/worker", 3),
            cores(ts(2026, 11, 1, 20), "service/worker", 0),
            cores(ts(2026, 11, 1, 0), "service/api", 2),
        ];
        let now = ts(2026, 11, 2, 0);
        // worker: 10 h × 1 + 10 h × 3 + 4 h × 0 = 40 core-hours; api: 24 h × 2 = 48.
        let got = accrue(&records, &rates(), start, now);
        assert!((got - 88.0 * 0.05).abs() < 1e-9, "{got}");
    }

    const STATE: &str = "kind: Project\nname: p\n---\nkind: Budget\nname: monthly\namount: 5000\nalerts: [0.5, 0.8, 0.9, 1.0]\nsoft_limit: {at: 0.9, scale_to_min: [low]}\nhard_limit: {at: 1.1, pause: [low, normal]}\n---\nkind: Service\nname: low-svc\nimage: x:1\npriority: low\nreplicas: 3\nscale: {min: 2, max: 4}\n---\nkind: Service\nname: normal-svc\nimage: x:1\n---\nkind: Service\nname: critical-svc\nimage: x:1\npriority: critical\n";

    fn state() -> DesiredState {
        let tree = crate::load::SourceTree::new("t").with_file("all.yaml", STATE);
        crate::load::load(&tree, None).expect("valid")
    }

    fn budget() -> Budget {
        let mut b = state()
            .resources
            .values()
            .find_map(|r| match r {
                crate::model::Resource::Budget(b) => Some(b.clone()),
                _ => None,
            })
            .expect("budget");
        // What validation refuses, the caps must still never do.
        b.hard_limit
            .as_mut()
            .expect("hard limit")
            .pause
            .push(Priority::Critical);
        b
    }

    #[test]
    fn status_projects_spend_to_the_period_end() {
        let b = budget();
        let now = ts(2026, 11, 16, 0); // half of November
        let s = evaluate(&b, 1000.0, 1.0, 500.0, now);
        assert_eq!(s.spend, 1500.0);
        assert_eq!(s.percent(), "30%");
        // 1000 + 1 $/h × 15 days × 24 h + 500 × 2
        assert!((s.projected - (1000.0 + 360.0 + 1000.0)).abs() < 1e-6);
        assert_eq!(s.period, "2026-11");
        assert_eq!(s.limit, None);
    }

    #[test]
    fn each_threshold_is_crossed_once_per_period() {
        let alerts = [0.5, 0.8, 0.9, 1.0];
        let mut notified = BTreeSet::new();
        assert_eq!(
            new_crossings(&alerts, 0.4, &notified),
            Vec::<f64>::new(),
            "none yet"
        );
        let c = new_crossings(&alerts, 0.85, &notified);
        assert_eq!(c, vec![0.5, 0.8]);
        notified.extend(c.iter().map(|a| threshold_key(*a)));
        assert_eq!(new_crossings(&alerts, 0.86, &notified), Vec::<f64>::new());
        assert_eq!(new_crossings(&alerts, 1.2, &notified), vec![0.9, 1.0]);
    }

    #[test]
    fn limits_switch_on_at_their_ratio() {
        let b = budget();
        assert_eq!(limit_at(&b, 0.89), None);
        assert_eq!(limit_at(&b, 0.9), Some(Limit::Soft));
        assert_eq!(limit_at(&b, 1.12), Some(Limit::Hard));
    }

    #[test]
    fn hard_limit_pauses_listed_priorities_but_never_critical() {
        let state = state();
        let caps = caps(&state, &budget(), 1.12);
        assert_eq!(caps["low-svc"].replicas, 0);
        assert_eq!(
            caps["low-svc"].reason,
            "paused by budget/monthly at 112% of $5,000"
        );
        assert_eq!(caps["normal-svc"].replicas, 0);
        assert!(!caps.contains_key("critical-svc"), "{caps:?}");
    }

    #[test]
    fn soft_limit_runs_listed_priorities_at_scale_min() {
        let state = state();
        let caps = caps(&state, &budget(), 0.95);
        assert_eq!(caps["low-svc"].replicas, 2, "its scale.min");
        assert_eq!(
            caps["low-svc"].reason,
            "scaled to min by budget/monthly at 95% of $5,000"
        );
        assert!(!caps.contains_key("normal-svc"));
        assert!(super::caps(&state, &budget(), 0.5).is_empty());
    }
}
