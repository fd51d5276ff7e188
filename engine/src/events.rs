//! Everything a run reports, as one [`Event`] type with two sinks: [`HumanSink`] for
//! people (progress and logs on stderr, results on stdout) and [`JsonSink`] for programs.
//!
//! # The `--json` format
//!
//! One JSON object per line on stdout, each an envelope `{"type": ..., "data": {...}}`:
//!
//! | `type` | `data` |
//! |---|---|
//! | `run_start` | `{"command": "exec", "hosts": ["h1", "h2"]}` |
//! | `output` | `{"host": "h1", "stream": "stdout"\|"stderr", "line": "..."}`: one line of command output, as it arrives |
//! | `message` | `{"host": "h1"\|null, "level": "print"\|"info"\|"warn"\|"error", "text": "..."}`: a script's `print` and `host::log` |
//! | `change` | `{"host": "h1", "operation": "files::file", "target": "/etc/motd", "kind": "create"\|"modify"\|"remove"\|"run", "summary": "...", "diff": "..."\|null}`: planned, not yet made |
//! | `no_change` | `{"host": "h1", "operation": "...", "target": "...", "reason": "..."}` |
//! | `step` | `{"host": "h1", "operation": "...", "target": "...", "status": 0, "output": "..."}`: a change was made (status 0) or failed |
//! | `stage_start` | `{"stage": "deploy", "hosts": ["h1", "h2"]}`: a stage begins on the hosts with changes in it |
//! | `stage_end` | `{"stage": "deploy", "ok": 1, "failed": 1, "skipped": 0, "aborted": true}`: hosts counted, or tasks for a task list |
//! | `task_start` | `{"stage": "upload", "index": 1, "command": "upload", "host": "h1", "service": "web"\|null}`: a task of a task list starts (index from 1) |
//! | `task_end` | `{"stage": "upload", "index": 1, "command": "upload", "host": "h1", "service": "web"\|null, "status": "ok"\|"failed"\|"skipped", "error": "..."\|null, "elapsed_ms": 310}` |
//! | `log` | `{"level": "info", "component": "prune_releases", "host": "h1"\|null, "service": "web"\|null, "text": "..."}`: a log line of a task-list run |
//! | `host_end` | `{"host": "h1", "status": "ok"\|"failed"\|"unreachable"\|"skipped", "exit_code": 0\|null, "error": "..."\|null, "changed": 3, "elapsed_ms": 12}` |
//! | `summary` | `{"ok": 9, "failed": 0, "unreachable": 1, "skipped": 0, "changed": 27, "elapsed_ms": 850}` |
//!
//! New fields may be added to `data`; existing ones keep their meaning.

use std::io::Write;
use std::sync::Mutex;

use serde::Serialize;

use crate::secrets::redact;
use crate::transport::Stream;

/// Something that happened during a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum Event {
    /// The run begins on these hosts.
    RunStart {
        /// The subcommand (`exec`, `run`).
        command: String,
        /// The selected hosts, in inventory order.
        hosts: Vec<String>,
    },
    /// One line a command printed.
    Output {
        /// The host it ran on.
        host: String,
        /// stdout or stderr.
        stream: Stream,
        /// The line, without its newline.
        line: String,
    },
    /// A message from a script or from toyc itself.
    Message {
        /// The host it concerns, if any.
        host: Option<String>,
        /// How loud it is.
        level: Level,
        /// The text.
        text: String,
    },
    /// A change planned on a host (shown before anything is applied).
    Change {
        /// The host.
        host: String,
        /// The change.
        #[serde(flatten)]
        change: ChangeView,
    },
    /// An operation that needs no change on a host, and why.
    NoChange {
        /// The host.
        host: String,
        /// The operation.
        operation: String,
        /// What it acts on.
        target: String,
        /// Why nothing needs doing.
        reason: String,
    },
    /// A planned change was made, or failed.
    Step {
        /// The host.
        host: String,
        /// The operation.
        operation: String,
        /// What it acts on.
        target: String,
        /// The step's exit status: 0 done, -1 cut off (connection lost).
        status: i32,
        /// What the step printed.
        output: String,
    },
    /// A stage begins on these hosts (those with changes in it).
    StageStart {
        /// The stage's name.
        stage: String,
        /// Its hosts, in inventory order.
        hosts: Vec<String>,
    },
    /// A stage ended.
    StageEnd {
        /// The stage's name.
        stage: String,
        /// Hosts whose part succeeded.
        ok: usize,
        /// Hosts whose part failed.
        failed: usize,
        /// Hosts whose part never started (after an abort, or dropped).
        skipped: usize,
        /// Whether a failure stopped the run from starting more work.
        aborted: bool,
    },
    /// A task of a task list started (an attempt of it, with retries).
    TaskStart {
        /// Its stage.
        stage: String,
        /// Its position in the stage, from 1.
        index: usize,
        /// The command it runs (`upload`, `files::copy`, a custom command).
        command: String,
        /// Its host.
        host: String,
        /// The service it works for (its `service` argument), if any.
        service: Option<String>,
    },
    /// A task of a task list ended, or was never started.
    TaskEnd {
        /// Its stage.
        stage: String,
        /// Its position in the stage, from 1.
        index: usize,
        /// The command it ran.
        command: String,
        /// Its host.
        host: String,
        /// The service it works for, if any.
        service: Option<String>,
        /// `ok`, `failed` or `skipped` (never started: the stage aborted, or its host
        /// was dropped).
        status: TaskStatus,
        /// Why it failed or was skipped.
        error: Option<String>,
        /// Wall time of its last attempt (0 when skipped).
        elapsed_ms: u64,
    },
    /// A log line of a task-list run: from a task (a custom command's `ctx.log`) or
    /// from toyc, printed as `time [LEVEL] [component] [host] [service] message`.
    Log {
        /// How loud it is.
        level: Level,
        /// Who speaks: the task's command, or `toyc`.
        component: String,
        /// The host it concerns, if any.
        host: Option<String>,
        /// The service it concerns, if any.
        service: Option<String>,
        /// The text.
        text: String,
    },
    /// A host finished.
    HostEnd(HostResult),
    /// The run finished.
    Summary(Summary),
}

/// A planned change as reported (the shell that makes it is left out).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeView {
    /// The operation.
    pub operation: String,
    /// What it acts on.
    pub target: String,
    /// Create, modify, remove or run.
    pub kind: crate::plan::ChangeKind,
    /// One line for people.
    pub summary: String,
    /// Unified diff of the content, under `--diff`.
    pub diff: Option<String>,
}

impl From<&crate::plan::Change> for ChangeView {
    fn from(change: &crate::plan::Change) -> ChangeView {
        ChangeView {
            operation: change.operation.clone(),
            target: change.target.clone(),
            kind: change.kind,
            summary: change.summary.clone(),
            diff: change.diff.clone(),
        }
    }
}

/// How loud a [`Event::Message`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// A script's `print`: a result, shown on stdout.
    Print,
    /// Progress information.
    Info,
    /// Something odd that did not stop the run.
    Warn,
    /// Something failed.
    Error,
}

/// How a task of a task list ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// It did its job.
    Ok,
    /// It failed, or its host could not be reached.
    Failed,
    /// It never started.
    Skipped,
}

/// How a host's part of a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HostStatus {
    /// Everything asked of the host succeeded.
    Ok,
    /// A command or script failed on the host.
    Failed,
    /// The host could not be reached, or the connection broke.
    Unreachable,
    /// The run stopped (a failure elsewhere aborted it) before the host's changes were made.
    Skipped,
}

/// The outcome of one host.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostResult {
    /// The host's inventory name.
    pub host: String,
    /// How it ended.
    pub status: HostStatus,
    /// The exit status of the command, for `exec`.
    pub exit_code: Option<i32>,
    /// What went wrong, for people.
    pub error: Option<String>,
    /// Changes made on the host.
    pub changed: usize,
    /// Wall time spent on the host, connection included.
    pub elapsed_ms: u64,
}

/// Totals of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Hosts that succeeded.
    pub ok: usize,
    /// Hosts where something failed.
    pub failed: usize,
    /// Hosts that could not be reached.
    pub unreachable: usize,
    /// Hosts whose changes were not made because the run aborted.
    pub skipped: usize,
    /// Changes made, over all hosts.
    pub changed: usize,
    /// Wall time of the whole run.
    pub elapsed_ms: u64,
}

impl Summary {
    /// Count `results` into totals.
    pub fn of(results: &[HostResult], elapsed_ms: u64) -> Summary {
        let count = |s| results.iter().filter(|r| r.status == s).count();
        Summary {
            ok: count(HostStatus::Ok),
            failed: count(HostStatus::Failed),
            unreachable: count(HostStatus::Unreachable),
            skipped: count(HostStatus::Skipped),
            changed: results.iter().map(|r| r.changed).sum(),
            elapsed_ms,
        }
    }
}

/// Where events go. Implementations must be cheap: they are called from every host's task.
pub trait EventSink: Send + Sync {
    /// Report one event.
    fn emit(&self, event: &Event);
}

/// JSON Lines on stdout, one envelope per event (see the module docs).
#[derive(Debug, Default)]
pub struct JsonSink {
    lock: Mutex<()>,
}

impl EventSink for JsonSink {
    fn emit(&self, event: &Event) {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = std::io::stdout().lock();
        // A closed stdout (`| head`) is the reader's choice, not toyc's failure.
        if let Ok(line) = serde_json::to_string(event) {
            let _ = writeln!(out, "{}", redact(&line));
            let _ = out.flush();
        }
    }
}

/// Output for people: with `stream`, command output lines live on stdout prefixed by
/// their host; script prints on stdout; everything else on stderr.
#[derive(Debug, Default)]
pub struct HumanSink {
    /// Print command output as it arrives (`--stream`), instead of leaving it to the caller.
    pub stream: bool,
    /// Show `info` messages (`-v`).
    pub verbose: bool,
    /// Width to pad host names to, so prefixed lines align.
    pub host_width: usize,
    /// End with a table of every host's result (`run`, `up`) instead of a line per
    /// host that did not succeed.
    pub table: bool,
    /// The hosts' results so far, for the table.
    results: Mutex<Vec<HostResult>>,
    /// The selected hosts, in order, from `run_start`.
    order: Mutex<Vec<String>>,
    lock: Mutex<()>,
}

impl HumanSink {
    /// A sink for the given display choices.
    pub fn new(stream: bool, verbose: bool, host_width: usize) -> HumanSink {
        HumanSink {
            stream,
            verbose,
            host_width,
            table: false,
            results: Mutex::new(Vec::new()),
            order: Mutex::new(Vec::new()),
            lock: Mutex::new(()),
        }
    }

    /// The same sink, ending with a table of every host's result.
    pub fn with_table(mut self) -> HumanSink {
        self.table = true;
        self
    }

    /// Every host's result as a table: host, result, changes made, time, and what went
    /// wrong, in the order the hosts were selected.
    fn print_table(&self, order: &[String]) {
        let mut results = self
            .results
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        results.sort_by_key(|r| order.iter().position(|h| h == &r.host));
        let width = self.host_width.max("host".len());
        err_line(&format!(
            "{:width$}  {:11}  {:>7}  {:>7}",
            "host", "result", "changed", "time"
        ));
        for r in &results {
            let error = r
                .error
                .as_deref()
                .map(|e| format!("  {e}"))
                .unwrap_or_default();
            err_line(&format!(
                "{:width$}  {:11}  {:>7}  {:>7}{error}",
                r.host,
                status_word(r.status),
                r.changed,
                seconds(r.elapsed_ms)
            ));
        }
    }
}

impl EventSink for HumanSink {
    fn emit(&self, event: &Event) {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let width = self.host_width;
        match event {
            Event::Output { host, stream, line } if self.stream => match stream {
                Stream::Stdout => out_line(&format!("{host:width$} | {line}")),
                Stream::Stderr => err_line(&format!("{host:width$} ! {line}")),
            },
            Event::Message { host, level, text } => {
                let prefix = host
                    .as_deref()
                    .map(|h| format!("[{h}] "))
                    .unwrap_or_default();
                match level {
                    Level::Print => out_line(&format!("{prefix}{text}")),
                    Level::Info if !self.verbose => {}
                    Level::Info => err_line(&format!("{prefix}{text}")),
                    Level::Warn => err_line(&format!("{prefix}warning: {text}")),
                    Level::Error => err_line(&format!("{prefix}error: {text}")),
                }
            }
            Event::RunStart { hosts, .. } => {
                *self.order.lock().unwrap_or_else(|p| p.into_inner()) = hosts.clone();
            }
            Event::HostEnd(result) if self.table => {
                self.results
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(result.clone());
            }
            Event::StageStart { stage, hosts } if self.verbose => {
                err_line(&format!("--> stage `{stage}` on {} host(s)", hosts.len()));
            }
            Event::StageEnd {
                stage,
                failed,
                skipped,
                aborted: true,
                ..
            } => err_line(&format!(
                "stage `{stage}` aborted: {failed} host(s) failed, {skipped} not started; later stages do not run"
            )),
            Event::HostEnd(result) if self.stream || result.status != HostStatus::Ok => {
                let what = match (result.status, &result.error) {
                    (HostStatus::Ok, _) => "ok".to_owned(),
                    (status, Some(e)) => format!("{}: {e}", status_word(status)),
                    (status, None) => status_word(status).to_owned(),
                };
                err_line(&format!(
                    "{:width$} = {what} ({})",
                    result.host,
                    seconds(result.elapsed_ms)
                ));
            }
            Event::Change { host, change } => {
                err_line(&format!(
                    "{host:width$}  {} {} {}: {}",
                    change.kind.sign(),
                    change.operation,
                    change.target,
                    change.summary
                ));
                for line in change.diff.iter().flat_map(|d| d.lines()) {
                    err_line(&format!("{:width$}      {line}", ""));
                }
            }
            Event::NoChange {
                host,
                operation,
                target,
                reason,
            } if self.verbose => {
                err_line(&format!(
                    "{host:width$}  = {operation} {target}: no change ({reason})"
                ));
            }
            Event::Step {
                host,
                operation,
                target,
                status,
                output,
            } if *status != 0 => {
                err_line(&format!(
                    "{host:width$}  ! {operation} {target} failed (status {status})"
                ));
                for line in output.lines() {
                    err_line(&format!("{:width$}      {line}", ""));
                }
            }
            Event::Summary(s) => {
                if self.table {
                    self.print_table(&self.order.lock().unwrap_or_else(|p| p.into_inner()));
                }
                err_line(&summary_line(s));
            }
            _ => {}
        }
    }
}

/// One line to stdout, secrets masked, ignoring a closed pipe (`toyc exec ... | head`).
fn out_line(text: &str) {
    crate::progress::print_above(|| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", crate::terminal_text::escape(&redact(text)));
    });
}

/// One line to stderr, secrets masked.
fn err_line(text: &str) {
    crate::progress::print_above(|| {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{}", crate::terminal_text::escape(&redact(text)));
    });
}

/// `9 ok, 1 failed, 0 unreachable, 27 changed in 1.20s` (skipped hosts when any).
fn summary_line(s: &Summary) -> String {
    let skipped = if s.skipped > 0 {
        format!(", {} skipped", s.skipped)
    } else {
        String::new()
    };
    let changed = if s.changed > 0 {
        format!(", {} changed", s.changed)
    } else {
        String::new()
    };
    format!(
        "{} ok, {} failed, {} unreachable{skipped}{changed} in {}",
        s.ok,
        s.failed,
        s.unreachable,
        seconds(s.elapsed_ms)
    )
}

/// The word people see for a status.
pub fn status_word(status: HostStatus) -> &'static str {
    match status {
        HostStatus::Ok => "ok",
        HostStatus::Failed => "failed",
        HostStatus::Unreachable => "unreachable",
        HostStatus::Skipped => "skipped",
    }
}

/// Milliseconds as `1.23s`.
pub fn seconds(ms: u64) -> String {
    format!("{:.2}s", ms as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_as_type_and_data_envelopes() {
        let event = Event::HostEnd(HostResult {
            host: "h1".into(),
            status: HostStatus::Unreachable,
            exit_code: None,
            error: Some("refused".into()),
            changed: 0,
            elapsed_ms: 7,
        });
        assert_eq!(
            serde_json::to_string(&event).expect("serializes"),
            r#"{"type":"host_end","data":{"host":"h1","status":"unreachable","exit_code":null,"error":"refused","changed":0,"elapsed_ms":7}}"#
        );
        let event = Event::Output {
            host: "h1".into(),
            stream: Stream::Stderr,
            line: "x".into(),
        };
        assert_eq!(
            serde_json::to_string(&event).expect("serializes"),
            r#"{"type":"output","data":{"host":"h1","stream":"stderr","line":"x"}}"#
        );
    }
}
