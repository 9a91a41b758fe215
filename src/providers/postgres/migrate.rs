//! Migrations: up under a polled advisory lock (each in its own transaction with lock and
//! statement timeouts, rolled back with down files on failure), down, and checksum repair.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio_postgres::Client;

use super::{message, on_database, server, sqlstate, PgError};
use crate::model::{Database, MigrationFile};

fn lock_key(scope: &str) -> i64 {
    let d = Sha256::digest(scope.as_bytes());
    i64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
}

impl super::Postgres {
    /// Runs `pending` migrations of `db` under a polled advisory lock; returns the versions this
    /// call applied (another runner may have applied some meanwhile). On a failure, the
    /// migrations this call applied are rolled back with their down files when all have one.
    pub async fn migrate(
        &self,
        db: &Database,
        pending: &[&MigrationFile],
        runner: &str,
    ) -> Result<Vec<u64>, PgError> {
        let m = db
            .migrations
            .as_ref()
            .ok_or_else(|| PgError::NoMigrations {
                database: db.name.to_string(),
            })?;
        let conn = self.connect_db(db.name.as_str()).await?;
        let key = lock_key(&format!("converge-migrate:{}", db.name));
        acquire(&conn, db.name.as_str(), key, Duration::from_secs(600)).await?;
        let result = self
            .migrate_locked(
                &conn,
                db.name.as_str(),
                pending,
                runner,
                m.lock_timeout.as_millis(),
                m.statement_timeout.as_millis(),
            )
            .await;
        let _ = conn.execute("SELECT pg_advisory_unlock($1)", &[&key]).await;
        result
    }

    async fn migrate_locked(
        &self,
        conn: &Client,
        db: &str,
        pending: &[&MigrationFile],
        runner: &str,
        lock_ms: u64,
        statement_ms: u64,
    ) -> Result<Vec<u64>, PgError> {
        conn.batch_execute(
            "CREATE SCHEMA IF NOT EXISTS converge; \
             CREATE TABLE IF NOT EXISTS converge.schema_migrations (version bigint PRIMARY KEY, name text NOT NULL, \
             checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms bigint NOT NULL, applied_by text NOT NULL)",
        )
        .await
        .map_err(on_database(db, "create converge.schema_migrations"))?;
        let already: BTreeSet<i64> = conn
            .query("SELECT version FROM converge.schema_migrations", &[])
            .await
            .map_err(server("read converge.schema_migrations"))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut done: Vec<&MigrationFile> = Vec::new();
        for f in pending
            .iter()
            .filter(|f| !already.contains(&(f.version as i64)))
        {
            if let Err(err) = run_one(conn, f, runner, lock_ms, statement_ms).await {
                let (failed, count) = (Box::new(err), done.len());
                return Err(if done.is_empty() {
                    *failed
                } else if done.iter().all(|d| d.down_sql.is_some()) {
                    match self.migrate_down_on(conn, &done).await {
                        Ok(()) => PgError::MigrationRolledBack { failed, count },
                        Err(e) => PgError::MigrationRollbackFailed {
                            failed,
                            rollback: Box::new(e),
                        },
                    }
                } else {
                    PgError::MigrationKept { failed, count }
                });
            }
            done.push(f);
        }
        Ok(done.iter().map(|f| f.version).collect())
    }

    /// Runs the down files of `files` in reverse, each in a transaction.
    pub async fn migrate_down(&self, db: &str, files: &[&MigrationFile]) -> Result<(), PgError> {
        let conn = self.connect_db(db).await?;
        let key = lock_key(&format!("converge-migrate:{db}"));
        acquire(&conn, db, key, Duration::from_secs(600)).await?;
        let r = self.migrate_down_on(&conn, files).await;
        let _ = conn.execute("SELECT pg_advisory_unlock($1)", &[&key]).await;
        r
    }

    async fn migrate_down_on(
        &self,
        conn: &Client,
        files: &[&MigrationFile],
    ) -> Result<(), PgError> {
        for f in files.iter().rev() {
            let down = f.down_sql.as_deref().ok_or_else(|| PgError::NoDownFile {
                migration: f.stem(),
            })?;
            let sql = format!(
                "BEGIN; {down}\n; DELETE FROM converge.schema_migrations WHERE version = {}; COMMIT;",
                f.version
            );
            if let Err(e) = conn.batch_execute(&sql).await {
                let _ = conn.batch_execute("ROLLBACK").await;
                return Err(PgError::MigrationDown {
                    file: f.down_path.clone().unwrap_or_else(|| f.stem()),
                    message: message(&e),
                });
            }
        }
        Ok(())
    }

    /// Accepts the current files' checksums for applied migrations whose files changed on purpose.
    pub async fn repair(&self, db: &str, files: &[MigrationFile]) -> Result<Vec<String>, PgError> {
        let conn = self.connect_db(db).await?;
        let mut repaired = Vec::new();
        for f in files {
            let n = conn
                .execute(
                    "UPDATE converge.schema_migrations SET checksum = $1 WHERE version = $2 AND checksum <> $1",
                    &[&f.checksum, &(f.version as i64)],
                )
                .await
                .map_err(server("update checksums in converge.schema_migrations"))?;
            if n > 0 {
                repaired.push(f.up_path.clone());
            }
        }
        Ok(repaired)
    }
}

/// Polls `pg_try_advisory_lock` with backoff (never the blocking `pg_advisory_lock`, which
/// deadlocks with `CREATE INDEX CONCURRENTLY` waiting on the holder's transactions).
async fn acquire(conn: &Client, db: &str, key: i64, max_wait: Duration) -> Result<(), PgError> {
    let deadline = Instant::now() + max_wait;
    let mut delay = Duration::from_millis(50);
    loop {
        let got: bool = conn
            .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
            .await
            .map_err(server("take the migration lock"))?
            .get(0);
        if got {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(PgError::LockBusy {
                database: db.to_string(),
                seconds: max_wait.as_secs(),
            });
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// One migration: in its own transaction with timeouts, unless it asks for none; a lock
/// timeout (55P03) is retried a few times with backoff.
async fn run_one(
    conn: &Client,
    f: &MigrationFile,
    runner: &str,
    lock_ms: u64,
    statement_ms: u64,
) -> Result<(), PgError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let started = Instant::now();
        let result = if f.no_transaction {
            // One statement per message: several in one message form an implicit transaction,
            // where CREATE INDEX CONCURRENTLY is refused.
            let mut r = conn
                .batch_execute(&format!("SET lock_timeout = {lock_ms}"))
                .await;
            if r.is_ok() {
                r = conn
                    .batch_execute(&format!("SET statement_timeout = {statement_ms}"))
                    .await;
            }
            for stmt in crate::lint::split_statements(&f.up_sql) {
                if r.is_err() {
                    break;
                }
                r = conn.batch_execute(&stmt).await;
            }
            let _ = conn.batch_execute("RESET lock_timeout").await;
            let _ = conn.batch_execute("RESET statement_timeout").await;
            r
        } else {
            let sql = format!(
                "BEGIN; SET LOCAL lock_timeout = {lock_ms}; SET LOCAL statement_timeout = {statement_ms};\n{}\n;",
                f.up_sql
            );
            match conn.batch_execute(&sql).await {
                Ok(()) => Ok(()),
                Err(e) => {
                    let _ = conn.batch_execute("ROLLBACK").await;
                    Err(e)
                }
            }
        };
        match result {
            Ok(()) => {
                let ms = started.elapsed().as_millis() as i64;
                let record = conn
                    .execute(
                        "INSERT INTO converge.schema_migrations (version, name, checksum, duration_ms, applied_by) VALUES ($1, $2, $3, $4, $5)",
                        &[&(f.version as i64), &f.name, &f.checksum, &ms, &runner],
                    )
                    .await;
                if !f.no_transaction {
                    conn.batch_execute("COMMIT")
                        .await
                        .map_err(server("commit the migration"))?;
                }
                return record.map(|_| ()).map_err(|e| PgError::RecordMigration {
                    file: f.up_path.clone(),
                    message: message(&e),
                });
            }
            Err(e) if sqlstate(&e).as_deref() == Some("55P03") && attempt < 4 => {
                tokio::time::sleep(Duration::from_millis(200 * (1 << attempt))).await;
            }
            Err(e) if sqlstate(&e).as_deref() == Some("55P03") => {
                return Err(PgError::MigrationLockTimeout {
                    file: f.up_path.clone(),
                    attempts: attempt,
                    message: message(&e),
                })
            }
            Err(e) => {
                return Err(PgError::Migration {
                    file: f.up_path.clone(),
                    sqlstate: sqlstate(&e),
                    message: message(&e),
                })
            }
        }
    }
}
