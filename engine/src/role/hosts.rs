//! Which hosts a role runs on: this machine (`--local`); else the role's entry in a hosts
//! file or the inventory group named after it, narrowed by a limit; else what the limit
//! selects.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::inventory::{Host, Inventory, InventoryError, TransportKind};

/// How the caller asked to choose the hosts.
#[derive(Debug, Default, Clone)]
pub struct HostChoice<'a> {
    /// This machine only, through the local transport (pull mode).
    pub local: bool,
    /// A YAML file mapping roles to host names (`web: [web1, web2]`).
    pub hosts_file: Option<&'a Path>,
    /// A limit pattern (`-l`).
    pub limit: Option<&'a str>,
    /// The inventory file the inventory came from; `None` when there is none (then a
    /// name in the hosts file is an ssh host of that address).
    pub inventory_file: Option<&'a Path>,
}

/// Why a role's hosts could not be chosen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostsError {
    /// The limit pattern is malformed or selects something unknown.
    #[error(transparent)]
    Limit(#[from] InventoryError),
    /// Nothing says which hosts the role is for.
    #[error("no hosts for role `{role}`: {} has no group `{role}`; add one, map the role to hosts with `--hosts-file`, select hosts with `-l`, or apply it here with `--local`", inventory.as_ref().map_or("without `-i`, the inventory".to_owned(), |p| format!("the inventory `{}`", p.display())))]
    Unmapped {
        /// The role.
        role: String,
        /// The inventory file, if one was given.
        inventory: Option<PathBuf>,
    },
    /// The limit left none of the role's hosts.
    #[error("no hosts for role `{role}` are left after `-l {limit}`")]
    LimitedAway {
        /// The role.
        role: String,
        /// The limit.
        limit: String,
    },
    /// The role's host list is empty.
    #[error("role `{role}` has no hosts: its list is empty")]
    Empty {
        /// The role.
        role: String,
    },
    /// The hosts file could not be read.
    #[error("unable to read hosts file `{}`", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The hosts file is not a map of roles to host lists.
    #[error("hosts file `{}`: {message}; it maps roles to host lists, like `web: [web1, web2]`", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The hosts file has no entry for the role.
    #[error("hosts file `{}` has no entry for role `{role}` (it has: {})", path.display(), roles.join(", "))]
    NoEntry {
        /// The file.
        path: PathBuf,
        /// The role.
        role: String,
        /// The roles it has.
        roles: Vec<String>,
    },
    /// The hosts file names a host the inventory does not define.
    #[error("host `{host}`, listed for role `{role}` in `{}`, is not in the inventory", path.display())]
    UnknownHost {
        /// The file.
        path: PathBuf,
        /// The role.
        role: String,
        /// The host.
        host: String,
    },
}

/// The hosts role `role` runs on, as `choice` asks, in the order they are listed.
pub fn choose(
    role: &str,
    inventory: &Inventory,
    choice: &HostChoice<'_>,
) -> Result<Vec<Host>, HostsError> {
    if choice.local {
        let mut host = inventory
            .host("localhost")
            .cloned()
            .unwrap_or_else(Host::localhost);
        host.transport = TransportKind::Local;
        return Ok(vec![host]);
    }
    let listed: Option<Vec<Host>> = match choice.hosts_file {
        Some(file) => Some(hosts_file_entry(
            file,
            role,
            inventory,
            choice.inventory_file.is_some(),
        )?),
        None => inventory.group(role).map(|group| {
            group
                .hosts
                .iter()
                .filter_map(|name| inventory.host(name).cloned())
                .collect()
        }),
    };
    let hosts: Vec<Host> = match (listed, choice.limit) {
        (Some(listed), None) => listed,
        (Some(listed), Some(limit)) => {
            let selected = inventory.select(Some(limit))?;
            listed
                .into_iter()
                .filter(|h| selected.iter().any(|s| s.name == h.name))
                .collect()
        }
        (None, Some(limit)) => inventory
            .select(Some(limit))?
            .into_iter()
            .cloned()
            .collect(),
        (None, None) => {
            return Err(HostsError::Unmapped {
                role: role.to_owned(),
                inventory: choice.inventory_file.map(Path::to_owned),
            })
        }
    };
    if hosts.is_empty() {
        return Err(match choice.limit {
            Some(limit) => HostsError::LimitedAway {
                role: role.to_owned(),
                limit: limit.to_owned(),
            },
            None => HostsError::Empty {
                role: role.to_owned(),
            },
        });
    }
    Ok(hosts)
}

/// The hosts `file` (`role: [host, ...]`) lists for `role`, as the inventory defines them
/// (without an inventory, each name is an ssh host of that address).
fn hosts_file_entry(
    file: &Path,
    role: &str,
    inventory: &Inventory,
    have_inventory: bool,
) -> Result<Vec<Host>, HostsError> {
    let text = std::fs::read_to_string(file).map_err(|source| HostsError::Read {
        path: file.to_owned(),
        source,
    })?;
    let map: BTreeMap<String, Vec<String>> =
        serde_yaml::from_str(&text).map_err(|e| HostsError::Parse {
            path: file.to_owned(),
            message: e.to_string(),
        })?;
    let names = map.get(role).ok_or_else(|| HostsError::NoEntry {
        path: file.to_owned(),
        role: role.to_owned(),
        roles: map.keys().cloned().collect(),
    })?;
    names
        .iter()
        .map(|name| match inventory.host(name) {
            Some(host) => Ok(host.clone()),
            None if !have_inventory => Ok(Host {
                name: name.clone(),
                address: name.clone(),
                transport: TransportKind::Ssh,
                ..Host::localhost()
            }),
            None => Err(HostsError::UnknownHost {
                path: file.to_owned(),
                role: role.to_owned(),
                host: name.clone(),
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inventory() -> Inventory {
        Inventory::parse(
            "hosts:\n  w1: {address: 10.0.0.1}\n  w2: {address: 10.0.0.2}\n  d1: {address: 10.0.0.3}\ngroups:\n  web: {hosts: [w1, w2]}\n  db: {hosts: [d1]}\n",
            Path::new("inv.yml"),
        )
        .expect("inventory")
    }

    fn names(hosts: &[Host]) -> Vec<&str> {
        hosts.iter().map(|h| h.name.as_str()).collect()
    }

    #[test]
    fn the_group_named_after_the_role_narrowed_by_the_limit() {
        let inventory = inventory();
        let file = Some(Path::new("inv.yml"));
        let all = choose(
            "web",
            &inventory,
            &HostChoice {
                inventory_file: file,
                ..HostChoice::default()
            },
        )
        .expect("hosts");
        assert_eq!(names(&all), ["w1", "w2"]);
        let limited = HostChoice {
            limit: Some("w2,d1"),
            inventory_file: file,
            ..HostChoice::default()
        };
        assert_eq!(
            names(&choose("web", &inventory, &limited).expect("hosts")),
            ["w2"]
        );
        let away = HostChoice {
            limit: Some("d1"),
            inventory_file: file,
            ..HostChoice::default()
        };
        let err = choose("web", &inventory, &away).expect_err("none left");
        assert!(matches!(err, HostsError::LimitedAway { .. }), "{err}");
    }

    #[test]
    fn without_a_group_the_limit_chooses_else_nothing_does() {
        let inventory = inventory();
        let file = Some(Path::new("inv.yml"));
        let limited = HostChoice {
            limit: Some("d1"),
            inventory_file: file,
            ..HostChoice::default()
        };
        assert_eq!(
            names(&choose("cache", &inventory, &limited).expect("hosts")),
            ["d1"]
        );
        let err = choose(
            "cache",
            &inventory,
            &HostChoice {
                inventory_file: file,
                ..HostChoice::default()
            },
        )
        .expect_err("unmapped");
        assert!(
            err.to_string()
                .contains("the inventory `inv.yml` has no group `cache`"),
            "{err}"
        );
    }

    #[test]
    fn a_hosts_file_maps_roles_to_inventory_hosts_or_bare_addresses() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("roles.yml");
        std::fs::write(&file, "web: [d1, w1]\nmail: [mx.example.org]\n").expect("write");
        let inventory = inventory();
        let with_inventory = HostChoice {
            hosts_file: Some(&file),
            inventory_file: Some(Path::new("inv.yml")),
            ..HostChoice::default()
        };
        assert_eq!(
            names(&choose("web", &inventory, &with_inventory).expect("hosts")),
            ["d1", "w1"]
        );
        let err = choose("mail", &inventory, &with_inventory).expect_err("unknown host");
        assert!(matches!(err, HostsError::UnknownHost { .. }), "{err}");
        let bare = HostChoice {
            hosts_file: Some(&file),
            ..HostChoice::default()
        };
        let hosts = choose("mail", &Inventory::localhost_only(), &bare).expect("hosts");
        assert_eq!(hosts[0].address, "mx.example.org");
        assert_eq!(hosts[0].transport, TransportKind::Ssh);
        let err = choose("dns", &inventory, &with_inventory).expect_err("no entry");
        assert!(err.to_string().contains("(it has: mail, web)"), "{err}");
    }

    #[test]
    fn local_is_this_machine_through_the_local_transport() {
        let hosts = choose(
            "web",
            &inventory(),
            &HostChoice {
                local: true,
                ..HostChoice::default()
            },
        )
        .expect("hosts");
        assert_eq!(names(&hosts), ["localhost"]);
        assert_eq!(hosts[0].transport, TransportKind::Local);
    }
}
