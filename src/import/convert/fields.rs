//! The compose fields converge expresses one to one, or not yet, and a service's networks.

use super::*;

/// The fields issue 18 adds to converge's Service, written when the model has them.
pub(super) fn simple_pending(
    s: &Node,
    ctx: &mut Ctx,
    out: &mut Vec<(String, Yaml)>,
) -> Result<(), ImportError> {
    for (field, fallback) in [
        ("user", "set USER in the image"),
        ("working_dir", "set WORKDIR in the image"),
        ("stop_signal", "set STOPSIGNAL in the image"),
    ] {
        if let Some(v) = s.get(field) {
            ctx.pending(
                out,
                field,
                &v.span,
                Yaml::str(v.as_str().unwrap_or("")),
                fallback,
            );
        }
    }
    for field in ["read_only", "init"] {
        if let Some(v) = s.get(field) {
            let b = v.as_str() == Some("true");
            let fallback = if field == "init" {
                "converge runs every container with an init process"
            } else {
                "converge's containers have a writable root filesystem"
            };
            ctx.pending(out, field, &v.span, Yaml::Bool(b), fallback);
        }
    }
    if let Some(v) = s.get("stop_grace_period") {
        let d = duration(v)?;
        ctx.pending(
            out,
            "stop_grace_period",
            &v.span,
            d,
            "converge stops with the engine's default grace period (10s)",
        );
    }
    if let Some(v) = s.get("shm_size") {
        let b = parse_bytes(v.as_str().unwrap_or(""))
            .ok_or_else(|| invalid(&v.span, "shm_size: expected a size like 64m".into()))?;
        ctx.pending(
            out,
            "shm_size",
            &v.span,
            size(b),
            "mount a tmpfs volume at /dev/shm",
        );
    }
    for (field, fallback) in [
        ("labels", "converge labels its containers itself"),
        ("sysctls", "set them on the host"),
        ("extra_hosts", "add the names to a DNS the containers use"),
    ] {
        if let Some(v) = s.get(field) {
            ctx.pending(out, field, &v.span, string_map(v), fallback);
        }
    }
    for (field, fallback) in [
        ("cap_add", "run this container outside converge"),
        ("cap_drop", "the engine's default capabilities apply"),
        ("devices", "run this container outside converge"),
    ] {
        if let Some(v) = s.get(field) {
            let items = match &v.value {
                NodeValue::Seq(items) => items
                    .iter()
                    .filter_map(Node::as_str)
                    .map(Yaml::str)
                    .collect(),
                _ => Vec::new(),
            };
            ctx.pending(out, field, &v.span, Yaml::Seq(items), fallback);
        }
    }
    if let Some(v) = s.get("ulimits") {
        let mut m = Vec::new();
        for (k, l) in map_entries(v) {
            let val = match l.as_str() {
                Some(n) => Yaml::Int(
                    n.parse()
                        .map_err(|_| invalid(&l.span, "ulimit: expected a number".into()))?,
                ),
                None => {
                    let num = |key: &str| -> Result<Yaml, ImportError> {
                        Ok(Yaml::Int(
                            l.get(key)
                                .and_then(Node::as_str)
                                .and_then(|t| t.parse().ok())
                                .ok_or_else(|| {
                                    invalid(&l.span, format!("ulimit {k}: expected {key}"))
                                })?,
                        ))
                    };
                    Yaml::Map(vec![
                        ("soft".into(), num("soft")?),
                        ("hard".into(), num("hard")?),
                    ])
                }
            };
            m.push((k, val));
        }
        ctx.pending(
            out,
            "ulimits",
            &v.span,
            Yaml::Map(m),
            "raise the engine's default ulimits in daemon.json",
        );
    }
    if let Some(v) = s.get("logging") {
        let mut m = Vec::new();
        if let Some(d) = v.get("driver").and_then(Node::as_str) {
            m.push(("driver".to_string(), Yaml::str(d)));
        }
        if let Some(o) = v.get("options") {
            m.push(("options".into(), string_map(o)));
        }
        ctx.pending(
            out,
            "logging",
            &v.span,
            Yaml::Map(m),
            "set the logging driver in the engine's daemon.json",
        );
    }
    networks(s, ctx, out);
    if let Some(v) = s.get("expose") {
        ctx.note(
            &v.span,
            Gap::Differs,
            "expose",
            "not needed: services reach every port of each other on the project's network",
        );
    }
    if let Some(NodeValue::Seq(items)) = s.get("secrets").map(|v| &v.value) {
        for item in items {
            let name = item
                .as_str()
                .or_else(|| item.get("source").and_then(Node::as_str))
                .unwrap_or("");
            ctx.note(&item.span, Gap::Unsupported, format!("secrets: {name}"),
                format!("converge mounts no secret files: pass the value as `env: {{NAME: \"${{file:/run/secrets/{name}}}\"}}` or `${{env:…}}`, or bind-mount the file read-only"));
        }
    }
    Ok(())
}

pub(super) fn networks(s: &Node, ctx: &mut Ctx, out: &mut Vec<(String, Yaml)>) {
    let Some(n) = s.get("networks") else {
        return;
    };
    let list: Vec<(String, Vec<Yaml>)> = match &n.value {
        NodeValue::Seq(items) => items
            .iter()
            .filter_map(Node::as_str)
            .map(|x| (x.to_string(), Vec::new()))
            .collect(),
        NodeValue::Map(_) => map_entries(n)
            .into_iter()
            .map(|(k, v)| {
                let aliases = match v.get("aliases").map(|a| &a.value) {
                    Some(NodeValue::Seq(a)) => {
                        a.iter().filter_map(Node::as_str).map(Yaml::str).collect()
                    }
                    _ => Vec::new(),
                };
                (k, aliases)
            })
            .collect(),
        _ => Vec::new(),
    };
    // converge's `aliases` are the project network's (compose's `default`), its `networks` the
    // others.
    let mut others = Vec::new();
    for (name, aliases) in list {
        if name == "default" {
            if !aliases.is_empty() {
                ctx.pending(
                    out,
                    "aliases",
                    &n.span,
                    Yaml::Seq(aliases),
                    "other services reach it by its service name",
                );
            }
            continue;
        }
        let mut m = vec![("name".to_string(), Yaml::Str(name))];
        if !aliases.is_empty() {
            m.push(("aliases".into(), Yaml::Seq(aliases)));
        }
        others.push(Yaml::Map(m));
    }
    if !others.is_empty() {
        ctx.pending(out, "networks", &n.span, Yaml::Seq(others), "converge puts every service of the project on one network, where they reach each other by name");
    }
}
