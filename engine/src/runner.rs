//! Doing work on many hosts at once: running a command or a script per host under a
//! concurrency cap, and collecting one [`HostResult`] per host in inventory order.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use rhai::{Dynamic, Scope, AST};
use serde_json::{Map, Value};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::context::HostContext;
use crate::events::{Event, EventSink, FailureKind, HostResult, Level};
use crate::inventory::Host;
use crate::run::RunContext;
use crate::runbook::Runbook;
use crate::sandbox::{Sandbox, CANCEL_TOKEN, TIMEOUT_TOKEN};
use crate::transport::Transport;

/// Run `work` for every host, at most `parallel` at once, and return the results in the
/// order of `hosts` (not of completion).
pub async fn for_each_host<T, F, Fut>(hosts: &[Host], parallel: usize, work: F) -> Vec<T>
where
    F: Fn(Host) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let permits = Arc::new(Semaphore::new(parallel.max(1)));
    let mut tasks = JoinSet::new();
    for (index, host) in hosts.iter().enumerate() {
        let permits = Arc::clone(&permits);
        let job = work(host.clone());
        tasks.spawn(async move {
            // The semaphore is never closed, so acquiring only waits.
            let _permit = permits.acquire_owned().await;
            (index, job.await)
        });
    }
    let mut results: Vec<Option<T>> = (0..hosts.len()).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((index, value)) => results[index] = Some(value),
            // A panicking host task is a toyc bug; the other hosts' results still count.
            Err(e) => tracing::error!("a host task failed: {e}"),
        }
    }
    results.into_iter().flatten().collect()
}

/// Milliseconds since `start`.
pub fn elapsed_ms(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// One script, compiled once, to run on every selected host.
#[derive(Clone)]
pub struct ScriptJob {
    /// The engine recipe (limits, modules, the script's directory).
    pub sandbox: Sandbox,
    /// The compiled script.
    pub ast: Arc<AST>,
    /// Where the script came from, for error messages.
    pub path: PathBuf,
    /// The run it belongs to (its events, secrets, cancellation).
    pub run: RunContext,
    /// `--vars-file` and `--var` values, over the inventory's.
    pub extra_vars: Map<String, Value>,
    /// `--sudo`: run every command through sudo.
    pub sudo: bool,
    /// Default timeout of each command.
    pub command_timeout: Option<std::time::Duration>,
    /// Every host of the run, for templates' `groups`, `hostvars` and play hosts.
    pub play: Arc<Vec<Host>>,
}

impl ScriptJob {
    /// Run the script for `host` over `transport` on a blocking thread (Rhai is
    /// synchronous; its host calls block on the runtime), and report how it went, with
    /// what the script declared as a [`Runbook`]: its stages, handlers and notifications.
    pub async fn run_runbook(
        &self,
        mut host: Host,
        transport: Arc<dyn Transport>,
        started: Instant,
    ) -> (HostResult, Runbook) {
        for (key, value) in &self.extra_vars {
            host.vars.insert(key.clone(), value.clone());
        }
        let job = self.clone();
        let runtime = tokio::runtime::Handle::current();
        let name = host.name.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let mut context = HostContext::new(
                host,
                transport,
                runtime,
                job.run.clone(),
                job.sandbox.root().to_owned(),
            );
            context.sudo |= job.sudo;
            context.play = Arc::clone(&job.play);
            context.timeout = job.command_timeout;
            let context = Arc::new(context);
            let printer_context = Arc::clone(&context);
            let engine = job
                .sandbox
                .engine(Some(Arc::clone(&context).into_tag()), move |text| {
                    printer_context.message(Level::Print, text);
                });
            let mut scope = script_scope(&context.host);
            let result = engine.run_ast_with_scope(&mut scope, &job.ast);
            let result = result.map_err(|e| {
                // A command killed by the run's cancellation fails the script with the
                // transport's error: the run was cancelled all the same.
                let kind = if job.run.cancel.is_cancelled() {
                    FailureKind::Cancelled
                } else {
                    script_failure_kind(&e)
                };
                (kind, job.sandbox.describe(&e, &job.path).to_string())
            });
            let runbook = context.take_runbook();
            // What only the whole script can tell (a notify naming no handler) fails the
            // host like a script error, before anything is planned.
            let result = result.and_then(|()| {
                runbook
                    .check()
                    .map_err(|e| (FailureKind::Script, format!("{}: {e}", job.path.display())))
            });
            (result, context.was_unreachable(), runbook)
        })
        .await;
        let mut result = HostResult::ok(name);
        let runbook = match outcome {
            Ok((Ok(()), _, runbook)) => runbook,
            Ok((Err((_, e)), true, _)) => {
                result.unreachable(e);
                Runbook::default()
            }
            Ok((Err((kind, e)), false, _)) => {
                result.fail(kind, e);
                Runbook::default()
            }
            Err(e) => {
                result.fail(
                    FailureKind::Script,
                    format!("the script's thread failed: {e}"),
                );
                Runbook::default()
            }
        };
        result.elapsed_ms = elapsed_ms(started);
        (result, runbook)
    }
}

/// What kind of failure a script's error is: its wall clock, a cancellation, or the
/// script itself.
fn script_failure_kind(error: &rhai::EvalAltResult) -> FailureKind {
    match error {
        rhai::EvalAltResult::ErrorTerminated(token, _) => match token.clone().into_string() {
            Ok(t) if t == TIMEOUT_TOKEN => FailureKind::Timeout,
            Ok(t) if t == CANCEL_TOKEN => FailureKind::Cancelled,
            _ => FailureKind::Script,
        },
        _ => FailureKind::Script,
    }
}

/// The variables every script starts with: `host` (`name`, `address`, `groups`, `vars`)
/// and `vars`, the host's merged variables.
fn script_scope(host: &Host) -> Scope<'static> {
    let (info, vars) = script_variables(host);
    let mut scope = Scope::new();
    scope.push_constant("host", info);
    scope.push("vars", vars);
    scope
}

/// The values of a script's `host` (`name`, `address`, `groups`, `vars`) and `vars` for
/// `host`: what a script starts with, and what the console's `on(...)` closures see.
pub fn script_variables(host: &Host) -> (Dynamic, Dynamic) {
    let vars = json_to_dynamic(&Value::Object(host.vars.clone()));
    let mut info = rhai::Map::new();
    info.insert("name".into(), host.name.clone().into());
    info.insert("address".into(), host.address.clone().into());
    info.insert(
        "groups".into(),
        host.groups
            .iter()
            .cloned()
            .map(Dynamic::from)
            .collect::<rhai::Array>()
            .into(),
    );
    info.insert("vars".into(), vars.clone());
    (info.into(), vars)
}

/// A JSON value as the equivalent Rhai value.
pub fn json_to_dynamic(value: &Value) -> Dynamic {
    match value {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => (*b).into(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.into(),
            None => n.as_f64().unwrap_or(f64::NAN).into(),
        },
        Value::String(s) => s.clone().into(),
        // A YAML timestamp is its text for a script (`yaml11::TIMESTAMP`).
        Value::Object(_) if crate::yaml11::timestamp_text(value).is_some() => {
            crate::yaml11::timestamp_text(value)
                .unwrap_or_default()
                .into()
        }
        Value::Array(items) => items
            .iter()
            .map(json_to_dynamic)
            .collect::<rhai::Array>()
            .into(),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| (k.as_str().into(), json_to_dynamic(v)))
            .collect::<rhai::Map>()
            .into(),
    }
}

/// Report the start of a run.
pub fn announce(events: &dyn EventSink, command: &str, hosts: &[Host]) {
    events.emit(&Event::RunStart {
        command: command.to_owned(),
        hosts: hosts.iter().map(|h| h.name.clone()).collect(),
    });
}
