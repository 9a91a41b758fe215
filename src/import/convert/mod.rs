//! Turning merged compose services into converge resources as typed data, and listing every
//! compose field converge cannot express (with file:line and a suggestion).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use super::compose::{is_host_path, Compose};
use super::write::Yaml;
use super::{Gap, ImportError, Note};
use crate::load::yaml::{Node, NodeValue, Span};

mod env;
mod fields;
mod health;
mod limits;
mod ports;

use env::*;
use fields::*;
use health::*;
use limits::*;
use ports::*;

/// The resources to write, and what could not be carried over.
#[derive(Debug)]
pub struct Converted {
    pub project: Yaml,
    /// (name, where the service is declared, the Service document).
    pub services: Vec<(String, String, Yaml)>,
    pub notes: Vec<Note>,
    pub secret_vars: BTreeSet<String>,
}

/// The Service fields (and nested ones) this build's model knows, read from its JSON Schema, so
/// fields issue 18 adds are written as soon as the model has them.
#[derive(Debug, Default)]
pub struct Model {
    fields: BTreeSet<String>,
}

impl Model {
    pub fn current() -> Model {
        let mut fields = BTreeSet::new();
        for (kind, schema) in crate::schema::per_kind() {
            if kind != crate::model::Kind::Service {
                continue;
            }
            collect(&schema, "", &mut fields);
            let defs = schema.get("definitions").or_else(|| schema.get("$defs"));
            for (def, prefix) in [("Health", "health."), ("Resources", "resources.")] {
                if let Some(d) = defs.and_then(|d| d.get(def)) {
                    collect(d, prefix, &mut fields);
                }
            }
        }
        Model { fields }
    }

    pub fn has(&self, field: &str) -> bool {
        self.fields.contains(field)
    }
}

fn collect(schema: &serde_json::Value, prefix: &str, out: &mut BTreeSet<String>) {
    if let Some(props) = schema.get("properties").and_then(|p| p.as_object()) {
        out.extend(props.keys().map(|k| format!("{prefix}{k}")));
    }
}

struct Ctx<'a> {
    refs: &'a HashMap<Span, String>,
    secrets: BTreeSet<String>,
    skipped: BTreeSet<String>,
    model: Model,
    out_dir: &'a Path,
    notes: Vec<Note>,
    secret_vars: BTreeSet<String>,
}

impl Ctx<'_> {
    fn note(
        &mut self,
        at: &Span,
        gap: Gap,
        field: impl Into<String>,
        suggestion: impl Into<String>,
    ) {
        self.notes.push(Note {
            at: at.clone(),
            gap,
            field: field.into(),
            suggestion: suggestion.into(),
        });
    }

    /// Adds `field` when the model has it, else notes it as not yet expressible.
    fn pending(
        &mut self,
        out: &mut Vec<(String, Yaml)>,
        field: &str,
        at: &Span,
        value: Yaml,
        fallback: &str,
    ) {
        if self.model.has(field) {
            out.push((field.to_string(), value));
        } else {
            self.note(at, Gap::NotYet, field, fallback);
        }
    }
}

/// Converts every selected service, and the project.
pub fn convert(compose: &Compose, name: &str, out_dir: &Path) -> Result<Converted, ImportError> {
    let mut ctx = Ctx {
        refs: &compose.refs,
        secrets: names_of(compose.root.get("secrets")),
        skipped: compose.skipped.iter().map(|(n, _)| n.clone()).collect(),
        model: Model::current(),
        out_dir,
        notes: Vec::new(),
        secret_vars: BTreeSet::new(),
    };
    top_level_notes(&compose.root, &mut ctx);
    let mut services = Vec::new();
    for (svc, at, node) in &compose.services {
        let origin = format!("{}:{}", at.file.rsplit('/').next().unwrap_or(""), at.line);
        services.push((svc.clone(), origin, service(svc, node, &mut ctx)?));
    }
    let project = Yaml::Map(vec![
        ("kind".into(), Yaml::str("Project")),
        ("name".into(), Yaml::str(name)),
        (
            "hosts".into(),
            Yaml::Seq(vec![Yaml::Map(vec![("name".into(), Yaml::str("local"))])]),
        ),
    ]);
    Ok(Converted {
        project,
        services,
        notes: ctx.notes,
        secret_vars: ctx.secret_vars,
    })
}

fn names_of(n: Option<&Node>) -> BTreeSet<String> {
    match n.map(|n| &n.value) {
        Some(NodeValue::Map(e)) => e
            .iter()
            .filter_map(|(k, _)| k.as_str().map(str::to_string))
            .collect(),
        _ => BTreeSet::new(),
    }
}

fn top_level_notes(root: &Node, ctx: &mut Ctx) {
    if let Some(NodeValue::Map(vols)) = root.get("volumes").map(|v| &v.value) {
        for (k, v) in vols {
            for field in ["external", "driver", "driver_opts", "name"] {
                if let Some(f) = v.get(field) {
                    ctx.note(&f.span, Gap::Unsupported, format!("volumes.{}.{field}", k.as_str().unwrap_or("")),
                        "converge creates each named volume itself with the local driver; create or rename the volume by hand, or bind-mount a host directory");
                }
            }
        }
    }
    if let Some(NodeValue::Map(nets)) = root.get("networks").map(|v| &v.value) {
        for (k, v) in nets {
            for (field, f) in map_entries(v) {
                if field == "driver" && f.as_str() == Some("bridge") {
                    continue;
                }
                ctx.note(&f.span, Gap::Unsupported, format!("networks.{}.{field}", k.as_str().unwrap_or("")),
                    "converge creates the project's networks itself as bridge networks named <project>_<name>");
            }
            if k.as_str() != Some("default") && !ctx.model.has("networks") {
                ctx.note(&k.span, Gap::NotYet, format!("networks.{}", k.as_str().unwrap_or("")),
                    "converge puts every service of the project on one network, where they reach each other by name");
            }
        }
    }
    if let Some(c) = root.get("configs") {
        ctx.note(
            &c.span,
            Gap::Unsupported,
            "configs",
            "bind-mount the file read-only under `volumes`, or render it with a ConfigFile",
        );
    }
}

/// One compose service → a converge Service document.
fn service(name: &str, s: &Node, ctx: &mut Ctx) -> Result<Yaml, ImportError> {
    let mut out: Vec<(String, Yaml)> = vec![
        ("kind".into(), Yaml::str("Service")),
        ("name".into(), Yaml::str(name)),
    ];
    let NodeValue::Map(entries) = &s.value else {
        return Err(invalid(
            &s.span,
            format!("service {name} is {}, expected a mapping", s.type_name()),
        ));
    };
    image_and_build(s, ctx, &mut out)?;
    if let Some(c) = s.get("command") {
        out.push((
            "command".into(),
            Yaml::Seq(words(c)?.into_iter().map(Yaml::Str).collect()),
        ));
    }
    if let Some(e) = s.get("entrypoint") {
        let v = Yaml::Seq(words(e)?.into_iter().map(Yaml::Str).collect());
        ctx.pending(
            &mut out,
            "entrypoint",
            &e.span,
            v,
            "set ENTRYPOINT in the image, or fold it into `command`",
        );
    }
    environment(s, ctx, &mut out)?;
    if let Some(p) = s.get("ports") {
        out.push(("ports".into(), Yaml::Seq(ports(p)?)));
    }
    volumes(s, ctx, &mut out)?;
    resources(s, ctx, &mut out)?;
    depends_on(s, ctx, &mut out);
    health(s, ctx, &mut out)?;
    restart(s, ctx, &mut out);
    simple_pending(s, ctx, &mut out)?;
    for (k, v) in entries {
        let key = k.as_str().unwrap_or("");
        if !HANDLED.contains(&key) {
            unsupported_key(key, v, &k.span, ctx);
        }
    }
    Ok(Yaml::Map(out))
}

/// Keys `service` reads itself.
const HANDLED: [&str; 36] = [
    "image",
    "build",
    "command",
    "entrypoint",
    "environment",
    "env_file",
    "ports",
    "volumes",
    "deploy",
    "mem_limit",
    "cpus",
    "depends_on",
    "healthcheck",
    "restart",
    "profiles",
    "user",
    "working_dir",
    "labels",
    "read_only",
    "init",
    "stop_signal",
    "stop_grace_period",
    "tmpfs",
    "shm_size",
    "sysctls",
    "ulimits",
    "cap_add",
    "cap_drop",
    "extra_hosts",
    "devices",
    "logging",
    "networks",
    "expose",
    "container_name",
    "pull_policy",
    "secrets",
];

fn unsupported_key(key: &str, v: &Node, at: &Span, ctx: &mut Ctx) {
    if key.starts_with("x-") {
        return;
    }
    let value = v
        .as_str()
        .map(|s| format!("{key}: {s}"))
        .unwrap_or_else(|| key.to_string());
    let suggestion = match key {
        "network_mode" => "converge runs every service on the project's network: publish the ports the service needs under `ports`",
        "links" => "not needed: services reach each other by name on the project's network",
        "privileged" => "grant only what the service needs with `cap_add` (and `devices`)",
        "hostname" | "domainname" => "services are reached by their service name on the project's network",
        "volumes_from" => "mount the same named volumes in this service under `volumes`",
        "pid" | "ipc" | "uts" | "userns_mode" | "cgroup_parent" | "security_opt" | "isolation" => {
            "converge uses the engine's defaults; run this container outside converge if it needs this"
        }
        "configs" => "bind-mount the file read-only under `volumes`, or render it with a ConfigFile",
        "dns" | "dns_search" | "dns_opt" => "converge uses the engine's DNS; set it in the image's resolv.conf or the engine's daemon.json",
        "stdin_open" | "tty" => "converge runs services detached, without a terminal",
        "platform" => "pull or build the image for this host's platform",
        "scale" => "use `replicas`",
        "mem_reservation" | "memswap_limit" | "mem_swappiness" | "oom_kill_disable" | "oom_score_adj" | "pids_limit" | "cpu_shares" | "cpuset" | "cpu_quota" | "cpu_period" | "blkio_config" => {
            "converge limits `resources.cpus` and `resources.memory` only"
        }
        _ => "converge has no equivalent: remove it, or run this container outside converge",
    };
    ctx.note(at, Gap::Unsupported, value, suggestion);
}

fn invalid(at: &Span, message: String) -> ImportError {
    ImportError::Invalid {
        at: at.clone(),
        message,
    }
}

fn image_and_build(
    s: &Node,
    ctx: &mut Ctx,
    out: &mut Vec<(String, Yaml)>,
) -> Result<(), ImportError> {
    let image = s.get("image").and_then(Node::as_str);
    if let Some(image) = image {
        out.push(("image".into(), Yaml::str(image)));
    }
    if let Some(p) = s.get("pull_policy") {
        ctx.note(
            &p.span,
            Gap::NotYet,
            format!("pull_policy: {}", p.as_str().unwrap_or("")),
            "converge pulls a missing image (issue 18 adds `pull: always|missing|never`)",
        );
    }
    if let Some(c) = s.get("container_name") {
        ctx.note(&c.span, Gap::Unsupported, "container_name",
            "converge names containers <project>-<service>-<n>; other services reach it by its service name");
    }
    let Some(b) = s.get("build") else {
        if image.is_none() {
            return Err(invalid(
                &s.span,
                "a service needs `image` or `build`".into(),
            ));
        }
        return Ok(());
    };
    if image.is_some() {
        ctx.note(&b.span, Gap::Differs, "build",
            "the service also names an image, which converge runs; build and tag it before applying, or remove `image` to let converge build");
        return Ok(());
    }
    let context = b
        .as_str()
        .or_else(|| b.get("context").and_then(Node::as_str))
        .unwrap_or(".");
    if context.contains("://") || context.starts_with("git@") {
        ctx.note(
            &b.span,
            Gap::Unsupported,
            "build.context (remote)",
            "build the image in CI and name it under `image`",
        );
        return Ok(());
    }
    let mut build = vec![("context".into(), Yaml::str(relative(context, ctx.out_dir)))];
    if let Some(d) = b.get("dockerfile").and_then(Node::as_str) {
        build.push(("dockerfile".into(), Yaml::str(d)));
    }
    if let Some(args) = b.get("args") {
        let mut a = args.clone();
        if let NodeValue::Seq(_) = a.value {
            a = list_pairs(&a);
        }
        build.push(("args".into(), string_map(&a)));
    }
    for (k, v) in map_entries(b) {
        if !matches!(k.as_str(), "context" | "dockerfile" | "args") {
            ctx.note(&v.span, Gap::Unsupported, format!("build.{k}"), "converge builds with a context, a dockerfile and args: build the image in CI and name it under `image`");
        }
    }
    out.push(("build".into(), Yaml::Map(build)));
    Ok(())
}

/// `path` relative to `base` (both absolute), `../` as needed.
fn relative(path: &str, base: &Path) -> String {
    let p: Vec<_> = Path::new(path).components().collect();
    let b: Vec<_> = base.components().collect();
    let common = p.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut rel: Vec<String> = vec!["..".into(); b.len() - common];
    rel.extend(
        p[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    if rel.is_empty() {
        ".".into()
    } else {
        rel.join("/")
    }
}

fn map_entries(n: &Node) -> Vec<(String, &Node)> {
    match &n.value {
        NodeValue::Map(e) => e
            .iter()
            .map(|(k, v)| (k.as_str().unwrap_or("").to_string(), v))
            .collect(),
        _ => Vec::new(),
    }
}

fn list_pairs(n: &Node) -> Node {
    let mut copy = n.clone();
    if let NodeValue::Seq(items) = &n.value {
        copy.value = NodeValue::Map(
            items
                .iter()
                .map(|i| {
                    let t = i.as_str().unwrap_or("");
                    let (k, v) = t.split_once('=').unwrap_or((t, ""));
                    let mk = |s: &str| Node {
                        value: NodeValue::Scalar(s.into(), crate::load::yaml::ScalarStyle::Quoted),
                        span: i.span.clone(),
                    };
                    (mk(k), mk(v))
                })
                .collect(),
        );
    }
    copy
}

fn string_map(n: &Node) -> Yaml {
    Yaml::Map(
        map_entries(n)
            .into_iter()
            .map(|(k, v)| (k, Yaml::str(v.as_str().unwrap_or(""))))
            .collect(),
    )
}

/// `command`/`entrypoint` as a list: a string is split like a shell (quotes, backslashes).
fn words(n: &Node) -> Result<Vec<String>, ImportError> {
    match &n.value {
        NodeValue::Seq(items) => Ok(items
            .iter()
            .map(|i| i.as_str().unwrap_or("").to_string())
            .collect()),
        NodeValue::Scalar(s, _) => {
            split_shell(s).ok_or_else(|| invalid(&n.span, "unterminated quote in a command".into()))
        }
        NodeValue::Null => Ok(Vec::new()),
        NodeValue::Map(_) => Err(invalid(&n.span, "a command is a string or a list".into())),
    }
}

fn split_shell(s: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut has = false;
    let mut chars = s.chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => cur.push(chars.next()?),
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                has = true;
            }
            (None, '\\') => {
                cur.push(chars.next()?);
                has = true;
            }
            (None, c) if c.is_whitespace() => {
                if has {
                    out.push(std::mem::take(&mut cur));
                    has = false;
                }
            }
            (None, c) => {
                cur.push(c);
                has = true;
            }
        }
    }
    if quote.is_some() {
        return None;
    }
    if has {
        out.push(cur);
    }
    Some(out)
}

/// Whether an environment key names a secret.
pub fn looks_secret(key: &str) -> bool {
    let k = key.to_ascii_uppercase();
    !k.ends_with("_FILE")
        && ["PASSWORD", "SECRET", "TOKEN", "KEY", "PASS", "CREDENTIAL"]
            .iter()
            .any(|w| k.contains(w))
}

/// `scheme://user:password@host…`: a URL carrying a password is a secret whatever its key.
pub fn has_url_password(value: &str) -> bool {
    value.split_once("://").is_some_and(|(_, rest)| {
        let authority = rest.split('/').next().unwrap_or("");
        authority
            .rsplit_once('@')
            .is_some_and(|(userinfo, _)| userinfo.contains(':'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert_with(model: Model, text: &str) -> (Yaml, Vec<Note>) {
        let file: std::sync::Arc<str> = std::sync::Arc::from("compose.yaml");
        let node = crate::load::yaml::parse_documents(&file, text)
            .unwrap()
            .remove(0)
            .unwrap();
        let refs = HashMap::new();
        let mut ctx = Ctx {
            refs: &refs,
            secrets: BTreeSet::new(),
            skipped: BTreeSet::new(),
            model,
            out_dir: Path::new("/out"),
            notes: Vec::new(),
            secret_vars: BTreeSet::new(),
        };
        let y = service("web", &node, &mut ctx).unwrap();
        (y, ctx.notes)
    }

    #[test]
    fn fields_the_model_lacks_are_listed_as_not_yet_expressible() {
        let text = "image: a\nuser: app\nhealthcheck: {test: [CMD, true], start_period: 20s, interval: 10s}\n";
        let (y, notes) = convert_with(Model::default(), text);
        let Yaml::Map(entries) = &y else { panic!() };
        assert!(!entries.iter().any(|(k, _)| k == "user"));
        let health = &entries.iter().find(|(k, _)| k == "health").unwrap().1;
        // Without `start_period`, the gate's retries cover it (3 + 20s / 10s).
        assert!(
            matches!(health, Yaml::Map(h) if h.iter().any(|(k, v)| k == "retries" && *v == Yaml::Int(5)))
        );
        assert_eq!(
            notes
                .iter()
                .map(|n| (n.at.line, n.gap, n.field.as_str()))
                .collect::<Vec<_>>(),
            [(2, Gap::NotYet, "user")]
        );
        let (y, notes) = convert_with(Model::current(), text);
        assert!(matches!(&y, Yaml::Map(e) if e.iter().any(|(k, _)| k == "user")));
        assert!(notes.is_empty(), "{notes:?}");
    }

    #[test]
    fn compose_sizes_are_binary() {
        assert_eq!(size(parse_bytes("512m").unwrap()), Yaml::str("512Mi"));
        assert_eq!(size(parse_bytes("1.5G").unwrap()), Yaml::str("1536Mi"));
        assert_eq!(size(parse_bytes("1gb").unwrap()), Yaml::str("1Gi"));
        assert_eq!(size(1000), Yaml::Int(1000));
    }

    #[test]
    fn compose_durations_become_converge_durations() {
        assert_eq!(millis_text(parse_millis("1m30s").unwrap()), "1m30s");
        assert_eq!(millis_text(parse_millis("1.5s").unwrap()), "1s500ms");
        assert_eq!(millis_text(parse_millis("2h").unwrap()), "2h");
        assert!(parse_millis("10x").is_none());
    }

    #[test]
    fn every_port_syntax_parses() {
        assert_eq!(
            parse_port("80"),
            Some((None, None, "80".into(), "tcp".into()))
        );
        assert_eq!(
            parse_port("8080:80/udp"),
            Some((None, Some("8080".into()), "80".into(), "udp".into()))
        );
        assert_eq!(
            parse_port("127.0.0.1:8080:80"),
            Some((
                Some("127.0.0.1".into()),
                Some("8080".into()),
                "80".into(),
                "tcp".into()
            ))
        );
        assert_eq!(range("8000-8002"), Some(vec![8000, 8001, 8002]));
    }

    #[test]
    fn secret_looking_keys_are_recognised() {
        for k in [
            "POSTGRES_PASSWORD",
            "api_token",
            "SECRET_KEY_BASE",
            "AWS_CREDENTIALS",
            "REDIS_PASS",
        ] {
            assert!(looks_secret(k), "{k}");
        }
        for k in ["POSTGRES_USER", "LOG_LEVEL", "POSTGRES_PASSWORD_FILE"] {
            assert!(!looks_secret(k), "{k}");
        }
        assert!(has_url_password("postgresql://app:pw@db:5432/app"));
        assert!(!has_url_password("redis://redis:6379/0"));
        assert!(!has_url_password("http://user@host/a:b@c"));
    }

    #[test]
    fn string_commands_split_like_a_shell() {
        assert_eq!(
            split_shell(r#"sh -c 'echo "a b"' x\ y"#).unwrap(),
            vec!["sh", "-c", "echo \"a b\"", "x y"]
        );
        assert!(split_shell("'open").is_none());
    }

    #[test]
    fn build_contexts_are_relative_to_the_output() {
        assert_eq!(
            relative("/srv/app/web", Path::new("/srv/app/desired")),
            "../web"
        );
        assert_eq!(relative("/srv/app", Path::new("/srv/app")), ".");
    }
}
