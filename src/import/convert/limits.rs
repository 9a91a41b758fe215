//! Resources (limits, reservations, GPUs) and the size and duration values compose writes.

use super::*;

pub(super) fn resources(
    s: &Node,
    ctx: &mut Ctx,
    out: &mut Vec<(String, Yaml)>,
) -> Result<(), ImportError> {
    let deploy = s.get("deploy");
    let limits = deploy
        .and_then(|d| d.get("resources"))
        .and_then(|r| r.get("limits"));
    let cpus = limits.and_then(|l| l.get("cpus")).or_else(|| s.get("cpus"));
    let memory = limits
        .and_then(|l| l.get("memory"))
        .or_else(|| s.get("mem_limit"));
    let mut res = Vec::new();
    if let Some(c) = cpus {
        let v: f64 = c
            .as_str()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| invalid(&c.span, "cpus: expected a number".into()))?;
        res.push(("cpus".to_string(), Yaml::Float(v)));
    }
    if let Some(m) = memory {
        let bytes = parse_bytes(m.as_str().unwrap_or(""))
            .ok_or_else(|| invalid(&m.span, "memory: expected a size like 512m or 1g".into()))?;
        res.push(("memory".into(), size(bytes)));
    }
    if let Some(l) = limits.and_then(|l| l.get("pids")) {
        ctx.note(
            &l.span,
            Gap::Unsupported,
            "deploy.resources.limits.pids",
            "converge limits `resources.cpus` and `resources.memory` only",
        );
    }
    let reservations = deploy
        .and_then(|d| d.get("resources"))
        .and_then(|r| r.get("reservations"));
    for (k, v) in reservations.map(map_entries).unwrap_or_default() {
        if k == "devices" {
            gpus(v, ctx, &mut res);
        } else {
            ctx.note(
                &v.span,
                Gap::Unsupported,
                format!("deploy.resources.reservations.{k}"),
                "converge reserves nothing: the limit under `resources` is what the container gets",
            );
        }
    }
    if !res.is_empty() {
        out.push(("resources".into(), Yaml::Map(res)));
    }
    if let Some(d) = deploy {
        if let Some(r) = d.get("replicas") {
            let n: i64 = r
                .as_str()
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| invalid(&r.span, "replicas: expected a number".into()))?;
            out.push(("replicas".into(), Yaml::Int(n)));
        }
        for (k, v) in map_entries(d) {
            if !matches!(k.as_str(), "replicas" | "resources" | "restart_policy") {
                ctx.note(&v.span, Gap::Unsupported, format!("deploy.{k}"),
                    "converge deploys with `deploy.strategy` (recreate, rolling, blue-green) and places with `placement`");
            }
        }
    }
    Ok(())
}

/// `reservations.devices` with the gpu capability → `resources.gpus` (a count) or
/// `resources.gpu_devices` (ids).
pub(super) fn gpus(devices: &Node, ctx: &mut Ctx, res: &mut Vec<(String, Yaml)>) {
    let NodeValue::Seq(items) = &devices.value else {
        return;
    };
    for d in items {
        let ids: Vec<Yaml> = match d.get("device_ids").map(|n| &n.value) {
            Some(NodeValue::Seq(ids)) => {
                ids.iter().filter_map(Node::as_str).map(Yaml::str).collect()
            }
            _ => Vec::new(),
        };
        match d.get("count").and_then(Node::as_str) {
            _ if !ids.is_empty() => {
                if ctx.model.has("resources.gpu_devices") {
                    res.push(("gpu_devices".into(), Yaml::Seq(ids)));
                } else {
                    ctx.note(
                        &d.span,
                        Gap::NotYet,
                        "resources.gpu_devices",
                        "ask for a number of GPUs with `resources.gpus`",
                    );
                }
            }
            Some(n) if n.parse::<i64>().is_ok() => {
                res.push(("gpus".into(), Yaml::Int(n.parse().unwrap_or(0))))
            }
            _ => ctx.note(
                &d.span,
                Gap::Unsupported,
                "deploy.resources.reservations.devices",
                "give a number of GPUs with `resources.gpus`",
            ),
        }
    }
}

/// Docker's sizes: `512m`, `1g`, `1.5gb`, bytes (binary units, any case).
pub(super) fn parse_bytes(t: &str) -> Option<u64> {
    let t = t.trim().to_ascii_lowercase();
    let digits = t
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .count();
    let n: f64 = t[..digits].parse().ok()?;
    let factor: u64 = match t[digits..].trim_end_matches('b') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return None,
    };
    Some((n * factor as f64).round() as u64)
}

/// Bytes as converge's Size: the largest binary unit that divides it, else bytes.
pub(super) fn size(bytes: u64) -> Yaml {
    for (unit, shift) in [("Ti", 40), ("Gi", 30), ("Mi", 20), ("Ki", 10)] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return Yaml::Str(format!("{}{unit}", bytes >> shift));
        }
    }
    Yaml::Int(bytes as i64)
}

/// Compose durations (`1m30s`, `1.5s`, `500ms`) → milliseconds.
pub(super) fn parse_millis(t: &str) -> Option<u64> {
    let mut rest = t.trim();
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .count();
        let value: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest.chars().take_while(|c| c.is_ascii_alphabetic()).count();
        let factor = match &rest[..u] {
            "h" => 3_600_000.0,
            "m" => 60_000.0,
            "s" => 1_000.0,
            "ms" => 1.0,
            "us" | "µs" => 0.001,
            "ns" => 0.000_001,
            _ => return None,
        };
        total += value * factor;
        rest = &rest[u..];
    }
    Some(total.round() as u64)
}

pub(super) fn duration(n: &Node) -> Result<Yaml, ImportError> {
    let ms = parse_millis(n.as_str().unwrap_or("")).ok_or_else(|| {
        invalid(
            &n.span,
            format!(
                "expected a duration like 10s or 1m30s, found `{}`",
                n.as_str().unwrap_or("")
            ),
        )
    })?;
    Ok(Yaml::Str(millis_text(ms)))
}

pub(super) fn millis_text(ms: u64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut rest = ms;
    let mut s = String::new();
    for (f, u) in [(3_600_000, "h"), (60_000, "m"), (1_000, "s"), (1, "ms")] {
        if rest >= f {
            s.push_str(&format!("{}{u}", rest / f));
            rest %= f;
        }
    }
    s
}
