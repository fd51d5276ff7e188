//! The filters Ansible adds to Jinja2, and Jinja2's own where minijinja's differ in
//! output, so that role templates render as they do under `ansible.builtin.template`.
//! Each follows the Python code it replaces (named in its doc); the tests pin outputs
//! taken from Ansible 2.19 with Jinja2 3.1.

use base64::Engine as _;
use minijinja::value::{Kwargs, Rest, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind};

use super::pyfmt::{self, to_data, undefined_error};
use super::yaml::{self, Style};

/// Add the filters to `env`, replacing minijinja's `join`, `indent` and `bool`.
pub(crate) fn register(env: &mut Environment<'_>) {
    env.add_filter("mandatory", mandatory);
    env.add_filter("to_json", to_json);
    env.add_filter("to_nice_json", to_nice_json);
    env.add_filter("to_yaml", to_yaml);
    env.add_filter("to_nice_yaml", to_nice_yaml);
    env.add_filter("regex_replace", regex_replace);
    env.add_filter("regex_search", regex_search);
    env.add_filter("b64encode", b64encode);
    env.add_filter("b64decode", b64decode);
    env.add_filter("basename", basename);
    env.add_filter("dirname", dirname);
    env.add_filter("join", join);
    env.add_filter("indent", indent);
    env.add_filter("bool", to_bool);
    env.add_filter("quote", quote);
    env.add_filter("hash", hash);
    env.add_filter("int", to_int);
    env.add_filter("float", to_float);
}

pub(crate) fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, message.into())
}

/// Python's `str(value)`, as Ansible's `to_text` makes filter input text.
pub(crate) fn text(value: &Value) -> Result<String, Error> {
    match value.kind() {
        ValueKind::Undefined => Err(undefined_error(value)),
        ValueKind::String => Ok(value.as_str().unwrap_or_default().to_owned()),
        _ => Ok(pyfmt::repr(&to_data(value)?)),
    }
}

/// `mandatory`: the value, or an error when it is undefined: `msg` when given, else
/// minijinja's own undefined error, which names the variable (the error's spot, this
/// filter, tells it from other undefined errors).
fn mandatory(value: &Value, msg: Option<String>) -> Result<Value, Error> {
    match msg {
        _ if !value.is_undefined() => Ok(value.clone()),
        Some(msg) => Err(Error::new(ErrorKind::UndefinedError, msg)),
        None => Err(undefined_error(value)),
    }
}

/// `to_json`: `json.dumps(value)`; `indent` and `sort_keys` as keyword arguments.
fn to_json(value: &Value, kwargs: Kwargs) -> Result<String, Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let sort: Option<bool> = kwargs.get("sort_keys")?;
    let ascii: Option<bool> = kwargs.get("ensure_ascii")?;
    kwargs.assert_all_used()?;
    Ok(pyfmt::json_with(
        &to_data(value)?,
        indent,
        sort.unwrap_or(false),
        ascii.unwrap_or(true),
    ))
}

/// `to_nice_json`: `json.dumps(value, indent=4, sort_keys=True, separators=(',', ': '))`.
fn to_nice_json(value: &Value, indent: Option<usize>, kwargs: Kwargs) -> Result<String, Error> {
    let indent = match kwargs.get::<Option<usize>>("indent")? {
        Some(i) => i,
        None => indent.unwrap_or(4),
    };
    let sort: Option<bool> = kwargs.get("sort_keys")?;
    kwargs.assert_all_used()?;
    Ok(pyfmt::json(
        &to_data(value)?,
        Some(indent),
        sort.unwrap_or(true),
    ))
}

/// `to_yaml`: `yaml.dump(value, default_flow_style=None)`, inner lists of scalars inline.
fn to_yaml(value: &Value, kwargs: Kwargs) -> Result<String, Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    kwargs.assert_all_used()?;
    Ok(yaml::dump(
        &to_data(value)?,
        Style::Auto,
        indent.unwrap_or(2),
    ))
}

/// `to_nice_yaml`: `yaml.dump(value, indent=4, default_flow_style=False)`.
fn to_nice_yaml(value: &Value, indent: Option<usize>, kwargs: Kwargs) -> Result<String, Error> {
    let indent = match kwargs.get::<Option<usize>>("indent")? {
        Some(i) => i,
        None => indent.unwrap_or(4),
    };
    kwargs.assert_all_used()?;
    Ok(yaml::dump(&to_data(value)?, Style::Block, indent))
}

/// A Python regular expression for Rust's `regex`, with the `re.I` / `re.M` flags.
pub(crate) fn regex(
    pattern: &str,
    ignorecase: bool,
    multiline: bool,
) -> Result<regex::Regex, Error> {
    regex::RegexBuilder::new(pattern)
        .case_insensitive(ignorecase)
        .multi_line(multiline)
        .build()
        .map_err(|e| {
            invalid(format!(
                "invalid regular expression `{pattern}` (backreferences and lookaround are not supported): {e}"
            ))
        })
}

/// `re.sub`'s replacement syntax (`\1`, `\g<name>`, `\n`) in `regex`'s (`${1}`, `$$`).
fn python_replacement(replacement: &str) -> String {
    let mut out = String::new();
    let mut chars = replacement.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' => out.push_str("$$"),
            '\\' => match chars.next() {
                Some(d) if d.is_ascii_digit() => {
                    let mut group = d.to_string();
                    if let Some(&e) = chars.peek().filter(|e| e.is_ascii_digit()) {
                        group.push(e);
                        chars.next();
                    }
                    out.push_str(&format!("${{{group}}}"));
                }
                Some('g') if chars.peek() == Some(&'<') => {
                    chars.next();
                    let name: String = chars.by_ref().take_while(|&c| c != '>').collect();
                    out.push_str(&format!("${{{name}}}"));
                }
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('\\') => out.push('\\'),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    out
}

/// `regex_replace(pattern, replacement, ignorecase=False, multiline=False, count=0)`.
fn regex_replace(
    value: &Value,
    pattern: Option<String>,
    replacement: Option<String>,
    kwargs: Kwargs,
) -> Result<String, Error> {
    let ignorecase = kwargs.get::<Option<bool>>("ignorecase")?.unwrap_or(false);
    let multiline = kwargs.get::<Option<bool>>("multiline")?.unwrap_or(false);
    let count = kwargs.get::<Option<usize>>("count")?.unwrap_or(0);
    kwargs.assert_all_used()?;
    let re = regex(&pattern.unwrap_or_default(), ignorecase, multiline)?;
    let replacement = python_replacement(&replacement.unwrap_or_default());
    Ok(re
        .replacen(&text(value)?, count, replacement.as_str())
        .into_owned())
}

/// `regex_search(regex, '\\1', '\\g<name>', ignorecase=False, multiline=False)`: the
/// match, the listed groups, or `None` when nothing matches.
fn regex_search(
    value: &Value,
    pattern: String,
    groups: Rest<String>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let ignorecase = kwargs.get::<Option<bool>>("ignorecase")?.unwrap_or(false);
    let multiline = kwargs.get::<Option<bool>>("multiline")?.unwrap_or(false);
    kwargs.assert_all_used()?;
    let re = regex(&pattern, ignorecase, multiline)?;
    let haystack = text(value)?;
    let Some(captures) = re.captures(&haystack) else {
        return Ok(Value::from(()));
    };
    if groups.is_empty() {
        return Ok(Value::from(captures.get(0).map_or("", |m| m.as_str())));
    }
    let mut found = Vec::new();
    for group in groups.iter() {
        let matched =
            if let Some(name) = group.strip_prefix("\\g<").and_then(|g| g.strip_suffix('>')) {
                captures.name(name)
            } else if let Some(Ok(index)) = group.strip_prefix('\\').map(str::parse::<usize>) {
                captures.get(index)
            } else {
                return Err(invalid(format!(
                    "regex_search: unknown argument `{group}` (use '\\\\1' or '\\\\g<name>')"
                )));
            };
        found.push(Value::from(matched.map(|m| m.as_str())));
    }
    Ok(Value::from(found))
}

fn b64_engine(urlsafe: bool) -> base64::engine::GeneralPurpose {
    if urlsafe {
        base64::engine::general_purpose::URL_SAFE
    } else {
        base64::engine::general_purpose::STANDARD
    }
}

/// `b64encode(urlsafe=False)`: the UTF-8 text in base64.
fn b64encode(value: &Value, kwargs: Kwargs) -> Result<String, Error> {
    let urlsafe = kwargs.get::<Option<bool>>("urlsafe")?.unwrap_or(false);
    kwargs.assert_all_used()?;
    Ok(b64_engine(urlsafe).encode(text(value)?))
}

/// `b64decode(urlsafe=False)`: base64 back to UTF-8 text.
fn b64decode(value: &Value, kwargs: Kwargs) -> Result<String, Error> {
    let urlsafe = kwargs.get::<Option<bool>>("urlsafe")?.unwrap_or(false);
    kwargs.assert_all_used()?;
    let bytes = b64_engine(urlsafe)
        .decode(text(value)?.trim())
        .map_err(|e| invalid(format!("b64decode: not base64: {e}")))?;
    String::from_utf8(bytes).map_err(|_| invalid("b64decode: the decoded bytes are not UTF-8 text"))
}

/// `basename`: Python's `os.path.basename`, the part after the last `/`.
fn basename(value: &Value) -> Result<String, Error> {
    let path = text(value)?;
    Ok(path.rsplit('/').next().unwrap_or_default().to_owned())
}

/// `dirname`: Python's `os.path.dirname`, the part before the last `/`, without trailing
/// slashes unless it is only slashes.
fn dirname(value: &Value) -> Result<String, Error> {
    let path = text(value)?;
    let head = match path.rfind('/') {
        Some(i) => &path[..=i],
        None => "",
    };
    let trimmed = head.trim_end_matches('/');
    Ok(if trimmed.is_empty() { head } else { trimmed }.to_owned())
}

/// `join(d='', attribute=None)`: Jinja2's, with items as Python prints them (`True`).
fn join(
    value: &Value,
    joiner: Option<String>,
    attribute: Option<String>,
    kwargs: Kwargs,
) -> Result<String, Error> {
    let joiner = kwargs.get::<Option<String>>("d")?.or(joiner);
    let attribute = kwargs.get::<Option<String>>("attribute")?.or(attribute);
    kwargs.assert_all_used()?;
    if value.is_undefined() {
        return Err(undefined_error(value));
    }
    let joiner = joiner.unwrap_or_default();
    let mut items = Vec::new();
    for item in value.try_iter()? {
        let item = match &attribute {
            Some(attribute) => item.get_attr(attribute)?,
            None => item,
        };
        items.push(text(&item)?);
    }
    Ok(items.join(&joiner))
}

/// `indent(width=4, first=False, blank=False)`: Jinja2's `do_indent`, `width` a number
/// of spaces or the text to indent with.
fn indent(
    value: &Value,
    width: Option<Value>,
    first: Option<bool>,
    blank: Option<bool>,
    kwargs: Kwargs,
) -> Result<String, Error> {
    let width = kwargs.get::<Option<Value>>("width")?.or(width);
    let first = kwargs
        .get::<Option<bool>>("first")?
        .or(first)
        .unwrap_or(false);
    let blank = kwargs
        .get::<Option<bool>>("blank")?
        .or(blank)
        .unwrap_or(false);
    kwargs.assert_all_used()?;
    let indention = match width {
        None => "    ".to_owned(),
        Some(w) => match w.as_str() {
            Some(prefix) => prefix.to_owned(),
            None => " ".repeat(
                w.as_usize()
                    .ok_or_else(|| invalid("indent: width must be a number or a string"))?,
            ),
        },
    };
    // Jinja2 appends a newline before splitting, so a trailing newline survives.
    let source = format!("{}\n", text(value)?);
    let lines = python_splitlines(&source);
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            out.push('\n');
            if blank || !line.is_empty() {
                out.push_str(&indention);
            }
        }
        out.push_str(line);
    }
    if first {
        out.insert_str(0, &indention);
    }
    Ok(out)
}

/// Python's `str.splitlines()` for `\n`, `\r\n` and `\r`.
fn python_splitlines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\n' || bytes[i] == b'\r' {
            lines.push(&text[start..i]);
            if bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
                i += 1;
            }
            start = i + 1;
        }
        i += 1;
    }
    if start < text.len() {
        lines.push(&text[start..]);
    }
    lines
}

/// `bool`: Ansible's `to_bool`, true for `yes`, `on`, `true`, `1` in any case (and for
/// `1` and `True` themselves), false otherwise.
fn to_bool(value: &Value) -> Result<bool, Error> {
    let word = match value.kind() {
        ValueKind::Undefined => return Err(undefined_error(value)),
        ValueKind::String => value.as_str().unwrap_or_default().to_lowercase(),
        ValueKind::Bool => value.is_true().to_string(),
        ValueKind::Number if value.is_integer() => value.to_string(),
        // Ansible's fallback `value == 1`, which also takes the float 1.0.
        ValueKind::Number => return Ok(f64::try_from(value.clone()).is_ok_and(|f| f == 1.0)),
        _ => return Ok(false),
    };
    Ok(matches!(word.as_str(), "yes" | "on" | "true" | "1"))
}

/// `quote`: Python's `shlex.quote`, for a shell command line.
fn quote(value: &Value) -> Result<String, Error> {
    let raw = if value.is_none() {
        String::new()
    } else {
        text(value)?
    };
    if raw.is_empty() {
        return Ok("''".to_owned());
    }
    let safe = |c: char| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c);
    if raw.chars().all(safe) {
        return Ok(raw);
    }
    Ok(format!("'{}'", raw.replace('\'', "'\"'\"'")))
}

/// `hash(algorithm='sha1')`: the hex digest of the UTF-8 text (`hashlib`'s names).
fn hash(value: &Value, algorithm: Option<String>) -> Result<String, Error> {
    use sha2::Digest;
    let data = text(value)?;
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    Ok(match algorithm.as_deref().unwrap_or("sha1") {
        "sha1" => sha1_smol::Sha1::from(data).digest().to_string(),
        "md5" => hex(&::md5::Md5::digest(data.as_bytes())),
        "sha224" => hex(&sha2::Sha224::digest(data.as_bytes())),
        "sha256" => hex(&sha2::Sha256::digest(data.as_bytes())),
        "sha384" => hex(&sha2::Sha384::digest(data.as_bytes())),
        "sha512" => hex(&sha2::Sha512::digest(data.as_bytes())),
        other => {
            return Err(invalid(format!(
            "hash: `{other}` is not supported by toyc (md5, sha1, sha224, sha256, sha384, sha512)"
        )))
        }
    })
}

/// `int(default=0, base=10)`: Jinja2's `do_int`, the default when the value is no number.
fn to_int(
    value: &Value,
    default: Option<Value>,
    base: Option<u32>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let default = kwargs
        .get::<Option<Value>>("default")?
        .or(default)
        .unwrap_or(Value::from(0));
    let base = kwargs.get::<Option<u32>>("base")?.or(base).unwrap_or(10);
    kwargs.assert_all_used()?;
    match value.kind() {
        ValueKind::Undefined => Err(undefined_error(value)),
        ValueKind::Bool => Ok(Value::from(i64::from(value.is_true()))),
        ValueKind::Number if value.is_integer() => Ok(value.clone()),
        ValueKind::Number => Ok(f64::try_from(value.clone())
            .ok()
            .filter(|f| f.is_finite())
            .map_or(default, |f| Value::from(f.trunc() as i64))),
        ValueKind::String => {
            let s = value.as_str().unwrap_or_default().trim().replace('_', "");
            if let Some(i) = python_int(&s, base) {
                return Ok(Value::from(i));
            }
            Ok(s.parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .map_or(default, |f| Value::from(f.trunc() as i64)))
        }
        _ => Ok(default),
    }
}

/// Python's `int(text, base)` (base 0: by prefix).
fn python_int(text: &str, base: u32) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let lower = digits.to_ascii_lowercase();
    let (base, digits) = match (base, lower.get(..2)) {
        (16 | 0, Some("0x")) => (16, &lower[2..]),
        (8 | 0, Some("0o")) => (8, &lower[2..]),
        (2 | 0, Some("0b")) => (2, &lower[2..]),
        (0, _) => (10, lower.as_str()),
        (b, _) => (b, lower.as_str()),
    };
    if digits.is_empty() || !(2..=36).contains(&base) {
        return None;
    }
    let n = i64::from_str_radix(digits, base).ok()?;
    Some(if negative { -n } else { n })
}

/// `float(default=0.0)`: Jinja2's `do_float`.
fn to_float(value: &Value, default: Option<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let default = kwargs
        .get::<Option<Value>>("default")?
        .or(default)
        .unwrap_or(Value::from(0.0));
    kwargs.assert_all_used()?;
    match value.kind() {
        ValueKind::Undefined => Err(undefined_error(value)),
        ValueKind::Bool => Ok(Value::from(if value.is_true() { 1.0 } else { 0.0 })),
        ValueKind::Number => Ok(Value::from(f64::try_from(value.clone())?)),
        ValueKind::String => {
            let s = value.as_str().unwrap_or_default().trim().replace('_', "");
            Ok(s.parse::<f64>().map_or(default, Value::from))
        }
        _ => Ok(default),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::template::tests::render;

    // Each expected output is what `ansible localhost -m template` wrote for the same
    // template (ansible-core 2.19.14, Jinja2 3.1.6).

    #[test]
    fn serializers_match_ansible() {
        let vars = json!({"d": {"a": 1, "b": [true, null]}});
        assert_eq!(
            render("{{ d | to_json }}|{{ d | to_nice_json }}", &vars),
            "{\"a\": 1, \"b\": [true, null]}|{\n    \"a\": 1,\n    \"b\": [\n        true,\n        null\n    ]\n}"
        );
        assert_eq!(
            render("{{ d | to_yaml }}|{{ d | to_nice_yaml }}|", &vars),
            "a: 1\nb: [true, null]\n|a: 1\nb:\n- true\n- null\n|"
        );
    }

    #[test]
    fn text_filters_match_ansible() {
        let vars = json!({"l": [1, 2]});
        assert_eq!(
            render(
                r#"{{ l | join(",") }}|{{ "/a/b/c.txt" | basename }}|{{ "/a/b/c.txt" | dirname }}|{{ "hi" | b64encode }}|{{ "aGk=" | b64decode }}|{{ "abc" | hash("sha1") }}"#,
                &vars
            ),
            "1,2|c.txt|/a/b|aGk=|hi|a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            render(
                r#"{{ "ab12cd" | regex_replace("[0-9]+", "X") }}|{{ "ab12cd" | regex_search("[0-9]+") }}|{{ "abcd" | regex_search("[0-9]+") }}|{{ "a1b2" | regex_replace("(\\d)", "<\\1>") }}"#,
                &vars
            ),
            "abXcd|12||a<1>b<2>"
        );
        assert_eq!(
            render(
                r#"{{ "a\nb" | indent(2) }}|{{ "a\nb" | indent(2, true) }}|{{ "a\n\nb" | indent(4) }}"#,
                &vars
            ),
            "a\n  b|  a\n  b|a\n\n    b"
        );
        assert_eq!(
            render(
                r#"{{ "a b" | quote }}|{{ "" | quote }}|{{ "it's" | quote }}|{{ "x" | bool }}|{{ "yes" | bool }}|{{ [true, 'a'] | join(' ') }}"#,
                &vars
            ),
            "'a b'|''|'it'\"'\"'s'|False|True|True a"
        );
    }

    #[test]
    fn python_methods_and_values_print_as_in_ansible() {
        let vars = json!({"d": {"a": 1, "b": [true, null]}, "l": [1, 2]});
        assert_eq!(
            render(
                r#"{{ none }}|{{ true }}|{{ [1,"a"] }}|{{ d }}|{{ 1.0 }}|{{ 3/2 }}|{{ 7//2 }}|{{ 4/2 }}|{{ l }}"#,
                &vars
            ),
            "|True|[1, 'a']|{'a': 1, 'b': [True, None]}|1.0|1.5|3|2.0|[1, 2]"
        );
        assert_eq!(
            render(
                r#"{{ {"a":1}.items() | list }}|{{ "ab".upper() }}|{{ "a b".split() }}|{{ d.keys() | list }}"#,
                &vars
            ),
            "[['a', 1]]|AB|['a', 'b']|['a', 'b']"
        );
    }
}
