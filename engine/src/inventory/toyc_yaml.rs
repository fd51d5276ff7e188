//! toyc's YAML inventory:
//!
//! ```yaml
//! vars: {app_port: 8080}                  # every host
//! ssh: {user: deploy, port: 22}           # defaults for every host
//! sudo: false
//! hosts:
//!   web1: {address: 10.0.0.11, ssh: {port: 2222}, sudo: true, vars: {role: web}}
//!   local1: {transport: local}
//! groups:
//!   web: {hosts: [web1, web2], vars: {tier: front}}
//!   prod: {children: [web], ssh: {user: ops}}
//! ```
//!
//! Every key is checked: a typo is an error naming the valid keys, never silently ignored.

use std::collections::HashSet;

use serde_yaml::{Mapping, Value};

use super::model::{check_address, At, Issue, Layer, Model, Style};
use super::suggest;
use super::yaml_path::YamlPath;
use super::yaml_read::{self, check_keys, entries, mapping};
use super::{tilde, TransportKind};

const TOP_KEYS: [&str; 5] = ["vars", "ssh", "sudo", "hosts", "groups"];
const HOST_KEYS: [&str; 5] = ["address", "transport", "ssh", "sudo", "vars"];
const GROUP_KEYS: [&str; 5] = ["hosts", "children", "vars", "ssh", "sudo"];
const SSH_KEYS: [&str; 4] = ["user", "port", "identity", "known_hosts"];
const TRANSPORTS: [&str; 2] = ["ssh", "local"];

/// Reads a toyc YAML document.
pub(super) fn read(doc: &Value) -> Result<Model, Issue> {
    let mut model = Model::new(Style::Toyc);
    let root = YamlPath::root();
    let Some(top) = mapping(doc, &root, "the inventory")? else {
        return Ok(model);
    };
    check_keys(top, &TOP_KEYS, "the inventory's top level", &root)?;
    model.base = settings(top, &root, "the inventory's top level")?;
    let defined = defined_hosts(top);
    if let Some(hosts) = top.get("hosts") {
        let path = root.value("hosts");
        if let Some(hosts) = mapping(hosts, &path, "`hosts`")? {
            for (name, spec) in entries(hosts) {
                read_host(&mut model, &name, spec, &path.value(&name))?;
            }
        }
    }
    if let Some(groups) = top.get("groups") {
        let path = root.value("groups");
        if let Some(groups) = mapping(groups, &path, "`groups`")? {
            for (name, spec) in entries(groups) {
                read_group(&mut model, &name, spec, &path, &defined)?;
            }
        }
    }
    Ok(model)
}

/// Every host the inventory defines: under the top-level `hosts`, or in a group's
/// `hosts` written as a mapping. A group's list of names refers to these.
fn defined_hosts(top: &Mapping) -> HashSet<String> {
    let keys = |hosts: Option<&Value>| -> Vec<String> {
        match hosts {
            Some(Value::Mapping(specs)) => entries(specs).map(|(name, _)| name).collect(),
            _ => Vec::new(),
        }
    };
    let mut defined: HashSet<String> = keys(top.get("hosts")).into_iter().collect();
    if let Some(Value::Mapping(groups)) = top.get("groups") {
        for (_, spec) in entries(groups) {
            defined.extend(keys(spec.as_mapping().and_then(|g| g.get("hosts"))));
        }
    }
    defined
}

/// A host spec (`{address: .., ssh: .., ...}`, or empty), merged into any earlier one.
fn read_host(model: &mut Model, name: &str, spec: &Value, path: &YamlPath) -> Result<(), Issue> {
    let owner = format!("host `{name}`");
    check_address("host", name).map_err(|why| Issue::yaml(path.clone(), why))?;
    let mut layer = Layer::default();
    if let Some(spec) = mapping(spec, path, &owner)? {
        check_keys(spec, &HOST_KEYS, &owner, path)?;
        layer = settings(spec, path, &owner)?;
        if let Some(address) = spec.get("address") {
            let at = path.value("address");
            let what = format!("`address` of {owner}");
            let address = yaml_read::name(address, &at, &what)?;
            check_address(&what, &address).map_err(|why| Issue::yaml(at, why))?;
            layer.address = Some(address);
        }
        if let Some(transport) = spec.get("transport") {
            layer.transport = Some(read_transport(transport, &path.value("transport"), &owner)?);
        }
    }
    model.host_mut(name).layer.overlay(&layer);
    Ok(())
}

/// A group: its settings, `hosts` (a list of names, or a mapping of host specs) and
/// `children` (a list of group names).
fn read_group(
    model: &mut Model,
    name: &str,
    spec: &Value,
    groups: &YamlPath,
    defined: &HashSet<String>,
) -> Result<(), Issue> {
    let path = groups.value(name);
    if name == "all" {
        return Err(Issue::yaml(
            groups.key(name),
            "the group name `all` is reserved: it always means every host \
             (put settings for every host at the top level)",
        ));
    }
    let owner = format!("group `{name}`");
    model.group_mut(name);
    let Some(spec) = mapping(spec, &path, &owner)? else {
        return Ok(());
    };
    check_keys(spec, &GROUP_KEYS, &owner, &path)?;
    model.group_mut(name).layer = settings(spec, &path, &owner)?;
    if let Some(hosts) = spec.get("hosts") {
        read_members(model, name, hosts, &path.value("hosts"), defined)?;
    }
    if let Some(children) = spec.get("children") {
        let path = path.value("children");
        let what = format!("`children` of {owner}");
        for (i, child) in yaml_read::sequence(children, &path, &what)?
            .iter()
            .enumerate()
        {
            let item = path.index(i);
            let child = yaml_read::name(child, &item, &format!("an entry of {what}"))?;
            model.add_child(name, &child, At::Yaml(item));
        }
    }
    Ok(())
}

/// A group's `hosts`: `[web1, web2]`, or `{web1: {address: ..}, web2: }`.
fn read_members(
    model: &mut Model,
    group: &str,
    hosts: &Value,
    path: &YamlPath,
    defined: &HashSet<String>,
) -> Result<(), Issue> {
    let what = format!("`hosts` of group `{group}`");
    match hosts {
        Value::Mapping(specs) => {
            for (host, spec) in entries(specs) {
                read_host(model, &host, spec, &path.value(&host))?;
                model.add_member(group, &host);
            }
        }
        other => {
            for (i, host) in yaml_read::sequence(other, path, &what)?.iter().enumerate() {
                let host = yaml_read::name(host, &path.index(i), &format!("an entry of {what}"))?;
                // Never a new host: a typo would become a machine to connect to.
                if !defined.contains(&host) {
                    let hint = suggest::did_you_mean(&host, defined.iter().map(String::as_str));
                    return Err(Issue::yaml(
                        path.index(i),
                        format!(
                            "group `{group}` lists host `{host}`, which is not defined; \
                             define it under `hosts:` or fix the name{hint}"
                        ),
                    ));
                }
                model.add_member(group, &host);
            }
        }
    }
    Ok(())
}

/// The settings every level may give: `vars`, `ssh` and `sudo`.
fn settings(spec: &Mapping, path: &YamlPath, owner: &str) -> Result<Layer, Issue> {
    let mut layer = Layer::default();
    if let Some(vars) = spec.get("vars") {
        layer.vars = yaml_read::vars(vars, &path.value("vars"), &format!("`vars` of {owner}"))?;
    }
    if let Some(ssh) = spec.get("ssh") {
        read_ssh(&mut layer, ssh, &path.value("ssh"), owner)?;
    }
    if let Some(sudo) = spec.get("sudo") {
        layer.sudo = Some(match sudo {
            Value::Bool(b) => *b,
            other => {
                return Err(Issue::yaml(
                    path.value("sudo"),
                    format!(
                        "`sudo` of {owner} must be true or false, not {}",
                        yaml_read::describe(other)
                    ),
                ))
            }
        });
    }
    Ok(layer)
}

/// `ssh: {user, port, identity, known_hosts}`.
fn read_ssh(layer: &mut Layer, ssh: &Value, path: &YamlPath, owner: &str) -> Result<(), Issue> {
    let what = format!("`ssh` of {owner}");
    let Some(ssh) = mapping(ssh, path, &what)? else {
        return Ok(());
    };
    check_keys(ssh, &SSH_KEYS, &what, path)?;
    let text = |key: &str| -> Result<Option<String>, Issue> {
        ssh.get(key)
            .map(|v| yaml_read::name(v, &path.value(key), &format!("`{key}` in {what}")))
            .transpose()
    };
    layer.ssh.user = text("user")?;
    layer.ssh.identity = text("identity")?.map(|p| tilde::expand(&p));
    layer.ssh.known_hosts = text("known_hosts")?.map(|p| tilde::expand(&p));
    if let Some(port) = ssh.get("port") {
        layer.ssh.port = Some(read_port(port, &path.value("port"), &what)?);
    }
    Ok(())
}

/// A TCP port, 1-65535.
fn read_port(port: &Value, path: &YamlPath, what: &str) -> Result<u16, Issue> {
    let number = match port {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse::<u64>().ok(),
        _ => None,
    };
    match number
        .and_then(|n| u16::try_from(n).ok())
        .filter(|p| *p != 0)
    {
        Some(port) => Ok(port),
        None => Err(Issue::yaml(
            path.clone(),
            format!(
                "`port` in {what} must be a number 1-65535, not {}",
                yaml_read::describe(port)
            ),
        )),
    }
}

/// `ssh` or `local`.
fn read_transport(value: &Value, path: &YamlPath, owner: &str) -> Result<TransportKind, Issue> {
    let message = match value.as_str() {
        Some("ssh") => return Ok(TransportKind::Ssh),
        Some("local") => return Ok(TransportKind::Local),
        Some(other) => format!(
            "unknown transport `{other}` for {owner} (valid: ssh, local){}",
            suggest::did_you_mean(other, TRANSPORTS)
        ),
        None => format!(
            "`transport` of {owner} must be `ssh` or `local`, not {}",
            yaml_read::describe(value)
        ),
    };
    Err(Issue::yaml(path.clone(), message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::{Path, PathBuf};

    fn model(text: &str) -> Model {
        read(&yaml_read::parse(text).unwrap()).unwrap()
    }

    /// The error as the user sees it.
    fn error(text: &str) -> String {
        let issue = read(&yaml_read::parse(text).unwrap()).unwrap_err();
        issue
            .into_error(text, Path::new("inventory.yml"))
            .to_string()
    }

    const SAMPLE: &str = "\
vars: {app_port: 8080}
ssh: {user: deploy, port: 22, identity: /keys/id, known_hosts: /keys/known}
sudo: false
hosts:
  web1: {address: 10.0.0.11, ssh: {user: root, port: 2222}, sudo: true, vars: {role: web}}
  db1: {}
  local1: {transport: local}
  web2:
groups:
  web: {hosts: [web1, web2], vars: {tier: front}, ssh: {port: 2200}, sudo: true}
  prod: {children: [web, db], vars: {env: prod}}
  db:
    hosts:
      db1:
      db2: {address: 10.0.0.22}
";

    #[test]
    fn every_level_is_read() {
        let m = model(SAMPLE);
        assert_eq!(m.style, Style::Toyc);
        assert_eq!(m.base.vars["app_port"], json!(8080));
        assert_eq!(m.base.ssh.user.as_deref(), Some("deploy"));
        assert_eq!(m.base.ssh.port, Some(22));
        assert_eq!(m.base.ssh.identity, Some(PathBuf::from("/keys/id")));
        assert_eq!(m.base.ssh.known_hosts, Some(PathBuf::from("/keys/known")));
        assert_eq!(m.base.sudo, Some(false));
        let names: Vec<&str> = m.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["web1", "db1", "local1", "web2", "db2"]);
        let web1 = &m.hosts[0].layer;
        assert_eq!(web1.address.as_deref(), Some("10.0.0.11"));
        assert_eq!(
            (web1.ssh.user.as_deref(), web1.ssh.port),
            (Some("root"), Some(2222))
        );
        assert_eq!(web1.sudo, Some(true));
        assert_eq!(web1.vars["role"], json!("web"));
        assert_eq!(m.hosts[2].layer.transport, Some(TransportKind::Local));
        assert_eq!(m.hosts[4].layer.address.as_deref(), Some("10.0.0.22"));
        let groups: Vec<&str> = m.groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(groups, ["web", "prod", "db"]);
        assert_eq!(m.groups[0].hosts, ["web1", "web2"]);
        assert_eq!(m.groups[0].layer.ssh.port, Some(2200));
        assert_eq!(m.groups[0].layer.sudo, Some(true));
        let children: Vec<&str> = m.groups[1]
            .children
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(children, ["web", "db"]);
        assert_eq!(m.groups[2].hosts, ["db1", "db2"]);
    }

    #[test]
    fn tilde_paths_expand_to_home() {
        let m = model("ssh: {identity: ~/.ssh/id_ed25519}\n");
        assert_eq!(
            m.base.ssh.identity,
            Some(tilde::expand("~/.ssh/id_ed25519"))
        );
    }

    #[test]
    fn empty_documents_and_nodes_are_empty() {
        assert!(model("{}").hosts.is_empty());
        let m = model("hosts:\ngroups:\n  web:\n");
        assert_eq!(m.groups[0].name, "web");
    }

    #[test]
    fn unknown_keys_are_errors_at_the_key_with_the_valid_keys() {
        let text = "hosts:\n  web1:\n    address: 10.0.0.1\n    adress: 10.0.0.2\n";
        assert_eq!(
            error(text),
            "inventory.yml:4:5: unknown key `adress` in host `web1` \
             (valid keys: address, transport, ssh, sudo, vars); did you mean `address`?"
        );
        assert_eq!(
            error("hsts: {}\n"),
            "inventory.yml:1:1: unknown key `hsts` in the inventory's top level \
             (valid keys: vars, ssh, sudo, hosts, groups); did you mean `hosts`?"
        );
        assert_eq!(
            error("groups:\n  web: {host: [a]}\n"),
            "inventory.yml:2:9: unknown key `host` in group `web` \
             (valid keys: hosts, children, vars, ssh, sudo); did you mean `hosts`?"
        );
        assert_eq!(
            error("hosts:\n  a: {ssh: {usr: x}}\n"),
            "inventory.yml:2:13: unknown key `usr` in `ssh` of host `a` \
             (valid keys: user, port, identity, known_hosts); did you mean `user`?"
        );
    }

    #[test]
    fn ports_must_be_1_to_65535() {
        assert_eq!(
            error("ssh: {port: 70000}\n"),
            "inventory.yml:1:13: `port` in `ssh` of the inventory's top level must be a number \
             1-65535, not a number `70000`"
        );
        assert_eq!(
            error("hosts:\n  a:\n    ssh:\n      port: ssh\n"),
            "inventory.yml:4:13: `port` in `ssh` of host `a` must be a number 1-65535, \
             not a string `ssh`"
        );
        assert_eq!(model("ssh: {port: '22'}\n").base.ssh.port, Some(22));
    }

    #[test]
    fn bad_values_name_what_was_found() {
        assert_eq!(
            error("hosts:\n  a: {transport: sshh}\n"),
            "inventory.yml:2:18: unknown transport `sshh` for host `a` \
             (valid: ssh, local); did you mean `ssh`?"
        );
        assert_eq!(
            error("hosts:\n  a: {transport: 1}\n"),
            "inventory.yml:2:18: `transport` of host `a` must be `ssh` or `local`, \
             not a number `1`"
        );
        assert_eq!(
            error("sudo: yes\n"),
            "inventory.yml:1:7: `sudo` of the inventory's top level must be true or false, \
             not a string `yes`"
        );
        assert_eq!(
            error("groups:\n  web: {children: web2}\n"),
            "inventory.yml:2:19: `children` of group `web` must be a list, not a string `web2`"
        );
        assert_eq!(
            error("hosts: {a: }\ngroups:\n  web: {hosts: [a, [b]]}\n"),
            "inventory.yml:3:20: an entry of `hosts` of group `web` must be a string, not a list"
        );
        // A host a later group defines (as a mapping) may be listed before.
        let m = model(
            "hosts:\n  web1: {}\ngroups:\n  web: {hosts: [web1, web2]}\n  db: {hosts: {web2: }}\n",
        );
        assert_eq!(m.groups[0].hosts, ["web1", "web2"]);
        assert_eq!(
            error("hosts:\n  web1: {}\ngroups:\n  web: {hosts: [web1, web2]}\n"),
            "inventory.yml:4:23: group `web` lists host `web2`, which is not defined; \
             define it under `hosts:` or fix the name; did you mean `web1`?"
        );
        assert_eq!(
            error("hosts:\n  a: {address: -oProxyCommand=x}\n"),
            "inventory.yml:2:16: `address` of host `a` `-oProxyCommand=x` starts with `-`, \
             which ssh would read as an option; give a host name or IP address"
        );
        assert_eq!(
            error("hosts:\n  a: {address: [10, 0]}\n"),
            "inventory.yml:2:16: `address` of host `a` must be a string, not a list"
        );
        assert_eq!(
            error("hosts:\n  a: {address: ''}\n"),
            "inventory.yml:2:16: `address` of host `a` must be a string, not an empty string"
        );
        assert_eq!(
            error("ssh: {user: {name: x}}\n"),
            "inventory.yml:1:13: `user` in `ssh` of the inventory's top level must be a \
             string, not a mapping"
        );
        assert_eq!(
            error("hosts: [a, b]\n"),
            "inventory.yml:1:8: `hosts` must be a mapping, not a list"
        );
        assert_eq!(
            error("vars: 3\n"),
            "inventory.yml:1:7: `vars` of the inventory's top level must be a mapping, \
             not a number `3`"
        );
    }

    #[test]
    fn all_is_a_reserved_group_name() {
        assert_eq!(
            error("groups:\n  all: {}\n"),
            "inventory.yml:2:3: the group name `all` is reserved: it always means every host \
             (put settings for every host at the top level)"
        );
    }

    #[test]
    fn children_entries_keep_their_place_for_later_errors() {
        let m = model("groups:\n  prod:\n    children:\n      - web\n");
        let at = &m.groups[0].children[0].at;
        let issue = Issue::new(at.clone(), "x");
        let text = "groups:\n  prod:\n    children:\n      - web\n";
        assert_eq!(
            issue.into_error(text, Path::new("i.yml")).to_string(),
            "i.yml:4:9: x"
        );
    }

    #[test]
    fn a_host_described_twice_merges() {
        let m = model("hosts:\n  a: {address: x, vars: {k: 1}}\ngroups:\n  g:\n    hosts:\n      a: {vars: {j: 2}}\n");
        assert_eq!(m.hosts.len(), 1);
        assert_eq!(m.hosts[0].layer.address.as_deref(), Some("x"));
        assert_eq!(
            serde_json::Value::Object(m.hosts[0].layer.vars.clone()),
            json!({"k": 1, "j": 2})
        );
    }
}
