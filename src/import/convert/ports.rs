//! Ports (short and long syntax, ranges) and volumes (named, bind, tmpfs) of a compose service.

use super::*;

/// Compose's port syntaxes → `{container, host, host_ip, protocol}` entries.
pub(super) fn ports(p: &Node) -> Result<Vec<Yaml>, ImportError> {
    let NodeValue::Seq(items) = &p.value else {
        return Err(invalid(&p.span, "`ports` is a list".into()));
    };
    let mut out = Vec::new();
    for item in items {
        let bad = |why: &str| {
            invalid(
                &item.span,
                format!("port `{}`: {why}", item.as_str().unwrap_or("…")),
            )
        };
        let (ip, host, container, proto) = match &item.value {
            NodeValue::Scalar(s, _) => {
                parse_port(s).ok_or_else(|| bad("expected [[IP:]HOST:]CONTAINER[/PROTOCOL]"))?
            }
            NodeValue::Map(_) => (
                item.get("host_ip")
                    .and_then(Node::as_str)
                    .map(str::to_string),
                item.get("published")
                    .and_then(Node::as_str)
                    .map(str::to_string),
                item.get("target")
                    .and_then(Node::as_str)
                    .unwrap_or("")
                    .to_string(),
                item.get("protocol")
                    .and_then(Node::as_str)
                    .unwrap_or("tcp")
                    .to_string(),
            ),
            _ => return Err(bad("expected a string or a mapping")),
        };
        let containers = range(&container).ok_or_else(|| bad("bad container port"))?;
        let hosts = match &host {
            Some(h) if !h.is_empty() => Some(range(h).ok_or_else(|| bad("bad host port"))?),
            _ => None,
        };
        if let Some(h) = &hosts {
            if h.len() != containers.len() {
                return Err(bad("host and container ranges differ in length"));
            }
        }
        for (i, c) in containers.iter().enumerate() {
            let mut m = vec![("container".to_string(), Yaml::Int(*c as i64))];
            if let Some(h) = &hosts {
                m.push(("host".into(), Yaml::Int(h[i] as i64)));
                if let Some(ip) = &ip {
                    m.push(("host_ip".into(), Yaml::str(ip.as_str())));
                }
            }
            if proto != "tcp" {
                m.push(("protocol".into(), Yaml::str(proto.as_str())));
            }
            out.push(Yaml::Map(m));
        }
    }
    Ok(out)
}

/// `"127.0.0.1:8080:80/udp"` → (ip, host, container, protocol).
pub(super) fn parse_port(s: &str) -> Option<(Option<String>, Option<String>, String, String)> {
    let (spec, proto) = match s.rsplit_once('/') {
        Some((a, p)) => (a, p.to_string()),
        None => (s, "tcp".to_string()),
    };
    let parts: Vec<&str> = spec.rsplitn(3, ':').collect();
    match parts.as_slice() {
        [c] => Some((None, None, c.to_string(), proto)),
        [c, h] => Some((None, Some(h.to_string()), c.to_string(), proto)),
        [c, h, ip] => Some((
            Some(ip.trim_matches(['[', ']']).to_string()),
            Some(h.to_string()),
            c.to_string(),
            proto,
        )),
        _ => None,
    }
}

pub(super) fn range(s: &str) -> Option<Vec<u16>> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let (a, b): (u16, u16) = (a.parse().ok()?, b.parse().ok()?);
    (a >= 1 && a <= b).then(|| (a..=b).collect())
}

pub(super) fn volumes(
    s: &Node,
    ctx: &mut Ctx,
    out: &mut Vec<(String, Yaml)>,
) -> Result<(), ImportError> {
    let mut mounts = Vec::new();
    let mut tmpfs: Vec<Yaml> = Vec::new();
    if let Some(NodeValue::Seq(items)) = s.get("volumes").map(|v| &v.value) {
        for item in items {
            let (kind, source, target, read_only) = match &item.value {
                NodeValue::Scalar(t, _) => {
                    let parts: Vec<&str> = t.split(':').collect();
                    match parts.as_slice() {
                        [target] => (
                            "volume".to_string(),
                            String::new(),
                            target.to_string(),
                            false,
                        ),
                        [src, target] | [src, target, _] => {
                            let ro = parts
                                .get(2)
                                .is_some_and(|m| m.split(',').any(|o| o == "ro"));
                            let kind = if is_host_path(src) { "bind" } else { "volume" };
                            (kind.to_string(), src.to_string(), target.to_string(), ro)
                        }
                        _ => {
                            return Err(invalid(
                                &item.span,
                                format!("volume `{t}`: expected SOURCE:TARGET[:MODE]"),
                            ))
                        }
                    }
                }
                NodeValue::Map(_) => {
                    let g = |k: &str| item.get(k).and_then(Node::as_str).unwrap_or("").to_string();
                    (
                        g("type"),
                        g("source"),
                        g("target"),
                        g("read_only") == "true",
                    )
                }
                _ => {
                    return Err(invalid(
                        &item.span,
                        "a volume is a string or a mapping".into(),
                    ))
                }
            };
            match kind.as_str() {
                "volume" | "bind" if !source.is_empty() => {
                    let mut m = vec![
                        ("source".to_string(), Yaml::Str(source)),
                        ("target".into(), Yaml::Str(target)),
                    ];
                    if read_only {
                        m.push(("read_only".into(), Yaml::Bool(true)));
                    }
                    mounts.push(Yaml::Map(m));
                }
                "volume" => ctx.note(
                    &item.span,
                    Gap::Unsupported,
                    format!("volumes: {target} (anonymous)"),
                    "name the volume (`data:/path`) so converge creates and keeps it",
                ),
                "tmpfs" => tmpfs.push(Yaml::Str(target)),
                other => ctx.note(
                    &item.span,
                    Gap::Unsupported,
                    format!("volumes: type {other}"),
                    "use a named volume or a bind mount",
                ),
            }
        }
    }
    if !mounts.is_empty() {
        out.push(("volumes".into(), Yaml::Seq(mounts)));
    }
    if let Some(t) = s.get("tmpfs") {
        match &t.value {
            NodeValue::Seq(items) => {
                tmpfs.extend(items.iter().filter_map(Node::as_str).map(Yaml::str))
            }
            NodeValue::Scalar(v, _) => tmpfs.push(Yaml::str(v.as_str())),
            _ => {}
        }
    }
    if !tmpfs.is_empty() {
        let at = s
            .get("tmpfs")
            .or_else(|| s.get("volumes"))
            .map(|n| n.span.clone())
            .unwrap_or(s.span.clone());
        ctx.pending(
            out,
            "tmpfs",
            &at,
            Yaml::Seq(tmpfs),
            "mount a named volume there instead",
        );
    }
    Ok(())
}
