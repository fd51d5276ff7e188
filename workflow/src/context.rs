//! What a step can reach besides the clipboard: where toyc keeps state (keys it
//! generates, the known_hosts file it records host keys in), how to log in to new hosts,
//! the run's cancellation and secrets, and the configured DNS server and providers.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toyc_engine::cancel::Cancel;
use toyc_engine::secrets::Secrets;

/// Settings a workflow's steps use, from the daemon's configuration (or the command
/// line with `--foreground`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowSettings {
    /// Where workflows named in chat (`deploy loki`) are found: `DIR/loki.yml`.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// The private key toyc logs in to new hosts with (its public half is what
    /// `instance.sshpubkey` should hold).
    #[serde(default)]
    pub ssh_identity: Option<PathBuf>,
    /// The user toyc logs in to new hosts as.
    #[serde(default = "default_user")]
    pub ssh_user: String,
    /// How long `host::wait_ssh` waits, in seconds.
    #[serde(default = "default_ssh_timeout")]
    pub ssh_timeout_seconds: u64,
    /// How long `provider::wait_running` waits, in seconds.
    #[serde(default = "default_running_timeout")]
    pub running_timeout_seconds: u64,
    /// The EC2 account `provider: ec2` creates instances in.
    #[serde(default)]
    pub ec2: Option<crate::provider::ec2::Ec2Settings>,
    /// The Linode account `provider: linode` creates instances in.
    #[serde(default)]
    pub linode: Option<crate::provider::linode::LinodeSettings>,
    /// The DNS server `dns::*` updates.
    #[serde(default)]
    pub dns: Option<crate::dns::DnsSettings>,
}

fn default_user() -> String {
    "root".into()
}
fn default_ssh_timeout() -> u64 {
    120
}
fn default_running_timeout() -> u64 {
    300
}

/// What every step of one run can reach.
#[derive(Debug, Clone)]
pub struct StepContext {
    /// The settings.
    pub settings: WorkflowSettings,
    /// This run's directory for what its steps generate (keys), kept after the run.
    pub run_dir: PathBuf,
    /// toyc's known_hosts for hosts workflows created: host keys are recorded here, from
    /// a trusted source only, and checked on every connection.
    pub known_hosts: PathBuf,
    /// toyc's state directory (role checkouts).
    pub state_dir: PathBuf,
    /// The run's cancellation.
    pub cancel: Cancel,
    /// The run's secrets, masked in what it reports.
    pub secrets: Secrets,
}

impl StepContext {
    /// How long `host::wait_ssh` waits.
    pub fn ssh_timeout(&self) -> Duration {
        Duration::from_secs(self.settings.ssh_timeout_seconds)
    }

    /// How long `provider::wait_running` waits.
    pub fn running_timeout(&self) -> Duration {
        Duration::from_secs(self.settings.running_timeout_seconds)
    }
}
