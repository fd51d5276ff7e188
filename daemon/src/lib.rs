//! toyc's daemon: git-host webhooks in, role runs out.
//!
//! A push to a configured repo's tracked branch arrives signed
//! ([`webhook`]); the delivery and its job are committed to the store in one transaction
//! before the 2xx ([`http`]). Workers ([`worker`]) claim jobs under a lease, one run per
//! role at a time (pushes queued meanwhile merge into one run of the newest commit,
//! [`job`]), sync the role repo, bootstrap hosts never bootstrapped, and apply the role
//! on every host in parallel through the engine's one entry point. The store keeps the
//! queue, each job's event log, and each host's bootstrap state and applied commit; the
//! JSON API and the status page read it.
//!
//! Nothing is lost on `kill -9`: an accepted job is in the store before the answer, and
//! a job whose daemon died is taken up again when its lease expires.
#![deny(missing_docs)]

pub mod chat;
pub mod config;
pub mod http;
pub mod job;
pub mod webhook;
pub mod worker;
pub mod workflows;

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use toyc_store::Store;

pub use config::{ConfigError, Daemon};

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// Listening on a non-loopback address without an API token would open the API to
    /// anyone who can reach it.
    #[error("`listen: {0}` is not a loopback address, so the API needs a token: add `api_token: ...` to the secrets file")]
    NoToken(std::net::SocketAddr),
    /// The HTTP server failed.
    #[error("the HTTP server failed: {0}")]
    Serve(std::io::Error),
}

/// The top-level entry point of the daemon: serve `listener` and run the queue's workers
/// until `shutdown` completes; then stop accepting, give running jobs the configured
/// grace period to finish, and stop the rest (they are taken up again by the next daemon).
pub async fn serve(
    daemon: Daemon,
    store: Arc<dyn Store>,
    listener: TcpListener,
    state_dir: PathBuf,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    let address = listener.local_addr().map_err(DaemonError::Serve)?;
    check_address(&daemon, address)?;
    let token = daemon.api_token.clone();
    let grace = Duration::from_secs(daemon.config.shutdown_timeout_seconds);
    let worker_count = daemon.config.workers;
    let workers = Arc::new(worker::Workers {
        id: worker_id(),
        daemon,
        store,
        state_dir,
        running: Mutex::new(HashMap::new()),
        announcements: tokio::sync::broadcast::channel(256).0,
    });
    let (stop, stopping) = watch::channel(false);
    let mut tasks = Vec::new();
    for _ in 0..worker_count {
        tasks.push(tokio::spawn(worker::work(
            Arc::clone(&workers),
            stopping.clone(),
            grace,
        )));
    }
    let app = Arc::new(http::App {
        workers: Arc::clone(&workers),
        token,
    });
    tracing::info!(%address, worker = %workers.id, "listening");
    let served = axum::serve(listener, http::router(app))
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("stopping: no new deliveries; running jobs may finish");
        })
        .await;
    let _ = stop.send(true);
    for task in tasks {
        let _ = task.await;
    }
    tracing::info!("stopped");
    served.map_err(DaemonError::Serve)
}

/// Refuse to serve the API off loopback without a token (checked again by [`serve`];
/// callers check first to fail before they announce the address).
pub fn check_address(daemon: &Daemon, address: std::net::SocketAddr) -> Result<(), DaemonError> {
    if daemon.api_token.is_none() && !address.ip().is_loopback() {
        return Err(DaemonError::NoToken(address));
    }
    Ok(())
}

/// This daemon's name in leases: host, pid and start time, so that a restarted daemon
/// on the same host is another worker.
fn worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into());
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("{host}:{}:{started}", std::process::id())
}
