//! Serialising the imported resources as YAML, deterministically, and writing only the files
//! whose bytes changed.

use std::path::{Path, PathBuf};

use super::convert::Converted;
use super::ImportError;

/// A YAML value in the order it is written.
#[derive(Debug, Clone, PartialEq)]
pub enum Yaml {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Seq(Vec<Yaml>),
    Map(Vec<(String, Yaml)>),
}

impl Yaml {
    pub fn str(s: impl Into<String>) -> Yaml {
        Yaml::Str(s.into())
    }

    fn is_scalar(&self) -> bool {
        !matches!(self, Yaml::Seq(_) | Yaml::Map(_))
    }

    fn is_flat(&self) -> bool {
        match self {
            Yaml::Seq(items) => items.iter().all(Yaml::is_scalar),
            Yaml::Map(entries) => entries.iter().all(|(_, v)| v.is_scalar()),
            _ => true,
        }
    }
}

/// What happened to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Created,
    Updated,
    Unchanged,
    /// Written by an earlier import for a service the compose files no longer have.
    Stale,
}

impl Written {
    pub fn as_str(&self) -> &'static str {
        match self {
            Written::Created => "created",
            Written::Updated => "updated",
            Written::Unchanged => "unchanged",
            Written::Stale => "stale",
        }
    }
}

/// Writes `converge.yaml` and `services/<name>.yaml` under `out`.
pub fn write_all(
    out: &Path,
    c: &Converted,
    sources: &[String],
) -> Result<Vec<(PathBuf, Written)>, ImportError> {
    let from = sources.join(" + ");
    let mut files = vec![(
        PathBuf::from("converge.yaml"),
        document(&format!("The project imported from {from}."), &c.project),
    )];
    for (name, origin, service) in &c.services {
        files.push((
            PathBuf::from("services").join(format!("{name}.yaml")),
            document(
                &format!("Service {name}, imported from {from} ({origin})."),
                service,
            ),
        ));
    }
    let written: Vec<PathBuf> = files.iter().map(|(rel, _)| rel.clone()).collect();
    let mut outcome = files
        .into_iter()
        .map(|(rel, text)| write_if_changed(&out.join(&rel), &text).map(|w| (rel, w)))
        .collect::<Result<Vec<_>, _>>()?;
    outcome.extend(
        stale(out, &written)
            .into_iter()
            .map(|rel| (rel, Written::Stale)),
    );
    Ok(outcome)
}

/// Files an earlier import wrote for services no longer in the compose files: named, not deleted.
fn stale(out: &Path, written: &[PathBuf]) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(out.join("services")) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| PathBuf::from("services").join(e.file_name()))
        .filter(|rel| !written.contains(rel))
        .filter(|rel| {
            std::fs::read_to_string(out.join(rel))
                .is_ok_and(|t| t.lines().nth(1) == Some(WRITTEN_BY.trim_end()))
        })
        .collect();
    found.sort();
    found
}

const WRITTEN_BY: &str = "# Written by `converge import compose`; edit freely.\n";

fn document(comment: &str, body: &Yaml) -> String {
    let mut s = format!("# {comment}\n{WRITTEN_BY}");
    emit_block(&mut s, body, 0);
    s
}

fn write_if_changed(path: &Path, text: &str) -> Result<Written, ImportError> {
    let err = |source| ImportError::Write {
        path: path.to_path_buf(),
        source,
    };
    let outcome = match std::fs::read(path) {
        Ok(old) if old == text.as_bytes() => return Ok(Written::Unchanged),
        Ok(_) => Written::Updated,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Written::Created,
        Err(e) => return Err(err(e)),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let tmp = path.with_extension("yaml.tmp");
    std::fs::write(&tmp, text).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)?;
    Ok(outcome)
}

/// A mapping (or list) in block style, at `indent` spaces.
fn emit_block(s: &mut String, v: &Yaml, indent: usize) {
    let pad = " ".repeat(indent);
    match v {
        Yaml::Map(entries) => {
            for (k, val) in entries {
                s.push_str(&format!("{pad}{}:", key(k)));
                emit_value(s, val, indent);
            }
        }
        Yaml::Seq(items) => {
            for item in items {
                s.push_str(&format!("{pad}-"));
                match item {
                    Yaml::Map(e) if !item.is_flat() && !e.is_empty() => {
                        let mut inner = String::new();
                        emit_block(&mut inner, item, indent + 2);
                        s.push(' ');
                        s.push_str(inner.trim_start());
                    }
                    _ => {
                        s.push(' ');
                        s.push_str(&flow(item));
                        s.push('\n');
                    }
                }
            }
        }
        scalar => {
            s.push_str(&pad);
            s.push_str(&flow(scalar));
            s.push('\n');
        }
    }
}

/// The value after `key:`: inline when flat and short, else on the following lines.
fn emit_value(s: &mut String, v: &Yaml, indent: usize) {
    let inline = flow(v);
    let nested =
        matches!(v, Yaml::Map(e) if !e.is_empty()) || matches!(v, Yaml::Seq(i) if !i.is_empty());
    if !nested || (v.is_flat() && indent + inline.len() < 80 && !matches!(v, Yaml::Map(_))) {
        s.push(' ');
        s.push_str(&inline);
        s.push('\n');
    } else {
        s.push('\n');
        emit_block(s, v, indent + 2);
    }
}

/// Flow style: `{a: 1}`, `[x, y]`, scalars.
fn flow(v: &Yaml) -> String {
    match v {
        Yaml::Str(t) => string(t),
        Yaml::Int(n) => n.to_string(),
        Yaml::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.1}"),
        Yaml::Float(f) => f.to_string(),
        Yaml::Bool(b) => b.to_string(),
        Yaml::Seq(items) => format!(
            "[{}]",
            items.iter().map(flow).collect::<Vec<_>>().join(", ")
        ),
        Yaml::Map(e) => format!(
            "{{{}}}",
            e.iter()
                .map(|(k, v)| format!("{}: {}", key(k), flow(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn key(k: &str) -> String {
    if is_plain(k) {
        k.to_string()
    } else {
        quoted(k)
    }
}

fn string(t: &str) -> String {
    if is_plain(t) {
        t.to_string()
    } else {
        quoted(t)
    }
}

/// JSON's escapes are YAML's double-quoted escapes.
fn quoted(t: &str) -> String {
    serde_json::to_string(t).unwrap_or_else(|_| format!("\"{t}\""))
}

/// Written without quotes only when YAML cannot read it as anything but this string.
fn is_plain(t: &str) -> bool {
    const RESERVED: [&str; 12] = [
        "true", "false", "yes", "no", "on", "off", "y", "n", "null", "~", "nan", "inf",
    ];
    let first_ok = t
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '/' || c == '_');
    let chars_ok = t.chars().all(|c| {
        c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | '@' | '+' | '=' | ':')
    });
    let plain = first_ok && chars_ok && !t.ends_with(':');
    (plain && !RESERVED.contains(&t.to_ascii_lowercase().as_str())) || is_quantity(t)
}

/// `10s`, `1m30s`, `512Mi`: digits and letters, ending in a letter (never a number to YAML).
fn is_quantity(t: &str) -> bool {
    t.starts_with(|c: char| c.is_ascii_digit())
        && t.ends_with(|c: char| c.is_ascii_alphabetic())
        && t.chars().all(|c| c.is_ascii_alphanumeric())
        && !t.to_ascii_lowercase().starts_with("0x")
        && !t.to_ascii_lowercase().starts_with("0o")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_yaml_would_retype_are_quoted() {
        for t in [
            "no", "ON", "123", "1.5", "", "a b", "${env:X}", "-x", "a: b", "#c", "0x1F", "1e3",
        ] {
            assert!(!is_plain(t), "{t}");
        }
        for t in [
            "postgres:16-alpine",
            "/var/lib/data",
            "web",
            "10s",
            "1m30s",
            "512Mi",
        ] {
            assert!(is_plain(t), "{t}");
        }
    }

    #[test]
    fn nested_values_are_emitted_in_block_style() {
        let v = Yaml::Map(vec![
            ("kind".into(), Yaml::str("Service")),
            (
                "command".into(),
                Yaml::Seq(vec![Yaml::str("sh"), Yaml::str("-c"), Yaml::str("echo hi")]),
            ),
            ("env".into(), Yaml::Map(vec![("A".into(), Yaml::str("1"))])),
            (
                "ports".into(),
                Yaml::Seq(vec![Yaml::Map(vec![("container".into(), Yaml::Int(80))])]),
            ),
            (
                "health".into(),
                Yaml::Map(vec![
                    ("command".into(), Yaml::Seq(vec![Yaml::str("true")])),
                    ("retries".into(), Yaml::Int(3)),
                ]),
            ),
            (
                "resources".into(),
                Yaml::Map(vec![("cpus".into(), Yaml::Float(1.0))]),
            ),
        ]);
        let mut s = String::new();
        emit_block(&mut s, &v, 0);
        assert_eq!(
            s,
            "kind: Service\ncommand: [sh, \"-c\", \"echo hi\"]\nenv:\n  A: \"1\"\nports:\n  - {container: 80}\nhealth:\n  command: [\"true\"]\n  retries: 3\nresources:\n  cpus: 1.0\n"
        );
    }
}
