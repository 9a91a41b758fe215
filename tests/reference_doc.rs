//! `docs/reference.md` against the JSON Schema the binary prints: every kind and every field of
//! the schema has its row in the reference, and the reference lists nothing the schema lacks.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

const REFERENCE: &str = include_str!("../docs/reference.md");
const README: &str = include_str!("../README.md");

/// Every field path of one kind's schema: `deploy.blue.port`, `ports[].host`, `check.http.url`.
fn schema_fields(schema: &Value) -> BTreeSet<String> {
    let defs = schema.get("definitions").cloned().unwrap_or(Value::Null);
    let mut out = BTreeSet::new();
    properties(schema, &defs, "", &BTreeSet::new(), &mut out);
    out
}

fn properties(
    object: &Value,
    defs: &Value,
    prefix: &str,
    seen: &BTreeSet<String>,
    out: &mut BTreeSet<String>,
) {
    if let Some(props) = object.get("properties").and_then(Value::as_object) {
        for (name, prop) in props {
            let path = format!("{prefix}{name}");
            out.insert(path.clone());
            nested(prop, defs, &path, seen, out);
        }
    }
}

/// The fields under `path`, whose schema is `s`: through references, alternatives and lists.
fn nested(
    s: &Value,
    defs: &Value,
    path: &str,
    seen: &BTreeSet<String>,
    out: &mut BTreeSet<String>,
) {
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or(r).to_string();
        if seen.contains(&name) {
            return;
        }
        let def = defs
            .get(&name)
            .unwrap_or_else(|| panic!("{path}: no definition {name}"));
        let mut seen = seen.clone();
        seen.insert(name);
        nested(def, defs, path, &seen, out);
        return;
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        for branch in s.get(key).and_then(Value::as_array).into_iter().flatten() {
            nested(branch, defs, path, seen, out);
        }
    }
    if let Some(items) = s.get("items") {
        nested(items, defs, &format!("{path}[]"), seen, out);
    }
    if let Some(values) = s.get("additionalProperties").filter(|v| v.is_object()) {
        nested(values, defs, &format!("{path}.*"), seen, out);
    }
    properties(s, defs, &format!("{path}."), seen, out);
}

/// The kinds the reference documents (`## kind: Service`) and the fields in each one's table
/// (rows whose first cell is a backquoted path); a field listed twice is kept twice.
fn documented(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut kinds: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            current = heading.strip_prefix("kind: ").map(|k| k.trim().to_string());
            if let Some(k) = &current {
                assert!(!kinds.contains_key(k), "kind {k} has two sections");
                kinds.insert(k.clone(), Vec::new());
            }
            continue;
        }
        let (Some(kind), Some(row)) = (&current, line.strip_prefix("| `")) else {
            continue;
        };
        let field = row.split('`').next().unwrap_or_default().to_string();
        kinds.get_mut(kind).expect("section").push(field);
    }
    kinds
}

fn schema_kinds() -> BTreeMap<String, BTreeSet<String>> {
    converge::schema::per_kind()
        .into_iter()
        .map(|(kind, schema)| (kind.as_str().to_string(), schema_fields(&schema)))
        .collect()
}

#[test]
fn every_kind_of_the_schema_has_a_section_and_no_section_names_another() {
    let schema: BTreeSet<String> = schema_kinds().into_keys().collect();
    let doc: BTreeSet<String> = documented(REFERENCE).into_keys().collect();
    let missing: Vec<_> = schema.difference(&doc).collect();
    let unknown: Vec<_> = doc.difference(&schema).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "docs/reference.md: kinds missing (add a `## kind: NAME` section): {missing:?}; \
         sections for kinds the schema does not have: {unknown:?}"
    );
}

#[test]
fn every_field_of_the_schema_is_documented_and_no_other() {
    let doc = documented(REFERENCE);
    let mut problems = Vec::new();
    for (kind, fields) in schema_kinds() {
        let Some(rows) = doc.get(&kind) else { continue };
        let listed: BTreeSet<String> = rows.iter().cloned().collect();
        for f in fields.difference(&listed) {
            problems.push(format!(
                "{kind}: `{f}` is in the schema but not in the reference"
            ));
        }
        for f in listed.difference(&fields) {
            problems.push(format!(
                "{kind}: `{f}` is in the reference but not in the schema"
            ));
        }
        if listed.len() != rows.len() {
            problems.push(format!("{kind}: a field is listed twice"));
        }
    }
    assert!(
        problems.is_empty(),
        "docs/reference.md:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_field_row_gives_type_default_example_meaning_and_the_effect_of_a_change() {
    let mut current = None;
    for line in REFERENCE.lines() {
        if let Some(h) = line.strip_prefix("## ") {
            current = h.strip_prefix("kind: ");
            continue;
        }
        if current.is_none() || !line.starts_with("| `") {
            continue;
        }
        // `\|` inside a cell is text, not a column.
        let text = line.replace("\\|", "");
        let columns: Vec<&str> = text.split('|').map(str::trim).collect();
        // A leading and a trailing empty cell around the six columns.
        assert_eq!(columns.len(), 8, "{current:?}: {line}");
        for (name, cell) in ["type", "default", "example", "meaning", "change"]
            .iter()
            .zip(&columns[2..7])
        {
            assert!(!cell.is_empty(), "{current:?}: no {name} in {line}");
        }
    }
}

#[test]
fn the_schema_walk_finds_nested_list_and_alternative_fields() {
    let kinds = schema_kinds();
    let service = &kinds["Service"];
    for f in [
        "image",
        "deploy.blue.host_ip",
        "ports[].host",
        "scale.up[].metric",
        "health.http.port",
    ] {
        assert!(service.contains(f), "{f} not found in {service:?}");
    }
    // `check` is a command or `{http: …}`: the alternative's fields are fields too.
    assert!(kinds["Router"].contains("check.http.url"));
    assert!(kinds["Database"].contains("roles[].grants[].privileges"));
    assert!(
        !service.iter().any(|f| f.starts_with("env.")),
        "a map's keys are not fields"
    );
}

#[test]
fn the_readme_links_the_reference_and_nothing_outside_the_repository() {
    assert!(
        README.contains("(docs/reference.md)"),
        "README.md does not link docs/reference.md"
    );
    assert!(
        !README.contains("../shared/") && !REFERENCE.contains("../shared/"),
        "users get the repository only"
    );
}
