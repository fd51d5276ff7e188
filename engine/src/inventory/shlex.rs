//! Splitting an INI host line into words the way Ansible does (Python's `shlex.split` in
//! POSIX mode with comments): quotes group and are removed, `#` outside quotes ends the line.

/// One word of a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Word {
    /// The word, quotes and escapes resolved.
    pub(super) text: String,
    /// The 1-based column (in characters) where it starts.
    pub(super) column: usize,
}

/// The words of `line`; the error says what is wrong and at which 1-based column.
pub(super) fn split(line: &str) -> Result<Vec<Word>, (usize, String)> {
    let mut words = Vec::new();
    let mut chars = line.chars().enumerate().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '#' {
            break;
        }
        let (text, ended_by_comment) = word(&mut chars)?;
        words.push(Word {
            text,
            column: start + 1,
        });
        if ended_by_comment {
            break;
        }
    }
    Ok(words)
}

type Chars<'a> = std::iter::Peekable<std::iter::Enumerate<std::str::Chars<'a>>>;

/// Reads one word; `true` when a `#` ended it (the rest of the line is a comment).
fn word(chars: &mut Chars) -> Result<(String, bool), (usize, String)> {
    let mut text = String::new();
    while let Some((at, c)) = chars.next() {
        match c {
            c if c.is_whitespace() => return Ok((text, false)),
            '#' => return Ok((text, true)),
            '\'' => loop {
                match chars.next() {
                    Some((_, '\'')) => break,
                    Some((_, c)) => text.push(c),
                    None => return Err(unclosed(at, '\'')),
                }
            },
            '"' => double_quoted(chars, &mut text).map_err(|()| unclosed(at, '"'))?,
            '\\' => match chars.next() {
                Some((_, c)) => text.push(c),
                None => {
                    return Err((
                        at + 1,
                        "a `\\` at the end of the line escapes nothing".into(),
                    ))
                }
            },
            c => text.push(c),
        }
    }
    Ok((text, false))
}

/// Inside `"..."`: a backslash escapes only `"` and `\`, as in a POSIX shell.
fn double_quoted(chars: &mut Chars, text: &mut String) -> Result<(), ()> {
    loop {
        match chars.next() {
            Some((_, '"')) => return Ok(()),
            Some((_, '\\')) => match chars.next() {
                Some((_, c @ ('"' | '\\'))) => text.push(c),
                Some((_, c)) => {
                    text.push('\\');
                    text.push(c);
                }
                None => return Err(()),
            },
            Some((_, c)) => text.push(c),
            None => return Err(()),
        }
    }
}

fn unclosed(at: usize, quote: char) -> (usize, String) {
    (at + 1, format!("the quote `{quote}` is not closed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(line: &str) -> Vec<String> {
        split(line).unwrap().into_iter().map(|w| w.text).collect()
    }

    #[test]
    fn words_are_split_on_blanks_with_their_columns() {
        let words = split("web1  ansible_host=10.0.0.1\tx=1").unwrap();
        assert_eq!(
            words,
            vec![
                Word {
                    text: "web1".into(),
                    column: 1
                },
                Word {
                    text: "ansible_host=10.0.0.1".into(),
                    column: 7
                },
                Word {
                    text: "x=1".into(),
                    column: 29
                },
            ]
        );
    }

    #[test]
    fn quotes_group_words_and_are_removed() {
        assert_eq!(
            texts(r#"h msg="hello world" q='a "b"'"#),
            ["h", "msg=hello world", "q=a \"b\""]
        );
        assert_eq!(texts(r#"h x='"22"'"#), ["h", "x=\"22\""]);
        assert_eq!(texts("h e=''"), ["h", "e="]);
    }

    #[test]
    fn backslashes_escape_outside_quotes_and_only_quote_or_backslash_inside_doubles() {
        assert_eq!(texts(r"h a=x\ y"), ["h", "a=x y"]);
        assert_eq!(
            texts(r#"h a="c:\dir \"q\" \\""#),
            ["h", r#"a=c:\dir "q" \"#]
        );
        assert_eq!(texts(r"h a='\n'"), ["h", r"a=\n"]);
    }

    #[test]
    fn a_hash_outside_quotes_starts_a_comment() {
        assert_eq!(texts("web1 x=1 # the web server"), ["web1", "x=1"]);
        assert_eq!(texts("web1 pass=ab#cd"), ["web1", "pass=ab"]);
        assert_eq!(texts("web1 pass='ab#cd'"), ["web1", "pass=ab#cd"]);
    }

    #[test]
    fn unclosed_quotes_are_errors_at_the_quote() {
        assert_eq!(
            split("web1 x='abc").unwrap_err(),
            (8, "the quote `'` is not closed".to_string())
        );
        assert_eq!(
            split("web1 x=\"abc").unwrap_err(),
            (8, "the quote `\"` is not closed".to_string())
        );
        assert_eq!(
            split("web1 x\\").unwrap_err(),
            (
                7,
                "a `\\` at the end of the line escapes nothing".to_string()
            )
        );
    }
}
