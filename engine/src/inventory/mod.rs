//! Hosts, groups and their variables: read from toyc's YAML, or Ansible's YAML and INI
//! inventories, and narrowed with `--limit` patterns.
//!
//! Each format has a reader (`toyc_yaml`, `ansible_yaml`, `ansible_ini`) that fills in the
//! same `model` of hosts and groups as written; `build` then resolves group membership
//! and merges settings by precedence, and `limit` selects hosts. Errors name
//! `file:line:column`: INI readers count lines, YAML errors are placed by `yaml_path`.

mod ansible_ini;
mod ansible_vars;
mod ansible_yaml;
mod build;
pub mod deploy_config;
mod detect;
mod host_pattern;
mod limit;
mod model;
mod py_literal;
mod shlex;
mod suggest;
mod tilde;
mod toyc_yaml;
mod yaml_path;
mod yaml_read;

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// How toyc reaches a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransportKind {
    /// Commands run as local processes (`localhost`, `ansible_connection=local`).
    Local,
    /// Commands run over an OpenSSH connection.
    Ssh,
}

/// SSH connection settings of one host; `None` leaves the choice to the user's ssh config.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SshParams {
    /// Remote user (`ssh -l`).
    pub user: Option<String>,
    /// Remote port (`ssh -p`).
    pub port: Option<u16>,
    /// Private key file (`ssh -i`, with `IdentitiesOnly=yes`).
    pub identity: Option<PathBuf>,
    /// A known_hosts file to check host keys against, instead of `~/.ssh/known_hosts`.
    pub known_hosts: Option<PathBuf>,
}

/// One machine toyc can act on.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Host {
    /// The inventory name, used in output and `--limit`.
    pub name: String,
    /// What to connect to: a DNS name or an IP address (the name when none is given).
    pub address: String,
    /// Local process or SSH.
    pub transport: TransportKind,
    /// SSH settings (ignored for the local transport).
    pub ssh: SshParams,
    /// Run commands through `sudo -n` by default (Ansible's `ansible_become`).
    pub sudo: bool,
    /// Every group the host belongs to, directly or through `children`, in definition order.
    /// `all` is left out (every host is in it); Ansible's `ungrouped` is listed.
    pub groups: Vec<String>,
    /// Variables merged with the lowest precedence first: inventory-wide < group < host.
    pub vars: Map<String, Value>,
}

impl Host {
    /// The implicit `localhost`: local transport, no variables.
    pub fn localhost() -> Host {
        Host {
            name: "localhost".into(),
            address: "localhost".into(),
            transport: TransportKind::Local,
            ssh: SshParams::default(),
            sudo: false,
            groups: Vec::new(),
            vars: Map::new(),
        }
    }
}

/// A named set of hosts, as the inventory defines it.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// The group's name (`all` holds every host).
    pub name: String,
    /// Every member host, directly or through `children`, in inventory order.
    pub hosts: Vec<String>,
    /// The groups listed as its children, in the order written.
    pub children: Vec<String>,
    /// The group's own variables (not merged with its parents').
    pub vars: Map<String, Value>,
}

/// All hosts and groups of one inventory, in the order they were defined.
#[derive(Debug, Clone)]
pub struct Inventory {
    hosts: Vec<Host>,
    groups: Vec<Group>,
    /// `localhost` when the inventory does not define it: selectable by name, not in `all`.
    implicit_localhost: Host,
}

impl Default for Inventory {
    /// An inventory without hosts (the implicit `localhost` can still be selected).
    fn default() -> Inventory {
        Inventory {
            hosts: Vec::new(),
            groups: vec![Group {
                name: "all".into(),
                hosts: Vec::new(),
                children: Vec::new(),
                vars: Map::new(),
            }],
            implicit_localhost: Host::localhost(),
        }
    }
}

/// Why an inventory could not be read or a limit could not be applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InventoryError {
    /// The inventory file could not be read.
    #[error("unable to read inventory `{path}`")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The limit pattern selects nothing or names something unknown.
    #[error("{0}")]
    Limit(String),
    /// The inventory file is malformed; the message says what is wrong and what to do.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The 1-based line.
        line: usize,
        /// The 1-based column.
        column: usize,
        /// What is wrong, lower-case, names in backticks.
        message: String,
    },
}

impl Inventory {
    /// An inventory holding only the implicit `localhost`.
    pub fn localhost_only() -> Inventory {
        let mut inventory = Inventory {
            hosts: vec![Host::localhost()],
            ..Inventory::default()
        };
        inventory.groups[0].hosts = vec!["localhost".into()];
        inventory
    }

    /// Reads an inventory file, detecting its format (see [`Inventory::parse`]).
    pub fn load(path: &Path) -> Result<Inventory, InventoryError> {
        let text = std::fs::read_to_string(path).map_err(|source| InventoryError::Read {
            path: path.to_owned(),
            source,
        })?;
        Inventory::parse(&text, path)
    }

    /// Reads an inventory from `text`, detecting its format: YAML with a top-level `all` is
    /// Ansible YAML, other YAML mappings are toyc YAML, anything else (or a `.ini`/`.cfg`
    /// file, or one with `[section]` lines) is Ansible INI. `origin` names the file in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Inventory, InventoryError> {
        // Editors on Windows may start the file with a byte order mark.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let model = match detect::detect(text, origin)? {
            detect::Format::ToycYaml(doc) => toyc_yaml::read(&doc),
            detect::Format::AnsibleYaml(doc) => ansible_yaml::read(&doc, text),
            detect::Format::AnsibleIni => ansible_ini::read(text),
        }
        .map_err(|issue| issue.into_error(text, origin))?;
        let built = build::build(&model).map_err(|issue| issue.into_error(text, origin))?;
        Ok(Inventory {
            hosts: built.hosts,
            groups: built.groups,
            implicit_localhost: built.implicit_localhost,
        })
    }

    /// The hosts a limit pattern selects, in inventory order; every host when `None`.
    ///
    /// A limit is terms separated by `,` or `:`: host or group names (`all` is every host),
    /// globs (`web*`, `h[1-3]`), `~regex`, `!term` to exclude and `&term` to intersect.
    /// `localhost` can always be named, even when the inventory does not define it.
    ///
    /// Fails with [`InventoryError::Limit`] when a name matches no host or group (listing
    /// close matches), a glob or regex matches nothing, or nothing is left selected.
    pub fn select(&self, limit: Option<&str>) -> Result<Vec<&Host>, InventoryError> {
        match limit {
            None => Ok(self.hosts.iter().collect()),
            Some(limit) => limit::select(self, limit),
        }
    }

    /// Every host, in inventory order (without the implicit `localhost`).
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// The host named `name`; `localhost` is there even when the inventory does not define it.
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .or_else(|| (name == "localhost").then_some(&self.implicit_localhost))
    }

    /// Every group: `all` first, then in definition order.
    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    /// The group named `name`.
    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == name)
    }
}

#[cfg(test)]
mod tests;
