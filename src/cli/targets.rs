//! What the subcommands share: the selected hosts, the event sink, the SSH settings, the
//! script limits.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use toyc_engine::events::{EventSink, HumanSink, JsonSink, Printer};
use toyc_engine::inventory::{Host, Inventory};
use toyc_engine::progress::Progress;
use toyc_engine::run::RunContext;
use toyc_engine::sandbox::Limits;
use toyc_engine::transport::SshOptions;

use super::args::{OutputArgs, ScriptLimitArgs, TargetArgs};
use super::{Failure, Process};

/// The run this process makes: its connections from `targets`, its scripts under
/// `limits`, Ctrl-C and secrets from `process`, a progress line on a terminal (not under
/// `--json`), and events printed for people or as JSON.
pub fn run_context(
    process: &Process,
    command: &str,
    targets: &TargetArgs,
    output: &OutputArgs,
    limits: Limits,
    sink: impl FnOnce(Printer) -> Arc<dyn EventSink>,
) -> Result<RunContext, Failure> {
    let run = RunContext::new(ssh_options(targets)?, limits)
        .with_cancel(process.cancel.clone())
        .with_secrets(process.secrets.clone())
        .with_progress(Progress::new(!output.json))
        .with_command(command);
    let events = sink(run.printer());
    Ok(run.with_events(events))
}

/// The hosts the inventory and limit select, in inventory order.
pub fn select_hosts(targets: &TargetArgs) -> Result<Vec<Host>, Failure> {
    let inventory = match &targets.inventory {
        Some(path) => Inventory::load(path).map_err(Failure::input)?,
        None => Inventory::localhost_only(),
    };
    let hosts = inventory
        .select(targets.limit.as_deref())
        .map_err(Failure::input)?;
    Ok(hosts.into_iter().cloned().collect())
}

/// The sink `--json` and `--stream` ask for, printing through `printer`.
pub fn event_sink(
    output: &OutputArgs,
    stream: bool,
    hosts: &[Host],
    table: bool,
    printer: Printer,
) -> Arc<dyn EventSink> {
    if output.json {
        Arc::new(JsonSink::new(printer))
    } else {
        let width = hosts.iter().map(|h| h.name.len()).max().unwrap_or(0);
        let sink = HumanSink::new(stream, output.verbose > 0, width, printer);
        Arc::new(if table {
            sink.with_table().with_full_table(output.full_table)
        } else {
            sink
        })
    }
}

/// SSH settings for this run, with their files in a new private run directory that lives
/// as long as the options and the connections made with them.
pub fn ssh_options(targets: &TargetArgs) -> Result<SshOptions, Failure> {
    // Absolute, because ssh resolves a relative `Include` against ~/.ssh, not the cwd.
    let user_config = match &targets.ssh_config {
        None => None,
        Some(config) => Some(config.canonicalize().map_err(|e| {
            Failure::input(anyhow::anyhow!("ssh config `{}`: {e}", config.display()))
        })?),
    };
    let mut options = SshOptions::in_run_directory(user_config.as_deref())
        .context("unable to create a directory for this run")?;
    options.connect_timeout = Duration::from_secs(targets.connect_timeout.max(1));
    options.accept_new_host_keys = targets.accept_new_host_keys;
    Ok(options)
}

/// A number of seconds from the command line as a duration.
pub fn seconds(value: f64, flag: &str) -> Result<Duration, Failure> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        Failure::input(anyhow::anyhow!(
            "`{flag}` must be a positive number of seconds, not `{value}`"
        ))
    })
}

/// The sandbox limits `--script-timeout`, `--max-operations` and `--max-memory` ask for.
pub fn script_limits(limits: &ScriptLimitArgs) -> Result<Limits, Failure> {
    Ok(Limits {
        timeout: seconds(limits.script_timeout, "--script-timeout")?,
        max_operations: limits.max_operations,
        max_memory: limits.max_memory.saturating_mul(1024 * 1024),
        ..Limits::default()
    })
}
