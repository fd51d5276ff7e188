//! DNS for new hosts: RFC 2136 dynamic updates signed with TSIG, setting a name's A
//! record and the SSHFP record of its host key (so `ssh -o VerifyHostKeyDNS=yes` can
//! check it), or removing them.
//!
//! The update is sent by `nsupdate` (Debian's `bind9-dnsutils`), BIND's own client:
//! it speaks TSIG and TCP fallback exactly as the servers expect, and its errors name
//! the server's answer (`REFUSED`, `NOTAUTH`, a TSIG failure). The key is handed to it
//! in a key file readable only by toyc, never on a command line.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Where updates go, from daemon.yml's `workflows: dns:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsSettings {
    /// The primary server (`127.0.0.1:53`).
    pub server: SocketAddr,
    /// The zone updated (`example.com`); every name must be inside it.
    pub zone: String,
    /// The TSIG key's name, as the server knows it.
    pub tsig_key: String,
    /// The TSIG algorithm (`hmac-sha256`).
    #[serde(default = "default_algorithm")]
    pub tsig_algorithm: String,
    /// A file holding the key's secret (base64), readable by toyc only.
    pub tsig_secret_file: PathBuf,
    /// The records' TTL, in seconds.
    #[serde(default = "default_ttl")]
    pub ttl: u32,
}

fn default_algorithm() -> String {
    "hmac-sha256".into()
}
fn default_ttl() -> u32 {
    300
}

/// Why an update failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    /// The name is not inside the zone, the address or the key is malformed.
    #[error("{0}")]
    Invalid(String),
    /// The secret file cannot be read.
    #[error("unable to read the TSIG secret `{}`: {source}", path.display())]
    Secret {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The server refused or could not be reached (what `nsupdate` said).
    #[error("the DNS update of `{name}` at {server} failed: {message}")]
    Update {
        /// The name.
        name: String,
        /// The server.
        server: SocketAddr,
        /// What nsupdate said.
        message: String,
    },
}

/// The SSHFP record data of an ed25519 public key line: algorithm 4, fingerprint type 2
/// (SHA-256 of the key blob), the fingerprint in hex.
pub fn sshfp(public_key: &str) -> Result<(u8, u8, String), DnsError> {
    let mut fields = public_key.split_whitespace();
    let (Some(kind), Some(blob)) = (fields.next(), fields.next()) else {
        return Err(DnsError::Invalid(format!(
            "`{public_key}` is not an ssh public key"
        )));
    };
    let algorithm = match kind {
        "ssh-rsa" => 1,
        "ecdsa-sha2-nistp256" | "ecdsa-sha2-nistp384" | "ecdsa-sha2-nistp521" => 3,
        "ssh-ed25519" => 4,
        other => {
            return Err(DnsError::Invalid(format!(
                "no SSHFP algorithm for `{other}` keys"
            )))
        }
    };
    let blob = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .map_err(|e| DnsError::Invalid(format!("the key's base64 is malformed: {e}")))?;
    Ok((algorithm, 2, hex(&Sha256::digest(&blob))))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Set `fqdn`'s A record to `ip` and its SSHFP records to `host_keys`' (replacing
/// whatever the name had), in one signed update.
pub async fn set_host(
    settings: &DnsSettings,
    fqdn: &str,
    ip: Ipv4Addr,
    host_keys: &[String],
    scratch: &Path,
) -> Result<(), DnsError> {
    let name = absolute(fqdn, &settings.zone)?;
    let ttl = settings.ttl;
    let mut script = format!(
        "update delete {name} A\nupdate delete {name} SSHFP\nupdate add {name} {ttl} A {ip}\n"
    );
    for key in host_keys {
        let (algorithm, kind, fingerprint) = sshfp(key)?;
        script.push_str(&format!(
            "update add {name} {ttl} SSHFP {algorithm} {kind} {fingerprint}\n"
        ));
    }
    update(settings, &name, &script, scratch).await
}

/// Remove `fqdn`'s A and SSHFP records.
pub async fn remove_host(
    settings: &DnsSettings,
    fqdn: &str,
    scratch: &Path,
) -> Result<(), DnsError> {
    let name = absolute(fqdn, &settings.zone)?;
    let script = format!("update delete {name} A\nupdate delete {name} SSHFP\n");
    update(settings, &name, &script, scratch).await
}

/// `fqdn` with its final dot, checked to be inside `zone` and made of plain labels.
fn absolute(fqdn: &str, zone: &str) -> Result<String, DnsError> {
    let name = fqdn.trim_end_matches('.').to_ascii_lowercase();
    let zone = zone.trim_end_matches('.').to_ascii_lowercase();
    let plain = name
        .split('.')
        .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if !plain || !(name == zone || name.ends_with(&format!(".{zone}"))) {
        return Err(DnsError::Invalid(format!(
            "`{fqdn}` is not a host name inside the zone `{zone}`"
        )));
    }
    Ok(format!("{name}."))
}

async fn update(
    settings: &DnsSettings,
    name: &str,
    records: &str,
    scratch: &Path,
) -> Result<(), DnsError> {
    let secret =
        std::fs::read_to_string(&settings.tsig_secret_file).map_err(|source| DnsError::Secret {
            path: settings.tsig_secret_file.clone(),
            source,
        })?;
    let failed = |message: String| DnsError::Update {
        name: name.to_owned(),
        server: settings.server,
        message,
    };
    std::fs::create_dir_all(scratch).map_err(|e| failed(e.to_string()))?;
    let key_file = scratch.join("tsig.key");
    write_private(
        &key_file,
        &format!(
            "key \"{}\" {{\n  algorithm {};\n  secret \"{}\";\n}};\n",
            settings.tsig_key,
            settings.tsig_algorithm,
            secret.trim()
        ),
    )
    .map_err(|e| failed(format!("unable to write the key file: {e}")))?;
    let script = format!(
        "server {} {}\nzone {}\n{records}send\n",
        settings.server.ip(),
        settings.server.port(),
        settings.zone.trim_end_matches('.')
    );
    let mut child = tokio::process::Command::new("nsupdate")
        .arg("-k")
        .arg(&key_file)
        .arg("-t")
        .arg("10")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| {
            failed(format!(
                "unable to run `nsupdate` (Debian's bind9-dnsutils): {e}"
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        use tokio::io::AsyncWriteExt as _;
        stdin
            .write_all(script.as_bytes())
            .await
            .map_err(|e| failed(e.to_string()))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| failed(e.to_string()))?;
    let _ = std::fs::remove_file(&key_file);
    if out.status.success() {
        Ok(())
    } else {
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Err(failed(said.trim().replace(secret.trim(), "********")))
    }
}

/// Write a file only its owner can read.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ed25519_key_makes_an_algorithm_4_sha256_sshfp() {
        let key =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIArmQT47lNPpzrs9Re9xbmtMewl238V2+LQx1p298Lne c";
        let (algorithm, kind, fingerprint) = sshfp(key).expect("a key");
        assert_eq!((algorithm, kind), (4, 2));
        assert_eq!(fingerprint.len(), 64);
        assert!(sshfp("ssh-dss AAAA").is_err());
        assert!(sshfp("nonsense").is_err());
    }

    #[test]
    fn names_must_be_inside_the_zone() {
        assert_eq!(
            absolute("Web7.Example.test", "example.test.").expect("inside"),
            "web7.example.test."
        );
        assert!(absolute("web7.other.test", "example.test").is_err());
        assert!(absolute("evil.example.test;\nupdate delete", "example.test").is_err());
    }
}
