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
//! | `pass` | `{"pass": 2, "max_cycles": 5, "hosts": ["h1", "h2"]}`: `toyc up` begins its pass 2 on the hosts still converging (at most `max_cycles` passes apply changes, one more only looks) |
//! | `stage_start` | `{"stage": "deploy", "hosts": ["h1", "h2"], "continues_on_failure": false}`: a stage begins on the hosts with changes in it; with `continues_on_failure` its failures are warnings that do not fail the run |
//! | `stage_end` | `{"stage": "deploy", "ok": 1, "failed": 1, "skipped": 0, "aborted": true}`: hosts counted, or tasks for a task list |
//! | `task_start` | `{"stage": "upload", "index": 1, "command": "upload", "host": "h1", "service": "web"\|null}`: a task of a task list starts (index from 1) |
//! | `task_end` | `{"stage": "upload", "index": 1, "command": "upload", "host": "h1", "service": "web"\|null, "status": "ok"\|"failed"\|"skipped", "error": "..."\|null, "elapsed_ms": 310}` |
//! | `log` | `{"level": "info", "component": "prune_releases", "host": "h1"\|null, "service": "web"\|null, "text": "..."}`: a log line of a task-list run |
//! | `host_end` | `{"host": "h1", "status": "ok"\|"failed"\|"unreachable"\|"skipped", "kind": "unreachable"\|"script"\|"plan"\|"apply"\|"timeout"\|"cancelled"\|"command"\|"not_converged"\|null, "exit_code": 0\|null, "error": "..."\|null, "changed": 3, "elapsed_ms": 12}`: `kind` says what failed, when something did |
//! | `plan` | `{"name": "deploy", "stages": 2, "tasks": 12, "plan": {...}}`: `toyc plan --json`, a valid task list and the list itself |
//! | `summary` | `{"ok": 9, "failed": 0, "unreachable": 1, "skipped": 0, "changed": 27, "elapsed_ms": 850}`, and `"passes": 2` after `toyc up` |
//!
//! New fields may be added to `data`; existing ones keep their meaning.

use std::io::Write;
use std::sync::Mutex;

use serde::Serialize;

use crate::progress::Progress;
use crate::secrets::Secrets;
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
    /// A pass of a converging run (`toyc up`) begins.
    Pass {
        /// Its number, from 1.
        pass: usize,
        /// The most passes that apply changes (`--max-cycles`); one more only looks.
        max_cycles: usize,
        /// The hosts still converging, in inventory order.
        hosts: Vec<String>,
    },
    /// A stage begins on these hosts (those with changes in it).
    StageStart {
        /// The stage's name.
        stage: String,
        /// Its hosts, in inventory order.
        hosts: Vec<String>,
        /// Whether its failures only warn (`on_failure: continue`): the run goes on and
        /// does not fail because of them.
        continues_on_failure: bool,
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
    /// A phase of the run begins (`--> Applying changes...`): for people, shown with
    /// `-v`; not part of `--json`, whose readers have `stage_start` and `stage_end`.
    Phase {
        /// The banner.
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

/// What kind of failure ended a host's part of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The host could not be reached, or the connection broke.
    Unreachable,
    /// Its script failed (an error, a limit, a `host::exec` that failed).
    Script,
    /// Its operations could not be planned (facts, or an operation refusing its state).
    Plan,
    /// A change failed while being made.
    Apply,
    /// A command or the script ran past its timeout.
    Timeout,
    /// The run was cancelled.
    Cancelled,
    /// A command exited non-zero (`exec`) or a task failed (task lists).
    Command,
    /// Changes were still pending on the host after the last pass `toyc up` allowed.
    NotConverged,
}

impl FailureKind {
    /// The kind of failure a transport error caused (`otherwise` when the command it
    /// ran failed by itself).
    pub fn of(error: &crate::transport::TransportError, otherwise: FailureKind) -> FailureKind {
        use crate::transport::TransportError;
        match error {
            e if e.is_unreachable() => FailureKind::Unreachable,
            TransportError::Timeout { .. } => FailureKind::Timeout,
            TransportError::Cancelled { .. } => FailureKind::Cancelled,
            _ => otherwise,
        }
    }
}

/// The outcome of one host.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostResult {
    /// The host's inventory name.
    pub host: String,
    /// How it ended.
    pub status: HostStatus,
    /// What kind of failure it was, when the host failed or was unreachable.
    pub kind: Option<FailureKind>,
    /// The exit status of the command, for `exec`.
    pub exit_code: Option<i32>,
    /// What went wrong, for people.
    pub error: Option<String>,
    /// Changes made on the host.
    pub changed: usize,
    /// Wall time spent on the host, connection included.
    pub elapsed_ms: u64,
}

impl HostResult {
    /// A host that is fine so far.
    pub fn ok(host: impl Into<String>) -> HostResult {
        HostResult {
            host: host.into(),
            status: HostStatus::Ok,
            kind: None,
            exit_code: None,
            error: None,
            changed: 0,
            elapsed_ms: 0,
        }
    }

    /// The host failed with a failure of `kind` (a host lost while its changes were
    /// being made failed, of kind `unreachable`: it was reached, and may be half-changed).
    pub fn fail(&mut self, kind: FailureKind, error: impl Into<String>) {
        self.status = HostStatus::Failed;
        self.kind = Some(kind);
        self.error = Some(error.into());
    }

    /// The host's work was not done because the run stopped elsewhere (unless something
    /// worse happened to it already).
    pub fn skip(&mut self, why: impl Into<String>) {
        if self.status == HostStatus::Ok {
            self.status = HostStatus::Skipped;
            self.error = Some(why.into());
        }
    }

    /// The host could not be reached.
    pub fn unreachable(&mut self, error: impl Into<String>) {
        self.status = HostStatus::Unreachable;
        self.kind = Some(FailureKind::Unreachable);
        self.error = Some(error.into());
    }
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
    /// Passes made by a converging run (`toyc up`); absent for other runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passes: Option<usize>,
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
            passes: None,
        }
    }
}

/// Where events go. Implementations must be cheap: they are called from every host's task.
pub trait EventSink: Send + Sync {
    /// Report one event.
    fn emit(&self, event: &Event);
}

/// Events nobody sees (a validation, a test).
#[derive(Debug, Default)]
pub struct Discard;

impl EventSink for Discard {
    fn emit(&self, _: &Event) {}
}

/// How a run's printing sinks write a line: every secret of the run masked, above the
/// run's progress line, ignoring a closed pipe (`toyc exec ... | head`).
#[derive(Debug, Clone, Default)]
pub struct Printer {
    /// The run's secrets, masked in every line.
    pub secrets: Secrets,
    /// The run's progress line, which lines are printed above.
    pub progress: Progress,
}

impl Printer {
    /// One line to stdout.
    pub fn out_line(&self, text: &str) {
        self.progress.print_above(|| {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(
                out,
                "{}",
                crate::terminal_text::escape(&self.secrets.redact(text))
            );
        });
    }

    /// One line to stderr.
    pub fn err_line(&self, text: &str) {
        self.progress.print_above(|| {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(
                err,
                "{}",
                crate::terminal_text::escape(&self.secrets.redact(text))
            );
        });
    }
}

/// JSON Lines on stdout, one envelope per event (see the module docs).
#[derive(Debug, Default)]
pub struct JsonSink {
    printer: Printer,
    lock: Mutex<()>,
}

impl JsonSink {
    /// A sink printing through `printer` (no progress line is shown under `--json`).
    pub fn new(printer: Printer) -> JsonSink {
        JsonSink {
            printer,
            lock: Mutex::new(()),
        }
    }
}

impl EventSink for JsonSink {
    fn emit(&self, event: &Event) {
        if matches!(event, Event::Phase { .. }) {
            return;
        }
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = std::io::stdout().lock();
        // A closed stdout (`| head`) is the reader's choice, not toyc's failure.
        if let Ok(line) = serde_json::to_string(event) {
            let _ = writeln!(out, "{}", self.printer.secrets.redact(&line));
            let _ = out.flush();
        }
    }
}

/// The most hosts a run's final table lists one by one without `--full-table`.
pub const FULL_TABLE_UP_TO: usize = 20;

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
    /// List every host in the table even in a large run (`--full-table`); otherwise a
    /// run of more than [`FULL_TABLE_UP_TO`] hosts lists only the hosts that changed,
    /// failed or were unreachable, and one line for the rest.
    pub full_table: bool,
    /// The hosts' results so far, for the table.
    results: Mutex<Vec<HostResult>>,
    /// The selected hosts, in order, from `run_start`.
    order: Mutex<Vec<String>>,
    /// Masks the run's secrets, prints above its progress line.
    printer: Printer,
    lock: Mutex<()>,
}

impl HumanSink {
    /// A sink for the given display choices, printing through `printer`.
    pub fn new(stream: bool, verbose: bool, host_width: usize, printer: Printer) -> HumanSink {
        HumanSink {
            stream,
            verbose,
            host_width,
            table: false,
            full_table: false,
            results: Mutex::new(Vec::new()),
            order: Mutex::new(Vec::new()),
            printer,
            lock: Mutex::new(()),
        }
    }

    /// How this sink prints a line.
    pub fn printer(&self) -> &Printer {
        &self.printer
    }

    /// The same sink, ending with a table of every host's result.
    pub fn with_table(mut self) -> HumanSink {
        self.table = true;
        self
    }

    /// The same sink, listing every host in its table however many there are.
    pub fn with_full_table(mut self, full: bool) -> HumanSink {
        self.full_table = full;
        self
    }

    /// Every host's result as a table: host, result, changes made, time, and what went
    /// wrong, in the order the hosts were selected. In a large run (unless `full_table`),
    /// only the hosts that changed or did not succeed, then one line for the rest: 200
    /// rows of "ok 0 changed" hide the few that matter.
    fn print_table(&self, order: &[String]) {
        let mut results = self
            .results
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        results.sort_by_key(|r| order.iter().position(|h| h == &r.host));
        let width = self.host_width.max("host".len());
        self.printer.err_line(&format!(
            "{:width$}  {:11}  {:>7}  {:>7}",
            "host", "result", "changed", "time"
        ));
        let compact = !self.full_table && results.len() > FULL_TABLE_UP_TO;
        let quiet = |r: &HostResult| r.status == HostStatus::Ok && r.changed == 0;
        let unchanged = results.iter().filter(|r| quiet(r)).count();
        for r in results.iter().filter(|r| !compact || !quiet(r)) {
            let error = r
                .error
                .as_deref()
                .map(|e| format!("  {e}"))
                .unwrap_or_default();
            self.printer.err_line(&format!(
                "{:width$}  {:11}  {:>7}  {:>7}{error}",
                r.host,
                status_word(r.status),
                r.changed,
                seconds(r.elapsed_ms)
            ));
        }
        if compact && unchanged > 0 {
            self.printer.err_line(&format!(
                "{unchanged} host{} ok, unchanged (`--full-table` lists every host)",
                if unchanged == 1 { "" } else { "s" }
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
                Stream::Stdout => self.printer.out_line(&format!("{host:width$} | {line}")),
                Stream::Stderr => self.printer.err_line(&format!("{host:width$} ! {line}")),
            },
            Event::Message { host, level, text } => {
                let prefix = host
                    .as_deref()
                    .map(|h| format!("[{h}] "))
                    .unwrap_or_default();
                match level {
                    Level::Print => self.printer.out_line(&format!("{prefix}{text}")),
                    Level::Info if !self.verbose => {}
                    Level::Info => self.printer.err_line(&format!("{prefix}{text}")),
                    Level::Warn => self.printer.err_line(&format!("{prefix}warning: {text}")),
                    Level::Error => self.printer.err_line(&format!("{prefix}error: {text}")),
                }
            }
            Event::Phase { text } if self.verbose => self.printer.err_line(text),
            Event::RunStart { hosts, .. } => {
                *self.order.lock().unwrap_or_else(|p| p.into_inner()) = hosts.clone();
            }
            Event::HostEnd(result) if self.table => {
                self.results
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(result.clone());
            }
            Event::Pass {
                pass,
                max_cycles,
                hosts,
            } => {
                let which = if pass > max_cycles {
                    "only looking: --max-cycles reached".to_owned()
                } else {
                    format!("of at most {max_cycles} that apply changes")
                };
                self.printer.err_line(&format!(
                    "--> pass {pass} on {} host(s) ({which})",
                    hosts.len()
                ));
            }
            Event::StageStart { stage, hosts, .. } if self.verbose => {
                self.printer.err_line(&format!("--> stage `{stage}` on {} host(s)", hosts.len()));
            }
            Event::StageEnd {
                stage,
                failed,
                skipped,
                aborted: true,
                ..
            } => self.printer.err_line(&format!(
                "stage `{stage}` aborted: {failed} host(s) failed, {skipped} not started; later stages do not run"
            )),
            Event::HostEnd(result) if self.stream || result.status != HostStatus::Ok => {
                let what = match (result.status, &result.error) {
                    (HostStatus::Ok, _) => "ok".to_owned(),
                    (status, Some(e)) => format!("{}: {e}", status_word(status)),
                    (status, None) => status_word(status).to_owned(),
                };
                self.printer.err_line(&format!(
                    "{:width$} = {what} ({})",
                    result.host,
                    seconds(result.elapsed_ms)
                ));
            }
            Event::Change { host, change } => {
                self.printer.err_line(&format!(
                    "{host:width$}  {} {} {}: {}",
                    change.kind.sign(),
                    change.operation,
                    change.target,
                    change.summary
                ));
                for line in change.diff.iter().flat_map(|d| d.lines()) {
                    self.printer.err_line(&format!("{:width$}      {line}", ""));
                }
            }
            Event::NoChange {
                host,
                operation,
                target,
                reason,
            } if self.verbose => {
                self.printer.err_line(&format!(
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
                self.printer.err_line(&format!(
                    "{host:width$}  ! {operation} {target} failed (status {status})"
                ));
                for line in output.lines() {
                    self.printer.err_line(&format!("{:width$}      {line}", ""));
                }
            }
            Event::Summary(s) => {
                if self.table {
                    self.print_table(&self.order.lock().unwrap_or_else(|p| p.into_inner()));
                }
                self.printer.err_line(&summary_line(s));
            }
            _ => {}
        }
    }
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
    let passes = match s.passes {
        Some(1) => " (1 pass)".to_owned(),
        Some(n) => format!(" ({n} passes)"),
        None => String::new(),
    };
    format!(
        "{} ok, {} failed, {} unreachable{skipped}{changed} in {}{passes}",
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
        let mut result = HostResult::ok("h1");
        result.unreachable("refused");
        result.elapsed_ms = 7;
        let event = Event::HostEnd(result);
        assert_eq!(
            serde_json::to_string(&event).expect("serializes"),
            r#"{"type":"host_end","data":{"host":"h1","status":"unreachable","kind":"unreachable","exit_code":null,"error":"refused","changed":0,"elapsed_ms":7}}"#
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
