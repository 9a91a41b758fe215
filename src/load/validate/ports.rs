//! Host-port collisions between services (and between replicas of one service) on a shared host.

use std::collections::BTreeMap;

use super::{hosts_of, published_ports, span_at, Ctx};
use crate::load::diagnostic::Diagnostic;
use crate::load::yaml::{Node, NodeValue, Span};
use crate::load::Typed;
use crate::model::service::Strategy;
use crate::model::Resource;

/// Two services that may share a host must not publish the same host port; nor may replicas on one host.
pub(super) fn check_host_ports(typed: &[Typed], ctx: &mut Ctx) {
    let Some(p) = ctx.project else { return };
    let mut taken: BTreeMap<(String, u16), (String, Span)> = BTreeMap::new();
    for t in typed {
        let Resource::Service(s) = &t.resource else {
            continue;
        };
        let hosts = hosts_of(s, p);
        let ports = published_ports(s);
        let bg = s.deploy.strategy == Strategy::BlueGreen;
        for (i, port) in ports.iter().enumerate() {
            let span = if bg {
                span_at(
                    &t.node,
                    &["deploy", if i == 0 { "blue" } else { "green" }, "port"],
                )
            } else {
                port_span(&t.node, *port)
            };
            for host in &hosts {
                let key = (host.to_string(), *port);
                match taken.get(&key) {
                    Some((other, first)) if other != s.name.as_str() => {
                        ctx.diags.push(
                            Diagnostic::at(&span, format!("service/{} and service/{other} both publish host port {port} on host {host}", s.name))
                                .note(format!("service/{other} publishes it at {first}"))
                                .hint("give one of them another host port, or place them on different hosts"),
                        );
                    }
                    Some(_) => {}
                    None => {
                        taken.insert(key, (s.name.to_string(), span.clone()));
                    }
                }
            }
        }
        if !ports.is_empty() && !hosts.is_empty() && s.replicas as usize > hosts.len() {
            ctx.diags.push(
                Diagnostic::at(&span_at(&t.node, &["replicas"]), format!(
                    "service/{} runs {} replicas on {} host(s) but publishes fixed host port(s) {}: two replicas on one host cannot share a port",
                    s.name, s.replicas, hosts.len(), ports.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ")
                ))
                .hint("lower `replicas` to the number of hosts, add hosts to its placement, or stop publishing a fixed host port"),
            );
        }
    }
}

fn port_span(node: &Node, port: u16) -> Span {
    if let Some(NodeValue::Seq(items)) = node.get("ports").map(|p| &p.value) {
        for item in items {
            if let Some(h) = item.get("host") {
                if h.as_str() == Some(&port.to_string()) {
                    return h.span.clone();
                }
            }
        }
    }
    span_at(node, &["ports"])
}
