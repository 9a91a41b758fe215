//! The PostgreSQL provider (tokio-postgres): observes databases, roles, grants, extensions and
//! `converge.schema_migrations`, and runs the statements apply needs — including migrations
//! under a polled advisory lock, each in its own transaction with lock and statement timeouts.
//! tokio-postgres types stay in this folder; connection URLs never reach a message.
//! This file owns the `Postgres` client (connect, DSN, database-level operations), `PgError`,
//! `FACTORY` and the quoting/error helpers the other files share.

use std::time::Duration;

use thiserror::Error;
use tokio_postgres::{Client, Config, NoTls};

pub mod database;
pub mod lock;
mod migrate;
mod migrate_error;
mod migrate_run;
mod observe;
mod provider;
mod roles;
mod scram;

pub use migrate_error::MigrateError;
pub use provider::PostgresProvider;
pub use scram::scram_matches;

/// PostgreSQL is connected when the Project declares it (databases, backups, budgets' spend and
/// queue-depth queries all go through it).
pub const FACTORY: crate::providers::registry::Factory = crate::providers::registry::Factory {
    name: "postgres",
    kinds: provider::KINDS,
    wanted: |d| d.project.providers.postgres.is_some(),
    secret_free: false,
    connect: |d, secrets| {
        Box::pin(async move {
            let p = d.project.providers.postgres.as_ref().expect("wanted");
            let pg = Postgres::connect(&secrets.resolve(&p.url)?).await?;
            Ok(std::sync::Arc::new(PostgresProvider::new(pg))
                as std::sync::Arc<dyn crate::providers::Provider>)
        })
    },
};

/// What failed in PostgreSQL, and where. Every `message` is the server's (with its SQLSTATE) and
/// never holds the connection string or a password. The texts are kept word for word from when
/// these were plain strings: messages are compared outside this crate.
#[derive(Debug, Error)]
pub enum PgError {
    #[error("cannot connect to PostgreSQL: {0}\n  = hint: check providers.postgres.url and that the server is up")]
    Connect(String),
    #[error("postgres: {what}: {message}")]
    Query { what: String, message: String },
    /// A query failed; `what` says which (the text is the server's message alone).
    #[error("{message}")]
    Server { what: &'static str, message: String },
    /// A statement about a role (create, alter, comment, memberships) failed.
    #[error("{what}: {message}")]
    Role {
        role: String,
        what: String,
        message: String,
    },
    /// A statement about a database (create, drop, owner, comment, extension, the migrations
    /// table) failed.
    #[error("{what}: {message}")]
    Database {
        database: String,
        what: String,
        message: String,
    },
    /// A role's password reference could not be resolved.
    #[error("{error}")]
    Secret {
        role: String,
        error: crate::secrets::SecretError,
    },
    /// Setting a role's password failed; only the SQLSTATE is kept (the statement holds it).
    #[error("set the password of role {role}: {sqlstate}")]
    SetPassword { role: String, sqlstate: String },
    #[error("grant on schema {schema} for role {role}: the schema does not exist")]
    MissingSchema { schema: String, role: String },
    /// A GRANT or REVOKE of a declared grant failed.
    #[error("{verb} on {target}: {message}")]
    Grant {
        role: String,
        verb: &'static str,
        target: &'static str,
        message: String,
    },
    #[error("the database declares no migrations")]
    NoMigrations { database: String },
    /// The advisory lock converge takes around migrations stayed held by another runner.
    #[error("another runner held the migration lock for more than {seconds}s")]
    LockBusy { database: String, seconds: u64 },
    /// A migration's up file failed (the server's message carries the SQLSTATE).
    #[error("{file}: {message}")]
    Migration {
        file: String,
        sqlstate: Option<String>,
        message: String,
    },
    /// A migration's up file could not take its locks within `lock_timeout` (55P03), even after
    /// `attempts` tries.
    #[error("{file}: {message}")]
    MigrationLockTimeout {
        file: String,
        attempts: u32,
        message: String,
    },
    /// A migration ran but recording it in `converge.schema_migrations` failed.
    #[error("{file}: recording it: {message}")]
    RecordMigration { file: String, message: String },
    #[error("{migration} has no down file")]
    NoDownFile { migration: String },
    /// A down file failed.
    #[error("{file}: {message}")]
    MigrationDown { file: String, message: String },
    /// A migration failed and the ones this run applied before it were rolled back.
    #[error("{failed}; the {count} migration(s) applied before it were rolled back")]
    MigrationRolledBack { failed: Box<PgError>, count: usize },
    /// A migration failed and rolling back the ones applied before it failed too.
    #[error("{failed}; rolling back the earlier ones failed: {rollback}")]
    MigrationRollbackFailed {
        failed: Box<PgError>,
        rollback: Box<PgError>,
    },
    /// A migration failed; the ones applied before it stay (not all have a down file).
    #[error("{failed}; {count} earlier migration(s) stay applied (not every one has a down file)")]
    MigrationKept { failed: Box<PgError>, count: usize },
    #[error("cannot create {}: {error}", .dir.display())]
    DumpDir {
        dir: std::path::PathBuf,
        error: std::io::Error,
    },
    /// `pg_dump` could not be started.
    #[error("pg_dump: {error}")]
    DumpSpawn {
        database: String,
        error: std::io::Error,
    },
    #[error("pg_dump of {database} failed: {stderr}")]
    Dump { database: String, stderr: String },
    /// A migration run stopped; the message says the version the database is at.
    #[error(transparent)]
    Migrate(#[from] MigrateError),
}

fn q(what: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> PgError {
    let what = what.into();
    move |e| PgError::Query {
        what,
        message: message(&e),
    }
}

/// `PgError::Server`: the server's message alone, `what` kept for the logs.
fn server(what: &'static str) -> impl FnOnce(tokio_postgres::Error) -> PgError {
    move |e| PgError::Server {
        what,
        message: message(&e),
    }
}

/// `PgError::Database`: "`what`: message" about database `database`.
fn on_database(
    database: &str,
    what: impl Into<String>,
) -> impl FnOnce(tokio_postgres::Error) -> PgError {
    let (database, what) = (database.to_string(), what.into());
    move |e| PgError::Database {
        database,
        what,
        message: message(&e),
    }
}

/// `PgError::Role`: "`what`: message" about role `role`.
fn on_role(role: &str, what: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> PgError {
    let (role, what) = (role.to_string(), what.into());
    move |e| PgError::Role {
        role,
        what,
        message: message(&e),
    }
}

/// The server's message (and SQLSTATE), without anything from the connection string.
fn message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

fn sqlstate(e: &tokio_postgres::Error) -> Option<String> {
    e.as_db_error().map(|d| d.code().code().to_string())
}

/// `"name"`, with embedded quotes doubled.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'`, with embedded quotes doubled (standard_conforming_strings is on since 9.1).
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// What converge writes in a database's comment: whether it may ever be dropped.
#[derive(serde::Serialize, serde::Deserialize)]
struct DbComment {
    converge: String,
    prune: bool,
}

/// Resolves a role's password reference to (value, keyed digest); the value is never logged.
pub type PasswordFn<'a> = dyn Fn(&crate::model::types::SecretString) -> Result<(String, String), crate::secrets::SecretError>
    + Sync
    + 'a;

pub struct Postgres {
    admin: Client,
    config: Config,
}

impl Postgres {
    pub async fn connect(url: &str) -> Result<Postgres, PgError> {
        let config: Config = url.parse().map_err(|_| {
            PgError::Connect("providers.postgres.url is not a valid PostgreSQL URL".into())
        })?;
        let admin = Self::open(&config).await?;
        Ok(Postgres { admin, config })
    }

    async fn open(config: &Config) -> Result<Client, PgError> {
        let (client, conn) = tokio::time::timeout(Duration::from_secs(10), config.connect(NoTls))
            .await
            .map_err(|_| PgError::Connect("timed out after 10s".into()))?
            .map_err(|e| PgError::Connect(message(&e)))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    }

    /// A new connection to database `name`.
    pub(in crate::providers) async fn connect_db(&self, name: &str) -> Result<Client, PgError> {
        let mut c = self.config.clone();
        c.dbname(name);
        Self::open(&c).await
    }

    /// A connection string for `pg_dump`/`pg_restore` to `name`, without the password.
    pub fn dsn(&self, name: &str) -> String {
        let mut parts = vec![format!("dbname={}", literal(name))];
        if let Some(tokio_postgres::config::Host::Tcp(h)) = self.config.get_hosts().first() {
            parts.push(format!("host={}", literal(h)));
        }
        if let Some(tokio_postgres::config::Host::Unix(p)) = self.config.get_hosts().first() {
            parts.push(format!("host={}", literal(&p.to_string_lossy())));
        }
        if let Some(p) = self.config.get_ports().first() {
            parts.push(format!("port={p}"));
        }
        if let Some(u) = self.config.get_user() {
            parts.push(format!("user={}", literal(u)));
        }
        parts.join(" ")
    }

    /// The password of the connection, for `PGPASSWORD` of child processes.
    pub fn password(&self) -> Option<String> {
        self.config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned())
    }

    /// Creates database `name` when missing; returns how many tables it holds.
    pub async fn ensure_database(&self, name: &str) -> Result<i64, PgError> {
        let exists = self
            .admin
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
            .await
            .map_err(server("look up database"))?
            .is_some();
        if !exists {
            self.admin
                .batch_execute(&format!(
                    "CREATE DATABASE {} TEMPLATE template0",
                    ident(name)
                ))
                .await
                .map_err(on_database(name, format!("CREATE DATABASE {name}")))?;
            return Ok(0);
        }
        Ok(self.count_rows(name).await?.0)
    }

    /// (tables, rows) in the user schemas of `name`.
    pub async fn count_rows(&self, name: &str) -> Result<(i64, i64), PgError> {
        let conn = self.connect_db(name).await?;
        let tables = conn
            .query(
                "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) FROM information_schema.tables \
                 WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')",
                &[],
            )
            .await
            .map_err(server("list tables"))?;
        let mut rows = 0i64;
        for t in &tables {
            let name: String = t.get(0);
            let n: i64 = conn
                .query_one(&format!("SELECT count(*) FROM {name}"), &[])
                .await
                .map_err(server("count rows"))?
                .get(0);
            rows += n;
        }
        Ok((tables.len() as i64, rows))
    }

    pub async fn drop_database(&self, name: &str) -> Result<(), PgError> {
        self.admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                ident(name)
            ))
            .await
            .map_err(on_database(name, format!("DROP DATABASE {name}")))
    }
}

/// A connection to one database for scalar queries (queue depths, budget spend); the driver's
/// client stays inside this provider.
pub struct Connection(Client);

impl Postgres {
    /// Opens a connection to database `name`.
    pub async fn open_connection(&self, name: &str) -> Result<Connection, PgError> {
        Ok(Connection(self.connect_db(name).await?))
    }
}

impl Connection {
    /// Whether the server closed it (it is opened again then).
    pub fn is_closed(&self) -> bool {
        self.0.is_closed()
    }

    /// Runs a query that returns one value, as a number: `SELECT (<sql>)::float8`.
    /// (A `String` error: `engine::budgets` returns it as is and `engine::autoscale` mixes it
    /// with its own `String` errors.)
    pub async fn scalar(&self, sql: &str) -> Result<f64, String> {
        let wrapped = format!("SELECT ({})::float8", sql.trim().trim_end_matches(';'));
        let row = self
            .0
            .query_one(wrapped.as_str(), &[])
            .await
            .map_err(|e| server("scalar query")(e).to_string())?;
        Ok(row.get::<_, Option<f64>>(0).unwrap_or(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_literals_are_quoted() {
        assert_eq!(ident("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(literal("it's"), "'it''s'");
    }

    /// The texts are the ones these errors had as plain strings; they must not drift.
    #[test]
    fn messages_keep_their_old_text() {
        let failed = || {
            Box::new(PgError::Migration {
                file: "migrations/0002_b.up.sql".into(),
                sqlstate: Some("42883".into()),
                message: "function f() does not exist (SQLSTATE 42883)".into(),
            })
        };
        let cases = [
            (
                PgError::MigrationRolledBack { failed: failed(), count: 1 },
                "migrations/0002_b.up.sql: function f() does not exist (SQLSTATE 42883); the 1 migration(s) applied before it were rolled back",
            ),
            (
                PgError::MigrationRollbackFailed {
                    failed: failed(),
                    rollback: Box::new(PgError::NoDownFile { migration: "0001_a".into() }),
                },
                "migrations/0002_b.up.sql: function f() does not exist (SQLSTATE 42883); rolling back the earlier ones failed: 0001_a has no down file",
            ),
            (
                PgError::MigrationKept { failed: failed(), count: 2 },
                "migrations/0002_b.up.sql: function f() does not exist (SQLSTATE 42883); 2 earlier migration(s) stay applied (not every one has a down file)",
            ),
            (
                PgError::LockBusy { database: "app".into(), seconds: 600 },
                "another runner held the migration lock for more than 600s",
            ),
            (
                PgError::Dump { database: "app".into(), stderr: "boom".into() },
                "pg_dump of app failed: boom",
            ),
            (
                PgError::SetPassword { role: "app".into(), sqlstate: "42501".into() },
                "set the password of role app: 42501",
            ),
            (
                PgError::Grant {
                    role: "ro".into(),
                    verb: "GRANT",
                    target: "all-tables",
                    message: "denied".into(),
                },
                "GRANT on all-tables: denied",
            ),
        ];
        for (e, text) in cases {
            assert_eq!(e.to_string(), text);
        }
        let dir = PgError::DumpDir {
            dir: "/nope".into(),
            error: std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied"),
        };
        assert_eq!(dir.to_string(), "cannot create /nope: denied");
    }
}
