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
mod migrate;
mod observe;
mod provider;
mod roles;
mod scram;

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

#[derive(Debug, Error)]
pub enum PgError {
    #[error("cannot connect to PostgreSQL: {0}\n  = hint: check providers.postgres.url and that the server is up")]
    Connect(String),
    #[error("postgres: {what}: {message}")]
    Query { what: String, message: String },
}

fn q(what: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> PgError {
    let what = what.into();
    move |e| PgError::Query {
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
pub type PasswordFn<'a> =
    dyn Fn(&crate::model::types::SecretString) -> Result<(String, String), String> + Sync + 'a;

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
    pub async fn connect_db(&self, name: &str) -> Result<Client, PgError> {
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
    pub async fn ensure_database(&self, name: &str) -> Result<i64, String> {
        let exists = self
            .admin
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
            .await
            .map_err(|e| message(&e))?
            .is_some();
        if !exists {
            self.admin
                .batch_execute(&format!(
                    "CREATE DATABASE {} TEMPLATE template0",
                    ident(name)
                ))
                .await
                .map_err(|e| format!("CREATE DATABASE {name}: {}", message(&e)))?;
            return Ok(0);
        }
        Ok(self.count_rows(name).await?.0)
    }

    /// (tables, rows) in the user schemas of `name`.
    pub async fn count_rows(&self, name: &str) -> Result<(i64, i64), String> {
        let conn = self.connect_db(name).await.map_err(|e| e.to_string())?;
        let tables = conn
            .query(
                "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) FROM information_schema.tables \
                 WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')",
                &[],
            )
            .await
            .map_err(|e| message(&e))?;
        let mut rows = 0i64;
        for t in &tables {
            let name: String = t.get(0);
            let n: i64 = conn
                .query_one(&format!("SELECT count(*) FROM {name}"), &[])
                .await
                .map_err(|e| message(&e))?
                .get(0);
            rows += n;
        }
        Ok((tables.len() as i64, rows))
    }

    pub async fn drop_database(&self, name: &str) -> Result<(), String> {
        self.admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                ident(name)
            ))
            .await
            .map_err(|e| format!("DROP DATABASE {name}: {}", message(&e)))
    }
}

/// A connection to one database, as `connect_db` opens it.
pub type Connection = Client;

/// Runs a query that returns one value, as a number: `SELECT (<sql>)::float8`.
pub async fn scalar(client: &Connection, sql: &str) -> Result<f64, String> {
    let wrapped = format!("SELECT ({})::float8", sql.trim().trim_end_matches(';'));
    let row = client
        .query_one(wrapped.as_str(), &[])
        .await
        .map_err(|e| message(&e))?;
    Ok(row.get::<_, Option<f64>>(0).unwrap_or(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_literals_are_quoted() {
        assert_eq!(ident("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(literal("it's"), "'it''s'");
    }
}
