//! Row counts of a database copy. A backup counts the rows of every table in the snapshot its
//! dump reads (`Counting`: `pg_dump --snapshot`, the counts taken while the dump runs), so the
//! manifest records exactly what the copy holds; a restore compares the restored database's
//! counts with the manifest's (`compare`, `check_restored`).

use std::collections::BTreeMap;
use std::fmt;
use std::process::Command;

use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use super::manifest::Manifest;
use super::{BackupError, Tools};
use crate::model::Backup;
use crate::providers::postgres::{PgError, Snapshot};

/// Rows by qualified table name (`public.items`).
pub type Rows = BTreeMap<String, i64>;

/// A table whose restored count is not the manifest's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub table: String,
    pub expected: i64,
    /// None: the restored database has no such table.
    pub found: Option<i64>,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (table, expected) = (&self.table, grouped(self.expected));
        match self.found {
            Some(n) => write!(
                f,
                "{table}: the copy's manifest records {expected} row(s), the restored table holds {}",
                grouped(n)
            ),
            None => write!(
                f,
                "{table}: the copy's manifest records {expected} row(s), the restored database has no such table"
            ),
        }
    }
}

/// Every table of `expected` whose count in `found` differs or is missing (tables `found` has
/// besides are not the copy's, and are not compared).
pub fn compare(expected: &Rows, found: &Rows) -> Vec<Mismatch> {
    expected
        .iter()
        .filter(|(table, n)| found.get(*table) != Some(n))
        .map(|(table, n)| Mismatch {
            table: table.clone(),
            expected: *n,
            found: found.get(table).copied(),
        })
        .collect()
}

/// The mismatches on one line, `; ` between them.
pub fn describe(mismatches: &[Mismatch]) -> String {
    let all: Vec<String> = mismatches.iter().map(Mismatch::to_string).collect();
    all.join("; ")
}

/// `1,234,567`.
pub fn grouped(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

/// `4 table(s), 1,234 row(s), every count matches the copy's manifest`.
pub fn matched(expected: &Rows) -> String {
    format!(
        "{} table(s), {} row(s), every count matches the copy's manifest",
        expected.len(),
        grouped(expected.values().sum())
    )
}

/// Counts the rows of database `db`, restored from the copy `m`, against its manifest's counts:
/// what matched (`matched`), or None when the manifest records no counts (before format 3).
pub fn check_restored(t: &Tools, m: &Manifest, db: &str) -> Result<Option<String>, BackupError> {
    if m.rows.is_none() {
        return Ok(None);
    }
    let pg = t.pg()?;
    let found =
        t.rt.block_on(pg.table_rows(db))
            .map_err(BackupError::postgres(db))?;
    against(m, db, &found)
}

/// `found`, the rows of database `db` restored from the copy `m`, against its manifest's counts:
/// what matched (`matched`), or None when the manifest records no counts (before format 3).
pub fn against(m: &Manifest, db: &str, found: &Rows) -> Result<Option<String>, BackupError> {
    let Some(expected) = &m.rows else {
        return Ok(None);
    };
    let mismatches = compare(expected, found);
    if !mismatches.is_empty() {
        return Err(BackupError::RowCounts {
            id: m.id.clone(),
            database: db.to_string(),
            detail: describe(&mismatches),
        });
    }
    Ok(Some(matched(expected)))
}

/// What verification says of `found`, the tables of a database restored from the copy `m`:
/// `4 table(s), 1,234 row(s), every count matches the copy's manifest`; for a manifest without
/// counts (before format 3), the tables and rows found. Err: the tables whose counts differ, or
/// that no table was restored.
pub fn verdict(m: &Manifest, found: &Rows) -> Result<String, String> {
    if found.is_empty() {
        return Err("the restored database holds no table".into());
    }
    let Some(expected) = &m.rows else {
        let rows: i64 = found.values().sum();
        let warning = if rows == 0 { " (warning: no rows)" } else { "" };
        return Ok(format!(
            "{} table(s), {} row(s){warning} (the copy's manifest (format {}) records no row counts: checked that tables exist and counted rows)",
            found.len(),
            grouped(rows),
            m.format_version
        ));
    };
    let mismatches = compare(expected, found);
    if !mismatches.is_empty() {
        return Err(format!(
            "the row counts differ from the manifest of {}: {}",
            m.id,
            describe(&mismatches)
        ));
    }
    Ok(matched(expected))
}

/// The rows of a database source, counted in the snapshot its dump reads, while the dump runs.
/// Until `finish`, the snapshot's transaction stays open; dropped, the counting stops and the
/// transaction ends.
pub(super) struct Counting {
    task: Option<JoinHandle<(Snapshot, Result<Rows, PgError>)>>,
    database: String,
}

/// For a database source: exports a snapshot of the database, points `dump` (pg_dump) at it and
/// starts counting its rows on the runtime. None for other sources.
pub(super) fn start(
    t: &Tools,
    b: &Backup,
    dump: &mut Command,
) -> Result<Option<Counting>, BackupError> {
    let Some(db) = &b.source.database else {
        return Ok(None);
    };
    let pg = t.pg()?;
    let snapshot =
        t.rt.block_on(pg.export_snapshot(db))
            .map_err(BackupError::postgres(db))?;
    dump.arg(format!("--snapshot={}", snapshot.id()));
    let task = t.rt.spawn(async move {
        let rows = snapshot.count_rows().await;
        (snapshot, rows)
    });
    Ok(Some(Counting {
        task: Some(task),
        database: db.clone(),
    }))
}

impl Counting {
    /// The counts, once the dump has finished with the snapshot; its transaction ends.
    pub(super) fn finish(mut self, rt: &Handle) -> Result<Rows, BackupError> {
        let task = self.task.take().expect("finished once");
        let database = self.database.clone();
        let (snapshot, rows) = rt.block_on(task).map_err(|e| {
            BackupError::postgres(&database)(format!("counting the rows of {database}: {e}"))
        })?;
        drop(snapshot);
        rows.map_err(BackupError::postgres(&database))
    }
}

impl Drop for Counting {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(pairs: &[(&str, i64)]) -> Rows {
        pairs.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    fn manifest(format_version: u32, rows: Option<Rows>) -> Manifest {
        Manifest {
            format_version,
            id: "db-20261128T143800Z".into(),
            backup: "db".into(),
            source: "database app".into(),
            compression: "zstd".into(),
            encryption: "none".into(),
            key_id: None,
            kdf: None,
            started_at: 0,
            finished_at: 0,
            raw_bytes: 0,
            stored_bytes: 0,
            sha256: String::new(),
            mac: None,
            rows,
        }
    }

    #[test]
    fn the_verdict_compares_the_manifests_counts_when_it_records_them() {
        let found = rows(&[("public.items", 1234), ("converge.schema_migrations", 3)]);
        let same = manifest(3, Some(found.clone()));
        assert_eq!(
            verdict(&same, &found).unwrap(),
            "2 table(s), 1,237 row(s), every count matches the copy's manifest"
        );
        let other = manifest(3, Some(rows(&[("public.items", 1235)])));
        let e = verdict(&other, &found).unwrap_err();
        assert_eq!(
            e,
            "the row counts differ from the manifest of db-20261128T143800Z: public.items: the copy's manifest records 1,235 row(s), the restored table holds 1,234"
        );
        assert_eq!(
            verdict(&same, &Rows::new()).unwrap_err(),
            "the restored database holds no table"
        );
        let older = manifest(2, None);
        assert_eq!(
            verdict(&older, &found).unwrap(),
            "2 table(s), 1,237 row(s) (the copy's manifest (format 2) records no row counts: checked that tables exist and counted rows)"
        );
        let empty = rows(&[("public.items", 0)]);
        assert!(verdict(&older, &empty)
            .unwrap()
            .starts_with("1 table(s), 0 row(s) (warning: no rows) ("));
    }

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1234), "1,234");
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(grouped(-1000), "-1,000");
    }

    #[test]
    fn every_table_of_the_manifest_is_compared_and_others_ignored() {
        let expected = rows(&[("public.items", 1234), ("public.tags", 5), ("public.x", 0)]);
        let same = rows(&[("public.items", 1234), ("public.tags", 5), ("public.x", 0)]);
        assert!(compare(&expected, &same).is_empty());
        assert_eq!(
            matched(&expected),
            "3 table(s), 1,239 row(s), every count matches the copy's manifest"
        );
        let mut extra = same.clone();
        extra.insert("public.new".into(), 7);
        assert!(
            compare(&expected, &extra).is_empty(),
            "not the copy's table"
        );
        let found = rows(&[("public.items", 1233), ("public.x", 0)]);
        let m = compare(&expected, &found);
        assert_eq!(
            m,
            vec![
                Mismatch {
                    table: "public.items".into(),
                    expected: 1234,
                    found: Some(1233)
                },
                Mismatch {
                    table: "public.tags".into(),
                    expected: 5,
                    found: None
                },
            ]
        );
        assert_eq!(
            describe(&m),
            "public.items: the copy's manifest records 1,234 row(s), the restored table holds 1,233; public.tags: the copy's manifest records 5 row(s), the restored database has no such table"
        );
    }
}
