//! YAML read as Ansible reads it: PyYAML's YAML 1.1 resolution of unquoted scalars
//! (`yes`/`no`/`on`/`off` are booleans, `0755` is the octal 493, `1.10` is the float
//! 1.1, `22:30` is the sexagesimal 1350), maps in the order written, `<<` merge keys.
//! serde_yaml reads YAML 1.2, where those stay strings, and cannot tell a quoted `"on"`
//! from a plain `on`; this reads the parser's events, which can.
//!
//! The resolvers are PyYAML's (`yaml/resolver.py`, `Resolver.add_implicit_resolver`).
//! A timestamp (`2024-01-15`, `2024-01-15 10:30:00`) is a date or a datetime for
//! Ansible; JSON has no such type, so it is read as `{"!!timestamp": "2024-01-15"}`
//! ([`TIMESTAMP`], the text as written): templates make it a date again, and a script
//! sees the text ([`timestamp_text`]).

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Why a YAML text could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Yaml11Error {
    /// The text is not valid YAML.
    #[error("line {line}, column {column}: {message}")]
    Syntax {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser expected.
        message: String,
    },
}

/// The first document of `text`, as JSON values (`null` for an empty text).
pub fn from_str(text: &str) -> Result<Value, Yaml11Error> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    parser
        .load(&mut builder, false)
        .map_err(|e| Yaml11Error::Syntax {
            line: e.marker().line(),
            column: e.marker().col() + 1,
            message: e.info().to_owned(),
        })?;
    Ok(builder.done.unwrap_or(Value::Null))
}

enum Open {
    Seq(Vec<Value>, usize),
    Map(Map<String, Value>, Option<String>, usize),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Open>,
    anchors: std::collections::HashMap<usize, Value>,
    done: Option<Value>,
}

impl Builder {
    fn push_value(&mut self, value: Value, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, value.clone());
        }
        match self.stack.last_mut() {
            None => {
                if self.done.is_none() {
                    self.done = Some(value);
                }
            }
            Some(Open::Seq(items, _)) => items.push(value),
            Some(Open::Map(map, key, _)) => match key.take() {
                None => *key = Some(key_text(&value)),
                Some(k) if k == "<<" => merge(map, value),
                Some(k) => {
                    map.insert(k, value);
                }
            },
        }
    }
}

/// `<<: *base` (or a list of them): the base's keys, where the map has none of its own.
fn merge(map: &mut Map<String, Value>, value: Value) {
    let bases = match value {
        Value::Array(items) => items,
        other => vec![other],
    };
    for base in bases {
        if let Value::Object(base) = base {
            for (k, v) in base {
                map.entry(k).or_insert(v);
            }
        }
    }
}

/// A key as Python would make it a string key of the JSON-like map.
fn key_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::Null => "None".to_owned(),
        other => match timestamp_text(other) {
            Some(text) => text.to_owned(),
            None => other.to_string(),
        },
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, _mark: Marker) {
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                let value = match (style, tag) {
                    (_, Some(tag)) if tag.suffix == "str" => Value::String(text),
                    (TScalarStyle::Plain, _) => resolve(&text),
                    _ => Value::String(text),
                };
                self.push_value(value, anchor);
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Open::Seq(Vec::new(), anchor)),
            Event::MappingStart(anchor, _) => self.stack.push(Open::Map(Map::new(), None, anchor)),
            Event::SequenceEnd | Event::MappingEnd => {
                let (value, anchor) = match self.stack.pop() {
                    Some(Open::Seq(items, anchor)) => (Value::Array(items), anchor),
                    Some(Open::Map(map, _, anchor)) => (Value::Object(map), anchor),
                    None => return,
                };
                self.push_value(value, anchor);
            }
            Event::Alias(id) => {
                let value = self.anchors.get(&id).cloned().unwrap_or(Value::Null);
                self.push_value(value, 0);
            }
            _ => {}
        }
    }
}

static BOOL: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$")
        .ok()
});
static INT: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$",
    )
    .ok()
});
static FLOAT: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
    )
    .ok()
});

fn matches(re: &LazyLock<Option<Regex>>, text: &str) -> bool {
    re.as_ref().is_some_and(|re| re.is_match(text))
}

/// The one key of the map a YAML timestamp is read as.
pub const TIMESTAMP: &str = "!!timestamp";

/// The text of a timestamp read as `{"!!timestamp": text}`, or `None` for other values.
pub fn timestamp_text(value: &Value) -> Option<&str> {
    match value {
        Value::Object(map) if map.len() == 1 => map.get(TIMESTAMP)?.as_str(),
        _ => None,
    }
}

/// PyYAML's implicit resolver of `tag:yaml.org,2002:timestamp`.
static TIMESTAMP_RE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"^(?:[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?)$",
    )
    .ok()
});

/// A plain scalar as PyYAML's SafeLoader resolves it.
fn resolve(text: &str) -> Value {
    if matches!(text, "" | "~" | "null" | "Null" | "NULL") {
        return Value::Null;
    }
    if matches(&BOOL, text) {
        return Value::Bool(
            matches!(text.as_bytes()[0], b'y' | b'Y' | b't' | b'T')
                || text.eq_ignore_ascii_case("on"),
        );
    }
    if matches(&INT, text) {
        if let Some(n) = int(text) {
            return n;
        }
    }
    if matches(&FLOAT, text) {
        if let Some(f) = float(text).and_then(Number::from_f64) {
            return Value::Number(f);
        }
    }
    if matches(&TIMESTAMP_RE, text) {
        let mut map = Map::new();
        map.insert(TIMESTAMP.to_owned(), Value::String(text.to_owned()));
        return Value::Object(map);
    }
    Value::String(text.to_owned())
}

/// `construct_yaml_int`: signs, `_`, `0b`, `0x`, a leading `0` for octal, `:` base 60.
fn int(text: &str) -> Option<Value> {
    let clean = text.replace('_', "");
    let (negative, digits) = match clean.strip_prefix('-') {
        Some(rest) => (true, rest.to_owned()),
        None => (false, clean.trim_start_matches('+').to_owned()),
    };
    let magnitude: u128 = if digits == "0" {
        0
    } else if let Some(bin) = digits.strip_prefix("0b") {
        u128::from_str_radix(bin, 2).ok()?
    } else if let Some(hex) = digits.strip_prefix("0x") {
        u128::from_str_radix(hex, 16).ok()?
    } else if let Some(oct) = digits.strip_prefix('0') {
        u128::from_str_radix(oct, 8).ok()?
    } else if digits.contains(':') {
        let mut value: u128 = 0;
        for part in digits.split(':') {
            value = value * 60 + part.parse::<u128>().ok()?;
        }
        value
    } else {
        digits.parse().ok()?
    };
    if negative {
        let n = i64::try_from(magnitude).ok()?;
        Some(Value::from(-n))
    } else if let Ok(n) = u64::try_from(magnitude) {
        Some(Value::from(n))
    } else {
        None
    }
}

/// `construct_yaml_float`.
fn float(text: &str) -> Option<f64> {
    let clean = text.replace('_', "").to_lowercase();
    let (sign, body) = match clean.strip_prefix('-') {
        Some(rest) => (-1.0, rest.to_owned()),
        None => (1.0, clean.trim_start_matches('+').to_owned()),
    };
    if body == ".inf" {
        return Some(sign * f64::INFINITY);
    }
    if body == ".nan" {
        return Some(f64::NAN);
    }
    if body.contains(':') {
        let mut value = 0.0;
        for part in body.split(':') {
            value = value * 60.0 + part.parse::<f64>().ok()?;
        }
        return Some(sign * value);
    }
    Some(sign * body.parse::<f64>().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_scalars_resolve_as_pyyaml_resolves_them() {
        let text = "a: yes\nb: 'yes'\nc: off\nd: 0755\ne: \"0755\"\nf: 0o755\ng: 1.10\nh: 1e3\n\
                    i: 1.0e+3\nj: 22:30\nk: ~\nl: y\nm: 0x1F\nn: 1_000\no: -42\np: 2024-01-15\nq: .inf\n\
                    r: !!str 12\ns: 12345678901234567890\n";
        let value = from_str(text).expect("valid");
        // JSON has no infinity: `.inf` stays text.
        assert_eq!(
            value,
            json!({"a": true, "b": "yes", "c": false, "d": 493, "e": "0755", "f": "0o755",
                   "g": 1.1, "h": "1e3", "i": 1000.0, "j": 1350, "k": null, "l": "y", "m": 31,
                   "n": 1000, "o": -42, "p": {"!!timestamp": "2024-01-15"}, "q": ".inf", "r": "12",
                   "s": 12_345_678_901_234_567_890u64})
        );
        let keys: Vec<&String> = value.as_object().expect("a map").keys().collect();
        assert_eq!(keys.first().map(|k| k.as_str()), Some("a"));
        assert_eq!(keys.last().map(|k| k.as_str()), Some("s"));
    }

    #[test]
    fn timestamps_are_tagged_with_their_text() {
        let text = "a: 2024-01-15\nb: 2024-1-5 10:30:00\nc: 2001-12-14t21:59:43.10-05:00\n\
                    d: '2024-01-15'\ne: 2024-1-15\nf: 2024-01-15 10:30\n";
        let value = from_str(text).expect("valid");
        assert_eq!(timestamp_text(&value["a"]), Some("2024-01-15"));
        assert_eq!(timestamp_text(&value["b"]), Some("2024-1-5 10:30:00"));
        assert_eq!(
            timestamp_text(&value["c"]),
            Some("2001-12-14t21:59:43.10-05:00")
        );
        // Quoted, a date without two-digit month and day, no seconds: text.
        for key in ["d", "e", "f"] {
            assert!(value[key].is_string(), "{key}: {}", value[key]);
        }
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let text = "base: &b {x: 1, y: 2}\nchild:\n  <<: *b\n  y: 3\n  z: 4\nlist: [*b]\n";
        let value = from_str(text).expect("valid");
        assert_eq!(value["child"], json!({"x": 1, "y": 3, "z": 4}));
        assert_eq!(value["list"], json!([{"x": 1, "y": 2}]));
    }

    #[test]
    fn a_syntax_error_has_a_line() {
        let err = from_str("a: [1, 2\nb: 3\n").expect_err("invalid");
        assert!(err.to_string().starts_with("line "), "{err}");
    }
}
