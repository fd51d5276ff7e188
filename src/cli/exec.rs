//! `toyc exec`: one shell command on every selected host at once.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Instant;

use toyc_engine::events::{
    seconds, status_word, Event, EventSink, FailureKind, HostResult, HostStatus, Summary,
};
use toyc_engine::run::RunContext;
use toyc_engine::runner::{announce, elapsed_ms, for_each_host};
use toyc_engine::sandbox::Limits;
use toyc_engine::secrets::Secrets;
use toyc_engine::terminal_text::{escape, escape_bytes};
use toyc_engine::transport::{ExecOutput, ExecRequest};

use super::args::ExecArgs;
use super::targets::{event_sink, run_context, select_hosts};
use super::{Outcome, Process};
use crate::exit::ExitCode;

/// The top-level entry point for `toyc exec`.
pub async fn exec(args: ExecArgs, process: &Process) -> Outcome {
    let hosts = select_hosts(&args.targets)?;
    let live = args.stream || args.output.json;
    let run = run_context(
        process,
        "exec",
        &args.targets,
        &args.output,
        Limits::default(),
        |printer| event_sink(&args.output, args.stream, &hosts, false, printer),
    )?;
    let events = Arc::clone(&run.events);
    let request = Arc::new(ExecRequest {
        command: args.command.join(" "),
        sudo: args.targets.sudo,
        timeout: args
            .timeout
            .map(|t| super::targets::seconds(t, "--timeout"))
            .transpose()?,
        ..ExecRequest::default()
    });
    announce(events.as_ref(), "exec", &hosts);
    let started = Instant::now();
    // Grouped output on a terminal: each host's block as soon as that host is done (not
    // when the slowest is), above a live line of the hosts still running. Into a pipe or
    // a file, the blocks keep inventory order, so the output is the same run to run.
    let as_done = !live && std::io::stdout().is_terminal();
    run.progress.phase("exec", hosts.len());
    let results = for_each_host(&hosts, args.targets.forks, |host| {
        let (run, request, events) = (run.clone(), Arc::clone(&request), Arc::clone(&events));
        async move {
            run.progress.start(&host.name);
            let (result, output) =
                exec_on_host(&host, &run, &request, live.then_some(&events)).await;
            run.progress.done(&host.name);
            if live {
                events.emit(&Event::HostEnd(result.clone()));
            } else if as_done {
                run.progress
                    .print_above(|| print_block(&result, output.as_ref(), &run.secrets));
            }
            (result, output)
        }
    })
    .await;
    run.progress.finish();
    run.session.close().await;
    if !live && !as_done {
        for (result, output) in &results {
            print_block(result, output.as_ref(), &run.secrets);
        }
    }
    let host_results: Vec<HostResult> = results.into_iter().map(|(r, _)| r).collect();
    let summary = Summary::of(&host_results, elapsed_ms(started));
    events.emit(&Event::Summary(summary));
    Ok(ExitCode::of(summary.failed, summary.unreachable))
}

/// Connect, run; never fails: every problem becomes the host's result. The run closes
/// the connections, all at once.
async fn exec_on_host(
    host: &toyc_engine::inventory::Host,
    run: &RunContext,
    request: &ExecRequest,
    live: Option<&Arc<dyn EventSink>>,
) -> (HostResult, Option<ExecOutput>) {
    let started = Instant::now();
    let result = |status, exit_code, error: Option<String>| {
        let mut result = HostResult::ok(host.name.clone());
        match (status, error) {
            (HostStatus::Unreachable, Some(e)) => result.unreachable(e),
            (HostStatus::Failed, Some(e)) => result.fail(FailureKind::Command, e),
            _ => {}
        }
        result.exit_code = exit_code;
        result.elapsed_ms = elapsed_ms(started);
        result
    };
    let transport = match run.session.connect(host).await {
        Ok(t) => t,
        Err(e) => {
            return (
                result(HostStatus::Unreachable, None, Some(e.to_string())),
                None,
            )
        }
    };
    let mut request = request.clone();
    request.sudo |= host.sudo;
    let outcome = match live {
        None => transport.exec(&request, None).await,
        Some(events) => {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let name = host.name.clone();
            let events = Arc::clone(events);
            let forward = tokio::spawn(async move {
                while let Some((stream, line)) = rx.recv().await {
                    events.emit(&Event::Output {
                        host: name.clone(),
                        stream,
                        line,
                    });
                }
            });
            let outcome = transport.exec(&request, Some(&tx)).await;
            drop(tx);
            let _ = forward.await;
            outcome
        }
    };
    match outcome {
        Ok(output) if output.status == 0 => (result(HostStatus::Ok, Some(0), None), Some(output)),
        Ok(output) => {
            let error = format!("exit status {}", output.status);
            (
                result(HostStatus::Failed, Some(output.status), Some(error)),
                Some(output),
            )
        }
        Err(e) => {
            let mut failed = result(HostStatus::Ok, None, None);
            if e.is_unreachable() {
                failed.unreachable(e.to_string());
            } else {
                failed.fail(FailureKind::of(&e, FailureKind::Command), e.to_string());
            }
            (failed, None)
        }
    }
}

/// A host's output under a header: stdout to stdout, stderr to stderr.
fn print_block(result: &HostResult, output: Option<&ExecOutput>, secrets: &Secrets) {
    let status = match (&result.status, &result.error) {
        (HostStatus::Ok, _) | (_, None) => status_word(result.status).to_owned(),
        (status, Some(error)) => format!("{}: {error}", status_word(*status)),
    };
    let mut stdout = std::io::stdout().lock();
    // Write errors mean a closed pipe (`| head`): stop quietly, like cat would.
    let header = format!(
        "--- {} ({status}, {})",
        result.host,
        seconds(result.elapsed_ms)
    );
    if writeln!(stdout, "{}", escape(&secrets.redact(&header))).is_err() {
        return;
    }
    if let Some(output) = output {
        let _ = stdout.write_all(&escape_bytes(&secrets.redact_bytes(&output.stdout)));
        if !output.stdout.is_empty() && !output.stdout.ends_with(b"\n") {
            let _ = stdout.write_all(b"\n");
        }
        let _ = stdout.flush();
        drop(stdout);
        let mut stderr = std::io::stderr().lock();
        let _ = stderr.write_all(&escape_bytes(&secrets.redact_bytes(&output.stderr)));
        let _ = stderr.flush();
    } else {
        let _ = stdout.flush();
    }
}
