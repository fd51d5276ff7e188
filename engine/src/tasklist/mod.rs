//! Task lists (plans of a deploy): stages of tasks `{command, host, ...args}` as JSON that
//! people can save, read, edit by hand, validate without touching a host, and run.
//!
//! ```json
//! {"name": "deploy web 1.2", "stages": [
//!   {"name": "upload", "concurrency": 3, "concurrency_per_host": 1, "on_failure": "abort",
//!    "tasks": [{"command": "upload", "host": "web1", "service": "web",
//!               "src": "web-1.2.tar.gz", "dest": "/srv/web/releases/"}]}]}
//! ```
//!
//! A stage's keys besides `name` and `tasks` are optional: `concurrency` and
//! `concurrency_per_host` (no limit when absent), `on_failure` (`abort`, the default:
//! start nothing new, let running tasks finish, fail the run; `continue`; `isolate`),
//! `max_fail_percent`, `timeout` and `retry_delay` in seconds, `retries`. A task's keys
//! besides `command` and `host` are its command's arguments; `service` names the service
//! it works for in logs.
//!
//! The engine knows no command: a [`CommandSet`] (the stdlib's built-ins and a
//! generator's `commands/NAME.rhai`) gives each name its [`TaskCommand`]; [`validate`]
//! runs every task's `initialize`, and a task-list job of [`crate::run::run`] runs the stages under the
//! [`scheduler`](crate::scheduler).

pub mod batch;
pub mod log;
pub mod run;

pub use batch::Remote;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::events::{Event, FailureKind, Level};
use crate::inventory::Host;
use crate::run::RunContext;
use crate::scheduler::{FailurePolicy, StageOptions};
use crate::transport::{Transport, TransportError};

/// A task list: stages run in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskList {
    /// What the task list does, for people.
    pub name: String,
    /// The directory of the generator that made it: `commands/NAME.rhai` and local files
    /// (`upload`'s `src`) come from there. Relative to the task list file; the task list file's
    /// directory when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<PathBuf>,
    /// Where release tarballs were found (`--directory`): `upload` may also read there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub releases: Option<PathBuf>,
    /// The stages, in the order they run.
    pub stages: Vec<StagePlan>,
}

/// One stage of a task list: tasks that run concurrently under its limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StagePlan {
    /// Its name, in logs and errors.
    pub name: String,
    /// Tasks running at once over all hosts (no limit when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
    /// Tasks running at once on one host (no limit when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_per_host: Option<usize>,
    /// What a failed task does: `abort` (default), `continue` or `isolate`.
    #[serde(default)]
    pub on_failure: FailurePolicy,
    /// With `isolate`: abort once more than this share of the stage's hosts failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_fail_percent: Option<u8>,
    /// Seconds one attempt of a task may take; its remote commands are killed then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<f64>,
    /// Further attempts of a failed task.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: u32,
    /// Seconds between attempts (1 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_delay: Option<f64>,
    /// The tasks, in order; a host's own tasks start in this order.
    pub tasks: Vec<Task>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One task: a command, the host it runs for, and its arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// The command's name: a built-in (`upload`, `files::copy`) or `commands/NAME.rhai`.
    pub command: String,
    /// The host, by inventory name (`localhost` for work done on the controller).
    pub host: String,
    /// Every other key: the command's arguments.
    #[serde(flatten)]
    pub args: Map<String, Value>,
}

impl Task {
    /// The service the task works for (its `service` argument), for logs.
    pub fn service(&self) -> Option<&str> {
        self.args.get("service").and_then(Value::as_str)
    }
}

/// Why a task list could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TaskListError {
    /// The file could not be read.
    #[error("unable to read plan `{}`", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a task list; the message says where and why.
    #[error("{}:{line}:{column}: {message}", .path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A saved task list's `root` or `releases` names a directory outside the task list file's
    /// own: a hand-edited task list must not widen what local files its tasks may read.
    /// Resolution: keep the task list file next to (or above) the generator's directory.
    #[error(
        "{}: `{key}` is `{}`, outside the plan's directory `{}`; a saved plan may only read \
         local files below the directory it is in: move the plan there, or plan again",
        .path.display(), .value.display(), .dir.display()
    )]
    Outside {
        /// The task list file.
        path: PathBuf,
        /// `root` or `releases`.
        key: &'static str,
        /// What the task list says.
        value: PathBuf,
        /// The task list file's directory.
        dir: PathBuf,
    },
    /// A generator returned something that is not a task list.
    #[error("{origin}: `generate` returned no valid plan: {message}")]
    Generated {
        /// The generator.
        origin: String,
        /// What is wrong.
        message: String,
    },
}

impl TaskList {
    /// Read a task list file.
    pub fn load(path: &Path) -> Result<TaskList, TaskListError> {
        let text = std::fs::read_to_string(path).map_err(|source| TaskListError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut list = TaskList::parse(&text, path)?;
        list.confine_to(path)?;
        Ok(list)
    }

    /// Hold a task list read from `path` to that file's directory: its `root` and `releases`
    /// (where its tasks read local files) are resolved against it, and must be it or
    /// below it, after symlinks. They are then absolute.
    fn confine_to(&mut self, path: &Path) -> Result<(), TaskListError> {
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let dir = base.canonicalize().map_err(|source| TaskListError::Read {
            path: path.to_owned(),
            source,
        })?;
        for (key, value) in [("root", &mut self.root), ("releases", &mut self.releases)] {
            let Some(given) = value.as_ref() else {
                continue;
            };
            let outside = || TaskListError::Outside {
                path: path.to_owned(),
                key,
                value: given.clone(),
                dir: dir.clone(),
            };
            // One that does not exist (it reads nothing) is checked as written.
            let joined = dir.join(given);
            let resolved = joined.canonicalize().unwrap_or(joined);
            let climbs = resolved
                .components()
                .any(|c| c == std::path::Component::ParentDir);
            if climbs || !resolved.starts_with(&dir) {
                return Err(outside());
            }
            *value = Some(resolved);
        }
        Ok(())
    }

    /// Read a task list from JSON `text`; errors name `origin:line:column`.
    pub fn parse(text: &str, origin: &Path) -> Result<TaskList, TaskListError> {
        serde_json::from_str(text).map_err(|e| TaskListError::Parse {
            path: origin.to_owned(),
            line: e.line().max(1),
            column: e.column().max(1),
            message: strip_position(&e.to_string()),
        })
    }

    /// A task list from the JSON value a generator returned.
    pub fn from_value(value: Value, origin: &str) -> Result<TaskList, TaskListError> {
        serde_json::from_value(value).map_err(|e| TaskListError::Generated {
            origin: origin.to_owned(),
            message: e.to_string(),
        })
    }

    /// The task list as pretty JSON, for `--dump` and `--save`.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    /// Every host the tasks name, each once, in order of first appearance.
    pub fn hosts(&self) -> Vec<String> {
        let mut hosts: Vec<String> = Vec::new();
        for task in self.stages.iter().flat_map(|s| &s.tasks) {
            if !hosts.contains(&task.host) {
                hosts.push(task.host.clone());
            }
        }
        hosts
    }

    /// How many tasks the task list has.
    pub fn task_count(&self) -> usize {
        self.stages.iter().map(|s| s.tasks.len()).sum()
    }
}

/// serde_json's message without its ` at line L column C` (we print `file:L:C:`).
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

impl StagePlan {
    /// The scheduler's options for this stage.
    pub fn options(&self) -> StageOptions {
        let seconds = |s: Option<f64>| s.and_then(|s| Duration::try_from_secs_f64(s).ok());
        StageOptions {
            concurrency: self.concurrency,
            concurrency_per_host: self.concurrency_per_host,
            on_failure: self.on_failure,
            max_fail_percent: self.max_fail_percent,
            timeout: seconds(self.timeout),
            retries: self.retries,
            retry_delay: seconds(self.retry_delay).unwrap_or(Duration::from_secs(1)),
        }
    }

    /// What is wrong with the stage's own settings.
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.name.trim().is_empty() {
            problems.push("the stage has no `name`".to_owned());
        }
        for (key, value) in [
            ("concurrency", self.concurrency),
            ("concurrency_per_host", self.concurrency_per_host),
        ] {
            if value == Some(0) {
                problems.push(format!(
                    "`{key}` is 0, so nothing could start; leave it out for no limit"
                ));
            }
        }
        for (key, value) in [("timeout", self.timeout), ("retry_delay", self.retry_delay)] {
            if let Some(v) = value.filter(|v| !v.is_finite() || *v < 0.0) {
                problems.push(format!(
                    "`{key}` must be a positive number of seconds, not {v}"
                ));
            }
        }
        if self.max_fail_percent.is_some_and(|p| p > 100) {
            problems.push("`max_fail_percent` must be from 0 to 100".to_owned());
        }
        problems
    }
}

/// Why one task (or its stage) cannot run, found before any host is touched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The stage's name.
    pub stage: String,
    /// The task's position in its stage, from 1 (0: the stage itself).
    pub index: usize,
    /// The task's host (empty for the stage itself).
    pub host: String,
    /// The task's command (empty for the stage itself).
    pub command: String,
    /// What is wrong, and what to do.
    pub reason: String,
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.index == 0 {
            write!(f, "stage `{}`: {}", self.stage, self.reason)
        } else {
            write!(
                f,
                "stage `{}` task {} (`{}` on `{}`): {}",
                self.stage, self.index, self.command, self.host, self.reason
            )
        }
    }
}

/// Check the whole task list without touching a host: every stage's settings, and every
/// task's `initialize`. Lists every problem, not just the first.
pub fn validate(list: &TaskList, commands: &dyn CommandSet) -> Vec<Invalid> {
    let mut invalid = Vec::new();
    for stage in &list.stages {
        for reason in stage.problems() {
            invalid.push(Invalid {
                stage: stage.name.clone(),
                index: 0,
                host: String::new(),
                command: String::new(),
                reason,
            });
        }
        for (i, task) in stage.tasks.iter().enumerate() {
            let reason = if task.host.trim().is_empty() {
                Err("the task has no `host`".to_owned())
            } else {
                commands
                    .command(&task.command)
                    .and_then(|command| command.initialize(task))
            };
            if let Err(reason) = reason {
                invalid.push(Invalid {
                    stage: stage.name.clone(),
                    index: i + 1,
                    host: task.host.clone(),
                    command: task.command.clone(),
                    reason,
                });
            }
        }
    }
    invalid
}

/// What a task can reach while it executes.
pub struct TaskContext {
    /// Its host, as the inventory (or the deploy config) describes it.
    pub host: Host,
    /// The open connection to the host.
    pub transport: Arc<dyn Transport>,
    /// Run commands through sudo unless the task says otherwise (`--sudo`, the host's
    /// `sudo`).
    pub sudo: bool,
    /// The stage's per-task timeout: commands pass it on as `ExecRequest::timeout`, so
    /// remote work is killed, not abandoned.
    pub timeout: Option<Duration>,
    /// The run the task belongs to: where logs go, its secrets, cancellation, limits
    /// and connections.
    pub run: RunContext,
    /// The task's command, the `component` of its log lines.
    pub component: String,
    /// The task's service, if any.
    pub service: Option<String>,
}

impl TaskContext {
    /// Log a line for this task.
    pub fn log(&self, level: Level, text: impl Into<String>) {
        self.run.events.emit(&Event::Log {
            level,
            component: self.component.clone(),
            host: Some(self.host.name.clone()),
            service: self.service.clone(),
            text: text.into(),
        });
    }
}

/// Why a task failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TaskFailure {
    /// What went wrong, for people.
    pub message: String,
    /// Whether the host could not be reached (not retried).
    pub unreachable: bool,
    /// What kind of failure it was.
    pub kind: FailureKind,
}

impl TaskFailure {
    /// A failure of the task's command, with this message.
    pub fn new(message: impl Into<String>) -> TaskFailure {
        TaskFailure::of_kind(FailureKind::Command, message)
    }

    /// A failure of `kind`, with this message.
    pub fn of_kind(kind: FailureKind, message: impl Into<String>) -> TaskFailure {
        TaskFailure {
            message: message.into(),
            unreachable: kind == FailureKind::Unreachable,
            kind,
        }
    }
}

impl From<TransportError> for TaskFailure {
    fn from(e: TransportError) -> TaskFailure {
        TaskFailure::of_kind(FailureKind::of(&e, FailureKind::Command), e.to_string())
    }
}

/// A named kind of task.
#[async_trait::async_trait]
pub trait TaskCommand: Send + Sync {
    /// Check the task's arguments, without I/O (no host, no local files beyond the
    /// generator's own directory).
    fn initialize(&self, task: &Task) -> Result<(), String>;
    /// Do the work; returns how many changes it made (0 when it found nothing to do).
    async fn execute(&self, task: &Task, ctx: &TaskContext) -> Result<usize, TaskFailure>;
    /// Whether the task's work can travel in one remote script with its host's
    /// neighbouring tasks ([`batch`]): then [`TaskCommand::remote`] describes it. No I/O.
    fn batchable(&self, _task: &Task) -> bool {
        false
    }
    /// The task's work on its host as a [`Remote`], for a batch; `None` when it has to
    /// run alone through [`TaskCommand::execute`]. Nothing is asked of the host.
    async fn remote(
        &self,
        _task: &Task,
        _ctx: &TaskContext,
    ) -> Result<Option<Remote>, TaskFailure> {
        Ok(None)
    }
}

/// The commands a task list may name.
pub trait CommandSet: Send + Sync {
    /// The command called `name`, or why there is none (with close matches).
    fn command(&self, name: &str) -> Result<Arc<dyn TaskCommand>, String>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_round_trips_and_bad_json_names_line_and_column() {
        let text = r#"{"name": "d", "stages": [{"name": "s", "concurrency": 3,
            "tasks": [{"command": "sleep", "host": "h1", "seconds": 1}]}]}"#;
        let list = TaskList::parse(text, Path::new("p.json")).expect("valid");
        assert_eq!(list.stages[0].tasks[0].args["seconds"], 1);
        assert_eq!(list.stages[0].on_failure, FailurePolicy::Abort);
        let again = TaskList::parse(&list.to_json(), Path::new("p.json")).expect("round trip");
        assert_eq!(again, list);

        let err = TaskList::parse("{\"name\": \"d\",\n \"stages\": [{\"name\": \"s\", \"concurency\": 3, \"tasks\": []}]}", Path::new("p.json"))
            .expect_err("typo");
        let err = err.to_string();
        assert!(err.starts_with("p.json:2:"), "{err}");
        assert!(err.contains("concurency"), "{err}");
    }
}
