//! `toyc repl`: the interactive console (toyc-repl) over the selected hosts.

use anyhow::Context;
use toyc_engine::inventory::Inventory;
use toyc_engine::run::RunContext;
use toyc_engine::sandbox::Limits;
use toyc_repl::fleet::FleetConfig;
use toyc_repl::{ReplConfig, ReplError};

use super::args::ReplArgs;
use super::targets::ssh_options;
use super::{Failure, Outcome, Process};
use crate::exit::ExitCode;

/// The file the console keeps its history in, below toyc's state directory.
const HISTORY_FILE: &str = "repl_history";

/// The top-level entry point for `toyc repl`; runs on the calling thread until the
/// console ends (the line editor blocks), with `runtime` for the hosts' connections.
pub fn repl(args: ReplArgs, runtime: &tokio::runtime::Handle, process: &Process) -> Outcome {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        return Err(Failure::input(anyhow::anyhow!(
            "`toyc repl` needs a terminal on stdin and stdout; to run lines from a file, put them in a script for `toyc run`"
        )));
    }
    let targets = &args.targets;
    let inventory = match &targets.inventory {
        Some(path) => Inventory::load(path).map_err(Failure::input)?,
        None => Inventory::localhost_only(),
    };
    let limits = Limits {
        // One engine serves the whole session: its clock must not run out.
        timeout: std::time::Duration::from_secs(10 * 365 * 24 * 3600),
        ..Limits::default()
    };
    // The session is one run; the console handles Ctrl-C itself, cancelling a line.
    // A live line of the hosts still working under a long line, as `toyc run` has.
    let run = RunContext::new(ssh_options(targets)?, limits)
        .with_secrets(process.secrets.clone())
        .with_progress(toyc_engine::progress::Progress::new(true))
        .with_command("repl");
    let width = inventory
        .hosts()
        .iter()
        .map(|h| h.name.len())
        .max()
        .unwrap_or(9);
    let root = std::env::current_dir().context("unable to read the working directory")?;
    let config = ReplConfig {
        fleet: FleetConfig {
            inventory,
            limit: targets.limit.clone(),
            forks: targets.forks,
            sudo: targets.sudo,
            run: {
                let events = toyc_repl::event_sink(width, run.printer());
                run.with_events(events)
            },
            root,
        },
        history: toyc_engine::state_dir::state_dir()
            .ok()
            .map(|dir| dir.join(HISTORY_FILE)),
        doc: Box::new(super::doc::manual_text),
    };
    match toyc_repl::run(config, runtime) {
        Ok(()) => Ok(ExitCode::Success),
        Err(e @ ReplError::Fleet(_)) => Err(Failure::input(e)),
        Err(e) => Err(Failure::from(anyhow::Error::new(e))),
    }
}
