//! The top of the command line: parse, build the runtime, dispatch to one subcommand,
//! turn the outcome into an exit code. One file per subcommand.

mod apply;
mod args;
mod daemon;
mod daemon_client;
mod deploy;
mod doc;
mod exec;
mod jobs;
mod plan;
mod repl;
mod role;
mod run;
mod shell;
mod supervise;
mod targets;
mod template;
mod workflow;

use std::time::Duration;

use clap::Parser;
use toyc_engine::cancel::Cancel;
use toyc_engine::secrets::Secrets;

use crate::exit::ExitCode;
use args::{Cli, Command};

/// What the process gives the one run it makes: Ctrl-C cancels it, and its secrets are
/// masked in the errors printed after it.
#[derive(Debug, Clone, Default)]
pub struct Process {
    /// Cancelled on Ctrl-C.
    pub cancel: Cancel,
    /// The run's secrets (`--secrets-file`, `secret(...)`).
    pub secrets: Secrets,
}

/// How long an interrupted run may take to kill its remote commands and close.
const WIND_DOWN: Duration = Duration::from_secs(5);

/// A subcommand that could not do its job: the error to print and the exit code.
#[derive(Debug)]
pub struct Failure {
    code: ExitCode,
    error: anyhow::Error,
}

impl Failure {
    /// Bad input: inventory, script, vars, limit.
    pub fn input(error: impl Into<anyhow::Error>) -> Failure {
        Failure {
            code: ExitCode::Input,
            error: error.into(),
        }
    }

    /// A usage error: the command line cannot work as given (a change needs `-y` and
    /// there is no terminal to ask on).
    pub fn usage(error: impl Into<anyhow::Error>) -> Failure {
        Failure {
            code: ExitCode::Usage,
            error: error.into(),
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Failure {
        Failure {
            code: ExitCode::Failed,
            error,
        }
    }
}

/// What every subcommand returns.
pub type Outcome = Result<ExitCode, Failure>;

/// The top-level entry point for the `toyc` binary: returns the process exit status.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                ExitCode::Usage.code()
            } else {
                ExitCode::Success.code()
            };
            // Printing help to a closed pipe is not worth a panic.
            let _ = e.print();
            return code;
        }
    };
    init_tracing(matches!(cli.command, Command::Daemon(_)));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let error = anyhow::Error::new(e).context("unable to start the async runtime");
            print_error(&error, &Secrets::new());
            return ExitCode::Failed.code();
        }
    };
    let process = Process::default();
    let command = match cli.command {
        // The console handles Ctrl-C itself: it cancels a line, not the session.
        // The daemon stops gracefully on SIGTERM and Ctrl-C itself.
        Command::Daemon(args) => {
            let outcome = runtime.block_on(daemon::daemon(args));
            runtime.shutdown_timeout(Duration::from_secs(2));
            return exit_status(outcome, &process);
        }
        // The supervisor stops its programs itself on SIGTERM and Ctrl-C.
        Command::Supervise(args) if args.action.is_none() => {
            let outcome = runtime.block_on(supervise::supervise(args));
            runtime.shutdown_timeout(Duration::from_secs(2));
            return exit_status(outcome, &process);
        }
        Command::Repl(args) => {
            let outcome = repl::repl(args, runtime.handle(), &process);
            runtime.shutdown_timeout(Duration::from_secs(2));
            return exit_status(outcome, &process);
        }
        command => command,
    };
    let outcome = runtime.block_on(async {
        let work = dispatch(command, &process);
        tokio::pin!(work);
        tokio::select! {
            outcome = &mut work => outcome,
            _ = tokio::signal::ctrl_c() => {
                eprintln!("interrupted: stopping commands on every host");
                // Scripts stop at their next operation, commands in flight are killed on
                // their hosts, connections close; give that a moment, not forever.
                process.cancel.cancel();
                let _ = tokio::time::timeout(WIND_DOWN, &mut work).await;
                Ok(ExitCode::Interrupted)
            }
        }
    });
    // Blocking script threads stop at their next operation once cancelled; do not wait
    // for one stuck in a native call.
    runtime.shutdown_timeout(Duration::from_secs(2));
    exit_status(outcome, &process)
}

/// A subcommand's outcome as the process exit status, with its error printed.
fn exit_status(outcome: Outcome, process: &Process) -> i32 {
    match outcome {
        Ok(code) => code.code(),
        Err(failure) => {
            print_error(&failure.error, &process.secrets);
            failure.code.code()
        }
    }
}

async fn dispatch(command: Command, process: &Process) -> Outcome {
    match command {
        Command::Run(args) => run::run(args, process).await,
        Command::Up(args) => {
            let (run, max_cycles) = args.into_run();
            run::converge(&run, "up", Some(max_cycles), process).await
        }
        Command::Exec(args) => exec::exec(args, process).await,
        Command::Plan(args) => plan::plan(args, process).await,
        Command::Apply(args) => apply::apply(args, process).await,
        Command::Role(args) => role::role(args, process).await,
        Command::Jobs(args) => jobs::jobs(args).await,
        Command::Workflow(args) => workflow::workflow(args, process).await,
        Command::Supervise(args) => supervise::supervise(args).await,
        Command::Template(args) => template::template(args, process).await,
        Command::Doc(args) => doc::doc(&args),
        Command::Completions(args) => shell::completions(&args),
        Command::Man(args) => shell::man(&args),
        // `main` runs the console itself, outside this future.
        Command::Repl(_) | Command::Daemon(_) => {
            Err(anyhow::anyhow!("toyc bug: the console or the daemon reached dispatch").into())
        }
    }
}

/// `error: …` then one `caused by: …` line per source, secrets masked.
fn print_error(error: &anyhow::Error, secrets: &Secrets) {
    eprintln!("error: {}", secrets.redact(&error.to_string()));
    for cause in error.chain().skip(1) {
        eprintln!("caused by: {}", secrets.redact(&cause.to_string()));
    }
}

/// Logs for toyc's own debugging, from `RUST_LOG` (off unless asked); a service (the
/// daemon) logs at `info` unless `RUST_LOG` says otherwise.
fn init_tracing(service: bool) {
    let default = if service { "info" } else { "off" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
