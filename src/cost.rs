//! The cost model: a Budget's rates priced over 730 hours a month, for services (replicas ×
//! resources) and buckets (stored bytes), and money as plans print it. Pure: no I/O.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::live::{LiveResource, LiveState};
use crate::model::types::Size;
use crate::model::{AttrValue, Budget, DesiredState, Kind, Resource, ResourceId, Service};

/// Hours in a billing month, as cloud price lists count them.
pub const HOURS_PER_MONTH: f64 = 730.0;

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// What one replica of a service asks for: the unit a rate prices.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub replicas: u32,
    /// CPU cores per replica; 0 when unlimited (unpriced).
    pub cpus: f64,
    pub memory_bytes: u64,
    pub gpus: u32,
}

impl Usage {
    pub fn of(service: &Service, replicas: u32) -> Usage {
        Usage {
            replicas,
            cpus: service.resources.cpus.unwrap_or(0.0),
            memory_bytes: service.resources.memory.map(|m| m.bytes()).unwrap_or(0),
            gpus: service.resources.gpus,
        }
    }
}

/// The rates of one Budget, with the currency they are in.
#[derive(Debug, Clone, PartialEq)]
pub struct Rates {
    pub budget: String,
    pub currency: String,
    pub cpu_hour: f64,
    pub memory_gb_hour: f64,
    pub gpu_hour: f64,
    pub storage_gb_month: f64,
}

impl Rates {
    pub fn of(budget: &Budget) -> Rates {
        let r = |k: &str| budget.rates.get(k).copied().unwrap_or(0.0);
        Rates {
            budget: format!("budget/{}", budget.name),
            currency: budget.currency.clone(),
            cpu_hour: r("cpu_hour"),
            memory_gb_hour: r("memory_gb_hour"),
            gpu_hour: r("gpu_hour"),
            storage_gb_month: r("storage_gb_month"),
        }
    }

    /// The rates plans price with: the first Budget (by name) that declares any.
    pub fn of_state(state: &DesiredState) -> Option<Rates> {
        state.resources.values().find_map(|r| match r {
            Resource::Budget(b) if !b.rates.is_empty() => Some(Rates::of(b)),
            _ => None,
        })
    }

    /// Cost of running `u` for one hour.
    pub fn hourly(&self, u: &Usage) -> f64 {
        let one = u.cpus * self.cpu_hour
            + u.memory_bytes as f64 / GIB * self.memory_gb_hour
            + f64::from(u.gpus) * self.gpu_hour;
        one * f64::from(u.replicas)
    }

    pub fn monthly(&self, u: &Usage) -> f64 {
        self.hourly(u) * HOURS_PER_MONTH
    }

    /// Cost of keeping `bytes` stored for a month.
    pub fn storage_monthly(&self, bytes: u64) -> f64 {
        bytes as f64 / GIB * self.storage_gb_month
    }

    pub fn money(&self, amount: f64) -> String {
        money(amount, &self.currency)
    }

    pub fn delta(&self, delta: f64) -> String {
        signed(delta, &self.currency)
    }
}

/// A resource's projected monthly cost before and after a change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CostDelta {
    pub before: f64,
    pub after: f64,
}

impl CostDelta {
    pub fn delta(&self) -> f64 {
        self.after - self.before
    }

    /// Deltas under half a cent are noise from float sums.
    pub fn is_zero(&self) -> bool {
        self.delta().abs() < 0.005
    }
}

/// The projected monthly cost of the whole desired state, before and after a plan.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CostSummary {
    /// `budget/NAME` whose rates priced this.
    pub budget: String,
    pub currency: String,
    pub before: f64,
    pub after: f64,
    /// Per resource id, the resources that cost anything.
    pub resources: BTreeMap<String, CostDelta>,
}

impl CostSummary {
    pub fn delta(&self) -> f64 {
        self.after - self.before
    }

    pub fn line(&self) -> String {
        format!(
            "Monthly cost (rates of {}): {} → {} ({}/month).",
            self.budget,
            money(self.before, &self.currency),
            money(self.after, &self.currency),
            signed(self.delta(), &self.currency)
        )
    }
}

/// What a live service runs: its running containers and the resources its containers carry.
pub fn live_usage(live: &LiveResource) -> Usage {
    let text = |k: &str| match live.attributes.get(k).map(|a| &a.value) {
        Some(AttrValue::Text(t)) => Some(t.trim_matches('"').to_string()),
        _ => None,
    };
    let running = live
        .service
        .as_ref()
        .map(|s| s.containers.iter().filter(|c| c.running).count() as u32)
        .unwrap_or(0);
    Usage {
        replicas: running,
        cpus: text("resources.cpus")
            .and_then(|t| t.parse().ok())
            .unwrap_or(0.0),
        memory_bytes: text("resources.memory")
            .and_then(|t| t.parse::<Size>().ok())
            .map(|s| s.bytes())
            .unwrap_or(0),
        gpus: text("resources.gpus")
            .and_then(|t| t.parse().ok())
            .unwrap_or(0),
    }
}

/// Prices the desired state (with its effective replica counts) against the live state: the
/// monthly cost of every service and bucket before and after. `deleted` says which live
/// resources the plan deletes (they cost nothing after it).
pub fn estimate(
    desired: &DesiredState,
    live: &LiveState,
    in_scope: &dyn Fn(&Service) -> bool,
    deleted: &dyn Fn(&str) -> bool,
) -> Option<CostSummary> {
    let rates = Rates::of_state(desired)?;
    let mut resources: BTreeMap<String, CostDelta> = BTreeMap::new();
    for s in desired.services().filter(|s| in_scope(s)) {
        let id = ResourceId::new(Kind::Service, s.name.as_str());
        let before = live
            .resources
            .get(&id)
            .map(|l| rates.monthly(&live_usage(l)))
            .unwrap_or(0.0);
        let after = rates.monthly(&Usage::of(s, s.replicas));
        resources.insert(id.to_string(), CostDelta { before, after });
    }
    for (id, l) in &live.resources {
        let key = id.to_string();
        match id.kind {
            Kind::Service if !resources.contains_key(&key) => {
                let before = rates.monthly(&live_usage(l));
                let after = if deleted(&key) { 0.0 } else { before };
                resources.insert(key, CostDelta { before, after });
            }
            Kind::Bucket => {
                let stored = rates.storage_monthly(l.stored_bytes.unwrap_or(0));
                let after = if deleted(&key) { 0.0 } else { stored };
                resources.insert(
                    key,
                    CostDelta {
                        before: stored,
                        after,
                    },
                );
            }
            _ => {}
        }
    }
    resources.retain(|_, d| d.before > 0.0 || d.after > 0.0);
    Some(CostSummary {
        budget: rates.budget.clone(),
        currency: rates.currency.clone(),
        before: resources.values().map(|d| d.before).sum(),
        after: resources.values().map(|d| d.after).sum(),
        resources,
    })
}

/// `$1,234.50` for USD; `1,234.50 EUR` for any other currency.
pub fn money(amount: f64, currency: &str) -> String {
    let cents = (amount.abs() * 100.0).round() as u64;
    let whole = grouped(cents / 100);
    let text = format!("{whole}.{:02}", cents % 100);
    let sign = if amount < 0.0 && cents > 0 { "-" } else { "" };
    match currency {
        "USD" => format!("{sign}${text}"),
        c => format!("{sign}{text} {c}"),
    }
}

/// `+$36.50`, `-$12.00`, `$0.00`.
pub fn signed(amount: f64, currency: &str) -> String {
    let text = money(amount.abs(), currency);
    if (amount * 100.0).round() == 0.0 {
        text
    } else if amount > 0.0 {
        format!("+{text}")
    } else {
        format!("-{text}")
    }
}

fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rates() -> Rates {
        Rates {
            budget: "budget/monthly".into(),
            currency: "USD".into(),
            cpu_hour: 0.05,
            memory_gb_hour: 0.01,
            gpu_hour: 0.50,
            storage_gb_month: 0.10,
        }
    }

    #[test]
    fn one_core_for_a_month_costs_730_hours_of_the_cpu_rate() {
        let u = Usage {
            replicas: 1,
            cpus: 1.0,
            memory_bytes: 0,
            gpus: 0,
        };
        assert_eq!(rates().money(rates().monthly(&u)), "$36.50");
    }

    #[test]
    fn replicas_multiply_cpu_memory_and_gpu_cost() {
        let u = Usage {
            replicas: 3,
            cpus: 2.0,
            memory_bytes: 4 << 30,
            gpus: 1,
        };
        // (2 × 0.05 + 4 × 0.01 + 0.50) × 3 × 730 = 0.64 × 2190
        assert!((rates().monthly(&u) - 1401.6).abs() < 1e-9);
    }

    #[test]
    fn unlimited_resources_are_unpriced() {
        let u = Usage {
            replicas: 5,
            ..Default::default()
        };
        assert_eq!(rates().monthly(&u), 0.0);
    }

    #[test]
    fn storage_is_priced_per_gib_month() {
        assert!((rates().storage_monthly(250 << 30) - 25.0).abs() < 1e-9);
    }

    #[test]
    fn estimate_prices_a_replica_change_and_a_buckets_stored_bytes() {
        use crate::model::live::{LiveContainer, LiveResource, LiveService};
        let text = "kind: Project\nname: p\n---\nkind: Budget\nname: b\namount: 100\nrates: {cpu_hour: 0.05, storage_gb_month: 0.10}\n---\nkind: Service\nname: w\nimage: x:1\nreplicas: 3\nresources: {cpus: 1.0}\n---\nkind: Bucket\nname: data-bucket\n";
        let tree = crate::load::SourceTree::new("t").with_file("all.yaml", text);
        let desired = crate::load::load(&tree, None).expect("valid");
        let mut live = LiveState::default();
        let mut attributes = crate::model::Attributes::default();
        attributes.text("resources.cpus", "1");
        live.resources.insert(
            ResourceId::new(Kind::Service, "w"),
            LiveResource {
                attributes,
                service: Some(LiveService {
                    containers: vec![LiveContainer {
                        name: "p-w-1".into(),
                        running: true,
                        ..Default::default()
                    }],
                    active_color: None,
                    image_now: None,
                }),
                ..Default::default()
            },
        );
        live.resources.insert(
            ResourceId::new(Kind::Bucket, "data-bucket"),
            LiveResource {
                stored_bytes: Some(50 << 30),
                ..Default::default()
            },
        );
        let s = estimate(&desired, &live, &|_| true, &|_| false).expect("rates");
        assert_eq!(s.resources["service/w"].before, 36.5);
        assert!((s.resources["service/w"].after - 109.5).abs() < 1e-9);
        assert!((s.resources["bucket/data-bucket"].after - 5.0).abs() < 1e-9);
        assert!((s.delta() - 73.0).abs() < 1e-9);
        assert_eq!(s.budget, "budget/b");
    }

    #[test]
    fn money_groups_thousands_and_signs_deltas() {
        assert_eq!(money(5000.0, "USD"), "$5,000.00");
        assert_eq!(money(1234567.891, "USD"), "$1,234,567.89");
        assert_eq!(money(12.5, "EUR"), "12.50 EUR");
        assert_eq!(signed(36.5, "USD"), "+$36.50");
        assert_eq!(signed(-36.5, "USD"), "-$36.50");
        assert_eq!(signed(0.001, "USD"), "$0.00");
    }

    #[test]
    fn summary_line_shows_before_after_and_delta() {
        let s = CostSummary {
            budget: "budget/monthly".into(),
            currency: "USD".into(),
            before: 100.0,
            after: 136.5,
            resources: BTreeMap::new(),
        };
        assert_eq!(
            s.line(),
            "Monthly cost (rates of budget/monthly): $100.00 → $136.50 (+$36.50/month)."
        );
    }
}
