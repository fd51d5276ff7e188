//! A runbook job: passes of prepare → show → gate → execute over the job's hosts, until a
//! pass leaves nothing to change (converge) or after one pass; and the same road for one
//! host's declared runbook inside a task ([`apply_runbook`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use crate::apply::changes;
use crate::events::{ChangeView, Event, FailureKind, HostResult, HostStatus, Summary};
use crate::inventory::Host;
use crate::plan::{Change, Outcome};
use crate::rollout::{execute, prepare, HostRunbook, Prepared};
use crate::runbook::Runbook;
use crate::runner::{elapsed_ms, for_each_host, ScriptJob};
use crate::scheduler::{FailurePolicy, StageOptions};
use crate::transport::Transport;

use super::{
    AfterApply, Gate, Library, Pending, Report, RunContext, RunError, RunbookJob, RunbookSource,
    Verdict,
};

/// Where each host's runbook comes from in a pass.
enum Source {
    /// The compiled script, run once per host per pass.
    Script(Arc<ScriptJob>),
    /// Declared runbooks by host name.
    Declared(HashMap<String, Runbook>),
}

/// Run a runbook job (see [`super::run`]).
pub(super) async fn run(
    job: RunbookJob,
    run: &RunContext,
    library: &dyn Library,
    gate: &dyn Gate,
) -> Result<Report, RunError> {
    let source = match job.source.clone() {
        RunbookSource::Script { path, root } => {
            let mut sandbox = run.sandbox(root);
            library.register(&mut sandbox);
            let ast = sandbox.compile(&path)?;
            Source::Script(Arc::new(ScriptJob {
                sandbox,
                ast: Arc::new(ast),
                path,
                run: run.clone(),
                extra_vars: job.vars.clone(),
                sudo: job.sudo,
                command_timeout: job.command_timeout,
                // Each with `--var`s over its own, as its script sees them (`hostvars`).
                play: Arc::new(
                    job.hosts
                        .iter()
                        .cloned()
                        .map(|mut host| {
                            host.vars.extend(job.vars.clone());
                            host
                        })
                        .collect(),
                ),
            }))
        }
        RunbookSource::Declared(books) => Source::Declared(books.into_iter().collect()),
    };
    let events = &run.events;
    events.emit(&Event::RunStart {
        command: run.command.clone(),
        hosts: job.hosts.iter().map(|h| h.name.clone()).collect(),
    });
    let started = Instant::now();
    let converging = job.max_cycles.is_some();
    let max_cycles = job.max_cycles.unwrap_or(1);
    let defaults = StageOptions {
        concurrency: Some(job.forks.max(1)),
        on_failure: FailurePolicy::Isolate,
        ..StageOptions::default()
    };

    let mut active: Vec<Host> = job.hosts.clone();
    let mut done: Vec<HostResult> = Vec::new();
    let mut changed: HashMap<String, usize> = HashMap::new();
    let mut first_started: HashMap<String, Instant> = HashMap::new();
    let mut verdict = Verdict::Done;
    let mut cycle = 0;
    let mut last_pending = 0;
    while !active.is_empty() {
        cycle += 1;
        let text = if converging {
            format!("--> Cycle {cycle}: running scripts and gathering facts...")
        } else {
            "--> Running scripts and gathering facts...".to_owned()
        };
        events.emit(&Event::Phase { text });
        if converging {
            events.emit(&Event::Pass {
                pass: cycle,
                max_cycles,
                hosts: active.iter().map(|h| h.name.clone()).collect(),
            });
        }
        let mut prepared = prepare_all(&job, &source, run, std::mem::take(&mut active)).await;
        run.progress.finish();
        show(run, &prepared, job.diff);
        let pending: usize = prepared.iter().map(Prepared::pending).sum();
        last_pending = pending;
        let apply = pending > 0 && !job.check && cycle <= max_cycles;
        if pending > 0 && !job.check && cycle > max_cycles {
            verdict = Verdict::NotConverged {
                pending,
                cycles: max_cycles,
            };
            // Its table says so: such a host is not "ok".
            for host in prepared.iter_mut().filter(|p| p.pending() > 0) {
                let left = host.pending();
                host.result.fail(
                    FailureKind::NotConverged,
                    format!(
                        "not converged: {left} change(s) still pending after {max_cycles} pass(es) (raise `--max-cycles`?)"
                    ),
                );
            }
        }
        let approved = if apply {
            let hosts = prepared.iter().filter(|p| p.pending() > 0).count();
            let asked = Pending {
                count: pending,
                unit: "change(s)",
                hosts,
            };
            match gate.approve(asked).await {
                Ok(yes) => yes,
                Err(why) => {
                    let refused = Verdict::Refused(why);
                    return Ok(report(run, Vec::new(), started, refused, pending, None));
                }
            }
        } else {
            false
        };
        if apply && !approved {
            verdict = Verdict::Declined;
        } else if apply {
            events.emit(&Event::Phase {
                text: "--> Applying changes...".to_owned(),
            });
            let executed = execute(&mut prepared, &defaults, run).await;
            run.progress.finish();
            if executed.aborted {
                verdict = Verdict::Aborted;
            }
        }
        if job.check && pending > 0 {
            verdict = Verdict::ChangesPending;
        }
        // A host that failed drops out; the others go round again if anything changed.
        let again = apply && verdict == Verdict::Done && converging;
        if let Some(hook) = &job.after_apply {
            // This pass is the hosts' last, and it left nothing undone.
            if !again && !job.check && verdict == Verdict::Done && (apply || pending == 0) {
                after_apply_all(hook, &mut prepared).await;
            }
        }
        for host in prepared {
            let mut result = host.result;
            *changed.entry(result.host.clone()).or_default() += result.changed;
            let first = *first_started
                .entry(result.host.clone())
                .or_insert(host.started);
            result.elapsed_ms = elapsed_ms(first);
            let keep = again && result.status == HostStatus::Ok && host.transport.is_some();
            match job.hosts.iter().find(|h| h.name == result.host) {
                Some(inventory_host) if keep => active.push(inventory_host.clone()),
                _ => done.push(result),
            }
        }
    }

    let mut results: Vec<HostResult> = done
        .into_iter()
        .map(|mut r| {
            r.changed = changed.get(&r.host).copied().unwrap_or(r.changed);
            r
        })
        .collect();
    results.sort_by_key(|r| job.hosts.iter().position(|h| h.name == r.host));
    let passes = converging.then_some(cycle);
    Ok(report(run, results, started, verdict, last_pending, passes))
}

/// Report every host and the totals.
fn report(
    run: &RunContext,
    results: Vec<HostResult>,
    started: Instant,
    verdict: Verdict,
    pending: usize,
    passes: Option<usize>,
) -> Report {
    let refused = matches!(verdict, Verdict::Refused(_));
    if !refused {
        for result in &results {
            run.events.emit(&Event::HostEnd(result.clone()));
        }
    }
    let summary = Summary {
        passes,
        ..Summary::of(&results, elapsed_ms(started))
    };
    if !refused {
        run.events.emit(&Event::Summary(summary));
    }
    Report {
        id: run.id.clone(),
        results,
        summary,
        pending,
        verdict,
    }
}

/// Prepare every host at once (at most `forks`), keeping the live line up to date.
async fn prepare_all(
    job: &RunbookJob,
    source: &Source,
    run: &RunContext,
    hosts: Vec<Host>,
) -> Vec<Prepared> {
    run.progress.phase("gathering facts", hosts.len());
    let diff = job.diff;
    for_each_host(&hosts, job.forks, |host| {
        let run = run.clone();
        let runbook = match source {
            Source::Script(script) => HostRunbook::Script(Arc::clone(script)),
            Source::Declared(books) => {
                HostRunbook::Declared(books.get(&host.name).cloned().unwrap_or_default())
            }
        };
        let sudo = host.sudo || job.sudo;
        async move {
            let name = host.name.clone();
            run.progress.start(&name);
            let prepared = prepare(host, runbook, &run, diff, sudo).await;
            run.progress.done(&name);
            prepared
        }
    })
    .await
}

/// Run `hook` for every host still OK, at once; a failing hook fails its host.
async fn after_apply_all(hook: &AfterApply, prepared: &mut [Prepared]) {
    let mut tasks = tokio::task::JoinSet::new();
    for (index, host) in prepared.iter().enumerate() {
        if let (HostStatus::Ok, Some(transport)) = (host.result.status, &host.transport) {
            let work = hook(host.result.host.clone(), Arc::clone(transport));
            tasks.spawn(async move { (index, work.await) });
        }
    }
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((index, Err(e))) => {
                prepared[index].result.fail(FailureKind::Apply, e);
            }
            Ok((_, Ok(()))) => {}
            Err(e) => tracing::error!("an after-apply task failed: {e}"),
        }
    }
}

/// Every host's planned changes, in host order (and its reasoned no-changes), with the
/// handlers each stage would run when notified; their diffs only with `diff`.
pub fn show(run: &RunContext, prepared: &[Prepared], diff: bool) {
    let view = |change: &Change| {
        let mut view = ChangeView::from(change);
        if !diff {
            view.diff = None;
        }
        view
    };
    for host in prepared {
        let name = &host.result.host;
        for stage in &host.stages {
            for outcome in &stage.outcomes {
                match outcome {
                    Outcome::Change(change) => run.events.emit(&Event::Change {
                        host: name.clone(),
                        change: view(change),
                    }),
                    Outcome::NoChange(no) => run.events.emit(&Event::NoChange {
                        host: name.clone(),
                        operation: no.operation.clone(),
                        target: no.target.clone(),
                        reason: no.reason.clone(),
                    }),
                }
            }
            for handler in &stage.handlers {
                for change in changes(&handler.outcomes) {
                    let mut shown = view(change);
                    shown.summary = format!(
                        "{} (handler `{}`, when notified)",
                        shown.summary, handler.name
                    );
                    run.events.emit(&Event::Change {
                        host: name.clone(),
                        change: shown,
                    });
                }
            }
        }
    }
}

/// One host's declared runbook, prepared and executed over its open connection, as a run
/// does it (stages, handlers, retries, the stage timeout) but without announcing a run:
/// how a task of a task list applies an operation. Returns the changes made, or the
/// host's failure.
pub async fn apply_runbook(
    host: Host,
    transport: Arc<dyn Transport>,
    runbook: Runbook,
    run: &RunContext,
    sudo: bool,
    timeout: Option<std::time::Duration>,
) -> Result<usize, HostResult> {
    let prepared =
        crate::rollout::prepare_on(host, HostRunbook::Declared(runbook), false, sudo, transport)
            .await;
    if prepared.result.status != HostStatus::Ok {
        return Err(prepared.result);
    }
    if prepared.pending() == 0 {
        return Ok(0);
    }
    let defaults = StageOptions {
        timeout,
        on_failure: FailurePolicy::Abort,
        ..StageOptions::default()
    };
    let mut hosts = [prepared];
    crate::rollout::execute_stages(&mut hosts, &defaults, run, false).await;
    let [prepared] = hosts;
    match prepared.result.status {
        HostStatus::Ok => Ok(prepared.result.changed),
        _ => Err(prepared.result),
    }
}
