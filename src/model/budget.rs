//! The `Budget` kind: a period amount, cost rates, spend source, alerts, soft and hard limits.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::service::Priority;
use super::types::Name;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    pub name: Name,
    pub amount: f64,
    #[serde(default = "usd")]
    pub currency: String,
    #[serde(default)]
    pub period: Period,
    /// Cost rates: `cpu_hour`, `memory_gb_hour`, `gpu_hour`, `storage_gb_month`, and any others.
    #[serde(default)]
    pub rates: BTreeMap<String, f64>,
    #[serde(default)]
    pub spend: Option<Spend>,
    /// Fractions of `amount` that notify once per period when crossed.
    #[serde(default)]
    pub alerts: Vec<f64>,
    #[serde(default)]
    pub soft_limit: Option<SoftLimit>,
    #[serde(default)]
    pub hard_limit: Option<HardLimit>,
    /// Names of `Notifier` resources.
    #[serde(default)]
    pub notify: Vec<String>,
}

fn usd() -> String {
    "USD".into()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Day,
    Week,
    #[default]
    Month,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Spend {
    /// Name of a `Database` resource.
    pub database: String,
    /// A query returning the external spend so far this period.
    pub sql: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SoftLimit {
    pub at: f64,
    /// Services of these priorities run at their `scale.min`.
    #[serde(default)]
    pub scale_to_min: Vec<Priority>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HardLimit {
    pub at: f64,
    /// Services of these priorities are paused (0 replicas); `critical` ones never are.
    #[serde(default)]
    pub pause: Vec<Priority>,
}
