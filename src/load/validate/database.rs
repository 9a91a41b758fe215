//! Database checks: roles, grants and extensions, and the migrations directory (file names,
//! versions, up/down pairs, checksums).

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

use super::{must_be_secret, span_at, Ctx};
use crate::load::diagnostic::Diagnostic;
use crate::load::yaml::{Node, Span};
use crate::model::attributes::hex;
use crate::model::database::Rollback;
use crate::model::{Database, MigrationFile};

pub(super) fn check_database(d: &Database, n: &Node, ctx: &mut Ctx) -> Option<Vec<MigrationFile>> {
    let mut names = BTreeSet::new();
    for (i, r) in d.roles.iter().enumerate() {
        let idx = i.to_string();
        if !names.insert(r.name.as_str()) {
            ctx.diags.push(Diagnostic::at(
                &span_at(n, &["roles", &idx, "name"]),
                format!("role `{}` is declared twice", r.name),
            ));
        }
        if let Some(p) = &r.password {
            must_be_secret(
                p,
                &span_at(n, &["roles", &idx, "password"]),
                "a role password",
                ctx,
            );
        }
        for (gi, g) in r.grants.iter().enumerate() {
            for p in &g.privileges {
                if *p != crate::model::database::Privilege::All
                    && !g.on.privileges().contains(&p.sql())
                {
                    ctx.diags.push(
                        Diagnostic::at(
                            &span_at(n, &["roles", &idx, "grants", &gi.to_string(), "privileges"]),
                            format!("privilege {} does not apply to {}", p.sql(), g.on.as_str()),
                        )
                        .hint(format!(
                            "{} takes: {}",
                            g.on.as_str(),
                            g.on.privileges().join(", ")
                        )),
                    );
                }
            }
        }
        if r.connection_limit < -1 {
            ctx.diags.push(Diagnostic::at(
                &span_at(n, &["roles", &idx, "connection_limit"]),
                "connection_limit must be -1 (unlimited) or more",
            ));
        }
    }
    for e in &d.extensions {
        if e.is_empty()
            || !e
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            ctx.diags.push(Diagnostic::at(
                &span_at(n, &["extensions"]),
                format!("invalid extension name `{e}`"),
            ));
        }
    }
    let m = d.migrations.as_ref()?;
    let span = span_at(n, &["migrations", "dir"]);
    if !ctx.tree.has_dir(&m.dir) {
        ctx.diags.push(
            Diagnostic::at(&span, format!("migrations directory `{}` not found", m.dir)).hint(
                format!(
                    "paths are relative to the desired-state directory ({})",
                    ctx.tree.root
                ),
            ),
        );
        return None;
    }
    let files = migrations(&m.dir, &span, ctx)?;
    let mut ok = check_sql(&files, ctx);
    if m.rollback == Rollback::DownFiles {
        let at = span_at(n, &["migrations", "rollback"]);
        for f in files.iter().filter(|f| f.down_path.is_none()) {
            ctx.diags.push(
                Diagnostic::at(
                    &at,
                    format!(
                        "`rollback: down-files` needs a down file for every migration; {} has none",
                        f.up_path
                    ),
                )
                .hint(format!(
                    "add `{}`, or set `rollback: none` (forward-only)",
                    f.up_path.replace(".up.sql", ".down.sql")
                )),
            );
            ok = false;
        }
    }
    ok.then_some(files)
}

/// Every up and down file must split into statements: a quote, dollar quote or comment left
/// open is an error at its line (converge runs some files statement by statement).
fn check_sql(files: &[MigrationFile], ctx: &mut Ctx) -> bool {
    let mut ok = true;
    for f in files {
        let down = f.down_path.as_deref().zip(f.down_sql.as_deref());
        for (path, sql) in std::iter::once((f.up_path.as_str(), f.up_sql.as_str())).chain(down) {
            if let Err(e) = crate::lint::check_sql(sql) {
                let span = Span::new(&std::sync::Arc::from(path), e.line, 1);
                ctx.diags.push(
                    Diagnostic::at(&span, format!("{path}: {e}"))
                        .hint("close it; converge splits migration files into statements"),
                );
                ok = false;
            }
        }
    }
    ok
}

fn migrations(dir: &str, span: &Span, ctx: &mut Ctx) -> Option<Vec<MigrationFile>> {
    let mut ups: BTreeMap<u64, MigrationFile> = BTreeMap::new();
    let mut downs: BTreeMap<u64, String> = BTreeMap::new();
    let mut ok = true;
    for path in ctx.tree.list_dir(dir) {
        let file = path.rsplit('/').next().unwrap_or(path);
        if !file.ends_with(".sql") {
            continue;
        }
        let Some((version, name, up)) = parse_migration_name(file) else {
            ctx.diags.push(
                Diagnostic::at(span, format!("migration file `{file}` is not named `NNNN_name.up.sql` or `NNNN_name.down.sql`"))
                    .hint("rename it, e.g. `0003_add_videos.up.sql`"),
            );
            ok = false;
            continue;
        };
        if !up {
            downs.insert(version, path.to_string());
            continue;
        }
        if let Some(prev) = ups.get(&version) {
            ctx.diags.push(Diagnostic::at(
                span,
                format!(
                    "migration version {version} is used twice: `{}` and `{path}`",
                    prev.up_path
                ),
            ));
            ok = false;
            continue;
        }
        let text = ctx
            .tree
            .files
            .get(path)
            .map(|b| b.as_slice())
            .unwrap_or_default();
        let sql = String::from_utf8_lossy(text).replace("\r\n", "\n");
        ups.insert(
            version,
            MigrationFile {
                version,
                name,
                up_path: path.to_string(),
                down_path: None,
                checksum: checksum(text),
                no_transaction: sql
                    .lines()
                    .next()
                    .is_some_and(|l| l.trim() == "-- converge:no-transaction"),
                up_sql: sql,
                down_sql: None,
            },
        );
    }
    for (version, path) in downs {
        match ups.get_mut(&version) {
            Some(m) => {
                let text = ctx
                    .tree
                    .files
                    .get(&path)
                    .map(|b| b.as_slice())
                    .unwrap_or_default();
                m.down_sql = Some(String::from_utf8_lossy(text).replace("\r\n", "\n"));
                m.down_path = Some(path);
            }
            None => {
                ctx.diags.push(Diagnostic::at(
                    span,
                    format!("`{path}` has no matching up migration"),
                ));
                ok = false;
            }
        }
    }
    ok.then(|| ups.into_values().collect())
}

/// `0001_create_videos.up.sql` → (1, "create_videos", true).
fn parse_migration_name(file: &str) -> Option<(u64, String, bool)> {
    let (stem, up) = if let Some(s) = file.strip_suffix(".up.sql") {
        (s, true)
    } else {
        (file.strip_suffix(".down.sql")?, false)
    };
    let (num, name) = stem.split_once('_')?;
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) || name.is_empty() {
        return None;
    }
    Some((num.parse().ok()?, name.to_string(), up))
}

/// sha256 with CRLF normalised to LF, so a checkout on Windows does not look like an edit.
pub fn checksum(bytes: &[u8]) -> String {
    let mut h = Sha256::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        h.update([bytes[i]]);
        i += 1;
    }
    hex(&h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migration_names_parse() {
        assert_eq!(
            parse_migration_name("0001_create.up.sql"),
            Some((1, "create".into(), true))
        );
        assert_eq!(
            parse_migration_name("0002_x.down.sql"),
            Some((2, "x".into(), false))
        );
        assert_eq!(parse_migration_name("create.up.sql"), None);
    }

    #[test]
    fn checksums_ignore_line_endings() {
        assert_eq!(checksum(b"a;\r\nb;\r\n"), checksum(b"a;\nb;\n"));
    }
}
