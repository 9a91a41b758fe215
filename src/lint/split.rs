//! Splitting migration SQL into statements (outside quotes, dollar quotes, comments and
//! `BEGIN ATOMIC … END` bodies), and finding the statements that control a transaction
//! (a file's own `BEGIN … COMMIT`). Pure: works on the SQL text.

use thiserror::Error;

/// One SQL statement, upper-cased with whitespace folded, and the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub line: usize,
    /// As written, trimmed.
    pub raw: String,
    /// Upper-cased, whitespace folded, comments dropped, dollar-quoted bodies as `$BODY$`.
    pub text: String,
}

/// SQL that cannot be split: a quote, dollar quote or comment that never ends.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {line}: {what} opened here is never closed")]
pub struct SplitError {
    pub line: usize,
    pub what: &'static str,
}

/// What a transaction-control statement does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxControl {
    /// `BEGIN`, `START TRANSACTION`.
    Begin,
    /// `COMMIT`, `END`.
    Commit,
    /// `ROLLBACK`, `ABORT`.
    Rollback,
}

/// The statements of `sql`, as written (for running them one by one outside a transaction).
pub fn split_statements(sql: &str) -> Vec<String> {
    statements(sql).into_iter().map(|s| s.raw).collect()
}

/// The statements of `sql`; an unterminated quote or comment ends the last one.
pub fn statements(sql: &str) -> Vec<Statement> {
    match parse(sql) {
        Ok(s) => s,
        Err((s, _)) => s,
    }
}

/// The statements of `sql`, or where a quote or comment is left open.
pub fn check(sql: &str) -> Result<Vec<Statement>, SplitError> {
    parse(sql).map_err(|(_, e)| e)
}

/// Whether a statement (its folded text) begins, commits or rolls back a transaction.
pub fn tx_control(text: &str) -> Option<TxControl> {
    let mut words = text.split_whitespace();
    let first = words.next()?;
    let second = words.next();
    match (first, second) {
        ("BEGIN", None | Some("WORK" | "TRANSACTION" | "ISOLATION" | "READ" | "DEFERRABLE"))
        | ("BEGIN", Some("NOT")) => Some(TxControl::Begin),
        ("START", Some("TRANSACTION")) => Some(TxControl::Begin),
        ("COMMIT" | "END", None | Some("WORK" | "TRANSACTION" | "AND")) => Some(TxControl::Commit),
        ("ROLLBACK" | "ABORT", None | Some("AND")) => Some(TxControl::Rollback),
        ("ROLLBACK" | "ABORT", Some("WORK" | "TRANSACTION")) => {
            (!text.contains(" TO ")).then_some(TxControl::Rollback)
        }
        _ => None,
    }
}

/// The line of the first top-level statement of `sql` that controls a transaction: the file
/// manages its own transaction, and converge must not wrap it in one.
pub fn own_transaction(sql: &str) -> Option<usize> {
    statements(sql)
        .into_iter()
        .find(|s| tx_control(&s.text).is_some())
        .map(|s| s.line)
}

type Parsed = Result<Vec<Statement>, (Vec<Statement>, SplitError)>;

fn parse(sql: &str) -> Parsed {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut raw = String::new();
    // Folded text since the last `;` inside a `BEGIN ATOMIC` body (its `END` closes it).
    let mut segment = String::new();
    let (mut line, mut start_line) = (1usize, 1usize);
    let mut open: Option<SplitError> = None;
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
                let opened = line;
                i += 2;
                while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                    if chars[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
                if i + 1 >= chars.len() {
                    open.get_or_insert(SplitError {
                        line: opened,
                        what: "a /* comment",
                    });
                }
                i += 2;
                continue;
            }
            '\'' | '"' => {
                let mut j = i + 1;
                while j < chars.len() && chars[j] != c {
                    j += 1;
                }
                if j >= chars.len() {
                    open.get_or_insert(SplitError {
                        line,
                        what: if c == '\'' {
                            "a quoted string"
                        } else {
                            "a quoted identifier"
                        },
                    });
                }
                let end = (j + 1).min(chars.len());
                line += chars[i + 1..end].iter().filter(|x| **x == '\n').count();
                cur.extend(&chars[i..end]);
                raw.extend(&chars[i..end]);
                segment.extend(&chars[i..end]);
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
                        && !chars.get(i + 1).is_some_and(|x| x.is_ascii_digit())
                });
                if let (true, Some(e)) = (is_tag, tag_end) {
                    let tag: Vec<char> = chars[i..=e].to_vec();
                    let mut k = e + 1;
                    while k < chars.len() && !chars[k..].starts_with(&tag) {
                        k += 1;
                    }
                    if k >= chars.len() {
                        open.get_or_insert(SplitError {
                            line,
                            what: "a dollar-quoted body",
                        });
                    }
                    let end = (k + tag.len()).min(chars.len());
                    raw.extend(&chars[i..end]);
                    line += chars[e + 1..end].iter().filter(|x| **x == '\n').count();
                    cur.push_str(" $BODY$ ");
                    segment.push_str(" $BODY$ ");
                    i = end;
                    continue;
                }
            }
            ';' => {
                let atomic = fold(&cur).contains(" BEGIN ATOMIC");
                if atomic && fold(&segment) != "END" {
                    // Inside a SQL-standard body: the `;` belongs to it.
                    cur.push(c);
                    raw.push(c);
                    segment.clear();
                    i += 1;
                    continue;
                }
                push(&mut out, &mut raw, &mut cur, start_line);
                segment.clear();
                i += 1;
                continue;
            }
            _ => {}
        }
        cur.push(c);
        raw.push(c);
        segment.push(c);
        i += 1;
    }
    push(&mut out, &mut raw, &mut cur, start_line);
    match open {
        None => Ok(out),
        Some(e) => Err((out, e)),
    }
}

fn fold(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_uppercase()
}

fn push(out: &mut Vec<Statement>, raw: &mut String, cur: &mut String, line: usize) {
    let text = fold(cur);
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_begin_atomic_body_is_one_statement_and_not_a_transaction() {
        let sql = "CREATE FUNCTION f() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT 1;\n  SELECT 2;\nEND;\nSELECT 3;\n";
        let s = statements(sql);
        assert_eq!(s.len(), 2, "{s:?}");
        assert_eq!(s[1].line, 6);
        assert_eq!(own_transaction(sql), None);
    }

    #[test]
    fn a_files_own_transaction_is_found_case_insensitively_outside_comments_and_strings() {
        assert_eq!(
            own_transaction(
                "-- BEGIN;\nselect 'COMMIT;';\n\nbegin;\ncreate table a ();\ncommit;\n"
            ),
            Some(4)
        );
        assert_eq!(
            own_transaction("START TRANSACTION ISOLATION LEVEL SERIALIZABLE;\nEND;"),
            Some(1)
        );
        assert_eq!(
            own_transaction("DO $$ BEGIN PERFORM 1; END $$;\n/* COMMIT; */ SELECT 1;"),
            None
        );
        assert_eq!(
            own_transaction("SAVEPOINT a; ROLLBACK TO SAVEPOINT a;"),
            None
        );
        assert_eq!(tx_control("BEGIN ATOMIC SELECT 1"), None);
        assert_eq!(tx_control("COMMIT PREPARED 'x'"), None);
        assert_eq!(tx_control("END"), Some(TxControl::Commit));
        assert_eq!(tx_control("ABORT"), Some(TxControl::Rollback));
    }

    #[test]
    fn an_unterminated_quote_or_comment_is_reported_with_its_line() {
        assert_eq!(
            check("SELECT 1;\nSELECT 'oops;\n"),
            Err(SplitError {
                line: 2,
                what: "a quoted string"
            })
        );
        assert_eq!(check("SELECT 1;\n/* never\nends").unwrap_err().line, 2);
        assert_eq!(
            check("DO $x$ BEGIN END").unwrap_err().what,
            "a dollar-quoted body"
        );
        assert!(check("SELECT $1, 'a''b';").is_ok());
    }
}
