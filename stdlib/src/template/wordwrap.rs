//! Jinja2's `wordwrap(width=79, break_long_words=True, wrapstring=None,
//! break_on_hyphens=True)`: each line of `str.splitlines()` wrapped by Python's
//! `textwrap.wrap` (`expand_tabs=False`, `replace_whitespace=False`), the lines joined
//! with `wrapstring`. This is a port of `textwrap.TextWrapper._split` and `_wrap_chunks`
//! (CPython 3.11), quirks included: a line filled to the width before a word too long
//! for any line keeps its trailing space.

use std::sync::LazyLock;

use fancy_regex::Regex;
use minijinja::value::{Kwargs, Rest, Value};
use minijinja::Error;

use super::filters::{invalid, text};

/// `textwrap.TextWrapper.wordsep_re`: whitespace runs, em-dashes between words, and
/// words split after hyphens between letters.
static WORDSEP: LazyLock<Result<Regex, fancy_regex::Error>> = LazyLock::new(|| {
    let ws = r"[\t\n\x0b\x0c\r ]";
    let nws = r"[^\t\n\x0b\x0c\r ]";
    let wp = r#"[\w!"'&.,?]"#;
    let lt = r"[^\d\W]";
    Regex::new(&format!(
        r"({ws}+|(?<={wp})-{{2,}}(?=\w)|{nws}+?(?:-(?:(?<={lt}{{2}}-)|(?<={lt}-{lt}-))(?={lt}-?{lt})|(?={ws}|\z)|(?<={wp})(?=-{{2,}}\w)))"
    ))
});

/// The filter.
pub(crate) fn wordwrap(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<String, Error> {
    if args.len() > 4 {
        return Err(invalid("wordwrap: too many arguments"));
    }
    let arg = |i: usize, name: &str| -> Result<Option<Value>, Error> {
        Ok(kwargs
            .get::<Option<Value>>(name)?
            .or_else(|| args.get(i).cloned())
            .filter(|v| !v.is_none()))
    };
    let width = match arg(0, "width")? {
        Some(w) => i64::try_from(w.clone())
            .map_err(|_| invalid(format!("wordwrap: width must be an integer, not `{w}`")))?,
        None => 79,
    };
    let break_long = arg(1, "break_long_words")?.is_none_or(|v| v.is_true());
    let wrapstring = match arg(2, "wrapstring")? {
        Some(w) => text(&w)?,
        None => "\n".to_owned(),
    };
    let hyphens = arg(3, "break_on_hyphens")?.is_none_or(|v| v.is_true());
    kwargs.assert_all_used()?;
    if width <= 0 {
        return Err(invalid(format!(
            "wordwrap: invalid width {width} (must be > 0)"
        )));
    }
    let width = usize::try_from(width).unwrap_or(usize::MAX);
    let source = text(value)?;
    let mut wrapped = Vec::new();
    for line in splitlines(&source) {
        let chunks = split(line, hyphens)?;
        wrapped.push(wrap_chunks(chunks, width, break_long).join(&wrapstring));
    }
    Ok(wrapped.join(&wrapstring))
}

/// Python's `str.splitlines()`: every line boundary Python knows, no final empty line.
pub(crate) fn splitlines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let boundary = matches!(
            c,
            '\n' | '\r'
                | '\x0b'
                | '\x0c'
                | '\x1c'
                | '\x1d'
                | '\x1e'
                | '\u{85}'
                | '\u{2028}'
                | '\u{2029}'
        );
        if !boundary {
            continue;
        }
        lines.push(&text[start..i]);
        let mut end = i + c.len_utf8();
        if c == '\r' {
            if let Some(&(j, '\n')) = chars.peek() {
                chars.next();
                end = j + 1;
            }
        }
        start = end;
    }
    if start < text.len() {
        lines.push(&text[start..]);
    }
    lines
}

/// `TextWrapper._split`: the chunks of `text`, empty ones left out.
fn split(text: &str, hyphens: bool) -> Result<Vec<String>, Error> {
    let mut chunks = Vec::new();
    let mut last = 0;
    if hyphens {
        let re = WORDSEP
            .as_ref()
            .map_err(|e| invalid(format!("wordwrap: {e}")))?;
        for found in re.find_iter(text) {
            let found = found.map_err(|e| invalid(format!("wordwrap: {e}")))?;
            chunks.push(&text[last..found.start()]);
            chunks.push(found.as_str());
            last = found.end();
        }
    } else {
        let is_ws = |c: char| matches!(c, '\t' | '\n' | '\x0b' | '\x0c' | '\r' | ' ');
        let mut start = 0;
        let mut in_ws = None;
        for (i, c) in text.char_indices() {
            let ws = is_ws(c);
            if in_ws.is_some_and(|w| w != ws) {
                chunks.push(&text[start..i]);
                start = i;
            }
            in_ws = Some(ws);
        }
        chunks.push(&text[start..]);
        last = text.len();
    }
    chunks.push(&text[last..]);
    Ok(chunks
        .into_iter()
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect())
}

fn len(s: &str) -> usize {
    s.chars().count()
}

/// Python's `chunk.strip() == ''`.
fn blank(s: &str) -> bool {
    s.trim().is_empty()
}

/// `TextWrapper._wrap_chunks` without indents or `max_lines`, `drop_whitespace` on.
fn wrap_chunks(mut chunks: Vec<String>, width: usize, break_long: bool) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    chunks.reverse();
    while !chunks.is_empty() {
        let mut cur_line: Vec<String> = Vec::new();
        let mut cur_len = 0;
        if !lines.is_empty() && chunks.last().is_some_and(|c| blank(c)) {
            chunks.pop();
        }
        while let Some(chunk) = chunks.last() {
            let l = len(chunk);
            if cur_len + l > width {
                break;
            }
            cur_len += l;
            cur_line.extend(chunks.pop());
        }
        if chunks.last().is_some_and(|c| len(c) > width) {
            handle_long_word(&mut chunks, &mut cur_line, cur_len, width, break_long);
        }
        if cur_line.last().is_some_and(|c| blank(c)) {
            cur_line.pop();
        }
        if !cur_line.is_empty() {
            lines.push(cur_line.concat());
        }
    }
    lines
}

/// `TextWrapper._handle_long_word`: as much of the next chunk as fits (after its last
/// hyphen that fits, when breaking on hyphens), or the whole chunk on an empty line.
fn handle_long_word(
    chunks: &mut Vec<String>,
    cur_line: &mut Vec<String>,
    cur_len: usize,
    width: usize,
    break_long: bool,
) {
    let space_left = width.saturating_sub(cur_len);
    if break_long {
        let Some(chunk) = chunks.last_mut() else {
            return;
        };
        let chars: Vec<char> = chunk.chars().collect();
        let mut end = space_left.min(chars.len());
        if chars.len() > space_left {
            let hyphen = chars[..space_left.min(chars.len())]
                .iter()
                .rposition(|&c| c == '-');
            if let Some(h) = hyphen.filter(|&h| h > 0) {
                if chars[..h].iter().any(|&c| c != '-') {
                    end = h + 1;
                }
            }
        }
        cur_line.push(chars[..end].iter().collect());
        *chunk = chars[end..].iter().collect();
    } else if cur_line.is_empty() {
        cur_line.extend(chunks.pop());
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::template::tests::{render, try_render};

    // What `ansible.builtin.template` wrote (ansible-core 2.19.14, Jinja2 3.1.6).
    #[test]
    fn wordwrap_follows_textwrap() {
        let vars = json!({"s": "dog's back; supercalifragilistic well-known x"});
        assert_eq!(
            render("{{ s | wordwrap(12) }}", &vars),
            "dog's back; \nsupercalifra\ngilistic\nwell-known x"
        );
        assert_eq!(
            render("{{ s | wordwrap(12, false, '|') }}", &vars),
            "dog's back;|supercalifragilistic|well-known x"
        );
        assert_eq!(
            render("{{ 'aaaa-bbbbbbbbbbbbbbb-cc' | wordwrap(8) }}", &vars),
            "aaaa-bbb\nbbbbbbbb\nbbbb-cc"
        );
        let err = try_render("{{ 'a b' | wordwrap(0) }}", &vars).expect_err("width 0");
        assert!(err.to_string().contains("invalid width 0"), "{err}");
    }
}
