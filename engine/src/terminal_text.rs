//! Text from hosts made safe to print on a terminal.
//!
//! A host's output is not trusted: printed raw, an escape sequence in it can retitle the
//! window, clear the screen, move the cursor or (`\r`) overwrite what toyc printed before
//! it, so a compromised host could make a failed run look clean. Human output shows every
//! control character as a visible escape instead (`\x1b`, `\r`); `--json` keeps the bytes.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `text` with control characters written as escapes; newlines and tabs are kept, since
/// they only lay text out.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    push_escaped(&mut out, text);
    Cow::Owned(out)
}

/// [`escape`] for raw output: bytes that are not UTF-8 are written as `\xNN` too (a
/// terminal not in UTF-8 mode reads a lone 0x9b as the start of an escape sequence).
pub fn escape_bytes(bytes: &[u8]) -> Cow<'_, [u8]> {
    if let Ok(text) = std::str::from_utf8(bytes) {
        return match escape(text) {
            Cow::Borrowed(_) => Cow::Borrowed(bytes),
            Cow::Owned(text) => Cow::Owned(text.into_bytes()),
        };
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        push_escaped(&mut out, chunk.valid());
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    Cow::Owned(out.into_bytes())
}

fn needs_escape(c: char) -> bool {
    c.is_control() && c != '\n' && c != '\t'
}

fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\r' => out.push_str("\\r"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        let text = "ok: 3 files\twritten\nnext line ünïcode";
        assert!(matches!(escape(text), Cow::Borrowed(t) if t == text));
        assert!(matches!(escape_bytes(text.as_bytes()), Cow::Borrowed(_)));
    }

    #[test]
    fn escape_sequences_and_carriage_returns_become_visible() {
        assert_eq!(
            escape("\x1b]0;pwned\x07\x1b[2Jdone\rall good"),
            "\\x1b]0;pwned\\x07\\x1b[2Jdone\\rall good"
        );
        // C1 controls (U+009B is a one-character CSI) and DEL.
        assert_eq!(escape("a\u{9b}2Jb\x7f"), "a\\x9b2Jb\\x7f");
    }

    #[test]
    fn bytes_that_are_not_utf8_are_escaped_too() {
        assert_eq!(
            escape_bytes(b"ok\n\x9b2J\x1b[H\xff end\n").as_ref(),
            b"ok\n\\x9b2J\\x1b[H\\xff end\n"
        );
    }
}
