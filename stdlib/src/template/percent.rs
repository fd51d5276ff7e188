//! Python's `%` operator, which role templates use to format strings
//! (`"%s:%d" % (host, port)`) and Jinja2's `format` filter is built on. minijinja has no
//! string `%`, so the template rewrite (`undefined.rs`) turns every `a % b` into
//! `a | __toyc_percent(b)`, and this module does what Python does with it: format when
//! `a` is a string, the remainder (with Python's sign rules) when it is a number.

use minijinja::value::{Value, ValueKind};
use minijinja::Error;

use super::filters::{invalid, text};
use super::pyfmt::{self, to_data};

/// The filter the rewritten `%` calls.
pub(crate) const PERCENT: &str = "__toyc_percent";

/// `left % right` as Python computes it.
pub(crate) fn percent(left: &Value, right: &Value) -> Result<Value, Error> {
    if let Some(format) = left.as_str() {
        return format_values(format, right).map(Value::from);
    }
    match (left.kind(), right.kind()) {
        (ValueKind::Number, ValueKind::Number) => remainder(left, right),
        _ => Err(invalid(format!(
            "unsupported operand types for %: {} and {}",
            left.kind(),
            right.kind()
        ))),
    }
}

/// Python's `%` on numbers: the result takes the divisor's sign.
fn remainder(left: &Value, right: &Value) -> Result<Value, Error> {
    if let (true, true, Some(a), Some(b)) = (
        left.is_integer(),
        right.is_integer(),
        left.as_i64(),
        right.as_i64(),
    ) {
        if b == 0 {
            return Err(invalid("integer division or modulo by zero"));
        }
        let r = a.wrapping_rem(b);
        return Ok(Value::from(if r != 0 && (r < 0) != (b < 0) {
            r + b
        } else {
            r
        }));
    }
    let a = f64::try_from(left.clone())?;
    let b = f64::try_from(right.clone())?;
    if b == 0.0 {
        return Err(invalid("float modulo by zero"));
    }
    let r = a % b;
    Ok(Value::from(if r != 0.0 && (r < 0.0) != (b < 0.0) {
        r + b
    } else {
        r
    }))
}

/// One `%...` conversion: flags, width, precision and the conversion letter.
struct Spec {
    key: Option<String>,
    left: bool,
    plus: bool,
    space: bool,
    zero: bool,
    alternate: bool,
    width: usize,
    precision: Option<usize>,
    conversion: char,
}

/// `format % args`: `args` a tuple (a sequence, when the format has another number of
/// conversions than one or the sequence holds one item), a mapping for `%(name)s`, or one
/// value.
pub(crate) fn format_values(format: &str, args: &Value) -> Result<String, Error> {
    let specs = parse(format)?;
    let conversions = specs
        .iter()
        .filter(|s| matches!(s, Piece::Spec(spec) if spec.conversion != '%'))
        .count();
    let by_name = specs
        .iter()
        .any(|s| matches!(s, Piece::Spec(spec) if spec.key.is_some()));
    let positional: Vec<Value> = match args.kind() {
        _ if by_name => Vec::new(),
        ValueKind::Seq if conversions != 1 || args.len() == Some(1) => args.try_iter()?.collect(),
        _ => vec![args.clone()],
    };
    let mut next = positional.iter();
    let mut out = String::new();
    for piece in specs {
        match piece {
            Piece::Text(t) => out.push_str(&t),
            Piece::Spec(spec) if spec.conversion == '%' => out.push('%'),
            Piece::Spec(spec) => {
                let value = match &spec.key {
                    Some(key) => args.get_item(&Value::from(key.as_str()))?,
                    None => next
                        .next()
                        .cloned()
                        .ok_or_else(|| invalid("not enough arguments for format string"))?,
                };
                if value.is_undefined() {
                    return Err(pyfmt::undefined_error(&value));
                }
                out.push_str(&convert(&spec, &value)?);
            }
        }
    }
    if !by_name && next.next().is_some() {
        return Err(invalid(
            "not all arguments converted during string formatting",
        ));
    }
    Ok(out)
}

enum Piece {
    Text(String),
    Spec(Spec),
}

fn parse(format: &str) -> Result<Vec<Piece>, Error> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            literal.push(c);
            continue;
        }
        if !literal.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut literal)));
        }
        let mut spec = Spec {
            key: None,
            left: false,
            plus: false,
            space: false,
            zero: false,
            alternate: false,
            width: 0,
            precision: None,
            conversion: '%',
        };
        if chars.peek() == Some(&'(') {
            chars.next();
            let mut depth = 1;
            let mut key = String::new();
            for c in chars.by_ref() {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    break;
                }
                key.push(c);
            }
            spec.key = Some(key);
        }
        while let Some(&f) = chars.peek() {
            match f {
                '-' => spec.left = true,
                '+' => spec.plus = true,
                ' ' => spec.space = true,
                '0' => spec.zero = true,
                '#' => spec.alternate = true,
                _ => break,
            }
            chars.next();
        }
        while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
            spec.width = spec.width * 10 + d as usize;
            chars.next();
        }
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut precision = 0;
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                precision = precision * 10 + d as usize;
                chars.next();
            }
            spec.precision = Some(precision);
        }
        // Length modifiers are accepted and ignored, as Python does.
        while matches!(chars.peek(), Some('h' | 'l' | 'L')) {
            chars.next();
        }
        match chars.next() {
            Some(c) if "sradiufFeEgGxXoc%".contains(c) => spec.conversion = c,
            Some(c) => {
                return Err(invalid(format!(
                    "unsupported format character '{c}' in `{format}`"
                )))
            }
            None => return Err(invalid(format!("incomplete format: `{format}`"))),
        }
        pieces.push(Piece::Spec(spec));
    }
    if !literal.is_empty() {
        pieces.push(Piece::Text(literal));
    }
    Ok(pieces)
}

fn convert(spec: &Spec, value: &Value) -> Result<String, Error> {
    let body = match spec.conversion {
        's' => {
            let mut s = text(value)?;
            if let Some(p) = spec.precision {
                s = s.chars().take(p).collect();
            }
            s
        }
        'r' | 'a' => {
            let mut s = pyfmt::repr(&to_data(value)?);
            if let Some(p) = spec.precision {
                s = s.chars().take(p).collect();
            }
            s
        }
        'c' => match value.as_str() {
            Some(s) => s.to_owned(),
            None => value
                .as_i64()
                .and_then(|i| u32::try_from(i).ok())
                .and_then(char::from_u32)
                .map(String::from)
                .ok_or_else(|| invalid("%c requires an int or a char"))?,
        },
        'd' | 'i' | 'u' => sign(spec, integer(value)?.to_string()),
        'x' | 'X' | 'o' => {
            let i = integer(value)?;
            let magnitude = i.unsigned_abs();
            let digits = match spec.conversion {
                'x' => format!("{magnitude:x}"),
                'X' => format!("{magnitude:X}"),
                _ => format!("{magnitude:o}"),
            };
            let prefix = match (spec.alternate, spec.conversion) {
                (true, 'x') => "0x",
                (true, 'X') => "0X",
                (true, _) => "0o",
                _ => "",
            };
            let text = format!("{}{prefix}{digits}", if i < 0 { "-" } else { "" });
            sign(spec, text)
        }
        'f' | 'F' | 'e' | 'E' | 'g' | 'G' => {
            let f = float(value)?;
            sign(spec, float_text(f, spec))
        }
        _ => unreachable_conversion(spec.conversion)?,
    };
    Ok(pad(spec, body))
}

fn unreachable_conversion(c: char) -> Result<String, Error> {
    Err(invalid(format!("unsupported format character '{c}'")))
}

fn integer(value: &Value) -> Result<i64, Error> {
    if let Some(i) = value.as_i64() {
        return Ok(i);
    }
    match value.kind() {
        ValueKind::Number => Ok(f64::try_from(value.clone())?.trunc() as i64),
        ValueKind::Bool => Ok(i64::from(value.is_true())),
        _ => Err(invalid(format!(
            "%d format: a real number is required, not {}",
            value.kind()
        ))),
    }
}

fn float(value: &Value) -> Result<f64, Error> {
    match value.kind() {
        ValueKind::Number => Ok(f64::try_from(value.clone())?),
        ValueKind::Bool => Ok(if value.is_true() { 1.0 } else { 0.0 }),
        _ => Err(invalid(format!(
            "must be real number, not {}",
            value.kind()
        ))),
    }
}

/// `+` or ` ` before a non-negative number, as the flags ask.
fn sign(spec: &Spec, text: String) -> String {
    if text.starts_with('-') {
        text
    } else if spec.plus {
        format!("+{text}")
    } else if spec.space {
        format!(" {text}")
    } else {
        text
    }
}

fn pad(spec: &Spec, body: String) -> String {
    let len = body.chars().count();
    if len >= spec.width {
        return body;
    }
    let fill = spec.width - len;
    let numeric = !matches!(spec.conversion, 's' | 'r' | 'a' | 'c');
    if spec.left {
        format!("{body}{}", " ".repeat(fill))
    } else if spec.zero && numeric {
        // Zeros go after the sign and any `0x` prefix.
        let sign_len = usize::from(body.starts_with(['-', '+', ' ']));
        let prefix_len = if body[sign_len..].starts_with("0x")
            || body[sign_len..].starts_with("0X")
            || body[sign_len..].starts_with("0o")
        {
            2
        } else {
            0
        };
        let (head, tail) = body.split_at(sign_len + prefix_len);
        format!("{head}{}{tail}", "0".repeat(fill))
    } else {
        format!("{}{body}", " ".repeat(fill))
    }
}

/// `%f`, `%e` and `%g` as C (and Python) write them.
fn float_text(f: f64, spec: &Spec) -> String {
    let upper = spec.conversion.is_ascii_uppercase();
    if f.is_nan() {
        return if upper { "NAN" } else { "nan" }.to_owned();
    }
    if f.is_infinite() {
        let s = if f > 0.0 { "inf" } else { "-inf" };
        return if upper {
            s.to_uppercase()
        } else {
            s.to_owned()
        };
    }
    let precision = spec.precision.unwrap_or(6);
    let text = match spec.conversion.to_ascii_lowercase() {
        'f' => format!("{f:.precision$}"),
        'e' => exponent(f, precision),
        _ => {
            let p = precision.max(1);
            let exp = exponent(f, p - 1);
            let x: i32 = exp
                .rsplit_once('e')
                .and_then(|(_, e)| e.parse().ok())
                .unwrap_or(0);
            let body = if x < -4 || x >= p as i32 {
                exp
            } else {
                let decimals = (p as i32 - 1 - x).max(0) as usize;
                format!("{f:.decimals$}")
            };
            if spec.alternate {
                body
            } else {
                strip_zeros(&body)
            }
        }
    };
    let text =
        if spec.alternate && !text.contains('.') && spec.conversion.eq_ignore_ascii_case(&'f') {
            format!("{text}.")
        } else {
            text
        };
    if upper {
        text.to_uppercase()
    } else {
        text
    }
}

/// `1.500000e+03`: Rust's `{:e}` with C's exponent (a sign and at least two digits).
fn exponent(f: f64, precision: usize) -> String {
    let text = format!("{f:.precision$e}");
    let (mantissa, exp) = text.split_once('e').unwrap_or((&text, "0"));
    let (sign, digits) = match exp.strip_prefix('-') {
        Some(d) => ('-', d),
        None => ('+', exp),
    };
    format!("{mantissa}e{sign}{digits:0>2}")
}

/// `%g` drops the fraction's trailing zeros (and a bare `.`).
fn strip_zeros(text: &str) -> String {
    let (mantissa, exp) = match text.split_once('e') {
        Some((m, e)) => (m, Some(e)),
        None => (text, None),
    };
    let mantissa = if mantissa.contains('.') {
        mantissa.trim_end_matches('0').trim_end_matches('.')
    } else {
        mantissa
    };
    match exp {
        Some(e) => format!("{mantissa}e{e}"),
        None => mantissa.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::template::tests::render;

    // Expected outputs are Python 3.11's for the same expressions.
    #[test]
    fn percent_formats_as_python() {
        let vars = json!({"host": "db1", "port": 5432, "f": 2.5, "d": {"a": "x"}});
        assert_eq!(
            render(
                r#"{{ "%s:%d" % (host, port) }}|{{ "%05.1f" % f }}|{{ "%-5s|" % host }}|{{ "%x %o %#x" % (255, 8, 255) }}|{{ "%(a)s!" % d }}|{{ "%e" % 12345.678 }}|{{ "%g %g %g" % (0.0001, 123456789, 2.50) }}|{{ "100%%" % () }}|{{ "%r" % host }}|{{ "%+d" % 3 }}"#,
                &vars
            ),
            "db1:5432|002.5|db1  ||ff 10 0xff|x!|1.234568e+04|0.0001 1.23457e+08 2.5|100%|'db1'|+3"
        );
    }

    #[test]
    fn percent_on_numbers_is_pythons_remainder() {
        let vars = json!({"i": 7});
        assert_eq!(
            render(
                "{{ i % 3 }}|{{ -7 % 3 }}|{{ 7 % -3 }}|{{ 7.5 % 2 }}|{% for x in range(4) %}{{ loop.index % 2 }}{% endfor %}|{{ (i + 1) % 3 }}",
                &vars
            ),
            "1|2|-2|1.5|1010|2"
        );
    }
}
