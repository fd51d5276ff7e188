//! A role's attributes: its own layers (`runbook.yml`'s `attributes`, then
//! `attributes.yml`) under a host's inventory vars, under the inventory's overrides for
//! that role, under `--var`. [`Attributes::layered_for`] is what a host's script sees;
//! [`Attributes::explain`] says where each value came from (`toyc role --show-attributes`).
//!
//! A role override is an inventory var `roles` mapping role names to attributes, at the
//! inventory, group or host level: `vars: {roles: {web: {port: 8080}}}` applies
//! `port: 8080` only when role `web` runs, whatever the group's plain vars say (group
//! vars apply to every role run on the group's hosts, as in Ansible). Levels layer as
//! vars do: inventory-wide, then groups in definition order, then the host's own.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

use super::RoleError;
use crate::inventory::{Host, Inventory};

/// The role's own attribute layers, lowest first, each with the file it came from.
#[derive(Debug, Default, Clone)]
pub struct Attributes {
    layers: Vec<(&'static str, Map<String, Value>)>,
}

/// Where an attribute's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A file of the role (`runbook.yml`, `attributes.yml`).
    Role(&'static str),
    /// The inventory-wide vars (group `all`).
    InventoryVars,
    /// An inventory group's vars.
    Group(String),
    /// The host's own vars.
    Host(String),
    /// A role override: `roles.ROLE` in the vars of the inventory, a group or a host.
    Override {
        /// The role it applies to.
        role: String,
        /// The level whose vars hold it.
        level: Box<Origin>,
    },
    /// `--var`, `--vars-file` or `--secrets-file`.
    CommandLine,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Role(file) => f.write_str(file),
            Origin::InventoryVars => f.write_str("inventory vars"),
            Origin::Group(name) => write!(f, "group {name}"),
            Origin::Host(name) => write!(f, "host {name}"),
            Origin::Override { role, level } => write!(f, "roles.{role} of {level}"),
            Origin::CommandLine => f.write_str("--var/--vars-file"),
        }
    }
}

/// One merged attribute and the layer its value came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    /// The attribute's name.
    pub name: String,
    /// Its value after layering.
    pub value: Value,
    /// The layer that value came from.
    pub origin: Origin,
}

impl Attributes {
    /// Add a layer over the ones before it.
    pub fn push(&mut self, origin: &'static str, layer: Map<String, Value>) {
        self.layers.push((origin, layer));
    }

    /// Add the YAML map `text` (of role `role`'s file `origin`) as a layer; an empty file
    /// adds nothing.
    pub fn push_yaml(
        &mut self,
        origin: &'static str,
        text: &str,
        role: &str,
    ) -> Result<(), RoleError> {
        let error = |message: String| RoleError::Attributes {
            role: role.to_owned(),
            message,
        };
        // YAML 1.1, as Ansible reads a role's defaults and vars (`on` is true).
        match crate::yaml11::from_str(text).map_err(|e| error(e.to_string()))? {
            Value::Object(map) => self.push(origin, map),
            Value::Null => {}
            _ => return Err(error("it must hold a map of names to values".to_owned())),
        }
        Ok(())
    }

    /// The role's attributes with `inventory` (a host's merged inventory vars) over them.
    pub fn layered(&self, inventory: &Map<String, Value>) -> Map<String, Value> {
        let mut vars = Map::new();
        for (_, layer) in &self.layers {
            vars.extend(layer.clone());
        }
        vars.extend(inventory.clone());
        vars
    }

    /// What `host` sees when role `role` runs: [`Attributes::layered`], with the
    /// inventory's overrides for `role` on top.
    pub fn layered_for(
        &self,
        inventory: &Inventory,
        host: &Host,
        role: &str,
    ) -> Map<String, Value> {
        let mut vars = self.layered(&host.vars);
        for (_, layer) in role_overrides(inventory, host, role) {
            vars.extend(layer);
        }
        vars
    }

    /// Every attribute `host` would see when role `role` runs, by name, with `extra`
    /// (`--var` and friends) on top, each with the layer its value came from.
    pub fn explain(
        &self,
        inventory: &Inventory,
        host: &Host,
        role: &str,
        extra: &Map<String, Value>,
    ) -> Vec<Attribute> {
        let mut merged: BTreeMap<String, (Value, Origin)> = BTreeMap::new();
        for (origin, layer) in &self.layers {
            for (key, value) in layer {
                merged.insert(key.clone(), (value.clone(), Origin::Role(origin)));
            }
        }
        for (key, value) in &host.vars {
            merged.insert(
                key.clone(),
                (value.clone(), inventory_origin(inventory, host, key)),
            );
        }
        for (level, layer) in role_overrides(inventory, host, role) {
            for (key, value) in layer {
                let origin = Origin::Override {
                    role: role.to_owned(),
                    level: Box::new(level.clone()),
                };
                merged.insert(key, (value, origin));
            }
        }
        for (key, value) in extra {
            merged.insert(key.clone(), (value.clone(), Origin::CommandLine));
        }
        merged
            .into_iter()
            .map(|(name, (value, origin))| Attribute {
                name,
                value,
                origin,
            })
            .collect()
    }
}

/// The inventory's overrides for role `role` that apply to `host`, lowest first: the
/// inventory-wide vars', its groups' (in definition order), then the host's own. Vars
/// merge shallowly, so the host's `roles` is its own when it differs from the last
/// group's that has one.
fn role_overrides(
    inventory: &Inventory,
    host: &Host,
    role: &str,
) -> Vec<(Origin, Map<String, Value>)> {
    let of_role = |roles: Option<&Value>| {
        roles
            .and_then(|r| r.get(role))
            .and_then(Value::as_object)
            .cloned()
    };
    let mut levels = Vec::new();
    let mut last_group_roles = None;
    for group in inventory.groups() {
        let member = group.name == "all" || host.groups.contains(&group.name);
        let Some(roles) = group.vars.get("roles").filter(|_| member) else {
            continue;
        };
        last_group_roles = Some(roles);
        if let Some(layer) = of_role(Some(roles)) {
            let origin = if group.name == "all" {
                Origin::InventoryVars
            } else {
                Origin::Group(group.name.clone())
            };
            levels.push((origin, layer));
        }
    }
    let own = host.vars.get("roles");
    if own.is_some() && own != last_group_roles {
        if let Some(layer) = of_role(own) {
            levels.push((Origin::Host(host.name.clone()), layer));
        }
    }
    levels
}

/// Which inventory layer gave `host` its value of `key`: the host's own, else the last of
/// the inventory-wide vars and its groups (in definition order) holding that same value.
fn inventory_origin(inventory: &Inventory, host: &Host, key: &str) -> Origin {
    let value = host.vars.get(key);
    let mut origin = Origin::Host(host.name.clone());
    for group in inventory.groups() {
        let member = group.name == "all" || host.groups.contains(&group.name);
        if member && group.vars.get(key) == value {
            origin = if group.name == "all" {
                Origin::InventoryVars
            } else {
                Origin::Group(group.name.clone())
            };
        }
    }
    origin
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn role_attributes() -> Attributes {
        let mut attributes = Attributes::default();
        attributes
            .push_yaml("runbook.yml", "{port: 80, name: yml}", "web")
            .expect("yaml");
        attributes
            .push_yaml("attributes.yml", "port: 8080\nroot: /srv\n", "web")
            .expect("yaml");
        attributes
    }

    #[test]
    fn inventory_vars_win_over_the_role_and_later_role_files_over_earlier() {
        let mut inventory = Map::new();
        inventory.insert("root".into(), Value::from("/var/www"));
        let vars = role_attributes().layered(&inventory);
        assert_eq!(vars["port"], 8080);
        assert_eq!(vars["name"], "yml");
        assert_eq!(vars["root"], "/var/www");
    }

    #[test]
    fn each_value_names_the_layer_it_came_from() {
        let inventory = Inventory::parse(
            "vars: {tz: UTC}\nhosts:\n  h1: {address: 10.0.0.1, vars: {name: h1}}\n  h2: {address: 10.0.0.2}\ngroups:\n  web: {hosts: [h1], vars: {port: 9000}}\n",
            Path::new("inv.yml"),
        )
        .expect("inventory");
        let host = inventory.host("h1").expect("h1");
        let mut extra = Map::new();
        extra.insert("root".into(), Value::from("/tmp"));
        let shown = role_attributes().explain(&inventory, host, "web", &extra);
        let origin = |name: &str| {
            shown
                .iter()
                .find(|a| a.name == name)
                .map(|a| a.origin.to_string())
                .unwrap_or_default()
        };
        assert_eq!(origin("port"), "group web");
        assert_eq!(origin("name"), "host h1");
        assert_eq!(origin("tz"), "inventory vars");
        assert_eq!(origin("root"), "--var/--vars-file");
        let names: Vec<&str> = shown.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["name", "port", "root", "tz"]);
    }

    #[test]
    fn role_overrides_apply_to_their_role_only_and_name_their_level() {
        let inventory = Inventory::parse(
            "vars: {roles: {web: {tz: Europe/Paris}}}\nhosts:\n  h1: {address: 10.0.0.1, vars: {roles: {web: {name: own}}}}\n  h2: {address: 10.0.0.2}\ngroups:\n  web: {hosts: [h1, h2], vars: {port: 9000, roles: {web: {port: 8080}, db: {port: 5432}}}}\n",
            Path::new("inv.yml"),
        )
        .expect("inventory");
        let (h1, h2) = (
            inventory.host("h1").expect("h1"),
            inventory.host("h2").expect("h2"),
        );
        let attributes = role_attributes();
        let web = attributes.layered_for(&inventory, h2, "web");
        assert_eq!(web["port"], 8080);
        assert_eq!(web["tz"], "Europe/Paris");
        let db = attributes.layered_for(&inventory, h2, "db");
        assert_eq!(db["port"], 5432);
        let other = attributes.layered_for(&inventory, h2, "cache");
        assert_eq!(other["port"], 9000, "no override: the group's vars");
        let h1_web = attributes.layered_for(&inventory, h1, "web");
        assert_eq!(h1_web["name"], "own");
        assert_eq!(h1_web["port"], 8080);
        let shown = attributes.explain(&inventory, h1, "web", &Map::new());
        let origin = |name: &str| {
            shown
                .iter()
                .find(|a| a.name == name)
                .map(|a| a.origin.to_string())
                .unwrap_or_default()
        };
        assert_eq!(origin("port"), "roles.web of group web");
        assert_eq!(origin("tz"), "roles.web of inventory vars");
        assert_eq!(origin("name"), "roles.web of host h1");
    }

    #[test]
    fn attributes_yml_must_be_a_map() {
        let err = Attributes::default()
            .push_yaml("attributes.yml", "[1, 2]", "web")
            .expect_err("a list");
        assert!(
            err.to_string().starts_with("role `web`: attributes.yml: "),
            "{err}"
        );
        Attributes::default()
            .push_yaml("attributes.yml", "", "web")
            .expect("empty is fine");
    }
}
