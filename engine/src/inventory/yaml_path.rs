//! Where a node sits in a YAML document, and its `line:column` in the text.
//!
//! serde_yaml's `Value` forgets positions, but serde_yaml fills in the position of the node
//! being read when a visitor fails. So to place an error, the text is walked again down to the
//! node and made to fail there: the error carries the node's line and column. The walk only
//! runs when there is an error to report.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// One step from a node to one of its children.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// The value under a mapping key.
    Value(String),
    /// The mapping key itself (the last step: errors about a key point at the key).
    Key(String),
    /// An item of a sequence.
    Index(usize),
}

/// A path from the document's root to a node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct YamlPath(Vec<Step>);

impl YamlPath {
    /// The document's root node.
    pub(super) fn root() -> YamlPath {
        YamlPath(Vec::new())
    }

    /// The value under mapping key `key`.
    pub(super) fn value(&self, key: &str) -> YamlPath {
        self.with(Step::Value(key.to_owned()))
    }

    /// The mapping key `key` itself.
    pub(super) fn key(&self, key: &str) -> YamlPath {
        self.with(Step::Key(key.to_owned()))
    }

    /// Item `index` of a sequence.
    pub(super) fn index(&self, index: usize) -> YamlPath {
        self.with(Step::Index(index))
    }

    fn with(&self, step: Step) -> YamlPath {
        let mut steps = self.0.clone();
        steps.push(step);
        YamlPath(steps)
    }
}

/// The 1-based `(line, column)` of the node at `path` in `text`, or of its deepest ancestor
/// that exists (after YAML merge keys a key may not be in the text where the value has it).
pub(super) fn locate(text: &str, path: &YamlPath) -> Option<(usize, usize)> {
    let walk = Walk { steps: &path.0 };
    match walk.deserialize(serde_yaml::Deserializer::from_str(text)) {
        Ok(()) => None,
        Err(err) => err.location().map(|at| (at.line(), at.column())),
    }
}

/// The marker error of the walk: its position is the answer.
fn here<E: de::Error>() -> E {
    E::custom("here")
}

/// Reads the document down `steps`, failing at the node they lead to.
struct Walk<'p> {
    steps: &'p [Step],
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(here())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(here())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(here())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(here())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(here())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(here())
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Err(here())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let (wanted, is_key, rest) = match self.steps.split_first() {
            Some((Step::Value(k), rest)) => (k.as_str(), false, rest),
            Some((Step::Key(k), rest)) => (k.as_str(), true, rest),
            _ => return Err(here()),
        };
        let probe = || KeyProbe {
            wanted,
            fail_on_match: is_key,
        };
        while let Some(found) = map.next_key_seed(probe())? {
            if found {
                return map.next_value_seed(Walk { steps: rest });
            }
            map.next_value::<IgnoredAny>()?;
        }
        // Not in the text (a merged key): the mapping is the closest place.
        Err(here())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let (wanted, rest) = match self.steps.split_first() {
            Some((Step::Index(i), rest)) => (*i, rest),
            _ => return Err(here()),
        };
        let mut index = 0;
        while index < wanted {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Err(here());
            }
            index += 1;
        }
        seq.next_element_seed(Walk { steps: rest })?;
        Err(here())
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        // A tagged node (`!vault |`): walk into its content.
        if self.steps.is_empty() {
            return Err(here());
        }
        let (IgnoredAny, content) = data.variant()?;
        de::VariantAccess::newtype_variant_seed(content, self)
    }
}

/// Reads one mapping key: `true` when it is the wanted one, or fails there if asked to.
struct KeyProbe<'w> {
    wanted: &'w str,
    fail_on_match: bool,
}

impl KeyProbe<'_> {
    fn check<E: de::Error>(self, key: &str) -> Result<bool, E> {
        match (key == self.wanted, self.fail_on_match) {
            (true, true) => Err(here()),
            (matched, _) => Ok(matched),
        }
    }
}

impl<'de> DeserializeSeed<'de> for KeyProbe<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeyProbe<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping key")
    }

    // Keys are compared as text the way `yaml_read::key_text` spells them.
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
        self.check(&v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
        self.check(&v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
        self.check(&v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<bool, E> {
        self.check(&serde_yaml::Number::from(v).to_string())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        self.check(v)
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        self.check("null")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(false)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<bool, A::Error> {
        let (IgnoredAny, content) = data.variant()?;
        de::VariantAccess::newtype_variant::<IgnoredAny>(content)?;
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
hosts:
  web1:
    address: 10.0.0.1
    adress: typo
  db1: {}
groups:
  web:
    hosts: [web1, web2]
    children:
      - db
";

    #[test]
    fn a_key_is_located_at_the_key() {
        let path = YamlPath::root().value("hosts").value("web1").key("adress");
        assert_eq!(locate(DOC, &path), Some((4, 5)));
    }

    #[test]
    fn a_value_is_located_at_the_value() {
        let path = YamlPath::root()
            .value("hosts")
            .value("web1")
            .value("address");
        assert_eq!(locate(DOC, &path), Some((3, 14)));
    }

    #[test]
    fn sequence_items_are_located_in_flow_and_block_style() {
        let web = YamlPath::root().value("groups").value("web");
        assert_eq!(locate(DOC, &web.value("hosts").index(1)), Some((8, 19)));
        assert_eq!(locate(DOC, &web.value("children").index(0)), Some((10, 9)));
    }

    #[test]
    fn a_missing_node_falls_back_to_its_deepest_ancestor() {
        let path = YamlPath::root().value("hosts").value("nowhere").key("x");
        assert_eq!(locate(DOC, &path), Some((2, 3)));
        let past_end = YamlPath::root()
            .value("groups")
            .value("web")
            .value("hosts")
            .index(7);
        assert_eq!(locate(DOC, &past_end), Some((8, 12)));
    }

    #[test]
    fn numeric_keys_and_tagged_values_are_walked() {
        let doc = "1:\n  a: !vault |\n    secret\n2.5: x\nt: !tag {x: 1}\n";
        let root = YamlPath::root();
        assert_eq!(locate(doc, &root.value("1").key("a")), Some((2, 3)));
        assert_eq!(locate(doc, &root.key("2.5")), Some((4, 1)));
        assert_eq!(locate(doc, &root.value("t").key("x")), Some((5, 10)));
    }
}
