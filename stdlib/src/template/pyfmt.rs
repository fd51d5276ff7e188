//! Values written the way Python writes them. Ansible renders templates with Python, so
//! an existing template prints `True`, `['a', 1]` and `{'k': None}`, and `to_json` spaces
//! its output like `json.dumps`; printing minijinja's own `true` or `["a", 1]` would change
//! every rendered file that shows a list or a boolean.

use minijinja::value::{Value, ValueKind};
use minijinja::{Error, ErrorKind, Output, State};
use serde_json::Value as Data;

/// `value` as plain data, for the serializing filters. An undefined value is the same
/// error printing it would be, naming the variable.
pub(crate) fn to_data(value: &Value) -> Result<Data, Error> {
    Ok(match value.kind() {
        ValueKind::Undefined => return Err(undefined_error(value)),
        ValueKind::None => Data::Null,
        ValueKind::Bool => Data::Bool(value.is_true()),
        ValueKind::Number => number(value),
        ValueKind::String => Data::String(value.as_str().unwrap_or_default().to_owned()),
        ValueKind::Bytes => {
            Data::String(String::from_utf8_lossy(value.as_bytes().unwrap_or_default()).into_owned())
        }
        ValueKind::Seq | ValueKind::Iterable => Data::Array(
            value
                .try_iter()?
                .map(|item| to_data(&item))
                .collect::<Result<_, _>>()?,
        ),
        ValueKind::Map => {
            let mut map = serde_json::Map::new();
            for key in value.try_iter()? {
                let item = value.get_item(&key)?;
                let key = match key.as_str() {
                    Some(text) => text.to_owned(),
                    None => key.to_string(),
                };
                map.insert(key, to_data(&item)?);
            }
            Data::Object(map)
        }
        // A date is tagged as a YAML timestamp (see `datetime.rs`), so that the writers
        // below print it as Python does.
        _ => match super::datetime::temporal(value) {
            Some(super::datetime::Temporal::Moment(m)) => {
                let mut map = serde_json::Map::new();
                map.insert(
                    toyc_engine::yaml11::TIMESTAMP.to_owned(),
                    Data::String(m.to_string()),
                );
                Data::Object(map)
            }
            // Macros, `loop`, timedeltas and other objects only have a printed form.
            _ => Data::String(value.to_string()),
        },
    })
}

fn number(value: &Value) -> Data {
    if value.is_integer() {
        if let Some(int) = value.as_i64() {
            return Data::from(int);
        }
        if let Ok(big) = u64::try_from(value.clone()) {
            return Data::from(big);
        }
    }
    let float = f64::try_from(value.clone()).unwrap_or(f64::NAN);
    serde_json::Number::from_f64(float).map_or(Data::Null, Data::Number)
}

/// The undefined-variable error for `value`. minijinja names the variable only in errors it
/// makes itself, so ask it for one: looking up an attribute of an undefined value fails
/// with the value's origin attached.
pub(crate) fn undefined_error(value: &Value) -> Error {
    match value.get_attr("_") {
        Err(error) => error,
        Ok(_) => Error::new(ErrorKind::UndefinedError, "undefined value"),
    }
}

/// How `{{ ... }}` writes a value: as Ansible does, with `None` as nothing, and
/// containers in Python's notation.
pub(crate) fn format(out: &mut Output, _state: &mut State, value: &Value) -> Result<(), Error> {
    let text = match value.kind() {
        ValueKind::Undefined => return Err(undefined_error(value)),
        ValueKind::None => return Ok(()),
        ValueKind::String => return Ok(out.write_str(value.as_str().unwrap_or_default())?),
        // Python's integers have no size limit: minijinja's 128-bit ones print as such.
        ValueKind::Number if value.is_integer() => value.to_string(),
        ValueKind::Bool | ValueKind::Number | ValueKind::Seq | ValueKind::Map => {
            repr(&to_data(value)?)
        }
        _ => value.to_string(),
    };
    Ok(out.write_str(&text)?)
}

/// The date or datetime `data` is tagged as, if any.
fn moment(data: &Data) -> Option<super::datetime::Moment> {
    super::datetime::Moment::from_yaml(toyc_engine::yaml11::timestamp_text(data)?)
}

/// Python's `repr()` of `data`, as `str()` prints a container.
pub(crate) fn repr(data: &Data) -> String {
    let mut out = String::new();
    write_repr(&mut out, data);
    out
}

fn write_repr(out: &mut String, data: &Data) {
    if let Some(moment) = moment(data) {
        return out.push_str(&moment.repr());
    }
    match data {
        Data::Null => out.push_str("None"),
        Data::Bool(true) => out.push_str("True"),
        Data::Bool(false) => out.push_str("False"),
        Data::Number(n) => out.push_str(&python_number(n)),
        Data::String(s) => out.push_str(&repr_str(s)),
        Data::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_repr(out, item);
            }
            out.push(']');
        }
        Data::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&repr_str(key));
                out.push_str(": ");
                write_repr(out, item);
            }
            out.push('}');
        }
    }
}

/// Python's `repr()` of a string: single quotes unless the text holds a `'` and no `"`.
fn repr_str(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// A number as Python prints it: `2.0` for a whole float, `1e+16` from 16 digits on.
pub(crate) fn python_number(n: &serde_json::Number) -> String {
    match n.as_f64() {
        Some(f) if n.is_f64() => python_float(f),
        _ => n.to_string(),
    }
}

fn python_float(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.into();
    }
    let magnitude = f.abs();
    if magnitude == 0.0 || (1e-4..1e16).contains(&magnitude) {
        let text = f.to_string();
        if text.contains('.') {
            text
        } else {
            format!("{text}.0")
        }
    } else {
        // Rust writes `1e16` and `1.5e-7`; Python `1e+16` and `1.5e-07`.
        let text = format!("{f:e}");
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        let (sign, digits) = match exponent.strip_prefix('-') {
            Some(digits) => ('-', digits),
            None => ('+', exponent),
        };
        format!("{mantissa}e{sign}{digits:0>2}")
    }
}

/// `json.dumps(data, indent=indent, sort_keys=sort)` as Ansible's `to_json` calls it:
/// `, ` and `: ` separators (`,` at line ends with `indent`), non-ASCII escaped.
pub(crate) fn json(data: &Data, indent: Option<usize>, sort: bool) -> String {
    json_with(data, indent, sort, true)
}

/// [`json`] with `ensure_ascii` chosen: without it, non-ASCII text is written as is.
pub(crate) fn json_with(data: &Data, indent: Option<usize>, sort: bool, ascii: bool) -> String {
    let mut out = String::new();
    write_json(&mut out, data, indent, (sort, ascii), 0);
    out
}

fn write_json(
    out: &mut String,
    data: &Data,
    indent: Option<usize>,
    (sort, ascii): (bool, bool),
    depth: usize,
) {
    let item_sep = if indent.is_some() { "," } else { ", " };
    let newline = |out: &mut String, depth: usize| {
        if let Some(width) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(width * depth));
        }
    };
    if let Some(moment) = moment(data) {
        return write_json_str(out, &moment.json_text(), ascii);
    }
    match data {
        Data::Null => out.push_str("null"),
        Data::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Data::Number(n) => out.push_str(&match n.as_f64() {
            Some(f) if n.is_f64() && f.is_nan() => "NaN".to_owned(),
            Some(f) if n.is_f64() && f.is_infinite() => {
                if f > 0.0 { "Infinity" } else { "-Infinity" }.to_owned()
            }
            _ => python_number(n),
        }),
        Data::String(s) => write_json_str(out, s, ascii),
        Data::Array(items) if items.is_empty() => out.push_str("[]"),
        Data::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                write_json(out, item, indent, (sort, ascii), depth + 1);
            }
            newline(out, depth);
            out.push(']');
        }
        Data::Object(map) if map.is_empty() => out.push_str("{}"),
        Data::Object(map) => {
            out.push('{');
            let mut entries: Vec<_> = map.iter().collect();
            if sort {
                entries.sort_by(|a, b| a.0.cmp(b.0));
            }
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                write_json_str(out, key, ascii);
                out.push_str(": ");
                write_json(out, item, indent, (sort, ascii), depth + 1);
            }
            newline(out, depth);
            out.push('}');
        }
    }
}

fn write_json_str(out: &mut String, text: &str, ascii: bool) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            c if !ascii && !c.is_ascii() => out.push(c),
            c => {
                // Python's `ensure_ascii`: UTF-16 code units, as surrogate pairs past U+FFFF.
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn repr_matches_python() {
        let data = json!({"a": 1, "b": [true, null, 2.0, "it's", "x\ny"]});
        assert_eq!(
            repr(&data),
            r#"{'a': 1, 'b': [True, None, 2.0, "it's", 'x\ny']}"#
        );
        assert_eq!(python_float(1e16), "1e+16");
        assert_eq!(python_float(1.5e-7), "1.5e-07");
        assert_eq!(python_float(0.5), "0.5");
        assert_eq!(python_float(3.0), "3.0");
    }

    #[test]
    fn json_matches_python_json_dumps() {
        // Expected outputs from `json.dumps(d)` and `json.dumps(d, indent=4, sort_keys=True,
        // separators=(',', ': '))` (what Ansible's to_json / to_nice_json call).
        let data = json!({"b": [true, null], "a": "é", "c": {}});
        assert_eq!(
            json(&data, None, false),
            r#"{"b": [true, null], "a": "\u00e9", "c": {}}"#
        );
        assert_eq!(
            json(&data, Some(4), true),
            "{\n    \"a\": \"\\u00e9\",\n    \"b\": [\n        true,\n        null\n    ],\n    \"c\": {}\n}"
        );
    }
}
