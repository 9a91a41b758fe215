//! Parses YAML text into a tree of nodes that remember where they came from (line, column).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::limits;

/// A position in a source file: 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScalarStyle {
    Plain,
    Quoted,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NodeValue {
    Null,
    Scalar(String, ScalarStyle),
    Seq(Vec<Node>),
    /// Keys keep their own spans so that "unknown field" points at the key.
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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
    parse_documents_within(file, text, limits::MAX_DOCUMENTS)
}

/// Like `parse_documents`, but more than `max_documents` documents is an error.
pub fn parse_documents_within(
    file: &Arc<str>,
    text: &str,
    max_documents: usize,
) -> Result<Vec<Document>, SyntaxError> {
    let mut builder = TreeBuilder {
        file: file.clone(),
        stack: Vec::new(),
        sizes: Vec::new(),
        anchors: HashMap::new(),
        alias_nodes: 0,
        anchored_nodes: 0,
        nodes: 0,
        document_starts: 0,
        max_documents,
        documents: Vec::new(),
        error: None,
    };
    // Events are pulled one at a time (`Parser::load` recurses once per level of nesting), so
    // that a limit stops the parse where it is reached.
    let mut parser = Parser::new_from_str(text);
    loop {
        let (ev, mark) = match parser.next_token() {
            Ok(next) => next,
            Err(e) => return Err(syntax_error(file, e.marker(), e.info())),
        };
        if ev == Event::StreamEnd {
            break;
        }
        builder.on_event(ev, mark);
        if let Some(e) = builder.error.take() {
            return Err(e);
        }
    }
    Ok(builder.documents)
}

fn syntax_error(file: &Arc<str>, mark: &Marker, info: &str) -> SyntaxError {
    let span = Span::new(file, mark.line(), mark.col() + 1);
    if info == "recursion limit exceeded" {
        // The scanner's own limit on `[`/`{` nesting (255): it reads ahead of our depth check.
        let (message, hint) = limits::too_deep();
        return SyntaxError {
            span,
            message,
            hint: Some(hint),
        };
    }
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
        span,
        message: format!("invalid YAML: {info}"),
        hint,
    }
}

enum Frame {
    Seq(Node, Vec<Node>, usize),
    Map(Node, Vec<(Node, Node)>, Option<Node>, usize),
}

/// How big a finished node is: how many nodes it holds (itself included) and how many levels
/// of lists and mappings (0 for a scalar).
#[derive(Debug, Clone, Copy, Default)]
struct Size {
    nodes: usize,
    depth: usize,
}

impl Size {
    const SCALAR: Size = Size { nodes: 1, depth: 0 };

    fn add_child(&mut self, child: Size) {
        self.nodes = self.nodes.saturating_add(child.nodes);
        self.depth = self.depth.max(child.depth + 1);
    }
}

struct TreeBuilder {
    file: Arc<str>,
    stack: Vec<Frame>,
    /// The size so far of each open list or mapping, in step with `stack`.
    sizes: Vec<Size>,
    anchors: HashMap<usize, (Node, Size)>,
    /// Nodes copied by aliases in the current document.
    alias_nodes: usize,
    /// Nodes held by the copies in `anchors`.
    anchored_nodes: usize,
    /// Scalars, lists and mappings read from the file (aliases not included).
    nodes: usize,
    document_starts: usize,
    max_documents: usize,
    documents: Vec<Document>,
    error: Option<SyntaxError>,
}

impl TreeBuilder {
    fn span(&self, mark: &Marker) -> Span {
        Span::new(&self.file, mark.line(), mark.col() + 1)
    }

    fn fail(&mut self, span: Span, (message, hint): (String, String)) {
        self.error = Some(SyntaxError {
            span,
            message,
            hint: Some(hint),
        });
    }

    /// Opens a list or mapping, unless that nests too deep.
    fn open(&mut self, frame: Frame) {
        if self.stack.len() >= limits::MAX_DEPTH {
            let (Frame::Seq(head, ..) | Frame::Map(head, ..)) = frame;
            return self.fail(head.span, limits::too_deep());
        }
        self.stack.push(frame);
        self.sizes.push(Size { nodes: 1, depth: 0 });
    }

    fn push_node(&mut self, node: Node, anchor: usize, size: Size) {
        if anchor > 0 {
            self.anchored_nodes = self.anchored_nodes.saturating_add(size.nodes);
            if self.anchored_nodes > limits::MAX_ANCHORED_NODES {
                return self.fail(node.span, limits::too_many_anchored_nodes());
            }
            self.anchors.insert(anchor, (node.clone(), size));
        }
        if let Some(parent) = self.sizes.last_mut() {
            parent.add_child(size);
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
        if matches!(
            ev,
            Event::Scalar(..) | Event::SequenceStart(..) | Event::MappingStart(..)
        ) {
            self.nodes += 1;
            if self.nodes > limits::MAX_FILE_NODES {
                return self.fail(span, limits::too_many_nodes());
            }
        }
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                let value = scalar_value(text, style, tag.is_some());
                self.push_node(Node { value, span }, anchor, Size::SCALAR);
            }
            Event::SequenceStart(anchor, _) => {
                let head = Node {
                    value: NodeValue::Null,
                    span,
                };
                self.open(Frame::Seq(head, Vec::new(), anchor));
            }
            Event::MappingStart(anchor, _) => {
                let head = Node {
                    value: NodeValue::Null,
                    span,
                };
                self.open(Frame::Map(head, Vec::new(), None, anchor));
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq(head, items, anchor)) = self.stack.pop() {
                    let size = self.sizes.pop().unwrap_or_default();
                    let node = Node {
                        value: NodeValue::Seq(items),
                        span: head.span,
                    };
                    self.push_node(node, anchor, size);
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map(head, entries, _, anchor)) = self.stack.pop() {
                    let size = self.sizes.pop().unwrap_or_default();
                    match apply_merge_keys(entries) {
                        Ok(entries) => {
                            let node = Node {
                                value: NodeValue::Map(entries),
                                span: head.span,
                            };
                            self.push_node(node, anchor, size);
                        }
                        Err(e) => self.error = Some(e),
                    }
                }
            }
            Event::Alias(id) => match self.anchors.get(&id) {
                Some((_, size)) if self.stack.len() + size.depth > limits::MAX_DEPTH => {
                    self.fail(span, limits::too_deep())
                }
                Some((_, size))
                    if self.alias_nodes.saturating_add(size.nodes) > limits::MAX_ALIAS_NODES =>
                {
                    self.fail(span, limits::too_many_alias_nodes())
                }
                Some((node, size)) => {
                    let (mut node, size) = (node.clone(), *size);
                    self.alias_nodes += size.nodes;
                    node.span = span;
                    self.push_node(node, 0, size);
                }
                None => {
                    self.error = Some(SyntaxError {
                        span,
                        message: "invalid YAML: alias refers to an unknown anchor".into(),
                        hint: Some("define the anchor (`&name`) before using it (`*name`)".into()),
                    })
                }
            },
            Event::DocumentStart => {
                self.anchors.clear();
                self.alias_nodes = 0;
                self.anchored_nodes = 0;
                self.document_starts += 1;
                if self.document_starts > self.max_documents {
                    self.fail(span, limits::too_many_documents());
                }
            }
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

/// Honours YAML merge keys (`<<: *base` or `<<: [*a, *b]`): explicit keys win over merged ones,
/// and an earlier merged mapping over a later one.
fn apply_merge_keys(entries: Vec<(Node, Node)>) -> Result<Vec<(Node, Node)>, SyntaxError> {
    if !entries.iter().any(|(k, _)| is_merge_key(k)) {
        return Ok(entries);
    }
    let mut own = Vec::new();
    let mut sourced: Vec<(Node, Node)> = Vec::new();
    for (k, v) in entries {
        if !is_merge_key(&k) {
            own.push((k, v));
            continue;
        }
        match v.value {
            NodeValue::Map(m) => sourced.extend(m),
            NodeValue::Seq(items) => {
                for item in items {
                    match item.value {
                        NodeValue::Map(m) => sourced.extend(m),
                        _ => return Err(bad_merge(&item.span)),
                    }
                }
            }
            _ => return Err(bad_merge(&v.span)),
        }
    }
    let mut seen = SeenKeys::default();
    for (i, (k, _)) in own.iter().enumerate() {
        seen.first(&k.value, i);
    }
    let keep: Vec<bool> = sourced
        .iter()
        .enumerate()
        .map(|(i, (k, _))| seen.first(&k.value, own.len() + i).is_none())
        .collect();
    drop(seen);
    own.extend(
        sourced
            .into_iter()
            .zip(keep)
            .filter_map(|(entry, keep)| keep.then_some(entry)),
    );
    Ok(own)
}

/// Which keys of a mapping were seen, and where first: a short list while the mapping is small,
/// a hash map once it grows (so that checking every key of a mapping takes linear time).
#[derive(Default)]
pub(crate) struct SeenKeys<'a> {
    few: Vec<(&'a NodeValue, usize)>,
    many: Option<HashMap<&'a NodeValue, usize>>,
}

impl<'a> SeenKeys<'a> {
    const FEW: usize = 16;

    /// The index where `key` was first seen; when it is new, records it at `index`.
    pub(crate) fn first(&mut self, key: &'a NodeValue, index: usize) -> Option<usize> {
        let Some(many) = &mut self.many else {
            if let Some((_, i)) = self.few.iter().find(|(k, _)| *k == key) {
                return Some(*i);
            }
            self.few.push((key, index));
            if self.few.len() > Self::FEW {
                self.many = Some(self.few.drain(..).collect());
            }
            return None;
        };
        match many.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => Some(*e.get()),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(index);
                None
            }
        }
    }
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
    fn nesting_is_accepted_up_to_the_limit_and_refused_past_it() {
        let nest = |n: usize| format!("{}x{}", "[".repeat(n), "]".repeat(n));
        assert!(parse(&nest(limits::MAX_DEPTH)).is_ok());
        let err = parse(&nest(limits::MAX_DEPTH + 1)).unwrap_err();
        assert_eq!((err.span.line, err.span.column), (1, limits::MAX_DEPTH + 1));
        assert_eq!(err.message, limits::too_deep().0);
        // An alias counts as deep as what it copies.
        let text = format!("a: &a {}\nb: *a\nc: [*a]\n", nest(limits::MAX_DEPTH - 1));
        assert_eq!(parse(&text).unwrap_err().span.line, 3);
    }

    #[test]
    fn aliases_copy_a_bounded_number_of_nodes_per_document() {
        let big = format!("a: &a [{}]\n", ["x"; 999].join(","));
        let ok = format!("{big}b: [{}]\n", ["*a"; 9].join(","));
        assert!(parse(&ok).is_ok());
        let err = parse(&format!("{big}b: [{}]\n", ["*a"; 11].join(","))).unwrap_err();
        assert_eq!(err.message, limits::too_many_alias_nodes().0);
        // The count starts again in each document.
        assert!(parse(&format!("{ok}---\n{ok}")).is_ok());
        // Anchored values are copies too.
        let many = format!("[{}]", ["x"; 999].join(","));
        let anchored: String = (0..101).map(|i| format!("a{i}: &a{i} {many}\n")).collect();
        let err = parse(&anchored).unwrap_err();
        assert_eq!(err.message, limits::too_many_anchored_nodes().0);
        assert_eq!(err.span.line, 101);
    }

    #[test]
    fn documents_over_the_budget_are_an_error() {
        let text = "a: 1\n---\nb: 2\n---\nc: 3\n";
        assert_eq!(
            parse_documents_within(&Arc::from("t"), text, 3)
                .unwrap()
                .len(),
            3
        );
        let err = parse_documents_within(&Arc::from("t"), text, 2).unwrap_err();
        assert_eq!(
            (err.span.line, err.message),
            (4, limits::too_many_documents().0)
        );
    }

    #[test]
    fn merge_keys_of_large_mappings_keep_the_first_and_the_explicit() {
        let merged: Vec<String> = (0..40).map(|i| format!("k{i}: m")).collect();
        let own: String = (20..60).map(|i| format!("  k{i}: o\n")).collect();
        let text = format!(
            "x:\n  <<: [{{{}}}, {{k0: later, z: z}}]\n{own}",
            merged.join(", ")
        );
        let docs = parse(&text).unwrap();
        let x = docs[0].as_ref().unwrap().get("x").unwrap();
        let NodeValue::Map(entries) = &x.value else {
            panic!("a mapping")
        };
        assert_eq!(entries.len(), 61);
        assert_eq!(entries[0].0.as_str(), Some("k20"));
        assert_eq!(x.get("k0").unwrap().as_str(), Some("m"));
        assert_eq!(x.get("k25").unwrap().as_str(), Some("o"));
        assert_eq!(x.get("z").unwrap().as_str(), Some("z"));
    }

    #[test]
    fn seen_keys_find_the_first_of_equal_keys_past_the_short_list() {
        let keys: Vec<NodeValue> = (0..100)
            .map(|i| NodeValue::Scalar(format!("k{}", i % 50), ScalarStyle::Plain))
            .collect();
        let mut seen = SeenKeys::default();
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(seen.first(k, i), i.checked_sub(50));
        }
        let quoted = NodeValue::Scalar("k1".into(), ScalarStyle::Quoted);
        assert_eq!(seen.first(&quoted, 100), None);
    }

    #[test]
    fn tabs_are_a_syntax_error_with_a_hint() {
        let err = parse("kind: Service\nimage:\n\tfoo: 1\n").unwrap_err();
        assert_eq!(err.span.line, 3);
        assert!(err.hint.unwrap().contains("tabs"));
    }
}
