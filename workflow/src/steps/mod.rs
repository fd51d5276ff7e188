//! The built-in modules: `provider` (instances), `host` (keys, SSH), `role` (configure
//! a new host through the engine). Each task reads what it needs from the clipboard and
//! returns it with what it learned added:
//!
//! | task | reads | adds |
//! |---|---|---|
//! | `host::keygen` | `instance.hostname` | `ssh.host_key` (a generated ed25519 host key; the private half stays in the run's directory) |
//! | `provider::create` | `instance.{hostname, provider, image, size, sshpubkey}`, `ssh.host_key` | `instance.id`, `instance.state` |
//! | `provider::wait_running` | `instance.id` | `instance.ip`, `instance.state` |
//! | `provider::destroy` | `instance.id` or `instance.hostname` | `instance.state: destroyed` |
//! | `host::wait_ssh` | `instance.ip` | `ssh.ready_ms` |
//! | `host::record_key` | `instance.ip`, `ssh.host_key` (else the provider's console output) | `ssh.recorded_key`; the key in toyc's known_hosts |
//! | `role::apply` | `instance.{hostname, ip}`, `role.{name, repo, ref, vars}` | `role.commit` |

pub mod host;
pub mod provider;
pub mod role;

use serde_json::{Map, Value};

use crate::context::StepContext;
use crate::definition::Step;

/// The built-in modules' names.
pub const MODULES: &[&str] = &["host", "provider", "role"];

/// The tasks of built-in module `module`; `None` when it is not built in.
pub fn tasks(module: &str) -> Option<&'static [&'static str]> {
    match module {
        "host" => Some(&["keygen", "wait_ssh", "record_key"]),
        "provider" => Some(&["create", "wait_running", "destroy"]),
        "role" => Some(&["apply"]),
        _ => None,
    }
}

/// Run a built-in task.
pub async fn run(
    step: &Step,
    mut clip: Map<String, Value>,
    ctx: &StepContext,
) -> Result<Map<String, Value>, String> {
    match (step.module.as_str(), step.task.as_str()) {
        ("host", "keygen") => host::keygen(&mut clip, ctx).await?,
        ("host", "wait_ssh") => host::wait_ssh(&mut clip, ctx).await?,
        ("host", "record_key") => host::record_key(&mut clip, ctx).await?,
        ("provider", "create") => provider::create(&mut clip, ctx).await?,
        ("provider", "wait_running") => provider::wait_running(&mut clip, ctx).await?,
        ("provider", "destroy") => provider::destroy(&mut clip, ctx).await?,
        ("role", "apply") => role::apply(&mut clip, ctx).await?,
        _ => return Err(format!("no built-in task `{step}`")),
    }
    Ok(clip)
}

/// The string at `a.b.c` of the clipboard.
pub fn text<'a>(clip: &'a Map<String, Value>, path: &str) -> Option<&'a str> {
    let mut parts = path.split('.');
    let first = clip.get(parts.next()?)?;
    parts
        .try_fold(first, |value, key| value.get(key))?
        .as_str()
        .filter(|s| !s.is_empty())
}

/// [`text`], or an error naming what is missing.
pub fn required<'a>(clip: &'a Map<String, Value>, path: &str) -> Result<&'a str, String> {
    text(clip, path).ok_or_else(|| format!("the clipboard has no `{path}`"))
}

/// Set `a.b.c` of the clipboard, creating maps on the way.
pub fn set(clip: &mut Map<String, Value>, path: &str, value: Value) {
    let keys: Vec<&str> = path.split('.').collect();
    let (last, parents) = keys.split_last().expect("a path has at least one key");
    let mut map = clip;
    for key in parents {
        let entry = map
            .entry(key.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        map = entry.as_object_mut().expect("made an object just above");
    }
    map.insert(last.to_string(), value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn clipboard_paths_read_and_write_nested_maps() {
        let mut clip = Map::new();
        set(&mut clip, "instance.ip", json!("10.0.0.5"));
        set(&mut clip, "instance.id", json!("abc"));
        assert_eq!(text(&clip, "instance.ip"), Some("10.0.0.5"));
        assert_eq!(text(&clip, "instance.nope"), None);
        assert!(required(&clip, "ssh.host_key")
            .unwrap_err()
            .contains("`ssh.host_key`"));
        assert_eq!(
            Value::Object(clip),
            json!({"instance": {"ip": "10.0.0.5", "id": "abc"}})
        );
    }
}
