//! The connections of one run: one transport per host, opened the first time any phase
//! of the run needs the host (the generator's `remote_versions`, prepare, a task), reused
//! by every later phase, and closed once, when the run ends.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Mutex;

use crate::cancel::Cancel;
use crate::inventory::{Host, TransportKind};
use crate::transport::{LocalTransport, SshOptions, SshTransport, Transport, TransportError};

/// A host's connection as the session holds it: open, or why it could not be opened
/// (kept, so a run does not wait a second connect timeout for the same dead host).
type Slot = Result<Arc<dyn Transport>, Arc<TransportError>>;

/// Every host's slot, each behind its own lock.
type Slots = HashMap<String, Arc<Mutex<Option<Slot>>>>;

/// The connections of one run. Clones share them.
#[derive(Clone)]
pub struct Session {
    ssh: Arc<SshOptions>,
    cancel: Cancel,
    /// Per host name: its slot, behind its own lock so hosts connect in parallel while
    /// two phases asking for the same host wait for one connection.
    hosts: Arc<std::sync::Mutex<Slots>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

/// Why a host of a session is not connected.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct ConnectError(Arc<TransportError>);

impl ConnectError {
    /// The transport's own error.
    pub fn transport(&self) -> &TransportError {
        &self.0
    }
}

impl Session {
    /// A session connecting with `ssh`, its commands cancelled through `cancel`.
    pub fn new(ssh: SshOptions, cancel: Cancel) -> Session {
        Session {
            ssh: Arc::new(ssh),
            cancel,
            hosts: Arc::default(),
        }
    }

    /// The SSH settings of the session.
    pub fn ssh(&self) -> &SshOptions {
        &self.ssh
    }

    /// `host`'s connection: the open one, or a new one. A host that could not be reached
    /// is not tried again in this session (see [`Session::forget`]).
    pub async fn connect(&self, host: &Host) -> Result<Arc<dyn Transport>, ConnectError> {
        let slot = {
            let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(hosts.entry(host.name.clone()).or_default())
        };
        let mut slot = slot.lock().await;
        if let Some(done) = slot.as_ref() {
            return done.clone().map_err(ConnectError);
        }
        let opened: Slot = match host.transport {
            TransportKind::Local => Ok(Arc::new(LocalTransport::for_run(
                host.name.clone(),
                self.cancel.clone(),
            ))),
            TransportKind::Ssh => SshTransport::connect(host, &self.ssh, self.cancel.clone())
                .await
                .map(|t| Arc::new(t) as Arc<dyn Transport>)
                .map_err(Arc::new),
        };
        *slot = Some(opened.clone());
        opened.map_err(ConnectError)
    }

    /// Whether `host` has an open connection now.
    pub fn is_connected(&self, host: &str) -> bool {
        let slot = {
            let hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
            hosts.get(host).cloned()
        };
        slot.and_then(|s| s.try_lock().ok().map(|s| matches!(s.as_ref(), Some(Ok(_)))))
            .unwrap_or(false)
    }

    /// Drop `host`'s connection (it broke, or the host failed), so a later phase that
    /// asks for it connects again.
    pub async fn forget(&self, host: &str) {
        let slot = self
            .hosts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(host);
        if let Some(slot) = slot {
            if let Some(Ok(transport)) = slot.lock().await.take() {
                transport.close().await;
            }
        }
    }

    /// Close every connection, in parallel: one by one, 50 hosts would wait 50 exits.
    pub async fn close(&self) {
        let slots: Vec<_> = self
            .hosts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, slot)| slot)
            .collect();
        let mut closing = tokio::task::JoinSet::new();
        for slot in slots {
            closing.spawn(async move {
                if let Some(Ok(transport)) = slot.lock().await.take() {
                    transport.close().await;
                }
            });
        }
        closing.join_all().await;
    }
}
