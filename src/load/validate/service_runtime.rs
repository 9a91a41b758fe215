//! Checks of a service's compose-style container settings: entrypoint, user, working_dir,
//! labels, stop_signal, tmpfs, sysctls, ulimits, capabilities, extra_hosts, devices, logging.

use std::net::IpAddr;

use super::{span_at, Ctx};
use crate::load::diagnostic::{did_you_mean, Diagnostic};
use crate::load::yaml::Node;
use crate::model::service_runtime::{self as rt, is_capability, is_signal, parse_device};
use crate::model::Service;

pub(super) fn check_runtime(s: &Service, n: &Node, ctx: &mut Ctx) {
    check_process(s, n, ctx);
    check_labels(s, n, ctx);
    check_filesystems(s, n, ctx);
    check_limits(s, n, ctx);
    check_capabilities(s, n, ctx);
    check_hosts_and_devices(s, n, ctx);
    check_logging(s, n, ctx);
    check_network_and_gpus(s, n, ctx);
}

fn check_process(s: &Service, n: &Node, ctx: &mut Ctx) {
    if s.entrypoint.as_ref().is_some_and(|e| e.is_empty()) {
        ctx.diags.push(
            Diagnostic::at(
                &span_at(n, &["entrypoint"]),
                "`entrypoint` is an empty list",
            )
            .hint("remove it to use the image's entrypoint"),
        );
    }
    if let Some(u) = &s.user {
        let parts: Vec<&str> = u.split(':').collect();
        let well_formed = parts.len() <= 2
            && parts
                .iter()
                .all(|p| !p.is_empty() && !p.contains(char::is_whitespace));
        if !well_formed {
            ctx.diags.push(
                Diagnostic::at(&span_at(n, &["user"]), format!("invalid user `{u}`"))
                    .hint("write `USER` or `USER:GROUP`, by name or number, e.g. `1000:1000`"),
            );
        }
    }
    if let Some(w) = &s.working_dir {
        if !w.starts_with('/') {
            ctx.diags.push(Diagnostic::at(
                &span_at(n, &["working_dir"]),
                format!("working_dir must be an absolute path, found `{w}`"),
            ));
        }
    }
    if let Some(sig) = &s.stop_signal {
        if !is_signal(sig) {
            let hint = match did_you_mean(sig, rt::SIGNALS.iter().copied()) {
                Some(c) => format!("did you mean `{c}`?"),
                None => "write a signal name such as `SIGTERM`, `SIGQUIT` or `SIGINT`".into(),
            };
            ctx.diags.push(
                Diagnostic::at(
                    &span_at(n, &["stop_signal"]),
                    format!("unknown stop signal `{sig}`"),
                )
                .hint(hint),
            );
        }
    }
}

fn check_labels(s: &Service, n: &Node, ctx: &mut Ctx) {
    for key in s.labels.keys() {
        let span = span_at(n, &["labels", key]);
        if key.starts_with("converge.") {
            ctx.diags.push(
                Diagnostic::at(&span, format!("label `{key}` is converge's own"))
                    .hint("labels starting with `converge.` mark converge's containers; choose another prefix"),
            );
        } else if key.is_empty() || key.contains(char::is_whitespace) {
            ctx.diags
                .push(Diagnostic::at(&span, format!("invalid label name `{key}`")));
        }
    }
}

fn check_filesystems(s: &Service, n: &Node, ctx: &mut Ctx) {
    for (i, t) in s.tmpfs.iter().enumerate() {
        let (path, options) = rt::split_tmpfs(t);
        if !path.starts_with('/') || options.contains(char::is_whitespace) {
            ctx.diags.push(
                Diagnostic::at(
                    &span_at(n, &["tmpfs", &i.to_string()]),
                    format!("invalid tmpfs `{t}`"),
                )
                .hint("write an absolute path, optionally with options: `/tmp:size=64m,mode=1777`"),
            );
        }
    }
    if s.shm_size.is_some_and(|m| m.bytes() == 0) {
        ctx.diags.push(Diagnostic::at(
            &span_at(n, &["shm_size"]),
            "shm_size must be more than 0",
        ));
    }
}

fn check_limits(s: &Service, n: &Node, ctx: &mut Ctx) {
    for (key, value) in &s.sysctls {
        let name_ok = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c));
        if !name_ok || value.is_empty() {
            ctx.diags.push(
                Diagnostic::at(
                    &span_at(n, &["sysctls", key]),
                    format!("invalid sysctl `{key}: {value}`"),
                )
                .hint("e.g. `net.core.somaxconn: \"1024\"`"),
            );
        }
    }
    for (name, u) in &s.ulimits {
        let span = span_at(n, &["ulimits", name]);
        if !rt::ULIMITS.contains(&name.as_str()) {
            let hint = match did_you_mean(name, rt::ULIMITS.iter().copied()) {
                Some(c) => format!("did you mean `{c}`?"),
                None => format!("the limits are {}", rt::ULIMITS.join(", ")),
            };
            ctx.diags
                .push(Diagnostic::at(&span, format!("unknown ulimit `{name}`")).hint(hint));
        } else if u.soft() > u.hard() {
            ctx.diags.push(
                Diagnostic::at(
                    &span,
                    format!(
                        "ulimit `{name}`: soft ({}) is above hard ({})",
                        u.soft(),
                        u.hard()
                    ),
                )
                .hint("the soft limit can only be raised up to the hard one"),
            );
        } else if u.soft() < -1 {
            ctx.diags.push(Diagnostic::at(
                &span,
                format!("ulimit `{name}` must be -1 (unlimited) or more"),
            ));
        }
    }
}

fn check_capabilities(s: &Service, n: &Node, ctx: &mut Ctx) {
    for (field, caps) in [("cap_add", &s.cap_add), ("cap_drop", &s.cap_drop)] {
        for (i, c) in caps.iter().enumerate() {
            if is_capability(c) {
                continue;
            }
            let bare = c.to_ascii_uppercase();
            let hint = match did_you_mean(&bare, rt::CAPABILITIES.iter().copied()) {
                Some(x) => format!("did you mean `{x}`?"),
                None => "write a Linux capability in capitals, e.g. `NET_ADMIN`, or `ALL`".into(),
            };
            ctx.diags.push(
                Diagnostic::at(
                    &span_at(n, &[field, &i.to_string()]),
                    format!("unknown capability `{c}` in `{field}`"),
                )
                .hint(hint),
            );
        }
    }
}

fn check_hosts_and_devices(s: &Service, n: &Node, ctx: &mut Ctx) {
    for (host, ip) in &s.extra_hosts {
        let span = span_at(n, &["extra_hosts", host]);
        if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == ':') {
            ctx.diags
                .push(Diagnostic::at(&span, format!("invalid host name `{host}`")));
        }
        if ip != "host-gateway" && ip.parse::<IpAddr>().is_err() {
            ctx.diags.push(
                Diagnostic::at(
                    &span,
                    format!("extra_hosts: `{ip}` is not an IP address (for `{host}`)"),
                )
                .hint("write an IPv4 or IPv6 address, e.g. `10.0.0.5`, or `host-gateway`"),
            );
        }
    }
    for (i, d) in s.devices.iter().enumerate() {
        if let Err(e) = parse_device(d) {
            ctx.diags.push(
                Diagnostic::at(&span_at(n, &["devices", &i.to_string()]), e)
                    .hint("e.g. `/dev/fuse` or `/dev/sda:/dev/xvda:rwm`"),
            );
        }
    }
}

fn check_network_and_gpus(s: &Service, n: &Node, ctx: &mut Ctx) {
    let alias_ok = |a: &str| {
        !a.is_empty()
            && a.len() <= 253
            && a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    };
    let bad_alias = |path: &[&str], a: &str| {
        Diagnostic::at(&span_at(n, path), format!("invalid network alias `{a}`"))
            .hint("a host name: letters, digits, `.`, `-` and `_`")
    };
    for (i, a) in s.aliases.iter().enumerate() {
        if !alias_ok(a) {
            ctx.diags.push(bad_alias(&["aliases", &i.to_string()], a));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, net) in s.networks.iter().enumerate() {
        let idx = i.to_string();
        let name_ok = !net.name.is_empty()
            && net.name.len() <= 48
            && net
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c));
        if !name_ok {
            ctx.diags.push(
                Diagnostic::at(
                    &span_at(n, &["networks", &idx, "name"]),
                    format!("invalid network name `{}`", net.name),
                )
                .hint("letters, digits, `-` and `_`; Docker's name is `<project>_<name>`"),
            );
        } else if !seen.insert(net.name.as_str()) {
            ctx.diags.push(Diagnostic::at(
                &span_at(n, &["networks", &idx, "name"]),
                format!("network `{}` is listed twice", net.name),
            ));
        }
        for (j, a) in net.aliases.iter().enumerate() {
            if !alias_ok(a) {
                let path = ["networks", &idx, "aliases", &j.to_string()];
                ctx.diags.push(bad_alias(&path, a));
            }
        }
    }
    let r = &s.resources;
    if r.gpus > 0 && !r.gpu_devices.is_empty() {
        ctx.diags.push(
            Diagnostic::at(
                &span_at(n, &["resources", "gpu_devices"]),
                "`resources.gpus` and `resources.gpu_devices` both request GPUs",
            )
            .hint("keep one: a count, or the device ids"),
        );
    }
    for (i, d) in r.gpu_devices.iter().enumerate() {
        if d.is_empty() || d.contains(|c: char| c.is_whitespace() || c == ',') {
            ctx.diags.push(Diagnostic::at(
                &span_at(n, &["resources", "gpu_devices", &i.to_string()]),
                format!("invalid GPU device id `{d}`"),
            ));
        }
    }
}

fn check_logging(s: &Service, n: &Node, ctx: &mut Ctx) {
    let Some(l) = &s.logging else { return };
    if l.driver.trim().is_empty() || l.driver.contains(char::is_whitespace) {
        ctx.diags.push(
            Diagnostic::at(
                &span_at(n, &["logging", "driver"]),
                format!("invalid logging driver `{}`", l.driver),
            )
            .hint("e.g. `json-file`, `local`, `journald`, `syslog` or `none`"),
        );
    }
    for key in l.options.keys() {
        if key.is_empty() || key.contains(char::is_whitespace) {
            ctx.diags.push(Diagnostic::at(
                &span_at(n, &["logging", "options", key]),
                format!("invalid logging option name `{key}`"),
            ));
        }
    }
}
