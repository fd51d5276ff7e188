//! Providers: where instances come from (docker containers, EC2, Linode), behind one
//! interface, so a workflow's `provider::*` steps work whatever `instance.provider` says.
//!
//! Every operation is idempotent by name: `create` of a name that exists returns the
//! existing instance, so a resumed workflow never creates a host twice.

use std::collections::BTreeMap;
use std::time::Duration;

pub mod docker;
pub mod ec2;
pub mod linode;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// What to create.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceSpec {
    /// The instance's name (the host name): unique per provider account.
    pub name: String,
    /// The image (`debian-12`, an AMI id, a docker image).
    pub image: String,
    /// The size (`512`, `t3.micro`, `g6-nanode-1`), provider-specific; `None`: its default.
    pub size: Option<String>,
    /// An ssh public key to install for root (`ssh-ed25519 AAAA...`).
    pub ssh_public_key: Option<String>,
    /// Tags or labels to put on it.
    pub tags: BTreeMap<String, String>,
    /// A host key pair generated for it (`host::keygen`): the private key's file, its
    /// `.pub` beside it. Installed as the host's ed25519 host key where the provider can
    /// (docker: copied in before start; EC2: in its user data), so that the key toyc
    /// records is one it made, not one it was shown.
    #[serde(default)]
    pub host_key_file: Option<std::path::PathBuf>,
}

/// An instance as the provider reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    /// The provider's id for it.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The provider's word for its state (`running`, `pending`, `stopped`, ...).
    pub state: String,
    /// The address to reach it at, once it has one.
    pub address: Option<String>,
}

/// Why a provider call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// The provider's API refused or failed the call (message from the API, secrets masked).
    #[error("{provider}: {message}")]
    Api {
        /// `docker`, `ec2`, `linode`.
        provider: &'static str,
        /// What it said.
        message: String,
    },
    /// The provider could not be reached.
    #[error("{provider}: unable to reach the API: {message}")]
    Unreachable {
        /// `docker`, `ec2`, `linode`.
        provider: &'static str,
        /// Why.
        message: String,
    },
    /// No instance has this id or name.
    #[error("{provider}: no instance `{id}`")]
    NotFound {
        /// `docker`, `ec2`, `linode`.
        provider: &'static str,
        /// The id or name.
        id: String,
    },
    /// The instance did not reach the state in time.
    #[error("{provider}: instance `{id}` is still {state} after {seconds} s")]
    Timeout {
        /// `docker`, `ec2`, `linode`.
        provider: &'static str,
        /// The instance.
        id: String,
        /// Its last state.
        state: String,
        /// The timeout.
        seconds: u64,
    },
}

/// A place instances come from.
#[async_trait]
pub trait Provider: Send + Sync {
    /// Its name (`docker`, `ec2`, `linode`).
    fn name(&self) -> &'static str;

    /// Create an instance, or return the one that already has `spec.name`.
    async fn create(&self, spec: &InstanceSpec) -> Result<Instance, ProviderError>;

    /// The instance named `name`, if any (not terminated).
    async fn find(&self, name: &str) -> Result<Option<Instance>, ProviderError>;

    /// The instance with id `id`.
    async fn get(&self, id: &str) -> Result<Instance, ProviderError>;

    /// Wait until the instance runs and has an address, at most `timeout`.
    async fn wait_running(&self, id: &str, timeout: Duration) -> Result<Instance, ProviderError>;

    /// The instance's console output, when the provider keeps one (where a new host
    /// prints its ssh host keys: a trusted source for them).
    async fn console_output(&self, id: &str) -> Result<Option<String>, ProviderError>;

    /// Destroy the instance (done when it is already gone).
    async fn destroy(&self, id: &str) -> Result<(), ProviderError>;
}

/// Poll `provider.get(id)` every `every` until the instance runs and has an address, at
/// most `timeout`: how every provider's [`Provider::wait_running`] waits.
pub async fn poll_running(
    provider: &(impl Provider + ?Sized),
    id: &str,
    timeout: Duration,
    every: Duration,
) -> Result<Instance, ProviderError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let instance = provider.get(id).await?;
        if instance.state == "running" && instance.address.is_some() {
            return Ok(instance);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ProviderError::Timeout {
                provider: provider.name(),
                id: id.to_owned(),
                state: instance.state,
                seconds: timeout.as_secs(),
            });
        }
        tokio::time::sleep(every).await;
    }
}
