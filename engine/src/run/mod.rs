//! The one way a job becomes a run: every front end (the CLI, the console, and the
//! services to come) describes its work as a [`Job`], makes a [`RunContext`], and calls
//! [`run`], which returns a [`Report`]. Nothing else plans, applies or reports.
//!
//! Inside, a runbook job goes: load (compile the script) → for each pass: prepare every
//! host (script, facts in one round trip, plan; see [`crate::rollout`]) → show the changes
//! as events → stop under `check` → ask the [`Gate`] → execute stage by stage → again
//! while converging → report. A task-list job goes: validate every task → ask the gate →
//! run its stages (see [`crate::tasklist::run`]) → report.

pub mod context;
mod runbook;
pub mod session;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use context::RunContext;
pub use runbook::{apply_runbook, show};
pub use session::Session;

use crate::events::{HostResult, Summary};
use crate::inventory::Host;
use crate::runbook::Runbook;
use crate::sandbox::Sandbox;
use crate::script_error::ScriptError;
use crate::tasklist::{CommandSet, TaskList};
use crate::transport::Transport;

/// Work to do, described so that it can be queued, stored and run later.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Job {
    /// A runbook on hosts: `toyc run`, `toyc up`, a role, the console's `.apply`.
    Runbook(RunbookJob),
    /// A task list: `toyc apply`, `toyc run GENERATOR --config`.
    TaskList(TaskListJob),
}

/// Where a runbook job's runbooks come from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunbookSource {
    /// A script run once per host.
    Script {
        /// The script.
        path: PathBuf,
        /// The directory its files, templates and imports are confined to.
        root: PathBuf,
    },
    /// Runbooks already declared, per host name (the console's pending operations).
    #[serde(skip)]
    Declared(Vec<(String, Runbook)>),
}

/// A runbook applied to hosts, once or until converged.
#[derive(Clone, Serialize, Deserialize)]
pub struct RunbookJob {
    /// The hosts, in the order they are reported; their vars already layered.
    pub hosts: Vec<Host>,
    /// The runbooks.
    pub source: RunbookSource,
    /// `--var`, `--vars-file` and `--secrets-file` values, over each host's own.
    pub vars: Map<String, Value>,
    /// Commands go through sudo (`--sudo`), besides hosts that ask for it.
    pub sudo: bool,
    /// Default timeout of each command a script runs.
    pub command_timeout: Option<Duration>,
    /// Show what would change and stop (`--check`).
    pub check: bool,
    /// Fetch contents so changes carry diffs (`--diff`).
    pub diff: bool,
    /// Hosts worked on at once.
    pub forks: usize,
    /// Converge (`toyc up`): passes until nothing is left to change, at most this many
    /// applied passes. `None`: one pass.
    pub max_cycles: Option<usize>,
    /// Called for each host whose last pass left nothing undone (a role records its
    /// applied commit there).
    #[serde(skip)]
    pub after_apply: Option<AfterApply>,
}

impl std::fmt::Debug for RunbookJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunbookJob")
            .field("hosts", &self.hosts.len())
            .field("source", &self.source)
            .field("check", &self.check)
            .field("max_cycles", &self.max_cycles)
            .finish_non_exhaustive()
    }
}

/// A per-host hook after a successful apply: host name and its open connection.
pub type AfterApply = Arc<
    dyn Fn(String, Arc<dyn Transport>) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>>
        + Send
        + Sync,
>;

/// A task list run on its hosts.
#[derive(Clone, Serialize, Deserialize)]
pub struct TaskListJob {
    /// The task list, as generated or loaded.
    pub list: TaskList,
    /// Every host it names, resolved.
    pub hosts: Vec<Host>,
    /// Commands go through sudo (`--sudo`).
    pub sudo: bool,
    /// Hosts connected to at once.
    pub forks: usize,
    /// Show the tasks and stop (`--check`).
    pub check: bool,
    /// The directory the list was generated in (or the saved list's): its commands'
    /// local files (`commands/`, uploads) are confined below it.
    pub base: PathBuf,
}

impl std::fmt::Debug for TaskListJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskListJob")
            .field("list", &self.list.name)
            .field("hosts", &self.hosts.len())
            .finish_non_exhaustive()
    }
}

/// What scripts can ask for: the engine knows no operation, so the front end hands it
/// the library (toyc-stdlib's) that fills every sandbox.
pub trait Library: Send + Sync {
    /// Add the library's modules to `sandbox`.
    fn register(&self, sandbox: &mut Sandbox);

    /// The commands `list`'s tasks may name, for `hosts`, with local files below `base`,
    /// their scripts in `run`'s sandboxes.
    fn commands(
        &self,
        list: &TaskList,
        base: &std::path::Path,
        hosts: &[Host],
        run: &RunContext,
    ) -> Arc<dyn CommandSet>;
}

/// What is about to change, for the [`Gate`] to decide on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    /// Changes (runbooks) or tasks (task lists).
    pub count: usize,
    /// `change(s)` or `task(s)`.
    pub unit: &'static str,
    /// Hosts with something pending.
    pub hosts: usize,
}

/// Decides, after the changes were shown, whether they are made: the terminal's prompt
/// or `-y`, the console's `.apply`, a service's policy.
#[async_trait::async_trait]
pub trait Gate: Send + Sync {
    /// `Ok(true)`: go ahead; `Ok(false)`: declined, nothing is changed; `Err`: the
    /// question could not be asked (no terminal), with what to do instead.
    async fn approve(&self, pending: Pending) -> Result<bool, String>;
}

/// A gate that always lets changes through (`-y`, or a caller that already asked).
#[derive(Debug, Clone, Copy, Default)]
pub struct Approve;

#[async_trait::async_trait]
impl Gate for Approve {
    async fn approve(&self, _: Pending) -> Result<bool, String> {
        Ok(true)
    }
}

/// How a run ended, beyond each host's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It did what was asked (hosts may still have failed: see the summary).
    Done,
    /// `check`: changes would be made.
    ChangesPending,
    /// The gate said no: nothing was changed.
    Declined,
    /// The gate could not ask: nothing was changed.
    Refused(String),
    /// A stage aborted: later work did not start.
    Aborted,
    /// Changes were still pending after the last allowed pass.
    NotConverged {
        /// Changes still pending.
        pending: usize,
        /// Passes applied.
        cycles: usize,
    },
}

/// What a run did.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The run's id.
    pub id: String,
    /// One result per host, in the job's host order.
    pub results: Vec<HostResult>,
    /// Totals.
    pub summary: Summary,
    /// Changes (or tasks) the last pass found to make, made or not.
    pub pending: usize,
    /// How it ended.
    pub verdict: Verdict,
}

/// Why a job could not run at all (nothing was done on any host).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The script does not compile.
    #[error(transparent)]
    Script(#[from] ScriptError),
    /// The task list does not validate.
    #[error("{} problem(s) in the task list `{list}`; nothing was run, no host was touched", problems.len())]
    Invalid {
        /// The task list's name.
        list: String,
        /// Each problem (stage, task, host and why).
        problems: Vec<String>,
    },
}

/// The top-level entry point for running a job: announce it, do it, report each host and
/// the totals, close the run's connections.
pub async fn run(
    job: Job,
    run: &RunContext,
    library: &dyn Library,
    gate: &dyn Gate,
) -> Result<Report, RunError> {
    let report = match job {
        Job::Runbook(job) => runbook::run(job, run, library, gate).await,
        Job::TaskList(job) => crate::tasklist::run::run(job, run, library, gate).await,
    };
    run.progress.finish();
    if run.closes_session {
        run.session.close().await;
    }
    report
}
