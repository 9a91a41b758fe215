//! Lint rules: what is flagged on existing tables, what the same apply's new tables exempt.

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

fn one(sql: &str) -> Vec<(String, usize)> {
    rules(&[file("x", sql)])
}

#[test]
fn dangerous_statements_on_existing_tables_are_flagged_with_their_line() {
    let sql = "-- a comment; not a statement\nCREATE INDEX videos_title ON videos (title);\nALTER TABLE videos ADD COLUMN views bigint NOT NULL;\nALTER TABLE videos ALTER COLUMN title TYPE bigint;\nALTER TABLE videos DROP COLUMN status;\nALTER TABLE videos RENAME COLUMN title TO name;\nALTER TABLE videos ADD CONSTRAINT fk FOREIGN KEY (channel_id) REFERENCES channels (id);\nDROP TABLE old;\n";
    assert_eq!(
        one(sql),
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
    assert_eq!(one(sql), vec![]);
}

#[test]
fn an_index_on_a_table_created_earlier_in_the_apply_is_not_flagged_however_it_is_written() {
    let files = [
        file(
            "0001_a",
            "CREATE TABLE IF NOT EXISTS public.\"Videos\" (id int, title text);\nCREATE TABLE channels(id int);\n",
        ),
        file(
            "0002_b",
            "CREATE INDEX v_id ON \"Videos\"(id);\nCREATE INDEX v_title ON public.videos (title);\nCREATE UNIQUE INDEX IF NOT EXISTS c_id ON ONLY channels(id);\ncreate index c_lower on channels using btree (lower(id::text));\n",
        ),
    ];
    assert_eq!(rules(&files), vec![]);
    assert_eq!(
        one("CREATE INDEX v ON videos(title);"),
        vec![("index-without-concurrently".into(), 1)]
    );
}

#[test]
fn widening_a_varchar_or_making_it_text_is_not_a_rewrite() {
    for sql in [
        "ALTER TABLE videos ALTER COLUMN title TYPE varchar;",
        "ALTER TABLE videos ALTER COLUMN title TYPE varchar(200);",
        "ALTER TABLE videos ALTER title SET DATA TYPE text;",
        "ALTER TABLE videos ALTER COLUMN title TYPE character varying (300);",
    ] {
        assert_eq!(one(sql), vec![], "{sql}");
    }
    let known = "ALTER TABLE videos ADD COLUMN code varchar(20);\nALTER TABLE videos ALTER COLUMN code TYPE varchar(40);\nALTER TABLE videos ALTER COLUMN code TYPE varchar(10);\nALTER TABLE videos ALTER COLUMN code TYPE text USING trim(code);\nALTER TABLE videos ALTER COLUMN views TYPE bigint;\n";
    assert_eq!(
        one(known),
        vec![
            ("alter-column-type".into(), 3),
            ("alter-column-type".into(), 4),
            ("alter-column-type".into(), 5),
        ]
    );
}

#[test]
fn drop_index_without_concurrently_is_flagged_unless_its_table_is_new() {
    assert_eq!(
        one("DROP INDEX IF EXISTS videos_title;\nDROP INDEX CONCURRENTLY videos_views;\n"),
        vec![("drop-index-without-concurrently".into(), 1)]
    );
    let l = lint(
        &[&file("x", "DROP INDEX public.videos_title CASCADE;")],
        Duration::from_secs(5),
    );
    assert!(
        l[0].message.contains("the table of `videos_title`"),
        "{}",
        l[0]
    );
    let files = [
        file(
            "0001_a",
            "CREATE TABLE t (id int);\nCREATE INDEX t_id ON t (id);\n",
        ),
        file("0002_b", "DROP INDEX t_id;\n"),
    ];
    assert_eq!(rules(&files), vec![]);
    let on_existing = [
        file("0001_a", "CREATE INDEX CONCURRENTLY v_id ON videos (id);\n"),
        file("0002_b", "DROP INDEX v_id;\n"),
    ];
    assert_eq!(
        rules(&on_existing),
        vec![("drop-index-without-concurrently".into(), 1)]
    );
}

#[test]
fn set_not_null_on_an_existing_table_is_flagged_unless_a_validated_check_proves_it() {
    assert_eq!(
        one("ALTER TABLE videos ALTER COLUMN title SET NOT NULL;"),
        vec![("set-not-null".into(), 1)]
    );
    assert_eq!(
        one("CREATE TABLE t (a int);\nALTER TABLE t ALTER COLUMN a SET NOT NULL;"),
        vec![]
    );
    let safe = [
        file(
            "0001_a",
            "ALTER TABLE videos ADD CONSTRAINT title_nn CHECK (title IS NOT NULL) NOT VALID;\n",
        ),
        file(
            "0002_b",
            "ALTER TABLE videos VALIDATE CONSTRAINT title_nn;\nALTER TABLE videos ALTER COLUMN title SET NOT NULL;\n",
        ),
    ];
    assert_eq!(rules(&safe), vec![]);
    let other_column = [file(
        "0001_a",
        "ALTER TABLE videos ADD CONSTRAINT a_nn CHECK (a IS NOT NULL) NOT VALID;\nALTER TABLE videos VALIDATE CONSTRAINT a_nn;\nALTER TABLE videos ALTER COLUMN b SET NOT NULL;\n",
    )];
    assert_eq!(rules(&other_column), vec![("set-not-null".into(), 3)]);
}

#[test]
fn renames_drops_and_type_changes_of_tables_new_in_the_apply_are_not_flagged() {
    let sql = "CREATE TABLE t (a int, b int);\nALTER TABLE t RENAME COLUMN a TO c;\nALTER TABLE t ALTER COLUMN b TYPE bigint;\nALTER TABLE t DROP COLUMN b;\nALTER TABLE t RENAME TO u;\nCREATE INDEX u_c ON u (c);\nDROP TABLE u;\n";
    assert_eq!(one(sql), vec![]);
}

#[test]
fn down_files_are_linted_after_the_up_files_with_rollback_down_files() {
    let yaml = |rollback: &str| -> Database {
        serde_json::from_str(&format!(
            r#"{{"name": "app", "migrations": {{"dir": "m", "rollback": "{rollback}"}}}}"#
        ))
        .unwrap()
    };
    let mut f = file(
        "0001_a",
        "CREATE TABLE t (id int);\nALTER TABLE videos ADD COLUMN v int;\n",
    );
    f.down_path = Some("migrations/0001_a.down.sql".into());
    f.down_sql = Some("DROP TABLE t;\nALTER TABLE videos DROP COLUMN v;\n".into());
    let with = lint_database(&yaml("down-files"), &[&f]);
    assert_eq!(with.len(), 1, "{with:?}");
    assert_eq!(
        (with[0].file.as_str(), with[0].line, with[0].rule.as_str()),
        ("migrations/0001_a.down.sql", 2, "drop")
    );
    assert!(lint_database(&yaml("none"), &[&f]).is_empty());
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

#[test]
fn the_step_note_says_forward_only_and_names_files_with_their_own_transaction() {
    let db: Database =
        serde_json::from_str(r#"{"name": "app", "migrations": {"dir": "m"}}"#).unwrap();
    let mut f = file("000042_x", "BEGIN;\nCREATE TABLE a ();\nCOMMIT;\n");
    f.name = "x".into();
    f.version = 42;
    let r = Resource::Database(db);
    let note = migrate_step_note(Some(&r), &[&f]);
    assert!(!note.reversible);
    assert!(note.text.contains("forward-only"), "{}", note.text);
    assert!(
        note.text
            .contains("migrations/000042_x.up.sql:1 manages its own transaction"),
        "{}",
        note.text
    );
    assert_eq!(f.stem(), "000042_x");
}
