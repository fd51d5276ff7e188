//! What belongs to one run and travels with it: its id, where its events go, its
//! cancellation, its secrets, its progress line, its script limits and its connections.
//! Nothing of a run lives in a process-wide static, so a long-lived process (the daemon,
//! the supervisor) runs many jobs at once, each cancelled, masked and reported on its own.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::cancel::Cancel;
use crate::events::{Discard, EventSink, Printer};
use crate::progress::Progress;
use crate::sandbox::{Limits, Sandbox};
use crate::secrets::Secrets;
use crate::transport::SshOptions;

use super::session::Session;

/// Everything one run carries. Clones share it (phases and hosts of the run hold clones).
#[derive(Clone)]
pub struct RunContext {
    /// Unique in this process and unlikely to repeat across processes: `r<unix ms>-<n>`.
    pub id: String,
    /// What started it, as its `run_start` event names it: `run`, `up`, `role`,
    /// `apply`, the console.
    pub command: String,
    /// Where the run's events go.
    pub events: Arc<dyn EventSink>,
    /// Cancelling it stops this run only.
    pub cancel: Cancel,
    /// Masked in everything this run prints.
    pub secrets: Secrets,
    /// The live line on a terminal (hidden elsewhere).
    pub progress: Progress,
    /// The limits of every script the run evaluates (runbooks, generators, commands).
    pub limits: Limits,
    /// The run's connections, one per host, closed once at the end.
    pub session: Session,
    /// Whether [`crate::run::run`] closes the session when it ends (not for a job of a
    /// console, whose connections outlive each line).
    pub(crate) closes_session: bool,
}

impl std::fmt::Debug for RunContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunContext")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl RunContext {
    /// A new run connecting with `ssh` and evaluating scripts under `limits`: nothing
    /// cancelled, no secret, no progress line, events discarded until
    /// [`RunContext::with_events`].
    pub fn new(ssh: SshOptions, limits: Limits) -> RunContext {
        let cancel = Cancel::new();
        RunContext {
            id: new_id(),
            command: "run".to_owned(),
            events: Arc::new(Discard),
            session: Session::new(ssh, cancel.clone()),
            cancel,
            secrets: Secrets::new(),
            progress: Progress::hidden(),
            limits,
            closes_session: true,
        }
    }

    /// The same run for one job of a longer session (the console's `.apply`): the job
    /// uses the session's connections and leaves them open.
    pub fn keeping_connections(&self) -> RunContext {
        RunContext {
            closes_session: false,
            ..self.clone()
        }
    }

    /// The same run, cancelled through `cancel` (the CLI's Ctrl-C, a service's cancel
    /// request).
    pub fn with_cancel(mut self, cancel: Cancel) -> RunContext {
        self.session = Session::new(self.session.ssh().clone(), cancel.clone());
        self.cancel = cancel;
        self
    }

    /// The same run, masking `secrets` (shared with whoever prints its errors).
    pub fn with_secrets(mut self, secrets: Secrets) -> RunContext {
        self.secrets = secrets;
        self
    }

    /// The same run, announced as started by `command`.
    pub fn with_command(mut self, command: impl Into<String>) -> RunContext {
        self.command = command.into();
        self
    }

    /// The same run, showing `progress`.
    pub fn with_progress(mut self, progress: Progress) -> RunContext {
        self.progress = progress;
        self
    }

    /// The same run, reporting to `events` (made with [`RunContext::printer`]).
    pub fn with_events(mut self, events: Arc<dyn EventSink>) -> RunContext {
        self.events = events;
        self
    }

    /// How the run's sinks print: its secrets masked, above its progress line.
    pub fn printer(&self) -> Printer {
        Printer {
            secrets: self.secrets.clone(),
            progress: self.progress.clone(),
        }
    }

    /// A sandbox of this run for scripts confined to `root`: the run's limits, its
    /// cancellation and its secrets.
    pub fn sandbox(&self, root: impl Into<PathBuf>) -> Sandbox {
        Sandbox::for_run(
            root,
            self.limits.clone(),
            self.cancel.clone(),
            self.secrets.clone(),
        )
    }
}

/// A new run id.
fn new_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    format!("r{millis}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}
