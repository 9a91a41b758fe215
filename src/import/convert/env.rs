//! A compose service's environment and env files: values carried over, secret ones written as `${env:…}` references.

use super::*;

pub(super) fn environment(
    s: &Node,
    ctx: &mut Ctx,
    out: &mut Vec<(String, Yaml)>,
) -> Result<(), ImportError> {
    let mut map = BTreeMap::new();
    if let Some(f) = s.get("env_file") {
        env_files(f, ctx, &mut map)?;
    }
    let empty = Node {
        value: NodeValue::Map(Vec::new()),
        span: s.span.clone(),
    };
    let env = s.get("environment").unwrap_or(&empty);
    for (k, v) in map_entries(env) {
        let secret = looks_secret(&k)
            || ctx.secrets.iter().any(|n| n.eq_ignore_ascii_case(&k))
            || v.as_str().is_some_and(has_url_password);
        let value = match &v.value {
            NodeValue::Null => {
                // Passed through from the shell at `up`: converge reads it when it applies.
                ctx.secret_vars.insert(k.clone());
                format!("${{env:{k}}}")
            }
            _ if secret => {
                let var = ctx.refs.get(&v.span).cloned().unwrap_or_else(|| k.clone());
                ctx.secret_vars.insert(var.clone());
                format!("${{env:{var}}}")
            }
            _ => {
                let text = v.as_str().unwrap_or("").to_string();
                if text.contains("${") {
                    ctx.note(&v.span, Gap::Unsupported, format!("environment.{k}"),
                        "the value holds a literal `${`, which converge reads as a secret reference: change the value");
                    continue;
                }
                text
            }
        };
        map.insert(k, Yaml::Str(value));
    }
    if !map.is_empty() {
        out.push(("env".into(), Yaml::Map(map.into_iter().collect())));
    }
    Ok(())
}

/// Compose's `env_file`s, copied under `env` as compose passes them to the container (a
/// converge `env_file` must lie inside the desired state, where these secrets do not belong):
/// secret-looking variables as `${env:NAME}`, never their values.
pub(super) fn env_files(
    f: &Node,
    ctx: &mut Ctx,
    map: &mut BTreeMap<String, Yaml>,
) -> Result<(), ImportError> {
    let NodeValue::Seq(items) = &f.value else {
        return Ok(());
    };
    for item in items {
        let Some(path) = item
            .as_str()
            .or_else(|| item.get("path").and_then(Node::as_str))
        else {
            continue;
        };
        let required = item.get("required").and_then(Node::as_str) != Some("false");
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(_) if !required => continue,
            Err(e) => return Err(invalid(&item.span, format!("env_file {path}: {e}"))),
        };
        let vars = crate::import::interpolate::parse_dotenv(&text);
        for (k, v) in &vars {
            let value = if looks_secret(k) || has_url_password(v) {
                ctx.secret_vars.insert(k.clone());
                format!("${{env:{k}}}")
            } else if v.contains("${") {
                continue;
            } else {
                v.clone()
            };
            map.insert(k.clone(), Yaml::Str(value));
        }
        ctx.note(
            &item.span,
            Gap::Differs,
            format!("env_file: {} ({} variable(s))", path.rsplit('/').next().unwrap_or(path), vars.len()),
            "its variables are copied under `env` (secret-looking ones as `${env:NAME}`); converge does not read the file",
        );
    }
    Ok(())
}
