//! `toyc run`: a script on every selected host.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, Context};
use serde_json::{Map, Value};
use toyc_engine::events::{Event, HostResult, HostStatus, Summary};
use toyc_engine::runner::{announce, connect, elapsed_ms, for_each_host, ScriptJob};
use toyc_engine::sandbox::{Limits, Sandbox};

use super::args::RunArgs;
use super::targets::{event_sink, seconds, select_hosts, ssh_options};
use super::{Failure, Outcome};
use crate::exit::ExitCode;

/// The top-level entry point for `toyc run`.
pub async fn run(args: RunArgs) -> Outcome {
    let hosts = select_hosts(&args.targets)?;
    let extra_vars = extra_vars(&args)?;
    let root = args
        .script
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_owned();
    let limits = Limits {
        timeout: seconds(args.script_timeout, "--script-timeout")?,
        max_operations: args.max_operations,
        max_memory: args.max_memory.saturating_mul(1024 * 1024),
        ..Limits::default()
    };
    let mut sandbox = Sandbox::new(root, limits);
    toyc_stdlib::register(&mut sandbox);
    let ast = sandbox.compile(&args.script).map_err(Failure::input)?;
    let events = event_sink(&args.output, false, &hosts);
    let ssh = Arc::new(ssh_options(&args.targets)?);
    let job = Arc::new(ScriptJob {
        sandbox,
        ast: Arc::new(ast),
        path: args.script.clone(),
        events: Arc::clone(&events),
        extra_vars,
        sudo: args.targets.sudo,
        command_timeout: args.timeout.map(|t| seconds(t, "--timeout")).transpose()?,
    });
    announce(events.as_ref(), "run", &hosts);
    let started = Instant::now();
    let results = for_each_host(&hosts, args.targets.forks, |host| {
        let (job, ssh, events) = (Arc::clone(&job), Arc::clone(&ssh), Arc::clone(&events));
        async move {
            let host_started = Instant::now();
            let result = match connect(&host, &ssh).await {
                Ok(transport) => {
                    let result = job.run(host, Arc::clone(&transport), host_started).await;
                    transport.close().await;
                    result
                }
                Err(e) => HostResult {
                    host: host.name.clone(),
                    status: HostStatus::Unreachable,
                    exit_code: None,
                    error: Some(e.to_string()),
                    elapsed_ms: elapsed_ms(host_started),
                },
            };
            events.emit(&Event::HostEnd(result.clone()));
            result
        }
    })
    .await;
    let summary = Summary::of(&results, elapsed_ms(started));
    events.emit(&Event::Summary(summary));
    Ok(ExitCode::of(summary.failed, summary.unreachable))
}

/// `--vars-file` maps in order, then `--var key=value` pairs on top.
fn extra_vars(args: &RunArgs) -> Result<Map<String, Value>, Failure> {
    let mut vars = Map::new();
    for file in &args.vars_files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("unable to read vars file `{}`", file.display()))
            .map_err(Failure::input)?;
        let value: Value = serde_yaml::from_str(&text)
            .map_err(|e| anyhow!("vars file `{}`: {e}", file.display()))
            .map_err(Failure::input)?;
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
