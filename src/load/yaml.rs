//! Parses YAML text into a tree of nodes that remember where they came from (line, column).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A position in a source file: 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span {
    pub file: Arc<str>,
    pub line: usize,
    pub column: usize,
}

impl Span {
    pub fn new(file: &Arc<str>, line: usize, column: usize) -> Self {
        Span {
            file: file.clone(),
            line,
            column,
        }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// How a scalar was written: plain scalars are typed (numbers, booleans, null), quoted ones are strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalarStyle {
    Plain,
    Quoted,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeValue {
    Null,
    Scalar(String, ScalarStyle),
    Seq(Vec<Node>),
    /// Keys keep their own spans so that "unknown field" points at the key.
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: NodeValue,
    pub span: Span,
}

impl Node {
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            NodeValue::Scalar(s, _) => Some(s),
            _ => None,
        }
    }

    /// The value under `key` when this node is a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            NodeValue::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn type_name(&self) -> &'static str {
        match &self.value {
            NodeValue::Null => "null",
            NodeValue::Scalar(..) => "a scalar",
            NodeValue::Seq(_) => "a list",
            NodeValue::Map(_) => "a mapping",
        }
    }
}

/// A YAML syntax error with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub span: Span,
    pub message: String,
    pub hint: Option<String>,
}

/// One `---` document of a file: `None` when it holds nothing but comments.
pub type Document = Option<Node>;

/// Parses every document of `text`; `file` names the source in spans.
pub fn parse_documents(file: &Arc<str>, text: &str) -> Result<Vec<Document>, SyntaxError> {
    let mut builder = TreeBuilder {
        file: file.clone(),
        stack: Vec::new(),
        anchors: HashMap::new(),
        documents: Vec::new(),
        error: None,
    };
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut builder, true) {
        return Err(syntax_error(file, e.marker(), e.info()));
    }
    if let Some(e) = builder.error {
        return Err(e);
    }
    Ok(builder.documents)
}

fn syntax_error(file: &Arc<str>, mark: &Marker, info: &str) -> SyntaxError {
    let hint = if info.contains("tab") {
        Some("YAML does not allow tabs for indentation: indent with spaces".to_string())
    } else if info.contains("mapping values are not allowed") {
        Some(
            "a value that contains `: ` must be quoted, or a key is missing its indentation".into(),
        )
    } else if info.contains("did not find expected key") {
        Some("check the indentation of this line and the one before it".into())
    } else {
        None
    };
    SyntaxError {
        span: Span::new(file, mark.line(), mark.col() + 1),
        message: format!("invalid YAML: {info}"),
        hint,
    }
}

enum Frame {
    Seq(Node, Vec<Node>, usize),
    Map(Node, Vec<(Node, Node)>, Option<Node>, usize),
}

struct TreeBuilder {
    file: Arc<str>,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    documents: Vec<Document>,
    error: Option<SyntaxError>,
}

impl TreeBuilder {
    fn span(&self, mark: &Marker) -> Span {
        Span::new(&self.file, mark.line(), mark.col() + 1)
    }

    fn push_node(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.documents.push(match node.value {
                NodeValue::Null => None,
                _ => Some(node),
            }),
            Some(Frame::Seq(_, items, _)) => items.push(node),
            Some(Frame::Map(head, entries, key, _)) => match key.take() {
                None => {
                    // The block mapping's own marker points past its first key: use the key's.
                    if entries.is_empty() && node.span < head.span {
                        head.span = node.span.clone();
                    }
                    *key = Some(node);
                }
                Some(k) => entries.push((k, node)),
            },
        }
    }
}

impl MarkedEventReceiver for TreeBuilder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let span = self.span(&mark);
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                let value = scalar_value(text, style, tag.is_some());
                self.push_node(Node { value, span }, anchor);
            }
            Event::SequenceStart(anchor, _) => {
                let head = Node {
                    value: NodeValue::Null,
                    span,
                };
                self.stack.push(Frame::Seq(head, Vec::new(), anchor));
            }
            Event::MappingStart(anchor, _) => {
                let head = Node {
                    value: NodeValue::Null,
                    span,
                };
                self.stack.push(Frame::Map(head, Vec::new(), None, anchor));
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq(head, items, anchor)) = self.stack.pop() {
                    let node = Node {
                        value: NodeValue::Seq(items),
                        span: head.span,
                    };
                    self.push_node(node, anchor);
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map(head, entries, _, anchor)) = self.stack.pop() {
                    match apply_merge_keys(entries) {
                        Ok(entries) => {
                            let node = Node {
                                value: NodeValue::Map(entries),
                                span: head.span,
                            };
                            self.push_node(node, anchor);
                        }
                        Err(e) => self.error = Some(e),
                    }
                }
            }
            Event::Alias(id) => match self.anchors.get(&id).cloned() {
                Some(mut node) => {
                    node.span = span;
                    self.push_node(node, 0);
                }
                None => {
                    self.error = Some(SyntaxError {
                        span,
                        message: "invalid YAML: alias refers to an unknown anchor".into(),
                        hint: Some("define the anchor (`&name`) before using it (`*name`)".into()),
                    })
                }
            },
            Event::DocumentStart => self.anchors.clear(),
            _ => {}
        }
    }
}

fn scalar_value(text: String, style: TScalarStyle, tagged: bool) -> NodeValue {
    match style {
        TScalarStyle::Plain
            if !tagged && matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL") =>
        {
            NodeValue::Null
        }
        TScalarStyle::Plain => NodeValue::Scalar(text, ScalarStyle::Plain),
        _ => NodeValue::Scalar(text, ScalarStyle::Quoted),
    }
}

/// Honours YAML merge keys (`<<: *base` or `<<: [*a, *b]`): explicit keys win over merged ones.
fn apply_merge_keys(entries: Vec<(Node, Node)>) -> Result<Vec<(Node, Node)>, SyntaxError> {
    if !entries.iter().any(|(k, _)| is_merge_key(k)) {
        return Ok(entries);
    }
    let mut own = Vec::new();
    let mut merged: Vec<(Node, Node)> = Vec::new();
    for (k, v) in entries {
        if !is_merge_key(&k) {
            own.push((k, v));
            continue;
        }
        let sources = match v.value {
            NodeValue::Map(m) => vec![m],
            NodeValue::Seq(items) => {
                let mut maps = Vec::new();
                for item in items {
                    match item.value {
                        NodeValue::Map(m) => maps.push(m),
                        _ => return Err(bad_merge(&item.span)),
                    }
                }
                maps
            }
            _ => return Err(bad_merge(&v.span)),
        };
        for source in sources {
            for (mk, mv) in source {
                let taken = own
                    .iter()
                    .chain(merged.iter())
                    .any(|(k, _)| k.value == mk.value);
                if !taken {
                    merged.push((mk, mv));
                }
            }
        }
    }
    let mut result: Vec<(Node, Node)> = Vec::new();
    for (k, v) in own.into_iter() {
        result.push((k, v));
    }
    for (k, v) in merged {
        if !result.iter().any(|(rk, _)| rk.value == k.value) {
            result.push((k, v));
        }
    }
    Ok(result)
}

fn is_merge_key(k: &Node) -> bool {
    matches!(&k.value, NodeValue::Scalar(s, ScalarStyle::Plain) if s == "<<")
}

fn bad_merge(span: &Span) -> SyntaxError {
    SyntaxError {
        span: span.clone(),
        message: "invalid YAML: a merge key (`<<`) takes a mapping or a list of mappings".into(),
        hint: Some("write `<<: *anchor` where the anchor names a mapping".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Document>, SyntaxError> {
        parse_documents(&Arc::from("t.yaml"), text)
    }

    #[test]
    fn comment_only_documents_are_none() {
        let docs = parse("kind: Router\n---\n# only a comment\n---\nkind: Service\n").unwrap();
        assert_eq!(docs.len(), 3);
        assert!(docs[1].is_none());
        assert_eq!(
            docs[2].as_ref().unwrap().get("kind").unwrap().as_str(),
            Some("Service")
        );
    }

    #[test]
    fn merge_keys_are_honoured_and_explicit_keys_win() {
        let docs = parse("base: &b {a: 1, b: 2}\nx:\n  <<: *b\n  b: 3\n").unwrap();
        let x = docs[0].as_ref().unwrap().get("x").unwrap();
        assert_eq!(x.get("a").unwrap().as_str(), Some("1"));
        assert_eq!(x.get("b").unwrap().as_str(), Some("3"));
    }

    #[test]
    fn spans_are_one_based_and_block_maps_start_at_their_first_key() {
        let docs = parse("kind: Service\nname: api\nhealth:\n  interval: 10s\n").unwrap();
        let doc = docs[0].as_ref().unwrap();
        assert_eq!((doc.span.line, doc.span.column), (1, 1));
        let health = doc.get("health").unwrap();
        assert_eq!((health.span.line, health.span.column), (4, 3));
    }

    #[test]
    fn tabs_are_a_syntax_error_with_a_hint() {
        let err = parse("kind: Service\nimage:\n\tfoo: 1\n").unwrap_err();
        assert_eq!(err.span.line, 3);
        assert!(err.hint.unwrap().contains("tabs"));
    }
}
