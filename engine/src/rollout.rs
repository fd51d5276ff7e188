//! A runbook over many hosts: **prepare** every host (run its script, ask every fact of
//! every stage in one round trip, plan each stage and the handlers it may notify), then
//! **execute** stage by stage under the [`scheduler`](crate::scheduler): a host's
//! changes of one stage travel as one script, notified handlers as one more.
//!
//! Nothing here prints or asks: the front end shows the [`Prepared`] hosts, confirms,
//! and calls [`execute`].

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::apply::{
    apply_telling, apply_within, changes, fact_queries, gather_facts, plan_operation, ApplyError,
};
use crate::events::{Event, EventSink, FailureKind, HostResult, HostStatus, Level};
use crate::inventory::Host;
use crate::plan::{Change, Outcome, StepResult};
use crate::run::RunContext;
use crate::runbook::Runbook;
use crate::runner::{elapsed_ms, ScriptJob};
use crate::scheduler::{run_stage, Attempt, FailurePolicy, StageOptions, TaskEnd, TaskOutcome};
use crate::transport::Transport;

/// One host after the prepare phase: its connection (kept open for execute), how it went
/// so far, and what each stage would change.
pub struct Prepared {
    /// The open connection; `None` when the host could not be reached.
    pub transport: Option<Arc<dyn Transport>>,
    /// How the host did so far (a failed script or unreachable host ends here).
    pub result: HostResult,
    /// Its stages, planned, in script order.
    pub stages: Vec<PlannedStage>,
    /// Whether its commands go through sudo.
    pub sudo: bool,
    /// When work on the host began.
    pub started: Instant,
}

impl Prepared {
    /// The changes the host's stages would make (handlers not counted).
    pub fn pending(&self) -> usize {
        self.stages.iter().map(|s| s.changes().len()).sum()
    }

    /// Whether the host can take part in execute.
    fn usable(&self) -> bool {
        self.transport.is_some() && self.result.status == HostStatus::Ok
    }
}

/// One stage of one host, planned.
#[derive(Debug, Clone)]
pub struct PlannedStage {
    /// The stage's name.
    pub name: String,
    /// Its options, if the script gave any.
    pub options: Option<StageOptions>,
    /// What each of its operations found, in order.
    pub outcomes: Vec<Outcome>,
    /// For each outcome, the handlers it notifies.
    pub notify: Vec<Vec<String>>,
    /// Handlers that some change of this stage notifies, planned after the stage.
    pub handlers: Vec<PlannedHandler>,
}

impl PlannedStage {
    /// The stage's changes, in order.
    pub fn changes(&self) -> Vec<&Change> {
        changes(&self.outcomes)
    }
}

/// A handler a stage may run on a host.
#[derive(Debug, Clone)]
pub struct PlannedHandler {
    /// Its name.
    pub name: String,
    /// Indices into [`PlannedStage::changes`] of the changes that notify it: it runs when
    /// at least one of them was made.
    pub notifiers: Vec<usize>,
    /// What its operations would do, planned against the state the stage leaves.
    pub outcomes: Vec<Outcome>,
}

/// Where one host's runbook comes from.
pub enum HostRunbook {
    /// The job's script, run for the host.
    Script(Arc<ScriptJob>),
    /// A runbook already declared (the console's, an operation task's).
    Declared(Runbook),
}

/// Connect to `host` through the run's session, run its script, and plan every stage
/// and notified handler against facts asked in one round trip. Never fails: problems
/// become the host's result.
pub async fn prepare(
    host: Host,
    runbook: HostRunbook,
    run: &RunContext,
    diff: bool,
    sudo: bool,
) -> Prepared {
    let started = Instant::now();
    match run.session.connect(&host).await {
        Ok(transport) => prepare_on(host, runbook, diff, sudo, transport).await,
        Err(e) => {
            let mut result = HostResult::ok(host.name);
            result.unreachable(e.to_string());
            result.elapsed_ms = elapsed_ms(started);
            Prepared {
                transport: None,
                result,
                stages: Vec::new(),
                sudo,
                started,
            }
        }
    }
}

/// [`prepare`] over a connection already open.
pub async fn prepare_on(
    host: Host,
    runbook: HostRunbook,
    diff: bool,
    sudo: bool,
    transport: Arc<dyn Transport>,
) -> Prepared {
    let started = Instant::now();
    let (mut result, runbook) = match runbook {
        HostRunbook::Script(job) => job.run_runbook(host, Arc::clone(&transport), started).await,
        HostRunbook::Declared(runbook) => (HostResult::ok(host.name), runbook),
    };
    let mut stages = Vec::new();
    if result.status == HostStatus::Ok && !runbook.is_empty() {
        match plan_runbook(transport.as_ref(), &runbook, diff, sudo).await {
            Ok(planned) => stages = planned,
            Err(e) => match &e {
                ApplyError::Transport(t) if t.is_unreachable() => {
                    result.unreachable(e.to_string());
                }
                ApplyError::Transport(t) => {
                    result.fail(FailureKind::of(t, FailureKind::Plan), e.to_string());
                }
                _ => result.fail(FailureKind::Plan, e.to_string()),
            },
        }
    }
    Prepared {
        transport: Some(transport),
        result,
        stages,
        sudo,
        started,
    }
}

/// Plan every stage in order, each operation against the state the ones before it leave,
/// and each handler a stage may notify against the state that stage leaves.
async fn plan_runbook(
    transport: &dyn Transport,
    runbook: &Runbook,
    diff: bool,
    sudo: bool,
) -> Result<Vec<PlannedStage>, ApplyError> {
    let handler_ops = runbook.handlers.iter().flat_map(|h| h.operations.iter());
    let all: Vec<&Arc<dyn crate::plan::Operation>> =
        runbook.operations().chain(handler_ops).collect();
    let queries = fact_queries(all.iter().copied(), diff);
    let mut facts = gather_facts(transport, &queries, sudo).await?;
    let mut planned = Vec::with_capacity(runbook.stages.len());
    for stage in &runbook.stages {
        let mut outcomes = Vec::with_capacity(stage.operations.len());
        let mut notify = Vec::with_capacity(stage.operations.len());
        for declared in &stage.operations {
            outcomes.push(plan_operation(declared.operation.as_ref(), &mut facts)?);
            notify.push(declared.notify.clone());
        }
        // Which change (by its index among the stage's changes) notifies which handler.
        let mut handlers: Vec<PlannedHandler> = Vec::new();
        let changed = outcomes
            .iter()
            .zip(&notify)
            .filter(|(o, _)| matches!(o, Outcome::Change(_)));
        for (index, (_, names)) in changed.enumerate() {
            for name in names {
                match handlers.iter_mut().find(|h| &h.name == name) {
                    Some(handler) => handler.notifiers.push(index),
                    None => handlers.push(PlannedHandler {
                        name: name.clone(),
                        notifiers: vec![index],
                        outcomes: Vec::new(),
                    }),
                }
            }
        }
        for handler in &mut handlers {
            // A handler runs only if notified: what it would leave must not mislead the
            // planning of later stages, so it plans on a copy.
            let mut after = facts.clone();
            let ops = runbook
                .handler(&handler.name)
                .map(|h| h.operations.as_slice())
                .unwrap_or_default();
            for op in ops {
                handler
                    .outcomes
                    .push(plan_operation(op.as_ref(), &mut after)?);
            }
        }
        planned.push(PlannedStage {
            name: stage.name.clone(),
            options: stage.options.clone(),
            outcomes,
            notify,
            handlers,
        });
    }
    Ok(planned)
}

/// What [`execute`] did, besides each host's result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Executed {
    /// A stage aborted: later work was not started and the run fails.
    pub aborted: bool,
}

/// Execute the prepared hosts' stages in order. Each stage runs under its options
/// (`defaults` where the script gave none); a host whose stage failed is dropped from
/// later stages unless the stage says `continue`; after an abort nothing new starts.
/// Results are updated in place: status, error, changes made.
pub async fn execute(
    prepared: &mut [Prepared],
    defaults: &StageOptions,
    run: &RunContext,
) -> Executed {
    execute_stages(prepared, defaults, run, true).await
}

/// [`execute`]; with `announce` false, stages start and end without an event or a
/// progress line (one host's runbook inside a task, which has its own).
pub async fn execute_stages(
    prepared: &mut [Prepared],
    defaults: &StageOptions,
    run: &RunContext,
    announce: bool,
) -> Executed {
    let events = &run.events;
    let progress = &run.progress;
    let order = match stage_order(prepared) {
        Ok(order) => order,
        Err(message) => {
            for host in prepared.iter_mut().filter(|p| p.usable()) {
                host.result.fail(FailureKind::Plan, message.clone());
            }
            return Executed { aborted: true };
        }
    };
    let mut aborted = false;
    for name in order {
        let options = prepared
            .iter()
            .flat_map(|p| &p.stages)
            .find(|s| s.name == name)
            .and_then(|s| s.options.clone())
            .map(|mut o| {
                o.concurrency = o.concurrency.or(defaults.concurrency);
                o
            })
            .unwrap_or_else(|| defaults.clone());
        let participants: Vec<usize> = (0..prepared.len())
            .filter(|&i| prepared[i].usable())
            .filter(|&i| {
                prepared[i]
                    .stages
                    .iter()
                    .any(|s| s.name == name && !s.changes().is_empty())
            })
            .collect();
        if participants.is_empty() {
            continue;
        }
        if aborted {
            for &i in &participants {
                prepared[i]
                    .result
                    .skip(format!("the run aborted before stage `{name}`"));
            }
            continue;
        }
        let tasks: Vec<Arc<StageTask>> = participants
            .iter()
            .map(|&i| Arc::new(StageTask::new(&prepared[i], &name, options.retries)))
            .collect();
        let hosts: Vec<String> = tasks.iter().map(|t| t.host.clone()).collect();
        if announce {
            events.emit(&Event::StageStart {
                stage: name.clone(),
                hosts: hosts.clone(),
                continues_on_failure: options.on_failure == FailurePolicy::Continue,
            });
            progress.phase(&format!("stage {name}"), hosts.len());
        }
        let progress = Arc::new(progress.clone());
        let attempt_task = |attempt: Attempt| {
            let task = Arc::clone(&tasks[attempt.task]);
            let events = Arc::clone(events);
            let progress = Arc::clone(&progress);
            async move {
                progress.start(&task.host);
                let outcome = task.attempt(attempt, events.as_ref()).await;
                progress.done(&task.host);
                outcome
            }
        };
        let report = run_stage(&options, &hosts, &run.cancel, attempt_task).await;
        let tally = report.tally(&options, |n, end| {
            let (task, host) = (&tasks[n], &mut prepared[participants[n]]);
            host.result.changed += task.changed();
            match end {
                TaskEnd::Ok => {}
                TaskEnd::Failed {
                    why,
                    continues: true,
                } => events.emit(&Event::Message {
                    host: Some(host.result.host.clone()),
                    level: crate::events::Level::Warn,
                    text: format!("stage `{name}`: {why}; the stage continues on failure"),
                }),
                TaskEnd::Failed { why, .. } => {
                    host.result
                        .fail(task.failure_kind(), format!("stage `{name}`: {why}"));
                }
                TaskEnd::Skipped(why) => host.result.skip(format!("stage `{name}`: {why}")),
            }
        });
        aborted |= report.aborted;
        if announce {
            events.emit(&Event::StageEnd {
                stage: name,
                ok: tally.ok,
                failed: tally.failed,
                skipped: tally.skipped,
                aborted: report.aborted,
            });
        }
    }
    Executed { aborted }
}

/// Stage names in an order every host agrees with: each host's stages keep their
/// order, hosts may leave stages out, and ties go by first appearance. Two hosts
/// declaring two stages in opposite orders cannot both be honoured: an error naming them.
fn stage_order(prepared: &[Prepared]) -> Result<Vec<String>, String> {
    let mut names: Vec<&str> = Vec::new();
    for stage in prepared.iter().flat_map(|p| &p.stages) {
        if !names.contains(&stage.name.as_str()) {
            names.push(&stage.name);
        }
    }
    let index = |name: &str| names.iter().position(|n| *n == name).unwrap_or(0);
    // `before[b]`: the stages some host declares right before `b`.
    let mut before: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); names.len()];
    for host in prepared {
        for pair in host.stages.windows(2) {
            before[index(&pair[1].name)].insert(index(&pair[0].name));
        }
    }
    let mut order: Vec<usize> = Vec::with_capacity(names.len());
    while order.len() < names.len() {
        let next = (0..names.len())
            .find(|n| !order.contains(n) && before[*n].iter().all(|b| order.contains(b)));
        match next {
            Some(n) => order.push(n),
            None => return Err(conflict(prepared)),
        }
    }
    Ok(order.into_iter().map(|n| names[n].to_owned()).collect())
}

/// The first two hosts that declare two stages in opposite orders, for the error.
fn conflict(prepared: &[Prepared]) -> String {
    let position = |p: &Prepared, name: &str| p.stages.iter().position(|s| s.name == name);
    let listed = |p: &Prepared| {
        p.stages
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(" → ")
    };
    for (i, a) in prepared.iter().enumerate() {
        for b in &prepared[i + 1..] {
            let opposite = a.stages.iter().enumerate().any(|(x, s)| {
                a.stages[x + 1..].iter().any(|t| {
                    matches!((position(b, &s.name), position(b, &t.name)), (Some(p), Some(q)) if p > q)
                })
            });
            if opposite {
                return format!(
                    "host `{}` declares its stages in the order {}, host `{}` in the order {}; \
                     stages run in one order on every host",
                    b.result.host,
                    listed(b),
                    a.result.host,
                    listed(a)
                );
            }
        }
    }
    "the hosts declare their stages in conflicting orders".into()
}

/// One host's part of one stage: its changes, how far they got, and its handlers.
struct StageTask {
    host: String,
    transport: Arc<dyn Transport>,
    sudo: bool,
    changes: Vec<Change>,
    handlers: Vec<PlannedHandler>,
    retries: u32,
    made: Mutex<Made>,
}

#[derive(Default)]
struct Made {
    /// Index of the first change not yet made.
    next: usize,
    /// Indices of the changes made.
    made: BTreeSet<usize>,
    /// Changes and handler changes made, for the host's result.
    changed: usize,
    /// Whether the handlers had their turn.
    handled: bool,
    /// What kind of failure the last failed attempt was.
    failure: Option<FailureKind>,
}

impl StageTask {
    fn new(host: &Prepared, stage: &str, retries: u32) -> StageTask {
        let planned = host.stages.iter().find(|s| s.name == stage);
        StageTask {
            host: host.result.host.clone(),
            transport: host
                .transport
                .as_ref()
                .map(Arc::clone)
                .expect("only usable hosts, which have a transport, become tasks"),
            sudo: host.sudo,
            changes: planned
                .map(|s| s.changes().into_iter().cloned().collect())
                .unwrap_or_default(),
            handlers: planned.map(|s| s.handlers.clone()).unwrap_or_default(),
            retries,
            made: Mutex::new(Made::default()),
        }
    }

    fn changed(&self) -> usize {
        self.lock().changed
    }

    /// What kind of failure the host's part of the stage ended with.
    fn failure_kind(&self) -> FailureKind {
        self.lock().failure.unwrap_or(FailureKind::Apply)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Made> {
        self.made.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Make the changes not made yet (a retry resumes at the one that failed), then, on
    /// success or the last attempt, the handlers that a made change notified.
    async fn attempt(&self, attempt: Attempt, events: &dyn EventSink) -> TaskOutcome {
        let start = self.lock().next;
        let pending: Vec<&Change> = self.changes[start..].iter().collect();
        let waiting = |holder: &str| {
            events.emit(&Event::Message {
                host: Some(self.host.clone()),
                level: Level::Warn,
                text: format!(
                    "waiting for the apply lock on `{}`, held by {holder}",
                    self.host
                ),
            })
        };
        let outcome = match apply_telling(
            self.transport.as_ref(),
            &pending,
            self.sudo,
            attempt.timeout,
            &waiting,
        )
        .await
        {
            Ok(steps) => self.record(start, &pending, &steps, events),
            // The steps the host reported before it went were made: counted, then the loss.
            Err(ApplyError::Interrupted { steps, source }) => {
                self.lock().failure = Some(FailureKind::of(&source, FailureKind::Apply));
                let made = steps.iter().filter(|s| s.status == 0).count();
                match self.report(&pending, &steps, Some(start), events) {
                    Err(failed) if made < steps.len() => TaskOutcome::Failed(failed),
                    _ if source.is_unreachable() => TaskOutcome::Unreachable(format!(
                        "while applying changes, after {made} made: {source}"
                    )),
                    _ => TaskOutcome::Failed(format!("after {made} change(s) made: {source}")),
                }
            }
            Err(ApplyError::Transport(e)) if e.is_unreachable() => {
                self.lock().failure = Some(FailureKind::Unreachable);
                TaskOutcome::Unreachable(format!("while applying changes: {e}"))
            }
            Err(ApplyError::Transport(e)) => {
                self.lock().failure = Some(FailureKind::of(&e, FailureKind::Apply));
                TaskOutcome::Failed(e.to_string())
            }
            Err(e) => TaskOutcome::Failed(e.to_string()),
        };
        let last = attempt.number >= self.retries || matches!(outcome, TaskOutcome::Unreachable(_));
        if matches!(outcome, TaskOutcome::Ok) || last {
            let handled = self.run_handlers(attempt, events).await;
            if let (TaskOutcome::Ok, Err(e)) = (&outcome, handled) {
                return TaskOutcome::Failed(e);
            }
        }
        outcome
    }

    /// Report the steps that ran and note how far the changes got.
    fn record(
        &self,
        start: usize,
        pending: &[&Change],
        steps: &[StepResult],
        events: &dyn EventSink,
    ) -> TaskOutcome {
        match self.report(pending, steps, Some(start), events) {
            Ok(()) => TaskOutcome::Ok,
            Err(e) => TaskOutcome::Failed(e),
        }
    }

    /// Emit a step event per step, count what was made (noting, from index `start` of
    /// the stage's changes, which), and say what failed.
    fn report(
        &self,
        changes: &[&Change],
        steps: &[StepResult],
        start: Option<usize>,
        events: &dyn EventSink,
    ) -> Result<(), String> {
        let mut progress = self.lock();
        for step in steps {
            let change = changes[step.index];
            events.emit(&Event::Step {
                host: self.host.clone(),
                operation: change.operation.clone(),
                target: change.target.clone(),
                status: step.status,
                output: step.output.clone(),
            });
            if step.status == 0 {
                progress.changed += 1;
                if let Some(start) = start {
                    progress.made.insert(start + step.index);
                    progress.next = start + step.index + 1;
                }
            }
        }
        match steps.iter().find(|s| s.status != 0) {
            Some(failed) => {
                let change = changes[failed.index];
                Err(format!(
                    "`{}` on `{}` failed (status {}); {} later change(s) not made",
                    change.operation,
                    change.target,
                    failed.status,
                    changes.len() - failed.index - 1
                ))
            }
            None if steps.len() < changes.len() => Err(format!(
                "only {} of {} changes were reported made",
                steps.len(),
                changes.len()
            )),
            None => Ok(()),
        }
    }

    /// Apply, in one round trip, the handlers some made change notified; once.
    async fn run_handlers(&self, attempt: Attempt, events: &dyn EventSink) -> Result<(), String> {
        let notified: Vec<&Change> = {
            let mut progress = self.lock();
            if progress.handled {
                return Ok(());
            }
            progress.handled = true;
            self.handlers
                .iter()
                .filter(|h| h.notifiers.iter().any(|i| progress.made.contains(i)))
                .flat_map(|h| changes(&h.outcomes))
                .collect()
        };
        if notified.is_empty() {
            return Ok(());
        }
        let steps = apply_within(
            self.transport.as_ref(),
            &notified,
            self.sudo,
            attempt.timeout,
        )
        .await
        .map_err(|e| format!("handlers: {e}"))?;
        self.report(&notified, &steps, None, events)
            .map_err(|e| format!("handler {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, stages: &[&str]) -> Prepared {
        Prepared {
            transport: None,
            result: HostResult::ok(name),
            stages: stages
                .iter()
                .map(|s| PlannedStage {
                    name: (*s).into(),
                    options: None,
                    outcomes: Vec::new(),
                    notify: Vec::new(),
                    handlers: Vec::new(),
                })
                .collect(),
            sudo: false,
            started: Instant::now(),
        }
    }

    #[test]
    fn stages_run_in_the_order_hosts_declare_them_and_hosts_may_leave_some_out() {
        let order = stage_order(&[host("a", &["x", "z"]), host("b", &["x", "y", "z"])]);
        assert_eq!(order, Ok(vec!["x".into(), "y".into(), "z".into()]));
        let order = stage_order(&[host("a", &["w", "y"]), host("b", &["x", "y"])]);
        assert_eq!(order, Ok(vec!["w".into(), "x".into(), "y".into()]));
    }

    #[test]
    fn two_hosts_with_opposite_stage_orders_are_an_error_naming_the_host() {
        let err = stage_order(&[host("a", &["x", "y"]), host("b", &["y", "x"])])
            .expect_err("conflicting orders");
        assert!(
            err.contains(
                "host `b` declares its stages in the order y → x, host `a` in the order x → y"
            ),
            "{err}"
        );
    }
}
