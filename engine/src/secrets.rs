//! Secret values never leave toyc in clear: every text toyc prints (events, diffs, logs,
//! errors) passes through [`Secrets::redact`], which masks each secret of the run.
//! Masking at the exit rather than at each source is what makes it complete: a secret
//! that reaches a command line, a stderr line, a template diff or an error message is
//! caught all the same.
//!
//! A [`Secrets`] belongs to one run (see [`crate::run::RunContext`]), so in a process
//! that runs many jobs the secrets of one never pile up in another's list.
//!
//! A value is masked in every form it is seen in: whole, trimmed of surrounding white
//! space (command output loses a final newline), line by line (a PEM key is shown a line
//! at a time in a diff), and JSON-escaped (inside `--json` events). Lines shorter than
//! [`MIN_LINE`] characters of a multi-line secret are not masked on their own: they
//! would mask ordinary words everywhere and identify nothing.

use std::borrow::Cow;
use std::sync::{Arc, RwLock};

/// What a secret is replaced with.
pub const MASK: &str = "********";

/// The shortest line of a multi-line secret that is masked on its own.
pub const MIN_LINE: usize = 4;

/// The secret values of one run. Clones share them.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    /// Every form to mask, longest first, so a secret containing another is masked whole.
    forms: Arc<RwLock<Vec<String>>>,
}

impl Secrets {
    /// A run with no secret yet.
    pub fn new() -> Secrets {
        Secrets::default()
    }

    /// Mask `value` in everything printed from now on. Empty values are ignored:
    /// masking "" would mask nothing and everything.
    pub fn register(&self, value: &str) {
        let mut wanted: Vec<&str> = vec![value, value.trim()];
        let lines: Vec<&str> = value.lines().map(str::trim).collect();
        if lines.len() > 1 {
            wanted.extend(lines.into_iter().filter(|l| l.chars().count() >= MIN_LINE));
        }
        let mut forms = self.forms.write().unwrap_or_else(|p| p.into_inner());
        for form in wanted.into_iter().filter(|f| !f.is_empty()) {
            let escaped = serde_json::to_string(form).unwrap_or_default();
            let escaped = escaped.trim_matches('"');
            for form in [form, escaped] {
                if !form.is_empty() && !forms.iter().any(|f| f == form) {
                    forms.push(form.to_owned());
                }
            }
        }
        forms.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    /// Whether any secret was registered (when none was, output can pass untouched, bytes and all).
    pub fn any(&self) -> bool {
        !self
            .forms
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    /// `bytes` with every secret masked; unchanged when there are none.
    pub fn redact_bytes<'a>(&self, bytes: &'a [u8]) -> Cow<'a, [u8]> {
        if !self.any() {
            return Cow::Borrowed(bytes);
        }
        match self.redact(&String::from_utf8_lossy(bytes)) {
            Cow::Borrowed(_) => Cow::Borrowed(bytes),
            Cow::Owned(text) => Cow::Owned(text.into_bytes()),
        }
    }

    /// `text` with every secret masked.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let forms = self.forms.read().unwrap_or_else(|p| p.into_inner());
        if !forms.iter().any(|s| text.contains(s.as_str())) {
            return Cow::Borrowed(text);
        }
        let mut out = text.to_owned();
        for secret in forms.iter() {
            out = out.replace(secret.as_str(), MASK);
        }
        Cow::Owned(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_values_are_masked_in_plain_and_json_forms() {
        let secrets = Secrets::new();
        secrets.register("s3cr\"et-value");
        assert_eq!(secrets.redact("pw=s3cr\"et-value;"), format!("pw={MASK};"));
        assert_eq!(
            secrets.redact(r#"{"line":"pw=s3cr\"et-value"}"#),
            format!(r#"{{"line":"pw={MASK}"}}"#)
        );
        assert_eq!(secrets.redact("nothing here"), "nothing here");
        secrets.register("");
        assert_eq!(secrets.redact("still fine"), "still fine");
    }

    #[test]
    fn a_multi_line_secret_is_masked_line_by_line_and_trimmed() {
        let secrets = Secrets::new();
        let key = "-----BEGIN KEY-----\nMIIEabcdefgh\nQWERTYuiop12\n-----END KEY-----\n";
        secrets.register(key);
        let diff = "+-----BEGIN KEY-----\n+MIIEabcdefgh\n+QWERTYuiop12\n+-----END KEY-----";
        assert!(
            !secrets.redact(diff).contains("MIIE"),
            "{}",
            secrets.redact(diff)
        );
        assert!(!secrets.redact(diff).contains("QWERTY"));
        // Read back without its final newline, as command output loses it.
        let stdout = key.trim_end();
        assert_eq!(secrets.redact(stdout), MASK);
        // The JSON form of a line inside an event.
        let event = r#"{"diff":"+MIIEabcdefgh\n+QWERTYuiop12"}"#;
        assert_eq!(
            secrets.redact(event),
            format!(r#"{{"diff":"+{MASK}\n+{MASK}"}}"#)
        );
    }

    #[test]
    fn short_lines_of_a_multi_line_secret_mask_nothing_on_their_own() {
        let secrets = Secrets::new();
        secrets.register("a\nlongersecretline");
        assert_eq!(secrets.redact("a cat"), "a cat");
        assert_eq!(secrets.redact("x longersecretline"), format!("x {MASK}"));
    }

    #[test]
    fn two_runs_keep_their_secrets_apart() {
        let (one, other) = (Secrets::new(), Secrets::new());
        one.register("one-secret");
        other.register("other-secret");
        assert_eq!(
            one.redact("one-secret other-secret"),
            format!("{MASK} other-secret")
        );
        assert_eq!(
            other.redact("one-secret other-secret"),
            format!("one-secret {MASK}")
        );
    }
}
