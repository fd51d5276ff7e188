//! `dns::*`: the new host's name in DNS (see [`crate::dns`]), through the server
//! daemon.yml's `workflows: dns:` names.

use std::net::Ipv4Addr;

use serde_json::{json, Map, Value};

use super::{required, set, text};
use crate::context::StepContext;
use crate::dns;

fn settings(ctx: &StepContext) -> Result<&dns::DnsSettings, String> {
    ctx.settings.dns.as_ref().ok_or_else(|| {
        "no DNS server is configured: add `dns:` (server, zone, tsig_key, tsig_secret_file) under `workflows:` in daemon.yml".to_owned()
    })
}

/// Set `instance.fqdn`'s A record to `instance.ip` and its SSHFP record to the host key
/// toyc recorded.
pub async fn register(clip: &mut Map<String, Value>, ctx: &StepContext) -> Result<(), String> {
    let settings = settings(ctx)?;
    let fqdn = required(clip, "instance.fqdn")?.to_owned();
    let ip: Ipv4Addr = required(clip, "instance.ip")?
        .parse()
        .map_err(|e| format!("`instance.ip`: {e}"))?;
    let key = text(clip, "ssh.recorded_key")
        .or_else(|| text(clip, "ssh.host_key"))
        .ok_or("no host key to publish: run `host::record_key` first")?
        .to_owned();
    dns::set_host(settings, &fqdn, ip, &[key], &ctx.run_dir)
        .await
        .map_err(|e| e.to_string())?;
    set(clip, "dns.registered", json!(fqdn));
    Ok(())
}

/// Remove `instance.fqdn`'s A and SSHFP records.
pub async fn remove(clip: &mut Map<String, Value>, ctx: &StepContext) -> Result<(), String> {
    let settings = settings(ctx)?;
    let fqdn = required(clip, "instance.fqdn")?.to_owned();
    dns::remove_host(settings, &fqdn, &ctx.run_dir)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(dns) = clip.get_mut("dns").and_then(Value::as_object_mut) {
        dns.remove("registered");
    }
    Ok(())
}
