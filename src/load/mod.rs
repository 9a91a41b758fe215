//! Loading: read a desired-state tree → YAML documents with source spans → typed resources →
//! validated `DesiredState`, reporting every problem at once. Only `load_dir` does I/O.

pub mod allowed_signers;
pub mod de;
pub mod diagnostic;
pub mod git;
mod implied;
pub mod limits;
pub mod overrides;
pub mod pattern;
pub mod signature;
pub mod source;
pub mod validate;
pub mod yaml;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use thiserror::Error;

use crate::model::{DesiredState, Environment, Kind, Project, Resource, ResourceId};
use de::{from_node_all, Sink};
pub use diagnostic::{Diagnostic, Diagnostics};
pub use source::{SourceError, SourceTree};
use yaml::{Node, NodeValue};

/// How many unknown override ids of an environment get a "did you mean".
const MAX_SUGGESTIONS: usize = 20;

#[derive(Debug, Error)]
pub enum LoadError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("{0}")]
    Invalid(Diagnostics),
}

/// Reads `dir` and loads it for `env` (no overrides when `None`).
pub fn load_dir(dir: &Path, env: Option<&str>) -> Result<DesiredState, LoadError> {
    let tree = SourceTree::read_dir(dir)?;
    load(&tree, env).map_err(LoadError::Invalid)
}

/// A YAML document with its kind and name, before typing.
#[derive(Debug, Clone)]
pub struct Document {
    pub kind: Kind,
    pub name: String,
    pub node: Node,
}

impl Document {
    pub fn id(&self) -> ResourceId {
        ResourceId::new(self.kind, &self.name)
    }

    fn name_span(&self) -> &yaml::Span {
        self.node
            .get("name")
            .map(|n| &n.span)
            .unwrap_or(&self.node.span)
    }
}

/// A typed resource with the document it came from (for the positions of later checks).
pub struct Typed {
    pub resource: Resource,
    pub node: Node,
}

/// Loads the tree for `env`; every problem found is returned together.
pub fn load(tree: &SourceTree, env: Option<&str>) -> Result<DesiredState, Diagnostics> {
    let mut diags = Vec::new();
    let Some(documents) = read_documents(tree, &mut diags) else {
        // Over the limit on documents: nothing after it would be checked.
        return Err(Diagnostics(diags).sorted());
    };
    let sink = Sink::default();

    let (projects, rest): (Vec<_>, Vec<_>) =
        documents.into_iter().partition(|d| d.kind == Kind::Project);
    let (environments, mut resources): (Vec<_>, Vec<_>) =
        rest.into_iter().partition(|d| d.kind == Kind::Environment);

    let project = load_project(tree, &projects, &sink, &mut diags);
    check_duplicates(environments.iter().chain(resources.iter()), &mut diags);
    let env_names = project.as_ref().map(|p| {
        p.environments
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
    });
    let known_ids: Vec<ResourceId> = resources.iter().map(Document::id).collect();
    for doc in &environments {
        check_environment(doc, env_names.as_deref(), &known_ids, &sink, &mut diags);
    }
    if let Some(env) = env {
        select_environment(
            env,
            env_names.as_deref(),
            &environments,
            &mut resources,
            &mut diags,
        );
    }

    let mut typed: Vec<Typed> = resources
        .into_iter()
        .filter_map(|doc| type_resource(doc, &sink, &mut diags))
        .collect();
    diags.extend(sink.take());
    validate::build_contexts(&mut typed, tree, &mut diags);
    validate::env_files(&mut typed, tree, &mut diags);

    let project_node = projects.first().map(|d| &d.node);
    let checked = validate::check(project.as_ref().zip(project_node), &typed, tree, &mut diags);
    if !diags.is_empty() {
        return Err(Diagnostics(diags).sorted());
    }
    let project = project.expect("a missing Project is a diagnostic");
    let uses = validate::template_uses(&typed);
    let mut state = DesiredState {
        project,
        environment: env.map(str::to_string),
        resources: typed
            .into_iter()
            .map(|t| (t.resource.id(), t.resource))
            .collect(),
        templates: checked.templates,
        migrations: checked.migrations,
    };
    implied::add_implied(&mut state);
    let problems = validate::render_templates(&state, &uses, tree);
    if !problems.is_empty() {
        return Err(Diagnostics(problems).sorted());
    }
    Ok(state)
}

/// Loads the base state and every environment the Project lists; all problems together.
pub fn load_every_environment(tree: &SourceTree) -> Result<Vec<DesiredState>, Diagnostics> {
    let base = load(tree, None);
    let envs: Vec<String> = match &base {
        Ok(state) => state
            .project
            .environments
            .iter()
            .map(|e| e.to_string())
            .collect(),
        Err(d) => return Err(d.clone()),
    };
    let mut states = vec![base?];
    let mut all = Vec::new();
    for env in envs {
        match load(tree, Some(&env)) {
            Ok(s) => states.push(s),
            Err(d) => all.extend(d.0.into_iter().map(|mut x| {
                x.notes.push(format!("with --env {env}"));
                x
            })),
        }
    }
    if all.is_empty() {
        Ok(states)
    } else {
        Err(Diagnostics(all).sorted())
    }
}

/// The documents of every YAML file; `None` when there are too many to check.
fn read_documents(tree: &SourceTree, diags: &mut Vec<Diagnostic>) -> Option<Vec<Document>> {
    let mut documents = Vec::new();
    let mut count = 0;
    for (rel, bytes) in tree.yaml_files() {
        let file: Arc<str> = Arc::from(tree.display(rel));
        if bytes.len() > limits::MAX_FILE_BYTES {
            let (message, hint) = limits::file_too_large();
            diags.push(Diagnostic::at(&yaml::Span::new(&file, 1, 1), message).hint(hint));
            continue;
        }
        let Ok(text) = std::str::from_utf8(bytes) else {
            let span = yaml::Span::new(&file, 1, 1);
            diags.push(
                Diagnostic::at(&span, "file is not UTF-8 text").hint("save the file as UTF-8"),
            );
            continue;
        };
        match yaml::parse_documents_within(&file, text, limits::MAX_DOCUMENTS - count) {
            Ok(docs) => {
                count += docs.len();
                documents.extend(
                    docs.into_iter()
                        .flatten()
                        .filter_map(|n| classify(n, diags)),
                )
            }
            Err(e) => {
                let over = e.message == limits::too_many_documents().0;
                diags.push(Diagnostic::at(&e.span, e.message).maybe_hint(e.hint));
                if over {
                    return None;
                }
            }
        }
    }
    Some(documents)
}

/// Checks that a document is a mapping with a known `kind` and a `name`.
fn classify(node: Node, diags: &mut Vec<Diagnostic>) -> Option<Document> {
    if !matches!(node.value, NodeValue::Map(_)) {
        diags.push(
            Diagnostic::at(&node.span, format!("expected a mapping with `kind` and `name`, found {}", node.type_name()))
                .hint("each document (between `---` lines) declares one resource: `kind: Service`, `name: api`, …"),
        );
        return None;
    }
    let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
    let kind = match node.get("kind") {
        None => {
            diags.push(
                Diagnostic::at(&node.span, "missing required field `kind`")
                    .hint(format!("add `kind:` with one of {}", kinds.join(", "))),
            );
            return None;
        }
        Some(k) => match k.as_str().and_then(Kind::parse) {
            Some(kind) => kind,
            None => {
                let text = k.as_str().unwrap_or("");
                diags.push(
                    Diagnostic::at(&k.span, format!("unknown kind `{text}`"))
                        .hint(diagnostic::suggestion(text, &kinds, "expected one of")),
                );
                return None;
            }
        },
    };
    let name = match node.get("name").map(|n| (n, n.as_str())) {
        Some((_, Some(name))) => name.to_string(),
        Some((n, None)) => {
            diags.push(Diagnostic::at(
                &n.span,
                format!("expected a name, found {}", n.type_name()),
            ));
            return None;
        }
        None => {
            diags.push(
                Diagnostic::at(
                    &node.span,
                    format!("missing required field `name` in {kind}"),
                )
                .hint("add `name:` with a name unique among resources of this kind"),
            );
            return None;
        }
    };
    Some(Document {
        kind,
        name,
        node: without_kind(node),
    })
}

fn without_kind(mut node: Node) -> Node {
    if let NodeValue::Map(entries) = &mut node.value {
        entries.retain(|(k, _)| k.as_str() != Some("kind"));
    }
    node
}

fn load_project(
    tree: &SourceTree,
    projects: &[Document],
    sink: &Sink,
    diags: &mut Vec<Diagnostic>,
) -> Option<Project> {
    let Some(first) = projects.first() else {
        diags.push(
            Diagnostic::new(None, format!("no Project found in {}", tree.root))
                .hint("add `converge.yaml` with `kind: Project` and `name: <project>` at the root of the desired state"),
        );
        return None;
    };
    for extra in &projects[1..] {
        diags.push(
            Diagnostic::at(
                &extra.node.span,
                format!("a second Project `{}`", extra.name),
            )
            .note(format!(
                "the Project is `{}` at {}",
                first.name, first.node.span
            ))
            .hint("a desired state has exactly one Project; remove this one"),
        );
    }
    match from_node_all::<Project>(&first.node, sink) {
        Ok(p) => Some(p),
        Err(errors) => {
            diags.extend(
                errors
                    .into_iter()
                    .map(|e| e.into_diagnostic(&first.node.span)),
            );
            None
        }
    }
}

fn check_duplicates<'a>(docs: impl Iterator<Item = &'a Document>, diags: &mut Vec<Diagnostic>) {
    let mut seen: BTreeMap<ResourceId, &Document> = BTreeMap::new();
    for doc in docs {
        match seen.get(&doc.id()) {
            Some(first) => diags.push(
                Diagnostic::at(
                    doc.name_span(),
                    format!("duplicate resource id `{}`", doc.id()),
                )
                .note(format!("first defined at {}", first.name_span()))
                .hint("rename one of them; names are unique per kind"),
            ),
            None => {
                seen.insert(doc.id(), doc);
            }
        }
    }
}

fn check_environment(
    doc: &Document,
    env_names: Option<&[String]>,
    known: &[ResourceId],
    sink: &Sink,
    diags: &mut Vec<Diagnostic>,
) {
    if let Err(errors) = from_node_all::<Environment>(&doc.node, sink) {
        diags.extend(
            errors
                .into_iter()
                .map(|e| e.into_diagnostic(&doc.node.span)),
        );
        return;
    }
    if let Some(names) = env_names {
        if !names.iter().any(|n| n == &doc.name) {
            let list: Vec<&str> = names.iter().map(String::as_str).collect();
            diags.push(
                Diagnostic::at(
                    doc.name_span(),
                    format!("environment `{}` is not listed in the Project", doc.name),
                )
                .hint(
                    match diagnostic::did_you_mean(&doc.name, list.iter().copied()) {
                        Some(c) => {
                            format!("did you mean `{c}`? Or add it to the Project's `environments`")
                        }
                        None => format!(
                            "add it to the Project's `environments` (now: {})",
                            list.join(", ")
                        ),
                    },
                ),
            );
        }
    }
    let Some(NodeValue::Map(entries)) = doc.node.get("overrides").map(|n| &n.value) else {
        return;
    };
    let ids: Vec<String> = known.iter().map(|i| i.to_string()).collect();
    let known: HashSet<&ResourceId> = known.iter().collect();
    // A "did you mean" compares with every resource: only for the first few unknown ids.
    let mut suggestions = 0;
    for (key, patch) in entries {
        let text = key.as_str().unwrap_or("");
        match ResourceId::parse(text, None) {
            None => diags.push(
                Diagnostic::at(
                    &key.span,
                    format!("override key `{text}` is not a resource id"),
                )
                .hint("write `kind/name`, e.g. `service/api`"),
            ),
            Some(id) if !known.contains(&id) => {
                suggestions += 1;
                let hint = if suggestions <= MAX_SUGGESTIONS {
                    diagnostic::suggestion(
                        text,
                        &ids.iter().map(String::as_str).collect::<Vec<_>>(),
                        "resources are",
                    )
                } else {
                    "remove it, or declare the resource".to_string()
                };
                diags.push(
                    Diagnostic::at(
                        &key.span,
                        format!("override for `{id}`, which does not exist"),
                    )
                    .hint(hint),
                )
            }
            Some(_) => {}
        }
        if !matches!(patch.value, NodeValue::Map(_)) {
            diags.push(
                Diagnostic::at(
                    &patch.span,
                    format!(
                        "expected a mapping of fields to override, found {}",
                        patch.type_name()
                    ),
                )
                .hint("write e.g. `service/api: {replicas: 3}`"),
            );
        } else if patch.get("name").is_some() || patch.get("kind").is_some() {
            diags.push(
                Diagnostic::at(&patch.span, "an override cannot change `kind` or `name`")
                    .hint("declare a separate resource instead"),
            );
        }
    }
}

fn select_environment(
    env: &str,
    env_names: Option<&[String]>,
    environments: &[Document],
    resources: &mut [Document],
    diags: &mut Vec<Diagnostic>,
) {
    if let Some(names) = env_names {
        if !names.iter().any(|n| n == env) {
            let list: Vec<&str> = names.iter().map(String::as_str).collect();
            diags.push(
                Diagnostic::new(None, format!("unknown environment `{env}` (--env)"))
                    .hint(diagnostic::suggestion(env, &list, "the Project lists")),
            );
            return;
        }
    }
    let Some(doc) = environments.iter().find(|d| d.name == env) else {
        return;
    };
    let Some(NodeValue::Map(entries)) = doc.node.get("overrides").map(|n| &n.value) else {
        return;
    };
    // The first resource of each id, as `find` would.
    let mut index: HashMap<ResourceId, usize> = HashMap::new();
    for (i, r) in resources.iter().enumerate() {
        index.entry(r.id()).or_insert(i);
    }
    for (key, patch) in entries {
        let Some(id) = key.as_str().and_then(|t| ResourceId::parse(t, None)) else {
            continue;
        };
        if !matches!(patch.value, NodeValue::Map(_)) || patch.get("name").is_some() {
            continue;
        }
        if let Some(&i) = index.get(&id) {
            overrides::merge_patch(&mut resources[i].node, patch);
        }
    }
}

fn type_resource(doc: Document, sink: &Sink, diags: &mut Vec<Diagnostic>) -> Option<Typed> {
    let node = &doc.node;
    let typed = match doc.kind {
        Kind::Service => from_node_all(node, sink).map(Resource::Service),
        Kind::Router => from_node_all(node, sink).map(Resource::Router),
        Kind::ConfigFile => from_node_all(node, sink).map(Resource::ConfigFile),
        Kind::Database => from_node_all(node, sink).map(Resource::Database),
        Kind::Bucket => from_node_all(node, sink).map(Resource::Bucket),
        Kind::Backup => from_node_all(node, sink).map(Resource::Backup),
        Kind::Budget => from_node_all(node, sink).map(Resource::Budget),
        Kind::Notifier => from_node_all(node, sink).map(Resource::Notifier),
        Kind::Project | Kind::Environment | Kind::Network | Kind::Volume => {
            unreachable!("partitioned out before typing; implied kinds are never documents")
        }
    };
    match typed {
        Ok(resource) => Some(Typed {
            resource,
            node: doc.node,
        }),
        Err(errors) => {
            diags.extend(
                errors
                    .into_iter()
                    .map(|e| e.into_diagnostic(&doc.node.span)),
            );
            None
        }
    }
}
