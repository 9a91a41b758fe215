//! Waiting for Swarm: a new service until its tasks run (healthy, when it has a health check),
//! an update until Swarm says it completed, rolled back or paused.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::models::{ServiceUpdateStatusStateEnum as U, TaskState};
use bollard::query_parameters::{InspectServiceOptions, ListTasksOptions};

use super::SwarmError;
use crate::model::Service;
use crate::providers::docker::api;

const POLL: Duration = Duration::from_millis(250);

/// How long tasks may take to start and pass their health check.
pub fn start_deadline(s: &Service) -> Duration {
    let health = s.health.as_ref().map_or(Duration::ZERO, |h| {
        let per = h.interval.to_std() + h.timeout.to_std();
        h.start_period.map_or(Duration::ZERO, |d| d.to_std())
            + per * (h.retries.max(1) + h.healthy_after.max(1))
    });
    Duration::from_secs(60) + health
}

/// How long an update may take: each batch starts, passes health and is watched `verify_for`.
pub fn update_deadline(s: &Service) -> Duration {
    let batches = if s.deploy.strategy == crate::model::service::Strategy::Rolling {
        s.replicas.max(1)
    } else {
        1
    };
    (start_deadline(s) + s.deploy.verify_for.to_std()) * batches + Duration::from_secs(30)
}

fn not_converged(
    name: &str,
    replicas: u32,
    running: u32,
    started: Instant,
    last: Option<String>,
) -> SwarmError {
    SwarmError::NotConverged {
        service: name.to_string(),
        replicas,
        running,
        waited: started.elapsed().as_secs(),
        last: last
            .map(|l| format!(" (last task: {l})"))
            .unwrap_or_default(),
    }
}

/// An update's state and when it started, to tell a new update from the last one.
pub type UpdateMark = Option<(Option<U>, Option<String>)>;

impl super::SwarmProvider {
    /// The service's current update status.
    pub async fn update_mark(&self, name: &str) -> Result<UpdateMark, SwarmError> {
        let svc = self
            .client()
            .inspect_service(name, None::<InspectServiceOptions>)
            .await
            .map_err(api(format!("inspect service {name}")))?;
        Ok(svc
            .update_status
            .map(|u| (u.state, u.started_at.map(|d| format!("{d:?}")))))
    }

    /// Waits until `replicas` tasks of `name` run; fails when they keep failing or time runs out.
    pub async fn wait_running(
        &self,
        name: &str,
        replicas: u32,
        deadline: Duration,
    ) -> Result<(), SwarmError> {
        let started = Instant::now();
        loop {
            let (running, failed, last) = self.task_counts(name).await?;
            if running >= replicas {
                return Ok(());
            }
            // Swarm restarts failing tasks forever: a few failures in a row mean it will not come up.
            if failed >= 3 || started.elapsed() > deadline {
                return Err(not_converged(name, replicas, running, started, last));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Tasks of `name` running now, tasks that failed, and the latest failure's message.
    async fn task_counts(&self, name: &str) -> Result<(u32, u32, Option<String>), SwarmError> {
        let tasks = self
            .client()
            .list_tasks(Some(ListTasksOptions {
                filters: Some(HashMap::from([(
                    "service".to_string(),
                    vec![name.to_string()],
                )])),
            }))
            .await
            .map_err(api(format!("list tasks of {name}")))?;
        let mut running = 0;
        let mut failed = 0;
        let mut last = None;
        for t in &tasks {
            let status = t.status.clone().unwrap_or_default();
            match status.state {
                Some(TaskState::RUNNING) if t.desired_state == Some(TaskState::RUNNING) => {
                    running += 1
                }
                Some(TaskState::FAILED | TaskState::REJECTED) => {
                    failed += 1;
                    last = status.err.or(status.message);
                }
                _ => {}
            }
        }
        Ok((running, failed, last))
    }

    /// Waits for the update that followed `before` to finish: completed, or rolled back or
    /// paused by Swarm (errors). An update that changed no task (replicas, labels) has no
    /// rollout: then the tasks are waited for.
    pub async fn wait_update(
        &self,
        name: &str,
        before: &UpdateMark,
        s: &Service,
        rollout: bool,
    ) -> Result<(), SwarmError> {
        if !rollout {
            return self.wait_running(name, s.replicas, start_deadline(s)).await;
        }
        let started = Instant::now();
        let deadline = update_deadline(s);
        loop {
            let mark = self.update_mark(name).await?;
            if &mark != before {
                if let Some((Some(state), _)) = &mark {
                    let message = || self.update_message(name);
                    match state {
                        U::COMPLETED => {
                            return self.wait_running(name, s.replicas, start_deadline(s)).await
                        }
                        U::ROLLBACK_COMPLETED => {
                            return Err(SwarmError::RolledBack {
                                service: name.to_string(),
                                message: message().await,
                            })
                        }
                        U::PAUSED | U::ROLLBACK_PAUSED => {
                            return Err(SwarmError::Paused {
                                service: name.to_string(),
                                message: message().await,
                            })
                        }
                        _ => {}
                    }
                }
            }
            if started.elapsed() > deadline {
                let (running, _, last) = self.task_counts(name).await?;
                return Err(not_converged(name, s.replicas, running, started, last));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Swarm's message about the last update, with the last failed task's reason.
    async fn update_message(&self, name: &str) -> String {
        let status = self
            .client()
            .inspect_service(name, None::<InspectServiceOptions>)
            .await
            .ok()
            .and_then(|s| s.update_status)
            .and_then(|u| u.message)
            .unwrap_or_default();
        let last = self.task_counts(name).await.ok().and_then(|c| c.2);
        match last {
            Some(l) => format!("{status} (failed task: {l})"),
            None => status,
        }
    }
}

impl super::SwarmProvider {
    /// Watches a color that just took traffic for `verify_for`: every task must stay up (Swarm
    /// replaces a task whose health check fails, which shows here as a failed task).
    pub async fn verify_color(
        &self,
        s: &Service,
        color: crate::model::live::Color,
    ) -> Result<(), String> {
        let name = super::spec::service_name(&self.project, s.name.as_str(), Some(color));
        let interval = s
            .health
            .as_ref()
            .map_or(Duration::from_secs(1), |h| h.interval.to_std());
        let deadline = Instant::now() + s.deploy.verify_for.to_std();
        let (_, failed_before, _) = self.task_counts(&name).await.map_err(|e| e.to_string())?;
        let mut short = 0;
        while Instant::now() < deadline {
            let (running, failed, last) =
                self.task_counts(&name).await.map_err(|e| e.to_string())?;
            if failed > failed_before {
                return Err(format!(
                    "a task of {name} failed during the {} verification after the switch: {}",
                    s.deploy.verify_for,
                    last.unwrap_or_else(|| "no reason given".into())
                ));
            }
            short = if running < s.replicas { short + 1 } else { 0 };
            if short >= 2 {
                return Err(format!(
                    "{name} had {running} of {} task(s) running during the {} verification after the switch",
                    s.replicas, s.deploy.verify_for
                ));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            tokio::time::sleep(interval.min(left)).await;
        }
        Ok(())
    }

    /// Removes a blue-green service's `color` (a drain after the switch).
    pub async fn drain_color(
        &self,
        service: &str,
        color: crate::model::live::Color,
    ) -> Result<(), String> {
        let name = super::spec::service_name(&self.project, service, Some(color));
        self.remove_service(&name).await.map_err(|e| e.to_string())
    }
}
