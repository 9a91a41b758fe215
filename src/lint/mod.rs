//! Lints for pending migrations: statements that lock or break a running application, each with
//! the file, the line and the safe (expand/contract) pattern. Tables created earlier in the same
//! apply are new: nothing runs against them yet, so nothing on them is flagged. Pure: works on
//! the SQL text (`split` cuts it into statements, `names` reads names out of them).

mod names;
mod split;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::model::database::Rollback;
use crate::model::types::Duration;
use crate::model::{Database, MigrationFile, Resource};

pub use split::{check as check_sql, own_transaction, split_statements, tx_control};
pub use split::{SplitError, Statement, TxControl};

use names::{alter_table, find_word, name_after, qualified_name, top_level_items, type_name};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lint {
    pub file: String,
    pub line: usize,
    pub rule: String,
    pub message: String,
    pub fix: String,
}

impl std::fmt::Display for Lint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: {} ({}); safe pattern: {}",
            self.file, self.line, self.message, self.rule, self.fix
        )
    }
}

/// The statements of `sql` (for running them one by one outside a transaction).
pub fn statements(sql: &str) -> Vec<Statement> {
    split::statements(sql)
}

/// Lints for `pending` migrations (in order); tables they create themselves are new, not existing.
pub fn lint(pending: &[&MigrationFile], lock_timeout: Duration) -> Vec<Lint> {
    let mut apply = Apply::new(lock_timeout);
    for m in pending {
        apply.file(&m.up_path, &m.up_sql);
    }
    apply.out
}

/// Lints for the pending migrations of `db`: their up files, and with `rollback: down-files`
/// their down files too (in the order they would run: reverse, after every up file).
pub fn lint_database(db: &Database, pending: &[&MigrationFile]) -> Vec<Lint> {
    let Some(m) = db.migrations.as_ref() else {
        return Vec::new();
    };
    let mut apply = Apply::new(m.lock_timeout);
    for f in pending {
        apply.file(&f.up_path, &f.up_sql);
    }
    if m.rollback == Rollback::DownFiles {
        for f in pending.iter().rev() {
            if let (Some(path), Some(sql)) = (&f.down_path, &f.down_sql) {
                apply.file(path, sql);
            }
        }
    }
    apply.out
}

/// What the plan says about a migrate step: whether it can be undone, and a note for its detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepNote {
    pub reversible: bool,
    pub text: String,
}

/// The note for a step running `files` of `resource` (a Database): forward-only or undone with
/// down files, and which files manage their own transaction.
pub fn migrate_step_note(resource: Option<&Resource>, files: &[&MigrationFile]) -> StepNote {
    let rollback = match resource {
        Some(Resource::Database(db)) => db.migrations.as_ref().map(|m| m.rollback),
        _ => None,
    }
    .unwrap_or_default();
    let reversible = rollback == Rollback::DownFiles
        && !files.is_empty()
        && files.iter().all(|f| f.down_path.is_some());
    let mut text = match (rollback, reversible) {
        (Rollback::None, _) => {
            " (forward-only: a failure stops at the failed file; the earlier ones stay applied)"
                .to_string()
        }
        (Rollback::DownFiles, false) => {
            " (not every one has a down file: cannot be rolled back automatically)".to_string()
        }
        (Rollback::DownFiles, true) => String::new(),
    };
    for f in files {
        if let Some(line) = own_transaction(&f.up_sql) {
            text.push_str(&format!(
                "\n       warning: {}:{line} manages its own transaction: converge runs it without wrapping it, with session timeouts, and records it only after it succeeded",
                f.up_path
            ));
        }
    }
    StepNote { reversible, text }
}

/// What the statements of one apply have done so far, as far as the lints need to know.
struct Apply {
    lock_timeout: Duration,
    /// Tables created in this apply (lowercased, without schema).
    created: BTreeSet<String>,
    /// Indexes created in this apply → their table.
    indexes: BTreeMap<String, String>,
    /// Column types this apply set: (table, column) → type.
    columns: BTreeMap<(String, String), String>,
    /// `CHECK (c IS NOT NULL) NOT VALID` constraints → (table, column).
    not_null_checks: BTreeMap<String, (String, String)>,
    /// Columns a validated check proves not null.
    proven: BTreeSet<(String, String)>,
    /// Tables where a constraint this apply did not add was validated.
    validated_tables: BTreeSet<String>,
    out: Vec<Lint>,
}

impl Apply {
    fn new(lock_timeout: Duration) -> Apply {
        Apply {
            lock_timeout,
            created: BTreeSet::new(),
            indexes: BTreeMap::new(),
            columns: BTreeMap::new(),
            not_null_checks: BTreeMap::new(),
            proven: BTreeSet::new(),
            validated_tables: BTreeSet::new(),
            out: Vec::new(),
        }
    }

    fn existing(&self, table: &str) -> bool {
        !self.created.contains(table)
    }

    fn file(&mut self, path: &str, sql: &str) {
        let mut warned_timeout = false;
        for s in split::statements(sql) {
            let mut found: Vec<(&str, String, &str)> = Vec::new();
            let t = s.text.as_str();
            let is_ddl =
                t.starts_with("ALTER ") || t.starts_with("CREATE ") || t.starts_with("DROP ");
            if is_ddl && self.lock_timeout.as_millis() == 0 && !warned_timeout {
                warned_timeout = true;
                found.push(("missing-lock-timeout", "DDL runs without a lock_timeout: a blocked statement queues every query behind it".into(), "set `migrations.lock_timeout` (e.g. 5s)"));
            }
            self.statement(t, &mut found);
            for (rule, message, fix) in found {
                self.out.push(Lint {
                    file: path.to_string(),
                    line: s.line,
                    rule: rule.into(),
                    message,
                    fix: fix.into(),
                });
            }
        }
    }

    fn statement(&mut self, t: &str, found: &mut Vec<(&'static str, String, &'static str)>) {
        let concurrently = find_word(t, "CONCURRENTLY").is_some();
        if is_create_table(t) {
            if let Some(name) = name_after(t, "TABLE") {
                self.created.insert(name);
            }
        } else if t.starts_with("CREATE INDEX") || t.starts_with("CREATE UNIQUE INDEX") {
            let table = name_after(t, "ON");
            if let (Some(index), Some(table)) = (name_after(t, "INDEX"), &table) {
                if index != "on" {
                    self.indexes.insert(index, table.clone());
                }
            }
            if let Some(table) = table.filter(|t| self.existing(t)) {
                if !concurrently {
                    found.push((
                        "index-without-concurrently",
                        format!("CREATE INDEX without CONCURRENTLY blocks writes to `{table}` while it builds"),
                        "CREATE INDEX CONCURRENTLY, in a file whose first line is `-- converge:no-transaction`",
                    ));
                }
            }
        } else if let Some(rest) = t.strip_prefix("DROP INDEX") {
            let rest = skip_noise(rest);
            let on_existing = top_level_items(rest).iter().find_map(|item| {
                let (index, _) = qualified_name(item)?;
                match self.indexes.get(&index) {
                    Some(table) if !self.existing(table) => None,
                    Some(table) => Some(format!("`{table}`")),
                    None => Some(format!("the table of `{index}`")),
                }
            });
            if let (Some(table), false) = (on_existing, concurrently) {
                found.push((
                    "drop-index-without-concurrently",
                    format!("DROP INDEX without CONCURRENTLY takes an ACCESS EXCLUSIVE lock on {table}: reads and writes wait"),
                    "DROP INDEX CONCURRENTLY, in a file whose first line is `-- converge:no-transaction`",
                ));
            }
        } else if let Some(rest) = t.strip_prefix("DROP TABLE") {
            let existing = top_level_items(skip_noise(rest))
                .iter()
                .filter_map(|i| qualified_name(i).map(|(n, _)| n))
                .any(|n| self.existing(&n));
            if existing {
                found.push(("drop", "DROP TABLE breaks the version still running and loses data".into(), "contract later: drop it in a release after no deployed version uses it, with a backup"));
            }
        } else if let Some((table, actions)) = alter_table(t) {
            for a in actions {
                self.alter_action(&table, a, found);
            }
        }
    }

    fn alter_action(
        &mut self,
        table: &str,
        a: &str,
        found: &mut Vec<(&'static str, String, &'static str)>,
    ) {
        let existing = self.existing(table);
        let first = a.split_whitespace().next().unwrap_or_default();
        let rest = a[first.len()..].trim_start();
        match first {
            "RENAME" if rest.starts_with("CONSTRAINT") => {}
            "RENAME" => {
                if let (false, Some(to)) = (existing, rest.strip_prefix("TO ")) {
                    if let Some((new, _)) = qualified_name(to) {
                        self.created.insert(new);
                    }
                } else if existing {
                    found.push(("rename", "RENAME breaks the version still running".into(), "expand/contract: add the new name, write both, switch readers, drop the old name later"));
                }
            }
            "ADD" => self.add(table, rest, existing, found),
            "ALTER" => {
                let rest = rest.strip_prefix("COLUMN ").unwrap_or(rest);
                let Some((column, what)) = qualified_name(rest) else {
                    return;
                };
                let what = what.trim_start();
                let key = (table.to_string(), column);
                let target = what
                    .strip_prefix("SET DATA TYPE ")
                    .or_else(|| what.strip_prefix("TYPE "));
                if let Some(target) = target {
                    let new_type = type_name(target);
                    let using = find_word(what, "USING").is_some();
                    let source = self.columns.get(&key).map(String::as_str);
                    if existing && !rewrite_free(&new_type, source, using) {
                        found.push((
                            "alter-column-type",
                            "ALTER COLUMN … TYPE rewrites the table under an ACCESS EXCLUSIVE lock"
                                .into(),
                            "add a new column, backfill, switch readers, drop the old column later",
                        ));
                    }
                    self.columns.insert(key, new_type);
                } else if what.starts_with("SET NOT NULL") {
                    let proven =
                        self.proven.contains(&key) || self.validated_tables.contains(table);
                    if existing && !proven {
                        found.push((
                            "set-not-null",
                            format!("SET NOT NULL on `{}` scans the whole table under an ACCESS EXCLUSIVE lock", key.1),
                            "ADD CONSTRAINT … CHECK (column IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT it (in a later migration), then SET NOT NULL (no scan once a valid check proves it)",
                        ));
                    }
                }
            }
            "DROP" if existing && !rest.starts_with("CONSTRAINT") => {
                found.push((
                    "drop",
                    "DROP COLUMN breaks the version still running".into(),
                    "contract later: drop it in a release after no deployed version reads it",
                ));
            }
            "VALIDATE" => {
                let name = rest
                    .strip_prefix("CONSTRAINT")
                    .and_then(qualified_name)
                    .map(|(n, _)| n);
                match name.and_then(|n| self.not_null_checks.get(&n).cloned()) {
                    Some(key) => {
                        self.proven.insert(key);
                    }
                    None => {
                        self.validated_tables.insert(table.to_string());
                    }
                }
            }
            _ => {}
        }
    }

    /// `ALTER TABLE … ADD …`: a column or a constraint.
    fn add(
        &mut self,
        table: &str,
        rest: &str,
        existing: bool,
        found: &mut Vec<(&'static str, String, &'static str)>,
    ) {
        let word = rest.split_whitespace().next().unwrap_or_default();
        if matches!(
            word,
            "CONSTRAINT" | "PRIMARY" | "UNIQUE" | "FOREIGN" | "CHECK" | "EXCLUDE"
        ) {
            let not_valid = rest.contains(" NOT VALID");
            let checked =
                find_word(rest, "FOREIGN").is_some() || find_word(rest, "CHECK").is_some();
            if checked && !not_valid && existing {
                found.push((
                    "constraint-without-not-valid",
                    "ADD CONSTRAINT validates every row while holding a lock".into(),
                    "ADD CONSTRAINT … NOT VALID, then VALIDATE CONSTRAINT in a later migration",
                ));
            }
            if let (Some(name), Some(column)) = (
                rest.strip_prefix("CONSTRAINT")
                    .and_then(qualified_name)
                    .map(|(n, _)| n),
                not_null_check(rest),
            ) {
                self.not_null_checks
                    .insert(name, (table.to_string(), column));
            }
            return;
        }
        let rest = rest.strip_prefix("COLUMN").unwrap_or(rest).trim_start();
        let rest = rest.strip_prefix("IF NOT EXISTS").unwrap_or(rest);
        let Some((column, def)) = qualified_name(rest) else {
            return;
        };
        self.columns
            .insert((table.to_string(), column), type_name(def));
        if existing && def.contains(" NOT NULL") && find_word(def, "DEFAULT").is_none() {
            found.push((
                "add-column-not-null",
                "ADD COLUMN … NOT NULL without a default fails on a non-empty table".into(),
                "expand/contract: add the column nullable, backfill in batches, then SET NOT NULL (or give it a DEFAULT)",
            ));
        }
    }
}

/// `CREATE [GLOBAL|LOCAL] [TEMP|TEMPORARY|UNLOGGED] TABLE`.
fn is_create_table(t: &str) -> bool {
    let mut words = t.split_whitespace();
    if words.next() != Some("CREATE") {
        return false;
    }
    for w in words {
        match w {
            "TABLE" => return true,
            "GLOBAL" | "LOCAL" | "TEMP" | "TEMPORARY" | "UNLOGGED" => {}
            _ => return false,
        }
    }
    false
}

/// Skips `CONCURRENTLY` and `IF EXISTS` after `DROP INDEX` / `DROP TABLE`.
fn skip_noise(rest: &str) -> &str {
    let mut rest = rest.trim_start();
    for noise in ["CONCURRENTLY", "IF EXISTS"] {
        if let Some(r) = rest.strip_prefix(noise) {
            rest = r.trim_start();
        }
    }
    let rest = rest.strip_suffix(" CASCADE").unwrap_or(rest);
    rest.strip_suffix(" RESTRICT").unwrap_or(rest)
}

/// The column of `… CHECK (c IS NOT NULL) …`.
fn not_null_check(constraint: &str) -> Option<String> {
    let at = find_word(constraint, "CHECK")?;
    let inner = constraint[at + 5..].trim_start().strip_prefix('(')?;
    let inner = inner.trim_start().trim_start_matches('(');
    let (column, after) = qualified_name(inner)?;
    after
        .trim_start()
        .starts_with("IS NOT NULL")
        .then_some(column)
}

/// Whether changing a column to `target` keeps its storage (no rewrite): to `text` or an
/// unbounded `varchar` from a text type, or to `varchar(m)` from `varchar(n)` with m ≥ n. When the
/// column's type is unknown (set before this apply), a text target is taken as a widening of a
/// text column; a `USING` clause always rewrites.
fn rewrite_free(target: &str, source: Option<&str>, using: bool) -> bool {
    if using {
        return false;
    }
    match (text_family(target), source.map(text_family)) {
        (None, _) | (Some(_), Some(None)) => false,
        (Some(None), _) | (Some(Some(_)), None) => true,
        (Some(Some(m)), Some(Some(Some(n)))) => m >= n,
        (Some(Some(_)), Some(Some(None))) => false,
    }
}

/// `Some(None)`: text or unbounded varchar; `Some(Some(n))`: varchar(n); `None`: anything else.
fn text_family(t: &str) -> Option<Option<u32>> {
    let t = t.trim();
    if matches!(t, "TEXT" | "VARCHAR" | "CHARACTER VARYING") {
        return Some(None);
    }
    let inner = t
        .strip_prefix("VARCHAR(")
        .or_else(|| t.strip_prefix("CHARACTER VARYING("))?
        .strip_suffix(')')?;
    inner.trim().parse().ok().map(Some)
}

#[cfg(test)]
mod tests;
