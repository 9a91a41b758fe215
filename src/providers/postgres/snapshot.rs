//! The rows of every user table, counted exactly: in a database as it is now (`table_rows`, what
//! verification compares a restored database with), or in an exported snapshot that `pg_dump
//! --snapshot` reads too (`Snapshot`), so a backup's counts are exactly what its dump holds.
//!
//! Every count is a `count(*)`: a full scan of the table (or of an index), as costly as reading
//! it, so a large database is read twice by a backup — once by the counts, once by the dump,
//! both at the same time.

use std::collections::BTreeMap;

use tokio_postgres::Client;

use super::{server, PgError, Postgres};

/// The tables whose rows are counted, by qualified name (`quote_ident` of schema and table):
/// ordinary tables (partitions included, their partitioned parents holding no rows of their own)
/// in user schemas — `converge`'s included, as `pg_dump` dumps it — and not an extension's.
const TABLES: &str = "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) \
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
       AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%' \
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
         AND d.objid = c.oid AND d.deptype = 'e') \
     ORDER BY 1";

/// The exact row count of every user table `client` sees (one `count(*)` per table).
pub(super) async fn count_tables(client: &Client) -> Result<BTreeMap<String, i64>, PgError> {
    let tables = client
        .query(TABLES, &[])
        .await
        .map_err(server("list tables"))?;
    let mut rows = BTreeMap::new();
    for t in &tables {
        let name: String = t.get(0);
        // `name` comes from the catalog, quoted by the server: never from a manifest.
        let n: i64 = client
            .query_one(&format!("SELECT count(*) FROM {name}"), &[])
            .await
            .map_err(server("count rows"))?
            .get(0);
        rows.insert(name, n);
    }
    Ok(rows)
}

/// An open `REPEATABLE READ, READ ONLY` transaction on one database and the id of the snapshot
/// it exported. The snapshot can be imported (`pg_dump --snapshot=<id>`) only while it stays
/// open: keep it until the dump has finished; dropping it closes the connection, which ends the
/// transaction.
pub struct Snapshot {
    client: Client,
    id: String,
}

impl Postgres {
    /// Begins the transaction on database `name` and exports its snapshot. Its session waits at
    /// most 60 s for a table's lock (as the dump does), and, as the dump's, no statement timeout
    /// stops a long count nor is it ended as idle in transaction while the dump runs.
    pub async fn export_snapshot(&self, name: &str) -> Result<Snapshot, PgError> {
        let client = self.connect_db(name).await?;
        client
            .batch_execute(
                "SET statement_timeout = 0; SET idle_in_transaction_session_timeout = 0; \
                 SET lock_timeout = '60s'; \
                 BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
            )
            .await
            .map_err(server("begin the backup's transaction"))?;
        let id: String = client
            .query_one("SELECT pg_export_snapshot()", &[])
            .await
            .map_err(server("export a snapshot"))?
            .get(0);
        Ok(Snapshot { client, id })
    }

    /// The exact row count of every user table of database `name`, as it is now.
    pub async fn table_rows(&self, name: &str) -> Result<BTreeMap<String, i64>, PgError> {
        count_tables(&self.connect_db(name).await?).await
    }
}

impl Snapshot {
    /// The id `pg_dump --snapshot` takes.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The exact row count of every user table in the snapshot: what a dump of it holds.
    pub async fn count_rows(&self) -> Result<BTreeMap<String, i64>, PgError> {
        count_tables(&self.client).await
    }
}
