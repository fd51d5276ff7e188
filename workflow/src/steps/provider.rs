//! `provider::*`: the instance the clipboard describes, through the provider its
//! `instance.provider` names.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::{required, set, text};
use crate::context::StepContext;
use crate::provider::docker::Docker;
use crate::provider::ec2::Ec2;
use crate::provider::linode::Linode;
use crate::provider::{Instance, InstanceSpec, Provider};

/// The provider `instance.provider` names.
pub fn provider(clip: &Map<String, Value>, ctx: &StepContext) -> Result<Box<dyn Provider>, String> {
    match required(clip, "instance.provider")? {
        "docker" => Ok(Box::new(Docker)),
        "ec2" => {
            let settings = ctx.settings.ec2.clone().ok_or(
                "provider `ec2` is not configured: add `ec2:` (endpoint, region, access_key_id, \
                 secret_access_key_file) under `workflows:` in daemon.yml",
            )?;
            Ok(Box::new(Ec2::new(settings).map_err(|e| e.to_string())?))
        }
        "linode" => {
            let settings = ctx.settings.linode.clone().ok_or(
                "provider `linode` is not configured: add `linode:` (token_file, region) under \
                 `workflows:` in daemon.yml",
            )?;
            Ok(Box::new(Linode::new(settings).map_err(|e| e.to_string())?))
        }
        other => Err(format!(
            "provider `{other}` is not known here (known: docker, ec2, linode)"
        )),
    }
}

fn remember(clip: &mut Map<String, Value>, instance: &Instance) {
    set(clip, "instance.id", json!(instance.id));
    set(clip, "instance.state", json!(instance.state));
    if let Some(address) = &instance.address {
        set(clip, "instance.ip", json!(address));
    }
}

/// Create the instance (or find it, when a run is resumed after it was created).
pub async fn create(clip: &mut Map<String, Value>, ctx: &StepContext) -> Result<(), String> {
    let provider = provider(clip, ctx)?;
    let tags: BTreeMap<String, String> = clip
        .get("instance")
        .and_then(|i| i.get("tags"))
        .and_then(Value::as_object)
        .map(|tags| {
            tags.iter()
                .map(|(k, v)| (k.clone(), v.as_str().map_or(v.to_string(), str::to_owned)))
                .collect()
        })
        .unwrap_or_default();
    let host_key = ctx.run_dir.join(super::host::HOST_KEY_FILE);
    let spec = InstanceSpec {
        name: required(clip, "instance.hostname")?.to_owned(),
        image: required(clip, "instance.image")?.to_owned(),
        size: text(clip, "instance.size").map(str::to_owned).or_else(|| {
            clip.get("instance")
                .and_then(|i| i.get("size"))
                .filter(|s| s.is_number())
                .map(Value::to_string)
        }),
        ssh_public_key: text(clip, "instance.sshpubkey").map(str::to_owned),
        tags,
        host_key_file: (text(clip, "ssh.host_key").is_some() && host_key.exists())
            .then_some(host_key),
    };
    let instance = provider.create(&spec).await.map_err(|e| e.to_string())?;
    remember(clip, &instance);
    Ok(())
}

/// Wait until the instance runs and has an address.
pub async fn wait_running(clip: &mut Map<String, Value>, ctx: &StepContext) -> Result<(), String> {
    let provider = provider(clip, ctx)?;
    let id = required(clip, "instance.id")?.to_owned();
    let instance = provider
        .wait_running(&id, ctx.running_timeout())
        .await
        .map_err(|e| e.to_string())?;
    remember(clip, &instance);
    Ok(())
}

/// Destroy the instance (by id, else by name); done when it is already gone.
pub async fn destroy(clip: &mut Map<String, Value>, ctx: &StepContext) -> Result<(), String> {
    let provider = provider(clip, ctx)?;
    let id = match text(clip, "instance.id") {
        Some(id) => Some(id.to_owned()),
        None => provider
            .find(required(clip, "instance.hostname")?)
            .await
            .map_err(|e| e.to_string())?
            .map(|i| i.id),
    };
    if let Some(id) = id {
        provider.destroy(&id).await.map_err(|e| e.to_string())?;
    }
    set(clip, "instance.state", json!("destroyed"));
    Ok(())
}

/// The ed25519 host key the instance's console output shows (cloud images print their
/// keys between `-----BEGIN SSH HOST KEY KEYS-----` and `-----END ...`).
pub async fn console_host_key(
    clip: &Map<String, Value>,
    ctx: &StepContext,
) -> Result<String, String> {
    let provider = provider(clip, ctx)?;
    let id = required(clip, "instance.id")?;
    let output = provider
        .console_output(id)
        .await
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    let mut inside = false;
    for line in output.lines() {
        if line.contains("BEGIN SSH HOST KEY KEYS") {
            inside = true;
        } else if line.contains("END SSH HOST KEY KEYS") {
            inside = false;
        } else if inside && line.starts_with("ssh-ed25519 ") {
            return Ok(super::host::key_fields(line));
        }
    }
    Err(format!(
        "no host key: the clipboard has no `ssh.host_key` (run `host::keygen` before \
         `provider::create`) and the {} console output shows none",
        provider.name()
    ))
}
