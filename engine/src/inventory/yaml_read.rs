//! Reading parts of a YAML inventory strictly: the expected shape or an error at the node.

use serde_json::{Map, Value as Json};
use serde_yaml::{Mapping, Value};

use super::model::Issue;
use super::suggest;
use super::yaml_path::YamlPath;

/// Parses `text` as one YAML document, applying `<<` merge keys (Ansible users use them).
pub(super) fn parse(text: &str) -> Result<Value, serde_yaml::Error> {
    let mut value: Value = serde_yaml::from_str(text)?;
    value.apply_merge()?;
    Ok(value)
}

/// What to tell about a YAML syntax error in `text`, without its position.
pub(super) fn syntax_message(err: &serde_yaml::Error, text: &str) -> String {
    let line = err
        .location()
        .and_then(|at| text.lines().nth(at.line().saturating_sub(1)));
    let indented_with_tab =
        line.is_some_and(|l| l[..l.len() - l.trim_start().len()].contains('\t'));
    let hint = if indented_with_tab {
        " (indent with spaces: YAML does not allow tabs)"
    } else {
        ""
    };
    format!("invalid YAML: {}{hint}", crate::yaml_file::message_of(err))
}

/// A mapping key as text: host, group and variable names may be written as numbers.
pub(super) fn key_text(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".to_owned(),
        other => serde_yaml::to_string(other)
            .map(|s| s.trim_end().to_owned())
            .unwrap_or_default(),
    }
}

/// The entries of a mapping, keys as text, in file order.
pub(super) fn entries(map: &Mapping) -> impl Iterator<Item = (String, &Value)> {
    map.iter().map(|(k, v)| (key_text(k), v))
}

/// The value itself, under a `!tag` if it has one.
fn untagged(value: &Value) -> &Value {
    match value {
        Value::Tagged(tagged) => untagged(&tagged.value),
        other => other,
    }
}

/// "a string `x`", "a list", ...: what was found instead of what was expected.
pub(super) fn describe(value: &Value) -> String {
    match untagged(value) {
        Value::Null => "empty".to_owned(),
        Value::Bool(b) => format!("a boolean `{b}`"),
        Value::Number(n) => format!("a number `{n}`"),
        Value::String(s) if s.is_empty() => "an empty string".to_owned(),
        Value::String(s) => format!("a string `{s}`"),
        Value::Sequence(_) => "a list".to_owned(),
        Value::Mapping(_) => "a mapping".to_owned(),
        Value::Tagged(_) => "a tagged value".to_owned(),
    }
}

/// A mapping, `None` for an empty node (`web1:` with nothing after it).
pub(super) fn mapping<'v>(
    value: &'v Value,
    path: &YamlPath,
    what: &str,
) -> Result<Option<&'v Mapping>, Issue> {
    match untagged(value) {
        Value::Null => Ok(None),
        Value::Mapping(map) => Ok(Some(map)),
        other => Err(Issue::yaml(
            path.clone(),
            format!("{what} must be a mapping, not {}", describe(other)),
        )),
    }
}

/// A list, empty for an empty node.
pub(super) fn sequence<'v>(
    value: &'v Value,
    path: &YamlPath,
    what: &str,
) -> Result<&'v [Value], Issue> {
    match untagged(value) {
        Value::Null => Ok(&[]),
        Value::Sequence(items) => Ok(items),
        other => Err(Issue::yaml(
            path.clone(),
            format!("{what} must be a list, not {}", describe(other)),
        )),
    }
}

/// A name (host or group): a string, or a number written as one.
pub(super) fn name(value: &Value, path: &YamlPath, what: &str) -> Result<String, Issue> {
    match untagged(value) {
        Value::String(s) if !s.is_empty() => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(Issue::yaml(
            path.clone(),
            format!("{what} must be a string, not {}", describe(other)),
        )),
    }
}

/// Fails on the first key of `map` that is not in `valid`, naming it and the valid ones.
pub(super) fn check_keys(
    map: &Mapping,
    valid: &[&str],
    owner: &str,
    path: &YamlPath,
) -> Result<(), Issue> {
    for (key, _) in entries(map) {
        if !valid.contains(&key.as_str()) {
            let hint = suggest::did_you_mean(&key, valid.iter().copied());
            return Err(Issue::yaml(
                path.key(&key),
                format!(
                    "unknown key `{key}` in {owner} (valid keys: {}){hint}",
                    valid.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// A `vars:` mapping as JSON values, in file order.
pub(super) fn vars(value: &Value, path: &YamlPath, what: &str) -> Result<Map<String, Json>, Issue> {
    let mut vars = Map::new();
    if let Some(map) = mapping(value, path, what)? {
        for (key, value) in entries(map) {
            vars.insert(key, to_json(value));
        }
    }
    Ok(vars)
}

/// A YAML value as JSON: tags are dropped (a `!vault` value keeps its ciphertext), keys
/// become text, and numbers JSON cannot hold (`.nan`, `.inf`) become text.
pub(super) fn to_json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Number(n) => number_to_json(n),
        Value::String(s) => Json::String(s.clone()),
        Value::Sequence(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Mapping(map) => Json::Object(entries(map).map(|(k, v)| (k, to_json(v))).collect()),
        Value::Tagged(tagged) => to_json(&tagged.value),
    }
}

fn number_to_json(n: &serde_yaml::Number) -> Json {
    if let Some(i) = n.as_i64() {
        Json::from(i)
    } else if let Some(u) = n.as_u64() {
        Json::from(u)
    } else {
        n.as_f64()
            .and_then(serde_json::Number::from_f64)
            .map_or_else(|| Json::String(n.to_string()), Json::Number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn yaml(text: &str) -> Value {
        parse(text).unwrap()
    }

    #[test]
    fn values_convert_to_json_with_text_keys_and_no_tags() {
        let v = yaml("a: 1\nb: [true, null, 1.5, -2]\n3: !vault |\n  cipher\nc: .nan\n");
        assert_eq!(
            to_json(&v),
            json!({"a": 1, "b": [true, null, 1.5, -2], "3": "cipher\n", "c": ".nan"})
        );
    }

    #[test]
    fn merge_keys_are_applied() {
        let v = yaml("base: &b {x: 1}\nhost:\n  <<: *b\n  y: 2\n");
        assert_eq!(to_json(&v)["host"], json!({"x": 1, "y": 2}));
    }

    #[test]
    fn syntax_errors_say_invalid_yaml_and_hint_at_tabs() {
        let text = "a:\n\tb: 1\n";
        let err = parse(text).unwrap_err();
        assert_eq!(
            syntax_message(&err, text),
            "invalid YAML: found character that cannot start any token, while scanning for \
             the next token (indent with spaces: YAML does not allow tabs)"
        );
    }

    #[test]
    fn syntax_error_messages_lose_their_position() {
        let err = parse("a: [1\nb: 2\n").unwrap_err();
        let message = crate::yaml_file::message_of(&err);
        assert!(!message.contains("line"), "{message}");
        assert!(message.starts_with("did not find expected"), "{message}");
    }

    #[test]
    fn unknown_keys_name_the_key_the_owner_and_the_valid_keys() {
        let v = yaml("adress: x\n");
        let map = mapping(&v, &YamlPath::root(), "host").unwrap().unwrap();
        let issue =
            check_keys(map, &["address", "vars"], "host `web1`", &YamlPath::root()).unwrap_err();
        assert_eq!(
            issue.message,
            "unknown key `adress` in host `web1` (valid keys: address, vars); did you mean `address`?"
        );
        assert_eq!(
            issue,
            Issue::yaml(YamlPath::root().key("adress"), issue.message.clone())
        );
    }

    #[test]
    fn shapes_are_checked() {
        let root = YamlPath::root();
        assert_eq!(mapping(&yaml("~"), &root, "x").unwrap(), None);
        assert_eq!(
            mapping(&yaml("[1]"), &root, "host `a`")
                .unwrap_err()
                .message,
            "host `a` must be a mapping, not a list"
        );
        assert_eq!(
            sequence(&yaml("web"), &root, "`children`")
                .unwrap_err()
                .message,
            "`children` must be a list, not a string `web`"
        );
        assert_eq!(name(&yaml("42"), &root, "a host").unwrap(), "42");
        assert_eq!(
            name(&yaml("{a: 1}"), &root, "a host").unwrap_err().message,
            "a host must be a string, not a mapping"
        );
        assert_eq!(
            Json::Object(vars(&yaml("{a: 1}"), &root, "`vars`").unwrap()),
            json!({"a": 1})
        );
    }
}
