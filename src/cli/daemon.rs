//! `toyc daemon`: read and check the configuration, open the store, bind, then serve
//! until SIGTERM or Ctrl-C (see [`toyc_daemon::serve`]: running jobs get the configured
//! grace period, the rest is taken up again by the next daemon).

use std::sync::Arc;

use anyhow::{anyhow, Context};
use toyc_daemon::Daemon;

use super::args::DaemonArgs;
use super::{Failure, Outcome};
use crate::exit::ExitCode;

/// The top-level entry point for `toyc daemon`.
pub async fn daemon(args: DaemonArgs) -> Outcome {
    let mut daemon = Daemon::load(&args.config).map_err(Failure::input)?;
    if let Some(listen) = &args.listen {
        daemon.listen = listen
            .parse()
            .map_err(|e| Failure::input(anyhow!("`--listen {listen}`: {e}")))?;
    }
    let state_dir = toyc_engine::state_dir::state_dir().map_err(Failure::input)?;
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("unable to create `{}`", state_dir.display()))?;
    let location = match args.store.or(daemon.config.store.clone()) {
        Some(location) => location,
        None => state_dir.join("toyc.sqlite").to_string_lossy().into_owned(),
    };
    let store = toyc_store::open(&location).await.map_err(Failure::input)?;
    let listener = tokio::net::TcpListener::bind(daemon.listen)
        .await
        .with_context(|| format!("unable to listen on {}", daemon.listen))?;
    let address = listener.local_addr().context("no local address")?;
    toyc_daemon::check_address(&daemon, address).map_err(Failure::input)?;
    // The one line a supervisor or a test waits for (port 0 picks the port).
    eprintln!("toyc daemon: listening on http://{address}");
    toyc_daemon::serve(daemon, Arc::from(store), listener, state_dir, stop_signal())
        .await
        .map_err(Failure::input)?;
    Ok(ExitCode::Success)
}

/// SIGTERM (a service manager) or SIGINT (Ctrl-C).
pub(super) async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "no SIGTERM handler; stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
