//! The top of the command line: parse, build the runtime, dispatch to one subcommand,
//! turn the outcome into an exit code. One file per subcommand.

mod apply;
mod args;
mod deploy;
mod doc;
mod exec;
mod plan;
mod repl;
mod role;
mod run;
mod targets;

use std::time::Duration;

use clap::Parser;

use crate::exit::ExitCode;
use args::{Cli, Command};

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
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            print_error(&anyhow::Error::new(e).context("unable to start the async runtime"));
            return ExitCode::Failed.code();
        }
    };
    let command = match cli.command {
        // The console handles Ctrl-C itself: it cancels a line, not the session.
        Command::Repl(args) => {
            let outcome = repl::repl(args, runtime.handle());
            runtime.shutdown_timeout(Duration::from_secs(2));
            return exit_status(outcome);
        }
        command => command,
    };
    let outcome = runtime.block_on(async {
        let work = dispatch(command);
        tokio::pin!(work);
        tokio::select! {
            outcome = &mut work => outcome,
            _ = tokio::signal::ctrl_c() => {
                eprintln!("interrupted: stopping commands on every host");
                // Scripts stop at their next operation, commands in flight are killed on
                // their hosts, connections close; give that a moment, not forever.
                toyc_engine::cancel::cancel();
                let _ = tokio::time::timeout(WIND_DOWN, &mut work).await;
                Ok(ExitCode::Interrupted)
            }
        }
    });
    // Blocking script threads stop at their next operation once cancelled; do not wait
    // for one stuck in a native call.
    runtime.shutdown_timeout(Duration::from_secs(2));
    exit_status(outcome)
}

/// A subcommand's outcome as the process exit status, with its error printed.
fn exit_status(outcome: Outcome) -> i32 {
    match outcome {
        Ok(code) => code.code(),
        Err(failure) => {
            print_error(&failure.error);
            failure.code.code()
        }
    }
}

async fn dispatch(command: Command) -> Outcome {
    match command {
        Command::Run(args) => run::run(args).await,
        Command::Up(args) => {
            let (run, max_cycles) = args.into_run();
            run::converge(&run, "up", Some(max_cycles)).await
        }
        Command::Exec(args) => exec::exec(args).await,
        Command::Plan(args) => plan::plan(args).await,
        Command::Apply(args) => apply::apply(args).await,
        Command::Role(args) => role::role(args).await,
        Command::Doc(args) => doc::doc(&args),
        // `main` runs the console itself, outside this future.
        Command::Repl(_) => Err(anyhow::anyhow!("toyc bug: the console reached dispatch").into()),
    }
}

/// `error: …` then one `caused by: …` line per source.
fn print_error(error: &anyhow::Error) {
    use toyc_engine::secrets::redact;
    eprintln!("error: {}", redact(&error.to_string()));
    for cause in error.chain().skip(1) {
        eprintln!("caused by: {}", redact(&cause.to_string()));
    }
}

/// Logs for toyc's own debugging, from `RUST_LOG` (off unless asked).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
