//! Environment overrides: JSON merge patches (RFC 7386) applied to resource documents, keeping
//! the patch's source positions so errors point at the override that caused them.

use super::yaml::{Node, NodeValue};

/// Merges `patch` into `target`: mappings merge key by key, `null` removes a key, anything else replaces.
pub fn merge_patch(target: &mut Node, patch: &Node) {
    let NodeValue::Map(patch_entries) = &patch.value else {
        *target = patch.clone();
        return;
    };
    if !matches!(target.value, NodeValue::Map(_)) {
        *target = Node {
            value: NodeValue::Map(Vec::new()),
            span: patch.span.clone(),
        };
    }
    let NodeValue::Map(entries) = &mut target.value else {
        unreachable!("target was made a mapping above");
    };
    for (key, value) in patch_entries {
        let pos = entries.iter().position(|(k, _)| k.value == key.value);
        match (&value.value, pos) {
            (NodeValue::Null, Some(i)) => {
                entries.remove(i);
            }
            (NodeValue::Null, None) => {}
            (_, Some(i)) => merge_patch(&mut entries[i].1, value),
            (_, None) => {
                let mut fresh = Node {
                    value: NodeValue::Null,
                    span: value.span.clone(),
                };
                merge_patch(&mut fresh, value);
                entries.push((key.clone(), fresh));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::yaml::parse_documents;
    use std::sync::Arc;

    fn doc(text: &str) -> Node {
        parse_documents(&Arc::from("t.yaml"), text).unwrap()[0]
            .clone()
            .unwrap()
    }

    #[test]
    fn merge_patch_merges_replaces_and_removes() {
        let mut target = doc(
            "replicas: 1\ndeploy: {strategy: blue-green, drain: 5m}\nscale: {min: 1, max: 3}\n",
        );
        let patch = doc("replicas: 3\ndeploy: {drain: 1m}\nscale: null\n");
        merge_patch(&mut target, &patch);
        assert_eq!(target.get("replicas").unwrap().as_str(), Some("3"));
        let deploy = target.get("deploy").unwrap();
        assert_eq!(deploy.get("strategy").unwrap().as_str(), Some("blue-green"));
        assert_eq!(deploy.get("drain").unwrap().as_str(), Some("1m"));
        assert!(target.get("scale").is_none());
        assert_eq!(
            target.get("replicas").unwrap().span.line,
            1,
            "patched values keep the patch's span"
        );
    }
}
