//! Ansible's magic variables for a template rendered for one host: `inventory_hostname`
//! and the rest from the inventory and the run, `template_*` and `ansible_managed` from
//! the call, and Ansible's facts (`ansible_distribution`, ...) when the template names
//! them. Ansible builds the same set in `vars/manager.py`, `inventory/host.py` and
//! `_internal/_templating/_template_vars.py`.

use std::path::Path;
use std::sync::Arc;

use serde_json::{json, Map, Value};
use toyc_engine::inventory::Host;

use super::play::PlayVars;

/// What Ansible's `template` module knows about the call.
pub struct Call<'a> {
    /// `src` as the script gave it (`template_path`).
    pub src: &'a str,
    /// The template file (`template_fullpath`).
    pub fullpath: &'a Path,
    /// `dest` (`template_destpath`).
    pub dest: &'a str,
    /// The role's or script's directory (`playbook_dir`; `role_path` too when it is a
    /// role's).
    pub root: &'a Path,
}

/// Every variable `files::template` gives a template for `host` in a run of `play`, in
/// Ansible's order: magic variables, then the facts (`ansible_facts::template_vars` of
/// them, given only when the template names one), then the host's own variables.
/// `toyc template` renders with the same, so what it prints is what a run writes.
pub fn host_template_vars(
    host: &Host,
    play: &Arc<Vec<Host>>,
    call: &Call<'_>,
    facts: Option<&Map<String, Value>>,
) -> HostTemplateVars {
    let mut vars = magic_vars(host, call);
    if let Some(facts) = facts {
        vars.extend(toyc_engine::ansible_facts::template_vars(facts));
    }
    vars.extend(host.vars.clone());
    HostTemplateVars {
        vars,
        play: PlayVars::new(host, play),
    }
}

/// A host's template variables: its own (`vars`, which a call's `vars` option extends)
/// over the run-wide ones (`play`).
#[derive(Debug, Clone)]
pub struct HostTemplateVars {
    /// Everything but the run-wide magic variables.
    pub vars: Map<String, Value>,
    /// `groups`, `hostvars`, `ansible_play_hosts` and its aliases.
    pub play: PlayVars,
}

/// The variables Ansible gives a template for `host`, below the host's own variables
/// (which the caller adds over them), but for the run-wide ones of [`PlayVars`].
pub(crate) fn magic_vars(host: &Host, call: &Call<'_>) -> Map<String, Value> {
    let mut vars = Map::new();
    vars.extend(host_magic(host));
    let root = call.root.to_string_lossy();
    // Ansible defines `role_path` only for a task of a role.
    if is_role(call.root) {
        vars.insert("role_path".into(), json!(root));
    }
    vars.insert("playbook_dir".into(), json!(root));
    vars.extend(template_vars(call));
    vars
}

/// Whether `dir` is a role: a toyc role (its `runbook.rhai` or `runbook.yml`) or an
/// Ansible one (`tasks/main.yml`), rather than a directory of scripts.
fn is_role(dir: &Path) -> bool {
    [
        "runbook.rhai",
        "runbook.yml",
        "tasks/main.yml",
        "tasks/main.yaml",
    ]
    .iter()
    .any(|marker| dir.join(marker).is_file())
}

/// What Ansible's `Host.get_magic_vars` and connection variables give one host.
pub(super) fn host_magic(host: &Host) -> Map<String, Value> {
    let mut vars = Map::new();
    vars.insert("inventory_hostname".into(), json!(host.name));
    vars.insert(
        "inventory_hostname_short".into(),
        json!(host.name.split('.').next().unwrap_or_default()),
    );
    let mut group_names: Vec<&str> = host
        .groups
        .iter()
        .map(String::as_str)
        .filter(|g| *g != "all")
        .collect();
    group_names.sort_unstable();
    group_names.dedup();
    vars.insert("group_names".into(), json!(group_names));
    vars.insert("ansible_host".into(), json!(host.address));
    if let Some(port) = host.ssh.port {
        vars.insert("ansible_port".into(), json!(port));
    }
    if let Some(user) = &host.ssh.user {
        vars.insert("ansible_user".into(), json!(user));
    }
    vars
}

/// `template_*` and `ansible_managed`, as `generate_ansible_template_vars` makes them.
fn template_vars(call: &Call<'_>) -> Map<String, Value> {
    let mut vars = Map::new();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned());
    vars.insert("template_host".into(), json!(host));
    vars.insert("template_path".into(), json!(call.src));
    vars.insert("template_uid".into(), owner(call.fullpath));
    // Python's `str(datetime.now())`.
    let now = chrono::Local::now().format("%Y-%m-%d %H:%M:%S%.6f");
    vars.insert("template_run_date".into(), json!(now.to_string()));
    vars.insert("template_destpath".into(), json!(call.dest));
    vars.insert(
        "template_fullpath".into(),
        json!(call.fullpath.to_string_lossy()),
    );
    // Ansible's default `DEFAULT_MANAGED_STR`, which has no placeholders.
    vars.insert("ansible_managed".into(), json!("Ansible managed"));
    vars
}

/// The template file's owner: the user's name, or the uid when it has none.
fn owner(path: &Path) -> Value {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return Value::Null;
    };
    let uid = meta.uid();
    let name = std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| {
                let mut fields = line.split(':');
                let name = fields.next()?;
                let id = fields.nth(1)?;
                (id.parse::<u32>().ok()? == uid).then(|| name.to_owned())
            })
        });
    name.map_or_else(|| json!(uid), |n| json!(n))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use toyc_engine::inventory::Host;

    /// A host named `name` in `groups`, its address from the name's length.
    pub(in crate::template) fn host(name: &str, groups: &[&str]) -> Host {
        let mut h = Host::localhost();
        h.name = name.into();
        h.address = format!("10.0.0.{}", name.len());
        h.groups = groups.iter().map(|g| (*g).to_owned()).collect();
        h
    }

    #[test]
    fn magic_vars_come_from_the_host_and_the_run() {
        let web = host("web1.example.com", &["webservers", "prod"]);
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("t.j2");
        std::fs::write(&file, "x").expect("write");
        let call = Call {
            src: "t.j2",
            fullpath: &file,
            dest: "/etc/t",
            root: dir.path(),
        };
        let vars = magic_vars(&web, &call);
        assert_eq!(vars["inventory_hostname"], "web1.example.com");
        assert_eq!(vars["inventory_hostname_short"], "web1");
        assert_eq!(vars["group_names"], json!(["prod", "webservers"]));
        assert_eq!(vars["ansible_host"], "10.0.0.16");
        assert_eq!(vars["template_path"], "t.j2");
        assert_eq!(vars["template_destpath"], "/etc/t");
        assert_eq!(vars["ansible_managed"], "Ansible managed");
        assert!(vars["template_uid"].is_string() || vars["template_uid"].is_number());
        // Not a role: no `role_path` (Ansible has it only in a role), `playbook_dir` yes.
        assert!(vars.get("role_path").is_none());
        assert_eq!(vars["playbook_dir"], json!(dir.path().to_string_lossy()));
        std::fs::write(dir.path().join("runbook.rhai"), "").expect("write");
        let vars = magic_vars(&web, &call);
        assert_eq!(vars["role_path"], json!(dir.path().to_string_lossy()));
    }
}
