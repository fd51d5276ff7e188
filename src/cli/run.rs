//! `toyc run` and `toyc up`: a script on every selected host. Imperative calls
//! (`host::exec`) act as the script runs; operations (`files::*`, `shell::run`) are
//! collected in stages, planned against facts asked in one round trip per host, shown,
//! confirmed, then applied stage by stage in one round trip per host and stage (see
//! `toyc_engine::rollout`). `up` repeats this until nothing is left to change.

use std::collections::HashMap;
use std::future::Future;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, Context};
use serde_json::{Map, Value};
use toyc_engine::events::{Event, EventSink, HostResult, HostStatus, Summary};
use toyc_engine::inventory::Host;
use toyc_engine::plan::Outcome;
use toyc_engine::progress::Progress;
use toyc_engine::rollout::{execute, prepare, Prepared};
use toyc_engine::runner::{announce, elapsed_ms, for_each_host, ScriptJob};
use toyc_engine::sandbox::Sandbox;
use toyc_engine::scheduler::{FailurePolicy, StageOptions};
use toyc_engine::transport::Transport;

use super::args::RunArgs;
use super::targets::{event_sink, script_limits, seconds, select_hosts, ssh_options};
use super::{Failure, Outcome as CliOutcome};
use crate::exit::ExitCode;

/// The top-level entry point for `toyc run`: one pass of prepare, show, confirm, execute.
pub async fn run(args: RunArgs) -> CliOutcome {
    // With a deploy config the script is a generator: plan and run its task list.
    if args.deploy.config.is_some() {
        return super::deploy::run(args).await;
    }
    converge(&args, "run", None).await
}

/// What another subcommand (`toyc role`) adds to a run; `RunExtras::default()` is a
/// plain `toyc run`.
#[derive(Default)]
pub struct RunExtras {
    /// The hosts to run on, chosen (and their vars layered) by the caller, instead of
    /// `--inventory` and `--limit`.
    pub hosts: Option<Vec<Host>>,
    /// The directory the script's files, templates and imports are confined to, instead
    /// of the script's own directory.
    pub root: Option<PathBuf>,
    /// Called, all hosts at once, for each host that ends the run applied: its last pass
    /// left nothing undone (not under `--check`, not declined, not aborted, not
    /// unconverged). An error fails the host.
    pub after_apply: Option<AfterApply>,
}

/// A per-host hook after a successful apply: host name and its still-open connection.
pub type AfterApply = Arc<
    dyn Fn(String, Arc<dyn Transport>) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>>
        + Send
        + Sync,
>;

/// Prepare every host, show what would change, confirm, execute stage by stage; with
/// `max_cycles` (`toyc up`), again with the hosts that did not fail, until a pass finds
/// nothing to change, or fail when one still does after `max_cycles` applied passes.
pub async fn converge(args: &RunArgs, command: &str, max_cycles: Option<usize>) -> CliOutcome {
    converge_with(args, command, max_cycles, RunExtras::default()).await
}

/// [`converge`] with what [`RunExtras`] adds.
pub async fn converge_with(
    args: &RunArgs,
    command: &str,
    max_cycles: Option<usize>,
    extras: RunExtras,
) -> CliOutcome {
    let converging = max_cycles.is_some();
    let max_cycles = max_cycles.unwrap_or(1);
    let hosts = match extras.hosts {
        Some(hosts) => hosts,
        None => select_hosts(&args.targets)?,
    };
    let job = Arc::new(script_job(args, &hosts, extras.root)?);
    let events = Arc::clone(&job.events);
    let ssh = Arc::new(ssh_options(&args.targets)?);
    announce(events.as_ref(), command, &hosts);
    let started = Instant::now();
    let progress = Progress::new(!args.output.json);
    let defaults = StageOptions {
        concurrency: Some(args.targets.forks.max(1)),
        on_failure: FailurePolicy::Isolate,
        ..StageOptions::default()
    };

    // Hosts still converging, with their open connection after the first pass.
    let mut active: Vec<(Host, Option<Arc<dyn Transport>>)> =
        hosts.iter().cloned().map(|h| (h, None)).collect();
    let mut done: Vec<HostResult> = Vec::new();
    let mut changed: HashMap<String, usize> = HashMap::new();
    let mut first_started: HashMap<String, Instant> = HashMap::new();
    let mut code = None;
    let mut cycle = 0;
    while !active.is_empty() {
        cycle += 1;
        if converging {
            eprint_banner(
                args,
                &format!("--> Cycle {cycle}: running scripts and gathering facts..."),
            );
        } else {
            eprint_banner(args, "--> Running scripts and gathering facts...");
        }
        let mut prepared =
            prepare_all(args, &job, &ssh, &progress, std::mem::take(&mut active)).await;
        progress.finish();
        show(events.as_ref(), &prepared, args.changes.diff);
        let pending: usize = prepared.iter().map(Prepared::pending).sum();
        let apply = pending > 0 && !args.changes.check && cycle <= max_cycles;
        if pending > 0 && !args.changes.check && cycle > max_cycles {
            eprintln!(
                "{pending} change(s) still pending after {max_cycles} cycle(s); not converged"
            );
            code = Some(ExitCode::Failed);
        }
        if apply && !confirm(args, &prepared, pending)? {
            eprintln!("nothing was changed");
            code = Some(ExitCode::Failed);
        } else if apply {
            eprint_banner(args, "--> Applying changes...");
            let executed = execute(&mut prepared, &defaults, &events, &progress).await;
            progress.finish();
            if executed.aborted {
                code = Some(ExitCode::Failed);
            }
        }
        if args.changes.check && pending > 0 {
            code = Some(ExitCode::ChangesPending);
        }
        // A host that failed drops out; the others go round again if anything changed.
        let again = apply && code.is_none() && converging;
        if let Some(hook) = &extras.after_apply {
            // This pass is the hosts' last, and it left nothing undone.
            if !again && !args.changes.check && code.is_none() && (apply || pending == 0) {
                after_apply_all(hook, &mut prepared).await;
            }
        }
        let mut closing = tokio::task::JoinSet::new();
        for mut host in prepared {
            *changed.entry(host.result.host.clone()).or_default() += host.result.changed;
            let first = *first_started
                .entry(host.result.host.clone())
                .or_insert(host.started);
            host.result.elapsed_ms = elapsed_ms(first);
            let keep = again && host.result.status == HostStatus::Ok;
            match (keep, host.transport) {
                (true, Some(transport)) => {
                    let Some(inventory_host) = hosts.iter().find(|h| h.name == host.result.host)
                    else {
                        continue;
                    };
                    active.push((inventory_host.clone(), Some(transport)));
                }
                (_, transport) => {
                    if let Some(transport) = transport {
                        closing.spawn(async move { transport.close().await });
                    }
                    done.push(host.result);
                }
            }
        }
        // Masters close in parallel: one by one, 50 hosts would wait 50 exits.
        closing.join_all().await;
    }

    let mut results: Vec<HostResult> = done
        .into_iter()
        .map(|mut r| {
            r.changed = changed.get(&r.host).copied().unwrap_or(r.changed);
            r
        })
        .collect();
    results.sort_by_key(|r| hosts.iter().position(|h| h.name == r.host));
    for result in &results {
        events.emit(&Event::HostEnd(result.clone()));
    }
    let summary = Summary::of(&results, elapsed_ms(started));
    events.emit(&Event::Summary(summary));
    if code == Some(ExitCode::ChangesPending) && (summary.failed > 0 || summary.unreachable > 0) {
        code = None;
    }
    Ok(code.unwrap_or_else(|| ExitCode::of(summary.failed + summary.skipped, summary.unreachable)))
}

/// Prepare every host at once (at most `--forks`), keeping the live line up to date.
async fn prepare_all(
    args: &RunArgs,
    job: &Arc<ScriptJob>,
    ssh: &Arc<toyc_engine::transport::SshOptions>,
    progress: &Progress,
    hosts: Vec<(Host, Option<Arc<dyn Transport>>)>,
) -> Vec<Prepared> {
    progress.phase("gathering facts", hosts.len());
    let connections: HashMap<String, Arc<dyn Transport>> = hosts
        .iter()
        .filter_map(|(h, t)| t.as_ref().map(|t| (h.name.clone(), Arc::clone(t))))
        .collect();
    let connections = Arc::new(connections);
    let list: Vec<Host> = hosts.into_iter().map(|(h, _)| h).collect();
    let diff = args.changes.diff;
    for_each_host(&list, args.targets.forks, |host| {
        let (job, ssh, progress) = (Arc::clone(job), Arc::clone(ssh), progress.clone());
        let open = connections.get(&host.name).map(Arc::clone);
        async move {
            let name = host.name.clone();
            progress.start(&name);
            let prepared = prepare(host, &job, &ssh, diff, open).await;
            progress.done(&name);
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
                prepared[index].result.status = HostStatus::Failed;
                prepared[index].result.error = Some(e);
            }
            Ok((_, Ok(()))) => {}
            Err(e) => tracing::error!("an after-apply task failed: {e}"),
        }
    }
}

fn script_job(args: &RunArgs, hosts: &[Host], root: Option<PathBuf>) -> Result<ScriptJob, Failure> {
    let root = root.unwrap_or_else(|| {
        args.script
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_owned()
    });
    let mut sandbox = Sandbox::new(root, script_limits(&args.limits)?);
    toyc_stdlib::register(&mut sandbox);
    let ast = sandbox.compile(&args.script).map_err(Failure::input)?;
    Ok(ScriptJob {
        sandbox,
        ast: Arc::new(ast),
        path: args.script.clone(),
        events: event_sink(&args.output, false, hosts, true),
        extra_vars: extra_vars(args)?,
        sudo: args.targets.sudo,
        command_timeout: args
            .changes
            .timeout
            .map(|t| seconds(t, "--timeout"))
            .transpose()?,
    })
}

/// Every host's planned changes, in inventory order (and its reasoned no-changes), with
/// the handlers each stage would run when notified; their diffs only under `--diff`.
fn show(events: &dyn EventSink, prepared: &[Prepared], diff: bool) {
    let view = |change: &toyc_engine::plan::Change| {
        let mut view = toyc_engine::events::ChangeView::from(change);
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
                    Outcome::Change(change) => events.emit(&Event::Change {
                        host: name.clone(),
                        change: view(change),
                    }),
                    Outcome::NoChange(no) => events.emit(&Event::NoChange {
                        host: name.clone(),
                        operation: no.operation.clone(),
                        target: no.target.clone(),
                        reason: no.reason.clone(),
                    }),
                }
            }
            for handler in &stage.handlers {
                for change in toyc_engine::apply::changes(&handler.outcomes) {
                    let mut shown = view(change);
                    shown.summary = format!(
                        "{} (handler `{}`, when notified)",
                        shown.summary, handler.name
                    );
                    events.emit(&Event::Change {
                        host: name.clone(),
                        change: shown,
                    });
                }
            }
        }
    }
}

/// Ask before changing hosts: `-y` skips the question, and without a terminal to ask on
/// toyc refuses rather than guessing.
fn confirm(args: &RunArgs, prepared: &[Prepared], changes: usize) -> Result<bool, Failure> {
    if args.changes.yes {
        return Ok(true);
    }
    let hosts = prepared.iter().filter(|p| p.pending() > 0).count();
    if !std::io::stdin().is_terminal() {
        return Err(Failure::input(anyhow!(
            "{changes} change(s) on {hosts} host(s) need confirmation, and stdin is not a terminal; \
             pass `-y` to apply them, or `--check` to only show them"
        )));
    }
    eprint!("Apply {changes} change(s) on {hosts} host(s)? [y/N] ");
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .context("unable to read the answer")?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

fn eprint_banner(args: &RunArgs, text: &str) {
    if !args.output.json && args.output.verbose > 0 {
        eprintln!("{text}");
    }
}

/// Mask every string and number in a secrets file.
fn register_leaves(value: &Value) {
    match value {
        Value::String(s) => toyc_engine::secrets::register(s),
        Value::Number(n) => toyc_engine::secrets::register(&n.to_string()),
        Value::Array(items) => items.iter().for_each(register_leaves),
        Value::Object(map) => map.values().for_each(register_leaves),
        Value::Null | Value::Bool(_) => {}
    }
}

/// `--vars-file` maps in order, then `--secrets-file` maps, then `--var key=value` pairs on top.
pub(super) fn extra_vars(args: &RunArgs) -> Result<Map<String, Value>, Failure> {
    let mut vars = Map::new();
    let files = args.variables.vars_files.iter().map(|f| (f, false));
    for (file, secret) in files.chain(args.variables.secrets_files.iter().map(|f| (f, true))) {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("unable to read vars file `{}`", file.display()))
            .map_err(Failure::input)?;
        let value: Value = serde_yaml::from_str(&text)
            .map_err(|e| anyhow!("vars file `{}`: {e}", file.display()))
            .map_err(Failure::input)?;
        if secret {
            register_leaves(&value);
        }
        match value {
            Value::Object(map) => vars.extend(map),
            Value::Null => {}
            _ => {
                return Err(Failure::input(anyhow!(
                    "vars file `{}` must hold a map of names to values",
                    file.display()
                )))
            }
        }
    }
    for pair in &args.variables.vars {
        let (key, raw) = pair
            .split_once('=')
            .ok_or_else(|| Failure::input(anyhow!("`--var {pair}` is not `key=value`")))?;
        let value =
            serde_yaml::from_str::<Value>(raw).unwrap_or_else(|_| Value::String(raw.to_owned()));
        vars.insert(key.to_owned(), value);
    }
    Ok(vars)
}
