//! The cluster lock: work that must run once per cluster (database changes, migrations, backups,
//! budget checks) runs only on the agent holding a PostgreSQL session advisory lock
//! (`pg_try_advisory_lock`, polled each reconcile, never blocking). A crashed agent's session
//! ends and PostgreSQL releases its lock; a stopping agent releases it explicitly.

use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio_postgres::{Client, NoTls};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockState {
    /// No PostgreSQL provider: this agent is the only one and does everything.
    NotConfigured,
    Held,
    /// Another agent holds it.
    Waiting,
    Error(String),
}

impl LockState {
    pub fn label(&self) -> String {
        match self {
            LockState::NotConfigured => "not-configured".into(),
            LockState::Held => "held".into(),
            LockState::Waiting => "waiting".into(),
            LockState::Error(e) => format!("error: {e}"),
        }
    }

    /// May this agent do cluster-wide work?
    pub fn allows_cluster_work(&self) -> bool {
        matches!(self, LockState::NotConfigured | LockState::Held)
    }
}

pub struct ClusterLock {
    client: Option<Client>,
    key: i64,
    pub state: LockState,
}

impl ClusterLock {
    pub fn new(project: &str) -> ClusterLock {
        let digest = Sha256::digest(format!("converge:{project}").as_bytes());
        let key = i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
        ClusterLock {
            client: None,
            key,
            state: LockState::NotConfigured,
        }
    }

    /// Tries to take (or confirms holding) the lock; `url` is `None` without a PostgreSQL provider.
    pub async fn poll(&mut self, url: Option<&str>) -> &LockState {
        let Some(url) = url else {
            self.client = None;
            self.state = LockState::NotConfigured;
            return &self.state;
        };
        if self.client.as_ref().is_none_or(|c| c.is_closed()) {
            self.state = LockState::Waiting;
            match tokio::time::timeout(Duration::from_secs(5), tokio_postgres::connect(url, NoTls))
                .await
            {
                Ok(Ok((client, connection))) => {
                    tokio::spawn(async move {
                        let _ = connection.await;
                    });
                    self.client = Some(client);
                }
                Ok(Err(e)) => {
                    self.state = LockState::Error(format!("cannot connect to PostgreSQL: {e}"));
                    return &self.state;
                }
                Err(_) => {
                    self.state = LockState::Error("connecting to PostgreSQL timed out".into());
                    return &self.state;
                }
            }
        }
        if self.state == LockState::Held {
            return &self.state;
        }
        let client = self.client.as_ref().expect("connected above");
        self.state = match client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&self.key])
            .await
        {
            Ok(row) if row.get::<_, bool>(0) => LockState::Held,
            Ok(_) => LockState::Waiting,
            Err(e) => LockState::Error(e.to_string()),
        };
        &self.state
    }

    pub async fn release(&mut self) {
        if let (Some(c), LockState::Held) = (&self.client, &self.state) {
            let _ = c
                .execute("SELECT pg_advisory_unlock($1)", &[&self.key])
                .await;
        }
        self.client = None;
        self.state = LockState::NotConfigured;
    }
}
