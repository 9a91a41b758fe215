//! The autoscaler's sampling: CPU and memory of each scaled service's running containers
//! (Docker stats, as a percentage of the declared limit) and its `queue_depth` query, kept as
//! series for `scale::decide`. Counters come from the container's cgroup when it is visible on
//! this host (microseconds), else from the Docker API (concurrently); CPU is a rate between two of
//! our own readings, so nothing waits for the engine's second sample.

use std::collections::BTreeMap;

use futures_util::stream::{self, StreamExt};
use tracing::warn;

use crate::model::live::LiveState;
use crate::model::service::{Metric, Service};
use crate::model::{DesiredState, Kind, ResourceId};
use crate::providers::postgres::{Connection, Postgres};
use crate::providers::runtime::{ContainerReading, Meter, RuntimeError};
use crate::scale::{self, Autoscaled, Decision, Sample, Samples};

/// How many queue-depth queries are in flight at once.
const CONCURRENCY: usize = 128;

#[derive(Default)]
pub struct Autoscaler {
    samples: BTreeMap<String, Samples>,
    /// Per container: when (ms) and its cumulative CPU nanoseconds at the previous reading.
    previous: BTreeMap<String, (u64, u64)>,
    clients: BTreeMap<String, Connection>,
}

/// What one sampling round read.
#[derive(Debug, Default, Clone, Copy)]
pub struct Round {
    pub services: usize,
    pub containers: usize,
    pub queries: usize,
    pub errors: usize,
}

fn scaled(desired: &DesiredState) -> impl Iterator<Item = &Service> {
    desired.services().filter(|s| s.scale.is_some())
}

fn uses(s: &Service, metric: Metric) -> bool {
    s.scale
        .as_ref()
        .is_some_and(|x| x.up.iter().chain(&x.down).any(|r| r.metric == metric))
}

impl Autoscaler {
    /// Reads every scaled service's metrics once, at `now` (Unix milliseconds).
    pub async fn sample(
        &mut self,
        desired: &DesiredState,
        live: &LiveState,
        runtime: Option<&dyn Meter>,
        postgres: Option<&Postgres>,
        now: u64,
    ) -> Round {
        let mut round = Round::default();
        let mut wanted: Vec<(String, String)> = Vec::new();
        for s in scaled(desired) {
            round.services += 1;
            if !(uses(s, Metric::Cpu) || uses(s, Metric::Memory)) {
                continue;
            }
            let id = ResourceId::new(Kind::Service, s.name.as_str());
            for c in live.service(&id).into_iter().flat_map(|l| &l.containers) {
                if c.running {
                    wanted.push((s.name.to_string(), c.name.clone()));
                }
            }
        }
        let readings = match runtime {
            Some(rt) => read_containers(rt, wanted).await,
            None => Vec::new(),
        };
        round.containers = readings.len();
        let mut cpu: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let mut mem: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for (service, name, r) in readings {
            let Ok(r) = r else {
                round.errors += 1;
                continue;
            };
            let Some(s) = desired.service(&service) else {
                continue;
            };
            if let Some(p) = self.cpu_percent(s, &name, &r, now) {
                cpu.entry(service.clone()).or_default().push(p);
            }
            let limit = s
                .resources
                .memory
                .map(|m| m.bytes())
                .unwrap_or(r.memory_limit);
            if limit > 0 {
                mem.entry(service)
                    .or_default()
                    .push(r.memory_bytes as f64 * 100.0 / limit as f64);
            }
        }
        let live_names: std::collections::BTreeSet<String> = live
            .resources
            .values()
            .filter_map(|r| r.service.as_ref())
            .flat_map(|s| s.containers.iter().map(|c| c.name.clone()))
            .collect();
        self.previous.retain(|n, _| live_names.contains(n));
        let queues = self.queue_depths(desired, postgres).await;
        round.queries = queues.len();
        for s in scaled(desired) {
            let name = s.name.to_string();
            let series = self.samples.entry(name.clone()).or_default();
            if let Some(v) = cpu.get(&name).and_then(|v| mean(v)) {
                series.push(Metric::Cpu, Sample { at: now, value: v });
            }
            if let Some(v) = mem.get(&name).and_then(|v| mean(v)) {
                series.push(Metric::Memory, Sample { at: now, value: v });
            }
            match queues.get(&name) {
                Some(Ok(v)) => series.push(Metric::QueueDepth, Sample { at: now, value: *v }),
                Some(Err(e)) => {
                    round.errors += 1;
                    warn!(service = %name, error = %e, "queue_depth query failed");
                }
                None => {}
            }
            if let Some(scale) = &s.scale {
                series.prune(now, scale::window_ms(scale));
            }
        }
        self.samples
            .retain(|name, _| desired.service(name).is_some_and(|s| s.scale.is_some()));
        round
    }

    /// CPU used since the previous reading, as a percentage of the declared `cpus` (or of the
    /// host's CPUs when unlimited); `None` on a container's first reading.
    fn cpu_percent(
        &mut self,
        s: &Service,
        name: &str,
        r: &ContainerReading,
        now: u64,
    ) -> Option<f64> {
        let prev = self.previous.insert(name.to_string(), (now, r.cpu_ns));
        let (at, ns) = prev?;
        let wall_ns = now.checked_sub(at)?.checked_mul(1_000_000)?;
        if wall_ns == 0 || r.cpu_ns < ns {
            return None;
        }
        let cores = (r.cpu_ns - ns) as f64 / wall_ns as f64;
        let limit = s.resources.cpus.unwrap_or(f64::from(r.online_cpus.max(1)));
        Some(cores * 100.0 / limit)
    }

    /// Runs each scaled service's `queue_depth` query (concurrently, one connection per database).
    async fn queue_depths(
        &mut self,
        desired: &DesiredState,
        postgres: Option<&Postgres>,
    ) -> BTreeMap<String, Result<f64, String>> {
        let mut out = BTreeMap::new();
        let queries: Vec<(String, String, String)> = scaled(desired)
            .filter(|s| uses(s, Metric::QueueDepth))
            .filter_map(|s| {
                let q = s.scale.as_ref()?.queue_depth.as_ref()?;
                Some((s.name.to_string(), q.database.clone(), q.sql.clone()))
            })
            .collect();
        if queries.is_empty() {
            return out;
        }
        let Some(pg) = postgres else {
            for (name, _, _) in queries {
                out.insert(name, Err("no PostgreSQL provider".into()));
            }
            return out;
        };
        for (_, db, _) in &queries {
            if self.clients.get(db).is_some_and(|c| c.is_closed()) {
                self.clients.remove(db);
            }
            if !self.clients.contains_key(db) {
                match pg.open_connection(db).await {
                    Ok(c) => {
                        self.clients.insert(db.clone(), c);
                    }
                    Err(e) => warn!(database = %db, error = %e, "cannot connect for queue_depth"),
                }
            }
        }
        let clients = &self.clients;
        let results: Vec<(String, Result<f64, String>)> = stream::iter(queries)
            .map(|(name, db, sql)| async move {
                let r = match clients.get(&db) {
                    Some(c) => c.scalar(&sql).await,
                    None => Err(format!("no connection to database {db}")),
                };
                (name, r)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        out.extend(results);
        out
    }

    /// The decisions the autoscaler makes now, per service name; `chosen` is what it chose
    /// before (from the journal), so cooldowns survive a restart.
    pub fn decide(
        &self,
        desired: &DesiredState,
        chosen: &BTreeMap<String, Autoscaled>,
        now: u64,
    ) -> Vec<(String, Decision)> {
        let empty = Samples::default();
        scaled(desired)
            .filter_map(|s| {
                let scale = s.scale.as_ref()?;
                let prev = chosen.get(s.name.as_str());
                let current = prev.map(|a| a.replicas).unwrap_or(s.replicas);
                let last = prev.map(|a| a.at * 1000);
                let samples = self.samples.get(s.name.as_str()).unwrap_or(&empty);
                scale::decide(scale, current, samples, last, now).map(|d| (s.name.to_string(), d))
            })
            .collect()
    }
}

type Reading = (String, String, Result<ContainerReading, String>);

/// Reads each (service, container) through the runtime, all at once.
async fn read_containers(runtime: &dyn Meter, wanted: Vec<(String, String)>) -> Vec<Reading> {
    if wanted.is_empty() {
        return Vec::new();
    }
    let names: Vec<String> = wanted.iter().map(|(_, n)| n.clone()).collect();
    let mut read = runtime.readings(&names).await;
    wanted
        .into_iter()
        .map(|(service, name)| {
            let r = read
                .remove(&name)
                .unwrap_or_else(|| {
                    Err(RuntimeError::Api {
                        what: format!("stats of {name}"),
                        message: "no reading".into(),
                    })
                })
                .map_err(|e| e.to_string());
            (service, name, r)
        })
        .collect()
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}
