//! The committed JSON Schemas under `schemas/` must match what `converge schema` generates.

#[test]
fn committed_schemas_match_the_model() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let mut stale = Vec::new();
    for (name, text) in converge::schema::files() {
        let committed = std::fs::read_to_string(dir.join(&name)).unwrap_or_default();
        if committed != text {
            stale.push(name);
        }
    }
    assert!(
        stale.is_empty(),
        "schemas out of date: {stale:?}; run `cargo run -- schema --out schemas` and commit the result"
    );
}

#[test]
fn every_kind_schema_requires_its_kind_and_rejects_unknown_fields() {
    for (kind, schema) in converge::schema::per_kind() {
        assert_eq!(schema["properties"]["kind"]["const"], kind.as_str());
        assert_eq!(schema["required"][0], "kind", "{kind}");
        assert_eq!(schema["additionalProperties"], false, "{kind}");
    }
}

#[test]
fn port_bindings_take_an_ip_address_colors_default_to_loopback() {
    let (_, service) = converge::schema::per_kind()
        .into_iter()
        .find(|(k, _)| *k == converge::model::Kind::Service)
        .unwrap();
    let defs = &service["definitions"];
    let color = &defs["ColorPort"]["properties"]["host_ip"];
    assert_eq!(color["default"], "127.0.0.1", "{color}");
    assert_eq!(color["allOf"][0]["$ref"], "#/definitions/HostIp", "{color}");
    let mapping = &defs["PortMapping"]["properties"]["host_ip"];
    assert_eq!(mapping["default"], serde_json::Value::Null, "{mapping}");
    assert_eq!(mapping["anyOf"][0]["$ref"], "#/definitions/HostIp");
    assert_eq!(
        defs["HostIp"]["anyOf"],
        serde_json::json!([{"format": "ipv4"}, {"format": "ipv6"}])
    );
    for required in [
        &defs["ColorPort"]["required"],
        &defs["PortMapping"]["required"],
    ] {
        assert!(
            !required.as_array().unwrap().contains(&"host_ip".into()),
            "{required}"
        );
    }
}
