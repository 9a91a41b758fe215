//! The PostgreSQL provider (tokio-postgres): observes databases, roles, grants, extensions and
//! `converge.schema_migrations`, and runs the statements apply needs — including migrations
//! under a polled advisory lock, each in its own transaction with lock and statement timeouts.
//! tokio-postgres types stay in this file; connection URLs never reach a message.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use thiserror::Error;
use tokio_postgres::{Client, Config, NoTls};

pub mod database;
mod provider;

pub use provider::PostgresProvider;

use crate::model::attributes::{role_flags, Attr, AttrValue};
use crate::model::database::{Grant, GrantTarget};
use crate::model::live::{AppliedMigration, LiveResource, LiveState};
use crate::model::{Attributes, Database, DesiredState, Kind, MigrationFile, Resource, ResourceId};

/// PostgreSQL is connected when the Project declares it (databases, backups, budgets' spend and
/// queue-depth queries all go through it).
pub const FACTORY: crate::providers::registry::Factory = crate::providers::registry::Factory {
    name: "postgres",
    subjects: provider::SUBJECTS,
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

fn lock_key(scope: &str) -> i64 {
    let d = Sha256::digest(scope.as_bytes());
    i64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
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

    /// Fills `live` with every declared database, and the ones converge made for `project`.
    /// `secrets` resolves role passwords to check them against the server's SCRAM verifiers.
    pub async fn observe(
        &self,
        desired: &DesiredState,
        secrets: &crate::secrets::Secrets,
        live: &mut LiveState,
    ) -> Result<(), PgError> {
        let project = desired.project.name.as_str();
        let rows = self
            .admin
            .query(
                "SELECT datname, pg_get_userbyid(datdba), pg_encoding_to_char(encoding), \
                 coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database WHERE NOT datistemplate",
                &[],
            )
            .await
            .map_err(q("list databases"))?;
        for row in rows {
            let name: String = row.get(0);
            let owner: String = row.get(1);
            let encoding: String = row.get(2);
            let comment: Option<DbComment> = serde_json::from_str(&row.get::<_, String>(3)).ok();
            let id = ResourceId::new(Kind::Database, &name);
            let declared = match desired.get(&id) {
                Some(Resource::Database(db)) => Some(db),
                _ => None,
            };
            let ours = comment.as_ref().is_some_and(|c| c.converge == project);
            if declared.is_none() && !ours {
                continue;
            }
            let mut r = LiveResource::default();
            let a = &mut r.attributes;
            if declared.is_none_or(|d| d.owner.is_some()) {
                a.text("owner", owner);
            }
            a.text("encoding", encoding);
            a.text("prune", comment.as_ref().is_some_and(|c| c.prune));
            if let Some(db) = declared {
                self.observe_declared(db, secrets, a, &mut r.applied_migrations)
                    .await?;
            }
            live.resources.insert(id, r);
        }
        Ok(())
    }

    async fn observe_declared(
        &self,
        db: &Database,
        secrets: &crate::secrets::Secrets,
        a: &mut Attributes,
        applied: &mut BTreeMap<u64, AppliedMigration>,
    ) -> Result<(), PgError> {
        let names: Vec<String> = db.roles.iter().map(|r| r.name.to_string()).collect();
        let roles = self
            .admin
            .query(
                "SELECT r.rolname, r.rolcanlogin, r.rolcreatedb, r.rolconnlimit, \
                 coalesce(shobj_description(r.oid, 'pg_authid'), ''), \
                 ARRAY(SELECT b.rolname::text FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid WHERE m.member = r.oid ORDER BY 1) \
                 FROM pg_roles r WHERE r.rolname = ANY($1)",
                &[&names],
            )
            .await
            .map_err(q("list roles"))?;
        let conn = self.connect_db(db.name.as_str()).await?;
        let held = all_held(&conn, db).await?;
        for row in roles {
            let name: String = row.get(0);
            let Some(role) = db.roles.iter().find(|r| r.name.as_str() == name) else {
                continue;
            };
            let members: Vec<String> = row.get(5);
            a.text(
                format!("roles.{name}"),
                role_flags(row.get(1), row.get(2), row.get(3), &members),
            );
            if let Some(pw) = &role.password {
                let comment: String = row.get(4);
                let verifier = self.verifier(&name).await;
                let digest = match (verifier, secrets.resolve(pw)) {
                    // The server's own record decides: a password changed by hand shows as drift,
                    // and agents with different digest keys agree.
                    (Some(v), Ok(value)) if v.starts_with("SCRAM-SHA-256$") => {
                        Some(if scram_matches(&v, &value) {
                            crate::model::SecretDigest::digest(secrets, pw)
                        } else {
                            "another password".to_string()
                        })
                    }
                    _ => comment.strip_prefix("converge:pw=").map(str::to_string),
                };
                if let Some(digest) = digest {
                    a.0.insert(
                        format!("roles.{name}.password"),
                        Attr {
                            value: AttrValue::Sensitive(digest),
                            replaces: false,
                        },
                    );
                }
            }
            for (i, g) in role.grants.iter().enumerate() {
                let held = held.get(&(name.clone(), i)).cloned().unwrap_or_default();
                if !held.is_empty() {
                    a.text(format!("roles.{name}.grants[{i}]"), g.describe(&held));
                }
            }
        }
        if !db.extensions.is_empty() {
            let rows = conn
                .query("SELECT extname::text FROM pg_extension", &[])
                .await
                .map_err(q("list extensions"))?;
            let have: BTreeSet<String> = rows.iter().map(|r| r.get(0)).collect();
            let mut present: Vec<&String> =
                db.extensions.iter().filter(|e| have.contains(*e)).collect();
            present.sort();
            if !present.is_empty() {
                a.text(
                    "extensions",
                    present
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                );
            }
        }
        let exists: bool = conn
            .query_one(
                "SELECT to_regclass('converge.schema_migrations') IS NOT NULL",
                &[],
            )
            .await
            .map_err(q("look for converge.schema_migrations"))?
            .get(0);
        if exists {
            for row in conn
                .query(
                    "SELECT version, name, checksum FROM converge.schema_migrations",
                    &[],
                )
                .await
                .map_err(q("read converge.schema_migrations"))?
            {
                let version: i64 = row.get(0);
                applied.insert(
                    version as u64,
                    AppliedMigration {
                        name: row.get(1),
                        checksum: row.get(2),
                    },
                );
            }
        }
        Ok(())
    }

    /// The role's stored password verifier, when this connection may read it (superuser).
    async fn verifier(&self, role: &str) -> Option<String> {
        self.admin
            .query_opt(
                "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
                &[&role],
            )
            .await
            .ok()
            .flatten()
            .and_then(|r| r.get::<_, Option<String>>(0))
    }

    /// Makes roles, the database, its extensions and grants what `db` declares.
    pub async fn reconcile(
        &self,
        db: &Database,
        project: &str,
        password: &PasswordFn<'_>,
    ) -> Result<(), String> {
        let e = |what: &str| {
            let what = what.to_string();
            move |err: tokio_postgres::Error| format!("{what}: {}", message(&err))
        };
        for role in &db.roles {
            let name = ident(role.name.as_str());
            let exists = self
                .admin
                .query_opt(
                    "SELECT 1 FROM pg_roles WHERE rolname = $1",
                    &[&role.name.as_str()],
                )
                .await
                .map_err(e("look up role"))?
                .is_some();
            let opts = format!(
                "{} {} CONNECTION LIMIT {}",
                if role.login { "LOGIN" } else { "NOLOGIN" },
                if role.createdb {
                    "CREATEDB"
                } else {
                    "NOCREATEDB"
                },
                role.connection_limit
            );
            let verb = if exists { "ALTER" } else { "CREATE" };
            self.admin
                .batch_execute(&format!("{verb} ROLE {name} {opts}"))
                .await
                .map_err(e(&format!("{verb} ROLE {}", role.name)))?;
            if let Some(pw) = &role.password {
                let (value, digest) = password(pw)?;
                // The statement holds the password: it is never logged or put in an error.
                self.admin
                    .batch_execute(&format!("ALTER ROLE {name} PASSWORD {}", literal(&value)))
                    .await
                    .map_err(|err| {
                        format!(
                            "set the password of role {}: {}",
                            role.name,
                            sqlstate(&err).unwrap_or_default()
                        )
                    })?;
                self.admin
                    .batch_execute(&format!(
                        "COMMENT ON ROLE {name} IS {}",
                        literal(&format!("converge:pw={digest}"))
                    ))
                    .await
                    .map_err(e("comment on role"))?;
            }
            let current: Vec<String> = self
                .admin
                .query_one(
                    "SELECT ARRAY(SELECT b.rolname::text FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = $1)",
                    &[&role.name.as_str()],
                )
                .await
                .map_err(e("read memberships"))?
                .get(0);
            for m in role.member_of.iter().filter(|m| !current.contains(m)) {
                self.admin
                    .batch_execute(&format!("GRANT {} TO {name}", ident(m)))
                    .await
                    .map_err(e("grant membership"))?;
            }
            for m in current.iter().filter(|m| !role.member_of.contains(m)) {
                self.admin
                    .batch_execute(&format!("REVOKE {} FROM {name}", ident(m)))
                    .await
                    .map_err(e("revoke membership"))?;
            }
        }
        let dbname = ident(db.name.as_str());
        let row = self
            .admin
            .query_opt(
                "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1",
                &[&db.name.as_str()],
            )
            .await
            .map_err(e("look up database"))?;
        match row {
            None => {
                let owner = db
                    .owner
                    .as_deref()
                    .map(|o| format!(" OWNER {}", ident(o)))
                    .unwrap_or_default();
                self.admin
                    .batch_execute(&format!(
                        "CREATE DATABASE {dbname}{owner} ENCODING {} TEMPLATE template0",
                        literal(&db.encoding)
                    ))
                    .await
                    .map_err(e(&format!("CREATE DATABASE {}", db.name)))?;
            }
            Some(r) => {
                let owner: String = r.get(0);
                if let Some(o) = db.owner.as_deref().filter(|o| *o != owner) {
                    self.admin
                        .batch_execute(&format!("ALTER DATABASE {dbname} OWNER TO {}", ident(o)))
                        .await
                        .map_err(e("change owner"))?;
                }
            }
        }
        let comment = serde_json::to_string(&DbComment {
            converge: project.into(),
            prune: db.prune,
        })
        .expect("comment serializes");
        self.admin
            .batch_execute(&format!(
                "COMMENT ON DATABASE {dbname} IS {}",
                literal(&comment)
            ))
            .await
            .map_err(e("comment on database"))?;
        let conn = self
            .connect_db(db.name.as_str())
            .await
            .map_err(|x| x.to_string())?;
        for ext in &db.extensions {
            conn.batch_execute(&format!("CREATE EXTENSION IF NOT EXISTS {}", ident(ext)))
                .await
                .map_err(e(&format!("CREATE EXTENSION {ext}")))?;
        }
        self.apply_grants_on(&conn, db, true).await?;
        Ok(())
    }

    /// Grants and revokes so that each declared grant holds exactly its privileges.
    pub async fn apply_grants(&self, db: &Database) -> Result<(), String> {
        let conn = self
            .connect_db(db.name.as_str())
            .await
            .map_err(|x| x.to_string())?;
        self.apply_grants_on(&conn, db, false).await
    }

    /// `skip_missing_schemas`: before migrations run, a schema they create does not exist yet;
    /// its grants are applied after them.
    async fn apply_grants_on(
        &self,
        conn: &Client,
        db: &Database,
        skip_missing_schemas: bool,
    ) -> Result<(), String> {
        let held = all_held(conn, db).await.map_err(|x| x.to_string())?;
        let schemas: BTreeSet<String> = conn
            .query("SELECT nspname::text FROM pg_namespace", &[])
            .await
            .map_err(|e| message(&e))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for role in &db.roles {
            for (i, g) in role.grants.iter().enumerate() {
                if g.on != GrantTarget::Database && !schemas.contains(&g.schema) {
                    if skip_missing_schemas {
                        continue;
                    }
                    return Err(format!(
                        "grant on schema {} for role {}: the schema does not exist",
                        g.schema, role.name
                    ));
                }
                let want = g.canonical_privileges();
                let have = held
                    .get(&(role.name.to_string(), i))
                    .cloned()
                    .unwrap_or_default();
                let add: Vec<&str> = want.iter().copied().filter(|p| !have.contains(p)).collect();
                let remove: Vec<&str> =
                    have.iter().copied().filter(|p| !want.contains(p)).collect();
                for (verb, privs) in [("GRANT", add), ("REVOKE", remove)] {
                    if privs.is_empty() {
                        continue;
                    }
                    for sql in grant_sql(verb, &privs, g, db.name.as_str(), role.name.as_str()) {
                        conn.batch_execute(&sql)
                            .await
                            .map_err(|e| format!("{verb} on {}: {}", g.on.as_str(), message(&e)))?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Runs `pending` migrations of `db` under a polled advisory lock; returns the versions this
    /// call applied (another runner may have applied some meanwhile). On a failure, the
    /// migrations this call applied are rolled back with their down files when all have one.
    pub async fn migrate(
        &self,
        db: &Database,
        pending: &[&MigrationFile],
        runner: &str,
    ) -> Result<Vec<u64>, String> {
        let m = db
            .migrations
            .as_ref()
            .ok_or("the database declares no migrations")?;
        let conn = self
            .connect_db(db.name.as_str())
            .await
            .map_err(|e| e.to_string())?;
        let key = lock_key(&format!("converge-migrate:{}", db.name));
        acquire(&conn, key, Duration::from_secs(600)).await?;
        let result = self
            .migrate_locked(
                &conn,
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
        pending: &[&MigrationFile],
        runner: &str,
        lock_ms: u64,
        statement_ms: u64,
    ) -> Result<Vec<u64>, String> {
        conn.batch_execute(
            "CREATE SCHEMA IF NOT EXISTS converge; \
             CREATE TABLE IF NOT EXISTS converge.schema_migrations (version bigint PRIMARY KEY, name text NOT NULL, \
             checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms bigint NOT NULL, applied_by text NOT NULL)",
        )
        .await
        .map_err(|e| format!("create converge.schema_migrations: {}", message(&e)))?;
        let already: BTreeSet<i64> = conn
            .query("SELECT version FROM converge.schema_migrations", &[])
            .await
            .map_err(|e| message(&e))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut done: Vec<&MigrationFile> = Vec::new();
        for f in pending
            .iter()
            .filter(|f| !already.contains(&(f.version as i64)))
        {
            if let Err(err) = run_one(conn, f, runner, lock_ms, statement_ms).await {
                let undo = if !done.is_empty() && done.iter().all(|d| d.down_sql.is_some()) {
                    match self.migrate_down_on(conn, &done).await {
                        Ok(()) => format!(
                            "; the {} migration(s) applied before it were rolled back",
                            done.len()
                        ),
                        Err(e) => format!("; rolling back the earlier ones failed: {e}"),
                    }
                } else if done.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; {} earlier migration(s) stay applied (not every one has a down file)",
                        done.len()
                    )
                };
                return Err(format!("{err}{undo}"));
            }
            done.push(f);
        }
        Ok(done.iter().map(|f| f.version).collect())
    }

    /// Runs the down files of `files` in reverse, each in a transaction.
    pub async fn migrate_down(&self, db: &str, files: &[&MigrationFile]) -> Result<(), String> {
        let conn = self.connect_db(db).await.map_err(|e| e.to_string())?;
        let key = lock_key(&format!("converge-migrate:{db}"));
        acquire(&conn, key, Duration::from_secs(600)).await?;
        let r = self.migrate_down_on(&conn, files).await;
        let _ = conn.execute("SELECT pg_advisory_unlock($1)", &[&key]).await;
        r
    }

    async fn migrate_down_on(&self, conn: &Client, files: &[&MigrationFile]) -> Result<(), String> {
        for f in files.iter().rev() {
            let down = f
                .down_sql
                .as_deref()
                .ok_or_else(|| format!("{} has no down file", f.stem()))?;
            let sql = format!(
                "BEGIN; {down}\n; DELETE FROM converge.schema_migrations WHERE version = {}; COMMIT;",
                f.version
            );
            if let Err(e) = conn.batch_execute(&sql).await {
                let _ = conn.batch_execute("ROLLBACK").await;
                return Err(format!(
                    "{}: {}",
                    f.down_path.as_deref().unwrap_or(&f.stem()),
                    message(&e)
                ));
            }
        }
        Ok(())
    }

    /// Accepts the current files' checksums for applied migrations whose files changed on purpose.
    pub async fn repair(&self, db: &str, files: &[MigrationFile]) -> Result<Vec<String>, String> {
        let conn = self.connect_db(db).await.map_err(|e| e.to_string())?;
        let mut repaired = Vec::new();
        for f in files {
            let n = conn
                .execute(
                    "UPDATE converge.schema_migrations SET checksum = $1 WHERE version = $2 AND checksum <> $1",
                    &[&f.checksum, &(f.version as i64)],
                )
                .await
                .map_err(|e| message(&e))?;
            if n > 0 {
                repaired.push(f.up_path.clone());
            }
        }
        Ok(repaired)
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

/// Whether `password` matches a `SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>` verifier
/// (RFC 5802/7677: StoredKey = H(HMAC(PBKDF2(password, salt, iter), "Client Key"))).
pub fn scram_matches(verifier: &str, password: &str) -> bool {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let b64 = base64::engine::general_purpose::STANDARD;
    let parse = || -> Option<(u32, Vec<u8>, Vec<u8>)> {
        let rest = verifier.strip_prefix("SCRAM-SHA-256$")?;
        let (params, keys) = rest.split_once('$')?;
        let (iter, salt) = params.split_once(':')?;
        let (stored, _server) = keys.split_once(':')?;
        Some((
            iter.parse().ok()?,
            b64.decode(salt).ok()?,
            b64.decode(stored).ok()?,
        ))
    };
    let Some((iterations, salt, stored)) = parse() else {
        return false;
    };
    let mac = |key: &[u8], data: &[u8]| {
        let mut m = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
        m.update(data);
        m.finalize().into_bytes()
    };
    let mut u = mac(
        password.as_bytes(),
        &[salt.as_slice(), &[0, 0, 0, 1]].concat(),
    );
    let mut salted = u;
    for _ in 1..iterations {
        u = mac(password.as_bytes(), &u);
        for (s, x) in salted.iter_mut().zip(u.iter()) {
            *s ^= x;
        }
    }
    let client_key = mac(&salted, b"Client Key");
    Sha256::digest(client_key).as_slice() == stored.as_slice()
}

/// Polls `pg_try_advisory_lock` with backoff (never the blocking `pg_advisory_lock`, which
/// deadlocks with `CREATE INDEX CONCURRENTLY` waiting on the holder's transactions).
async fn acquire(conn: &Client, key: i64, max_wait: Duration) -> Result<(), String> {
    let deadline = Instant::now() + max_wait;
    let mut delay = Duration::from_millis(50);
    loop {
        let got: bool = conn
            .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
            .await
            .map_err(|e| message(&e))?
            .get(0);
        if got {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "another runner held the migration lock for more than {}s",
                max_wait.as_secs()
            ));
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
) -> Result<(), String> {
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
                        .map_err(|e| message(&e))?;
                }
                return record
                    .map(|_| ())
                    .map_err(|e| format!("{}: recording it: {}", f.up_path, message(&e)));
            }
            Err(e) if sqlstate(&e).as_deref() == Some("55P03") && attempt < 4 => {
                tokio::time::sleep(Duration::from_millis(200 * (1 << attempt))).await;
            }
            Err(e) => return Err(format!("{}: {}", f.up_path, message(&e))),
        }
    }
}

/// The privileges each declared grant holds, keyed by (role, grant index), in canonical order:
/// the role's own ACL entries (not PUBLIC's, not inherited). For all tables (or sequences,
/// functions) of a schema: held on every existing one and granted by default to future ones.
/// One query for the whole database.
async fn all_held(
    conn: &Client,
    db: &Database,
) -> Result<BTreeMap<(String, usize), Vec<&'static str>>, PgError> {
    let (mut roles, mut targets, mut schemas, mut privs, mut keys) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for role in &db.roles {
        for (i, g) in role.grants.iter().enumerate() {
            for p in g.on.privileges() {
                roles.push(role.name.to_string());
                targets.push(g.on.as_str().to_string());
                schemas.push(g.schema.clone());
                privs.push(p.to_string());
                keys.push((role.name.to_string(), i, *p));
            }
        }
    }
    let mut out: BTreeMap<(String, usize), Vec<&'static str>> = BTreeMap::new();
    if keys.is_empty() {
        return Ok(out);
    }
    // Set-based: every ACL is expanded once and joined to the declared (role, target, privilege)
    // rows, so the cost grows with the catalog, not with roles × grants × tables.
    let sql = "WITH x AS (
            SELECT u.*, r.oid AS ro,
                   CASE u.t WHEN 'all-tables' THEN 'r' WHEN 'all-sequences' THEN 'S' ELSE 'f' END AS o
            FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[]) AS u(r, t, s, p, i)
            LEFT JOIN pg_roles r ON r.rolname = u.r),
        rel AS (
            SELECT n.nspname::text AS s, CASE WHEN c.relkind = 'S' THEN 'S' ELSE 'r' END AS o, c.oid, c.relacl
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r','p','v','m','f','S')),
        total AS (SELECT s, o, count(*) AS n FROM rel GROUP BY 1, 2),
        granted AS (
            SELECT rel.s, rel.o, a.grantee, a.privilege_type AS p, count(DISTINCT rel.oid) AS n
            FROM rel, aclexplode(rel.relacl) a GROUP BY 1, 2, 3, 4),
        dft AS (
            SELECT DISTINCT n.nspname::text AS s, d.defaclobjtype::text AS o, a.grantee, a.privilege_type AS p
            FROM pg_default_acl d JOIN pg_namespace n ON n.oid = d.defaclnamespace, aclexplode(d.defaclacl) a),
        nsp AS (
            SELECT DISTINCT n.nspname::text AS s, a.grantee, a.privilege_type AS p
            FROM pg_namespace n, aclexplode(n.nspacl) a),
        dba AS (
            SELECT DISTINCT a.grantee, a.privilege_type AS p
            FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = current_database())
        SELECT x.i, CASE x.t
            WHEN 'database' THEN dba.p IS NOT NULL
            WHEN 'schema' THEN nsp.p IS NOT NULL
            WHEN 'all-functions' THEN dft.p IS NOT NULL
            ELSE dft.p IS NOT NULL AND coalesce(granted.n, 0) = coalesce(total.n, 0)
        END
        FROM x
        LEFT JOIN dba ON x.t = 'database' AND dba.grantee = x.ro AND dba.p = x.p
        LEFT JOIN nsp ON x.t = 'schema' AND nsp.s = x.s AND nsp.grantee = x.ro AND nsp.p = x.p
        LEFT JOIN dft ON x.t LIKE 'all-%' AND dft.s = x.s AND dft.o = x.o AND dft.grantee = x.ro AND dft.p = x.p
        LEFT JOIN total ON x.t IN ('all-tables', 'all-sequences') AND total.s = x.s AND total.o = x.o
        LEFT JOIN granted ON x.t IN ('all-tables', 'all-sequences') AND granted.s = x.s AND granted.o = x.o
            AND granted.grantee = x.ro AND granted.p = x.p";
    let idx: Vec<i32> = (0..keys.len() as i32).collect();
    let rows = conn
        .query(sql, &[&roles, &targets, &schemas, &privs, &idx])
        .await
        .map_err(q("read grants"))?;
    let mut held = vec![false; keys.len()];
    for r in rows {
        let i: i32 = r.get(0);
        held[i as usize] |= r.get::<_, Option<bool>>(1).unwrap_or(false);
    }
    for ((role, gi, p), h) in keys.into_iter().zip(held) {
        let entry = out.entry((role, gi)).or_default();
        if h {
            entry.push(p);
        }
    }
    Ok(out)
}

fn grant_sql(verb: &str, privs: &[&str], g: &Grant, db: &str, role: &str) -> Vec<String> {
    let list = privs.join(", ");
    let to = if verb == "GRANT" { "TO" } else { "FROM" };
    let (r, s) = (ident(role), ident(&g.schema));
    match g.on {
        GrantTarget::Schema => vec![format!("{verb} {list} ON SCHEMA {s} {to} {r}")],
        GrantTarget::Database => vec![format!("{verb} {list} ON DATABASE {} {to} {r}", ident(db))],
        GrantTarget::AllTables | GrantTarget::AllSequences | GrantTarget::AllFunctions => {
            let (all, def) = match g.on {
                GrantTarget::AllTables => ("ALL TABLES", "TABLES"),
                GrantTarget::AllSequences => ("ALL SEQUENCES", "SEQUENCES"),
                _ => ("ALL FUNCTIONS", "FUNCTIONS"),
            };
            vec![
                format!("{verb} {list} ON {all} IN SCHEMA {s} {to} {r}"),
                format!("ALTER DEFAULT PRIVILEGES IN SCHEMA {s} {verb} {list} ON {def} {to} {r}"),
            ]
        }
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
    fn scram_verifiers_are_checked() {
        // The verifier PostgreSQL 15 stored for the password `pw1`.
        let v = "SCRAM-SHA-256$4096:r4/TF2umB5i7y0fB9u4kYw==$MnjZJfEr2RUtFETElGAzhlhAmFTgsn4A3i3SqhXGdNM=:dSBgLtH5K6pag++Kp/fZ/MWt+HXPuIS7T9LtylIu4UM=";
        assert!(scram_matches(v, "pw1"));
        assert!(!scram_matches(v, "pw2"));
        assert!(!scram_matches("md5abc", "pw1"));
        assert!(!scram_matches("SCRAM-SHA-256$bad", "pw1"));
    }

    #[test]
    fn identifiers_and_literals_are_quoted() {
        assert_eq!(ident("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(literal("it's"), "'it''s'");
    }
}
