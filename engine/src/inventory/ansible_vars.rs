//! Ansible's connection variables (`ansible_host`, `ansible_port`, ...): checked where they
//! are written (so errors point there), read into host settings when the inventory is built.
//! They stay in the variables too: Ansible users expect to see them.

use serde_json::{Map, Value};

use super::model::Layer;
use super::suggest;
use super::{tilde, TransportKind};

/// Each setting's variable, then its older alias: the first one set in a layer wins.
const ADDRESS: [&str; 2] = ["ansible_host", "ansible_ssh_host"];
const PORT: [&str; 2] = ["ansible_port", "ansible_ssh_port"];
const USER: [&str; 2] = ["ansible_user", "ansible_ssh_user"];
const KEY_FILE: [&str; 2] = ["ansible_ssh_private_key_file", "ansible_private_key_file"];
const BECOME: [&str; 2] = ["ansible_become", "ansible_sudo"];
const CONNECTION: [&str; 1] = ["ansible_connection"];

/// The connection plugins toyc can stand in for.
const CONNECTIONS: [&str; 5] = ["ssh", "local", "smart", "paramiko", "paramiko_ssh"];

/// Whether variable `key` with `value` is usable; the message says why not.
pub(super) fn check(key: &str, value: &Value) -> Result<(), String> {
    let ok = if PORT.contains(&key) {
        port(value).is_some()
    } else if BECOME.contains(&key) {
        boolean(value).is_some()
    } else if CONNECTION.contains(&key) {
        return check_connection(value);
    } else if ADDRESS.contains(&key) {
        let Some(address) = text(value) else {
            return Err(format!("`{key}` must be a string, not `{}`", shown(value)));
        };
        return super::model::check_address(&format!("`{key}`"), &address);
    } else if USER.contains(&key) || KEY_FILE.contains(&key) {
        text(value).is_some()
    } else {
        true
    };
    if ok {
        return Ok(());
    }
    let expected = if PORT.contains(&key) {
        "a number 1-65535"
    } else if BECOME.contains(&key) {
        "a boolean (true/false, yes/no)"
    } else {
        "a string"
    };
    Err(format!(
        "`{key}` must be {expected}, not `{}`",
        shown(value)
    ))
}

fn check_connection(value: &Value) -> Result<(), String> {
    if transport(value).is_some() {
        return Ok(());
    }
    let name = shown(value);
    let hint = suggest::did_you_mean(&name, CONNECTIONS);
    Err(format!(
        "unsupported `ansible_connection` `{name}`: toyc connects with `ssh` or `local`{hint}"
    ))
}

/// A value as written, for messages.
fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The host settings that a layer's `ansible_*` variables make (no variables themselves).
pub(super) fn connection_layer(vars: &Map<String, Value>) -> Layer {
    let mut layer = Layer {
        address: first(vars, &ADDRESS).and_then(text),
        transport: first(vars, &CONNECTION).and_then(transport),
        sudo: first(vars, &BECOME).and_then(boolean),
        ..Layer::default()
    };
    layer.ssh.port = first(vars, &PORT).and_then(port);
    layer.ssh.user = first(vars, &USER).and_then(text);
    layer.ssh.identity = first(vars, &KEY_FILE)
        .and_then(text)
        .map(|path| tilde::expand(&path));
    layer
}

fn first<'v>(vars: &'v Map<String, Value>, keys: &[&str]) -> Option<&'v Value> {
    keys.iter().find_map(|key| vars.get(*key))
}

/// A string, or a number (`ansible_user=1000`), as text.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A TCP port: 1-65535, as a number or as digits in a string.
pub(super) fn port(value: &Value) -> Option<u16> {
    let n = match value {
        Value::Number(n) => n.as_u64()?,
        Value::String(s) => s.trim().parse::<u64>().ok()?,
        _ => return None,
    };
    u16::try_from(n).ok().filter(|p| *p != 0)
}

/// Ansible's `boolean()`: true/false, yes/no, on/off, y/n, t/f, 1/0, any case.
fn boolean(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_f64() {
            Some(1.0) => Some(true),
            Some(0.0) => Some(false),
            _ => None,
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "y" | "t" | "1" => Some(true),
            "false" | "no" | "off" | "n" | "f" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// `local` is a local process; Ansible's SSH-speaking plugins all mean OpenSSH to toyc.
fn transport(value: &Value) -> Option<TransportKind> {
    let Value::String(name) = value else {
        return None;
    };
    let name = name.trim();
    let name = name.strip_prefix("ansible.builtin.").unwrap_or(name);
    match name {
        "local" => Some(TransportKind::Local),
        "ssh" | "smart" | "paramiko" | "paramiko_ssh" => Some(TransportKind::Ssh),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::PathBuf;

    fn vars(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    #[test]
    fn connection_variables_become_host_settings() {
        let layer = connection_layer(&vars(json!({
            "ansible_host": "10.0.0.5",
            "ansible_port": 2222,
            "ansible_user": "deploy",
            "ansible_ssh_private_key_file": "/keys/id",
            "ansible_become": "yes",
            "ansible_connection": "ssh",
            "other": 1,
        })));
        assert_eq!(layer.address.as_deref(), Some("10.0.0.5"));
        assert_eq!(layer.ssh.port, Some(2222));
        assert_eq!(layer.ssh.user.as_deref(), Some("deploy"));
        assert_eq!(layer.ssh.identity, Some(PathBuf::from("/keys/id")));
        assert_eq!(layer.sudo, Some(true));
        assert_eq!(layer.transport, Some(TransportKind::Ssh));
        assert!(layer.vars.is_empty());
    }

    #[test]
    fn older_aliases_count_and_the_current_name_wins() {
        let old = connection_layer(&vars(json!({
            "ansible_ssh_host": "h", "ansible_ssh_port": "22", "ansible_ssh_user": "u",
            "ansible_sudo": true,
        })));
        assert_eq!(old.address.as_deref(), Some("h"));
        assert_eq!(old.ssh.port, Some(22));
        assert_eq!(old.ssh.user.as_deref(), Some("u"));
        assert_eq!(old.sudo, Some(true));
        let both = connection_layer(&vars(json!({
            "ansible_ssh_host": "old", "ansible_host": "new",
        })));
        assert_eq!(both.address.as_deref(), Some("new"));
    }

    #[test]
    fn connection_names_map_to_transports() {
        let kind = |name: &str| transport(&json!(name));
        assert_eq!(kind("local"), Some(TransportKind::Local));
        assert_eq!(kind("ansible.builtin.local"), Some(TransportKind::Local));
        assert_eq!(kind("smart"), Some(TransportKind::Ssh));
        assert_eq!(kind("ssh"), Some(TransportKind::Ssh));
        assert_eq!(kind("winrm"), None);
    }

    #[test]
    fn booleans_follow_ansible() {
        for yes in [json!(true), json!("Yes"), json!("on"), json!(1), json!("t")] {
            assert_eq!(boolean(&yes), Some(true), "{yes}");
        }
        for no in [
            json!(false),
            json!("NO"),
            json!("off"),
            json!(0),
            json!("0"),
        ] {
            assert_eq!(boolean(&no), Some(false), "{no}");
        }
        assert_eq!(boolean(&json!("maybe")), None);
    }

    #[test]
    fn ports_are_1_to_65535() {
        assert_eq!(port(&json!(65535)), Some(65535));
        assert_eq!(port(&json!("22")), Some(22));
        assert_eq!(port(&json!(0)), None);
        assert_eq!(port(&json!(65536)), None);
        assert_eq!(port(&json!("ssh")), None);
        assert_eq!(port(&json!(22.5)), None);
    }

    #[test]
    fn bad_values_are_reported_with_what_is_expected() {
        assert_eq!(
            check("ansible_port", &json!("abc")).unwrap_err(),
            "`ansible_port` must be a number 1-65535, not `abc`"
        );
        assert_eq!(
            check("ansible_ssh_port", &json!(70000)).unwrap_err(),
            "`ansible_ssh_port` must be a number 1-65535, not `70000`"
        );
        assert_eq!(
            check("ansible_become", &json!("maybe")).unwrap_err(),
            "`ansible_become` must be a boolean (true/false, yes/no), not `maybe`"
        );
        assert_eq!(
            check("ansible_host", &json!([1])).unwrap_err(),
            "`ansible_host` must be a string, not `[1]`"
        );
        assert_eq!(
            check("ansible_connection", &json!("lcoal")).unwrap_err(),
            "unsupported `ansible_connection` `lcoal`: toyc connects with `ssh` or `local`; \
             did you mean `local`?"
        );
        assert_eq!(check("ansible_port", &json!(22)), Ok(()));
        assert_eq!(check("anything_else", &json!([1])), Ok(()));
    }
}
