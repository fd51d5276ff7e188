//! The run-wide magic variables of a host's template (`groups`, `hostvars`,
//! `ansible_play_hosts` and its aliases) as objects that read the run's hosts only when
//! a template looks into them. Built eagerly they cost every render time and memory in
//! proportion to the run's hosts, which made a run over N hosts quadratic in N (at 200
//! hosts most of a warm run's CPU in toyc itself, bench/README.md).

use std::sync::Arc;

use minijinja::value::{Enumerator, Object, ObjectRepr, Value};
use serde_json::Value as Json;
use toyc_engine::inventory::Host;

use super::to_jinja;

/// The hosts of a run as one host's template sees them.
#[derive(Debug, Clone)]
pub struct PlayVars(Arc<Play>);

#[derive(Debug)]
struct Play {
    /// This host, with its variables as the script sees them (`--var` and the rest).
    host: Host,
    /// The run's hosts; `host` alone when the run's list does not hold it.
    hosts: Arc<Vec<Host>>,
}

impl PlayVars {
    /// The play of `hosts` for `host`.
    pub fn new(host: &Host, hosts: &Arc<Vec<Host>>) -> PlayVars {
        let hosts = if hosts.iter().any(|h| h.name == host.name) {
            Arc::clone(hosts)
        } else {
            Arc::new(vec![host.clone()])
        };
        PlayVars(Arc::new(Play {
            host: host.clone(),
            hosts,
        }))
    }

    /// The variables, in Ansible's names: nothing is read from the hosts yet.
    pub(crate) fn values(&self) -> [(&'static str, Value); 6] {
        let names = || Value::from_object(HostNames(Arc::clone(&self.0)));
        [
            ("groups", Value::from_object(Groups(Arc::clone(&self.0)))),
            (
                "hostvars",
                Value::from_object(HostVars(Arc::clone(&self.0))),
            ),
            ("ansible_play_hosts", names()),
            ("ansible_play_hosts_all", names()),
            ("ansible_play_batch", names()),
            ("play_hosts", names()),
        ]
    }
}

/// The names of the run's hosts, in order.
#[derive(Debug)]
struct HostNames(Arc<Play>);

impl Object for HostNames {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let host = self.0.hosts.get(key.as_usize()?)?;
        Some(Value::from(host.name.as_str()))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Seq(self.0.hosts.len())
    }
}

/// Group name to its hosts' names: `all`, `ungrouped` (Ansible always has it, empty when
/// every host is in a group), then each group in the order the hosts name them.
#[derive(Debug)]
struct Groups(Arc<Play>);

impl Groups {
    fn names(&self) -> Vec<String> {
        let mut names = vec!["all".to_owned(), "ungrouped".to_owned()];
        for host in self.0.hosts.iter() {
            for group in &host.groups {
                if !names.contains(group) {
                    names.push(group.clone());
                }
            }
        }
        names
    }
}

impl Object for Groups {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let group = key.as_str()?;
        let hosts = self.0.hosts.iter();
        let members: Vec<Value> = match group {
            "all" => hosts.map(|h| Value::from(h.name.as_str())).collect(),
            "ungrouped" => Vec::new(),
            _ => hosts
                .filter(|h| h.groups.iter().any(|g| g == group))
                .map(|h| Value::from(h.name.as_str()))
                .collect(),
        };
        // A group no host is in is not there (`groups.nosuch` is undefined).
        (group == "ungrouped" || !members.is_empty()).then(|| Value::from(members))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.names().into_iter().map(Value::from).collect())
    }
}

/// Host name to that host's magic and own variables.
#[derive(Debug)]
struct HostVars(Arc<Play>);

impl Object for HostVars {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let name = key.as_str()?;
        let host = if name == self.0.host.name {
            &self.0.host
        } else {
            self.0.hosts.iter().find(|h| h.name == name)?
        };
        let mut vars = super::magic::host_magic(host);
        vars.extend(host.vars.clone());
        Some(to_jinja(&Json::Object(vars)))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(
            self.0
                .hosts
                .iter()
                .map(|h| Value::from(h.name.as_str()))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::magic::tests::host;
    use crate::template::{host_template_vars, Call, Templates};

    #[test]
    fn groups_hostvars_and_play_hosts_read_the_run_when_a_template_looks() {
        let mut web = host("web1.example.com", &["webservers", "prod"]);
        let db = host("db1", &["dbservers", "prod"]);
        let play = Arc::new(vec![web.clone(), db]);
        // This host's own variables as the script sees them win over the run's copy.
        web.vars.insert("port".into(), 8080.into());
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("t.j2"),
            "{{ groups.prod | join(',') }}|{{ groups.all | length }}|{{ groups.ungrouped }}|\
             {{ groups | list | join(',') }}|{{ groups.nosuch is defined }}|\
             {{ hostvars.db1.ansible_host }}|{{ hostvars[inventory_hostname].port }}|\
             {{ hostvars | list | join(',') }}|{{ 'db1' in hostvars }}|{{ hostvars.nosuch is defined }}|\
             {{ ansible_play_hosts | join(',') }}|{{ play_hosts[1] }}|{{ 'db1' in ansible_play_batch }}|\
             {{ ansible_play_hosts_all | length }}",
        )
        .expect("write");
        let call = Call {
            src: "t.j2",
            fullpath: &dir.path().join("t.j2"),
            dest: "/etc/t",
            root: dir.path(),
        };
        let vars = host_template_vars(&web, &play, &call, None);
        let out = Templates::new(dir.path())
            .render_host_file("t.j2", &vars)
            .expect("renders");
        assert_eq!(
            out,
            "web1.example.com,db1|2|[]|all,ungrouped,webservers,prod,dbservers|False|\
             10.0.0.3|8080|web1.example.com,db1|True|False|\
             web1.example.com,db1|db1|True|2"
        );
    }

    #[test]
    fn a_host_outside_the_runs_list_plays_alone() {
        let lone = host("lone", &[]);
        let play = Arc::new(vec![host("other", &["g"])]);
        let names: Vec<String> = PlayVars::new(&lone, &play)
            .0
            .hosts
            .iter()
            .map(|h| h.name.clone())
            .collect();
        assert_eq!(names, ["lone"]);
    }
}
