//! Service `env_file`s: each file exists in the desired state and parses; its variables are
//! kept on the service (a later file wins) for apply. Diagnostics name the file and line,
//! never a value.

use super::span_at;
use crate::load::diagnostic::Diagnostic;
use crate::load::source::SourceTree;
use crate::load::yaml::Span;
use crate::load::Typed;
use crate::model::service_runtime::parse_env_file;
use crate::model::Resource;

/// Reads every service's env files into `env_file_values`.
pub fn env_files(typed: &mut [Typed], tree: &SourceTree, diags: &mut Vec<Diagnostic>) {
    for t in typed.iter_mut() {
        let Resource::Service(s) = &mut t.resource else {
            continue;
        };
        for (i, path) in s.env_file.iter().enumerate() {
            let span = span_at(&t.node, &["env_file", &i.to_string()]);
            let rel = path.trim_start_matches("./");
            let Some(text) = tree.text(rel) else {
                let what = if tree.contains(rel) {
                    format!("env_file `{path}` is not UTF-8 text")
                } else {
                    format!("env_file `{path}` not found")
                };
                diags.push(Diagnostic::at(&span, what).hint(format!(
                    "paths are relative to the desired-state directory ({})",
                    tree.root
                )));
                continue;
            };
            match parse_env_file(text) {
                Ok(vars) => s.env_file_values.0.extend(vars),
                Err(e) => {
                    // At the line of the env file itself; its text is never shown.
                    let file: std::sync::Arc<str> = format!("{}/{rel}", tree.root).into();
                    let at = Span::new(&file, e.line, 1);
                    diags.push(
                        Diagnostic::at(
                            &at,
                            format!("env_file of service/{}: {}", s.name, e.problem),
                        )
                        .hint("write `KEY=VALUE` lines; `#` starts a comment")
                        .note(format!("listed at {span}")),
                    )
                }
            }
        }
    }
}
