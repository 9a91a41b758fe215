//! depends_on, healthcheck and restart of a compose service.

use super::*;

pub(super) fn depends_on(s: &Node, ctx: &mut Ctx, out: &mut Vec<(String, Yaml)>) {
    let Some(d) = s.get("depends_on") else {
        return;
    };
    let mut names = Vec::new();
    for (name, spec) in map_entries(d) {
        if ctx.skipped.contains(&name) {
            ctx.note(&spec.span, Gap::Differs, format!("depends_on: {name}"),
                "that service is in a profile that was not selected: give its --profile, or drop the dependency");
            continue;
        }
        let condition = spec
            .get("condition")
            .and_then(Node::as_str)
            .unwrap_or("service_started");
        if condition == "service_completed_successfully" {
            ctx.note(&spec.span, Gap::Unsupported, format!("depends_on: {name} (condition: service_completed_successfully)"),
                "converge starts dependencies and waits for their health, not for them to exit: run the one-shot job as a Database migration or before apply");
        }
        names.push(Yaml::Str(name));
    }
    if !names.is_empty() {
        out.push(("depends_on".into(), Yaml::Seq(names)));
    }
}

pub(super) fn health(
    s: &Node,
    ctx: &mut Ctx,
    out: &mut Vec<(String, Yaml)>,
) -> Result<(), ImportError> {
    let Some(h) = s.get("healthcheck") else {
        return Ok(());
    };
    if h.get("disable").and_then(Node::as_str) == Some("true") {
        return Ok(());
    }
    let Some(test) = h.get("test") else {
        ctx.note(
            &h.span,
            Gap::Unsupported,
            "healthcheck without test",
            "converge cannot gate on the image's HEALTHCHECK: give `health.command`",
        );
        return Ok(());
    };
    let command: Vec<String> = match &test.value {
        NodeValue::Scalar(t, _) => vec!["/bin/sh".into(), "-c".into(), t.clone()],
        NodeValue::Seq(items) => {
            let words: Vec<String> = items
                .iter()
                .map(|i| i.as_str().unwrap_or("").to_string())
                .collect();
            match words.first().map(String::as_str) {
                Some("CMD") => words[1..].to_vec(),
                Some("CMD-SHELL") => vec!["/bin/sh".into(), "-c".into(), words[1..].join(" ")],
                Some("NONE") => return Ok(()),
                _ => {
                    return Err(invalid(
                        &test.span,
                        "healthcheck.test: a list starts with CMD, CMD-SHELL or NONE".into(),
                    ))
                }
            }
        }
        _ => {
            return Err(invalid(
                &test.span,
                "healthcheck.test: expected a string or a list".into(),
            ))
        }
    };
    let get_ms = |k: &str, default: u64| -> Result<u64, ImportError> {
        match h.get(k) {
            Some(n) => parse_millis(n.as_str().unwrap_or("")).ok_or_else(|| {
                invalid(
                    &n.span,
                    format!("healthcheck.{k}: expected a duration like 10s"),
                )
            }),
            None => Ok(default),
        }
    };
    let interval = get_ms("interval", 30_000)?.max(1);
    let timeout = get_ms("timeout", 30_000)?;
    let start = get_ms("start_period", 0)?;
    let retries: u64 = h
        .get("retries")
        .and_then(Node::as_str)
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let mut m = vec![
        (
            "command".to_string(),
            Yaml::Seq(command.into_iter().map(Yaml::Str).collect()),
        ),
        ("interval".into(), Yaml::Str(millis_text(interval))),
        ("timeout".into(), Yaml::Str(millis_text(timeout))),
    ];
    if start > 0 && ctx.model.has("health.start_period") {
        m.push(("start_period".into(), Yaml::Str(millis_text(start))));
        m.push(("retries".into(), Yaml::Int(retries as i64)));
    } else {
        // converge's retries bound the whole gate: cover the start period as compose does.
        m.push((
            "retries".into(),
            Yaml::Int((retries + start.div_ceil(interval)) as i64),
        ));
    }
    for (k, v) in map_entries(h) {
        if k == "start_interval" {
            ctx.note(
                &v.span,
                Gap::Unsupported,
                "healthcheck.start_interval",
                "converge probes at `interval` throughout",
            );
        }
    }
    out.push(("health".into(), Yaml::Map(m)));
    Ok(())
}

pub(super) fn restart(s: &Node, ctx: &mut Ctx, out: &mut Vec<(String, Yaml)>) {
    let policy = s.get("restart").or_else(|| {
        s.get("deploy")
            .and_then(|d| d.get("restart_policy"))
            .and_then(|r| r.get("condition"))
    });
    let Some(p) = policy else {
        return;
    };
    let text = p.as_str().unwrap_or("");
    let value = match text {
        "no" | "none" => "no",
        "always" | "any" => "always",
        "unless-stopped" => "unless-stopped",
        t if t.starts_with("on-failure") => {
            if t.contains(':') {
                ctx.note(
                    &p.span,
                    Gap::Unsupported,
                    format!("restart: {t}"),
                    "converge restarts on failure without a limit: `restart: on-failure`",
                );
            }
            "on-failure"
        }
        _ => {
            ctx.note(
                &p.span,
                Gap::Unsupported,
                format!("restart: {text}"),
                "use no, always, unless-stopped or on-failure",
            );
            return;
        }
    };
    out.push(("restart".into(), Yaml::str(value)));
}
