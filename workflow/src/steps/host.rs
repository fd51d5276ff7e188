//! `host::*`: a new host's keys and SSH. Its host key is never learned by trusting the
//! first key a connection shows: it is generated here and injected at creation
//! (`host::keygen`, then `provider::create`), or read from the provider's console output,
//! and recorded in toyc's known_hosts before anything connects.

use std::io::Write as _;
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::io::AsyncReadExt;

use super::{required, set, text};
use crate::context::StepContext;

/// The generated host key's private half, in the run's directory.
pub const HOST_KEY_FILE: &str = "ssh_host_ed25519_key";

/// Generate an ed25519 host key pair for the new host (kept when it exists: a resumed
/// run injects the same key).
pub async fn keygen(clip: &mut Map<String, Value>, ctx: &StepContext) -> Result<(), String> {
    let name = required(clip, "instance.hostname")?.to_owned();
    let private = ctx.run_dir.join(HOST_KEY_FILE);
    std::fs::create_dir_all(&ctx.run_dir)
        .map_err(|e| format!("unable to create `{}`: {e}", ctx.run_dir.display()))?;
    if !private.exists() {
        let out = tokio::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C"])
            .arg(format!("root@{name}"))
            .arg("-f")
            .arg(&private)
            .output()
            .await
            .map_err(|e| format!("unable to run ssh-keygen: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "ssh-keygen failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    let public = std::fs::read_to_string(private.with_extension("pub"))
        .map_err(|e| format!("unable to read the generated key: {e}"))?;
    set(clip, "ssh.host_key", json!(key_fields(&public)));
    Ok(())
}

/// `type base64` of a public key line (its comment dropped).
pub fn key_fields(line: &str) -> String {
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Wait until the host's port 22 answers with an SSH banner, at most the configured time.
pub async fn wait_ssh(clip: &mut Map<String, Value>, ctx: &StepContext) -> Result<(), String> {
    let ip = required(clip, "instance.ip")?.to_owned();
    let started = tokio::time::Instant::now();
    let deadline = started + ctx.ssh_timeout();
    let mut last = String::from("not tried");
    while tokio::time::Instant::now() < deadline {
        if ctx.cancel.is_cancelled() {
            return Err("cancelled".into());
        }
        match banner(&ip).await {
            Ok(()) => {
                set(
                    clip,
                    "ssh.ready_ms",
                    json!(started.elapsed().as_millis() as u64),
                );
                return Ok(());
            }
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Err(format!(
        "no SSH on {ip}:22 after {} s (last: {last})",
        ctx.ssh_timeout().as_secs()
    ))
}

async fn banner(ip: &str) -> Result<(), String> {
    let connect = tokio::net::TcpStream::connect((ip, 22));
    let mut stream = tokio::time::timeout(Duration::from_secs(2), connect)
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    let mut buffer = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buffer))
        .await
        .map_err(|_| "no banner".to_owned())?
        .map_err(|e| e.to_string())?;
    if buffer[..n].starts_with(b"SSH-") {
        Ok(())
    } else {
        Err("not an SSH server".into())
    }
}

/// Record the host's key in toyc's known_hosts for its address: the generated key, else
/// the one the provider's console output shows.
pub async fn record_key(clip: &mut Map<String, Value>, ctx: &StepContext) -> Result<(), String> {
    let ip = required(clip, "instance.ip")?.to_owned();
    let key = match text(clip, "ssh.host_key") {
        Some(key) => key.to_owned(),
        None => super::provider::console_host_key(clip, ctx).await?,
    };
    if !key.starts_with("ssh-ed25519 ")
        && !key.starts_with("ecdsa-")
        && !key.starts_with("ssh-rsa ")
    {
        return Err(format!("`{key}` is not an ssh public key"));
    }
    if let Some(parent) = ctx.known_hosts.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("unable to create `{}`: {e}", parent.display()))?;
    }
    // The address may have belonged to another host before: its old key goes.
    let old = std::fs::read_to_string(&ctx.known_hosts).unwrap_or_default();
    let kept: Vec<&str> = old
        .lines()
        .filter(|line| line.split_whitespace().next() != Some(ip.as_str()))
        .collect();
    let tmp = ctx.known_hosts.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)
        .map_err(|e| format!("unable to write `{}`: {e}", tmp.display()))?;
    for line in kept {
        writeln!(file, "{line}").map_err(|e| e.to_string())?;
    }
    writeln!(file, "{ip} {key}").map_err(|e| e.to_string())?;
    file.sync_all().map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, &ctx.known_hosts).map_err(|e| e.to_string())?;
    set(clip, "ssh.recorded_key", json!(key));
    Ok(())
}
