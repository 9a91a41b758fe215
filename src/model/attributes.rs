//! Flattens a resource into named attributes (`image`, `env.LOG_FORMAT`, `ports[0]`) that the
//! diff compares and the plan prints. Sensitive values become digests, never text.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::action::Action;
use super::service::{Health, Service, Strategy};
use super::types::SecretString;
use super::{Backup, Bucket, Budget, ConfigFile, Database, Notifier, Resource, Router};

/// One attribute's value: text, or a digest standing for a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttrValue {
    Text(String),
    Sensitive(String),
}

impl AttrValue {
    pub fn is_sensitive(&self) -> bool {
        matches!(self, AttrValue::Sensitive(_))
    }

    /// What a plan shows: the text, or `(sensitive)`.
    pub fn display(&self) -> &str {
        match self {
            AttrValue::Text(t) => t,
            AttrValue::Sensitive(_) => "(sensitive)",
        }
    }
}

/// One attribute and whether changing it needs new containers (replacement).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attr {
    pub value: AttrValue,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replaces: bool,
}

/// Attributes of a resource, by flat key, in key order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Attributes(pub BTreeMap<String, Attr>);

impl Attributes {
    pub fn text(&mut self, key: impl Into<String>, value: impl ToString) {
        self.0.insert(
            key.into(),
            Attr {
                value: AttrValue::Text(value.to_string()),
                replaces: false,
            },
        );
    }

    fn spec_text(&mut self, key: impl Into<String>, value: impl ToString) {
        self.0.insert(
            key.into(),
            Attr {
                value: AttrValue::Text(value.to_string()),
                replaces: true,
            },
        );
    }

    fn secret(
        &mut self,
        key: impl Into<String>,
        value: &SecretString,
        d: &dyn SecretDigest,
        replaces: bool,
    ) {
        let value = if value.is_sensitive() {
            AttrValue::Sensitive(d.digest(value))
        } else {
            AttrValue::Text(value.raw().to_string())
        };
        self.0.insert(key.into(), Attr { value, replaces });
    }

    pub fn get(&self, key: &str) -> Option<&Attr> {
        self.0.get(key)
    }

    /// A digest of the attributes that need new containers when they change (the spec hash).
    pub fn spec_hash(&self) -> String {
        let mut h = Sha256::new();
        for (k, a) in self.0.iter().filter(|(_, a)| a.replaces) {
            h.update(k.as_bytes());
            h.update([0]);
            match &a.value {
                AttrValue::Text(t) => h.update(t.as_bytes()),
                AttrValue::Sensitive(d) => {
                    h.update(b"\x01");
                    h.update(d.as_bytes())
                }
            }
            h.update([0]);
        }
        hex(&h.finalize()[..8])
    }
}

/// Turns a secret-bearing value into a digest. Offline planning digests the reference text;
/// apply resolves the secret and digests the value with a key, so a rotated secret shows as a change.
pub trait SecretDigest {
    fn digest(&self, value: &SecretString) -> String;

    /// Digests a secret value the loader read itself (an `env_file` variable), `name` saying
    /// where it came from. Offline digests stand for `name`, never the value.
    fn digest_loaded(&self, name: &str, value: &str) -> String {
        let _ = name;
        self.digest(&SecretString::plain(value))
    }
}

/// Digests the reference text itself: for offline plans and validation, where nothing is resolved.
pub struct ReferenceDigest;

impl SecretDigest for ReferenceDigest {
    fn digest(&self, value: &SecretString) -> String {
        let mut h = Sha256::new();
        h.update(b"ref:");
        h.update(value.raw().as_bytes());
        hex(&h.finalize()[..8])
    }

    fn digest_loaded(&self, name: &str, _value: &str) -> String {
        let mut h = Sha256::new();
        h.update(b"ref:");
        h.update(name.as_bytes());
        hex(&h.finalize()[..8])
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_default()
}

fn action(a: &Option<Action>) -> String {
    a.as_ref()
        .map(|a| a.to_string())
        .unwrap_or_else(|| "none".into())
}

impl Resource {
    /// The attributes the diff compares and the plan shows.
    pub fn attributes(&self, d: &dyn SecretDigest) -> Attributes {
        match self {
            Resource::Service(s) => service_attributes(s, d),
            Resource::Router(r) => router_attributes(r),
            Resource::ConfigFile(c) => configfile_attributes(c),
            Resource::Database(db) => database_attributes(db, d),
            Resource::Bucket(b) => bucket_attributes(b),
            Resource::Backup(b) => backup_attributes(b, d),
            Resource::Budget(b) => budget_attributes(b),
            Resource::Notifier(n) => notifier_attributes(n, d),
        }
    }
}

fn service_attributes(s: &Service, d: &dyn SecretDigest) -> Attributes {
    let mut a = Attributes::default();
    if let Some(image) = &s.image {
        a.spec_text("image", image);
    }
    if let Some(b) = &s.build {
        match &b.context_digest {
            Some(d) => a.spec_text("build.context", format!("{} ({d})", b.context)),
            None => a.spec_text("build.context", &b.context),
        }
        if let Some(f) = &b.dockerfile {
            a.spec_text("build.dockerfile", f);
        }
        for (k, v) in &b.args {
            a.spec_text(format!("build.args.{k}"), v);
        }
    }
    if let Some(cmd) = &s.command {
        a.spec_text("command", list(cmd));
    }
    for (k, v) in &s.env {
        a.secret(format!("env.{k}"), v, d, true);
    }
    // Variables from env files are secrets; `env` wins over them.
    for (k, v) in s
        .env_file_values
        .0
        .iter()
        .filter(|(k, _)| !s.env.contains_key(*k))
    {
        let value = AttrValue::Sensitive(d.digest_loaded(&format!("env_file:{k}"), v));
        a.0.insert(
            format!("env.{k}"),
            Attr {
                value,
                replaces: true,
            },
        );
    }
    let blue_green = s.deploy.strategy == Strategy::BlueGreen;
    for (i, p) in s.ports.iter().enumerate() {
        let proto = match p.protocol {
            super::service::Protocol::Tcp => "tcp",
            super::service::Protocol::Udp => "udp",
        };
        // The address only when declared, so that a service without one keeps its spec hash.
        let published = match (p.host, p.host_ip) {
            (Some(h), Some(ip)) if !blue_green => format!(" -> {}", ip.with_port(h)),
            (Some(h), None) if !blue_green => format!(" -> {h}"),
            _ => String::new(),
        };
        a.spec_text(
            format!("ports[{i}]"),
            format!("{}/{proto}{published}", p.container),
        );
    }
    for (i, v) in s.volumes.iter().enumerate() {
        let ro = if v.read_only { ":ro" } else { "" };
        a.spec_text(
            format!("volumes[{i}]"),
            format!("{}:{}{ro}", v.source, v.target),
        );
    }
    if let Some(c) = s.resources.cpus {
        a.spec_text("resources.cpus", c);
    }
    if let Some(m) = s.resources.memory {
        a.spec_text("resources.memory", m);
    }
    if s.resources.gpus > 0 {
        a.spec_text("resources.gpus", s.resources.gpus);
    }
    a.spec_text("restart", s.restart.as_str());
    for (k, v) in super::service_runtime::attributes(s) {
        a.spec_text(k, v);
    }
    if let Some(h) = &s.health {
        a.spec_text("health", health_text(h));
    }
    a.text("replicas", s.replicas);
    a.text("priority", s.priority.as_str());
    a.text("deploy.strategy", s.deploy.strategy.as_str());
    if blue_green {
        // A color's port is where the Router sends traffic: a change deploys the idle color,
        // which publishes the new port before the Router is switched to it.
        if let (Some(b), Some(g)) = (&s.deploy.blue, &s.deploy.green) {
            a.spec_text("deploy.ports", format!("blue {}, green {}", b.port, g.port));
        }
        // Where each color's port is bound: a change needs new containers. Services deployed
        // before `host_ip` existed were bound to every interface and lack these labels, so
        // the first plan after the upgrade deploys the idle color bound to `127.0.0.1`.
        for (color, c) in [("blue", &s.deploy.blue), ("green", &s.deploy.green)] {
            if let Some(c) = c {
                a.spec_text(format!("deploy.{color}.host_ip"), c.host_ip);
            }
        }
        a.text("deploy.verify_for", s.deploy.verify_for);
        a.text("deploy.drain", s.deploy.drain);
    }
    if let Some(sc) = &s.scale {
        a.text(
            "scale",
            format!("{}..{} (cooldown {})", sc.min, sc.max, sc.cooldown),
        );
    }
    a
}

fn health_text(h: &Health) -> String {
    let probe = if let Some(p) = &h.http {
        format!("http :{}{}", p.port, p.path)
    } else if let Some(p) = &h.tcp {
        format!("tcp :{}", p.port)
    } else if let Some(c) = &h.command {
        format!("command {}", list(c))
    } else {
        "none".into()
    };
    // The start period only when declared, so that a health check without one keeps its text.
    let start = h
        .start_period
        .map(|p| format!(", start period {p}"))
        .unwrap_or_default();
    format!(
        "{probe} every {} (timeout {}, {} to pass, {} tries{start})",
        h.interval, h.timeout, h.healthy_after, h.retries
    )
}

fn router_attributes(r: &Router) -> Attributes {
    let mut a = Attributes::default();
    a.text("path", &r.path);
    a.text("template", &r.template);
    a.text("check", action(&r.check));
    a.text("reload", action(&r.reload));
    for (i, rt) in r.routes.iter().enumerate() {
        a.text(
            format!("routes[{i}]"),
            format!("{}{} -> service/{}", rt.host, rt.path, rt.service),
        );
    }
    a
}

fn configfile_attributes(c: &ConfigFile) -> Attributes {
    let mut a = Attributes::default();
    a.text("path", &c.path);
    a.text("template", &c.template);
    a.text("check", action(&c.check));
    a.text("reload", action(&c.reload));
    a
}

/// How a role's flags read in a plan; the PostgreSQL provider describes live roles the same way.
pub fn role_flags(
    login: bool,
    createdb: bool,
    connection_limit: i32,
    member_of: &[String],
) -> String {
    let mut flags = vec![if login { "login" } else { "nologin" }.to_string()];
    if createdb {
        flags.push("createdb".into());
    }
    if connection_limit >= 0 {
        flags.push(format!("connection limit {connection_limit}"));
    }
    if !member_of.is_empty() {
        let mut m = member_of.to_vec();
        m.sort();
        flags.push(format!("member of {}", m.join(", ")));
    }
    flags.join(", ")
}

fn database_attributes(db: &Database, d: &dyn SecretDigest) -> Attributes {
    let mut a = Attributes::default();
    if let Some(o) = &db.owner {
        a.text("owner", o);
    }
    a.text("encoding", &db.encoding);
    if !db.extensions.is_empty() {
        let mut ext = db.extensions.clone();
        ext.sort();
        a.text("extensions", ext.join(", "));
    }
    for r in &db.roles {
        let key = format!("roles.{}", r.name);
        a.text(
            key.clone(),
            role_flags(r.login, r.createdb, r.connection_limit, &r.member_of),
        );
        if let Some(p) = &r.password {
            a.secret(format!("{key}.password"), p, d, false);
        }
        for (i, g) in r.grants.iter().enumerate() {
            a.text(
                format!("{key}.grants[{i}]"),
                g.describe(&g.canonical_privileges()),
            );
        }
    }
    if let Some(m) = &db.migrations {
        a.text("migrations.dir", &m.dir);
        a.text("migrations.lock_timeout", m.lock_timeout);
        a.text("migrations.statement_timeout", m.statement_timeout);
    }
    a
}

fn bucket_attributes(b: &Bucket) -> Attributes {
    let mut a = Attributes::default();
    a.text(
        "versioning",
        if b.versioning { "enabled" } else { "disabled" },
    );
    a.text("encryption", b.encryption.as_str());
    a.text(
        "public_access",
        match b.public_access {
            super::bucket::PublicAccess::Blocked => "blocked",
            super::bucket::PublicAccess::Allowed => "allowed",
        },
    );
    for (i, r) in b.lifecycle.iter().enumerate() {
        a.text(format!("lifecycle[{i}]"), r.text());
    }
    a
}

fn backup_attributes(b: &Backup, d: &dyn SecretDigest) -> Attributes {
    let mut a = Attributes::default();
    let source = if let Some(db) = &b.source.database {
        format!("database {db}")
    } else if let Some(f) = &b.source.files {
        format!("files {f}")
    } else if let Some(c) = &b.source.command {
        format!("command {}", list(c))
    } else {
        "none".into()
    };
    a.text("source", source);
    a.text("schedule", b.schedule.as_str());
    a.text("compression", format!("{:?}", b.compression).to_lowercase());
    if let Some(e) = &b.encryption {
        a.secret("encryption.key", &e.key, d, false);
    }
    for (i, dst) in b.destinations.iter().enumerate() {
        a.text(
            format!("destinations[{i}]"),
            format!("{} (keep {})", dst.url, dst.keep),
        );
    }
    a.text("verify", format!("{:?}", b.verify).to_lowercase());
    if let Some(r) = b.rpo {
        a.text("rpo", r);
    }
    a
}

fn budget_attributes(b: &Budget) -> Attributes {
    let mut a = Attributes::default();
    let period = match b.period {
        super::budget::Period::Day => "day",
        super::budget::Period::Week => "week",
        super::budget::Period::Month => "month",
    };
    a.text(
        "amount",
        format!("{} {} per {period}", b.amount, b.currency),
    );
    for (k, v) in &b.rates {
        a.text(format!("rates.{k}"), v);
    }
    if let Some(s) = &b.spend {
        a.text("spend", format!("database {}: {}", s.database, s.sql));
    }
    if !b.alerts.is_empty() {
        let alerts: Vec<String> = b.alerts.iter().map(|x| percent(*x)).collect();
        a.text("alerts", alerts.join(", "));
    }
    if let Some(s) = &b.soft_limit {
        let p: Vec<&str> = s.scale_to_min.iter().map(|p| p.as_str()).collect();
        a.text(
            "soft_limit",
            format!("at {}: scale {} to min", percent(s.at), p.join(", ")),
        );
    }
    if let Some(h) = &b.hard_limit {
        let p: Vec<&str> = h.pause.iter().map(|p| p.as_str()).collect();
        a.text(
            "hard_limit",
            format!("at {}: pause {}", percent(h.at), p.join(", ")),
        );
    }
    if !b.notify.is_empty() {
        a.text("notify", b.notify.join(", "));
    }
    a
}

/// `0.9` → `90%`, without floating-point noise.
fn percent(fraction: f64) -> String {
    format!("{}%", (fraction * 10_000.0).round() / 100.0)
}

fn notifier_attributes(n: &Notifier, d: &dyn SecretDigest) -> Attributes {
    let mut a = Attributes::default();
    if let Some(w) = &n.webhook {
        // A webhook URL is a credential even when written literally.
        a.0.insert(
            "webhook".into(),
            Attr {
                value: AttrValue::Sensitive(d.digest(w)),
                replaces: false,
            },
        );
    }
    if let Some(c) = &n.command {
        a.text("command", list(c));
    }
    let events: Vec<String> = n
        .events
        .iter()
        .filter_map(|e| serde_json::to_value(e).ok())
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    a.text("events", events.join(", "));
    let severities: Vec<&str> = n.severities.iter().map(|s| s.as_str()).collect();
    a.text("severities", severities.join(", "));
    a
}
