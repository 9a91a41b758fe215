//! Reconciling a database with its declaration: roles (flags, passwords, memberships), the
//! database itself (owner, comment), its extensions and the grants each role holds.

use std::collections::BTreeSet;

use tokio_postgres::Client;

use super::observe::all_held;
use super::scram::scram_verifier;
use super::{
    ident, literal, message, on_database, on_role, server, sqlstate, DbComment, PasswordFn, PgError,
};
use crate::model::database::{Grant, GrantTarget};
use crate::model::Database;

/// What one reconcile created, so a failure can take it away again.
#[derive(Default)]
struct Created {
    roles: Vec<String>,
    database: bool,
}

impl super::Postgres {
    /// Makes roles, the database, its extensions and grants what `db` declares. When it fails,
    /// the roles and the (still empty) database it created are removed again, so a failed step
    /// leaves the server as it found it; the error says what was removed or what is left.
    pub async fn reconcile(
        &self,
        db: &Database,
        project: &str,
        password: &PasswordFn<'_>,
    ) -> Result<(), PgError> {
        let mut created = Created::default();
        let Err(error) = self
            .reconcile_with(db, project, password, &mut created)
            .await
        else {
            return Ok(());
        };
        if created.roles.is_empty() && !created.database {
            return Err(error);
        }
        let mut what: Vec<String> = created.roles.iter().map(|r| format!("role {r}")).collect();
        if created.database {
            what.insert(0, format!("database {}", db.name));
        }
        let what = what.join(", ");
        match self.remove_created(db.name.as_str(), &created).await {
            Ok(()) => Err(PgError::CreatedRemoved {
                error: Box::new(error),
                removed: what,
            }),
            Err(cleanup) => Err(PgError::CreatedLeft {
                error: Box::new(error),
                left: what,
                cleanup: Box::new(cleanup),
            }),
        }
    }

    /// Drops what a failed reconcile created: the database only while it holds no object.
    async fn remove_created(&self, dbn: &str, created: &Created) -> Result<(), PgError> {
        if created.database {
            let contents = self.contents(dbn).await?;
            if !contents.is_empty() {
                return Err(PgError::Server {
                    what: "remove the database",
                    message: format!("database {dbn} already holds {contents}"),
                });
            }
            self.admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {}", ident(dbn)))
                .await
                .map_err(on_database(dbn, format!("DROP DATABASE {dbn}")))?;
        }
        for r in created.roles.iter().rev() {
            self.admin
                .batch_execute(&format!("DROP ROLE IF EXISTS {}", ident(r)))
                .await
                .map_err(on_role(r, format!("DROP ROLE {r}")))?;
        }
        Ok(())
    }

    async fn reconcile_with(
        &self,
        db: &Database,
        project: &str,
        password: &PasswordFn<'_>,
        created: &mut Created,
    ) -> Result<(), PgError> {
        let dbn = db.name.as_str();
        for role in &db.roles {
            let rn = role.name.as_str();
            let name = ident(rn);
            let exists = self
                .admin
                .query_opt(
                    "SELECT 1 FROM pg_roles WHERE rolname = $1",
                    &[&role.name.as_str()],
                )
                .await
                .map_err(on_role(rn, "look up role"))?
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
                .map_err(on_role(rn, format!("{verb} ROLE {rn}")))?;
            if !exists {
                created.roles.push(rn.to_string());
            }
            if let Some(pw) = &role.password {
                let (value, digest) = password(pw).map_err(|error| PgError::Secret {
                    role: rn.to_string(),
                    error,
                })?;
                // Only the SCRAM verifier, computed here, reaches the server: the password
                // never lands in its log (log_statement) or pg_stat_statements. The statement
                // is still never logged or put in an error.
                let verifier = scram_verifier(&value).map_err(|e| PgError::Role {
                    role: rn.to_string(),
                    what: format!("set the password of role {rn}"),
                    message: e.to_string(),
                })?;
                self.admin
                    .batch_execute(&format!(
                        "ALTER ROLE {name} PASSWORD {}",
                        literal(&verifier)
                    ))
                    .await
                    .map_err(|err| PgError::SetPassword {
                        role: rn.to_string(),
                        sqlstate: sqlstate(&err).unwrap_or_default(),
                    })?;
                self.admin
                    .batch_execute(&format!(
                        "COMMENT ON ROLE {name} IS {}",
                        literal(&format!("converge:pw={digest}"))
                    ))
                    .await
                    .map_err(on_role(rn, "comment on role"))?;
            }
            let current: Vec<String> = self
                .admin
                .query_one(
                    "SELECT ARRAY(SELECT b.rolname::text FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = $1)",
                    &[&role.name.as_str()],
                )
                .await
                .map_err(on_role(rn, "read memberships"))?
                .get(0);
            for m in role.member_of.iter().filter(|m| !current.contains(m)) {
                self.admin
                    .batch_execute(&format!("GRANT {} TO {name}", ident(m)))
                    .await
                    .map_err(on_role(rn, "grant membership"))?;
            }
            for m in current.iter().filter(|m| !role.member_of.contains(m)) {
                self.admin
                    .batch_execute(&format!("REVOKE {} FROM {name}", ident(m)))
                    .await
                    .map_err(on_role(rn, "revoke membership"))?;
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
            .map_err(on_database(dbn, "look up database"))?;
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
                    .map_err(on_database(dbn, format!("CREATE DATABASE {dbn}")))?;
                created.database = true;
            }
            Some(r) => {
                let owner: String = r.get(0);
                if let Some(o) = db.owner.as_deref().filter(|o| *o != owner) {
                    self.admin
                        .batch_execute(&format!("ALTER DATABASE {dbname} OWNER TO {}", ident(o)))
                        .await
                        .map_err(on_database(dbn, "change owner"))?;
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
            .map_err(on_database(dbn, "comment on database"))?;
        let conn = self.connect_db(dbn).await?;
        for ext in &db.extensions {
            conn.batch_execute(&format!("CREATE EXTENSION IF NOT EXISTS {}", ident(ext)))
                .await
                .map_err(on_database(dbn, format!("CREATE EXTENSION {ext}")))?;
        }
        self.apply_grants_on(&conn, db, true).await?;
        Ok(())
    }

    /// Grants and revokes so that each declared grant holds exactly its privileges.
    pub async fn apply_grants(&self, db: &Database) -> Result<(), PgError> {
        let conn = self.connect_db(db.name.as_str()).await?;
        self.apply_grants_on(&conn, db, false).await
    }

    /// `skip_missing_schemas`: before migrations run, a schema they create does not exist yet;
    /// its grants are applied after them.
    async fn apply_grants_on(
        &self,
        conn: &Client,
        db: &Database,
        skip_missing_schemas: bool,
    ) -> Result<(), PgError> {
        let held = all_held(conn, db).await?;
        let schemas: BTreeSet<String> = conn
            .query("SELECT nspname::text FROM pg_namespace", &[])
            .await
            .map_err(server("list schemas"))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for role in &db.roles {
            for (i, g) in role.grants.iter().enumerate() {
                if g.on != GrantTarget::Database && !schemas.contains(&g.schema) {
                    if skip_missing_schemas {
                        continue;
                    }
                    return Err(PgError::MissingSchema {
                        schema: g.schema.clone(),
                        role: role.name.to_string(),
                    });
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
                        conn.batch_execute(&sql).await.map_err(|e| PgError::Grant {
                            role: role.name.to_string(),
                            verb,
                            target: g.on.as_str(),
                            message: message(&e),
                        })?;
                    }
                }
            }
        }
        Ok(())
    }
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
