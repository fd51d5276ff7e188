//! The format-neutral inventory every reader fills in, before groups are resolved and
//! variables merged (see `build`).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde_json::{Map, Value};

use super::yaml_path::{self, YamlPath};
use super::{InventoryError, SshParams, TransportKind};

/// Settings one level of the inventory (everything, a group, a host) gives its hosts;
/// `None` leaves the choice to a lower level.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Layer {
    /// Variables.
    pub(super) vars: Map<String, Value>,
    /// What to connect to.
    pub(super) address: Option<String>,
    /// Local process or SSH.
    pub(super) transport: Option<TransportKind>,
    /// SSH settings, each one on its own.
    pub(super) ssh: SshParams,
    /// Run through sudo.
    pub(super) sudo: Option<bool>,
}

impl Layer {
    /// Lays `top` over `self`: what `top` sets wins, variable by variable.
    pub(super) fn overlay(&mut self, top: &Layer) {
        for (key, value) in &top.vars {
            self.vars.insert(key.clone(), value.clone());
        }
        overlay_option(&mut self.address, &top.address);
        overlay_option(&mut self.transport, &top.transport);
        overlay_option(&mut self.ssh.user, &top.ssh.user);
        overlay_option(&mut self.ssh.port, &top.ssh.port);
        overlay_option(&mut self.ssh.identity, &top.ssh.identity);
        overlay_option(&mut self.ssh.known_hosts, &top.ssh.known_hosts);
        overlay_option(&mut self.sudo, &top.sudo);
    }
}

fn overlay_option<T: Clone>(bottom: &mut Option<T>, top: &Option<T>) {
    if top.is_some() {
        bottom.clone_from(top);
    }
}

/// Where in the file something was written, to point errors at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum At {
    /// A 1-based line and column (INI).
    Line(usize, usize),
    /// A node of the YAML document.
    Yaml(YamlPath),
}

/// A problem in the inventory text, before it is tied to a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Issue {
    /// Where it is.
    pub(super) at: At,
    /// What is wrong and what to do, lower-case, names in backticks.
    pub(super) message: String,
}

impl Issue {
    /// A problem at `at`.
    pub(super) fn new(at: At, message: impl Into<String>) -> Issue {
        Issue {
            at,
            message: message.into(),
        }
    }

    /// A problem at a YAML node.
    pub(super) fn yaml(path: YamlPath, message: impl Into<String>) -> Issue {
        Issue::new(At::Yaml(path), message)
    }

    /// The error naming `file:line:column`, `text` being the file's contents.
    pub(super) fn into_error(self, text: &str, file: &Path) -> InventoryError {
        let (line, column) = match &self.at {
            At::Line(line, column) => (*line, *column),
            At::Yaml(path) => yaml_path::locate(text, path).unwrap_or((1, 1)),
        };
        InventoryError::Parse {
            path: file.to_owned(),
            line,
            column,
            message: self.message,
        }
    }
}

/// Check a host name or address (`what`, such as "`address` of host `web1`") that may
/// become ssh's destination argument: one starting with `-` would be read as an option
/// (`-oProxyCommand=...` runs a command on the controller), and whitespace would split it.
pub(super) fn check_address(what: &str, address: &str) -> Result<(), String> {
    if address.starts_with('-') {
        return Err(format!(
            "{what} `{address}` starts with `-`, which ssh would read as an option; \
             give a host name or IP address"
        ));
    }
    if address.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{what} `{}` contains whitespace; give a host name or IP address",
            address.escape_debug()
        ));
    }
    Ok(())
}

/// How host connection settings are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Style {
    /// In `Layer` fields (toyc's `address`, `ssh`, `sudo`, `transport`).
    Toyc,
    /// In `ansible_*` variables, turned into `Layer` fields when building.
    Ansible,
}

/// A host as written: its own settings.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct HostDef {
    /// The inventory name.
    pub(super) name: String,
    /// Its own settings, the highest precedence.
    pub(super) layer: Layer,
}

/// A `children` entry, kept with its place for errors (unknown group, cycle).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ChildRef {
    /// The child group's name.
    pub(super) name: String,
    /// Where the entry is.
    pub(super) at: At,
}

/// A group as written.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct GroupDef {
    /// The group's name.
    pub(super) name: String,
    /// Hosts listed directly in the group.
    pub(super) hosts: Vec<String>,
    /// Groups listed in its `children`.
    pub(super) children: Vec<ChildRef>,
    /// Settings for its hosts.
    pub(super) layer: Layer,
}

/// An inventory as written, in definition order.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Model {
    /// How connection settings are written.
    pub(super) style: Style,
    /// Settings for every host (toyc's top level, Ansible's `all`).
    pub(super) base: Layer,
    /// Every host, in the order first named.
    pub(super) hosts: Vec<HostDef>,
    /// Every group defined, in the order defined (not the order referenced).
    pub(super) groups: Vec<GroupDef>,
    host_index: HashMap<String, usize>,
    group_index: HashMap<String, usize>,
    /// (group index, host) pairs already in `GroupDef::hosts`.
    memberships: HashSet<(usize, String)>,
}

impl Model {
    /// An empty inventory.
    pub(super) fn new(style: Style) -> Model {
        Model {
            style,
            base: Layer::default(),
            hosts: Vec::new(),
            groups: Vec::new(),
            host_index: HashMap::new(),
            group_index: HashMap::new(),
            memberships: HashSet::new(),
        }
    }

    /// The host `name`, added (address = name) if not named before.
    pub(super) fn host_mut(&mut self, name: &str) -> &mut HostDef {
        let index = match self.host_index.get(name) {
            Some(&index) => index,
            None => {
                self.hosts.push(HostDef {
                    name: name.to_owned(),
                    layer: Layer::default(),
                });
                self.host_index
                    .insert(name.to_owned(), self.hosts.len() - 1);
                self.hosts.len() - 1
            }
        };
        &mut self.hosts[index]
    }

    /// The group `name`, defined now if it was not before.
    pub(super) fn group_mut(&mut self, name: &str) -> &mut GroupDef {
        let index = match self.group_index.get(name) {
            Some(&index) => index,
            None => {
                self.groups.push(GroupDef {
                    name: name.to_owned(),
                    hosts: Vec::new(),
                    children: Vec::new(),
                    layer: Layer::default(),
                });
                self.group_index
                    .insert(name.to_owned(), self.groups.len() - 1);
                self.groups.len() - 1
            }
        };
        &mut self.groups[index]
    }

    /// Whether group `name` is defined.
    pub(super) fn has_group(&self, name: &str) -> bool {
        self.group_index.contains_key(name)
    }

    /// The index of group `name` in `groups`.
    pub(super) fn group_position(&self, name: &str) -> Option<usize> {
        self.group_index.get(name).copied()
    }

    /// The index of host `name` in `hosts`.
    pub(super) fn host_position(&self, name: &str) -> Option<usize> {
        self.host_index.get(name).copied()
    }

    /// Puts host `host` (added if new) directly in group `group` (defined if new), once.
    pub(super) fn add_member(&mut self, group: &str, host: &str) {
        self.host_mut(host);
        self.group_mut(group);
        let Some(g) = self.group_position(group) else {
            return;
        };
        // A set, not a scan of the list: `web[1:50000]` would make that quadratic.
        if self.memberships.insert((g, host.to_owned())) {
            self.groups[g].hosts.push(host.to_owned());
        }
    }

    /// Lists `child` in the `children` of `parent` (defined if new), once; `child` itself must
    /// be defined by the time the inventory is built.
    pub(super) fn add_child(&mut self, parent: &str, child: &str, at: At) {
        let parent = self.group_mut(parent);
        if !parent.children.iter().any(|c| c.name == child) {
            parent.children.push(ChildRef {
                name: child.to_owned(),
                at,
            });
        }
    }

    /// Ansible's rule: `ungrouped` holds exactly the hosts that are in no other group.
    pub(super) fn reconcile_ungrouped(&mut self) {
        let mut grouped = vec![false; self.hosts.len()];
        for group in self.groups.iter().filter(|g| g.name != "ungrouped") {
            for host in &group.hosts {
                if let Some(&index) = self.host_index.get(host) {
                    grouped[index] = true;
                }
            }
        }
        let loners: Vec<String> = self
            .hosts
            .iter()
            .zip(&grouped)
            .filter(|(_, grouped)| !**grouped)
            .map(|(h, _)| h.name.clone())
            .collect();
        self.group_mut("ungrouped");
        let Some(u) = self.group_position("ungrouped") else {
            return;
        };
        self.memberships.retain(|(g, _)| *g != u);
        self.memberships
            .extend(loners.iter().map(|host| (u, host.clone())));
        self.groups[u].hosts = loners;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn overlay_replaces_what_the_top_sets_and_keeps_the_rest() {
        let mut bottom = Layer {
            vars: Map::from_iter([("a".into(), json!(1)), ("b".into(), json!({"x": 1}))]),
            sudo: Some(true),
            ..Layer::default()
        };
        bottom.ssh.user = Some("root".into());
        bottom.ssh.port = Some(22);
        let mut top = Layer {
            vars: Map::from_iter([("b".into(), json!({"y": 2})), ("c".into(), json!(3))]),
            address: Some("10.0.0.1".into()),
            ..Layer::default()
        };
        top.ssh.port = Some(2222);
        bottom.overlay(&top);
        // Variables are replaced whole, as Ansible does by default (no deep merge).
        assert_eq!(
            Value::Object(bottom.vars),
            json!({"a": 1, "b": {"y": 2}, "c": 3})
        );
        assert_eq!(bottom.address.as_deref(), Some("10.0.0.1"));
        assert_eq!(bottom.ssh.user.as_deref(), Some("root"));
        assert_eq!(bottom.ssh.port, Some(2222));
        assert_eq!(bottom.sudo, Some(true));
    }

    #[test]
    fn hosts_and_groups_keep_first_definition_order_and_are_listed_once() {
        let mut model = Model::new(Style::Toyc);
        model.add_member("web", "web2");
        model.add_member("web", "web1");
        model.add_member("web", "web2");
        model.add_child("prod", "web", At::Line(1, 1));
        model.add_child("prod", "web", At::Line(2, 1));
        let hosts: Vec<&str> = model.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(hosts, ["web2", "web1"]);
        assert_eq!(model.groups[0].hosts, ["web2", "web1"]);
        assert_eq!(model.groups[1].name, "prod");
        assert_eq!(model.groups[1].children.len(), 1);
        assert_eq!(model.group_position("prod"), Some(1));
        assert!(model.has_group("web") && !model.has_group("db"));
    }

    #[test]
    fn ungrouped_holds_exactly_the_hosts_in_no_other_group() {
        let mut model = Model::new(Style::Ansible);
        model.group_mut("ungrouped");
        model.add_member("ungrouped", "both");
        model.add_member("web", "both");
        model.host_mut("loner");
        model.reconcile_ungrouped();
        assert_eq!(model.groups[0].hosts, ["loner"]);
    }

    #[test]
    fn issues_become_errors_naming_file_line_and_column() {
        let issue = Issue::new(At::Line(3, 7), "bad thing `x`");
        let err = issue.into_error("", Path::new("hosts.ini"));
        assert_eq!(err.to_string(), "hosts.ini:3:7: bad thing `x`");
        let text = "a:\n  b: 1\n";
        let issue = Issue::yaml(YamlPath::root().value("a").key("b"), "bad key `b`");
        let err = issue.into_error(text, Path::new("inv.yml"));
        assert_eq!(err.to_string(), "inv.yml:2:3: bad key `b`");
    }
}
