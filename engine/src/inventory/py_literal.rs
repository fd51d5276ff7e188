//! Values in Ansible INI inventories: Ansible reads each with Python's `ast.literal_eval`, and
//! keeps the text as a string when that fails. This is the subset of Python literals found in
//! inventories: numbers, quoted strings, `True`/`False`/`None` (and `true`/`false`), lists,
//! tuples and dicts.

use serde_json::{Map, Number, Value};

/// The value `text` stands for: a literal, or else the text itself.
pub(super) fn value(text: &str) -> Value {
    literal(text).unwrap_or_else(|| Value::String(text.to_owned()))
}

/// The literal `text` is, if it is one.
pub(super) fn literal(text: &str) -> Option<Value> {
    let mut parser = Parser {
        chars: text.chars().collect(),
        pos: 0,
    };
    let value = parser.value()?;
    parser.skip_space();
    (parser.pos == parser.chars.len()).then_some(value)
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    /// Skips blanks and a `#` comment, which Python allows after a literal.
    fn skip_space(&mut self) {
        while let Some(c) = self.peek() {
            if c == '#' {
                self.pos = self.chars.len();
            } else if c.is_whitespace() {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    fn eat(&mut self, wanted: char) -> bool {
        self.skip_space();
        if self.peek() == Some(wanted) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> Option<Value> {
        self.skip_space();
        match self.peek()? {
            '\'' | '"' => self.strings().map(Value::String),
            '[' => self.list('[', ']'),
            '(' => self.parenthesised(),
            '{' => self.dict(),
            c if c.is_ascii_digit() || matches!(c, '+' | '-' | '.') => self.number(),
            c if c.is_alphabetic() || c == '_' => self.word(),
            _ => None,
        }
    }

    /// `True`, `False`, `None`; lower-case `true`/`false` too, which people write meaning
    /// booleans (Python would keep them as strings).
    fn word(&mut self) -> Option<Value> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
            self.pos += 1;
        }
        let word: String = self.chars[start..self.pos].iter().collect();
        match word.as_str() {
            "True" | "true" => Some(Value::Bool(true)),
            "False" | "false" => Some(Value::Bool(false)),
            "None" => Some(Value::Null),
            _ => None,
        }
    }

    /// Comma-separated values up to `close`, a trailing comma allowed.
    fn items(&mut self, close: char) -> Option<Vec<Value>> {
        let mut items = Vec::new();
        loop {
            if self.eat(close) {
                return Some(items);
            }
            items.push(self.value()?);
            if !self.eat(',') {
                return self.eat(close).then_some(items);
            }
        }
    }

    fn list(&mut self, open: char, close: char) -> Option<Value> {
        if !self.eat(open) {
            return None;
        }
        self.items(close).map(Value::Array)
    }

    /// `(1, 2)` is a tuple (a list here); `(1)` is just 1.
    fn parenthesised(&mut self) -> Option<Value> {
        self.eat('(');
        if self.eat(')') {
            return Some(Value::Array(Vec::new()));
        }
        let first = self.value()?;
        if self.eat(')') {
            return Some(first);
        }
        if !self.eat(',') {
            return None;
        }
        let mut rest = self.items(')')?;
        rest.insert(0, first);
        Some(Value::Array(rest))
    }

    fn dict(&mut self) -> Option<Value> {
        self.eat('{');
        let mut map = Map::new();
        loop {
            if self.eat('}') {
                return Some(Value::Object(map));
            }
            let key = match self.value()? {
                Value::String(s) => s,
                // JSON keys are text; Python allows numbers, booleans and None.
                Value::Array(_) | Value::Object(_) => return None,
                other => other.to_string(),
            };
            if !self.eat(':') {
                return None;
            }
            let value = self.value()?;
            map.insert(key, value);
            if !self.eat(',') {
                return self.eat('}').then_some(Value::Object(map));
            }
        }
    }

    /// One or more adjacent quoted strings, joined as Python does (`'a' "b"` is `ab`).
    fn strings(&mut self) -> Option<String> {
        let mut text = self.string()?;
        loop {
            let save = self.pos;
            self.skip_space();
            match self.peek() {
                Some('\'' | '"') => text.push_str(&self.string()?),
                _ => {
                    self.pos = save;
                    return Some(text);
                }
            }
        }
    }

    fn string(&mut self) -> Option<String> {
        let quote = self.peek()?;
        self.pos += 1;
        let mut text = String::new();
        loop {
            let c = self.peek()?;
            self.pos += 1;
            match c {
                c if c == quote => return Some(text),
                '\\' => self.escape(&mut text)?,
                '\n' => return None,
                c => text.push(c),
            }
        }
    }

    /// After a backslash in a string: the escapes Python knows; others keep the backslash.
    fn escape(&mut self, text: &mut String) -> Option<()> {
        let c = self.peek()?;
        self.pos += 1;
        let simple = match c {
            '\\' => Some('\\'),
            '\'' => Some('\''),
            '"' => Some('"'),
            'n' => Some('\n'),
            't' => Some('\t'),
            'r' => Some('\r'),
            '0' => Some('\0'),
            'a' => Some('\u{7}'),
            'b' => Some('\u{8}'),
            'f' => Some('\u{c}'),
            'v' => Some('\u{b}'),
            _ => None,
        };
        if let Some(s) = simple {
            text.push(s);
            return Some(());
        }
        let hex_len = match c {
            'x' => 2,
            'u' => 4,
            'U' => 8,
            _ => {
                text.push('\\');
                text.push(c);
                return Some(());
            }
        };
        let digits: String = self
            .chars
            .get(self.pos..self.pos + hex_len)?
            .iter()
            .collect();
        self.pos += hex_len;
        text.push(char::from_u32(u32::from_str_radix(&digits, 16).ok()?)?);
        Some(())
    }

    /// An int (`42`, `-1`, `0x1f`, `1_000`) or a float (`1.5`, `.5`, `1e3`).
    fn number(&mut self) -> Option<Value> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.' | '_'))
        {
            // A sign only starts the number or follows an exponent.
            if matches!(self.peek(), Some('+' | '-'))
                && self.pos > start
                && !matches!(self.chars[self.pos - 1], 'e' | 'E')
            {
                break;
            }
            self.pos += 1;
        }
        let text: String = self.chars[start..self.pos].iter().collect();
        number(&text)
    }
}

fn number(text: &str) -> Option<Value> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if let Some(magnitude) = integer(unsigned) {
        let value = if negative {
            Number::from(0i64.checked_sub(i64::try_from(magnitude).ok()?)?)
        } else {
            Number::from(magnitude)
        };
        return Some(Value::Number(value));
    }
    let f: f64 = float_text(unsigned)?.parse().ok()?;
    let f = if negative { -f } else { f };
    Number::from_f64(f).map(Value::Number)
}

/// Python's integer forms; `010` is not one (Python 3 rejects it).
fn integer(text: &str) -> Option<u64> {
    let lower = text.to_ascii_lowercase();
    for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] {
        if let Some(digits) = lower.strip_prefix(prefix) {
            return u64::from_str_radix(&underscores(digits)?, radix).ok();
        }
    }
    let digits = underscores(text)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    digits.parse().ok()
}

/// The float's text with `_` separators removed, if it is Python float syntax.
fn float_text(text: &str) -> Option<String> {
    let text = underscores(text)?;
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(i) => (&text[..i], Some(&text[i + 1..])),
        None => (text.as_str(), None),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (mantissa, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = digits(whole)
        && fraction.is_none_or(digits)
        && !(whole.is_empty() && fraction.unwrap_or("").is_empty());
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    (mantissa_ok && exponent_ok && (fraction.is_some() || exponent.is_some())).then_some(text)
}

/// `text` without `_` digit separators, if they only stand between digits.
fn underscores(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'_' {
            let before = i.checked_sub(1).and_then(|j| bytes.get(j));
            let after = bytes.get(i + 1);
            if !before.is_some_and(u8::is_ascii_alphanumeric)
                || !after.is_some_and(u8::is_ascii_alphanumeric)
            {
                return None;
            }
        }
    }
    Some(text.replace('_', ""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers() {
        assert_eq!(value("8080"), json!(8080));
        assert_eq!(value("-5"), json!(-5));
        assert_eq!(value("+5"), json!(5));
        assert_eq!(value("1_000"), json!(1000));
        assert_eq!(value("0x1F"), json!(31));
        assert_eq!(value("0"), json!(0));
        assert_eq!(value("1.5"), json!(1.5));
        assert_eq!(value(".5"), json!(0.5));
        assert_eq!(value("1e3"), json!(1000.0));
        assert_eq!(value("2.5e-1"), json!(0.25));
    }

    #[test]
    fn things_that_only_look_like_numbers_stay_strings() {
        assert_eq!(value("010"), json!("010"));
        assert_eq!(value("10.0.0.1"), json!("10.0.0.1"));
        assert_eq!(value("1.2.3"), json!("1.2.3"));
        assert_eq!(value("3com"), json!("3com"));
        assert_eq!(value("1_"), json!("1_"));
        assert_eq!(value("-"), json!("-"));
        assert_eq!(value("."), json!("."));
        assert_eq!(value("1-2"), json!("1-2"));
    }

    #[test]
    fn booleans_and_none() {
        assert_eq!(value("True"), json!(true));
        assert_eq!(value("false"), json!(false));
        assert_eq!(value("true"), json!(true));
        assert_eq!(value("None"), json!(null));
        assert_eq!(value("yes"), json!("yes"));
        assert_eq!(value("Truely"), json!("Truely"));
    }

    #[test]
    fn quoted_strings_lose_their_quotes_and_keep_their_type() {
        assert_eq!(value("\"22\""), json!("22"));
        assert_eq!(value("'hello world'"), json!("hello world"));
        assert_eq!(value(r#""say \"hi\"\n""#), json!("say \"hi\"\n"));
        assert_eq!(value(r"'a\qb'"), json!(r"a\qb"));
        assert_eq!(value(r"'\x41\u00e9'"), json!("Aé"));
        assert_eq!(value("'a' \"b\""), json!("ab"));
        assert_eq!(value("'unclosed"), json!("'unclosed"));
        assert_eq!(value("'a'b"), json!("'a'b"));
    }

    #[test]
    fn containers() {
        assert_eq!(value("[1, 'two', [True]]"), json!([1, "two", [true]]));
        assert_eq!(value("['a',]"), json!(["a"]));
        assert_eq!(value("[]"), json!([]));
        assert_eq!(value("(1, 2)"), json!([1, 2]));
        assert_eq!(value("(1)"), json!(1));
        assert_eq!(value("{'a': 1, 2: [None]}"), json!({"a": 1, "2": [null]}));
        assert_eq!(value("{}"), json!({}));
        assert_eq!(value("[1, 2"), json!("[1, 2"));
        assert_eq!(value("{'a' 1}"), json!("{'a' 1}"));
    }

    #[test]
    fn a_trailing_comment_after_a_literal_is_dropped_as_python_does() {
        assert_eq!(value("42 # the answer"), json!(42));
        // Not a literal: Ansible keeps the whole text, comment included.
        assert_eq!(value("web # main"), json!("web # main"));
    }

    #[test]
    fn empty_text_is_an_empty_string() {
        assert_eq!(value(""), json!(""));
        assert_eq!(literal("  "), None);
    }
}
