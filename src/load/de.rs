//! A serde `Deserializer` over the spanned YAML tree: errors carry file, line and column, and
//! unknown fields are collected (with a "did you mean") instead of stopping at the first.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, IntoDeserializer, Visitor};

mod access;

use access::{check_duplicate_keys, Enum, Map, Seq};

use super::diagnostic::{suggestion, Diagnostic};
use super::yaml::{Node, NodeValue, ScalarStyle, Span};
use crate::model::types::HINT_SEPARATOR;

/// Problems that do not stop deserialization (unknown and duplicate fields).
pub type Sink = RefCell<Vec<Diagnostic>>;

#[derive(Debug, Clone, PartialEq)]
pub struct DeError {
    pub message: String,
    pub span: Option<Span>,
    pub hint: Option<String>,
}

impl DeError {
    fn new(message: impl Into<String>) -> Self {
        DeError {
            message: message.into(),
            span: None,
            hint: None,
        }
    }

    /// Attaches `span` unless a more precise one is already there.
    fn at(mut self, span: &Span) -> Self {
        if self.span.is_none() {
            self.span = Some(span.clone());
        }
        self
    }

    pub fn into_diagnostic(self, fallback: &Span) -> Diagnostic {
        let span = self.span.unwrap_or_else(|| fallback.clone());
        Diagnostic::at(&span, self.message).maybe_hint(self.hint)
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    /// A value type's own error; a hint after `HINT_SEPARATOR` is shown as the hint.
    fn custom<T: fmt::Display>(msg: T) -> Self {
        let text = msg.to_string();
        match text.split_once(HINT_SEPARATOR) {
            Some((message, hint)) => {
                let mut e = DeError::new(message);
                e.hint = Some(hint.to_string());
                e
            }
            None => DeError::new(text),
        }
    }

    fn invalid_type(unexp: de::Unexpected, exp: &dyn de::Expected) -> Self {
        DeError::new(format!("expected {exp}, found {}", describe(unexp)))
    }

    fn invalid_value(unexp: de::Unexpected, exp: &dyn de::Expected) -> Self {
        DeError::new(format!("expected {exp}, found {}", describe(unexp)))
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        let mut e = DeError::new(format!(
            "unknown value `{variant}`, expected one of {}",
            quoted_list(expected)
        ));
        if let Some(c) = super::diagnostic::did_you_mean(variant, expected.iter().copied()) {
            e.hint = Some(format!("did you mean `{c}`?"));
        }
        e
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        let mut e = DeError::new(format!("unknown field `{field}`"));
        e.hint = Some(suggestion(field, expected, "expected one of"));
        e
    }

    fn missing_field(field: &'static str) -> Self {
        let mut e = DeError::new(format!("missing required field `{field}`"));
        e.hint = Some(format!("add `{field}:` to this mapping"));
        e
    }
}

fn describe(unexp: de::Unexpected) -> String {
    match unexp {
        de::Unexpected::Str(s) => format!("`{s}`"),
        de::Unexpected::Signed(n) => n.to_string(),
        de::Unexpected::Unsigned(n) => n.to_string(),
        de::Unexpected::Float(n) => n.to_string(),
        de::Unexpected::Bool(b) => b.to_string(),
        de::Unexpected::Unit => "nothing (null)".into(),
        de::Unexpected::Seq => "a list".into(),
        de::Unexpected::Map => "a mapping".into(),
        other => other.to_string(),
    }
}

fn quoted_list(items: &[&str]) -> String {
    let v: Vec<String> = items.iter().map(|i| format!("`{i}`")).collect();
    v.join(", ")
}

fn found(node: &Node) -> String {
    match &node.value {
        NodeValue::Null => "nothing (null)".into(),
        NodeValue::Scalar(s, _) => format!("`{s}`"),
        NodeValue::Seq(_) => "a list".into(),
        NodeValue::Map(_) => "a mapping".into(),
    }
}

/// Deserializes one node; unknown fields go to `sink`.
pub struct NodeDe<'a> {
    pub node: &'a Node,
    pub sink: &'a Sink,
}

impl<'a> NodeDe<'a> {
    pub fn new(node: &'a Node, sink: &'a Sink) -> Self {
        NodeDe { node, sink }
    }

    fn err(&self, message: String) -> DeError {
        DeError::new(message).at(&self.node.span)
    }

    fn scalar(&self, expected: &str) -> Result<&'a str, DeError> {
        match &self.node.value {
            NodeValue::Scalar(s, _) => Ok(s),
            _ => Err(self.err(format!("expected {expected}, found {}", found(self.node)))),
        }
    }

    fn plain_number(&self, expected: &str) -> Result<&'a str, DeError> {
        match &self.node.value {
            NodeValue::Scalar(s, ScalarStyle::Plain) => Ok(s),
            _ => Err(self.err(format!("expected {expected}, found {}", found(self.node)))),
        }
    }

    fn int(&self, signed: bool) -> Result<i128, DeError> {
        let what = if signed {
            "an integer"
        } else {
            "a non-negative integer"
        };
        let text = self.plain_number(what)?;
        let n =
            parse_int(text).ok_or_else(|| self.err(format!("expected {what}, found `{text}`")))?;
        if !signed && n < 0 {
            return Err(self.err(format!("expected {what}, found {n}")));
        }
        Ok(n)
    }
}

fn parse_int(text: &str) -> Option<i128> {
    let t = text.replace('_', "");
    let (neg, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(&t)),
    };
    let n = if let Some(h) = digits.strip_prefix("0x") {
        i128::from_str_radix(h, 16).ok()?
    } else if let Some(o) = digits.strip_prefix("0o") {
        i128::from_str_radix(o, 8).ok()?
    } else if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()?
    } else {
        return None;
    };
    Some(if neg { -n } else { n })
}

fn parse_float(text: &str) -> Option<f64> {
    match text {
        ".inf" | ".Inf" | ".INF" | "+.inf" => Some(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => Some(f64::NAN),
        _ if text.bytes().any(|b| b.is_ascii_digit())
            && text.bytes().all(|b| {
                b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E' | b'_')
            }) =>
        {
            text.replace('_', "").parse().ok()
        }
        _ => None,
    }
}

fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

macro_rules! int_method {
    ($method:ident, $visit:ident, $ty:ty, $signed:expr) => {
        fn $method<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
            let n = self.int($signed)?;
            let n = <$ty>::try_from(n).map_err(|_| {
                self.err(format!(
                    "expected a number that fits in {}, found {n}",
                    stringify!($ty)
                ))
            })?;
            v.$visit(n).map_err(|e: DeError| e.at(&self.node.span))
        }
    };
}

impl<'de, 'a> de::Deserializer<'de> for NodeDe<'a> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let span = &self.node.span;
        let r = match &self.node.value {
            NodeValue::Null => v.visit_unit(),
            NodeValue::Scalar(s, ScalarStyle::Quoted) => v.visit_str(s),
            NodeValue::Scalar(s, ScalarStyle::Plain) => {
                if let Some(b) = parse_bool(s) {
                    v.visit_bool(b)
                } else if let Some(n) = parse_int(s) {
                    if let Ok(i) = i64::try_from(n) {
                        v.visit_i64(i)
                    } else if let Ok(u) = u64::try_from(n) {
                        v.visit_u64(u)
                    } else {
                        v.visit_str(s)
                    }
                } else if let Some(f) = parse_float(s) {
                    v.visit_f64(f)
                } else {
                    v.visit_str(s)
                }
            }
            NodeValue::Seq(items) => v.visit_seq(Seq::new(items, self.sink)),
            NodeValue::Map(entries) => {
                let entries: Vec<&(Node, Node)> = entries.iter().collect();
                v.visit_map(Map::new(entries, self.sink))
            }
        };
        r.map_err(|e| e.at(span))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let text = self.plain_number("true or false")?;
        let b = parse_bool(text)
            .ok_or_else(|| self.err(format!("expected true or false, found `{text}`")))?;
        v.visit_bool(b).map_err(|e: DeError| e.at(&self.node.span))
    }

    int_method!(deserialize_i8, visit_i8, i8, true);
    int_method!(deserialize_i16, visit_i16, i16, true);
    int_method!(deserialize_i32, visit_i32, i32, true);
    int_method!(deserialize_i64, visit_i64, i64, true);
    int_method!(deserialize_u8, visit_u8, u8, false);
    int_method!(deserialize_u16, visit_u16, u16, false);
    int_method!(deserialize_u32, visit_u32, u32, false);
    int_method!(deserialize_u64, visit_u64, u64, false);

    fn deserialize_f32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_f64(v)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let text = self.plain_number("a number")?;
        let f = parse_float(text)
            .filter(|f| f.is_finite())
            .ok_or_else(|| self.err(format!("expected a number, found `{text}`")))?;
        v.visit_f64(f).map_err(|e: DeError| e.at(&self.node.span))
    }

    fn deserialize_char<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let s = self.scalar("a string")?;
        v.visit_str(s).map_err(|e: DeError| e.at(&self.node.span))
    }

    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match self.node.value {
            NodeValue::Null => v.visit_none(),
            _ => v.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match self.node.value {
            NodeValue::Null => v.visit_unit(),
            _ => Err(self.err(format!("expected nothing, found {}", found(self.node)))),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(v)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, DeError> {
        v.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            NodeValue::Seq(items) => v
                .visit_seq(Seq::new(items, self.sink))
                .map_err(|e: DeError| e.at(&self.node.span)),
            _ => Err(self.err(format!("expected a list, found {}", found(self.node)))),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, v: V) -> Result<V::Value, DeError> {
        self.deserialize_seq(v)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        v: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(v)
    }

    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            NodeValue::Map(entries) => {
                let entries = check_duplicate_keys(entries, self.sink);
                v.visit_map(Map::new(entries, self.sink))
                    .map_err(|e: DeError| e.at(&self.node.span))
            }
            _ => Err(self.err(format!("expected a mapping, found {}", found(self.node)))),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        let entries = match &self.node.value {
            NodeValue::Map(entries) => entries,
            _ => {
                return Err(self.err(format!(
                    "expected a mapping with {}, found {}",
                    quoted_list(fields),
                    found(self.node)
                )))
            }
        };
        let mut known = Vec::new();
        for entry in check_duplicate_keys(entries, self.sink) {
            let key = entry.0.as_str().unwrap_or("");
            if fields.contains(&key) {
                known.push(entry);
            } else {
                let d = Diagnostic::at(
                    &entry.0.span,
                    format!("unknown field `{key}` in {}", display_name(name)),
                )
                .hint(suggestion(key, fields, "expected one of"));
                self.sink.borrow_mut().push(d);
            }
        }
        v.visit_map(Map::new(known, self.sink))
            .map_err(|e: DeError| e.at(&self.node.span))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        match &self.node.value {
            NodeValue::Scalar(s, _) => v
                .visit_enum(s.as_str().into_deserializer())
                .map_err(|e: DeError| e.at(&self.node.span)),
            NodeValue::Map(entries) if entries.len() == 1 => v
                .visit_enum(Enum {
                    entry: &entries[0],
                    sink: self.sink,
                })
                .map_err(|e: DeError| e.at(&self.node.span)),
            _ => Err(self.err(format!("expected one value, found {}", found(self.node)))),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        v.visit_unit()
    }
}

/// The user-facing name of a struct: `HttpProbe` → `http probe`, kinds stay as they are.
fn display_name(name: &str) -> String {
    if crate::model::Kind::parse(name).is_some() {
        return name.to_string();
    }
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push(' ');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// Deserializes `node` as `T`; hard errors come back, unknown fields land in `sink`.
pub fn from_node<T: de::DeserializeOwned>(node: &Node, sink: &Sink) -> Result<T, DeError> {
    T::deserialize(NodeDe::new(node, sink)).map_err(|e: DeError| e.at(&node.span))
}

/// Like `from_node`, but reports every bad value of the document, not just the first: after an
/// error, the offending value is taken out and the document is tried again.
pub fn from_node_all<T: de::DeserializeOwned>(node: &Node, sink: &Sink) -> Result<T, Vec<DeError>> {
    const MAX_ERRORS: usize = 50;
    // The common case, a valid document, needs no copy.
    let first = match from_node::<T>(node, sink) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    let mut node = node.clone();
    let mut pending = Some(first);
    let mut errors: Vec<DeError> = Vec::new();
    // (span of a mapping, key) pairs taken out, so the "missing field" they cause is not reported.
    let mut removed: Vec<(Span, String)> = Vec::new();
    loop {
        let e = match pending
            .take()
            .map(Err)
            .unwrap_or_else(|| from_node::<T>(&node, sink))
        {
            Ok(v) if errors.is_empty() => return Ok(v),
            Ok(_) => return Err(errors),
            Err(e) => e,
        };
        let span = e.span.clone().unwrap_or_else(|| node.span.clone());
        let caused_by_us = removed
            .iter()
            .any(|(s, k)| *s == span && e.message == format!("missing required field `{k}`"));
        if !caused_by_us {
            errors.push(e);
        }
        if errors.len() >= MAX_ERRORS
            || span == node.span
            || !remove_at(&mut node, &span, &mut removed)
        {
            return Err(errors);
        }
    }
}

/// Removes the map entry or list item whose value is at `span`; records removed map keys.
fn remove_at(node: &mut Node, span: &Span, removed: &mut Vec<(Span, String)>) -> bool {
    let parent_span = node.span.clone();
    match &mut node.value {
        NodeValue::Map(entries) => {
            if let Some(i) = entries
                .iter()
                .position(|(k, v)| v.span == *span || k.span == *span)
            {
                let key = entries[i].0.as_str().unwrap_or("").to_string();
                entries.remove(i);
                removed.push((parent_span, key));
                return true;
            }
            entries.iter_mut().any(|(_, v)| remove_at(v, span, removed))
        }
        NodeValue::Seq(items) => {
            if let Some(i) = items.iter().position(|v| v.span == *span) {
                items.remove(i);
                return true;
            }
            items.iter_mut().any(|v| remove_at(v, span, removed))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::yaml::parse_documents;
    use crate::model::Service;
    use std::sync::Arc;

    fn service(text: &str) -> (Result<Service, DeError>, Vec<Diagnostic>) {
        let docs = parse_documents(&Arc::from("s.yaml"), text).unwrap();
        let sink = Sink::default();
        let r = from_node::<Service>(docs[0].as_ref().unwrap(), &sink);
        (r, sink.into_inner())
    }

    #[test]
    fn every_unknown_field_is_collected_with_a_hint() {
        let (r, problems) = service("name: api\nimgae: x\nreplica: 2\n");
        assert!(r.is_ok());
        assert_eq!(problems.len(), 2);
        assert_eq!(problems[0].message, "unknown field `imgae` in Service");
        assert_eq!(problems[0].hint.as_deref(), Some("did you mean `image`?"));
        assert_eq!(problems[1].span.as_ref().unwrap().line, 3);
    }

    #[test]
    fn type_errors_point_at_the_value() {
        let (r, _) = service("name: api\nimage: x\nreplicas: -1\n");
        let e = r.unwrap_err();
        assert_eq!(e.message, "expected a non-negative integer, found -1");
        assert_eq!(e.span.unwrap().line, 3);
    }

    #[test]
    fn unknown_enum_values_suggest_the_closest() {
        let (r, _) = service("name: api\nimage: x\ndeploy: {strategy: bluegreen}\n");
        let e = r.unwrap_err();
        assert!(
            e.message.starts_with("unknown value `bluegreen`"),
            "{}",
            e.message
        );
        assert_eq!(e.hint.as_deref(), Some("did you mean `blue-green`?"));
    }

    #[test]
    fn missing_fields_point_at_their_mapping() {
        let (r, _) = service("name: api\nimage: x\nhealth:\n  http: {path: /health}\n");
        let e = r.unwrap_err();
        assert_eq!(e.message, "missing required field `port`");
        assert_eq!(e.span.unwrap().line, 4);
    }
}
