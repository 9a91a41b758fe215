//! The PostgreSQL provider (tokio-postgres): observes databases, roles, grants, extensions and
//! `converge.schema_migrations`, and runs the statements apply needs — including migrations
//! under a polled advisory lock, each in its own transaction with lock and statement timeouts.
//! tokio-postgres types stay in this folder; connection URLs never reach a message.
//! This file owns the `Postgres` client (connect, DSN, database-level operations), `PgError`,
//! `FACTORY` and the quoting/error helpers the other files share.

use thiserror::Error;
use tokio_postgres::{Client, Config, NoTls};

mod contents;
pub mod database;
pub mod lock;
mod migrate;
mod migrate_error;
mod migrate_run;
mod observe;
mod provider;
mod retry;
mod roles;
mod scram;
mod snapshot;

pub use contents::Contents;
pub use migrate_error::MigrateError;
pub use provider::PostgresProvider;
pub use scram::scram_matches;
pub use snapshot::Snapshot;

/// PostgreSQL is connected when the Project declares it (databases, backups, budgets' spend and
/// queue-depth queries all go through it).
/// libpq settings for child processes (`pg_dump`, `pg_restore`): connect within 10 s, and drop
/// a connection whose server stopped answering (keepalives after 30 s idle, 3 probes 10 s apart).
const CHILD_LINK: &str =
    "connect_timeout=10 keepalives=1 keepalives_idle=30 keepalives_interval=10 keepalives_count=3";

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
    /// A step failed; what it had created was removed again.
    #[error("{error}\n  = the failed step removed what it had created: {removed}")]
    CreatedRemoved {
        error: Box<PgError>,
        removed: String,
    },
    /// A step failed, and what it had created could not all be removed.
    #[error("{error}\n  = the failed step could not remove what it had created ({left}): {cleanup}\n  = hint: drop them by hand, then run `converge plan`")]
    CreatedLeft {
        error: Box<PgError>,
        left: String,
        cleanup: Box<PgError>,
    },
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

/// Where a connection goes, for messages: `host:port` or the socket directory and port (never
/// the user or the password).
fn endpoint(config: &Config) -> String {
    let port = config.get_ports().first().copied().unwrap_or(5432);
    match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) if h.contains(':') => format!("[{h}]:{port}"),
        Some(tokio_postgres::config::Host::Tcp(h)) => format!("{h}:{port}"),
        Some(tokio_postgres::config::Host::Unix(p)) => format!("{}:{port}", p.display()),
        None => format!("localhost:{port}"),
    }
}

/// Why a connection failed: the server's message, or the driver's with its causes
/// (`error connecting to server: Connection refused (os error 111)`).
fn connect_cause(e: &tokio_postgres::Error) -> String {
    if e.as_db_error().is_some() {
        return message(e);
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

/// The database a connection opens (PostgreSQL's default: the user's name).
fn database(config: &Config) -> String {
    config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres")
        .to_string()
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

    /// Connects, retrying a transient failure (`retry::SCHEDULE`: 5 attempts, 200 ms doubling,
    /// 10 s in all); the error names the endpoint and the database, never the password.
    async fn open(config: &Config) -> Result<Client, PgError> {
        let (endpoint, database) = (endpoint(config), database(config));
        let (client, conn) = retry::retry(
            retry::SCHEDULE,
            retry::is_transient,
            |e, wait| {
                tracing::warn!(
                    "PostgreSQL at {endpoint} (database {database}) did not accept the connection: {}; trying again in {}ms",
                    connect_cause(e),
                    wait.as_millis()
                )
            },
            || config.connect(NoTls),
        )
        .await
        .map_err(|gave_up| {
            let (cause, attempts, elapsed) = match gave_up {
                retry::GaveUp::Failed {
                    error,
                    attempts,
                    elapsed,
                } => (connect_cause(&error), attempts, elapsed),
                retry::GaveUp::TimedOut { attempts, elapsed } => (
                    format!("timed out after {}s", elapsed.as_secs_f64().round()),
                    attempts,
                    elapsed,
                ),
            };
            let tries = if attempts > 1 {
                format!(" (gave up after {attempts} attempts in {:.1}s)", elapsed.as_secs_f64())
            } else {
                String::new()
            };
            PgError::Connect(format!("{endpoint}, database {database}: {cause}{tries}"))
        })?;
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
        // A child never hangs on a server that went away: a bounded connect, and TCP keepalives
        // that notice a dead connection within about a minute.
        parts.push(CHILD_LINK.into());
        parts.join(" ")
    }

    /// The password of the connection, for `PGPASSWORD` of child processes.
    pub fn password(&self) -> Option<String> {
        self.config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned())
    }

    /// Creates database `name` when missing; returns what it holds (nothing when created).
    pub async fn ensure_database(&self, name: &str) -> Result<Contents, PgError> {
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
            return Ok(Contents::default());
        }
        self.contents(name).await
    }

    /// (tables, rows) in the user schemas of `name` (the tables `table_rows` counts).
    pub async fn count_rows(&self, name: &str) -> Result<(i64, i64), PgError> {
        let rows = self.table_rows(name).await?;
        Ok((rows.len() as i64, rows.values().sum()))
    }

    /// The names of every database on the server.
    pub async fn database_names(&self) -> Result<Vec<String>, PgError> {
        let rows = self
            .admin
            .query("SELECT datname FROM pg_database ORDER BY datname", &[])
            .await
            .map_err(server("list databases"))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
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

    /// A closed port: 5 attempts with 200 ms doubling waits (3 s), then an error naming where
    /// and which database, without the password.
    #[tokio::test]
    async fn a_refused_connection_is_retried_then_named_without_the_password() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let start = std::time::Instant::now();
        let Err(e) =
            Postgres::connect(&format!("postgres://app:hunter2-pw@127.0.0.1:{port}/appdb")).await
        else {
            panic!("connected to a closed port");
        };
        let (e, took) = (e.to_string(), start.elapsed());
        assert!(
            e.starts_with(&format!(
                "cannot connect to PostgreSQL: 127.0.0.1:{port}, database appdb: "
            )),
            "{e}"
        );
        assert!(e.contains("(gave up after 5 attempts in 3."), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        assert!(
            took >= std::time::Duration::from_secs(3) && took < std::time::Duration::from_secs(10),
            "{took:?}"
        );
    }

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
