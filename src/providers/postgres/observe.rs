//! Reading a project's databases into the live state: owners, encodings, roles (flags,
//! memberships, SCRAM-checked passwords), grants held, extensions and applied migrations.

use std::collections::{BTreeMap, BTreeSet};

use tokio_postgres::Client;

use super::{q, scram_matches, DbComment, PgError};
use crate::model::attributes::{role_flags, Attr, AttrValue};
use crate::model::live::{AppliedMigration, LiveResource, LiveState};
use crate::model::{Attributes, Database, DesiredState, Kind, Resource, ResourceId};

impl super::Postgres {
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
}

/// The privileges each declared grant holds, keyed by (role, grant index), in canonical order:
/// the role's own ACL entries (not PUBLIC's, not inherited). For all tables (or sequences,
/// functions) of a schema: held on every existing one and granted by default to future ones.
/// One query for the whole database.
pub(super) async fn all_held(
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
