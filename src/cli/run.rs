//! `toyc run` and `toyc up`: a script on every selected host. Imperative calls
//! (`host::exec`) act as the script runs; operations (`files::*`, `shell::run`) are
//! collected in stages, planned against facts asked in one round trip per host, shown,
//! confirmed, then applied stage by stage in one round trip per host and stage (see
//! `toyc_engine::rollout`). `up` repeats this until nothing is left to change.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use serde_json::{Map, Value};
use toyc_engine::inventory::Host;
pub use toyc_engine::run::AfterApply;
use toyc_engine::run::{Approve, Gate, Job, Pending, Report, RunbookJob, RunbookSource, Verdict};
use toyc_engine::secrets::Secrets;
use toyc_stdlib::Library;

use super::args::{RunArgs, VarArgs};
use super::targets::{event_sink, run_context, script_limits, seconds, select_hosts};
use super::{Failure, Outcome as CliOutcome, Process};
use crate::exit::ExitCode;

/// The top-level entry point for `toyc run`: one pass of prepare, show, confirm, execute.
pub async fn run(args: RunArgs, process: &Process) -> CliOutcome {
    // With a deploy config the script is a generator: plan and run its task list.
    if args.deploy.config.is_some() {
        return super::deploy::run(args, process).await;
    }
    converge(&args, "run", None, process).await
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

/// Prepare every host, show what would change, confirm, execute stage by stage; with
/// `max_cycles` (`toyc up`), again with the hosts that did not fail, until a pass finds
/// nothing to change, or fail when one still does after `max_cycles` applied passes.
pub async fn converge(
    args: &RunArgs,
    command: &str,
    max_cycles: Option<usize>,
    process: &Process,
) -> CliOutcome {
    converge_with(args, command, max_cycles, RunExtras::default(), process).await
}

/// [`converge`] with what [`RunExtras`] adds: the job is built from the arguments and
/// run by the engine's one entry point.
pub async fn converge_with(
    args: &RunArgs,
    command: &str,
    max_cycles: Option<usize>,
    extras: RunExtras,
    process: &Process,
) -> CliOutcome {
    let script = args
        .script
        .clone()
        .ok_or_else(|| Failure::usage(anyhow!("a script is needed: `toyc {command} SCRIPT`")))?;
    let hosts = match extras.hosts {
        Some(hosts) => hosts,
        None => select_hosts(&args.targets)?,
    };
    let root = extras.root.unwrap_or_else(|| {
        script
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_owned()
    });
    let limits = script_limits(&args.limits)?;
    let run = run_context(
        process,
        command,
        &args.targets,
        &args.output,
        limits,
        |printer| event_sink(&args.output, false, &hosts, true, printer),
    )?;
    let job = Job::Runbook(RunbookJob {
        hosts,
        source: RunbookSource::Script { path: script, root },
        vars: extra_vars(&args.variables, &run.secrets)?,
        sudo: args.targets.sudo,
        command_timeout: args
            .changes
            .timeout
            .map(|t| seconds(t, "--timeout"))
            .transpose()?,
        check: args.changes.check,
        diff: args.changes.diff,
        forks: args.targets.forks,
        max_cycles,
        after_apply: extras.after_apply,
    });
    let gate: Box<dyn Gate> = if args.changes.yes {
        Box::new(Approve)
    } else {
        Box::new(TerminalGate)
    };
    let report = toyc_engine::run::run(job, &run, &Library, gate.as_ref())
        .await
        .map_err(Failure::input)?;
    exit_code(&report)
}

/// The exit code a run's report calls for; prints what people need to know about how
/// it ended.
pub(super) fn exit_code(report: &Report) -> CliOutcome {
    let s = &report.summary;
    let hosts_code = ExitCode::of(s.failed + s.skipped, s.unreachable);
    match &report.verdict {
        Verdict::Done => Ok(hosts_code),
        Verdict::ChangesPending if s.failed > 0 || s.unreachable > 0 => Ok(hosts_code),
        Verdict::ChangesPending => Ok(ExitCode::ChangesPending),
        Verdict::Declined => {
            eprintln!("nothing was changed");
            Ok(ExitCode::Failed)
        }
        // The only refusal is the terminal gate's: no terminal and no `-y`, a flag missing
        // from the command line, not a bad input.
        Verdict::Refused(why) => Err(Failure::usage(anyhow!("{why}"))),
        // A stage that aborted only because hosts could not be reached is an unreachable
        // run (3), as everywhere else; any other failure outranks it.
        Verdict::Aborted if s.failed == 0 && s.unreachable > 0 => Ok(ExitCode::Unreachable),
        Verdict::Aborted => Ok(ExitCode::Failed),
        Verdict::NotConverged { pending, cycles } => {
            eprintln!("{pending} change(s) still pending after {cycles} cycle(s); not converged");
            Ok(ExitCode::Failed)
        }
    }
}

/// Ask on the terminal before changing hosts; without a terminal to ask on, refuse
/// rather than guess (`-y` is [`Approve`]).
pub(super) struct TerminalGate;

#[async_trait::async_trait]
impl Gate for TerminalGate {
    async fn approve(&self, pending: Pending) -> Result<bool, String> {
        let Pending { count, unit, hosts } = pending;
        let (verb, skip) = if unit == "task(s)" {
            ("Run", "run them")
        } else {
            ("Apply", "apply them")
        };
        if !std::io::stdin().is_terminal() {
            let what = if unit == "task(s)" {
                format!("running {count} task(s)")
            } else {
                format!("{count} change(s) on {hosts} host(s)")
            };
            return Err(format!(
                "{what} need{} confirmation, and stdin is not a terminal; \
                 pass `-y` to {skip}, or `--check` to only show them",
                if unit == "task(s)" { "s" } else { "" }
            ));
        }
        let question = if unit == "task(s)" {
            format!("{verb} {count} task(s)? [y/N] ")
        } else {
            format!("{verb} {count} change(s) on {hosts} host(s)? [y/N] ")
        };
        tokio::task::spawn_blocking(move || {
            eprint!("{question}");
            let mut answer = String::new();
            std::io::stdin()
                .read_line(&mut answer)
                .map_err(|e| format!("unable to read the answer: {e}"))?;
            Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
        })
        .await
        .map_err(|e| format!("unable to ask: {e}"))?
    }
}

/// Mask every string and number in a secrets file.
fn register_leaves(value: &Value, secrets: &Secrets) {
    match value {
        Value::String(s) => secrets.register(s),
        Value::Number(n) => secrets.register(&n.to_string()),
        Value::Array(items) => items.iter().for_each(|v| register_leaves(v, secrets)),
        Value::Object(map) => map.values().for_each(|v| register_leaves(v, secrets)),
        Value::Null | Value::Bool(_) => {}
    }
}

/// `--vars-file` maps in order, then `--secrets-file` maps, then `--var key=value` pairs on top.
pub(super) fn extra_vars(args: &VarArgs, secrets: &Secrets) -> Result<Map<String, Value>, Failure> {
    let mut vars = Map::new();
    let files = args.vars_files.iter().map(|f| (f, false));
    for (file, secret) in files.chain(args.secrets_files.iter().map(|f| (f, true))) {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("unable to read vars file `{}`", file.display()))
            .map_err(Failure::input)?;
        // YAML 1.1, as Ansible reads `-e @file`: `on` is true, `0755` is 493.
        let value: Value = toyc_engine::yaml11::from_str(&text)
            .map_err(|e| anyhow!("vars file `{}`: {e}", file.display()))
            .map_err(Failure::input)?;
        if secret {
            register_leaves(&value, secrets);
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
