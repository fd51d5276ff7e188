//! YAML written the way PyYAML's `yaml.dump` writes it, which is what Ansible's
//! `to_yaml` and `to_nice_yaml` call: keys sorted, sequences under a key not indented,
//! strings quoted only when plain text would read back as something else, long lines
//! folded at 80 columns. The writer follows PyYAML's emitter state by state (`column`,
//! `whitespace`, `indention`) so that its spacing decisions come out the same.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value as Data;

use super::pyfmt::python_number;

/// How collections are laid out.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// `to_yaml`: collections of scalars inline (`[a, b]`), the rest as blocks.
    Auto,
    /// `to_nice_yaml`: every non-empty collection as a block.
    Block,
}

/// `yaml.dump(data, default_flow_style=..., indent=indent)`.
pub(crate) fn dump(data: &Data, style: Style, indent: usize) -> String {
    let mut emitter = Emitter {
        out: String::new(),
        style,
        best_indent: indent.clamp(2, 9),
        column: 0,
        whitespace: true,
        indention: true,
        flow_level: 0,
    };
    emitter.node(data, None, Context::Root);
    if emitter.column > 0 {
        emitter.line_break();
    }
    emitter.out
}

/// Where a node sits, which decides how PyYAML indents it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    Root,
    Sequence,
    Mapping,
    Key,
}

const BEST_WIDTH: usize = 80;

struct Emitter {
    out: String,
    style: Style,
    best_indent: usize,
    column: usize,
    /// The last thing written was a space or line start (no separator needed).
    whitespace: bool,
    /// Only indentation and indicators on the current line so far.
    indention: bool,
    flow_level: usize,
}

impl Emitter {
    fn node(&mut self, data: &Data, indent: Option<usize>, context: Context) {
        if let Some(text) = toyc_engine::yaml11::timestamp_text(data) {
            return self.timestamp(text, indent);
        }
        match data {
            Data::Array(items) if self.is_flow(data) => self.flow_sequence(items, indent),
            Data::Object(map) if self.is_flow(data) => self.flow_mapping(map, indent),
            Data::Array(items) => {
                // A sequence directly under a key is "indentless": its dashes line up
                // with the key.
                let indentless = context == Context::Mapping && !self.indention;
                let indent = self.increase(indent, false, indentless);
                for item in items {
                    self.write_indent(indent);
                    self.indicator("-", true, false, true);
                    self.node(item, Some(indent), Context::Sequence);
                }
            }
            Data::Object(map) => {
                let indent = self.increase(indent, false, false);
                for (key, value) in sorted(map) {
                    self.write_indent(indent);
                    self.scalar(&Data::String(key.clone()), Some(indent), Context::Key);
                    self.indicator(":", false, false, false);
                    self.node(value, Some(indent), Context::Mapping);
                }
            }
            scalar => self.scalar(scalar, indent, context),
        }
    }

    /// PyYAML's `increase_indent`.
    fn increase(&self, indent: Option<usize>, flow: bool, indentless: bool) -> usize {
        match indent {
            None if flow => self.best_indent,
            None => 0,
            Some(indent) if indentless => indent,
            Some(indent) => indent + self.best_indent,
        }
    }

    fn is_flow(&self, data: &Data) -> bool {
        let scalar = |d: &Data| {
            !matches!(d, Data::Array(_) | Data::Object(_))
                || toyc_engine::yaml11::timestamp_text(d).is_some()
        };
        self.flow_level > 0
            || match data {
                Data::Array(items) => {
                    items.is_empty() || (self.style == Style::Auto && items.iter().all(scalar))
                }
                Data::Object(map) => {
                    map.is_empty() || (self.style == Style::Auto && map.values().all(scalar))
                }
                _ => false,
            }
    }

    fn flow_sequence(&mut self, items: &[Data], indent: Option<usize>) {
        self.indicator("[", true, true, false);
        self.flow_level += 1;
        let indent = self.increase(indent, true, false);
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.indicator(",", false, false, false);
            }
            if self.column > BEST_WIDTH {
                self.write_indent(indent);
            }
            self.node(item, Some(indent), Context::Sequence);
        }
        self.flow_level -= 1;
        self.indicator("]", false, false, false);
    }

    fn flow_mapping(&mut self, map: &serde_json::Map<String, Data>, indent: Option<usize>) {
        self.indicator("{", true, true, false);
        self.flow_level += 1;
        let indent = self.increase(indent, true, false);
        for (i, (key, value)) in sorted(map).into_iter().enumerate() {
            if i > 0 {
                self.indicator(",", false, false, false);
            }
            if self.column > BEST_WIDTH {
                self.write_indent(indent);
            }
            self.scalar(&Data::String(key.clone()), Some(indent), Context::Key);
            self.indicator(":", false, false, false);
            self.node(value, Some(indent), Context::Mapping);
        }
        self.flow_level -= 1;
        self.indicator("}", false, false, false);
    }

    /// A date as PyYAML writes it (plain `2024-01-15`); a datetime as Ansible 2.19's
    /// dumper writes one: `! '2024-01-15 10:30:00'`.
    fn timestamp(&mut self, text: &str, indent: Option<usize>) {
        let indent = self.increase(indent, true, false);
        match super::datetime::Moment::from_yaml(text) {
            Some(date @ super::datetime::Moment::Date(_)) => {
                self.plain(&date.to_string(), false, indent)
            }
            Some(moment) => {
                self.plain("!", false, indent);
                self.single_quoted(&moment.to_string(), true, indent);
            }
            None => self.single_quoted(text, false, indent),
        }
    }

    fn scalar(&mut self, data: &Data, indent: Option<usize>, context: Context) {
        // PyYAML's `expect_scalar` indents continuation lines one step further.
        let indent = self.increase(indent, true, false);
        let simple_key = context == Context::Key;
        let split = !simple_key;
        let text = match data {
            Data::Null => "null".to_owned(),
            Data::Bool(b) => b.to_string(),
            Data::Number(n) => yaml_number(n),
            Data::String(s) => {
                match choose_style(s, self.flow_level > 0, simple_key) {
                    Quoting::Plain => self.plain(s, split, indent),
                    Quoting::Single => self.single_quoted(s, split, indent),
                    Quoting::Double => self.double_quoted(s),
                }
                return;
            }
            _ => return,
        };
        self.plain(&text, split, indent);
    }

    fn indicator(&mut self, text: &str, need_whitespace: bool, whitespace: bool, indention: bool) {
        if !self.whitespace && need_whitespace {
            self.write(" ");
        }
        self.write(text);
        self.whitespace = whitespace;
        self.indention = self.indention && indention;
    }

    fn write_indent(&mut self, indent: usize) {
        if !self.indention || self.column > indent || (self.column == indent && !self.whitespace) {
            self.line_break();
        }
        if self.column < indent {
            self.whitespace = true;
            self.write(&" ".repeat(indent - self.column));
        }
    }

    fn line_break(&mut self) {
        self.out.push('\n');
        self.column = 0;
        self.whitespace = true;
        self.indention = true;
    }

    fn write(&mut self, text: &str) {
        self.out.push_str(text);
        self.column += text.chars().count();
    }

    fn plain(&mut self, text: &str, split: bool, indent: usize) {
        if text.is_empty() {
            return;
        }
        if !self.whitespace {
            self.write(" ");
        }
        self.whitespace = false;
        self.indention = false;
        // Runs of words and of spaces; a single space past the width becomes a line break.
        for (run, is_space) in runs(text) {
            if is_space && run.len() == 1 && self.column > BEST_WIDTH && split {
                self.write_indent(indent);
                self.whitespace = false;
                self.indention = false;
            } else {
                self.write(run);
            }
        }
    }

    fn single_quoted(&mut self, text: &str, split: bool, indent: usize) {
        self.indicator("'", true, false, false);
        let chars: Vec<char> = text.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let start = i;
            let kind = chars[i];
            while i < chars.len() && same_run(chars[i], kind) {
                i += 1;
            }
            let run: String = chars[start..i].iter().collect();
            if kind == ' ' {
                let inner = start != 0 && i != chars.len();
                if run.len() == 1 && self.column > BEST_WIDTH && split && inner {
                    self.write_indent(indent);
                } else {
                    self.write(&run);
                }
            } else if kind == '\n' {
                // A line break inside quotes folds, so each one is written twice over.
                self.line_break();
                for _ in 0..run.len() {
                    self.line_break();
                }
                self.write_indent(indent);
            } else {
                self.write(&run.replace('\'', "''"));
            }
        }
        self.indicator("'", false, false, false);
    }

    fn double_quoted(&mut self, text: &str) {
        self.indicator("\"", true, false, false);
        let mut escaped = String::new();
        for c in text.chars() {
            match c {
                '\0' => escaped.push_str("\\0"),
                '\x07' => escaped.push_str("\\a"),
                '\x08' => escaped.push_str("\\b"),
                '\t' => escaped.push_str("\\t"),
                '\n' => escaped.push_str("\\n"),
                '\x0b' => escaped.push_str("\\v"),
                '\x0c' => escaped.push_str("\\f"),
                '\r' => escaped.push_str("\\r"),
                '\x1b' => escaped.push_str("\\e"),
                '"' => escaped.push_str("\\\""),
                '\\' => escaped.push_str("\\\\"),
                '\u{85}' => escaped.push_str("\\N"),
                '\u{a0}' => escaped.push_str("\\_"),
                '\u{2028}' => escaped.push_str("\\L"),
                '\u{2029}' => escaped.push_str("\\P"),
                c if printable(c) => escaped.push(c),
                c if (c as u32) <= 0xff => escaped.push_str(&format!("\\x{:02X}", c as u32)),
                c if (c as u32) <= 0xffff => escaped.push_str(&format!("\\u{:04X}", c as u32)),
                c => escaped.push_str(&format!("\\U{:08X}", c as u32)),
            }
        }
        self.write(&escaped);
        self.indicator("\"", false, false, false);
    }
}

fn sorted(map: &serde_json::Map<String, Data>) -> Vec<(&String, &Data)> {
    let mut entries: Vec<_> = map.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
}

fn same_run(c: char, kind: char) -> bool {
    match kind {
        ' ' => c == ' ',
        '\n' => c == '\n',
        _ => c != ' ' && c != '\n',
    }
}

/// `text` cut into alternating runs of spaces and of everything else.
fn runs(text: &str) -> Vec<(&str, bool)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_space = text.starts_with(' ');
    for (i, c) in text.char_indices() {
        if (c == ' ') != in_space {
            out.push((&text[start..i], in_space));
            start = i;
            in_space = c == ' ';
        }
    }
    out.push((&text[start..], in_space));
    out
}

/// A float as PyYAML writes it: Python's repr with a `.0` before any exponent.
fn yaml_number(n: &serde_json::Number) -> String {
    let text = python_number(n);
    match text.as_str() {
        "inf" => ".inf".into(),
        "-inf" => "-.inf".into(),
        "nan" => ".nan".into(),
        _ if !text.contains('.') && text.contains('e') => text.replacen('e', ".0e", 1),
        _ => text,
    }
}

enum Quoting {
    Plain,
    Single,
    Double,
}

fn printable(c: char) -> bool {
    matches!(c, '\n' | '\x20'..='\x7e' | '\u{85}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
        && c != '\u{feff}'
}

/// PyYAML's `analyze_scalar` and `choose_scalar_style`, for a string.
fn choose_style(text: &str, in_flow: bool, simple_key: bool) -> Quoting {
    if text.is_empty() {
        return Quoting::Single;
    }
    let chars: Vec<char> = text.chars().collect();
    let is_break = |c: char| matches!(c, '\n' | '\u{85}' | '\u{2028}' | '\u{2029}');
    let is_blank =
        |c: Option<&char>| c.is_none_or(|&c| c == ' ' || c == '\t' || c == '\r' || is_break(c));
    let (mut flow_indicators, mut block_indicators) = (false, false);
    if text.starts_with("---") || text.starts_with("...") {
        (flow_indicators, block_indicators) = (true, true);
    }
    let (mut line_breaks, mut special) = (false, false);
    let (mut leading, mut trailing) = (false, false);
    let (mut space_break, mut break_space) = (false, false);
    let (mut previous_space, mut previous_break) = (false, false);
    let last = chars.len() - 1;
    for (i, &c) in chars.iter().enumerate() {
        let followed_by_blank = is_blank(chars.get(i + 1));
        let preceded_by_blank = i == 0 || is_blank(chars.get(i - 1));
        if i == 0 {
            if "#,[]{}&*!|>'\"%@`".contains(c) {
                (flow_indicators, block_indicators) = (true, true);
            }
            if c == '?' || c == ':' {
                flow_indicators = true;
                block_indicators |= followed_by_blank;
            }
            if c == '-' && followed_by_blank {
                (flow_indicators, block_indicators) = (true, true);
            }
        } else {
            if ",?[]{}".contains(c) {
                flow_indicators = true;
            }
            if c == ':' {
                flow_indicators = true;
                block_indicators |= followed_by_blank;
            }
            if c == '#' && preceded_by_blank {
                (flow_indicators, block_indicators) = (true, true);
            }
        }
        if is_break(c) {
            line_breaks = true;
        }
        if c != '\n' && !('\x20'..='\x7e').contains(&c) && !printable(c) {
            special = true;
        }
        if c == ' ' {
            leading |= i == 0;
            trailing |= i == last;
            break_space |= previous_break;
            (previous_space, previous_break) = (true, false);
        } else if is_break(c) {
            leading |= i == 0;
            trailing |= i == last;
            space_break |= previous_space;
            (previous_space, previous_break) = (false, true);
        } else {
            (previous_space, previous_break) = (false, false);
        }
    }
    let mut plain_ok =
        !(leading || trailing || break_space || space_break || special || line_breaks);
    plain_ok &= if in_flow {
        !flow_indicators
    } else {
        !block_indicators
    };
    plain_ok &= !(simple_key && line_breaks);
    if plain_ok && !reads_as_other_type(text) {
        return Quoting::Plain;
    }
    if break_space || space_break || special || (simple_key && line_breaks) {
        Quoting::Double
    } else {
        Quoting::Single
    }
}

/// Whether plain `text` would load as a bool, number, null, date or merge key (PyYAML's
/// implicit resolvers), so that it has to be quoted to stay a string.
fn reads_as_other_type(text: &str) -> bool {
    static OTHER: LazyLock<Result<Regex, regex::Error>> = LazyLock::new(|| {
        let patterns = [
            r"yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF",
            r"[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+",
            r"[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)",
            r"~|null|Null|NULL",
            r"[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?",
            r"<<|=",
        ];
        let joined = patterns.join("|");
        Regex::new(&format!("^(?:{joined})$"))
    });
    // The pattern is constant (and tested); were it broken, quoting every string would
    // still be valid YAML.
    OTHER.as_ref().map_or(true, |re| re.is_match(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // Expected outputs from Ansible 2.19's to_yaml / to_nice_yaml (PyYAML 6.0.3).

    #[test]
    fn nice_yaml_indents_maps_by_four_and_lists_not_at_all() {
        let data = json!({"z": [], "a": {"b": {"c": [1, {"d": 2}]}}});
        assert_eq!(
            dump(&data, Style::Block, 4),
            "a:\n    b:\n        c:\n        - 1\n        -   d: 2\nz: []\n"
        );
        assert_eq!(
            dump(&data, Style::Auto, 2),
            "a:\n  b:\n    c:\n    - 1\n    - {d: 2}\nz: []\n"
        );
    }

    #[test]
    fn strings_are_quoted_as_pyyaml_quotes_them() {
        let data = json!({"k": "a\nb", "long": "word ".repeat(30), "q": "yes", "n": "123",
            "e": "", "c": "a: b", "h": "#x", "s": "a b"});
        assert_eq!(
            dump(&data, Style::Block, 4),
            "c: 'a: b'\ne: ''\nh: '#x'\nk: 'a\n\n    b'\nlong: 'word word word word word word word word word word word word word word word\n    word word word word word word word word word word word word word word word '\nn: '123'\nq: 'yes'\ns: a b\n"
        );
        assert_eq!(
            dump(&json!("multi\nline"), Style::Block, 4),
            "'multi\n\n    line'\n"
        );
        assert_eq!(dump(&json!([]), Style::Block, 4), "[]\n");
        assert_eq!(
            dump(&json!({"a": 1, "b": [true, null]}), Style::Auto, 2),
            "a: 1\nb: [true, null]\n"
        );
    }
}
