//! Jinja2's filters that write HTML: `xmlattr` (`filters.do_xmlattr`) and `urlize`
//! (`filters.do_urlize` over `utils.urlize`), ported from Jinja2 3.1.6 with its default
//! policies (`urlize.rel` is `noopener`, no target, no extra schemes), as Ansible uses
//! them. Autoescape is off in Ansible's templates, so both return plain text.

use std::sync::LazyLock;

use minijinja::value::{Kwargs, Value, ValueKind};
use minijinja::Error;
use regex::Regex;

use super::filters::{invalid, text};
use super::pyfmt::undefined_error;

/// markupsafe's `escape` of a value's text (`&#34;` and `&#39;` for quotes).
pub(crate) fn escape(value: &Value) -> Result<String, Error> {
    Ok(escape_str(&text(value)?))
}

fn escape_str(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

/// `xmlattr(autospace=True)`: `key="value"` for each item whose value is neither none
/// nor undefined, values escaped; a key with whitespace, `/`, `>` or `=` is an error.
pub(crate) fn xmlattr(
    value: &Value,
    autospace: Option<bool>,
    kwargs: Kwargs,
) -> Result<String, Error> {
    let autospace = kwargs
        .get::<Option<bool>>("autospace")?
        .or(autospace)
        .unwrap_or(true);
    kwargs.assert_all_used()?;
    if value.is_undefined() {
        return Err(undefined_error(value));
    }
    if value.kind() != ValueKind::Map {
        return Err(invalid(format!(
            "xmlattr: expected a mapping, not {}",
            value.kind()
        )));
    }
    let mut items = Vec::new();
    for key in value.try_iter()? {
        let item = value.get_item(&key)?;
        if item.is_none() || item.is_undefined() {
            continue;
        }
        let key = text(&key)?;
        if key.contains(|c: char| c.is_ascii_whitespace() || "\x0b/>=".contains(c)) {
            return Err(invalid(format!(
                "xmlattr: invalid character in attribute name: {key:?}"
            )));
        }
        items.push(format!("{}=\"{}\"", escape_str(&key), escape(&item)?));
    }
    let joined = items.join(" ");
    Ok(if autospace && !joined.is_empty() {
        format!(" {joined}")
    } else {
        joined
    })
}

fn compile(pattern: &str) -> Option<Regex> {
    Regex::new(pattern).ok()
}

/// `utils._http_re`: a URL with a scheme or `www.`, a bare domain with a common top
/// level domain, or an IP address after a scheme.
static HTTP: LazyLock<Option<Regex>> = LazyLock::new(|| {
    compile(
        r"(?ix)
        ^(
            (https?://|www\.)(([\w%-]+\.)+)?([a-z]{2,63}|xn--[\w%]{2,59})
          | ([\w%-]{2,63}\.)+(com|net|int|edu|gov|org|info|mil)
          | (https?://)((([\d]{1,3})(\.[\d]{1,3}){3})|(\[([\da-f]{0,4}:){2}([\da-f]{0,4}:?){1,6}\]))
        )
        (:[\d]{1,5})?
        ([/?\#]\S*)?
        $",
    )
});
static EMAIL: LazyLock<Option<Regex>> = LazyLock::new(|| compile(r"^\S+@\w[\w.-]*\.\w+$"));
static SCHEME: LazyLock<Option<Regex>> = LazyLock::new(|| compile(r"^[\w.+-]{2,}:/{0,2}$"));
static WORDS: LazyLock<Option<Regex>> = LazyLock::new(|| compile(r"\s+"));
static HEAD: LazyLock<Option<Regex>> = LazyLock::new(|| compile(r"^(?:[(<]|&lt;)+"));
static TAIL: LazyLock<Option<Regex>> = LazyLock::new(|| compile(r"(?:[)>.,\n]|&gt;)+\z"));

fn regex(re: &'static LazyLock<Option<Regex>>) -> Result<&'static Regex, Error> {
    re.as_ref()
        .ok_or_else(|| invalid("urlize: a built-in regular expression does not compile"))
}

/// `urlize(trim_url_limit=None, nofollow=False, target=None, rel=None,
/// extra_schemes=None)`.
pub(crate) fn urlize(
    value: &Value,
    args: minijinja::value::Rest<Value>,
    kwargs: Kwargs,
) -> Result<String, Error> {
    if args.len() > 5 {
        return Err(invalid("urlize: too many arguments"));
    }
    let arg = |i: usize, name: &str| -> Result<Option<Value>, Error> {
        Ok(kwargs
            .get::<Option<Value>>(name)?
            .or_else(|| args.get(i).cloned())
            .filter(|v| !v.is_none() && !v.is_undefined()))
    };
    let limit = match arg(0, "trim_url_limit")? {
        Some(l) => Some(usize::try_from(l.clone()).map_err(|_| {
            invalid(format!(
                "urlize: trim_url_limit must be a number, not `{l}`"
            ))
        })?),
        None => None,
    };
    let nofollow = arg(1, "nofollow")?.is_some_and(|v| v.is_true());
    let target = arg(2, "target")?.map(|t| text(&t)).transpose()?;
    let rel = arg(3, "rel")?.map(|r| text(&r)).transpose()?;
    let extra = match arg(4, "extra_schemes")? {
        Some(list) => list
            .try_iter()?
            .map(|s| text(&s))
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    kwargs.assert_all_used()?;
    for scheme in &extra {
        if !regex(&SCHEME)?.is_match(scheme) {
            return Err(invalid(format!(
                "urlize: {scheme:?} is not a valid URI scheme prefix"
            )));
        }
    }
    let mut rel_parts: Vec<String> = rel
        .as_deref()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    if nofollow {
        rel_parts.push("nofollow".to_owned());
    }
    rel_parts.push("noopener".to_owned());
    rel_parts.sort();
    rel_parts.dedup();
    let rel_attr = format!(" rel=\"{}\"", escape_str(&rel_parts.join(" ")));
    let target_attr = match target.filter(|t| !t.is_empty()) {
        Some(t) => format!(" target=\"{}\"", escape_str(&t)),
        None => String::new(),
    };
    let escaped = escape(value)?;
    let trim = |url: &str| match limit {
        Some(limit) if url.chars().count() > limit => {
            format!("{}...", url.chars().take(limit).collect::<String>())
        }
        _ => url.to_owned(),
    };
    let mut out = String::new();
    let mut last = 0;
    for space in regex(&WORDS)?.find_iter(&escaped) {
        out.push_str(&link(
            &escaped[last..space.start()],
            &rel_attr,
            &target_attr,
            &extra,
            &trim,
        )?);
        out.push_str(space.as_str());
        last = space.end();
    }
    out.push_str(&link(
        &escaped[last..],
        &rel_attr,
        &target_attr,
        &extra,
        &trim,
    )?);
    Ok(out)
}

/// One word of the text, linked if it is a URL or an email address.
fn link(
    word: &str,
    rel_attr: &str,
    target_attr: &str,
    extra: &[String],
    trim: &dyn Fn(&str) -> String,
) -> Result<String, Error> {
    let mut middle = word.to_owned();
    let mut head = String::new();
    let mut tail = String::new();
    if let Some(m) = regex(&HEAD)?.find(&middle) {
        head = m.as_str().to_owned();
        middle = middle[m.end()..].to_owned();
    }
    if let Some(m) = regex(&TAIL)?.find(&middle) {
        tail = m.as_str().to_owned();
        middle.truncate(m.start());
    }
    // Balance parentheses in the URL rather than leaving a closing one out.
    for (open, close) in [("(", ")"), ("<", ">"), ("&lt;", "&gt;")] {
        let opens = middle.matches(open).count();
        if opens <= middle.matches(close).count() {
            continue;
        }
        for _ in 0..opens.min(tail.matches(close).count()) {
            let Some(at) = tail.find(close) else { break };
            let end = at + close.len();
            middle.push_str(&tail[..end]);
            tail = tail[end..].to_owned();
        }
    }
    let middle = if regex(&HTTP)?.is_match(&middle) {
        if middle.starts_with("https://") || middle.starts_with("http://") {
            format!(
                "<a href=\"{middle}\"{rel_attr}{target_attr}>{}</a>",
                trim(&middle)
            )
        } else {
            format!(
                "<a href=\"https://{middle}\"{rel_attr}{target_attr}>{}</a>",
                trim(&middle)
            )
        }
    } else if let Some(address) = middle
        .strip_prefix("mailto:")
        .filter(|a| regex(&EMAIL).is_ok_and(|re| re.is_match(a)))
    {
        format!("<a href=\"{middle}\">{address}</a>")
    } else if middle.contains('@')
        && !middle.starts_with("www.")
        && !middle.starts_with('@')
        && !middle.contains(':')
        && regex(&EMAIL)?.is_match(&middle)
    {
        format!("<a href=\"mailto:{middle}\">{middle}</a>")
    } else {
        let mut linked = middle.clone();
        for scheme in extra {
            if middle != *scheme && middle.starts_with(scheme.as_str()) {
                linked = format!("<a href=\"{middle}\"{rel_attr}{target_attr}>{middle}</a>");
            }
        }
        linked
    };
    Ok(format!("{head}{middle}{tail}"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::template::tests::{render, try_render};

    // What `ansible.builtin.template` wrote (ansible-core 2.19.14, Jinja2 3.1.6).
    #[test]
    fn xmlattr_and_urlize_match_jinja2() {
        let vars = json!({});
        assert_eq!(
            render(
                "{{ {'a': 1, 'class': 'x y', 'n': none, 'q': 'a\"b<'} | xmlattr }}|{{ {'a': 1} | xmlattr(false) }}|",
                &vars
            ),
            " a=\"1\" class=\"x y\" q=\"a&#34;b&lt;\"|a=\"1\"|"
        );
        let err = try_render("{{ {'a b': 1} | xmlattr }}", &vars).expect_err("space");
        assert!(
            err.to_string()
                .contains("invalid character in attribute name"),
            "{err}"
        );
        assert_eq!(
            render(
                "{{ 'see http://example.com/a/very/long/path and www.foo.org or mail me@x.org' | urlize(15, true, '_blank') }}",
                &vars
            ),
            "see <a href=\"http://example.com/a/very/long/path\" rel=\"nofollow noopener\" target=\"_blank\">http://example....</a> \
             and <a href=\"https://www.foo.org\" rel=\"nofollow noopener\" target=\"_blank\">www.foo.org</a> \
             or mail <a href=\"mailto:me@x.org\">me@x.org</a>"
        );
    }
}
