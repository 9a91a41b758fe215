//! Service build contexts: the context directory and Dockerfile exist; a digest of the context.

use sha2::{Digest, Sha256};

use super::span_at;
use crate::load::diagnostic::Diagnostic;
use crate::load::source::SourceTree;
use crate::load::Typed;
use crate::model::attributes::hex;
use crate::model::Resource;

/// Checks each build context and Dockerfile exist, and records a digest of the context's files.
pub fn build_contexts(typed: &mut [Typed], tree: &SourceTree, diags: &mut Vec<Diagnostic>) {
    for t in typed.iter_mut() {
        let Resource::Service(s) = &mut t.resource else {
            continue;
        };
        let Some(b) = s.build.as_mut() else { continue };
        let dir = b
            .context
            .trim_end_matches('/')
            .trim_start_matches("./")
            .to_string();
        if !tree.has_dir(&dir) {
            diags.push(
                Diagnostic::at(
                    &span_at(&t.node, &["build", "context"]),
                    format!("build context `{}` not found", b.context),
                )
                .hint(format!(
                    "paths are relative to the desired-state directory ({})",
                    tree.root
                )),
            );
            continue;
        }
        let dockerfile = format!("{dir}/{}", b.dockerfile.as_deref().unwrap_or("Dockerfile"));
        if !tree.contains(&dockerfile) {
            diags.push(Diagnostic::at(
                &span_at(&t.node, &["build"]),
                format!("`{dockerfile}` not found in the build context"),
            ));
        }
        let mut h = Sha256::new();
        let prefix = format!("{dir}/");
        for (path, content) in tree.files.iter().filter(|(p, _)| p.starts_with(&prefix)) {
            h.update(path.as_bytes());
            h.update([0]);
            h.update(content);
        }
        b.context_digest = Some(format!("sha256:{}", hex(&h.finalize()[..6])));
    }
}
