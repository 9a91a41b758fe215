//! What went wrong while migrating, said so that the database's state is never a guess: the
//! version it is at, whether a file is half-applied, whether down files ran (and the dump before).

use thiserror::Error;

use super::PgError;

/// A migration run that stopped; every message names the version the database is at.
#[derive(Debug, Error)]
pub enum MigrateError {
    /// A file converge runs unwrapped (its own transaction, or `-- converge:no-transaction`)
    /// failed after some of its statements were committed.
    #[error("{file}:{line}: {message}; its statements up to line {committed} were committed before: the migration is half-applied and not recorded in converge.schema_migrations\n  = hint: finish or undo by hand what those lines did, then apply again (the file runs from its start)")]
    PartiallyApplied {
        file: String,
        line: usize,
        committed: usize,
        sqlstate: Option<String>,
        message: String,
    },
    /// A file opened a transaction and ended without closing it; converge rolled it back.
    #[error("{file}:{line}: the transaction this file opens is never committed; converge rolled it back\n  = hint: end the file with COMMIT;")]
    OpenTransaction { file: String, line: usize },
    /// Forward-only: a migration failed; the ones this apply ran before it stay applied.
    #[error("{failed}; database {database} is at {} ({file} failed; {})", at_version(.at), earlier_text(*.earlier))]
    Stopped {
        failed: Box<PgError>,
        database: String,
        /// The latest recorded version, as its file writes it.
        at: Option<String>,
        /// The failed file's name.
        file: String,
        /// How many migrations this apply ran before it.
        earlier: usize,
    },
    /// `rollback: down-files`: a migration failed and the earlier ones of this apply were
    /// rolled back with their down files (after a dump when the database held data).
    #[error("{failed}; the {count} migration(s) this apply ran before it were rolled back with their down files{}; database {database} is at {}", dumped(.dump), at_version(.at))]
    RolledBack {
        failed: Box<PgError>,
        count: usize,
        dump: Option<String>,
        database: String,
        at: Option<String>,
    },
    /// `rollback: down-files`, but the dump before the down files failed: they did not run.
    #[error("{failed}; the down files of the {count} earlier migration(s) did not run because the pg_dump before them failed: {dump}; database {database} is at {} ({file} failed; earlier migrations of this apply stay applied)\n  = hint: check that pg_dump is on PATH and reaches the server", at_version(.at))]
    DumpFailed {
        failed: Box<PgError>,
        count: usize,
        dump: Box<PgError>,
        database: String,
        at: Option<String>,
        file: String,
    },
    /// `rollback: down-files`: a down file failed too.
    #[error("{failed}; rolling back the earlier ones failed: {rollback}; database {database} is at {}", at_version(.at))]
    RollbackFailed {
        failed: Box<PgError>,
        rollback: Box<PgError>,
        database: String,
        at: Option<String>,
    },
    /// Undoing a migrate step (a later step failed): the dump failed, so no down file ran.
    #[error("{dump}; the down files of {migrations} did not run: converge runs them only after a successful pg_dump of a database that holds data\n  = hint: check that pg_dump is on PATH and reaches the server; the migrations stay applied")]
    UndoDumpFailed {
        dump: Box<PgError>,
        migrations: String,
    },
}

fn at_version(at: &Option<String>) -> String {
    match at {
        Some(v) => format!("version {v}"),
        None => "no version (no migration is recorded)".to_string(),
    }
}

fn earlier_text(earlier: usize) -> &'static str {
    if earlier == 0 {
        "no earlier migration of this apply ran"
    } else {
        "earlier migrations of this apply stay applied"
    }
}

fn dumped(dump: &Option<String>) -> String {
    match dump {
        Some(file) => format!(" after a pg_dump to {file}"),
        None => " (the database held no data: no dump)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed() -> Box<PgError> {
        Box::new(PgError::Migration {
            file: "migrations/000042_add_index.up.sql".into(),
            sqlstate: Some("42P01".into()),
            message: "relation \"v\" does not exist (SQLSTATE 42P01)".into(),
        })
    }

    #[test]
    fn a_stopped_migration_names_the_version_the_database_is_at() {
        let e = MigrateError::Stopped {
            failed: failed(),
            database: "ytempire".into(),
            at: Some("000041".into()),
            file: "000042_add_index.up.sql".into(),
            earlier: 3,
        };
        assert!(e.to_string().ends_with(
            "database ytempire is at version 000041 (000042_add_index.up.sql failed; earlier migrations of this apply stay applied)"
        ), "{e}");
        let none = MigrateError::Stopped {
            failed: failed(),
            database: "ytempire".into(),
            at: None,
            file: "000042_add_index.up.sql".into(),
            earlier: 0,
        };
        assert!(none.to_string().contains("is at no version"), "{none}");
    }
}
