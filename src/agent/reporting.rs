//! Reporting: `/status` and `/metrics` updates (the journal's recoveries and drills too), and
//! events sent to notifiers.

use std::sync::Arc;
use std::time::Instant;

use super::source::Revision;
use super::status::{ResourceStatus, Status};
use super::{metrics, notify, Agent};
use crate::disaster::{self, RecoveryKind};
use crate::engine::journal::Journal;
use crate::model::live::LiveState;
use crate::model::notifier::EventKind;
use crate::model::{DesiredState, Kind, Resource, ResourceId};
use crate::plan;
use crate::secrets::Secrets;

impl Agent {
    pub(super) fn status(&self, f: impl FnOnce(&mut Status)) {
        f(&mut self.shared.status.write().expect("status lock"));
    }

    pub(super) fn event(
        &self,
        desired: &DesiredState,
        secrets: &Arc<Secrets>,
        rev: &Revision,
        kind: EventKind,
        text: String,
    ) {
        notify::send(
            desired,
            secrets.clone(),
            notify::Event {
                text,
                event: kind,
                project: desired.project.name.to_string(),
                revision: Some(rev.id.clone()),
            },
        );
    }

    /// Per-resource state for `/status` and the service gauges for `/metrics`.
    pub(super) fn report(
        &self,
        desired: &DesiredState,
        live: &LiveState,
        plan: &plan::Plan,
        reconciled: &[Kind],
    ) {
        let changing: std::collections::BTreeSet<String> =
            plan.changes.iter().map(|c| c.id.to_string()).collect();
        let m = &self.shared.metrics;
        m.active_color.clear();
        m.running.clear();
        let mut resources = std::collections::BTreeMap::new();
        for (id, r) in &desired.resources {
            let key = id.to_string();
            let mut st = ResourceStatus {
                state: if !reconciled.contains(&id.kind) {
                    "not-reconciled".into()
                } else if changing.contains(key.as_str()) {
                    "changing".into()
                } else {
                    "ok".into()
                },
                ..Default::default()
            };
            if let Resource::Service(s) = r {
                let ls = live.service(&ResourceId::new(Kind::Service, s.name.as_str()));
                let running = ls
                    .map(|l| {
                        l.containers
                            .iter()
                            .filter(|c| {
                                c.running && (l.active_color.is_none() || c.color == l.active_color)
                            })
                            .count() as u32
                    })
                    .unwrap_or(0);
                st.running = Some(running);
                st.desired = Some(s.replicas);
                let label = metrics::ServiceLabel {
                    service: s.name.to_string(),
                };
                m.desired_replicas
                    .get_or_create(&label)
                    .set(s.replicas as i64);
                let o = live.overrides.get(s.name.as_str());
                m.autoscaled_replicas
                    .get_or_create(&label)
                    .set(o.map(|o| o.replicas).unwrap_or(s.replicas) as i64);
                st.autoscaled = o.map(|o| o.replicas);
                st.scaling = o.map(|o| o.reason.clone());
                st.last_scaling = self.last_scaling.get(s.name.as_str()).cloned();
                st.active_color = ls.and_then(|l| l.active_color).map(|c| c.to_string());
                m.running
                    .get_or_create(&metrics::ServiceLabel {
                        service: s.name.to_string(),
                    })
                    .set(running as i64);
                if let Some(c) = &st.active_color {
                    m.active_color
                        .get_or_create(&metrics::ColorLabel {
                            service: s.name.to_string(),
                            color: c.clone(),
                        })
                        .set(1);
                }
            }
            if let Some(wait) = self
                .backoff
                .retry_in(&key, Instant::now())
                .filter(|d| !d.is_zero())
            {
                st.state = "backoff".into();
                st.detail = Some(format!("retried in {}s", wait.as_secs()));
            }
            resources.insert(key, st);
        }
        // Replica counts the autoscaler or a budget chose are not drift from Git.
        let drifting: Vec<String> = plan
            .changes
            .iter()
            .filter(|c| c.origin.is_none())
            .map(|c| c.id.to_string())
            .collect();
        let drifted = if self.applied.is_some() {
            drifting.len()
        } else {
            0
        };
        m.drifted_resources.set(drifted as i64);
        self.report_recoveries(desired);
        self.status(|s| {
            s.resources = resources;
            s.pending = live.pending.clone();
            s.notes = plan.notes.clone();
            s.drift = if self.applied.as_deref() == s.revision.as_deref() {
                drifting
            } else {
                Vec::new()
            };
        });
    }

    /// The last recovery and drill from the journal (a `converge recover` run by hand included)
    /// into `/status` and `/metrics`.
    pub(super) fn report_recoveries(&self, desired: &DesiredState) {
        let entries = Journal::entries(&self.opts.state_dir, desired.project.name.as_str());
        self.shared.metrics.record_recoveries(&entries);
        self.status(|s| {
            s.last_drill = disaster::last(&entries, RecoveryKind::Drill);
            s.last_recovery = disaster::last(&entries, RecoveryKind::Recovery);
        });
    }

    /// Tells the budget's own notifiers, from the agent doing the cluster's work only.
    pub(super) fn budget_event(
        &self,
        desired: &DesiredState,
        secrets: &Arc<Secrets>,
        rev: &Revision,
        b: &crate::model::Budget,
        text: String,
    ) {
        if !self.cluster_work {
            return;
        }
        let event = notify::Event {
            text,
            event: EventKind::Budget,
            project: desired.project.name.to_string(),
            revision: Some(rev.id.clone()),
        };
        notify::send_to(desired, secrets.clone(), event, &b.notify);
    }
}
