//! Hosts, groups and their variables: read from toyc's YAML, or Ansible's YAML and INI
//! inventories, and narrowed with `--limit` patterns.
//!
//! PLACEHOLDER: the real implementation replaces this file (see the helper's brief).

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// How toyc reaches a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransportKind {
    /// Commands run as local processes (`localhost`, `ansible_connection=local`).
    Local,
    /// Commands run over an OpenSSH connection.
    Ssh,
}

/// SSH connection settings of one host; `None` leaves the choice to the user's ssh config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq)]
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

/// All hosts and groups of one inventory, in the order they were defined.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    hosts: Vec<Host>,
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
}

impl Inventory {
    /// An inventory holding only the implicit `localhost`.
    pub fn localhost_only() -> Inventory {
        Inventory {
            hosts: vec![Host::localhost()],
        }
    }

    /// Read an inventory file, detecting its format.
    pub fn load(path: &Path) -> Result<Inventory, InventoryError> {
        let _ = std::fs::read_to_string(path).map_err(|source| InventoryError::Read {
            path: path.to_owned(),
            source,
        })?;
        Ok(Inventory::localhost_only())
    }

    /// The hosts a limit pattern selects, in inventory order; every host when `None`.
    pub fn select(&self, limit: Option<&str>) -> Result<Vec<&Host>, InventoryError> {
        match limit {
            None => Ok(self.hosts.iter().collect()),
            Some(l) => Err(InventoryError::Limit(format!("unsupported limit `{l}`"))),
        }
    }
}
