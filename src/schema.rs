//! JSON Schema of every kind, generated from the model types, for editors and validation.

use schemars::{JsonSchema, Schema};
use serde_json::{json, Map, Value};

use crate::model::{
    Backup, Bucket, Budget, ConfigFile, Database, Environment, Kind, Notifier, Project, Router,
    Service,
};

fn kind_schema<T: JsonSchema>(kind: Kind) -> Value {
    let schema: Schema = schemars::generate::SchemaSettings::draft07()
        .into_generator()
        .into_root_schema_for::<T>();
    let mut v = schema.to_value();
    if let Some(obj) = v.as_object_mut() {
        obj.insert("title".into(), json!(kind.as_str()));
        if let Some(Value::Object(props)) = obj.get_mut("properties") {
            let mut with_kind = Map::new();
            with_kind.insert(
                "kind".into(),
                json!({"const": kind.as_str(), "description": "The kind of this document."}),
            );
            with_kind.extend(std::mem::take(props));
            *props = with_kind;
        }
        let required = obj.entry("required").or_insert_with(|| json!([]));
        if let Value::Array(req) = required {
            req.insert(0, json!("kind"));
        }
    }
    v
}

/// One schema per kind, in `Kind::ALL` order.
pub fn per_kind() -> Vec<(Kind, Value)> {
    Kind::ALL
        .iter()
        .filter_map(|&k| {
            let v = match k {
                Kind::Project => kind_schema::<Project>(k),
                Kind::Environment => kind_schema::<Environment>(k),
                Kind::Service => kind_schema::<Service>(k),
                Kind::Router => kind_schema::<Router>(k),
                Kind::ConfigFile => kind_schema::<ConfigFile>(k),
                Kind::Database => kind_schema::<Database>(k),
                Kind::Bucket => kind_schema::<Bucket>(k),
                Kind::Backup => kind_schema::<Backup>(k),
                Kind::Budget => kind_schema::<Budget>(k),
                Kind::Notifier => kind_schema::<Notifier>(k),
                Kind::Network | Kind::Volume => return None,
            };
            Some((k, v))
        })
        .collect()
}

/// A schema for any document: the kind's schema is chosen by `kind`.
pub fn combined() -> Value {
    let branches: Vec<Value> = per_kind()
        .into_iter()
        .map(|(k, _)| {
            json!({
                "if": {"properties": {"kind": {"const": k.as_str()}}, "required": ["kind"]},
                "then": {"$ref": format!("{}.schema.json", k.id_prefix())}
            })
        })
        .collect();
    let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "converge desired-state document",
        "type": "object",
        "required": ["kind", "name"],
        "properties": {"kind": {"enum": kinds}},
        "allOf": branches
    })
}

/// Every schema file: `converge.schema.json` and `<kind>.schema.json`, pretty-printed.
pub fn files() -> Vec<(String, String)> {
    let mut out = vec![("converge.schema.json".to_string(), pretty(&combined()))];
    for (k, v) in per_kind() {
        out.push((format!("{}.schema.json", k.id_prefix()), pretty(&v)));
    }
    out
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).expect("schema serializes");
    s.push('\n');
    s
}
