//! Services: which containers a change needs (create, replace, scale, repair, a blue-green
//! deploy into the idle color, a drain of a stale color) and the colors routers render with.

use super::*;

pub(super) fn service_attributes(s: &Service, opts: &DiffOptions) -> Attributes {
    Resource::Service(s.clone()).attributes(opts.secrets)
}

/// Attributes that live containers can show: the spec and the replica count.
pub(super) fn container_visible(key: &str, replaces: bool) -> bool {
    replaces || key == "replicas"
}

/// A service's changes, each carrying the service's spec hash.
pub(super) fn diff_service(
    s: &Service,
    live: &LiveState,
    opts: &DiffOptions,
    swarm: bool,
    out: &mut Diff,
) {
    let from = out.changes.len();
    let hash = service_changes(s, live, opts, swarm, out);
    for c in &mut out.changes[from..] {
        c.spec_hash = Some(hash.clone());
    }
}

/// Pushes the changes a service needs; returns its spec hash.
fn service_changes(
    s: &Service,
    live: &LiveState,
    opts: &DiffOptions,
    swarm: bool,
    out: &mut Diff,
) -> String {
    let id = id_of(Kind::Service, s.name.as_str());
    let desired = service_attributes(s, opts);
    let hash = desired.spec_hash();
    let observed = live.resources.get(&id);
    let ls = observed
        .and_then(|r| r.service.as_ref())
        .filter(|ls| !ls.containers.is_empty());
    let bg = s.deploy.strategy == Strategy::BlueGreen;
    let spec_failed = !opts.retry_failed
        && live
            .failed
            .get(&id.to_string())
            .is_some_and(|f| f.contains(&hash));
    let failed_note = || {
        format!(
            "{id}: this spec ({hash}) failed and was rolled back; it is not retried until the desired state changes or --retry-failed is given"
        )
    };
    let overridden = live.overrides.get(s.name.as_str());
    let Some(ls) = ls else {
        if spec_failed {
            out.held_back.push(failed_note());
            return hash;
        }
        if s.replicas == 0 {
            let why = overridden
                .map(|o| o.reason.as_str())
                .unwrap_or("replicas: 0");
            out.notes.push(format!("{id}: not running ({why})"));
            return hash;
        }
        let color = bg.then_some(Color::Blue);
        let mut c = Change::new(
            id.clone(),
            Subject::Resource(Kind::Service),
            ChangeAction::Create,
            "not running",
        );
        c.attributes = attr_changes(None, &desired, &container_visible);
        c.service = Some(ServiceChange::Start {
            replicas: s.replicas,
            color,
        });
        if let Some(color) = color {
            c.reason = format!("not running; starts as {color}");
            out.colors.insert(s.name.to_string(), color_port(s, color));
        }
        out.changes.push(c);
        return hash;
    };
    let mut before = observed.map(|r| r.attributes.clone()).unwrap_or_default();
    let active = if bg { Some(active_color(ls)) } else { None };
    let current: Vec<_> = ls.of_color(active).collect();
    before.text("replicas", current.iter().filter(|c| c.running).count());
    let mut attrs = attr_changes(Some(&before), &desired, &container_visible);
    // Only the same reference can have moved: a changed `image` is a change of its own.
    let moved = if attrs.iter().any(|a| a.key == "image") {
        None
    } else {
        image_moved(s, ls, &current)
    };
    if let Some(m) = &moved {
        attrs.insert(0, m.clone());
    }
    let spec_changed =
        current.is_empty() || current.iter().any(|c| c.spec_hash != hash) || moved.is_some();
    let changed_keys: Vec<&str> = attrs
        .iter()
        .filter(|a| a.replaces)
        .map(|a| a.key.as_str())
        .collect();
    let why = if moved.is_some() && changed_keys == ["image"] {
        "image tag moved to new content".to_string()
    } else if changed_keys.is_empty()
        && current
            .iter()
            .any(|c| c.spec_hash == crate::model::live::EDITED_SPEC)
    {
        "drift: changed outside converge".to_string()
    } else if changed_keys.is_empty() {
        "container spec changed".to_string()
    } else {
        format!("{} changed", changed_keys.join(", "))
    };
    if spec_changed && spec_failed {
        out.held_back.push(failed_note());
        if let Some(from) = active {
            out.colors.insert(s.name.to_string(), color_port(s, from));
        }
        return hash;
    }
    let mut change = |action, reason: String, sc| {
        let mut c = Change::new(id.clone(), Subject::Resource(Kind::Service), action, reason);
        c.attributes = attrs.clone();
        c.service = Some(sc);
        out.changes.push(c);
    };
    if let Some(from) = active {
        let to = from.other();
        if spec_changed {
            change(
                ChangeAction::Update,
                format!("blue-green: {to} takes over from {from} ({why})"),
                ServiceChange::Deploy {
                    from,
                    to,
                    replicas: s.replicas,
                    verify_for: s.deploy.verify_for,
                    drain: s.deploy.drain,
                },
            );
            out.colors.insert(s.name.to_string(), color_port(s, to));
            return hash;
        }
        out.colors.insert(s.name.to_string(), color_port(s, from));
    } else if spec_changed {
        // Swarm updates a service in place (it rolls the tasks); containers are replaced.
        let action = if swarm {
            ChangeAction::Update
        } else {
            ChangeAction::Replace
        };
        change(
            action,
            why,
            ServiceChange::Replace {
                strategy: s.deploy.strategy,
                replicas: s.replicas,
            },
        );
        return hash;
    }
    let stopped: Vec<String> = current
        .iter()
        .filter(|c| !c.running)
        .map(|c| c.name.clone())
        .collect();
    let running = (current.len() - stopped.len()) as u32;
    if !stopped.is_empty() && current.len() as u32 <= s.replicas {
        change(
            ChangeAction::Update,
            format!(
                "drift: {} of {} containers stopped ({})",
                stopped.len(),
                current.len(),
                stopped.join(", ")
            ),
            ServiceChange::Repair { stopped },
        );
    } else if current.len() as u32 != s.replicas || running != current.len() as u32 {
        let mut reason = format!("replicas {} → {}", current.len(), s.replicas);
        if let Some(o) = overridden.filter(|o| o.replicas == s.replicas) {
            reason = format!("{reason}: {}", o.reason);
        }
        change(
            ChangeAction::Update,
            reason,
            ServiceChange::Scale {
                from: current.len() as u32,
                to: s.replicas,
                color: active,
            },
        );
    }
    if let Some(active) = active {
        let idle = active.other();
        let idle_running = ls.of_color(Some(idle)).any(|c| c.running);
        let drain_pending = live
            .pending
            .iter()
            .any(|p| p.resource == id.to_string() && p.action == "drain");
        if idle_running && !drain_pending {
            change(
                ChangeAction::Update,
                format!("idle color {idle} is still running with no drain pending"),
                ServiceChange::Drain { color: idle },
            );
        }
    }
    if let Some(o) = overridden.filter(|o| o.replicas == s.replicas) {
        for c in out.changes.iter_mut().filter(|c| c.id == id) {
            if matches!(c.service, Some(ServiceChange::Scale { .. })) {
                c.origin = Some(o.origin);
            }
        }
    }
    hash
}

/// The color taking traffic: as the provider derived it, else the one with running containers.
pub(super) fn active_color(ls: &LiveService) -> Color {
    ls.active_color
        .or_else(|| {
            ls.containers
                .iter()
                .find(|c| c.running)
                .and_then(|c| c.color)
        })
        .or_else(|| ls.containers.first().and_then(|c| c.color))
        .unwrap_or(Color::Blue)
}

pub(super) fn current_color(s: &Service, ls: Option<&LiveService>) -> Option<ActiveColor> {
    let ls = ls.filter(|l| !l.containers.is_empty())?;
    Some(color_port(s, active_color(ls)))
}

pub(super) fn color_port(s: &Service, color: Color) -> ActiveColor {
    let port = match color {
        Color::Blue => s.deploy.blue.as_ref(),
        Color::Green => s.deploy.green.as_ref(),
    }
    .map(|c| c.port.get())
    .or_else(|| published_ports(s).first().copied())
    .unwrap_or(0);
    ActiveColor {
        color: color.as_str().into(),
        port,
    }
}

/// The `image` change of a service whose tag now resolves to another digest than its running
/// containers were created from: `image = "api:1.4.2" (sha256:ab12… -> sha256:cd34…)`.
fn image_moved(
    s: &Service,
    ls: &LiveService,
    current: &[&crate::model::live::LiveContainer],
) -> Option<AttrChange> {
    let image = s.image.as_deref()?;
    let now = ls.image_now.as_deref()?;
    let was = current
        .iter()
        .filter_map(|c| c.image_digest.as_deref())
        .find(|d| *d != now)?;
    let shown = |d: &str| format!("{image} ({})", short_digest(d));
    Some(AttrChange {
        key: "image".into(),
        before: Some(AttrValue::Text(shown(was))),
        after: Some(AttrValue::Text(shown(now))),
        replaces: true,
    })
}

/// `sha256:0123456789ab…`.
fn short_digest(d: &str) -> String {
    let (algo, hex) = d.split_once(':').unwrap_or(("", d));
    let cut: String = hex.chars().take(12).collect();
    if algo.is_empty() {
        format!("{cut}…")
    } else {
        format!("{algo}:{cut}…")
    }
}
