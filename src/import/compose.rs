//! Reading compose files into one merged model: each file parsed with positions (so every
//! field keeps its file:line), interpolated, normalised (list forms as maps, relative paths made
//! absolute against the file's directory), its `extends` resolved, then the files merged as
//! compose merges them and the services outside the active profiles left out.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::interpolate::{interpolate, sole_variable, Vars};
use super::ImportError;
use crate::load::yaml::{parse_documents, Node, NodeValue, ScalarStyle, Span};

/// The top-level keys of the compose specification.
const TOP_LEVEL: [&str; 7] = [
    "version", "name", "services", "networks", "volumes", "secrets", "configs",
];

/// The files merged into one, with what the conversion needs to know about them.
#[derive(Debug)]
pub struct Compose {
    /// The merged top level (a mapping).
    pub root: Node,
    /// The services in the active profiles: name, where its key is, and its merged definition,
    /// in order of first appearance.
    pub services: Vec<Selected>,
    /// Services left out because of their profiles: (name, profiles).
    pub skipped: Vec<Skipped>,
    /// Scalars whose raw text was exactly one variable reference, by position: the variable.
    pub refs: HashMap<Span, String>,
}

/// A service kept: its name, where its key is, its merged definition.
pub type Selected = (String, Span, Node);
/// A service left out: its name and its profiles.
pub type Skipped = (String, Vec<String>);

/// Reads, interpolates, normalises and merges `files` (the first decides the project directory).
pub fn load(
    files: &[PathBuf],
    vars: &Vars,
    profiles: &BTreeSet<String>,
) -> Result<Compose, ImportError> {
    let mut refs = HashMap::new();
    let mut merged: Option<Node> = None;
    for file in files {
        let mut root = read_file(file, vars, &mut refs)?;
        resolve_extends(&mut root, file, vars, &mut refs, 0)?;
        merged = Some(match merged {
            None => root,
            Some(base) => merge(&base, &root, ""),
        });
    }
    let root = merged.ok_or_else(|| ImportError::Usage("no compose file given".into()))?;
    let (services, skipped) = select_profiles(&root, profiles);
    Ok(Compose {
        root,
        services,
        skipped,
        refs,
    })
}

/// One file: parsed, its top-level keys checked, interpolated and normalised.
fn read_file(
    file: &Path,
    vars: &Vars,
    refs: &mut HashMap<Span, String>,
) -> Result<Node, ImportError> {
    let text = std::fs::read_to_string(file).map_err(|source| ImportError::Read {
        path: file.to_path_buf(),
        source,
    })?;
    let label: Arc<str> = Arc::from(file.display().to_string());
    let docs = parse_documents(&label, &text).map_err(|e| ImportError::Syntax {
        at: e.span.clone(),
        message: e.message.clone(),
    })?;
    let Some(Some(mut root)) = docs.into_iter().next() else {
        return Ok(Node {
            value: NodeValue::Map(Vec::new()),
            span: Span::new(&label, 1, 1),
        });
    };
    check_top_level(&root)?;
    interpolate_node(&mut root, vars, refs)?;
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    if let Some(services) = get_mut(&mut root, "services") {
        if let NodeValue::Map(entries) = &mut services.value {
            for (_, service) in entries.iter_mut() {
                normalise_service(service, &dir);
            }
        }
    }
    Ok(root)
}

fn check_top_level(root: &Node) -> Result<(), ImportError> {
    let NodeValue::Map(entries) = &root.value else {
        return Err(ImportError::Invalid {
            at: root.span.clone(),
            message: format!("a compose file is a mapping, found {}", root.type_name()),
        });
    };
    for (k, _) in entries {
        let key = k.as_str().unwrap_or("");
        if !TOP_LEVEL.contains(&key) && !key.starts_with("x-") {
            return Err(ImportError::UnknownKey {
                at: k.span.clone(),
                key: key.to_string(),
                expected: TOP_LEVEL.join(", ") + " or x-*",
            });
        }
    }
    Ok(())
}

/// Interpolates every scalar value (not keys), remembering which were one variable.
fn interpolate_node(
    node: &mut Node,
    vars: &Vars,
    refs: &mut HashMap<Span, String>,
) -> Result<(), ImportError> {
    match &mut node.value {
        NodeValue::Scalar(text, _) => {
            if let Some(var) = sole_variable(text) {
                refs.insert(node.span.clone(), var);
            }
            *text = interpolate(text, vars).map_err(|error| ImportError::Interpolation {
                at: node.span.clone(),
                error,
            })?;
        }
        NodeValue::Seq(items) => {
            for item in items {
                interpolate_node(item, vars, refs)?;
            }
        }
        NodeValue::Map(entries) => {
            for (_, v) in entries {
                interpolate_node(v, vars, refs)?;
            }
        }
        NodeValue::Null => {}
    }
    Ok(())
}

/// List forms as maps (so files merge key by key) and relative host paths made absolute.
fn normalise_service(service: &mut Node, dir: &Path) {
    for key in ["environment", "labels", "extra_hosts", "sysctls"] {
        if let Some(n) = get_mut(service, key) {
            list_to_map(n, if key == "extra_hosts" { ':' } else { '=' });
        }
    }
    if let Some(n) = get_mut(service, "depends_on") {
        if let NodeValue::Seq(items) = &n.value {
            let entries = items
                .iter()
                .map(|i| {
                    (
                        i.clone(),
                        map_node(&i.span, vec![("condition", "service_started")]),
                    )
                })
                .collect();
            n.value = NodeValue::Map(entries);
        }
    }
    if let Some(NodeValue::Seq(items)) = get_mut(service, "volumes").map(|n| &mut n.value) {
        for item in items {
            absolutise_volume(item, dir);
        }
    }
    if let Some(build) = get_mut(service, "build") {
        match &mut build.value {
            NodeValue::Scalar(ctx, _) => *ctx = absolute_path(ctx, dir),
            NodeValue::Map(_) => {
                if let Some(NodeValue::Scalar(ctx, _)) =
                    get_mut(build, "context").map(|n| &mut n.value)
                {
                    *ctx = absolute_path(ctx, dir);
                }
            }
            _ => {}
        }
    }
    if let Some(env_file) = get_mut(service, "env_file") {
        if let NodeValue::Scalar(..) = env_file.value {
            env_file.value = NodeValue::Seq(vec![env_file.clone()]);
        }
        if let NodeValue::Seq(items) = &mut env_file.value {
            for item in items {
                match &mut item.value {
                    NodeValue::Scalar(p, _) => *p = absolute_path(p, dir),
                    NodeValue::Map(_) => {
                        if let Some(NodeValue::Scalar(p, _)) =
                            get_mut(item, "path").map(|n| &mut n.value)
                        {
                            *p = absolute_path(p, dir);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

/// `["A=1", "B"]` → `{A: "1", B: null}` (`sep` is `:` for extra_hosts).
fn list_to_map(n: &mut Node, sep: char) {
    let NodeValue::Seq(items) = &n.value else {
        return;
    };
    let entries = items
        .iter()
        .map(|i| {
            let text = i.as_str().unwrap_or("");
            let (k, v) = match text.split_once(sep) {
                Some((k, v)) => (k, Some(v)),
                None => (text, None),
            };
            let key = scalar(&i.span, k);
            let value = match v {
                Some(v) => scalar(&i.span, v),
                None => Node {
                    value: NodeValue::Null,
                    span: i.span.clone(),
                },
            };
            (key, value)
        })
        .collect();
    n.value = NodeValue::Map(entries);
}

fn absolutise_volume(item: &mut Node, dir: &Path) {
    match &mut item.value {
        NodeValue::Scalar(text, _) => {
            let parts: Vec<&str> = text.splitn(2, ':').collect();
            if parts.len() == 2 && is_host_path(parts[0]) {
                *text = format!("{}:{}", absolute_path(parts[0], dir), parts[1]);
            }
        }
        NodeValue::Map(_) => {
            let is_bind = item.get("type").and_then(Node::as_str) == Some("bind");
            if let Some(NodeValue::Scalar(src, _)) = get_mut(item, "source").map(|n| &mut n.value) {
                if is_bind || is_host_path(src) {
                    *src = absolute_path(src, dir);
                }
            }
        }
        _ => {}
    }
}

/// A volume source that is a host path rather than a volume name.
pub fn is_host_path(s: &str) -> bool {
    s.starts_with('.') || s.starts_with('/') || s.starts_with('~')
}

fn absolute_path(p: &str, dir: &Path) -> String {
    let path = if let Some(rest) = p.strip_prefix("~/") {
        PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(rest)
    } else {
        dir.join(p)
    };
    normalise_path(&path)
}

/// `a/./b/../c` → `a/c`, without touching the filesystem.
fn normalise_path(p: &Path) -> String {
    let mut parts: Vec<std::ffi::OsString> = Vec::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                if parts.len() > 1 {
                    parts.pop();
                }
            }
            other => parts.push(other.as_os_str().to_os_string()),
        }
    }
    let joined: PathBuf = parts.iter().collect();
    joined.display().to_string()
}

/// Replaces each service's `extends` by the service it names, merged under it.
fn resolve_extends(
    root: &mut Node,
    file: &Path,
    vars: &Vars,
    refs: &mut HashMap<Span, String>,
    depth: usize,
) -> Result<(), ImportError> {
    let snapshot = root.clone();
    let Some(services) = get_mut(root, "services") else {
        return Ok(());
    };
    let NodeValue::Map(entries) = &mut services.value else {
        return Ok(());
    };
    for (_, service) in entries.iter_mut() {
        let Some(ext) = service.get("extends").cloned() else {
            continue;
        };
        let base = extended_service(&ext, &snapshot, file, vars, refs, depth)?;
        let mut own = service.clone();
        remove_key(&mut own, "extends");
        *service = merge(&base, &own, "");
        service.span = own.span;
    }
    Ok(())
}

/// The service an `extends` names, its own `extends` resolved.
fn extended_service(
    ext: &Node,
    same_file: &Node,
    file: &Path,
    vars: &Vars,
    refs: &mut HashMap<Span, String>,
    depth: usize,
) -> Result<Node, ImportError> {
    if depth > 10 {
        return Err(ImportError::Invalid {
            at: ext.span.clone(),
            message: "`extends` nests deeper than 10 (a cycle?)".into(),
        });
    }
    let (name, other) = match &ext.value {
        NodeValue::Scalar(s, _) => (s.clone(), None),
        _ => (
            ext.get("service")
                .and_then(Node::as_str)
                .unwrap_or("")
                .to_string(),
            ext.get("file").and_then(Node::as_str).map(str::to_string),
        ),
    };
    let (root, base_file) = match other {
        Some(f) => {
            let path = file.parent().unwrap_or(Path::new("")).join(f);
            (read_file(&path, vars, refs)?, path)
        }
        None => (same_file.clone(), file.to_path_buf()),
    };
    let mut base = root
        .get("services")
        .and_then(|s| s.get(&name))
        .cloned()
        .ok_or_else(|| ImportError::Invalid {
            at: ext.span.clone(),
            message: format!(
                "`extends` names service `{name}`, which {} does not define",
                base_file.display()
            ),
        })?;
    if let Some(next) = base.get("extends").cloned() {
        let deeper = extended_service(&next, &root, &base_file, vars, refs, depth + 1)?;
        remove_key(&mut base, "extends");
        base = merge(&deeper, &base, "");
    }
    Ok(base)
}

/// Keys whose lists the later file replaces rather than extends.
const REPLACED_LISTS: [&str; 4] = ["command", "entrypoint", "test", "profiles"];

/// Merges `over` onto `base` as compose merges files: mappings key by key, `volumes` by
/// target, other lists appended without duplicates, `command`/`entrypoint`/`test` replaced.
pub fn merge(base: &Node, over: &Node, key: &str) -> Node {
    match (&base.value, &over.value) {
        (NodeValue::Map(b), NodeValue::Map(o)) => {
            let mut entries = b.clone();
            for (k, v) in o {
                match entries.iter_mut().find(|(bk, _)| bk.as_str() == k.as_str()) {
                    Some((_, bv)) => *bv = merge(bv, v, k.as_str().unwrap_or("")),
                    None => entries.push((k.clone(), v.clone())),
                }
            }
            Node {
                value: NodeValue::Map(entries),
                span: base.span.clone(),
            }
        }
        (NodeValue::Seq(b), NodeValue::Seq(o)) if !REPLACED_LISTS.contains(&key) => {
            let identity: fn(&Node) -> String = if key == "volumes" {
                volume_target
            } else {
                shape
            };
            let mut items: Vec<Node> = b
                .iter()
                .filter(|i| !o.iter().any(|x| identity(x) == identity(i)))
                .cloned()
                .collect();
            items.extend(o.iter().cloned());
            Node {
                value: NodeValue::Seq(items),
                span: base.span.clone(),
            }
        }
        _ => over.clone(),
    }
}

fn volume_target(n: &Node) -> String {
    match &n.value {
        NodeValue::Scalar(s, _) => {
            let parts: Vec<&str> = s.split(':').collect();
            parts.get(1).or(parts.first()).unwrap_or(&"").to_string()
        }
        _ => n
            .get("target")
            .and_then(Node::as_str)
            .unwrap_or("")
            .to_string(),
    }
}

/// A node's content without positions, to compare list items.
pub fn shape(n: &Node) -> String {
    match &n.value {
        NodeValue::Null => "~".into(),
        NodeValue::Scalar(s, _) => format!("{s:?}"),
        NodeValue::Seq(items) => format!(
            "[{}]",
            items.iter().map(shape).collect::<Vec<_>>().join(",")
        ),
        NodeValue::Map(e) => format!(
            "{{{}}}",
            e.iter()
                .map(|(k, v)| format!("{}:{}", shape(k), shape(v)))
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

/// The services whose `profiles` are empty or include an active profile; the rest, skipped.
fn select_profiles(root: &Node, active: &BTreeSet<String>) -> (Vec<Selected>, Vec<Skipped>) {
    let mut kept = Vec::new();
    let mut skipped = Vec::new();
    if let Some(NodeValue::Map(entries)) = root.get("services").map(|s| &s.value) {
        for (k, v) in entries {
            let name = k.as_str().unwrap_or("").to_string();
            let profiles: Vec<&str> = match v.get("profiles").map(|p| &p.value) {
                Some(NodeValue::Seq(items)) => items.iter().filter_map(Node::as_str).collect(),
                _ => Vec::new(),
            };
            if profiles.is_empty() || profiles.iter().any(|p| active.contains(*p)) {
                kept.push((name, k.span.clone(), v.clone()));
            } else {
                skipped.push((name, profiles.iter().map(|p| p.to_string()).collect()));
            }
        }
    }
    (kept, skipped)
}

pub fn get_mut<'a>(node: &'a mut Node, key: &str) -> Option<&'a mut Node> {
    match &mut node.value {
        NodeValue::Map(entries) => entries
            .iter_mut()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v),
        _ => None,
    }
}

fn remove_key(node: &mut Node, key: &str) {
    if let NodeValue::Map(entries) = &mut node.value {
        entries.retain(|(k, _)| k.as_str() != Some(key));
    }
}

fn scalar(span: &Span, text: &str) -> Node {
    Node {
        value: NodeValue::Scalar(text.to_string(), ScalarStyle::Quoted),
        span: span.clone(),
    }
}

fn map_node(span: &Span, pairs: Vec<(&str, &str)>) -> Node {
    Node {
        value: NodeValue::Map(
            pairs
                .into_iter()
                .map(|(k, v)| (scalar(span, k), scalar(span, v)))
                .collect(),
        ),
        span: span.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::yaml::parse_documents;

    fn node(text: &str) -> Node {
        let f: Arc<str> = Arc::from("t.yml");
        parse_documents(&f, text).unwrap().remove(0).unwrap()
    }

    #[test]
    fn later_files_merge_maps_and_replace_commands() {
        let a = node("services: {web: {image: a, command: [x], environment: {A: '1'}, ports: ['80:80'], volumes: ['d:/data', 'e:/e']}}");
        let b = node("services: {web: {command: [y], environment: {B: '2'}, ports: ['81:81'], volumes: ['f:/data']}}");
        let m = merge(&a, &b, "");
        let web = m.get("services").unwrap().get("web").unwrap();
        assert_eq!(shape(web.get("command").unwrap()), r#"["y"]"#);
        assert_eq!(
            shape(web.get("environment").unwrap()),
            r#"{"A":"1","B":"2"}"#
        );
        assert_eq!(shape(web.get("ports").unwrap()), r#"["80:80","81:81"]"#);
        assert_eq!(shape(web.get("volumes").unwrap()), r#"["e:/e","f:/data"]"#);
    }

    #[test]
    fn list_environments_become_maps() {
        let mut s = node("environment: [A=1, B]\ndepends_on: [db]");
        normalise_service(&mut s, Path::new("/p"));
        assert_eq!(shape(s.get("environment").unwrap()), r#"{"A":"1","B":~}"#);
        assert_eq!(
            shape(s.get("depends_on").unwrap()),
            r#"{"db":{"condition":"service_started"}}"#
        );
    }

    #[test]
    fn relative_binds_resolve_against_the_files_directory() {
        let mut s = node("volumes: ['./html:/usr/share/html:ro', 'data:/data', {type: bind, source: ../conf, target: /c}]");
        normalise_service(&mut s, Path::new("/srv/app"));
        assert_eq!(
            shape(s.get("volumes").unwrap()),
            r#"["/srv/app/html:/usr/share/html:ro","data:/data",{"type":"bind","source":"/srv/conf","target":"/c"}]"#
        );
    }
}
