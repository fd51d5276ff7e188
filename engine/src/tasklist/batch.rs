//! Batches: a host's consecutive tasks of a stage that can travel together (built-in
//! commands that are one shell step, and operations) run as one remote script per round
//! trip instead of one or two round trips each (issue 17, item 2). At 80 ms from the
//! controller, a deploy's 16 round trips per host and service are 1.3 s of waiting.
//!
//! A batch keeps what the task list promises for its tasks:
//!
//! - **order**: the steps run in the tasks' order, in one shell on the host; the first
//!   failure stops the rest ([`ApplyScript`]).
//! - **facts are fresh**: an operation is planned against facts asked *after* every task
//!   before it ran, in the same round trip as those tasks (the facts are the script's
//!   last step), and its change travels in the next round trip with the work after it.
//!   So a batch of `unpack` then `files::content` then `symlink` costs two round trips,
//!   not four; operations planned to no change cost nothing more.
//! - **events**: each task has its own `task_start` and `task_end`, sent as its steps'
//!   markers arrive, not when the batch ends.
//! - **timeouts**: the stage's `timeout` is per task: the controller times each step from
//!   its start marker and, when one runs over, drops the connection's command, whose
//!   watchdog kills the script on the host, as a task run alone is killed.
//! - **retries**: an attempt resumes at the task that failed.
//! - **abort**: once a task of the stage has failed for good under `abort`, a batch sends
//!   no further round trip; its tasks not sent are skipped. Tasks already on their way in
//!   the same script as the running one still run (they would have started by then
//!   were it not for the round trip each used to wait for).
//!
//! Batches are made only where a host's tasks of the stage run one at a time in list
//! order anyway (`concurrency_per_host: 1`) and a failure stops the host's later tasks
//! of the stage (`on_failure` `abort` or `isolate`); tasks with a different `sudo`
//! start a new batch. `TOYC_NO_BATCH=1` in the environment runs every task alone, as
//! before batches (the benchmark measures both).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::{Task, TaskCommand, TaskContext, TaskFailure};
use crate::apply::{fact_queries, plan_operation};
use crate::events::{Event, FailureKind, Level, TaskStatus};
use crate::facts::{FactBatch, Facts};
use crate::host_lock::{HostLock, LockNews};
use crate::plan::{ApplyScript, Change, ChangeKind, Operation, Outcome, StepNews};
use crate::run::RunContext;
use crate::runner::elapsed_ms;
use crate::scheduler::{Attempt, TaskOutcome, TaskReport};
use crate::transport::{ExecRequest, Transport};

/// A task's work on its host, as it travels in a batch ([`TaskCommand::remote`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Remote {
    /// One shell step known without asking the host (a built-in's command line).
    Step {
        /// What it does, for people (`restart web`): a failure names it.
        what: String,
        /// The POSIX shell it runs; its exit status is the task's.
        script: String,
        /// The changes it makes when it succeeds (0 for a check or a wait).
        made: usize,
    },
    /// Operations, planned against facts asked just before they run.
    Operations(Vec<Arc<dyn Operation>>),
}

/// What the tasks of a stage did, written by whoever runs them (alone or in a batch),
/// indexed by the task's position among the stage's runnable tasks.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    /// Changes made.
    pub changed: Vec<usize>,
    /// The kind of the last failure.
    pub kinds: Vec<Option<FailureKind>>,
    /// When the task last ended.
    pub ends: Vec<Option<Instant>>,
    /// How a batched task ended (a task run alone is in the scheduler's report).
    pub reports: Vec<Option<TaskReport>>,
    /// How many times a batched task started.
    pub tries: Vec<u32>,
    /// Per batch: the first of its tasks that has not succeeded yet (where a retry
    /// resumes).
    pub resume: Vec<usize>,
}

impl Ledger {
    /// A ledger for `tasks` tasks in `units` scheduler units.
    pub fn new(tasks: usize, units: usize) -> Ledger {
        Ledger {
            changed: vec![0; tasks],
            kinds: vec![None; tasks],
            ends: vec![None; tasks],
            reports: vec![None; tasks],
            tries: vec![0; tasks],
            resume: vec![0; units],
        }
    }
}

/// One task of a batch.
pub(crate) struct Member {
    /// Its position among the stage's runnable tasks (the ledger's index).
    pub pos: usize,
    /// Its number in the stage, from 1.
    pub index: usize,
    /// The task.
    pub task: Task,
    /// Its command and context, or why it cannot run (its host is unreachable).
    pub prepared: Result<(Arc<dyn TaskCommand>, TaskContext), (TaskOutcome, FailureKind)>,
}

/// One attempt of a batch: its tasks from where the last attempt stopped.
pub(crate) struct Batch {
    /// The stage's name, for events.
    pub stage: String,
    /// The batch's scheduler unit (the ledger's `resume` index).
    pub unit: usize,
    /// Every task of the batch, in order.
    pub members: Vec<Member>,
    /// Whether the batch's scripts run through sudo.
    pub sudo: bool,
    /// Whether a failure of this attempt is the task's last word (no retry follows).
    pub last: bool,
    /// Set when a task of the stage failed for good under `abort`: no more round trips.
    pub stop: Arc<AtomicBool>,
    /// Whether a failure for good sets `stop`.
    pub aborts: bool,
    /// The stage's ledger.
    pub ledger: Arc<Mutex<Ledger>>,
    /// The run.
    pub run: RunContext,
}

/// What is left to do of one task in an attempt.
enum Work {
    /// Steps to send (none: an operation that needs no change); `made` is the changes a
    /// built-in makes, `None` for operations (each step made is a change).
    Steps {
        changes: Vec<Change>,
        made: Option<usize>,
    },
    /// Operations waiting for their facts.
    Unplanned(Vec<Arc<dyn Operation>>),
    /// It fails when its turn comes.
    Failed(TaskOutcome, FailureKind),
}

/// What a step of a round trip is for.
enum Purpose {
    /// The work of the member.
    Work,
    /// The facts of the members from this one up to (not including) `until`.
    Facts { batch: FactBatch, until: usize },
}

impl Batch {
    fn lock(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Run the attempt; its outcome is the first failure, or ok.
    pub async fn run(self, attempt: Attempt) -> TaskOutcome {
        let start = self.lock().resume[self.unit].min(self.members.len());
        let mut attempt_state = AttemptState {
            batch: &self,
            start,
            started: vec![None; self.members.len()],
            steps_made: vec![0; self.members.len()],
        };
        attempt_state.go(attempt).await
    }
}

struct AttemptState<'a> {
    batch: &'a Batch,
    start: usize,
    started: Vec<Option<Instant>>,
    steps_made: Vec<usize>,
}

impl AttemptState<'_> {
    async fn go(&mut self, attempt: Attempt) -> TaskOutcome {
        let b = self.batch;
        let n = b.members.len();
        let mut works: Vec<Work> = Vec::with_capacity(n);
        let mut transport: Option<Arc<dyn Transport>> = None;
        for m in &b.members[..self.start] {
            // Done in an earlier attempt: kept so that indices line up.
            let _ = m;
            works.push(Work::Steps {
                changes: Vec::new(),
                made: Some(0),
            });
        }
        for m in &b.members[self.start..] {
            works.push(match &m.prepared {
                Err((outcome, kind)) => Work::Failed(outcome.clone(), *kind),
                Ok((command, ctx)) => {
                    transport.get_or_insert_with(|| Arc::clone(&ctx.transport));
                    match command.remote(&m.task, ctx).await {
                        Ok(Some(Remote::Step { what, script, made })) => Work::Steps {
                            changes: vec![step_change(&m.task.command, what, script)],
                            made: Some(made),
                        },
                        Ok(Some(Remote::Operations(ops))) => Work::Unplanned(ops),
                        Ok(None) => Work::Failed(
                            TaskOutcome::Failed(format!(
                                "`{}` cannot run in a batch (a toyc bug: please report it)",
                                m.task.command
                            )),
                            FailureKind::Command,
                        ),
                        Err(f) => failed(f),
                    }
                }
            });
        }
        let mut cursor = self.start;
        loop {
            // What needs no round trip at the head: operations with nothing to change,
            // and a task that fails before it is sent.
            loop {
                if cursor == n {
                    return TaskOutcome::Ok;
                }
                match &works[cursor] {
                    Work::Steps { changes, .. } if changes.is_empty() => {
                        self.begin(cursor);
                        self.end_ok(cursor, &works[cursor]);
                        cursor += 1;
                    }
                    Work::Failed(outcome, kind) => {
                        let (outcome, kind) = (outcome.clone(), *kind);
                        self.begin(cursor);
                        return self.end_failed(cursor, outcome, kind);
                    }
                    _ => break,
                }
            }
            if b.stop.load(Ordering::SeqCst) || b.run.cancel.is_cancelled() {
                let mut ledger = b.lock();
                for m in &b.members[cursor..] {
                    ledger.reports[m.pos] = Some(TaskReport::Skipped(
                        "not started: an earlier task of the stage failed".into(),
                    ));
                }
                return TaskOutcome::Ok;
            }
            let Some(transport) = transport.clone() else {
                // Every member without a context failed above.
                return TaskOutcome::Ok;
            };
            // This round trip: every step ready from the cursor on, then the facts of
            // the operations after them.
            let mut steps: Vec<(usize, Change, Purpose)> = Vec::new();
            let mut j = cursor;
            while let Some(Work::Steps { changes, .. }) = works.get(j) {
                steps.extend(changes.iter().map(|c| (j, c.clone(), Purpose::Work)));
                j += 1;
            }
            if let Some(Work::Unplanned(_)) = works.get(j) {
                let mut until = j;
                while let Some(Work::Unplanned(_)) = works.get(until) {
                    until += 1;
                }
                let ops: Vec<&Arc<dyn Operation>> = works[j..until]
                    .iter()
                    .flat_map(|w| match w {
                        Work::Unplanned(ops) => ops.as_slice(),
                        _ => &[],
                    })
                    .collect();
                let queries = fact_queries(ops.into_iter(), false);
                let batch = FactBatch::new(queries);
                if batch.is_empty() {
                    plan(&mut works, j, until, Facts::default());
                    continue;
                }
                let facts = facts_change(&batch);
                steps.push((j, facts, Purpose::Facts { batch, until }));
            }
            match self
                .round_trip(&transport, &steps, &mut works, &mut cursor, attempt)
                .await
            {
                Ok(()) => {}
                Err(outcome) => return outcome,
            }
        }
    }

    /// Send `steps` in one script and follow their markers: tasks start and end as they
    /// arrive, facts are planned. `Err` with the attempt's outcome when a task failed.
    async fn round_trip(
        &mut self,
        transport: &Arc<dyn Transport>,
        steps: &[(usize, Change, Purpose)],
        works: &mut [Work],
        cursor: &mut usize,
        attempt: Attempt,
    ) -> Result<(), TaskOutcome> {
        let b = self.batch;
        let lock = HostLock::for_this_run();
        let changes: Vec<&Change> = steps.iter().map(|(_, c, _)| c).collect();
        let mut script = ApplyScript::locked(&changes, &lock);
        let request = ExecRequest {
            sudo: b.sudo,
            ..script.request()
        };
        let (lines, mut arrived) = tokio::sync::mpsc::unbounded_channel();
        let limit = crate::transport::max_output();
        // The step running now (its index and what it printed so far), and when it
        // runs over the stage's timeout.
        let mut open: Option<(usize, String)> = None;
        let mut deadline: Option<tokio::time::Instant> = None;
        let mut ended = 0usize;
        let mut failure: Option<(usize, TaskOutcome, FailureKind)> = None;
        let mut lock_timeout: Option<String> = None;
        let mut timed_out = false;
        let result = {
            let exec = transport.exec(&request, Some(&lines));
            tokio::pin!(exec);
            loop {
                let sleep = async {
                    match deadline {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    result = &mut exec => break Some(result),
                    Some((_, line)) = arrived.recv() => {
                        self.line(&line, &script, steps, works, cursor, &mut open, &mut deadline,
                            &mut ended, &mut failure, &mut lock_timeout, attempt, limit);
                    }
                    () = sleep => {
                        timed_out = true;
                        break None;
                    }
                }
            }
        };
        drop(lines);
        if !timed_out {
            while let Ok((_, line)) = arrived.try_recv() {
                self.line(
                    &line,
                    &script,
                    steps,
                    works,
                    cursor,
                    &mut open,
                    &mut deadline,
                    &mut ended,
                    &mut failure,
                    &mut lock_timeout,
                    attempt,
                    limit,
                );
            }
        }
        if timed_out {
            let member = open.as_ref().map_or(*cursor, |(s, _)| steps[*s].0);
            let seconds = attempt.timeout.map_or(0.0, |t| t.as_secs_f64());
            return Err(self.end_failed(
                member,
                TaskOutcome::Failed(format!("timed out after {seconds}s")),
                FailureKind::Timeout,
            ));
        }
        if let Some((member, outcome, kind)) = failure {
            return Err(self.end_failed(member, outcome, kind));
        }
        if let Some(holder) = lock_timeout {
            let why = format!(
                "gave up after {}s waiting for the apply lock on `{}`, held by {holder}; \
                 nothing was changed. Let that run end, or wait longer with TOYC_LOCK_TIMEOUT=SECONDS",
                lock.wait.as_secs(),
                transport.host()
            );
            return Err(self.end_failed(*cursor, TaskOutcome::Failed(why), FailureKind::Apply));
        }
        match result {
            Some(Err(e)) => {
                let member = open.as_ref().map_or(*cursor, |(s, _)| steps[*s].0);
                let kind = FailureKind::of(&e, FailureKind::Command);
                let outcome = if e.is_unreachable() {
                    TaskOutcome::Unreachable(e.to_string())
                } else {
                    TaskOutcome::Failed(e.to_string())
                };
                Err(self.end_failed(member, outcome, kind))
            }
            _ if ended < steps.len() => {
                let why = format!(
                    "the host reported {ended} of the batch's {} step(s) ended",
                    steps.len()
                );
                Err(self.end_failed(*cursor, TaskOutcome::Failed(why), FailureKind::Command))
            }
            _ => Ok(()),
        }
    }

    /// Take one line of a round trip's output.
    #[allow(clippy::too_many_arguments)]
    fn line(
        &mut self,
        line: &str,
        script: &ApplyScript,
        steps: &[(usize, Change, Purpose)],
        works: &mut [Work],
        cursor: &mut usize,
        open: &mut Option<(usize, String)>,
        deadline: &mut Option<tokio::time::Instant>,
        ended: &mut usize,
        failure: &mut Option<(usize, TaskOutcome, FailureKind)>,
        lock_timeout: &mut Option<String>,
        attempt: Attempt,
        limit: usize,
    ) {
        let b = self.batch;
        match script.lock_news(line) {
            Some(LockNews::Waiting(holder)) => {
                let host = transport_host(b);
                b.run.events.emit(&Event::Message {
                    host: Some(host.clone()),
                    level: Level::Warn,
                    text: format!("waiting for the apply lock on `{host}`, held by {holder}"),
                });
                return;
            }
            Some(LockNews::TimedOut(holder)) => {
                *lock_timeout = Some(holder);
                return;
            }
            None => {}
        }
        match script.step_news(line) {
            Some(StepNews::Begin(s)) if s < steps.len() => {
                let member = steps[s].0;
                // Operations with nothing to change between the last task and this one.
                while *cursor < member {
                    self.begin(*cursor);
                    self.end_ok(*cursor, &works[*cursor]);
                    *cursor += 1;
                }
                self.begin(member);
                *open = Some((s, String::new()));
                *deadline = attempt.timeout.map(|t| tokio::time::Instant::now() + t);
            }
            Some(StepNews::End(s, status)) if s < steps.len() => {
                *deadline = None;
                *ended += 1;
                let output = open
                    .take()
                    .filter(|(o, _)| *o == s)
                    .map(|(_, text)| text.trim_end_matches('\n').to_owned())
                    .unwrap_or_default();
                let (member, change, purpose) = &steps[s];
                let member = *member;
                match purpose {
                    Purpose::Facts { batch, until } => {
                        let facts = if status == 0 {
                            batch.parse(&output)
                        } else {
                            Err(format!("exit status {status}: {}", tail(&output)))
                        };
                        match facts {
                            Ok(facts) => plan(works, member, *until, facts),
                            Err(e) => {
                                *failure = Some((
                                    member,
                                    TaskOutcome::Failed(format!("gathering facts failed: {e}")),
                                    FailureKind::Plan,
                                ))
                            }
                        }
                    }
                    Purpose::Work => {
                        let built_in = matches!(works[member], Work::Steps { made: Some(_), .. });
                        if !built_in {
                            b.run.events.emit(&Event::Step {
                                host: transport_host(b),
                                operation: change.operation.clone(),
                                target: change.target.clone(),
                                status,
                                output: output.clone(),
                            });
                        }
                        if status != 0 {
                            let why = if built_in {
                                let shown: String = change.summary.chars().take(80).collect();
                                format!("`{shown}` exited with status {status}: {}", tail(&output))
                            } else {
                                format!(
                                    "`{}` on `{}` failed (status {status}): {}",
                                    change.operation,
                                    change.target,
                                    tail(&output)
                                )
                            };
                            let kind = if built_in {
                                FailureKind::Command
                            } else {
                                FailureKind::Apply
                            };
                            *failure = Some((member, TaskOutcome::Failed(why), kind));
                            return;
                        }
                        self.steps_made[member] += 1;
                        let last_of_member = !matches!(
                            steps.get(s + 1),
                            Some((next, _, Purpose::Work)) if *next == member
                        );
                        if last_of_member {
                            self.end_ok(member, &works[member]);
                            *cursor = member + 1;
                        }
                    }
                }
            }
            _ => {
                if let Some((_, text)) = open.as_mut() {
                    if text.len() < limit {
                        text.push_str(line);
                        text.push('\n');
                    }
                }
            }
        }
    }

    /// Task `k` starts (events, progress), unless it already has in this attempt.
    fn begin(&mut self, k: usize) {
        if self.started[k].is_some() {
            return;
        }
        self.started[k] = Some(Instant::now());
        let b = self.batch;
        let m = &b.members[k];
        b.lock().tries[m.pos] += 1;
        b.run.progress.start(&label(m));
        b.run.events.emit(&Event::TaskStart {
            stage: b.stage.clone(),
            index: m.index,
            command: m.task.command.clone(),
            host: m.task.host.clone(),
            service: m.task.service().map(str::to_owned),
        });
    }

    /// Task `k` ended well.
    fn end_ok(&mut self, k: usize, work: &Work) {
        let made = match work {
            Work::Steps { made: Some(n), .. } => *n,
            _ => self.steps_made[k],
        };
        if made == 0 && !matches!(work, Work::Steps { made: Some(_), .. }) {
            if let Ok((_, ctx)) = &self.batch.members[k].prepared {
                ctx.log(Level::Info, "no change");
            }
        }
        {
            let mut ledger = self.batch.lock();
            let pos = self.batch.members[k].pos;
            ledger.changed[pos] += made;
            ledger.resume[self.batch.unit] = k + 1;
        }
        self.end(k, TaskOutcome::Ok, None);
    }

    /// Task `k` failed: the attempt's outcome.
    fn end_failed(&mut self, k: usize, outcome: TaskOutcome, kind: FailureKind) -> TaskOutcome {
        self.begin(k);
        let b = self.batch;
        if b.aborts && (b.last || matches!(outcome, TaskOutcome::Unreachable(_))) {
            b.stop.store(true, Ordering::SeqCst);
        }
        self.end(k, outcome.clone(), Some(kind));
        outcome
    }

    fn end(&mut self, k: usize, outcome: TaskOutcome, kind: Option<FailureKind>) {
        let b = self.batch;
        let m = &b.members[k];
        {
            let mut ledger = b.lock();
            ledger.kinds[m.pos] = kind;
            ledger.ends[m.pos] = Some(Instant::now());
            let attempts = ledger.tries[m.pos].max(1);
            ledger.reports[m.pos] = Some(TaskReport::Ran {
                outcome: outcome.clone(),
                attempts,
            });
        }
        let (status, error) = match outcome {
            TaskOutcome::Ok => (TaskStatus::Ok, None),
            TaskOutcome::Failed(e) | TaskOutcome::Unreachable(e) => (TaskStatus::Failed, Some(e)),
        };
        b.run.events.emit(&Event::TaskEnd {
            stage: b.stage.clone(),
            index: m.index,
            command: m.task.command.clone(),
            host: m.task.host.clone(),
            service: m.task.service().map(str::to_owned),
            status,
            error,
            elapsed_ms: self.started[k].map_or(0, elapsed_ms),
        });
        b.run.progress.done(&label(m));
    }
}

/// The progress line's name of a task.
fn label(m: &Member) -> String {
    format!("{} {}#{}", m.task.host, m.task.command, m.index)
}

fn transport_host(b: &Batch) -> String {
    b.members
        .first()
        .map(|m| m.task.host.clone())
        .unwrap_or_default()
}

/// A task failure as a member's fate.
fn failed(f: TaskFailure) -> Work {
    let outcome = if f.unreachable {
        TaskOutcome::Unreachable(f.message)
    } else {
        TaskOutcome::Failed(f.message)
    };
    Work::Failed(outcome, f.kind)
}

/// Plan the operations of `works[from..until]` in order against `facts`; the first that
/// cannot be planned fails when its turn comes (the ones after it wait: they would be
/// planned against the state it leaves).
fn plan(works: &mut [Work], from: usize, until: usize, mut facts: Facts) {
    for work in &mut works[from..until] {
        let Work::Unplanned(ops) = work else {
            continue;
        };
        let mut changes = Vec::new();
        for op in ops.iter() {
            match plan_operation(op.as_ref(), &mut facts) {
                Ok(Outcome::Change(change)) => changes.push(change),
                Ok(Outcome::NoChange(_)) => {}
                Err(e) => {
                    *work = Work::Failed(TaskOutcome::Failed(e.to_string()), FailureKind::Plan);
                    return;
                }
            }
        }
        *work = Work::Steps {
            changes,
            made: None,
        };
    }
}

/// A built-in's shell as a step: `set +e` gives it back the shell's own rules (a step
/// runs under `set -e`), so it exits as it would alone.
fn step_change(command: &str, what: String, script: String) -> Change {
    Change {
        operation: command.to_owned(),
        target: what.clone(),
        kind: ChangeKind::Run,
        summary: what,
        diff: None,
        script: format!("set +e\n{script}"),
        payload: None,
    }
}

/// The facts script as the last step of a round trip; its own error output is left
/// out (alone, it goes to stderr, which the facts are not read from).
fn facts_change(batch: &FactBatch) -> Change {
    Change {
        operation: "facts".to_owned(),
        target: String::new(),
        kind: ChangeKind::Run,
        summary: "facts".to_owned(),
        diff: None,
        script: format!("set +e\n{{\n{}\n}} 2>/dev/null", batch.script()),
        payload: None,
    }
}

/// The last lines a step printed, on one line, for a failure message.
fn tail(output: &str) -> String {
    let t = output.trim();
    if t.is_empty() {
        return "no output".into();
    }
    let lines: Vec<&str> = t.lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}
