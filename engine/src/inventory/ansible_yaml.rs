//! Ansible's YAML inventory, read as Ansible reads it:
//!
//! ```yaml
//! all:
//!   vars: {ntp: 10.0.0.1}
//!   hosts:
//!     bastion: {ansible_host: 203.0.113.5}
//!   children:
//!     web:
//!       hosts:
//!         web[01:03]:
//!       vars: {ansible_user: deploy}
//! ```
//!
//! Top-level keys other than `all` are groups too. Unlike Ansible (which warns and skips),
//! unknown keys in a group are errors.
//!
//! Variables are YAML 1.1, as Ansible's YAML inventory plugin loads them (`on` and `yes`
//! are true, `0755` is 493, `2024-01-15` a date): the structure and the places of errors
//! come from serde_yaml's document, the values from `yaml11`'s reading of the same text.

use serde_yaml::Value;

use super::ansible_vars;
use super::host_pattern;
use super::model::{At, Issue, Model, Style};
use super::yaml_path::YamlPath;
use super::yaml_read::{self, check_keys, entries, mapping};

const GROUP_KEYS: [&str; 3] = ["hosts", "vars", "children"];

/// The same node in `yaml11`'s reading of the text, where variables are taken from.
type Typed<'a> = Option<&'a serde_json::Value>;

fn child<'a>(typed: Typed<'a>, key: &str) -> Typed<'a> {
    typed?.as_object()?.get(key)
}

/// Reads an Ansible YAML document; `text` is its text, read again as YAML 1.1 for the
/// variables' values.
pub(super) fn read(doc: &Value, text: &str) -> Result<Model, Issue> {
    let typed_doc = crate::yaml11::from_str(text).ok();
    let typed = typed_doc.as_ref();
    let mut model = Model::new(Style::Ansible);
    // Ansible always has `ungrouped`, listed right after `all`.
    model.group_mut("ungrouped");
    let root = YamlPath::root();
    if let Some(top) = mapping(doc, &root, "the inventory")? {
        for (name, group) in entries(top) {
            read_group(
                &mut model,
                &name,
                group,
                child(typed, &name),
                &root.value(&name),
            )?;
        }
    }
    model.reconcile_ungrouped();
    Ok(model)
}

/// Group `name` (or `all`) with its `vars`, `hosts` and `children`, at `path`.
fn read_group(
    model: &mut Model,
    name: &str,
    group: &Value,
    typed: Typed<'_>,
    path: &YamlPath,
) -> Result<(), Issue> {
    let owner = format!("group `{name}`");
    if name != "all" {
        model.group_mut(name);
    }
    let Some(group) = mapping(group, path, &owner)? else {
        return Ok(());
    };
    check_keys(group, &GROUP_KEYS, &owner, path)?;
    if let Some(vars) = group.get("vars") {
        let vars_path = path.value("vars");
        let vars = read_vars(
            vars,
            child(typed, "vars"),
            &vars_path,
            &format!("`vars` of {owner}"),
        )?;
        let layer = if name == "all" {
            &mut model.base
        } else {
            &mut model.group_mut(name).layer
        };
        layer.vars.extend(vars);
    }
    if let Some(hosts) = group.get("hosts") {
        read_hosts(
            model,
            name,
            hosts,
            child(typed, "hosts"),
            &path.value("hosts"),
        )?;
    }
    if let Some(children) = group.get("children") {
        let children_path = path.value("children");
        let what = format!("`children` of {owner}");
        if let Some(children) = mapping(children, &children_path, &what)? {
            for (child, spec) in entries(children) {
                if child == "all" {
                    return Err(Issue::yaml(
                        children_path.key(&child),
                        format!(
                            "group `all` cannot be a child of {owner}: \
                             it already contains every group"
                        ),
                    ));
                }
                // Every group is a child of `all` already.
                if name != "all" {
                    model.add_child(name, &child, At::Yaml(children_path.key(&child)));
                }
                let typed_child = child_of(typed, &child);
                read_group(
                    model,
                    &child,
                    spec,
                    typed_child,
                    &children_path.value(&child),
                )?;
            }
        }
    }
    Ok(())
}

/// `children`'s entry `name` (the children are under `children` of the group).
fn child_of<'a>(typed: Typed<'a>, name: &str) -> Typed<'a> {
    child(child(typed, "children"), name)
}

/// A group's `hosts`: host patterns mapped to their variables (or nothing).
fn read_hosts(
    model: &mut Model,
    group: &str,
    hosts: &Value,
    typed: Typed<'_>,
    path: &YamlPath,
) -> Result<(), Issue> {
    let what = format!("`hosts` of group `{group}`");
    let Some(hosts) = mapping(hosts, path, &what)? else {
        return Ok(());
    };
    for (pattern, vars) in entries(hosts) {
        let expanded =
            host_pattern::expand(&pattern).map_err(|why| Issue::yaml(path.key(&pattern), why))?;
        let host_path = path.value(&pattern);
        let mut vars = read_vars(
            vars,
            child(typed, &pattern),
            &host_path,
            &format!("host `{pattern}`"),
        )?;
        if let Some(port) = expanded.port {
            vars.entry("ansible_port").or_insert(port.into());
        }
        for host in &expanded.names {
            super::model::check_address("host", host)
                .map_err(|why| Issue::yaml(path.key(&pattern), why))?;
            model.host_mut(host).layer.vars.extend(vars.clone());
            if group != "all" {
                model.add_member(group, host);
            }
        }
    }
    Ok(())
}

/// A variables mapping, its `ansible_*` connection variables checked.
fn read_vars(
    value: &Value,
    typed: Typed<'_>,
    path: &YamlPath,
    what: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, Issue> {
    let mut vars = yaml_read::vars(value, path, what)?;
    for (key, value) in vars.iter_mut() {
        if let Some(typed) = child(typed, key) {
            typed.clone_into(value);
        }
    }
    for (key, value) in &vars {
        ansible_vars::check(key, value).map_err(|why| Issue::yaml(path.value(key), why))?;
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::Path;

    fn model(text: &str) -> Model {
        read(&yaml_read::parse(text).unwrap(), text).unwrap()
    }

    fn error(text: &str) -> String {
        let issue = read(&yaml_read::parse(text).unwrap(), text).unwrap_err();
        issue.into_error(text, Path::new("hosts.yml")).to_string()
    }

    fn names(m: &Model) -> Vec<&str> {
        m.hosts.iter().map(|h| h.name.as_str()).collect()
    }

    #[test]
    fn nested_groups_hosts_and_vars_are_read_in_file_order() {
        let m = model(
            "all:
  vars: {ntp: 10.0.0.1}
  hosts:
    bastion: {ansible_host: 203.0.113.5}
  children:
    prod:
      vars: {env: prod}
      children:
        web:
          hosts:
            web[01:02]:
            web03: {ansible_port: 2222}
        db:
          hosts: {db1: }
",
        );
        assert_eq!(m.style, Style::Ansible);
        assert_eq!(names(&m), ["bastion", "web01", "web02", "web03", "db1"]);
        let groups: Vec<&str> = m.groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(groups, ["ungrouped", "prod", "web", "db"]);
        assert_eq!(m.base.vars["ntp"], json!("10.0.0.1"));
        assert_eq!(m.groups[1].layer.vars["env"], json!("prod"));
        let children: Vec<&str> = m.groups[1]
            .children
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(children, ["web", "db"]);
        assert_eq!(m.groups[2].hosts, ["web01", "web02", "web03"]);
        assert_eq!(m.hosts[0].layer.vars["ansible_host"], json!("203.0.113.5"));
        assert_eq!(m.hosts[3].layer.vars["ansible_port"], json!(2222));
        // `bastion` is only in `all`: Ansible puts it in `ungrouped`.
        assert_eq!(m.groups[0].hosts, ["bastion"]);
    }

    // See: issue 11: Ansible's YAML inventory plugin loads YAML 1.1.
    #[test]
    fn variables_are_yaml_1_1_as_ansible_reads_them() {
        let m = model(
            "all:\n  vars: {a: on, b: \"on\", c: 0755, d: 2024-01-15}\n  children:\n    web:\n      \
             hosts:\n        h1: {e: yes, f: [off, 010]}\n      vars: {g: 1.10}\n",
        );
        assert_eq!(
            serde_json::Value::Object(m.base.vars.clone()),
            json!({"a": true, "b": "on", "c": 493, "d": {"!!timestamp": "2024-01-15"}})
        );
        assert_eq!(
            serde_json::Value::Object(m.hosts[0].layer.vars.clone()),
            json!({"e": true, "f": [false, 8]})
        );
        assert_eq!(m.groups[1].layer.vars["g"], json!(1.1));
    }

    #[test]
    fn other_top_level_groups_and_repeated_groups_merge() {
        let m = model(
            "all:\n  children:\n    web:\n      hosts: {a: {x: 1}}\n\
             web:\n  hosts: {b: , a: {y: 2}}\n  vars: {v: 1}\n",
        );
        assert_eq!(m.groups[1].hosts, ["a", "b"]);
        assert_eq!(m.groups[1].layer.vars["v"], json!(1));
        assert_eq!(
            serde_json::Value::Object(m.hosts[0].layer.vars.clone()),
            json!({"x": 1, "y": 2})
        );
    }

    #[test]
    fn a_port_in_the_host_pattern_sets_ansible_port() {
        let m = model("all:\n  hosts:\n    web1:2222:\n");
        assert_eq!(m.hosts[0].name, "web1");
        assert_eq!(m.hosts[0].layer.vars["ansible_port"], json!(2222));
    }

    #[test]
    fn unknown_group_keys_are_errors() {
        assert_eq!(
            error("all:\n  children:\n    web:\n      host: {a: }\n"),
            "hosts.yml:4:7: unknown key `host` in group `web` \
             (valid keys: hosts, vars, children); did you mean `hosts`?"
        );
    }

    #[test]
    fn bad_connection_variables_are_errors_where_written() {
        assert_eq!(
            error("all:\n  hosts:\n    web1:\n      ansible_port: http\n"),
            "hosts.yml:4:21: `ansible_port` must be a number 1-65535, not `http`"
        );
        assert_eq!(
            error("all:\n  vars:\n    ansible_connection: winrm\n"),
            "hosts.yml:3:25: unsupported `ansible_connection` `winrm`: toyc connects with \
             `ssh` or `local`"
        );
    }

    #[test]
    fn bad_host_patterns_and_shapes_are_errors() {
        assert_eq!(
            error("all:\n  hosts:\n    web[3:1]:\n"),
            "hosts.yml:3:5: host range `[3:1]`: the beginning must not come after the end"
        );
        assert_eq!(
            error("all:\n  hosts: [a, b]\n"),
            "hosts.yml:2:10: `hosts` of group `all` must be a mapping, not a list"
        );
        assert_eq!(
            error("all:\n  hosts:\n    a: 3\n"),
            "hosts.yml:3:8: host `a` must be a mapping, not a number `3`"
        );
    }

    #[test]
    fn all_cannot_be_a_child() {
        assert_eq!(
            error("all:\n  children:\n    web:\n      children:\n        all:\n"),
            "hosts.yml:5:9: group `all` cannot be a child of group `web`: \
             it already contains every group"
        );
    }
}
