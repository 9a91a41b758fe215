//! Lints for pending migrations: statements that lock or break a running application, each with
//! the file, the line and the safe (expand/contract) pattern. Pure: works on the SQL text.

use serde::{Deserialize, Serialize};

use crate::model::types::Duration;
use crate::model::MigrationFile;

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

/// One SQL statement, upper-cased with whitespace folded, and the line it starts on.
struct Statement {
    line: usize,
    /// As written, trimmed.
    raw: String,
    text: String,
}

/// The statements of `sql`, as written (for running them one by one outside a transaction).
pub fn split_statements(sql: &str) -> Vec<String> {
    statements(sql).into_iter().map(|s| s.raw).collect()
}

/// Splits SQL at `;` outside quotes, dollar quotes and comments.
fn statements(sql: &str) -> Vec<Statement> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut raw = String::new();
    let (mut line, mut start_line) = (1usize, 1usize);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if cur.trim().is_empty() && !c.is_whitespace() {
            start_line = line;
        }
        if c == '\n' {
            line += 1;
        }
        match c {
            '-' if chars.get(i + 1) == Some(&'-') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                    if chars[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
                i += 2;
                continue;
            }
            '\'' | '"' => {
                let mut j = i + 1;
                while j < chars.len() && chars[j] != c {
                    j += 1;
                }
                let end = (j + 1).min(chars.len());
                line += chars[i + 1..end].iter().filter(|x| **x == '\n').count();
                cur.extend(&chars[i..end]);
                raw.extend(&chars[i..end]);
                i = end;
                continue;
            }
            '$' => {
                let tag_end = chars[i + 1..]
                    .iter()
                    .position(|x| *x == '$')
                    .map(|p| i + 1 + p);
                let is_tag = tag_end.is_some_and(|e| {
                    chars[i + 1..e]
                        .iter()
                        .all(|x| x.is_alphanumeric() || *x == '_')
                });
                if let (true, Some(e)) = (is_tag, tag_end) {
                    let tag: Vec<char> = chars[i..=e].to_vec();
                    let mut k = e + 1;
                    while k < chars.len() && !chars[k..].starts_with(&tag) {
                        k += 1;
                    }
                    let end = (k + tag.len()).min(chars.len());
                    for x in &chars[i..end] {
                        raw.push(*x);
                    }
                    line += chars[e + 1..end].iter().filter(|x| **x == '\n').count();
                    cur.push_str(" $BODY$ ");
                    i = end;
                    continue;
                }
            }
            ';' => {
                push(&mut out, &mut raw, &mut cur, start_line);
                i += 1;
                continue;
            }
            _ => {}
        }
        cur.push(c);
        raw.push(c);
        i += 1;
    }
    push(&mut out, &mut raw, &mut cur, start_line);
    out
}

fn push(out: &mut Vec<Statement>, raw: &mut String, cur: &mut String, line: usize) {
    let text = cur
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_uppercase();
    if !text.is_empty() {
        out.push(Statement {
            line,
            raw: raw.trim().to_string(),
            text,
        });
    }
    cur.clear();
    raw.clear();
}

/// The table an `ALTER TABLE` / `CREATE INDEX … ON` names, lowercased, schema dropped.
fn table_after(text: &str, keyword: &str) -> Option<String> {
    let rest = &text[text.find(keyword)? + keyword.len()..];
    let mut words = rest
        .split_whitespace()
        .filter(|w| !matches!(*w, "ONLY" | "IF" | "EXISTS"));
    let name = words.next()?.trim_matches(|c| c == '(' || c == '"');
    Some(name.rsplit('.').next().unwrap_or(name).to_lowercase())
}

/// Lints for `pending` migrations (in order); tables they create themselves are new, not existing.
pub fn lint(pending: &[&MigrationFile], lock_timeout: Duration) -> Vec<Lint> {
    let mut created: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for m in pending {
        let mut warned_timeout = false;
        for s in statements(&m.up_sql) {
            let t = &s.text;
            let mut add = |rule: &str, message: String, fix: &str| {
                out.push(Lint {
                    file: m.up_path.clone(),
                    line: s.line,
                    rule: rule.into(),
                    message,
                    fix: fix.into(),
                })
            };
            let is_ddl =
                t.starts_with("ALTER ") || t.starts_with("CREATE ") || t.starts_with("DROP ");
            if is_ddl && lock_timeout.as_millis() == 0 && !warned_timeout {
                warned_timeout = true;
                add("missing-lock-timeout", "DDL runs without a lock_timeout: a blocked statement queues every query behind it".into(), "set `migrations.lock_timeout` (e.g. 5s)");
            }
            if t.starts_with("CREATE TABLE") {
                if let Some(name) = table_after(t, "CREATE TABLE") {
                    created.push(name);
                }
                continue;
            }
            let existing =
                |table: &Option<String>| table.as_ref().is_some_and(|n| !created.contains(n));
            if (t.starts_with("CREATE INDEX") || t.starts_with("CREATE UNIQUE INDEX"))
                && !t.contains(" CONCURRENTLY ")
            {
                let table = table_after(t, " ON ");
                if existing(&table) {
                    add(
                        "index-without-concurrently",
                        format!("CREATE INDEX without CONCURRENTLY blocks writes to `{}` while it builds", table.unwrap_or_default()),
                        "CREATE INDEX CONCURRENTLY, in a file whose first line is `-- converge:no-transaction`",
                    );
                }
            }
            if !t.starts_with("ALTER TABLE") {
                if t.starts_with("DROP TABLE") {
                    add("drop", "DROP TABLE breaks the version still running and loses data".into(), "contract later: drop it in a release after no deployed version uses it, with a backup");
                }
                continue;
            }
            let table = table_after(t, "ALTER TABLE");
            if t.contains(" ADD COLUMN ")
                && t.contains(" NOT NULL")
                && !t.contains(" DEFAULT ")
                && existing(&table)
            {
                add(
                    "add-column-not-null",
                    "ADD COLUMN … NOT NULL without a default fails on a non-empty table".into(),
                    "expand/contract: add the column nullable, backfill in batches, then SET NOT NULL (or give it a DEFAULT)",
                );
            }
            if (t.contains(" TYPE ") && t.contains(" ALTER COLUMN "))
                || t.contains(" SET DATA TYPE ")
            {
                add(
                    "alter-column-type",
                    "ALTER COLUMN … TYPE rewrites the table under an ACCESS EXCLUSIVE lock".into(),
                    "add a new column, backfill, switch readers, drop the old column later",
                );
            }
            if t.contains(" DROP COLUMN ") {
                add(
                    "drop",
                    "DROP COLUMN breaks the version still running".into(),
                    "contract later: drop it in a release after no deployed version reads it",
                );
            }
            if t.contains(" RENAME ") {
                add("rename", "RENAME breaks the version still running".into(), "expand/contract: add the new name, write both, switch readers, drop the old name later");
            }
            if t.contains(" ADD CONSTRAINT ")
                && (t.contains(" FOREIGN KEY") || t.contains(" CHECK"))
                && !t.contains(" NOT VALID")
                && existing(&table)
            {
                add(
                    "constraint-without-not-valid",
                    "ADD CONSTRAINT validates every row while holding a lock".into(),
                    "ADD CONSTRAINT … NOT VALID, then VALIDATE CONSTRAINT in a later migration",
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, sql: &str) -> MigrationFile {
        MigrationFile {
            version: 1,
            name: name.into(),
            up_path: format!("migrations/{name}.up.sql"),
            down_path: None,
            checksum: String::new(),
            up_sql: sql.into(),
            down_sql: None,
            no_transaction: false,
        }
    }

    fn rules(files: &[MigrationFile]) -> Vec<(String, usize)> {
        let refs: Vec<&MigrationFile> = files.iter().collect();
        lint(&refs, Duration::from_secs(5))
            .into_iter()
            .map(|l| (l.rule, l.line))
            .collect()
    }

    #[test]
    fn dangerous_statements_on_existing_tables_are_flagged_with_their_line() {
        let sql = "-- a comment; not a statement\nCREATE INDEX videos_title ON videos (title);\nALTER TABLE videos ADD COLUMN views bigint NOT NULL;\nALTER TABLE videos ALTER COLUMN title TYPE varchar(100);\nALTER TABLE videos DROP COLUMN status;\nALTER TABLE videos RENAME COLUMN title TO name;\nALTER TABLE videos ADD CONSTRAINT fk FOREIGN KEY (channel_id) REFERENCES channels (id);\nDROP TABLE old;\n";
        assert_eq!(
            rules(&[file("x", sql)]),
            vec![
                ("index-without-concurrently".into(), 2),
                ("add-column-not-null".into(), 3),
                ("alter-column-type".into(), 4),
                ("drop".into(), 5),
                ("rename".into(), 6),
                ("constraint-without-not-valid".into(), 7),
                ("drop".into(), 8),
            ]
        );
    }

    #[test]
    fn safe_patterns_and_new_tables_are_not_flagged() {
        let sql = "CREATE TABLE fresh (id int);\nCREATE INDEX fresh_id ON fresh (id);\nALTER TABLE fresh ADD COLUMN n int NOT NULL;\nALTER TABLE videos ADD COLUMN views bigint NOT NULL DEFAULT 0;\nALTER TABLE videos ADD CONSTRAINT fk FOREIGN KEY (c) REFERENCES channels (id) NOT VALID;\nCREATE INDEX CONCURRENTLY v ON videos (title);\nCREATE FUNCTION f() RETURNS int AS $$ SELECT 1; DROP TABLE nope; $$ LANGUAGE sql;\nINSERT INTO t VALUES ('a; DROP TABLE x');\n";
        assert_eq!(rules(&[file("y", sql)]), vec![]);
    }

    #[test]
    fn statements_split_outside_quotes_and_bodies() {
        let sql = "-- note; here\nCREATE INDEX CONCURRENTLY a ON t (x);\nINSERT INTO t VALUES ('a;b');\nCREATE FUNCTION f() RETURNS int AS $f$ SELECT 1; $f$ LANGUAGE sql";
        assert_eq!(
            split_statements(sql),
            vec![
                "CREATE INDEX CONCURRENTLY a ON t (x)".to_string(),
                "INSERT INTO t VALUES ('a;b')".to_string(),
                "CREATE FUNCTION f() RETURNS int AS $f$ SELECT 1; $f$ LANGUAGE sql".to_string(),
            ]
        );
    }

    #[test]
    fn a_zero_lock_timeout_is_flagged_once_per_file() {
        let f = file(
            "z",
            "ALTER TABLE a ADD COLUMN b int;\nALTER TABLE a ADD COLUMN c int;\n",
        );
        let l = lint(&[&f], Duration::from_secs(0));
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].rule, "missing-lock-timeout");
    }
}
