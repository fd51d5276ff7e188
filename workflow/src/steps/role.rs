//! `role::apply`: configure the new host with a role, through the engine's one entry
//! point, as `toyc role` would: sync the role's repo, layer its attributes, apply its
//! runbook, record the applied commit on the host. toyc connects with the key it
//! recorded (`host::record_key`): a host whose key differs is refused.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};
use toyc_engine::events::{Discard, HostStatus};
use toyc_engine::gitsync::SyncOptions;
use toyc_engine::inventory::Inventory;
use toyc_engine::limits::Limits;
use toyc_engine::role::record::Record;
use toyc_engine::role::Role;
use toyc_engine::run::{Approve, Job, RunContext, RunbookJob, RunbookSource};
use toyc_engine::transport::SshOptions;

use super::{required, set, text};
use crate::context::StepContext;

/// Apply `role.name` from `role.repo` (at `role.ref`, default its default branch) with
/// `role.vars` to the instance.
pub async fn apply(clip: &mut Map<String, Value>, ctx: &StepContext) -> Result<(), String> {
    let name = required(clip, "instance.hostname")?.to_owned();
    let ip = required(clip, "instance.ip")?.to_owned();
    let role_name = required(clip, "role.name")?.to_owned();
    let repo = required(clip, "role.repo")?.to_owned();
    let reference = text(clip, "role.ref").map(str::to_owned);
    let vars: Map<String, Value> = clip
        .get("role")
        .and_then(|r| r.get("vars"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();

    let role =
        Role::new(&role_name, Some(&repo), None, &ctx.state_dir).map_err(|e| e.to_string())?;
    let options = SyncOptions {
        reference,
        ..SyncOptions::default()
    };
    let synced = {
        let role = role.clone();
        tokio::task::spawn_blocking(move || role.sync(&options))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?
    };
    let checkout = role.open(&synced).map_err(|e| e.to_string())?;

    // The new host as an inventory of one: toyc's known_hosts, the workflow identity.
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let mut inventory = format!(
        "ssh:\n  user: {}\n  known_hosts: {}\n",
        quote(&ctx.settings.ssh_user),
        quote(&ctx.known_hosts.to_string_lossy())
    );
    if let Some(identity) = &ctx.settings.ssh_identity {
        inventory.push_str(&format!(
            "  identity: {}\n",
            quote(&identity.to_string_lossy())
        ));
    }
    inventory.push_str(&format!(
        "hosts:\n  {}: {{address: {}}}\n",
        quote(&name),
        quote(&ip)
    ));
    let path = ctx.run_dir.join("inventory.yml");
    std::fs::create_dir_all(&ctx.run_dir).map_err(|e| e.to_string())?;
    std::fs::write(&path, inventory).map_err(|e| e.to_string())?;
    let inventory = Inventory::load(&path).map_err(|e| e.to_string())?;
    let mut host = inventory
        .host(&name)
        .cloned()
        .ok_or("the new host's inventory lost it")?;
    host.vars = checkout.attributes.layered(&host.vars);

    let mut ssh = SshOptions::in_run_directory(None)
        .map_err(|e| format!("unable to create a directory for the run: {e}"))?;
    ssh.connect_timeout = Duration::from_secs(20);
    let run = RunContext::new(ssh, Limits::default())
        .with_cancel(ctx.cancel.clone())
        .with_secrets(ctx.secrets.clone())
        .with_command("workflow")
        .with_events(Arc::new(Discard));
    let record = Record {
        role: role.name.clone(),
        commit: synced.new.clone(),
        repo: role.display_url(),
        applied_at: None,
    };
    let job = RunbookJob {
        hosts: vec![host],
        source: RunbookSource::Script {
            path: checkout.script.clone(),
            root: role.cache.clone(),
        },
        vars,
        sudo: false,
        command_timeout: None,
        check: false,
        diff: false,
        forks: 1,
        max_cycles: None,
        after_apply: Some(record.after_apply(None)),
    };
    let report = toyc_engine::run::run(Job::Runbook(job), &run, &toyc_stdlib::Library, &Approve)
        .await
        .map_err(|e| e.to_string())?;
    let result = report.results.first().ok_or("the run reported no host")?;
    if result.status != HostStatus::Ok {
        return Err(format!(
            "role `{role_name}` on {name}: {}",
            result.error.clone().unwrap_or_else(|| "failed".into())
        ));
    }
    set(clip, "role.commit", json!(synced.new));
    set(clip, "role.changed", json!(result.changed));
    Ok(())
}
