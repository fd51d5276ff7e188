//! Which format an inventory is written in.

use std::path::Path;

use serde_yaml::{Mapping, Value};

use super::model::{At, Issue};
use super::yaml_read;
use super::InventoryError;

/// An inventory's format, with the YAML document when it is YAML.
#[derive(Debug)]
pub(super) enum Format {
    /// toyc's own YAML (`hosts:`, `groups:`, ...).
    ToycYaml(Value),
    /// Ansible's YAML (`all:` with `hosts`, `vars`, `children`).
    AnsibleYaml(Value),
    /// Ansible's INI (`[group]` sections and `host key=value` lines).
    AnsibleIni,
}

/// toyc's top-level keys: a mapping using one of them is toyc YAML.
const TOYC_KEYS: [&str; 5] = ["vars", "ssh", "sudo", "hosts", "groups"];
/// The keys of an Ansible YAML group.
const ANSIBLE_GROUP_KEYS: [&str; 3] = ["hosts", "vars", "children"];

/// Detects the format of `text`, read from `origin`.
///
/// A `.ini`/`.cfg` file or one with `[section]` lines is INI. A `.yml`/`.yaml`/`.json` file
/// must be YAML (its syntax errors are reported). Other files are YAML when they parse as a
/// YAML mapping, else INI: a list of host names is valid YAML, but only as a string.
pub(super) fn detect(text: &str, origin: &Path) -> Result<Format, InventoryError> {
    let extension = origin
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let extension = extension.as_deref();
    if matches!(extension, Some("ini" | "cfg")) || has_section_line(text) {
        return Ok(Format::AnsibleIni);
    }
    let must_be_yaml = matches!(extension, Some("yml" | "yaml" | "json")) || looks_like_yaml(text);
    match yaml_read::parse(text) {
        Ok(Value::Mapping(map)) => Ok(yaml_format(Value::Mapping(map))),
        Ok(Value::Null) if must_be_yaml => Ok(Format::ToycYaml(Value::Null)),
        Ok(other) if must_be_yaml => Err(Issue::new(
            At::Line(1, 1),
            format!(
                "an inventory must be a mapping (`hosts:`, `groups:`, ... or Ansible's `all:`), \
                 not {}",
                yaml_read::describe(&other)
            ),
        )
        .into_error(text, origin)),
        Err(err) if must_be_yaml => {
            let (line, column) = err.location().map_or((1, 1), |at| (at.line(), at.column()));
            Err(Issue::new(
                At::Line(line, column),
                yaml_read::syntax_message(&err, text),
            )
            .into_error(text, origin))
        }
        _ => Ok(Format::AnsibleIni),
    }
}

/// Ansible YAML has `all` at the top, or only groups there (`web: {hosts: ...}`).
fn yaml_format(doc: Value) -> Format {
    let ansible = match &doc {
        Value::Mapping(map) => map.contains_key("all") || only_ansible_groups(map),
        _ => false,
    };
    if ansible {
        Format::AnsibleYaml(doc)
    } else {
        Format::ToycYaml(doc)
    }
}

fn only_ansible_groups(map: &Mapping) -> bool {
    !map.is_empty()
        && yaml_read::entries(map).all(|(key, value)| {
            !TOYC_KEYS.contains(&key.as_str())
                && match value {
                    Value::Null => true,
                    Value::Mapping(group) => yaml_read::entries(group)
                        .all(|(k, _)| ANSIBLE_GROUP_KEYS.contains(&k.as_str())),
                    _ => false,
                }
        })
}

/// A line that is only `[name]` (a comment may follow): an INI section header.
fn has_section_line(text: &str) -> bool {
    text.lines().any(|line| {
        let line = line.trim();
        let Some(rest) = line.strip_prefix('[') else {
            return false;
        };
        let Some(end) = rest.find(']') else {
            return false;
        };
        let (name, after) = (&rest[..end], rest[end + 1..].trim_start());
        !name.is_empty()
            && !name.contains(['[', ' ', '\t', ','])
            && (after.is_empty() || after.starts_with(['#', ';']))
    })
}

/// A line like `key:` or `key: value`: a YAML mapping, never an INI host line.
fn looks_like_yaml(text: &str) -> bool {
    text.lines().any(|line| {
        let line = line.trim_start();
        let line = line.strip_prefix("- ").unwrap_or(line);
        let first = line.split_whitespace().next().unwrap_or("");
        first.len() > 1
            && first.ends_with(':')
            && !first.starts_with(['#', ';', '['])
            && !first.contains('=')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format(text: &str, file: &str) -> &'static str {
        match detect(text, Path::new(file)) {
            Ok(Format::ToycYaml(_)) => "toyc",
            Ok(Format::AnsibleYaml(_)) => "ansible-yaml",
            Ok(Format::AnsibleIni) => "ini",
            Err(_) => "error",
        }
    }

    #[test]
    fn a_top_level_all_is_ansible_yaml() {
        assert_eq!(format("all:\n  hosts:\n    web1:\n", "inv"), "ansible-yaml");
        assert_eq!(format("all: {}\nweb: {}\n", "inv.yml"), "ansible-yaml");
    }

    #[test]
    fn yaml_with_only_groups_is_ansible_yaml() {
        assert_eq!(
            format("web:\n  hosts:\n    web1:\n", "inv.yml"),
            "ansible-yaml"
        );
    }

    #[test]
    fn other_yaml_mappings_are_toyc() {
        assert_eq!(format("hosts:\n  web1: {}\n", "inv"), "toyc");
        assert_eq!(format("hsts:\n  web1: {}\n", "inv.yml"), "toyc");
        assert_eq!(format("", "inv.yaml"), "toyc");
        assert_eq!(format("{}", "inv.yaml"), "toyc");
    }

    #[test]
    fn ini_by_extension_section_or_plain_lines() {
        assert_eq!(format("hosts: {}\n", "hosts.ini"), "ini");
        assert_eq!(format("[web]\nweb1\n", "hosts"), "ini");
        assert_eq!(format("[web] # front\nweb1\n", "hosts.yml"), "ini");
        assert_eq!(format("web1\nweb2 ansible_host=10.0.0.2\n", "hosts"), "ini");
        assert_eq!(format("web1:2222\n", "hosts"), "ini");
        assert_eq!(format("", "hosts"), "ini");
    }

    #[test]
    fn broken_yaml_is_reported_when_it_must_be_yaml() {
        let err = detect("hosts:\n  web1: {address: x\n", Path::new("inv.yml")).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("inv.yml:3:1: "), "{text}");
        assert!(!text.contains(" at line "), "{text}");
        // Without an extension, `key:` lines still say it is YAML.
        assert_eq!(
            format("hosts:\n  web1: {address: x\n", "inventory"),
            "error"
        );
    }

    #[test]
    fn yaml_that_is_not_a_mapping_is_an_error_in_a_yaml_file() {
        let err = detect("- web1\n", Path::new("inv.yml")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "inv.yml:1:1: an inventory must be a mapping (`hosts:`, `groups:`, ... or \
             Ansible's `all:`), not a list"
        );
    }

    #[test]
    fn section_and_yaml_line_heuristics() {
        assert!(has_section_line("x\n  [web:children]  \n"));
        assert!(!has_section_line("[web01:03]x\n"));
        assert!(!has_section_line("[a, b]\n"));
        assert!(looks_like_yaml("hosts:\n"));
        assert!(looks_like_yaml("- name: x\n"));
        assert!(!looks_like_yaml("web1:2222\nweb2 a=b: c\n# x:\n"));
    }
}
