//! What a database holds besides PostgreSQL's own catalogs: tables, views, materialized views,
//! sequences, functions and types in its user schemas. "Empty" means none of these, so a
//! database of views or functions alone is not overwritten or dropped as empty.

use std::fmt;

use super::{server, PgError, Postgres};

/// Counts of user objects in one database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Contents {
    pub tables: i64,
    pub views: i64,
    pub materialized_views: i64,
    pub sequences: i64,
    pub functions: i64,
    pub types: i64,
}

impl Contents {
    pub fn is_empty(&self) -> bool {
        self.total() == 0
    }

    pub fn total(&self) -> i64 {
        self.tables
            + self.views
            + self.materialized_views
            + self.sequences
            + self.functions
            + self.types
    }
}

impl fmt::Display for Contents {
    /// `2 table(s), 1 view(s)`; `nothing` when empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = [
            (self.tables, "table(s)"),
            (self.views, "view(s)"),
            (self.materialized_views, "materialized view(s)"),
            (self.sequences, "sequence(s)"),
            (self.functions, "function(s)"),
            (self.types, "type(s)"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        if parts.is_empty() {
            return f.write_str("nothing");
        }
        f.write_str(&parts.join(", "))
    }
}

/// Schemas that are PostgreSQL's or converge's own, never user objects.
const SYSTEM: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema', 'converge') \
     AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'";

impl Postgres {
    /// What `name` holds in its user schemas (objects of extensions not counted).
    pub async fn contents(&self, name: &str) -> Result<Contents, PgError> {
        let conn = self.connect_db(name).await?;
        let not_extension = |catalog: &str, alias: &str| {
            format!("NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '{catalog}'::regclass AND d.objid = {alias}.oid AND d.deptype = 'e')")
        };
        let sql = format!(
            "SELECT \
               count(*) FILTER (WHERE c.relkind IN ('r', 'p')), \
               count(*) FILTER (WHERE c.relkind = 'v'), \
               count(*) FILTER (WHERE c.relkind = 'm'), \
               count(*) FILTER (WHERE c.relkind = 'S'), \
               (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {SYSTEM} AND {}), \
               (SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
                  WHERE {SYSTEM} AND t.typtype IN ('e', 'd', 'r', 'm') AND {}) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {SYSTEM} AND {}",
            not_extension("pg_proc", "p"),
            not_extension("pg_type", "t"),
            not_extension("pg_class", "c"),
        );
        let row = conn
            .query_one(sql.as_str(), &[])
            .await
            .map_err(server("count the database's objects"))?;
        Ok(Contents {
            tables: row.get(0),
            views: row.get(1),
            materialized_views: row.get(2),
            sequences: row.get(3),
            functions: row.get(4),
            types: row.get(5),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contents_name_only_what_there_is() {
        assert_eq!(Contents::default().to_string(), "nothing");
        let c = Contents {
            views: 2,
            functions: 1,
            ..Default::default()
        };
        assert!(!c.is_empty());
        assert_eq!(c.to_string(), "2 view(s), 1 function(s)");
    }
}
