//! The container settings of a `Service` that compose users rely on (entrypoint, user, labels,
//! read-only root, init, stop signal and grace, tmpfs, shm, sysctls, ulimits, capabilities,
//! extra hosts, devices, logging, the health start period): their YAML types, the names the
//! engine accepts, their plan attributes and the `RuntimeOptions` a container is created with.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::service::Service;
use super::types::Duration;

/// A resource limit: one number (soft = hard) or `{soft, hard}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Ulimit {
    /// Soft and hard limit alike.
    Same(i64),
    /// Separate soft and hard limits.
    Range {
        /// The limit a process may raise up to `hard`.
        soft: i64,
        /// The ceiling.
        hard: i64,
    },
}

impl Ulimit {
    pub fn soft(&self) -> i64 {
        match self {
            Ulimit::Same(n) => *n,
            Ulimit::Range { soft, .. } => *soft,
        }
    }
    pub fn hard(&self) -> i64 {
        match self {
            Ulimit::Same(n) => *n,
            Ulimit::Range { hard, .. } => *hard,
        }
    }
}

/// Where the container's output goes: a Docker logging driver and its options.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Logging {
    /// The logging driver: `json-file`, `local`, `journald`, `syslog`, `none`…
    pub driver: String,
    /// The driver's options, e.g. `{max-size: 10m, max-file: "3"}`.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// A network beyond the project's that a service joins.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceNetwork {
    /// The network's name in the project; Docker's is `<project>_<name>`.
    pub name: String,
    /// More names of the container on this network, besides the service's name and `aliases`.
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// Signal names a container may be stopped with (`SIGTERM`; also without `SIG`, or a number).
pub const SIGNALS: &[&str] = &[
    "SIGABRT",
    "SIGALRM",
    "SIGBUS",
    "SIGCHLD",
    "SIGCONT",
    "SIGFPE",
    "SIGHUP",
    "SIGILL",
    "SIGINT",
    "SIGIO",
    "SIGKILL",
    "SIGPIPE",
    "SIGPROF",
    "SIGPWR",
    "SIGQUIT",
    "SIGSEGV",
    "SIGSTKFLT",
    "SIGSTOP",
    "SIGSYS",
    "SIGTERM",
    "SIGTRAP",
    "SIGTSTP",
    "SIGTTIN",
    "SIGTTOU",
    "SIGURG",
    "SIGUSR1",
    "SIGUSR2",
    "SIGVTALRM",
    "SIGWINCH",
    "SIGXCPU",
    "SIGXFSZ",
];

/// Linux capabilities (without `CAP_`), and `ALL`.
pub const CAPABILITIES: &[&str] = &[
    "ALL",
    "AUDIT_CONTROL",
    "AUDIT_READ",
    "AUDIT_WRITE",
    "BLOCK_SUSPEND",
    "BPF",
    "CHECKPOINT_RESTORE",
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "IPC_LOCK",
    "IPC_OWNER",
    "KILL",
    "LEASE",
    "LINUX_IMMUTABLE",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "MKNOD",
    "NET_ADMIN",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_RAW",
    "PERFMON",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYSLOG",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_CHROOT",
    "SYS_MODULE",
    "SYS_NICE",
    "SYS_PACCT",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "WAKE_ALARM",
];

/// Resource limits `ulimits` may set.
pub const ULIMITS: &[&str] = &[
    "as",
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// Whether the engine knows this stop signal: `SIGTERM`, `TERM`, `15`, `SIGRTMIN+3`.
pub fn is_signal(name: &str) -> bool {
    if let Ok(n) = name.parse::<u32>() {
        return (1..=64).contains(&n);
    }
    let full = if name.starts_with("SIG") {
        name.to_string()
    } else {
        format!("SIG{name}")
    };
    if let Some(rest) = full
        .strip_prefix("SIGRTMIN+")
        .or_else(|| full.strip_prefix("SIGRTMAX-"))
    {
        return rest.parse::<u32>().is_ok_and(|n| (1..=15).contains(&n));
    }
    SIGNALS.contains(&full.as_str()) || full == "SIGRTMIN" || full == "SIGRTMAX"
}

/// Whether this is a capability name (`NET_ADMIN`, `CAP_NET_ADMIN`, `ALL`).
pub fn is_capability(name: &str) -> bool {
    CAPABILITIES.contains(&name.strip_prefix("CAP_").unwrap_or(name))
}

/// A `tmpfs` entry split into its mount path and its options (`/tmp:size=64m`).
pub fn split_tmpfs(entry: &str) -> (&str, &str) {
    entry.split_once(':').unwrap_or((entry, ""))
}

/// A device mapping: host path, path in the container, cgroup permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceMapping {
    pub host: String,
    pub container: String,
    pub permissions: String,
}

/// Parses `/dev/fuse`, `/dev/sda:/dev/xvda` or `/dev/sda:/dev/xvda:rwm`.
pub fn parse_device(entry: &str) -> Result<DeviceMapping, String> {
    let parts: Vec<&str> = entry.split(':').collect();
    let (host, container, permissions) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, c] if is_permissions(c) => (*h, *h, *c),
        [h, c] => (*h, *c, "rwm"),
        [h, c, p] => (*h, *c, *p),
        _ => {
            return Err(format!(
                "expected `HOST[:CONTAINER[:rwm]]`, found `{entry}`"
            ))
        }
    };
    if !host.starts_with('/') || !container.starts_with('/') {
        return Err(format!(
            "a device path must be absolute (`/dev/fuse`), found `{entry}`"
        ));
    }
    if !is_permissions(permissions) {
        return Err(format!(
            "device permissions are letters of `rwm`, found `{permissions}`"
        ));
    }
    Ok(DeviceMapping {
        host: host.into(),
        container: container.into(),
        permissions: permissions.into(),
    })
}

fn is_permissions(p: &str) -> bool {
    !p.is_empty() && p.len() <= 3 && p.chars().all(|c| "rwm".contains(c))
}

/// The Docker health check converge sets: only for a `health.start_period`, so that the
/// engine's own status does not count failures while the process starts.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineHealthcheck {
    /// `["CMD", …]` for a command probe; `None` keeps the image's `HEALTHCHECK`.
    pub test: Option<Vec<String>>,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
    pub start_period: Duration,
}

/// What a container is created with beyond image, command, env, ports and mounts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuntimeOptions {
    pub entrypoint: Option<Vec<String>>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub read_only: bool,
    pub init: bool,
    pub stop_signal: Option<String>,
    /// Whole seconds, rounded up.
    pub stop_timeout: Option<i64>,
    /// Mount path → options.
    pub tmpfs: BTreeMap<String, String>,
    pub shm_size: Option<u64>,
    pub sysctls: BTreeMap<String, String>,
    /// (name, soft, hard).
    pub ulimits: Vec<(String, i64, i64)>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// `host:ip`, as the engine takes them.
    pub extra_hosts: Vec<String>,
    pub devices: Vec<DeviceMapping>,
    pub logging: Option<Logging>,
    pub healthcheck: Option<EngineHealthcheck>,
    /// GPU device ids requested (instead of a count).
    pub gpu_devices: Vec<String>,
    /// Networks beyond the project's: (name in the project, aliases of their own).
    pub networks: Vec<(String, Vec<String>)>,
}

impl RuntimeOptions {
    /// The options of a service's containers (a bad device entry, refused by validation, is skipped).
    pub fn of(s: &Service) -> Self {
        RuntimeOptions {
            entrypoint: s.entrypoint.clone(),
            user: s.user.clone(),
            working_dir: s.working_dir.clone(),
            labels: s.labels.clone(),
            read_only: s.read_only,
            init: s.init.unwrap_or(true),
            stop_signal: s.stop_signal.clone(),
            stop_timeout: s.stop_grace_period.map(|d| whole_seconds(d) as i64),
            tmpfs: s
                .tmpfs
                .iter()
                .map(|t| {
                    let (path, options) = split_tmpfs(t);
                    (path.to_string(), options.to_string())
                })
                .collect(),
            shm_size: s.shm_size.map(|m| m.bytes()),
            sysctls: s.sysctls.clone(),
            ulimits: s
                .ulimits
                .iter()
                .map(|(k, u)| (k.clone(), u.soft(), u.hard()))
                .collect(),
            cap_add: s.cap_add.clone(),
            cap_drop: s.cap_drop.clone(),
            extra_hosts: s
                .extra_hosts
                .iter()
                .map(|(h, ip)| format!("{h}:{ip}"))
                .collect(),
            devices: s
                .devices
                .iter()
                .filter_map(|d| parse_device(d).ok())
                .collect(),
            logging: s.logging.clone(),
            healthcheck: engine_healthcheck(s),
            gpu_devices: s.resources.gpu_devices.clone(),
            networks: s
                .networks
                .iter()
                .map(|n| (n.name.clone(), n.aliases.clone()))
                .collect(),
        }
    }
}

fn engine_healthcheck(s: &Service) -> Option<EngineHealthcheck> {
    let h = s.health.as_ref()?;
    let start_period = h.start_period?;
    Some(EngineHealthcheck {
        test: h.command.as_ref().map(|c| {
            std::iter::once("CMD".to_string())
                .chain(c.iter().cloned())
                .collect()
        }),
        interval: h.interval,
        timeout: h.timeout,
        retries: h.retries,
        start_period,
    })
}

/// A duration in whole seconds, rounded up (the engine's stop timeout is in seconds).
pub fn whole_seconds(d: Duration) -> u64 {
    d.as_millis().div_ceil(1000)
}

/// How long converge lets a container of `s` stop before it is killed: `stop_grace_period`,
/// else `default` seconds.
pub fn stop_grace_secs(s: &Service, default: i32) -> i32 {
    s.stop_grace_period
        .map(|d| i32::try_from(whole_seconds(d)).unwrap_or(i32::MAX))
        .unwrap_or(default)
}

/// The spec attributes of these fields, each only when set, so that a service that uses none
/// of them keeps the spec hash it had before they existed.
pub fn attributes(s: &Service) -> Vec<(String, String)> {
    let mut a: Vec<(String, String)> = Vec::new();
    let list = |items: &[String]| serde_json::to_string(items).unwrap_or_default();
    if let Some(e) = &s.entrypoint {
        a.push(("entrypoint".into(), list(e)));
    }
    if let Some(u) = &s.user {
        a.push(("user".into(), u.clone()));
    }
    if let Some(w) = &s.working_dir {
        a.push(("working_dir".into(), w.clone()));
    }
    for (k, v) in &s.labels {
        a.push((format!("labels.{k}"), v.clone()));
    }
    if s.read_only {
        a.push(("read_only".into(), "true".into()));
    }
    if let Some(i) = s.init {
        a.push(("init".into(), i.to_string()));
    }
    if let Some(sig) = &s.stop_signal {
        a.push(("stop_signal".into(), sig.clone()));
    }
    if let Some(g) = s.stop_grace_period {
        a.push(("stop_grace_period".into(), g.to_string()));
    }
    for (i, t) in s.tmpfs.iter().enumerate() {
        a.push((format!("tmpfs[{i}]"), t.clone()));
    }
    if let Some(m) = s.shm_size {
        a.push(("shm_size".into(), m.to_string()));
    }
    for (k, v) in &s.sysctls {
        a.push((format!("sysctls.{k}"), v.clone()));
    }
    for (k, u) in &s.ulimits {
        a.push((format!("ulimits.{k}"), format!("{}:{}", u.soft(), u.hard())));
    }
    if !s.cap_add.is_empty() {
        a.push(("cap_add".into(), list(&s.cap_add)));
    }
    if !s.cap_drop.is_empty() {
        a.push(("cap_drop".into(), list(&s.cap_drop)));
    }
    for (h, ip) in &s.extra_hosts {
        a.push((format!("extra_hosts.{h}"), ip.clone()));
    }
    for (i, d) in s.devices.iter().enumerate() {
        a.push((format!("devices[{i}]"), d.clone()));
    }
    if !s.aliases.is_empty() {
        a.push(("aliases".into(), list(&s.aliases)));
    }
    for n in &s.networks {
        a.push((format!("networks.{}", n.name), list(&n.aliases)));
    }
    if !s.resources.gpu_devices.is_empty() {
        a.push((
            "resources.gpu_devices".into(),
            list(&s.resources.gpu_devices),
        ));
    }
    if let Some(l) = &s.logging {
        a.push(("logging.driver".into(), l.driver.clone()));
        for (k, v) in &l.options {
            a.push((format!("logging.options.{k}"), v.clone()));
        }
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_signals_are_accepted_with_or_without_sig_and_as_numbers() {
        for ok in ["SIGTERM", "TERM", "SIGQUIT", "15", "SIGRTMIN+3", "SIGUSR1"] {
            assert!(is_signal(ok), "{ok}");
        }
        for bad in ["SIGFOO", "term", "0", "99", "", "SIGRTMIN+99"] {
            assert!(!is_signal(bad), "{bad}");
        }
    }

    #[test]
    fn capabilities_take_an_optional_cap_prefix() {
        assert!(is_capability("NET_ADMIN"));
        assert!(is_capability("CAP_SYS_PTRACE"));
        assert!(is_capability("ALL"));
        assert!(!is_capability("net_admin"));
        assert!(!is_capability("FLY"));
    }

    #[test]
    fn devices_default_to_the_same_path_and_rwm() {
        let d = parse_device("/dev/fuse").unwrap();
        assert_eq!(
            (d.host.as_str(), d.container.as_str()),
            ("/dev/fuse", "/dev/fuse")
        );
        assert_eq!(d.permissions, "rwm");
        let d = parse_device("/dev/sda:/dev/xvda:r").unwrap();
        assert_eq!(
            (d.container.as_str(), d.permissions.as_str()),
            ("/dev/xvda", "r")
        );
        let d = parse_device("/dev/sda:rw").unwrap();
        assert_eq!(
            (d.container.as_str(), d.permissions.as_str()),
            ("/dev/sda", "rw")
        );
        assert!(parse_device("fuse").is_err());
        assert!(parse_device("/dev/sda:/dev/xvda:x").is_err());
        assert!(parse_device("/a:/b:r:w").is_err());
    }

    #[test]
    fn a_grace_period_rounds_up_to_whole_seconds() {
        assert_eq!(whole_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(whole_seconds(Duration::from_secs(10)), 10);
    }

    #[test]
    fn tmpfs_entries_split_path_and_options() {
        assert_eq!(split_tmpfs("/run"), ("/run", ""));
        assert_eq!(
            split_tmpfs("/tmp:size=64m,mode=1777"),
            ("/tmp", "size=64m,mode=1777")
        );
    }
}

/// The variables a service's `env_file`s set, read by the loader: secret values, so `Debug`
/// shows only their names and nothing serializes them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct EnvFileValues(pub BTreeMap<String, String>);

impl std::fmt::Debug for EnvFileValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// Why a line of an env file was refused (its text is never repeated: it may hold a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct EnvFileError {
    pub line: usize,
    pub problem: &'static str,
}

/// Parses compose's `.env` syntax: `KEY=VALUE` lines, `#` comments, blank lines, an optional
/// `export `, values optionally in single (literal) or double quotes (`\n`, `\"`, `\\`
/// escapes); an unquoted value ends at ` #`.
pub fn parse_env_file(text: &str) -> Result<Vec<(String, String)>, EnvFileError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let bad = |problem| EnvFileError {
            line: i + 1,
            problem,
        };
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| bad("expected `KEY=VALUE`"))?;
        let key = key.trim();
        let key_ok = !key.is_empty()
            && !key.starts_with(|c: char| c.is_ascii_digit())
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !key_ok {
            return Err(bad("invalid variable name"));
        }
        out.push((key.to_string(), env_value(value.trim_start()).map_err(bad)?));
    }
    Ok(out)
}

fn env_value(v: &str) -> Result<String, &'static str> {
    if let Some(rest) = v.strip_prefix('\'') {
        let end = rest.find('\'').ok_or("unclosed `'`")?;
        return Ok(rest[..end].to_string());
    }
    if let Some(rest) = v.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => return Ok(out),
                '\\' => match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some(other) => out.push(other),
                    None => break,
                },
                c => out.push(c),
            }
        }
        return Err("unclosed `\"`");
    }
    let v = match v.find(" #") {
        Some(i) => &v[..i],
        None => v,
    };
    Ok(v.trim_end().to_string())
}

#[cfg(test)]
mod env_file_tests {
    use super::*;

    #[test]
    fn env_files_take_comments_blank_lines_export_and_quotes() {
        let text = "# a comment\n\nA=1\nexport B = two words # trailing\nC='lit $x # kept'\nD=\"line\\nnext \\\"q\\\"\"\nE=\n";
        let got = parse_env_file(text).unwrap();
        assert_eq!(
            got,
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "two words".into()),
                ("C".into(), "lit $x # kept".into()),
                ("D".into(), "line\nnext \"q\"".into()),
                ("E".into(), String::new()),
            ]
        );
    }

    #[test]
    fn a_bad_line_is_named_by_number_never_by_its_text() {
        let e = parse_env_file("A=1\nhunter2\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(!e.to_string().contains("hunter2"));
        assert_eq!(parse_env_file("X=\"open").unwrap_err().line, 1);
        assert_eq!(
            parse_env_file("1X=a").unwrap_err().problem,
            "invalid variable name"
        );
    }

    #[test]
    fn debug_shows_names_not_values() {
        let v = EnvFileValues(BTreeMap::from([("TOKEN".into(), "s3cret".into())]));
        assert_eq!(format!("{v:?}"), "{\"TOKEN\"}");
    }
}
