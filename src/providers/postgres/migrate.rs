//! Migrations: up under a polled advisory lock (each file as `migrate_run` says), forward-only
//! unless the desired state opts in to down files (`rollback: down-files`, run only after a
//! `pg_dump` whenever the database holds data), down, and checksum repair.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use tokio_postgres::Client;

use super::migrate_run::{run_down, run_up, Timeouts};
use super::{ident, on_database, server, MigrateError, PgError};
use crate::model::database::Rollback;
use crate::model::{Database, MigrationFile};

fn lock_key(scope: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(scope.as_bytes());
    i64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
}

/// The file name of a path (`migrations/0042_x.up.sql` → `0042_x.up.sql`).
fn file_name(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_string()
}

/// `version` as `files` write it (their width when none of them has it).
fn version_text(version: u64, files: &[&MigrationFile]) -> String {
    match files.iter().find(|f| f.version == version) {
        Some(f) => f.version_text(),
        None => {
            let width = files.first().map(|f| f.version_text().len()).unwrap_or(4);
            format!("{version:0width$}")
        }
    }
}

impl super::Postgres {
    /// Runs `pending` migrations of `db` under a polled advisory lock; returns the versions this
    /// call applied (another runner may have applied some meanwhile). A failure stops there: the
    /// ones applied before it stay (forward-only), unless `rollback: down-files`, where their
    /// down files run after a `pg_dump` into `dump_dir` when the database holds data.
    pub async fn migrate(
        &self,
        db: &Database,
        pending: &[&MigrationFile],
        runner: &str,
        dump_dir: &Path,
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
        let t = Timeouts {
            lock_ms: m.lock_timeout.as_millis(),
            statement_ms: m.statement_timeout.as_millis(),
        };
        let result = self
            .migrate_locked(
                &conn,
                db.name.as_str(),
                pending,
                runner,
                t,
                m.rollback,
                dump_dir,
            )
            .await;
        let _ = conn.execute("SELECT pg_advisory_unlock($1)", &[&key]).await;
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn migrate_locked(
        &self,
        conn: &Client,
        db: &str,
        pending: &[&MigrationFile],
        runner: &str,
        t: Timeouts,
        rollback: Rollback,
        dump_dir: &Path,
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
        let before = already.iter().max().map(|v| *v as u64);
        let at = |done: &[&MigrationFile]| {
            done.iter()
                .map(|f| f.version)
                .chain(before)
                .max()
                .map(|v| version_text(v, pending))
        };
        let mut done: Vec<&MigrationFile> = Vec::new();
        for f in pending
            .iter()
            .filter(|f| !already.contains(&(f.version as i64)))
        {
            let Err(err) = run_up(conn, f, runner, t).await else {
                done.push(f);
                continue;
            };
            let failed = Box::new(err);
            let file = file_name(&f.up_path);
            if rollback == Rollback::None || done.is_empty() {
                return Err(MigrateError::Stopped {
                    failed,
                    database: db.to_string(),
                    at: at(&done),
                    file,
                    earlier: done.len(),
                }
                .into());
            }
            let dump = match self.dump_if_data(db, dump_dir).await {
                Ok(dump) => dump,
                Err(e) => {
                    return Err(MigrateError::DumpFailed {
                        failed,
                        count: done.len(),
                        dump: Box::new(e),
                        database: db.to_string(),
                        at: at(&done),
                        file,
                    }
                    .into())
                }
            };
            return Err(match self.migrate_down_on(conn, &done, t).await {
                Ok(()) => MigrateError::RolledBack {
                    failed,
                    count: done.len(),
                    dump: dump.map(|p| p.display().to_string()),
                    database: db.to_string(),
                    at: at(&[]),
                },
                Err(e) => MigrateError::RollbackFailed {
                    failed,
                    rollback: Box::new(e),
                    database: db.to_string(),
                    at: self.recorded_version(conn, pending).await,
                },
            }
            .into());
        }
        Ok(done.iter().map(|f| f.version).collect())
    }

    /// A `pg_dump` of `db` into `dir` when it holds data (a row in a table outside converge's
    /// schema); `None` when it holds none.
    pub(in crate::providers) async fn dump_if_data(
        &self,
        db: &str,
        dir: &Path,
    ) -> Result<Option<std::path::PathBuf>, PgError> {
        if !self.holds_data(db).await? {
            return Ok(None);
        }
        super::database::dump(self, db, dir).await.map(Some)
    }

    /// Whether a table of `db` outside converge's own schema has a row.
    async fn holds_data(&self, db: &str) -> Result<bool, PgError> {
        let conn = self.connect_db(db).await?;
        let tables = conn
            .query(
                "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'converge') \
                 AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'",
                &[],
            )
            .await
            .map_err(server("list tables"))?;
        for t in &tables {
            let (schema, table): (String, String) = (t.get(0), t.get(1));
            let sql = format!(
                "SELECT EXISTS (SELECT 1 FROM {}.{})",
                ident(&schema),
                ident(&table)
            );
            let any: bool = conn
                .query_one(sql.as_str(), &[])
                .await
                .map_err(server("look for rows"))?
                .get(0);
            if any {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The latest version `converge.schema_migrations` records, as `files` write it.
    async fn recorded_version(&self, conn: &Client, files: &[&MigrationFile]) -> Option<String> {
        let row = conn
            .query_one("SELECT max(version) FROM converge.schema_migrations", &[])
            .await
            .ok()?;
        let v: Option<i64> = row.get(0);
        v.map(|v| version_text(v as u64, files))
    }

    /// Runs the down files of `files` in reverse, each with the removal of its row.
    pub async fn migrate_down(&self, db: &str, files: &[&MigrationFile]) -> Result<(), PgError> {
        let conn = self.connect_db(db).await?;
        let key = lock_key(&format!("converge-migrate:{db}"));
        acquire(&conn, db, key, Duration::from_secs(600)).await?;
        let t = Timeouts {
            lock_ms: 5_000,
            statement_ms: 600_000,
        };
        let r = self.migrate_down_on(&conn, files, t).await;
        let _ = conn.execute("SELECT pg_advisory_unlock($1)", &[&key]).await;
        r
    }

    async fn migrate_down_on(
        &self,
        conn: &Client,
        files: &[&MigrationFile],
        t: Timeouts,
    ) -> Result<(), PgError> {
        for f in files.iter().rev() {
            let down = f.down_sql.as_deref().ok_or_else(|| PgError::NoDownFile {
                migration: f.stem(),
            })?;
            let path = f.down_path.clone().unwrap_or_else(|| f.stem());
            run_down(conn, &path, down, f.version, t).await?;
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
