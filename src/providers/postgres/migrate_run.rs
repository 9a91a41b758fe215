//! Running one migration file. A file is wrapped in converge's transaction (with `SET LOCAL`
//! timeouts, the `schema_migrations` row written in it) unless it manages its own transaction
//! (a top-level `BEGIN`/`START TRANSACTION` … `COMMIT`/`END`) or asks for none
//! (`-- converge:no-transaction`). Such a file runs statement by statement with session-level
//! timeouts (reset after); its row is written in its last transaction when the file ends with
//! `COMMIT`, else only after the whole file succeeded. A failure after some of its statements
//! committed is reported as a half-applied migration, never silently.

use std::time::{Duration, Instant};

use tokio_postgres::Client;

use super::{literal, message, sqlstate, MigrateError, PgError};
use crate::lint::{self, TxControl};
use crate::model::MigrationFile;

/// What a migration writes in `converge.schema_migrations` when it is done.
pub(super) enum Record<'a> {
    /// An up file: its row.
    Applied {
        file: &'a MigrationFile,
        runner: &'a str,
        started: Instant,
    },
    /// A down file: its row removed.
    Removed { version: u64 },
}

impl Record<'_> {
    fn sql(&self) -> String {
        match self {
            Record::Applied {
                file,
                runner,
                started,
            } => format!(
                "INSERT INTO converge.schema_migrations (version, name, checksum, duration_ms, applied_by) VALUES ({}, {}, {}, {}, {})",
                file.version,
                literal(&file.name),
                literal(&file.checksum),
                started.elapsed().as_millis() as i64,
                literal(runner)
            ),
            Record::Removed { version } => {
                format!("DELETE FROM converge.schema_migrations WHERE version = {version}")
            }
        }
    }
}

/// The timeouts a migration runs with, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timeouts {
    pub lock_ms: u64,
    pub statement_ms: u64,
}

/// Whether converge wraps `sql` in its own transaction.
pub(super) fn wrapped(sql: &str, no_transaction: bool) -> bool {
    !no_transaction && lint::own_transaction(sql).is_none()
}

/// One up file; a lock timeout (55P03) before anything committed is retried with backoff.
pub(super) async fn run_up(
    conn: &Client,
    f: &MigrationFile,
    runner: &str,
    t: Timeouts,
) -> Result<(), PgError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let record = Record::Applied {
            file: f,
            runner,
            started: Instant::now(),
        };
        let result = if wrapped(&f.up_sql, f.no_transaction) {
            run_wrapped(conn, &f.up_sql, &record, t).await
        } else {
            run_unwrapped(conn, &f.up_sql, &record, t).await
        };
        let fail = match result {
            Ok(()) => return Ok(()),
            Err(fail) => fail,
        };
        let Failure::Statement {
            error,
            line,
            committed,
        } = fail
        else {
            return Err(fail.into_error(&f.up_path));
        };
        match (sqlstate(&error).as_deref(), committed) {
            (Some("55P03"), None) if attempt < 4 => {
                tokio::time::sleep(Duration::from_millis(200 * (1 << attempt))).await;
            }
            (Some("55P03"), None) => {
                return Err(PgError::MigrationLockTimeout {
                    file: f.up_path.clone(),
                    attempts: attempt,
                    message: message(&error),
                })
            }
            _ => {
                return Err(Failure::Statement {
                    error,
                    line,
                    committed,
                }
                .into_error(&f.up_path))
            }
        }
    }
}

/// One down file and the removal of its row, wrapped unless it manages its own transaction.
pub(super) async fn run_down(
    conn: &Client,
    path: &str,
    sql: &str,
    version: u64,
    t: Timeouts,
) -> Result<(), PgError> {
    let record = Record::Removed { version };
    let result = if wrapped(sql, false) {
        run_wrapped(conn, sql, &record, t).await
    } else {
        run_unwrapped(conn, sql, &record, t).await
    };
    result.map_err(|fail| match fail.into_error(path) {
        PgError::Migration { file, message, .. } => PgError::MigrationDown { file, message },
        other => other,
    })
}

/// Why a file failed.
enum Failure {
    /// A statement failed; `committed`: the line of the last statement that was committed.
    Statement {
        error: tokio_postgres::Error,
        line: Option<usize>,
        committed: Option<usize>,
    },
    /// Writing the row failed after the file ran.
    Record(tokio_postgres::Error),
    /// The file left its transaction open (opened at `line`).
    Open { line: usize },
}

impl Failure {
    fn into_error(self, file: &str) -> PgError {
        match self {
            Failure::Statement {
                error,
                line: Some(line),
                committed: Some(committed),
            } => MigrateError::PartiallyApplied {
                file: file.to_string(),
                line,
                committed,
                sqlstate: sqlstate(&error),
                message: message(&error),
            }
            .into(),
            Failure::Statement { error, .. } => PgError::Migration {
                file: file.to_string(),
                sqlstate: sqlstate(&error),
                message: message(&error),
            },
            Failure::Record(e) => PgError::RecordMigration {
                file: file.to_string(),
                message: message(&e),
            },
            Failure::Open { line } => MigrateError::OpenTransaction {
                file: file.to_string(),
                line,
            }
            .into(),
        }
    }
}

fn failed(error: tokio_postgres::Error) -> Failure {
    Failure::Statement {
        error,
        line: None,
        committed: None,
    }
}

/// The file and its record in one transaction of converge's, with `SET LOCAL` timeouts.
async fn run_wrapped(
    conn: &Client,
    sql: &str,
    record: &Record<'_>,
    t: Timeouts,
) -> Result<(), Failure> {
    let body = format!(
        "BEGIN; SET LOCAL lock_timeout = {}; SET LOCAL statement_timeout = {};\n{sql}\n;",
        t.lock_ms, t.statement_ms
    );
    if let Err(e) = conn.batch_execute(&body).await {
        let _ = conn.batch_execute("ROLLBACK").await;
        return Err(failed(e));
    }
    if let Err(e) = conn.batch_execute(&record.sql()).await {
        let _ = conn.batch_execute("ROLLBACK").await;
        return Err(Failure::Record(e));
    }
    conn.batch_execute("COMMIT").await.map_err(failed)
}

/// The file statement by statement (one per message: several in one message form an implicit
/// transaction, where `CREATE INDEX CONCURRENTLY` is refused), with session-level timeouts.
async fn run_unwrapped(
    conn: &Client,
    sql: &str,
    record: &Record<'_>,
    t: Timeouts,
) -> Result<(), Failure> {
    let statements = lint::statements(sql);
    let last_commit = statements
        .len()
        .checked_sub(1)
        .filter(|i| lint::tx_control(&statements[*i].text) == Some(TxControl::Commit));
    let session = format!(
        "SET lock_timeout = {}; SET statement_timeout = {}",
        t.lock_ms, t.statement_ms
    );
    conn.batch_execute(&session).await.map_err(failed)?;
    let result = async {
        let (mut open, mut committed, mut recorded) = (None::<usize>, None::<usize>, false);
        for (i, s) in statements.iter().enumerate() {
            if Some(i) == last_commit && open.is_some() {
                // The row goes in the file's last transaction: both commit, or neither.
                if let Err(e) = conn.batch_execute(&record.sql()).await {
                    let _ = conn.batch_execute("ROLLBACK").await;
                    return Err(Failure::Record(e));
                }
                recorded = true;
            }
            if let Err(error) = conn.batch_execute(&s.raw).await {
                if open.is_some() {
                    let _ = conn.batch_execute("ROLLBACK").await;
                }
                return Err(Failure::Statement {
                    error,
                    line: Some(s.line),
                    committed,
                });
            }
            match lint::tx_control(&s.text) {
                Some(TxControl::Begin) => open = open.or(Some(s.line)),
                Some(TxControl::Commit) if open.take().is_some() => committed = Some(s.line),
                Some(TxControl::Commit) => {}
                Some(TxControl::Rollback) => open = None,
                None if open.is_none() => committed = Some(s.line),
                None => {}
            }
        }
        if let Some(line) = open {
            let _ = conn.batch_execute("ROLLBACK").await;
            return Err(Failure::Open { line });
        }
        if !recorded {
            conn.batch_execute(&record.sql())
                .await
                .map_err(Failure::Record)?;
        }
        Ok(())
    }
    .await;
    let _ = conn
        .batch_execute("RESET lock_timeout; RESET statement_timeout")
        .await;
    result
}
