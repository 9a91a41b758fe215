//! The serde access types over the spanned YAML tree (lists, mappings, enums), and the
//! duplicate-key check that decides which mapping entries they see.

use serde::de::{
    self, DeserializeSeed, EnumAccess, IntoDeserializer, MapAccess, SeqAccess, VariantAccess,
    Visitor,
};

use super::{DeError, NodeDe, Sink};
use crate::load::diagnostic::Diagnostic;
use crate::load::yaml::{Node, NodeValue, SeenKeys};

/// Keeps the first of each key; later duplicates are reported.
pub(super) fn check_duplicate_keys<'a>(
    entries: &'a [(Node, Node)],
    sink: &Sink,
) -> Vec<&'a (Node, Node)> {
    let mut kept: Vec<&(Node, Node)> = Vec::with_capacity(entries.len());
    let mut seen = SeenKeys::default();
    for (i, entry) in entries.iter().enumerate() {
        match seen.first(&entry.0.value, i) {
            Some(first) => {
                let first = &entries[first].0;
                let key = entry.0.as_str().unwrap_or("?");
                let d = Diagnostic::at(&entry.0.span, format!("duplicate key `{key}`"))
                    .note(format!("first defined at {}", first.span))
                    .hint("remove one of the two");
                sink.borrow_mut().push(d);
            }
            None => kept.push(entry),
        }
    }
    kept
}

pub(super) struct Seq<'a> {
    items: std::slice::Iter<'a, Node>,
    sink: &'a Sink,
}

impl<'a> Seq<'a> {
    pub(super) fn new(items: &'a [Node], sink: &'a Sink) -> Self {
        Seq {
            items: items.iter(),
            sink,
        }
    }
}

impl<'de, 'a> SeqAccess<'de> for Seq<'a> {
    type Error = DeError;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            Some(node) => seed
                .deserialize(NodeDe::new(node, self.sink))
                .map(Some)
                .map_err(|e: DeError| e.at(&node.span)),
            None => Ok(None),
        }
    }
}

pub(super) struct Map<'a> {
    entries: std::vec::IntoIter<&'a (Node, Node)>,
    value: Option<&'a Node>,
    sink: &'a Sink,
}

impl<'a> Map<'a> {
    pub(super) fn new(entries: Vec<&'a (Node, Node)>, sink: &'a Sink) -> Self {
        Map {
            entries: entries.into_iter(),
            value: None,
            sink,
        }
    }
}

impl<'de, 'a> MapAccess<'de> for Map<'a> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        match self.entries.next() {
            Some((k, v)) => {
                self.value = Some(v);
                // Keys are always strings in our format, whatever they look like.
                let text = match &k.value {
                    NodeValue::Scalar(s, _) => s.as_str(),
                    _ => return Err(DeError::new("expected a text key").at(&k.span)),
                };
                seed.deserialize(text.into_deserializer())
                    .map(Some)
                    .map_err(|e: DeError| e.at(&k.span))
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let node = self.value.take().expect("value after key");
        seed.deserialize(NodeDe::new(node, self.sink))
            .map_err(|e: DeError| e.at(&node.span))
    }
}

pub(super) struct Enum<'a> {
    pub(super) entry: &'a (Node, Node),
    pub(super) sink: &'a Sink,
}

impl<'de, 'a> EnumAccess<'de> for Enum<'a> {
    type Error = DeError;
    type Variant = NodeDe<'a>;
    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, NodeDe<'a>), DeError> {
        let key = self.entry.0.as_str().unwrap_or("");
        let v = seed
            .deserialize(key.into_deserializer())
            .map_err(|e: DeError| e.at(&self.entry.0.span))?;
        Ok((v, NodeDe::new(&self.entry.1, self.sink)))
    }
}

impl<'de, 'a> VariantAccess<'de> for NodeDe<'a> {
    type Error = DeError;
    fn unit_variant(self) -> Result<(), DeError> {
        Ok(())
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        seed.deserialize(self)
    }
    fn tuple_variant<V: Visitor<'de>>(self, _: usize, v: V) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_seq(self, v)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_struct(self, "", fields, v)
    }
}
