//! From the inventory as written to hosts ready to use: group references are checked,
//! memberships followed through `children`, and settings merged in precedence order.

use super::ansible_vars;
use super::model::{Issue, Layer, Model, Style};
use super::suggest;
use super::{Group, Host, TransportKind};

/// The usable inventory.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Built {
    /// Every host, in inventory order.
    pub(super) hosts: Vec<Host>,
    /// `all`, then every group in definition order.
    pub(super) groups: Vec<Group>,
    /// `localhost` when the inventory does not define it.
    pub(super) implicit_localhost: Host,
}

/// Resolves `model`, or says which group reference is wrong.
pub(super) fn build(model: &Model) -> Result<Built, Issue> {
    check_children(model)?;
    check_cycles(model)?;
    let parents = parents(model);
    let depths = depths(&parents);
    let members = members(model);
    let hosts = (0..model.hosts.len())
        .map(|h| host(model, h, &members, &depths))
        .collect();
    Ok(Built {
        hosts,
        groups: groups(model, &members, &parents),
        implicit_localhost: Host {
            // Like Ansible: the implicit localhost sees the inventory-wide variables, but
            // connection settings meant for the inventory's machines are not applied to it.
            vars: model.base.vars.clone(),
            ..Host::localhost()
        },
    })
}

/// Every `children` entry names a defined group other than `all`.
fn check_children(model: &Model) -> Result<(), Issue> {
    for group in &model.groups {
        for child in &group.children {
            let parent = &group.name;
            if child.name == "all" {
                return Err(Issue::new(
                    child.at.clone(),
                    format!(
                        "group `all` cannot be a child of group `{parent}`: \
                         it already contains every group"
                    ),
                ));
            }
            if !model.has_group(&child.name) {
                let names = model.groups.iter().map(|g| g.name.as_str());
                let hint = suggest::did_you_mean(&child.name, names);
                return Err(Issue::new(
                    child.at.clone(),
                    format!(
                        "unknown group `{}` in the children of group `{parent}` \
                         (define it, or fix the name){hint}",
                        child.name
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// No group is its own descendant; the error names the whole loop.
fn check_cycles(model: &Model) -> Result<(), Issue> {
    let mut state = vec![Visit::New; model.groups.len()];
    let mut path = Vec::new();
    for start in 0..model.groups.len() {
        visit(model, start, &mut state, &mut path)?;
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Visit {
    New,
    OnPath,
    Done,
}

/// Depth-first walk: meeting a group already on the path closes a loop.
fn visit(
    model: &Model,
    group: usize,
    state: &mut [Visit],
    path: &mut Vec<usize>,
) -> Result<(), Issue> {
    if state[group] != Visit::New {
        return Ok(());
    }
    state[group] = Visit::OnPath;
    path.push(group);
    for child in &model.groups[group].children {
        let Some(c) = model.group_position(&child.name) else {
            continue;
        };
        if state[c] == Visit::OnPath {
            let from = path.iter().position(|&g| g == c).unwrap_or(0);
            let names: Vec<String> = path[from..]
                .iter()
                .chain([&c])
                .map(|&g| format!("`{}`", model.groups[g].name))
                .collect();
            return Err(Issue::new(
                child.at.clone(),
                format!(
                    "cycle in group children: {} (remove one of these `children` entries)",
                    names.join(" -> ")
                ),
            ));
        }
        visit(model, c, state, path)?;
    }
    path.pop();
    state[group] = Visit::Done;
    Ok(())
}

/// The parents of each group, by index.
fn parents(model: &Model) -> Vec<Vec<usize>> {
    let mut parents = vec![Vec::new(); model.groups.len()];
    for (p, group) in model.groups.iter().enumerate() {
        for child in &group.children {
            if let Some(c) = model.group_position(&child.name) {
                parents[c].push(p);
            }
        }
    }
    parents
}

/// Each group's depth below `all`: 0 without parents, else one more than its deepest parent.
/// Sorting by depth puts every parent before its children.
fn depths(parents: &[Vec<usize>]) -> Vec<usize> {
    fn depth(g: usize, parents: &[Vec<usize>], memo: &mut [Option<usize>]) -> usize {
        if let Some(d) = memo[g] {
            return d;
        }
        let d = parents[g]
            .iter()
            .map(|&p| depth(p, parents, memo) + 1)
            .max()
            .unwrap_or(0);
        memo[g] = Some(d);
        d
    }
    let mut memo = vec![None; parents.len()];
    (0..parents.len())
        .map(|g| depth(g, parents, &mut memo))
        .collect()
}

/// For each group, which hosts are in it, directly or through its children.
fn members(model: &Model) -> Vec<Vec<bool>> {
    fn fill(model: &Model, g: usize, memo: &mut [Option<Vec<bool>>]) -> Vec<bool> {
        if let Some(done) = &memo[g] {
            return done.clone();
        }
        let group = &model.groups[g];
        let mut set = vec![false; model.hosts.len()];
        for host in &group.hosts {
            if let Some(h) = model.host_position(host) {
                set[h] = true;
            }
        }
        for child in &group.children {
            if let Some(c) = model.group_position(&child.name) {
                for (h, member) in fill(model, c, memo).into_iter().enumerate() {
                    set[h] |= member;
                }
            }
        }
        memo[g] = Some(set.clone());
        set
    }
    let mut memo = vec![None; model.groups.len()];
    (0..model.groups.len())
        .map(|g| fill(model, g, &mut memo))
        .collect()
}

/// A layer's settings, with Ansible's connection variables read into them.
fn effective(style: Style, layer: &Layer) -> Layer {
    match style {
        Style::Toyc => layer.clone(),
        Style::Ansible => {
            let mut settings = ansible_vars::connection_layer(&layer.vars);
            settings.vars = layer.vars.clone();
            settings
        }
    }
}

/// Host `h` with its settings merged: inventory-wide, then its groups (shallower first, then
/// in definition order), then its own.
fn host(model: &Model, h: usize, members: &[Vec<bool>], depths: &[usize]) -> Host {
    let def = &model.hosts[h];
    let mut in_groups: Vec<usize> = (0..model.groups.len()).filter(|&g| members[g][h]).collect();
    let names = in_groups
        .iter()
        .map(|&g| model.groups[g].name.clone())
        .collect();
    in_groups.sort_by_key(|&g| (depths[g], g));
    let mut layer = effective(model.style, &model.base);
    for g in in_groups {
        layer.overlay(&effective(model.style, &model.groups[g].layer));
    }
    layer.overlay(&effective(model.style, &def.layer));
    let is_localhost =
        def.name == "localhost" && layer.address.is_none() && layer.transport.is_none();
    Host {
        name: def.name.clone(),
        address: layer.address.unwrap_or_else(|| def.name.clone()),
        transport: layer.transport.unwrap_or(if is_localhost {
            TransportKind::Local
        } else {
            TransportKind::Ssh
        }),
        ssh: layer.ssh,
        sudo: layer.sudo.unwrap_or(false),
        groups: names,
        vars: layer.vars,
    }
}

/// `all` (every host; its children are the groups without a parent), then each group.
fn groups(model: &Model, members: &[Vec<bool>], parents: &[Vec<usize>]) -> Vec<Group> {
    let host_names = |set: &[bool]| -> Vec<String> {
        model
            .hosts
            .iter()
            .zip(set)
            .filter(|(_, member)| **member)
            .map(|(h, _)| h.name.clone())
            .collect()
    };
    let all = Group {
        name: "all".into(),
        hosts: model.hosts.iter().map(|h| h.name.clone()).collect(),
        children: model
            .groups
            .iter()
            .zip(parents)
            .filter(|(_, parents)| parents.is_empty())
            .map(|(g, _)| g.name.clone())
            .collect(),
        vars: model.base.vars.clone(),
    };
    let rest = model.groups.iter().zip(members).map(|(g, set)| Group {
        name: g.name.clone(),
        hosts: host_names(set),
        children: g.children.iter().map(|c| c.name.clone()).collect(),
        vars: g.layer.vars.clone(),
    });
    std::iter::once(all).chain(rest).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::model::At;
    use serde_json::{json, Map, Value};

    fn vars(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    fn layer(value: Value) -> Layer {
        Layer {
            vars: vars(value),
            ..Layer::default()
        }
    }

    /// prod > {web, db}; web > {web1}; db > {db1}; `late` defined after but unrelated.
    fn sample(style: Style) -> Model {
        let mut m = Model::new(style);
        m.base = layer(json!({"level": "all", "a": 0}));
        m.group_mut("prod").layer = layer(json!({"level": "prod", "p": 1, "shared": "prod"}));
        m.add_child("prod", "web", At::Line(2, 1));
        m.add_child("prod", "db", At::Line(3, 1));
        m.add_member("web", "web1");
        m.group_mut("web").layer = layer(json!({"level": "web"}));
        m.add_member("db", "db1");
        m.add_member("late", "web1");
        m.group_mut("late").layer = layer(json!({"level": "late", "l": 1, "shared": "late"}));
        m.host_mut("db1").layer = layer(json!({"level": "db1"}));
        m
    }

    #[test]
    fn host_settings_merge_all_then_parents_then_children_then_the_host() {
        let built = build(&sample(Style::Toyc)).unwrap();
        let web1 = &built.hosts[0];
        assert_eq!(web1.name, "web1");
        // `web` is deeper than `late`, so it wins though defined first; `prod` and `late`
        // are both at the top: the later definition wins.
        assert_eq!(
            Value::Object(web1.vars.clone()),
            json!({"level": "web", "a": 0, "p": 1, "shared": "late", "l": 1})
        );
        let db1 = &built.hosts[1];
        assert_eq!(
            Value::Object(db1.vars.clone()),
            json!({"level": "db1", "a": 0, "p": 1, "shared": "prod"})
        );
    }

    #[test]
    fn a_child_group_beats_a_parent_defined_after_it() {
        let mut m = Model::new(Style::Toyc);
        m.add_member("child", "h");
        m.group_mut("child").layer = layer(json!({"x": "child"}));
        m.group_mut("parent").layer = layer(json!({"x": "parent"}));
        m.add_child("parent", "child", At::Line(1, 1));
        let built = build(&m).unwrap();
        assert_eq!(built.hosts[0].vars["x"], json!("child"));
        assert_eq!(built.hosts[0].groups, ["child", "parent"]);
    }

    #[test]
    fn groups_list_all_members_through_children_in_inventory_order() {
        let built = build(&sample(Style::Toyc)).unwrap();
        let summary: Vec<(&str, Vec<String>, Vec<String>)> = built
            .groups
            .iter()
            .map(|g| (g.name.as_str(), g.hosts.clone(), g.children.clone()))
            .collect();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            summary,
            vec![
                ("all", s(&["web1", "db1"]), s(&["prod", "late"])),
                ("prod", s(&["web1", "db1"]), s(&["web", "db"])),
                ("web", s(&["web1"]), s(&[])),
                ("db", s(&["db1"]), s(&[])),
                ("late", s(&["web1"]), s(&[])),
            ]
        );
        assert_eq!(built.groups[0].vars["level"], json!("all"));
        assert_eq!(
            Value::Object(built.groups[2].vars.clone()),
            json!({"level": "web"})
        );
        assert_eq!(built.hosts[0].groups, ["prod", "web", "late"]);
    }

    #[test]
    fn toyc_settings_merge_field_by_field() {
        let mut m = Model::new(Style::Toyc);
        m.base.ssh.user = Some("deploy".into());
        m.base.ssh.port = Some(22);
        m.base.sudo = Some(false);
        m.add_member("web", "web1");
        m.group_mut("web").layer.sudo = Some(true);
        m.group_mut("web").layer.ssh.port = Some(2200);
        m.host_mut("web1").layer.ssh.port = Some(2222);
        m.host_mut("web1").layer.address = Some("10.0.0.1".into());
        m.host_mut("db1");
        let built = build(&m).unwrap();
        let web1 = &built.hosts[0];
        assert_eq!(web1.address, "10.0.0.1");
        assert_eq!(web1.ssh.user.as_deref(), Some("deploy"));
        assert_eq!(web1.ssh.port, Some(2222));
        assert!(web1.sudo);
        assert_eq!(web1.transport, TransportKind::Ssh);
        let db1 = &built.hosts[1];
        assert_eq!(
            (db1.address.as_str(), db1.ssh.port, db1.sudo),
            ("db1", Some(22), false)
        );
    }

    #[test]
    fn ansible_connection_variables_follow_variable_precedence() {
        let mut m = Model::new(Style::Ansible);
        m.base = layer(json!({"ansible_user": "all", "ansible_become": true}));
        m.add_member("web", "web1");
        m.group_mut("web").layer = layer(json!({"ansible_user": "web", "ansible_port": 2200}));
        m.host_mut("web1").layer =
            layer(json!({"ansible_host": "10.1.1.1", "ansible_become": "no"}));
        let built = build(&m).unwrap();
        let web1 = &built.hosts[0];
        assert_eq!(web1.address, "10.1.1.1");
        assert_eq!(web1.ssh.user.as_deref(), Some("web"));
        assert_eq!(web1.ssh.port, Some(2200));
        assert!(!web1.sudo);
        // The variables stay visible.
        assert_eq!(web1.vars["ansible_user"], json!("web"));
    }

    #[test]
    fn localhost_is_local_unless_given_an_address_or_transport() {
        let mut m = Model::new(Style::Ansible);
        m.host_mut("localhost");
        let built = build(&m).unwrap();
        assert_eq!(built.hosts[0].transport, TransportKind::Local);
        m.host_mut("localhost").layer = layer(json!({"ansible_host": "127.0.0.1"}));
        assert_eq!(build(&m).unwrap().hosts[0].transport, TransportKind::Ssh);
        m.host_mut("localhost").layer = layer(json!({"ansible_connection": "ssh"}));
        assert_eq!(build(&m).unwrap().hosts[0].transport, TransportKind::Ssh);
    }

    #[test]
    fn the_implicit_localhost_gets_inventory_wide_variables_only() {
        let mut m = Model::new(Style::Toyc);
        m.base = layer(json!({"app": 1}));
        m.base.sudo = Some(true);
        let local = build(&m).unwrap().implicit_localhost;
        assert_eq!(local.transport, TransportKind::Local);
        assert_eq!(local.vars["app"], json!(1));
        assert!(!local.sudo);
    }

    #[test]
    fn unknown_children_are_errors_at_the_entry() {
        let mut m = Model::new(Style::Toyc);
        m.group_mut("web");
        m.add_child("prod", "wbe", At::Line(4, 3));
        assert_eq!(
            build(&m).unwrap_err(),
            Issue::new(
                At::Line(4, 3),
                "unknown group `wbe` in the children of group `prod` \
                 (define it, or fix the name); did you mean `web`?"
            )
        );
    }

    #[test]
    fn all_cannot_be_a_child() {
        let mut m = Model::new(Style::Toyc);
        m.add_child("prod", "all", At::Line(1, 2));
        assert_eq!(
            build(&m).unwrap_err().message,
            "group `all` cannot be a child of group `prod`: it already contains every group"
        );
    }

    #[test]
    fn cycles_are_named_in_full() {
        let mut m = Model::new(Style::Toyc);
        m.add_child("a", "b", At::Line(1, 1));
        m.add_child("b", "c", At::Line(2, 1));
        m.add_child("c", "a", At::Line(3, 1));
        assert_eq!(
            build(&m).unwrap_err(),
            Issue::new(
                At::Line(3, 1),
                "cycle in group children: `a` -> `b` -> `c` -> `a` \
                 (remove one of these `children` entries)"
            )
        );
        let mut own = Model::new(Style::Toyc);
        own.add_child("a", "a", At::Line(9, 1));
        assert_eq!(
            build(&own).unwrap_err().message,
            "cycle in group children: `a` -> `a` (remove one of these `children` entries)"
        );
    }
}
