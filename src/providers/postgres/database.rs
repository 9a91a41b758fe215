//! Database steps: roles, the database, its extensions and grants made as declared; pending
//! migrations run (forward-only unless `rollback: down-files`), and undone with their down files;
//! a `pg_dump` before anything destructive.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::diff::Change;
use crate::model::database::Rollback;
use crate::model::{Database, MigrationFile, Resource, SecretDigest};
use crate::providers::postgres::{MigrateError, PgError, Postgres};
use crate::providers::{Context, Undo};
use crate::secrets::SecretError;

/// A down file kept with the step that ran its up file, so the step can be undone later.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DownFile {
    pub version: u64,
    pub name: String,
    pub path: String,
    pub sql: String,
}

/// Create or update: roles, database, extensions and grants as declared.
pub async fn reconcile(pg: &Postgres, ctx: &Context<'_>, db: &Database) -> Result<Undo, PgError> {
    let password = |p: &crate::model::types::SecretString| -> Result<_, SecretError> {
        let value = ctx.secrets.resolve(p)?;
        Ok((value, ctx.secrets.digest(p)))
    };
    pg.reconcile(db, ctx.desired.project.name.as_str(), &password)
        .await?;
    Ok(Undo::Nothing)
}

/// Runs the change's pending migrations. Forward-only by default: the undo is `Nothing`. With
/// `rollback: down-files` the undo runs their down files, after a `pg_dump` (in every
/// environment) whenever the database holds data.
pub async fn migrate(
    pg: &Postgres,
    ctx: &Context<'_>,
    db: &Database,
    change: Option<&Change>,
) -> Result<Undo, PgError> {
    let id = crate::model::ResourceId::new(crate::model::Kind::Database, db.name.as_str());
    let files = ctx
        .desired
        .migrations
        .get(&id)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let wanted: Vec<&MigrationFile> = files
        .iter()
        .filter(|f| change.is_some_and(|c| c.migrations.contains(&f.stem())))
        .collect();
    let dumps = dump_dir(ctx, db.name.as_str());
    let applied = pg.migrate(db, &wanted, &runner(), &dumps).await?;
    // Grants on schemas the migrations created can be given now.
    pg.apply_grants(db).await?;
    let ran: Vec<&&MigrationFile> = wanted
        .iter()
        .filter(|f| applied.contains(&f.version))
        .collect();
    let opted_in = db
        .migrations
        .as_ref()
        .is_some_and(|m| m.rollback == Rollback::DownFiles);
    if !opted_in || ran.is_empty() || !ran.iter().all(|f| f.down_sql.is_some()) {
        return Ok(Undo::Nothing);
    }
    Ok(Undo::MigrateDown {
        database: db.name.to_string(),
        files: ran
            .iter()
            .map(|f| DownFile {
                version: f.version,
                name: f.name.clone(),
                path: f.down_path.clone().unwrap_or_default(),
                sql: f.down_sql.clone().unwrap_or_default(),
            })
            .collect(),
        dump_to: Some(dumps.display().to_string()),
    })
}

/// Runs down files in reverse, after a `pg_dump` into `dump_to` when the database holds data
/// (journals of earlier versions recorded no `dump_to` outside prod: no dump then). A failed
/// dump means no down file runs.
pub async fn migrate_down(
    pg: &Postgres,
    database: &str,
    files: &[DownFile],
    dump_to: Option<&str>,
) -> Result<(), PgError> {
    if let Some(dir) = dump_to {
        if let Err(e) = pg.dump_if_data(database, Path::new(dir)).await {
            let names: Vec<String> = files.iter().map(|d| file_name(&d.path)).collect();
            return Err(MigrateError::UndoDumpFailed {
                dump: Box::new(e),
                migrations: names.join(", "),
            }
            .into());
        }
    }
    let as_files: Vec<MigrationFile> = files
        .iter()
        .map(|d| MigrationFile {
            version: d.version,
            name: d.name.clone(),
            up_path: String::new(),
            down_path: Some(d.path.clone()),
            checksum: String::new(),
            up_sql: String::new(),
            down_sql: Some(d.sql.clone()),
            no_transaction: false,
        })
        .collect();
    let refs: Vec<&MigrationFile> = as_files.iter().collect();
    pg.migrate_down(database, &refs).await
}

fn file_name(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_string()
}

/// Drops a database whose `prune: true` allowed it (its safety copy is taken first).
pub async fn drop(pg: &Postgres, name: &str) -> Result<Undo, PgError> {
    pg.drop_database(name).await?;
    Ok(Undo::Nothing)
}

/// The first `file://` destination of a Backup of `db`, else `<state-dir>/dumps`.
fn dump_dir(ctx: &Context<'_>, db: &str) -> PathBuf {
    for r in ctx.desired.resources.values() {
        if let Resource::Backup(b) = r {
            if b.source.database.as_deref() == Some(db) {
                if let Some(dir) = b
                    .destinations
                    .iter()
                    .find_map(|d| d.url.strip_prefix("file://"))
                {
                    return PathBuf::from(dir);
                }
            }
        }
    }
    ctx.state_dir.join("dumps")
}

/// `pg_dump -Fc` of `db` into `dir`; the password goes through the environment, never argv.
pub async fn dump(pg: &Postgres, db: &str, dir: &Path) -> Result<PathBuf, PgError> {
    // A dump holds the database's data: a directory converge creates is private (0700).
    if !dir.exists() {
        crate::state_dir::ensure(dir).map_err(|error| PgError::DumpDir {
            dir: dir.to_path_buf(),
            error,
        })?;
    }
    let file = dir.join(format!("{db}-{}-before-rollback.dump", crate::clock::now()));
    let mut cmd = tokio::process::Command::new("pg_dump");
    cmd.kill_on_drop(true)
        .args(["-Fc", "--lock-wait-timeout=60s"])
        .arg("-f")
        .arg(&file)
        .arg("-d")
        .arg(pg.dsn(db));
    if let Some(pw) = pg.password() {
        cmd.env("PGPASSWORD", pw);
    }
    let out = cmd.output().await.map_err(|error| PgError::DumpSpawn {
        database: db.to_string(),
        error,
    })?;
    if !out.status.success() {
        return Err(PgError::Dump {
            database: db.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600));
    }
    Ok(file)
}

/// Who applied a migration: `converge@<host>`.
fn runner() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    format!("converge@{host}")
}
