//! Dependency cycles between resources, each reported once.

use std::collections::{BTreeMap, BTreeSet};

use super::{span_at, Ctx};
use crate::load::diagnostic::Diagnostic;
use crate::load::Typed;
use crate::model::ResourceId;

pub(super) fn check_cycles(typed: &[Typed], ctx: &mut Ctx) {
    let graph: BTreeMap<ResourceId, Vec<ResourceId>> = typed
        .iter()
        .map(|t| {
            let deps = t
                .resource
                .dependencies()
                .into_iter()
                .filter(|d| ctx.ids.contains(d))
                .collect();
            (t.resource.id(), deps)
        })
        .collect();
    let mut state: BTreeMap<&ResourceId, u8> = BTreeMap::new();
    let mut reported: BTreeSet<Vec<ResourceId>> = BTreeSet::new();
    for start in graph.keys() {
        let mut stack: Vec<&ResourceId> = Vec::new();
        visit(start, &graph, &mut state, &mut stack, &mut |cycle| {
            let mut key = cycle.to_vec();
            key.sort();
            if reported.insert(key) {
                let names: Vec<String> = cycle
                    .iter()
                    .chain(cycle.first())
                    .map(|i| i.to_string())
                    .collect();
                let span = ctx
                    .by_id
                    .get(&cycle[0])
                    .map(|t| span_at(&t.node, &["depends_on"]));
                ctx.diags.push(
                    Diagnostic::new(span, format!("dependency cycle: {}", names.join(" → ")))
                        .hint("remove one of these dependencies"),
                );
            }
        });
    }
}

fn visit<'g>(
    id: &'g ResourceId,
    graph: &'g BTreeMap<ResourceId, Vec<ResourceId>>,
    state: &mut BTreeMap<&'g ResourceId, u8>,
    stack: &mut Vec<&'g ResourceId>,
    on_cycle: &mut dyn FnMut(&[ResourceId]),
) {
    match state.get(id) {
        Some(2) => return,
        Some(1) => {
            let pos = stack.iter().position(|x| *x == id).unwrap_or(0);
            let cycle: Vec<ResourceId> = stack[pos..].iter().map(|x| (*x).clone()).collect();
            on_cycle(&cycle);
            return;
        }
        _ => {}
    }
    state.insert(id, 1);
    stack.push(id);
    for dep in graph.get(id).into_iter().flatten() {
        if let Some((key, _)) = graph.get_key_value(dep) {
            visit(key, graph, state, stack, on_cycle);
        }
    }
    stack.pop();
    state.insert(id, 2);
}
