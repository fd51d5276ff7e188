//! A deploy config: YAML with `platform` (required), `hostgroup: {NAME: [hosts]}`,
//! `service: {NAME: {hosts: [groups], port: N, ...}}` and any other keys, read strictly
//! where toyc gives the keys a meaning and passed through as they are elsewhere. It is
//! also an inventory source: the hosts its host groups name (see [`DeployConfig::hosts`]).
//!
//! Errors name `file:line:column` like every inventory error.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value as Json};
use serde_yaml::Value;

use super::model::Issue;
use super::yaml_path::YamlPath;
use super::yaml_read::{self, entries, mapping, name, sequence};
use super::{Host, Inventory, InventoryError, SshParams, TransportKind};

/// A deploy config as the generator sees it (`config`), with its host groups and
/// services checked.
#[derive(Debug, Clone, PartialEq)]
pub struct DeployConfig {
    /// The file it was read from.
    pub path: PathBuf,
    /// Every key of the file, as JSON, with `--set` and `--component` applied.
    pub value: Map<String, Json>,
    /// `hostgroup`: group name → host names, in file order.
    pub hostgroups: Vec<(String, Vec<String>)>,
    /// `service`: service name → the host groups it runs on, in file order.
    pub services: Vec<(String, Vec<String>)>,
}

impl DeployConfig {
    /// Read and check the config at `path`.
    pub fn load(path: &Path) -> Result<DeployConfig, InventoryError> {
        let text = std::fs::read_to_string(path).map_err(|source| InventoryError::Read {
            path: path.to_owned(),
            source,
        })?;
        DeployConfig::parse(&text, path)
    }

    /// Check `text` as a deploy config; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<DeployConfig, InventoryError> {
        let fail = |issue: Issue| issue.into_error(text, origin);
        let doc = yaml_read::parse(text).map_err(|e| {
            let (line, column) = e.location().map_or((1, 1), |at| (at.line(), at.column()));
            InventoryError::Parse {
                path: origin.to_owned(),
                line,
                column,
                message: yaml_read::syntax_message(&e, text),
            }
        })?;
        let root = YamlPath::root();
        let Some(top) = mapping(&doc, &root, "a deploy config").map_err(fail)? else {
            return Err(fail(Issue::yaml(
                root,
                "the deploy config is empty; it needs at least `platform: NAME`",
            )));
        };
        let mut platform = None;
        let mut hostgroups = Vec::new();
        let mut services = Vec::new();
        for (key, value) in entries(top) {
            let at = root.value(&key);
            match key.as_str() {
                "platform" => platform = Some(name(value, &at, "`platform`").map_err(fail)?),
                "hostgroup" => {
                    for (group, hosts) in mapping(value, &at, "`hostgroup`")
                        .map_err(fail)?
                        .into_iter()
                        .flat_map(entries)
                    {
                        let at = at.value(&group);
                        let what = format!("host group `{group}`");
                        let names = sequence(hosts, &at, &what)
                            .map_err(fail)?
                            .iter()
                            .enumerate()
                            .map(|(i, h)| name(h, &at.index(i), &format!("a host of {what}")))
                            .collect::<Result<Vec<_>, _>>()
                            .map_err(fail)?;
                        hostgroups.push((group, names));
                    }
                }
                "service" => {
                    for (service, spec) in mapping(value, &at, "`service`")
                        .map_err(fail)?
                        .into_iter()
                        .flat_map(entries)
                    {
                        let at = at.value(&service);
                        services.push((
                            service.clone(),
                            service_groups(&service, spec, &at).map_err(fail)?,
                        ));
                    }
                }
                _ => {}
            }
        }
        if platform.is_none() {
            return Err(fail(Issue::yaml(
                root,
                "the deploy config has no `platform`; add `platform: NAME` (it chooses `generators/NAME.rhai`)",
            )));
        }
        // Services may name only groups the file defines: a typo would deploy nowhere.
        let known: Vec<&str> = hostgroups.iter().map(|(g, _)| g.as_str()).collect();
        for (service, groups) in &services {
            let at = root.value("service").value(service).value("hosts");
            for (i, group) in groups.iter().enumerate() {
                if !known.contains(&group.as_str()) {
                    let hint = super::suggest::did_you_mean(group, known.iter().copied());
                    return Err(fail(Issue::yaml(
                        at.index(i),
                        format!(
                            "service `{service}` runs on host group `{group}`, which `hostgroup` does not define{hint}"
                        ),
                    )));
                }
            }
        }
        let value = match yaml_read::to_json(&doc) {
            Json::Object(map) => map,
            _ => Map::new(),
        };
        return Ok(DeployConfig {
            path: origin.to_owned(),
            value,
            hostgroups,
            services,
        });

        /// The `hosts` of a service: a list of group names.
        fn service_groups(
            service: &str,
            spec: &Value,
            at: &YamlPath,
        ) -> Result<Vec<String>, Issue> {
            let what = format!("service `{service}`");
            let Some(spec) = mapping(spec, at, &what)? else {
                return Ok(Vec::new());
            };
            let mut groups = Vec::new();
            for (key, value) in entries(spec) {
                match key.as_str() {
                    "hosts" => {
                        let at = at.value("hosts");
                        for (i, g) in sequence(value, &at, &format!("`hosts` of {what}"))?
                            .iter()
                            .enumerate()
                        {
                            groups.push(name(g, &at.index(i), "a host group")?);
                        }
                    }
                    "port" => {
                        let ok = value.as_u64().is_some_and(|p| (1..=65535).contains(&p));
                        if !ok {
                            return Err(Issue::yaml(
                                at.value("port"),
                                format!(
                                    "`port` of {what} must be a number from 1 to 65535, not {}",
                                    yaml_read::describe(value)
                                ),
                            ));
                        }
                    }
                    _ => {}
                }
            }
            Ok(groups)
        }
    }

    /// The platform, which chooses `generators/PLATFORM.rhai`.
    pub fn platform(&self) -> &str {
        self.value
            .get("platform")
            .and_then(Json::as_str)
            .unwrap_or_default()
    }

    /// Set `key` (dotted for nested maps: `graphite.port`) to `value`, as `--set` does.
    pub fn set(&mut self, key: &str, value: Json) {
        let mut parts: Vec<&str> = key.split('.').collect();
        let last = parts.pop().unwrap_or(key);
        let mut map = &mut self.value;
        for part in parts {
            let entry = map
                .entry(part.to_owned())
                .or_insert_with(|| Json::Object(Map::new()));
            if !entry.is_object() {
                *entry = Json::Object(Map::new());
            }
            let Json::Object(inner) = entry else {
                unreachable!("made an object just above");
            };
            map = inner;
        }
        map.insert(last.to_owned(), value);
    }

    /// The hosts of `service`, through its host groups, each once, in file order.
    pub fn service_hosts(&self, service: &str) -> Vec<String> {
        let mut hosts: Vec<String> = Vec::new();
        let groups = self
            .services
            .iter()
            .filter(|(s, _)| s == service)
            .flat_map(|(_, groups)| groups);
        for group in groups {
            for (_, members) in self.hostgroups.iter().filter(|(g, _)| g == group) {
                for host in members {
                    if !hosts.contains(host) {
                        hosts.push(host.clone());
                    }
                }
            }
        }
        hosts
    }

    /// Every host the host groups name, each once, in file order, with the group names
    /// added to its groups. A host the inventory knows takes its address, SSH settings
    /// and vars from there; any other host's name is its address.
    pub fn hosts(&self, inventory: Option<&Inventory>) -> Vec<Host> {
        let mut hosts: Vec<Host> = Vec::new();
        for (group, members) in &self.hostgroups {
            for member in members {
                match hosts.iter_mut().find(|h| &h.name == member) {
                    Some(host) => host.groups.push(group.clone()),
                    None => {
                        let mut host = host_named(member, inventory);
                        host.groups.push(group.clone());
                        hosts.push(host);
                    }
                }
            }
        }
        hosts
    }
}

/// The host called `name`: from `inventory` when it has it, else reached at `name` over
/// SSH with the user's ssh config (`localhost` runs locally).
pub fn host_named(name: &str, inventory: Option<&Inventory>) -> Host {
    if let Some(host) = inventory.and_then(|i| i.host(name)) {
        return host.clone();
    }
    if name == "localhost" {
        return Host::localhost();
    }
    Host {
        name: name.to_owned(),
        address: name.to_owned(),
        transport: TransportKind::Ssh,
        ssh: SshParams::default(),
        sudo: false,
        groups: Vec::new(),
        vars: Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<DeployConfig, String> {
        DeployConfig::parse(text, Path::new("deploy.yml")).map_err(|e| e.to_string())
    }

    #[test]
    fn groups_services_and_other_keys_are_read() {
        let config = parse(
            "platform: python\nhostgroup:\n  front: [a, b]\n  back: [b, c]\nservice:\n  web: {hosts: [front, back], port: 8080}\nroot: /srv\n",
        )
        .expect("valid");
        assert_eq!(config.platform(), "python");
        assert_eq!(config.service_hosts("web"), ["a", "b", "c"]);
        assert_eq!(config.value["root"], "/srv");
        let hosts = config.hosts(None);
        assert_eq!(hosts.len(), 3);
        assert_eq!(hosts[1].groups, ["front", "back"]);
        assert_eq!(hosts[2].address, "c");
    }

    #[test]
    fn a_missing_platform_and_an_unknown_group_name_file_and_line() {
        let err = parse("hostgroup:\n  front: [a]\n").expect_err("no platform");
        assert!(err.starts_with("deploy.yml:1:1: "), "{err}");
        assert!(err.contains("no `platform`"), "{err}");
        let err = parse(
            "platform: p\nhostgroup:\n  front: [a]\nservice:\n  web:\n    hosts: [front, fornt]\n",
        )
        .expect_err("unknown group");
        assert!(err.starts_with("deploy.yml:6:"), "{err}");
        assert!(err.contains("`fornt`") && err.contains("`front`"), "{err}");
        let err = parse("platform: p\nhostgroup: [\n").expect_err("bad yaml");
        assert!(err.starts_with("deploy.yml:"), "{err}");
        assert!(err.contains("invalid YAML"), "{err}");
    }

    #[test]
    fn set_reaches_into_nested_maps() {
        let mut config = parse("platform: p\ngraphite: {host: a}\n").expect("valid");
        config.set("graphite.port", Json::from(2003));
        config.set("release.channel", Json::from("beta"));
        assert_eq!(config.value["graphite"]["host"], "a");
        assert_eq!(config.value["graphite"]["port"], 2003);
        assert_eq!(config.value["release"]["channel"], "beta");
    }
}
