//! Secret values never leave toyc in clear: every text toyc prints (events, diffs, logs,
//! errors) passes through [`redact`], which masks each registered secret. Masking at the
//! exit rather than at each source is what makes it complete: a secret that reaches a
//! command line, a stderr line, a template diff or an error message is caught all the same.

use std::borrow::Cow;
use std::sync::RwLock;

/// What a secret is replaced with.
pub const MASK: &str = "********";

fn registry() -> &'static RwLock<Vec<String>> {
    static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());
    &SECRETS
}

/// Mask `value` in everything printed from now on (and its JSON-escaped form, which is
/// how it appears inside `--json` events). Empty values are ignored: masking "" would
/// mask nothing and everything.
pub fn register(value: &str) {
    if value.is_empty() {
        return;
    }
    let mut secrets = registry().write().unwrap_or_else(|p| p.into_inner());
    let escaped = serde_json::to_string(value).unwrap_or_default();
    let escaped = escaped.trim_matches('"').to_owned();
    for form in [value.to_owned(), escaped] {
        if !secrets.contains(&form) {
            secrets.push(form);
        }
    }
    // Longest first, so a secret containing another is masked whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// Whether any secret was registered (when none was, output can pass untouched, bytes and all).
pub fn any() -> bool {
    !registry()
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .is_empty()
}

/// `bytes` with every registered secret masked; unchanged when there are none.
pub fn redact_bytes(bytes: &[u8]) -> Cow<'_, [u8]> {
    if !any() {
        return Cow::Borrowed(bytes);
    }
    match redact(&String::from_utf8_lossy(bytes)) {
        Cow::Borrowed(_) => Cow::Borrowed(bytes),
        Cow::Owned(text) => Cow::Owned(text.into_bytes()),
    }
}

/// `text` with every registered secret masked.
pub fn redact(text: &str) -> Cow<'_, str> {
    let secrets = registry().read().unwrap_or_else(|p| p.into_inner());
    if !secrets.iter().any(|s| text.contains(s.as_str())) {
        return Cow::Borrowed(text);
    }
    let mut out = text.to_owned();
    for secret in secrets.iter() {
        out = out.replace(secret.as_str(), MASK);
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_values_are_masked_in_plain_and_json_forms() {
        register("s3cr\"et-value");
        assert_eq!(redact("pw=s3cr\"et-value;"), format!("pw={MASK};"));
        assert_eq!(
            redact(r#"{"line":"pw=s3cr\"et-value"}"#),
            format!(r#"{{"line":"pw={MASK}"}}"#)
        );
        assert_eq!(redact("nothing here"), "nothing here");
        register("");
        assert_eq!(redact("still fine"), "still fine");
    }
}
