//! `toyc run`: a script on every selected host. Imperative calls (`host::exec`) act as
//! the script runs; operations (`files::*`, `shell::run`) are collected, planned against
//! facts asked in one round trip per host, shown, confirmed, then applied in one round
//! trip per host.

use std::future::Future;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, Context};
use serde_json::{Map, Value};
use toyc_engine::apply::{apply_host, changes, plan_host};
use toyc_engine::events::{Event, EventSink, HostResult, HostStatus, Summary};
use toyc_engine::plan::Outcome;
use toyc_engine::runner::{announce, connect, elapsed_ms, for_each_host, ScriptJob};
use toyc_engine::sandbox::{Limits, Sandbox};
use toyc_engine::transport::Transport;

use super::args::RunArgs;
use super::targets::{event_sink, seconds, select_hosts, ssh_options};
use super::{Failure, Outcome as CliOutcome};
use crate::exit::ExitCode;

/// One host after the prepare phase: its connection (kept open for apply), how it went so
/// far, and what its operations would change.
struct Prepared {
    transport: Option<Arc<dyn Transport>>,
    result: HostResult,
    outcomes: Vec<Outcome>,
    sudo: bool,
    started: Instant,
}

/// What another subcommand (`toyc role`) adds to a run; `RunExtras::default()` is a
/// plain `toyc run`.
#[derive(Default)]
pub struct RunExtras {
    /// The hosts to run on, chosen (and their vars layered) by the caller, instead of
    /// `--inventory` and `--limit`.
    pub hosts: Option<Vec<toyc_engine::inventory::Host>>,
    /// The directory the script's files, templates and imports are confined to, instead
    /// of the script's own directory.
    pub root: Option<PathBuf>,
    /// Called for each host whose run succeeded and left nothing pending (not under
    /// `--check`, not when the confirmation was declined); an error fails the host.
    pub after_apply: Option<AfterApply>,
}

/// A per-host hook after a successful apply: host name and its still-open connection.
pub type AfterApply = Arc<
    dyn Fn(String, Arc<dyn Transport>) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>>
        + Send
        + Sync,
>;

/// The top-level entry point for `toyc run`.
pub async fn run(args: RunArgs) -> CliOutcome {
    run_with(args, RunExtras::default()).await
}

/// `toyc run` with what [`RunExtras`] adds.
pub async fn run_with(args: RunArgs, extras: RunExtras) -> CliOutcome {
    let hosts = match extras.hosts {
        Some(hosts) => hosts,
        None => select_hosts(&args.targets)?,
    };
    let job = Arc::new(script_job(&args, &hosts, extras.root)?);
    let events = Arc::clone(&job.events);
    let ssh = Arc::new(ssh_options(&args.targets)?);
    announce(events.as_ref(), "run", &hosts);
    let started = Instant::now();

    eprint_banner(&args, "--> Running scripts and gathering facts...");
    let diff = args.diff;
    let prepared = for_each_host(&hosts, args.targets.forks, |host| {
        let (job, ssh) = (Arc::clone(&job), Arc::clone(&ssh));
        async move { prepare(host, &job, &ssh, diff).await }
    })
    .await;

    let pending: usize = prepared.iter().map(|p| changes(&p.outcomes).len()).sum();
    show(events.as_ref(), &prepared);
    let proceed = if pending == 0 || args.check {
        false
    } else {
        confirm(
            &args,
            pending,
            prepared
                .iter()
                .filter(|p| !changes(&p.outcomes).is_empty())
                .count(),
        )?
    };
    if proceed {
        eprint_banner(&args, "--> Applying changes...");
    }
    // A host is "applied" when nothing it needed was left undone.
    let after_apply = extras
        .after_apply
        .filter(|_| !args.check && (proceed || pending == 0));
    let results = for_each_prepared(prepared, proceed, &events, after_apply).await;
    let summary = Summary::of(&results, elapsed_ms(started));
    events.emit(&Event::Summary(summary));
    if args.check && summary.failed == 0 && summary.unreachable == 0 && pending > 0 {
        return Ok(ExitCode::ChangesPending);
    }
    if pending > 0 && !proceed && !args.check {
        eprintln!("nothing was changed");
        return Ok(ExitCode::Failed);
    }
    Ok(ExitCode::of(summary.failed, summary.unreachable))
}

fn script_job(
    args: &RunArgs,
    hosts: &[toyc_engine::inventory::Host],
    root: Option<PathBuf>,
) -> Result<ScriptJob, Failure> {
    let root = root.unwrap_or_else(|| {
        args.script
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_owned()
    });
    let limits = Limits {
        timeout: seconds(args.script_timeout, "--script-timeout")?,
        max_operations: args.max_operations,
        max_memory: args.max_memory.saturating_mul(1024 * 1024),
        ..Limits::default()
    };
    let mut sandbox = Sandbox::new(root, limits);
    toyc_stdlib::register(&mut sandbox);
    let ast = sandbox.compile(&args.script).map_err(Failure::input)?;
    Ok(ScriptJob {
        sandbox,
        ast: Arc::new(ast),
        path: args.script.clone(),
        events: event_sink(&args.output, false, hosts),
        extra_vars: extra_vars(args)?,
        sudo: args.targets.sudo,
        command_timeout: args.timeout.map(|t| seconds(t, "--timeout")).transpose()?,
    })
}

/// Connect, run the script, plan its operations. Never fails: problems become the
/// host's result.
async fn prepare(
    host: toyc_engine::inventory::Host,
    job: &ScriptJob,
    ssh: &toyc_engine::transport::SshOptions,
    diff: bool,
) -> Prepared {
    let started = Instant::now();
    let sudo = host.sudo || job.sudo;
    let name = host.name.clone();
    let transport = match connect(&host, ssh).await {
        Ok(t) => t,
        Err(e) => {
            return Prepared {
                transport: None,
                result: HostResult {
                    host: name,
                    status: HostStatus::Unreachable,
                    exit_code: None,
                    error: Some(e.to_string()),
                    changed: 0,
                    elapsed_ms: elapsed_ms(started),
                },
                outcomes: Vec::new(),
                sudo,
                started,
            }
        }
    };
    let (mut result, operations) = job.run(host, Arc::clone(&transport), started).await;
    let mut outcomes = Vec::new();
    if result.status == HostStatus::Ok && !operations.is_empty() {
        match plan_host(transport.as_ref(), &operations, diff, sudo).await {
            Ok(planned) => outcomes = planned,
            Err(e) => {
                result.status = if matches!(&e, toyc_engine::apply::ApplyError::Transport(t) if t.is_unreachable())
                {
                    HostStatus::Unreachable
                } else {
                    HostStatus::Failed
                };
                result.error = Some(e.to_string());
            }
        }
    }
    Prepared {
        transport: Some(transport),
        result,
        outcomes,
        sudo,
        started,
    }
}

/// Every host's planned changes, in inventory order (and its reasoned no-changes).
fn show(events: &dyn EventSink, prepared: &[Prepared]) {
    for host in prepared {
        for outcome in &host.outcomes {
            match outcome {
                Outcome::Change(change) => events.emit(&Event::Change {
                    host: host.result.host.clone(),
                    change: change.into(),
                }),
                Outcome::NoChange(no) => events.emit(&Event::NoChange {
                    host: host.result.host.clone(),
                    operation: no.operation.clone(),
                    target: no.target.clone(),
                    reason: no.reason.clone(),
                }),
            }
        }
    }
}

/// Ask before changing hosts: `-y` skips the question, and without a terminal to ask on
/// toyc refuses rather than guessing.
fn confirm(args: &RunArgs, changes: usize, hosts: usize) -> Result<bool, Failure> {
    if args.yes {
        return Ok(true);
    }
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

/// Apply (when `proceed`) each host's changes in one round trip, close its connection,
/// report its end.
async fn for_each_prepared(
    prepared: Vec<Prepared>,
    proceed: bool,
    events: &Arc<dyn EventSink>,
    after_apply: Option<AfterApply>,
) -> Vec<HostResult> {
    let mut tasks = tokio::task::JoinSet::new();
    let count = prepared.len();
    for (index, host) in prepared.into_iter().enumerate() {
        let events = Arc::clone(events);
        let after_apply = after_apply.clone();
        tasks.spawn(async move {
            let result = finish(host, proceed, events.as_ref(), after_apply).await;
            events.emit(&Event::HostEnd(result.clone()));
            (index, result)
        });
    }
    let mut results: Vec<Option<HostResult>> = (0..count).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        if let Ok((index, result)) = joined {
            results[index] = Some(result);
        }
    }
    results.into_iter().flatten().collect()
}

async fn finish(
    host: Prepared,
    proceed: bool,
    events: &dyn EventSink,
    after_apply: Option<AfterApply>,
) -> HostResult {
    let Prepared {
        transport,
        mut result,
        outcomes,
        sudo,
        started,
    } = host;
    let Some(transport) = transport else {
        return result;
    };
    let pending = changes(&outcomes);
    if proceed && result.status == HostStatus::Ok && !pending.is_empty() {
        match apply_host(transport.as_ref(), &pending, sudo).await {
            Ok(steps) => {
                for step in &steps {
                    let change = pending[step.index];
                    events.emit(&Event::Step {
                        host: result.host.clone(),
                        operation: change.operation.clone(),
                        target: change.target.clone(),
                        status: step.status,
                        output: step.output.clone(),
                    });
                }
                result.changed = steps.iter().filter(|s| s.status == 0).count();
                if let Some(failed) = steps.iter().find(|s| s.status != 0) {
                    let change = pending[failed.index];
                    result.status = HostStatus::Failed;
                    result.error = Some(format!(
                        "`{}` on `{}` failed (status {}); {} later change(s) not made",
                        change.operation,
                        change.target,
                        failed.status,
                        pending.len() - failed.index - 1
                    ));
                } else if steps.len() < pending.len() {
                    result.status = HostStatus::Failed;
                    result.error = Some(format!(
                        "only {} of {} changes were reported made",
                        steps.len(),
                        pending.len()
                    ));
                }
            }
            Err(e) => {
                result.status = HostStatus::Failed;
                result.error = Some(e.to_string());
            }
        }
    }
    if let Some(hook) = after_apply.filter(|_| result.status == HostStatus::Ok) {
        if let Err(e) = hook(result.host.clone(), Arc::clone(&transport)).await {
            result.status = HostStatus::Failed;
            result.error = Some(e);
        }
    }
    transport.close().await;
    result.elapsed_ms = elapsed_ms(started);
    result
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
    let files = args.vars_files.iter().map(|f| (f, false));
    for (file, secret) in files.chain(args.secrets_files.iter().map(|f| (f, true))) {
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
    for pair in &args.vars {
        let (key, raw) = pair
            .split_once('=')
            .ok_or_else(|| Failure::input(anyhow!("`--var {pair}` is not `key=value`")))?;
        let value =
            serde_yaml::from_str::<Value>(raw).unwrap_or_else(|_| Value::String(raw.to_owned()));
        vars.insert(key.to_owned(), value);
    }
    Ok(vars)
}
