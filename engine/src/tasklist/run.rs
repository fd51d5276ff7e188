//! Running a validated task list: connect every host it names (in parallel), then each stage
//! under the [`scheduler`](crate::scheduler): tasks start while `concurrency` and
//! `concurrency_per_host` leave room, a host's tasks in their order; on a failure under
//! `abort` nothing new starts, running tasks finish, later stages are skipped and the
//! run fails. `isolate` drops the failed host from the rest of the task list; `continue`
//! goes on (the failure is logged, the run does not fail for it).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::batch::{Batch, Ledger, Member};
use super::{validate, CommandSet, StagePlan, Task, TaskCommand, TaskContext, TaskList};
use crate::events::{
    Event, EventSink, FailureKind, HostResult, HostStatus, Level, Summary, TaskStatus,
};
use crate::inventory::Host;
use crate::run::{Gate, Library, Pending, Report, RunContext, RunError, TaskListJob, Verdict};
use crate::runner::{elapsed_ms, for_each_host};
use crate::scheduler::{
    run_stage, Attempt, FailurePolicy, StageOptions, StageReport, TaskEnd, TaskOutcome, TaskReport,
};
use crate::transport::Transport;

/// Run a task-list job (see [`crate::run::run`]): validate every task, stop under
/// `check`, ask the gate, run the stages, report every host and the totals.
pub(crate) async fn run(
    job: TaskListJob,
    run: &RunContext,
    library: &dyn Library,
    gate: &dyn Gate,
) -> Result<Report, RunError> {
    let commands = library.commands(&job.list, &job.base, &job.hosts, run);
    let invalid = validate(&job.list, commands.as_ref());
    if !invalid.is_empty() {
        return Err(RunError::Invalid {
            list: job.list.name.clone(),
            problems: invalid.iter().map(ToString::to_string).collect(),
        });
    }
    let tasks = job.list.task_count();
    let quiet = |verdict| Report {
        id: run.id.clone(),
        results: Vec::new(),
        summary: Summary::default(),
        pending: tasks,
        verdict,
    };
    if job.check {
        return Ok(quiet(if tasks > 0 {
            Verdict::ChangesPending
        } else {
            Verdict::Done
        }));
    }
    let asked = Pending {
        count: tasks,
        unit: "task(s)",
        hosts: job.hosts.len(),
    };
    match gate.approve(asked).await {
        Ok(true) => {}
        Ok(false) => return Ok(quiet(Verdict::Declined)),
        Err(why) => return Ok(quiet(Verdict::Refused(why))),
    }
    run.events.emit(&Event::RunStart {
        command: run.command.clone(),
        hosts: job.hosts.iter().map(|h| h.name.clone()).collect(),
    });
    let started = Instant::now();
    let setup = RunSetup {
        hosts: job.hosts,
        commands,
        sudo: job.sudo,
        forks: job.forks,
    };
    let ran = run_list(&job.list, setup, run).await;
    run.progress.finish();
    for result in &ran.results {
        run.events.emit(&Event::HostEnd(result.clone()));
    }
    let summary = Summary::of(&ran.results, elapsed_ms(started));
    run.events.emit(&Event::Summary(summary));
    Ok(Report {
        id: run.id.clone(),
        results: ran.results,
        summary,
        pending: tasks,
        verdict: if ran.aborted {
            Verdict::Aborted
        } else {
            Verdict::Done
        },
    })
}

/// What a task-list run needs besides the task list.
struct RunSetup {
    /// Every host the task list names, resolved (inventory, deploy config, or name as address).
    hosts: Vec<Host>,
    /// The commands tasks may name (already validated against the task list).
    commands: Arc<dyn CommandSet>,
    /// `--sudo`.
    sudo: bool,
    /// Hosts connected to at once.
    forks: usize,
}

/// How the run went.
#[derive(Debug, Clone, PartialEq)]
struct RunReport {
    /// One result per host, in the order the task list first names them.
    pub results: Vec<HostResult>,
    /// A stage aborted the run.
    pub aborted: bool,
}

/// One host's connection and what became of its tasks so far.
struct HostState {
    host: Host,
    transport: Option<Arc<dyn Transport>>,
    result: HostResult,
    last: Instant,
}

/// How long after a stage's timeout a task's work is abandoned on the controller.
const TIMEOUT_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// Run `list` (validated) on its hosts, reporting through the run's events.
async fn run_list(list: &TaskList, setup: RunSetup, run: &RunContext) -> RunReport {
    let (events, progress) = (&run.events, &run.progress);
    let started = Instant::now();
    let setup = Arc::new(setup);
    progress.phase("connecting", setup.hosts.len());
    let connected = for_each_host(&setup.hosts, setup.forks, |host| {
        let run = run.clone();
        async move {
            run.progress.start(&host.name);
            let transport = run.session.connect(&host).await;
            run.progress.done(&host.name);
            (host, transport)
        }
    })
    .await;
    progress.finish();
    let mut states: Vec<HostState> = connected
        .into_iter()
        .map(|(host, transport)| {
            let mut result = HostResult::ok(host.name.clone());
            let transport = match transport {
                Ok(t) => Some(t),
                Err(e) => {
                    result.unreachable(e.to_string());
                    None
                }
            };
            HostState {
                result,
                host,
                transport,
                last: Instant::now(),
            }
        })
        .collect();

    let mut aborted: Option<String> = None;
    let mut dropped: BTreeSet<String> = BTreeSet::new();
    for stage in &list.stages {
        if let Some(after) = &aborted {
            for (i, task) in stage.tasks.iter().enumerate() {
                let why = format!("the run aborted in stage `{after}`");
                skipped(events.as_ref(), stage, i, task, &why);
                mark_skipped(
                    &mut states,
                    &task.host,
                    &format!("stage `{}`: {why}", stage.name),
                );
            }
            continue;
        }
        let ran = run_one_stage(stage, &setup, &mut states, &dropped, run).await;
        progress.finish();
        if ran.aborted {
            aborted = Some(stage.name.clone());
        }
        if stage.on_failure == FailurePolicy::Isolate {
            dropped.extend(ran.failed_hosts);
        }
    }
    // The connections are the run's session's: it closes them once, when the run ends.
    for state in &mut states {
        state.result.elapsed_ms =
            u64::try_from(state.last.saturating_duration_since(started).as_millis())
                .unwrap_or(u64::MAX);
    }
    RunReport {
        results: states.into_iter().map(|s| s.result).collect(),
        aborted: aborted.is_some(),
    }
}

/// Each host by name: how the inventory describes it, its connection (`None` when it
/// could not be reached), and why not.
type Connections = HashMap<String, (Host, Option<Arc<dyn Transport>>, Option<String>)>;

/// What one stage did, for the stages after it.
struct StageRan {
    aborted: bool,
    failed_hosts: BTreeSet<String>,
}

async fn run_one_stage(
    stage: &StagePlan,
    setup: &Arc<RunSetup>,
    states: &mut [HostState],
    dropped: &BTreeSet<String>,
    run: &RunContext,
) -> StageRan {
    let (events, progress) = (&run.events, &run.progress);
    // Tasks of hosts an earlier `isolate` stage dropped do not run.
    let mut indices = Vec::new();
    for (i, task) in stage.tasks.iter().enumerate() {
        if dropped.contains(&task.host) {
            let why = format!("host `{}` was dropped after a failure", task.host);
            skipped(events.as_ref(), stage, i, task, &why);
        } else {
            indices.push(i);
        }
    }
    let hosts: Vec<String> = indices
        .iter()
        .map(|&i| stage.tasks[i].host.clone())
        .collect();
    let mut distinct: Vec<String> = Vec::new();
    for host in &hosts {
        if !distinct.contains(host) {
            distinct.push(host.clone());
        }
    }
    events.emit(&Event::StageStart {
        stage: stage.name.clone(),
        hosts: distinct,
        continues_on_failure: stage.options().on_failure == FailurePolicy::Continue,
    });
    progress.phase_of(&format!("stage {}", stage.name), indices.len(), "tasks");
    let options = stage.options();
    let connections: Connections = states
        .iter()
        .map(|s| {
            (
                s.host.name.clone(),
                (s.host.clone(), s.transport.clone(), s.result.error.clone()),
            )
        })
        .collect();
    let connections = Arc::new(connections);
    let tasks: Arc<Vec<(usize, Task)>> = Arc::new(
        indices
            .iter()
            .map(|&i| (i + 1, stage.tasks[i].clone()))
            .collect(),
    );
    // A host's consecutive tasks that can travel together run as one unit (a batch);
    // every other task is a unit of its own.
    let units = Arc::new(batch_units(&tasks, &options, setup, &connections));
    let unit_hosts: Vec<String> = units.iter().map(|u| tasks[u[0]].1.host.clone()).collect();
    let ledger = Arc::new(Mutex::new(Ledger::new(tasks.len(), units.len())));
    let stop = Arc::new(AtomicBool::new(false));
    let aborts = options.on_failure == FailurePolicy::Abort;
    let retries = options.retries;
    let attempt_unit = |attempt: Attempt| {
        let (tasks, connections, setup, units) = (
            Arc::clone(&tasks),
            Arc::clone(&connections),
            Arc::clone(setup),
            Arc::clone(&units),
        );
        let (events, progress) = (Arc::clone(events), progress.clone());
        let run = run.clone();
        let (ledger, stop) = (Arc::clone(&ledger), Arc::clone(&stop));
        let stage_name = stage.name.clone();
        async move {
            let unit = attempt.task;
            let last = attempt.number >= retries;
            if units[unit].len() > 1 {
                let members = units[unit]
                    .iter()
                    .map(|&pos| {
                        let (index, task) = &tasks[pos];
                        Member {
                            pos,
                            index: *index,
                            task: task.clone(),
                            prepared: task_context(task, attempt, &connections, &setup, &run),
                        }
                    })
                    .collect::<Vec<_>>();
                let sudo = effective_sudo(&members[0].task, &connections, &setup);
                let batch = Batch {
                    stage: stage_name,
                    unit,
                    members,
                    sudo,
                    last,
                    stop,
                    aborts,
                    ledger,
                    run,
                };
                return batch.run(attempt).await;
            }
            let pos = units[unit][0];
            let (index, task) = &tasks[pos];
            let label = format!("{} {}#{index}", task.host, task.command);
            progress.start(&label);
            events.emit(&Event::TaskStart {
                stage: stage_name.clone(),
                index: *index,
                command: task.command.clone(),
                host: task.host.clone(),
                service: task.service().map(str::to_owned),
            });
            let begun = Instant::now();
            let (outcome, kind, made) = run_task(task, attempt, &connections, &setup, &run).await;
            {
                let mut ledger = ledger.lock().unwrap_or_else(|p| p.into_inner());
                ledger.changed[pos] += made;
                ledger.kinds[pos] = kind;
                ledger.ends[pos] = Some(Instant::now());
            }
            let (status, error) = match &outcome {
                TaskOutcome::Ok => (TaskStatus::Ok, None),
                TaskOutcome::Failed(e) | TaskOutcome::Unreachable(e) => {
                    if aborts && (last || matches!(outcome, TaskOutcome::Unreachable(_))) {
                        stop.store(true, Ordering::SeqCst);
                    }
                    (TaskStatus::Failed, Some(e.clone()))
                }
            };
            events.emit(&Event::TaskEnd {
                stage: stage_name,
                index: *index,
                command: task.command.clone(),
                host: task.host.clone(),
                service: task.service().map(str::to_owned),
                status,
                error,
                elapsed_ms: elapsed_ms(begun),
            });
            progress.done(&label);
            outcome
        }
    };
    let by_unit = run_stage(&options, &unit_hosts, &run.cancel, attempt_unit).await;

    let ledger = std::mem::take(&mut *ledger.lock().unwrap_or_else(|p| p.into_inner()));
    let report = per_task(by_unit, &units, &tasks, ledger.reports);
    let (changed, kinds, ends) = (ledger.changed, ledger.kinds, ledger.ends);
    let tally = report.tally(&options, |n, end| {
        let (index, task) = &tasks[n];
        let Some(state) = states.iter_mut().find(|s| s.host.name == task.host) else {
            return;
        };
        state.result.changed += changed[n];
        if let Some(end) = ends[n] {
            state.last = state.last.max(end);
        }
        let message = |why: &str| {
            format!(
                "stage `{}` task {index} (`{}`): {why}",
                stage.name, task.command
            )
        };
        match end {
            TaskEnd::Ok => {}
            TaskEnd::Failed {
                why,
                continues: true,
            } => events.emit(&Event::Log {
                level: Level::Warn,
                component: "stage".into(),
                host: Some(task.host.clone()),
                service: task.service().map(str::to_owned),
                text: format!("{}; the stage continues on failure", message(&why)),
            }),
            // A host keeps its first failure; a lost host stays unreachable.
            TaskEnd::Failed { .. } if state.result.status == HostStatus::Unreachable => {}
            TaskEnd::Failed { .. } if state.result.error.is_some() => {
                state.result.status = HostStatus::Failed;
            }
            TaskEnd::Failed { why, .. } => {
                let kind = kinds[n].unwrap_or(FailureKind::Command);
                state.result.fail(kind, message(&why));
            }
            TaskEnd::Skipped(why) => {
                skipped(events.as_ref(), stage, index - 1, task, why);
                state.result.skip(format!("stage `{}`: {why}", stage.name));
            }
        }
    });
    events.emit(&Event::StageEnd {
        stage: stage.name.clone(),
        ok: tally.ok,
        failed: tally.failed,
        skipped: tally.skipped,
        aborted: report.aborted,
    });
    StageRan {
        aborted: report.aborted,
        failed_hosts: report.failed_hosts,
    }
}

/// One attempt of one task: its command on its host's open connection, within the
/// stage's timeout.
async fn run_task(
    task: &Task,
    attempt: Attempt,
    connections: &Connections,
    setup: &RunSetup,
    run: &RunContext,
) -> (TaskOutcome, Option<FailureKind>, usize) {
    let (command, ctx) = match task_context(task, attempt, connections, setup, run) {
        Ok(found) => found,
        Err((outcome, kind)) => return (outcome, Some(kind), 0),
    };
    let work = command.execute(task, &ctx);
    let result = match attempt.timeout {
        // Remote commands are killed at the timeout by the transport, which then reports
        // it: this backstop only bounds work on the controller, a little later, so it
        // never drops a remote command that the transport is about to kill.
        Some(limit) => match tokio::time::timeout(limit + TIMEOUT_GRACE, work).await {
            Ok(result) => result,
            Err(_) => {
                let why = format!("timed out after {}s", limit.as_secs_f64());
                return (TaskOutcome::Failed(why), Some(FailureKind::Timeout), 0);
            }
        },
        None => work.await,
    };
    match result {
        Ok(n) => (TaskOutcome::Ok, None, n),
        Err(f) if f.unreachable => (TaskOutcome::Unreachable(f.message), Some(f.kind), 0),
        Err(f) => (TaskOutcome::Failed(f.message), Some(f.kind), 0),
    }
}

/// A task's command and what it can reach, or why it cannot run.
fn task_context(
    task: &Task,
    attempt: Attempt,
    connections: &Connections,
    setup: &RunSetup,
    run: &RunContext,
) -> Result<(Arc<dyn TaskCommand>, TaskContext), (TaskOutcome, FailureKind)> {
    let Some((host, transport, error)) = connections.get(&task.host) else {
        let why = format!("host `{}` was not resolved", task.host);
        return Err((TaskOutcome::Failed(why), FailureKind::Command));
    };
    let Some(transport) = transport else {
        let why = error.clone().unwrap_or_else(|| "unreachable".into());
        return Err((TaskOutcome::Unreachable(why), FailureKind::Unreachable));
    };
    let command = setup
        .commands
        .command(&task.command)
        .map_err(|e| (TaskOutcome::Failed(e), FailureKind::Command))?;
    let ctx = TaskContext {
        sudo: setup.sudo || host.sudo,
        host: host.clone(),
        transport: Arc::clone(transport),
        timeout: attempt.timeout,
        run: run.clone(),
        component: task.command.clone(),
        service: task.service().map(str::to_owned),
    };
    Ok((command, ctx))
}

/// Whether `task` runs through sudo: its own `sudo`, else `--sudo` or its host's.
fn effective_sudo(task: &Task, connections: &Connections, setup: &RunSetup) -> bool {
    let default = setup.sudo
        || connections
            .get(&task.host)
            .is_some_and(|(host, _, _)| host.sudo);
    task.args
        .get("sudo")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(default)
}

/// The stage's tasks (positions in `tasks`) as scheduler units: a host's consecutive
/// batchable tasks with the same `sudo` form one batch ([`super::batch`]) where the stage
/// runs a host's tasks one at a time and a failure stops the host's later ones; every
/// other task is a unit of its own. Units are in the order of their first task.
fn batch_units(
    tasks: &[(usize, Task)],
    options: &StageOptions,
    setup: &RunSetup,
    connections: &Connections,
) -> Vec<Vec<usize>> {
    let batching = options.concurrency_per_host == Some(1)
        && matches!(
            options.on_failure,
            FailurePolicy::Abort | FailurePolicy::Isolate
        )
        && std::env::var_os("TOYC_NO_BATCH").is_none();
    let mut units: Vec<Vec<usize>> = Vec::new();
    // Each host's open batch: its unit and its `sudo`.
    let mut open: HashMap<&str, (usize, bool)> = HashMap::new();
    for (pos, (_, task)) in tasks.iter().enumerate() {
        let batchable = batching
            && setup
                .commands
                .command(&task.command)
                .is_ok_and(|c| c.batchable(task));
        if !batchable {
            open.remove(task.host.as_str());
            units.push(vec![pos]);
            continue;
        }
        let sudo = effective_sudo(task, connections, setup);
        match open.get(task.host.as_str()) {
            Some(&(unit, s)) if s == sudo => units[unit].push(pos),
            _ => {
                open.insert(task.host.as_str(), (units.len(), sudo));
                units.push(vec![pos]);
            }
        }
    }
    units
}

/// The scheduler's report over units, as a report over the stage's tasks: a task run
/// alone has its unit's report; a batched task has what the batch wrote down, and one
/// the batch never reached was skipped.
fn per_task(
    by_unit: StageReport,
    units: &[Vec<usize>],
    tasks: &[(usize, Task)],
    mut batched: Vec<Option<TaskReport>>,
) -> StageReport {
    let mut reports: Vec<Option<TaskReport>> = vec![None; tasks.len()];
    for (unit, report) in units.iter().zip(by_unit.tasks) {
        match (&report, unit.as_slice()) {
            (_, [pos]) => reports[*pos] = Some(report),
            (TaskReport::Skipped(_), _) => {
                for &pos in unit {
                    reports[pos] = Some(report.clone());
                }
            }
            (TaskReport::Ran { .. }, _) => {
                for &pos in unit {
                    reports[pos] = Some(batched[pos].take().unwrap_or_else(|| {
                        TaskReport::Skipped(format!(
                            "not started: an earlier task of host `{}` failed",
                            tasks[pos].1.host
                        ))
                    }));
                }
            }
        }
    }
    StageReport {
        tasks: reports
            .into_iter()
            .map(|r| r.unwrap_or_else(|| TaskReport::Skipped("not started".into())))
            .collect(),
        aborted: by_unit.aborted,
        failed_hosts: by_unit.failed_hosts,
    }
}

/// Report a task that never started.
fn skipped(events: &dyn EventSink, stage: &StagePlan, i: usize, task: &Task, why: &str) {
    events.emit(&Event::TaskEnd {
        stage: stage.name.clone(),
        index: i + 1,
        command: task.command.clone(),
        host: task.host.clone(),
        service: task.service().map(str::to_owned),
        status: TaskStatus::Skipped,
        error: Some(why.to_owned()),
        elapsed_ms: 0,
    });
}

/// A host whose task never started is `skipped`, unless something worse happened to it.
fn mark_skipped(states: &mut [HostState], host: &str, why: &str) {
    for state in states.iter_mut().filter(|s| s.host.name == host) {
        state.result.skip(why);
    }
}
