//! Recovery drills in the agent: the Project's `recovery.drill.schedule` (cron, UTC) fires once
//! per occurrence, on the agent allowed to do cluster-wide work, after the backups; the drill
//! (`crate::disaster`, scratch copies only) is journaled and its outcome sent to the Notifiers
//! that `recovery.drill.notify` names.

use std::sync::Arc;

use tokio::runtime::Handle;
use tracing::{error, info};

use super::source::Revision;
use super::{notify, schedule, Agent};
use crate::disaster::{Recovery, RecoveryOptions};
use crate::engine::journal;
use crate::engine::Engine;
use crate::model::notifier::EventKind;
use crate::model::DesiredState;
use crate::secrets::Secrets;

/// The key of the drill's schedule among the backups'.
const DRILL: &str = "recovery/drill";

impl Agent {
    /// Runs the recovery drill when its schedule came due since it was last looked at.
    pub(super) async fn run_drill(
        &mut self,
        desired: &DesiredState,
        session: &Engine,
        rev: &Revision,
    ) {
        let Some(drill) = desired
            .project
            .recovery
            .as_ref()
            .and_then(|r| r.drill.as_ref())
        else {
            return;
        };
        let now = journal::now();
        let since = *self.schedules.entry(DRILL.to_string()).or_insert(now);
        if schedule::next_after(drill.schedule.as_str(), since).is_none_or(|t| t > now) {
            return;
        }
        self.schedules.insert(DRILL.to_string(), now);
        info!("scheduled recovery drill");
        let (kind, text) = self.drill_now(desired, session, rev);
        match Secrets::load_or_create(&self.opts.state_dir) {
            Ok(secrets) => notify::send_to(
                desired,
                Arc::new(secrets),
                notify::Event {
                    text,
                    event: kind,
                    project: desired.project.name.to_string(),
                    revision: Some(rev.id.clone()),
                },
                &drill.notify,
            ),
            Err(e) => error!(error = %e, "cannot read the digest key; the drill is not notified"),
        }
        self.report_recoveries(desired);
    }

    /// The drill, on this thread (it blocks); the event to send and its text.
    fn drill_now(
        &self,
        desired: &DesiredState,
        session: &Engine,
        rev: &Revision,
    ) -> (EventKind, String) {
        let recovery = Recovery {
            desired,
            dir: &rev.root,
            engine: session,
            rt: Handle::current(),
            opts: RecoveryOptions::default(),
        };
        let project = desired.project.name.as_str();
        let objectives = desired.project.recovery.as_ref();
        let result = tokio::task::block_in_place(|| recovery.drill(&mut |l| info!("{l}")));
        match result {
            Ok(report) => {
                info!("{}", report.render(project, objectives));
                (
                    EventKind::RecoveryCompleted,
                    report.headline(project, objectives),
                )
            }
            Err(e) => {
                error!(error = %e, "recovery drill failed");
                (
                    EventKind::RecoveryFailed,
                    format!("{project}: recovery drill failed: {e}"),
                )
            }
        }
    }
}
