//! The autoscaler's decisions within a service's `scale` bounds: rules over metric series
//! (a condition holds when it has been true for its `for` duration), one replica at a time,
//! never inside `min`/`max`'s complement, never within `cooldown` of the last change. Pure: the
//! agent samples, this decides.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::budget::{caps, period_key, BudgetStatus};
use crate::model::service::{Metric, Scale, ScaleRule};
use crate::model::{DesiredState, Resource};

/// One observation: when (Unix milliseconds) and the value (a percentage, or a queue length).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub at: u64,
    pub value: f64,
}

/// Recent samples of one service's metrics, oldest first.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    series: BTreeMap<&'static str, VecDeque<Sample>>,
}

pub fn metric_name(m: Metric) -> &'static str {
    match m {
        Metric::Cpu => "cpu",
        Metric::Memory => "memory",
        Metric::QueueDepth => "queue_depth",
    }
}

impl Samples {
    pub fn push(&mut self, metric: Metric, sample: Sample) {
        self.series
            .entry(metric_name(metric))
            .or_default()
            .push_back(sample);
    }

    /// Drops samples older than `keep_ms` before `now`, but always keeps the newest one.
    pub fn prune(&mut self, now: u64, keep_ms: u64) {
        for s in self.series.values_mut() {
            while s.len() > 1 && s.front().is_some_and(|x| x.at + keep_ms < now) {
                s.pop_front();
            }
        }
    }

    pub fn latest(&self, metric: Metric) -> Option<Sample> {
        self.series
            .get(metric_name(metric))
            .and_then(|s| s.back().copied())
    }

    /// The newest value of every metric sampled, for the journal.
    pub fn latest_values(&self) -> BTreeMap<String, f64> {
        self.series
            .iter()
            .filter_map(|(k, s)| s.back().map(|x| (k.to_string(), x.value)))
            .collect()
    }

    fn of(&self, metric: Metric) -> Option<&VecDeque<Sample>> {
        self.series.get(metric_name(metric))
    }
}

/// How long samples must be kept to judge every rule of `scale`.
pub fn window_ms(scale: &Scale) -> u64 {
    scale
        .up
        .iter()
        .chain(&scale.down)
        .map(|r| r.for_.as_millis())
        .max()
        .unwrap_or(0)
        + 60_000
}

fn condition(rule: &ScaleRule, v: f64) -> bool {
    rule.above.is_none_or(|a| v > a) && rule.below.is_none_or(|b| v < b)
}

/// A rule holds when its newest sample meets the condition and every sample since the condition
/// became true spans at least `for` (samples older than the window must not break it).
pub fn holds(rule: &ScaleRule, samples: &Samples, now: u64) -> bool {
    let Some(series) = samples.of(rule.metric) else {
        return false;
    };
    let Some(latest) = series.back() else {
        return false;
    };
    if !condition(rule, latest.value) {
        return false;
    }
    let need = rule.for_.as_millis();
    if need == 0 {
        return true;
    }
    let mut since = latest.at;
    for s in series.iter().rev() {
        if !condition(rule, s.value) {
            break;
        }
        since = s.at;
    }
    now.saturating_sub(since) >= need
}

fn describe(rule: &ScaleRule, samples: &Samples) -> String {
    let v = samples
        .latest(rule.metric)
        .map(|s| s.value)
        .unwrap_or(f64::NAN);
    let unit = if rule.metric == Metric::QueueDepth {
        ""
    } else {
        "%"
    };
    let cond = match (rule.above, rule.below) {
        (Some(a), _) => format!("> {a}{unit}"),
        (None, Some(b)) => format!("< {b}{unit}"),
        (None, None) => "set".to_string(),
    };
    let held = if rule.for_.as_millis() > 0 {
        format!(" for {}", rule.for_)
    } else {
        String::new()
    };
    format!(
        "{} {}{unit} {cond}{held}",
        metric_name(rule.metric),
        round(v)
    )
}

fn round(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// One scaling decision: the replica count to run and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub from: u32,
    pub to: u32,
    pub reason: String,
    /// The newest value of each metric when it was decided.
    pub metrics: BTreeMap<String, f64>,
}

/// What the autoscaler would do now, if anything. `current` is the count it last chose (or the
/// declared `replicas`); `last_change` is when it last changed it (Unix milliseconds).
pub fn decide(
    scale: &Scale,
    current: u32,
    samples: &Samples,
    last_change: Option<u64>,
    now: u64,
) -> Option<Decision> {
    let decision = |to: u32, reason: String| Decision {
        from: current,
        to,
        reason,
        metrics: samples.latest_values(),
    };
    if current < scale.min {
        return Some(decision(
            scale.min,
            format!("below scale.min {}", scale.min),
        ));
    }
    if current > scale.max {
        return Some(decision(
            scale.max,
            format!("above scale.max {}", scale.max),
        ));
    }
    if last_change.is_some_and(|t| now.saturating_sub(t) < scale.cooldown.as_millis()) {
        return None;
    }
    if current < scale.max {
        if let Some(rule) = scale.up.iter().find(|r| holds(r, samples, now)) {
            return Some(decision(current + 1, describe(rule, samples)));
        }
    }
    if current > scale.min
        && !scale.down.is_empty()
        && scale.down.iter().all(|r| holds(r, samples, now))
    {
        let why: Vec<String> = scale.down.iter().map(|r| describe(r, samples)).collect();
        return Some(decision(current - 1, why.join(", ")));
    }
    None
}

pub use crate::model::live::{Origin, ReplicaOverride};

/// The autoscaler's last choice for a service, as the journal recorded it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Autoscaled {
    pub replicas: u32,
    pub reason: String,
    /// Unix seconds.
    pub at: u64,
}

/// The replica counts that differ from the declared ones: the autoscaler's choice (kept within
/// the current `scale` bounds), then capped by every budget whose recorded spend, over the
/// budget's current amount, reaches a limit in the current period.
pub fn overrides(
    desired: &DesiredState,
    autoscaled: &BTreeMap<String, Autoscaled>,
    budgets: &[BudgetStatus],
    now: u64,
) -> BTreeMap<String, ReplicaOverride> {
    let mut out = BTreeMap::new();
    for s in desired.services() {
        let (Some(scale), Some(a)) = (&s.scale, autoscaled.get(s.name.as_str())) else {
            continue;
        };
        let replicas = a.replicas.clamp(scale.min, scale.max);
        if replicas != s.replicas {
            out.insert(
                s.name.to_string(),
                ReplicaOverride {
                    replicas,
                    reason: format!("autoscaled: {}", a.reason),
                    origin: Origin::Autoscale,
                },
            );
        }
    }
    for b in desired.resources.values().filter_map(|r| match r {
        Resource::Budget(b) => Some(b),
        _ => None,
    }) {
        let id = format!("budget/{}", b.name);
        let Some(status) = budgets.iter().find(|x| x.budget == id) else {
            continue;
        };
        if status.period != period_key(b.period, now) || b.amount <= 0.0 {
            continue;
        }
        for (service, cap) in caps(desired, b, status.spend / b.amount) {
            let current = out
                .get(&service)
                .map(|o: &ReplicaOverride| o.replicas)
                .or_else(|| desired.service(&service).map(|s| s.replicas))
                .unwrap_or(0);
            if cap.replicas < current {
                out.insert(
                    service,
                    ReplicaOverride {
                        replicas: cap.replicas,
                        reason: cap.reason,
                        origin: Origin::Budget,
                    },
                );
            }
        }
    }
    out
}

/// The desired state with each override's replica count in place of the declared one.
pub fn with_overrides(
    desired: &DesiredState,
    overrides: &BTreeMap<String, ReplicaOverride>,
) -> DesiredState {
    let mut out = desired.clone();
    for r in out.resources.values_mut() {
        if let Resource::Service(s) = r {
            if let Some(o) = overrides.get(s.name.as_str()) {
                s.replicas = o.replicas;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::types::Duration;

    fn rule(metric: Metric, above: Option<f64>, below: Option<f64>, for_s: u64) -> ScaleRule {
        ScaleRule {
            metric,
            above,
            below,
            for_: Duration::from_millis(for_s * 1000),
        }
    }

    fn worker() -> Scale {
        Scale {
            min: 1,
            max: 3,
            cooldown: Duration::from_millis(300_000),
            up: vec![
                rule(Metric::Cpu, Some(80.0), None, 300),
                rule(Metric::QueueDepth, Some(50.0), None, 0),
            ],
            down: vec![
                rule(Metric::Cpu, None, Some(30.0), 600),
                rule(Metric::QueueDepth, None, Some(10.0), 0),
            ],
            queue_depth: None,
        }
    }

    /// `values[i]` is sampled at minute i.
    fn series(metric: Metric, values: &[f64]) -> Samples {
        let mut s = Samples::default();
        for (i, v) in values.iter().enumerate() {
            s.push(
                metric,
                Sample {
                    at: i as u64 * 60_000,
                    value: *v,
                },
            );
        }
        s
    }

    fn minute(m: u64) -> u64 {
        m * 60_000
    }

    #[test]
    fn a_rule_with_for_holds_only_after_the_condition_lasted_that_long() {
        let r = rule(Metric::Cpu, Some(80.0), None, 300);
        let s = series(Metric::Cpu, &[10.0, 90.0, 90.0, 90.0, 90.0, 90.0]);
        assert!(!holds(&r, &s, minute(5)), "true since minute 1: 4 minutes");
        let s = series(Metric::Cpu, &[10.0, 90.0, 90.0, 90.0, 90.0, 90.0, 90.0]);
        assert!(holds(&r, &s, minute(6)), "true since minute 1: 5 minutes");
    }

    #[test]
    fn one_sample_below_the_threshold_restarts_the_for_window() {
        let r = rule(Metric::Cpu, Some(80.0), None, 300);
        let s = series(
            Metric::Cpu,
            &[90.0, 90.0, 90.0, 90.0, 70.0, 90.0, 90.0, 90.0, 90.0],
        );
        assert!(!holds(&r, &s, minute(8)));
    }

    #[test]
    fn queue_depth_above_threshold_scales_up_by_one() {
        let s = series(Metric::QueueDepth, &[73.0]);
        let d = decide(&worker(), 1, &s, None, minute(0)).expect("scales");
        assert_eq!((d.from, d.to), (1, 2));
        assert_eq!(d.reason, "queue_depth 73 > 50");
        assert_eq!(d.metrics["queue_depth"], 73.0);
    }

    #[test]
    fn never_scales_above_max_or_below_min() {
        let s = series(Metric::QueueDepth, &[500.0]);
        assert_eq!(decide(&worker(), 3, &s, None, 0), None);
        let mut s = series(Metric::QueueDepth, &[0.0]);
        for i in 0..=10 {
            s.push(
                Metric::Cpu,
                Sample {
                    at: minute(i),
                    value: 5.0,
                },
            );
        }
        assert_eq!(decide(&worker(), 1, &s, None, minute(10)), None);
    }

    #[test]
    fn scales_down_only_when_every_down_rule_holds() {
        let mut s = series(Metric::QueueDepth, &[2.0]);
        assert_eq!(
            decide(&worker(), 2, &s, None, minute(10)),
            None,
            "no cpu samples"
        );
        for i in 0..=10 {
            s.push(
                Metric::Cpu,
                Sample {
                    at: minute(i),
                    value: 12.0,
                },
            );
        }
        let d = decide(&worker(), 2, &s, None, minute(10)).expect("scales down");
        assert_eq!((d.from, d.to), (2, 1));
        assert_eq!(d.reason, "cpu 12% < 30% for 10m, queue_depth 2 < 10");
    }

    #[test]
    fn nothing_changes_within_cooldown_of_the_last_change() {
        let s = series(Metric::QueueDepth, &[100.0]);
        assert_eq!(decide(&worker(), 1, &s, Some(0), minute(4)), None);
        assert!(decide(&worker(), 1, &s, Some(0), minute(5)).is_some());
    }

    #[test]
    fn a_flapping_queue_changes_replicas_at_most_once_per_cooldown() {
        let scale = worker();
        let mut replicas = 1;
        let mut last = None;
        let mut changes = Vec::new();
        let mut s = Samples::default();
        for m in 0..30u64 {
            let q = if m % 2 == 0 { 120.0 } else { 0.0 };
            s.push(
                Metric::QueueDepth,
                Sample {
                    at: minute(m),
                    value: q,
                },
            );
            s.push(
                Metric::Cpu,
                Sample {
                    at: minute(m),
                    value: 10.0,
                },
            );
            if let Some(d) = decide(&scale, replicas, &s, last, minute(m)) {
                replicas = d.to;
                last = Some(minute(m));
                changes.push(m);
            }
        }
        assert!(
            changes.windows(2).all(|w| w[1] - w[0] >= 5),
            "changes at minutes {changes:?}"
        );
        assert!((1..=3).contains(&replicas));
    }

    #[test]
    fn a_count_outside_new_bounds_is_brought_back_at_once() {
        let s = Samples::default();
        let d = decide(&worker(), 7, &s, Some(0), 1).expect("clamps");
        assert_eq!(d.to, 3);
        let d = decide(&worker(), 0, &s, Some(0), 1).expect("clamps");
        assert_eq!(d.to, 1);
    }

    #[test]
    fn prune_keeps_the_window_and_the_newest_sample() {
        let mut s = series(Metric::Cpu, &[1.0, 2.0, 3.0, 4.0]);
        s.prune(minute(10), minute(2));
        assert_eq!(s.of(Metric::Cpu).map(|x| x.len()), Some(1));
        assert_eq!(s.latest(Metric::Cpu).map(|x| x.value), Some(4.0));
    }
}
