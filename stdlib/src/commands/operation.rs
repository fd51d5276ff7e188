//! The operations of runbooks as task-list commands: `#{command: "files::copy", host,
//! src, dest, mode}` calls `files::copy(src, dest, #{mode})` for that host, exactly as
//! a runbook would, then hands that one-operation runbook to the engine
//! ([`toyc_engine::run::apply_runbook`]), which plans it against the host's facts (one
//! round trip) and makes the change only if one is needed (one more). The positional
//! arguments are named by [`OPERATIONS`]; the other arguments are the operation's options.

use std::path::PathBuf;
use std::sync::Arc;

use rhai::{Map as RhaiMap, Scope};
use serde_json::Value;
use toyc_engine::context::HostContext;
use toyc_engine::events::{FailureKind, Level};
use toyc_engine::inventory::Host;
use toyc_engine::run::{apply_runbook, RunContext};
use toyc_engine::runbook::Runbook;
use toyc_engine::runner::json_to_dynamic;
use toyc_engine::tasklist::{Remote, Task, TaskContext, TaskFailure};
use toyc_engine::transport::{LocalTransport, Transport};

use super::args::COMMON;

/// Each operation command, with the names of its positional arguments, and whether it
/// takes options after them.
pub const OPERATIONS: &[(&str, &[&str], bool)] = &[
    ("files::directory", &["path"], true),
    ("files::file", &["path"], true),
    ("files::content", &["dest", "text"], true),
    ("files::copy", &["src", "dest"], true),
    ("files::template", &["src", "dest"], true),
    ("files::line", &["path", "line"], true),
    ("files::link", &["target", "path"], false),
    ("shell::run", &["cmd"], true),
    ("users::user", &["name"], true),
    ("users::group", &["name"], true),
    ("packages::installed", &["names"], true),
    ("packages::removed", &["names"], true),
];

/// An operation used as a command.
#[derive(Debug, Clone)]
pub struct OperationCommand {
    name: &'static str,
    positional: &'static [&'static str],
    options: bool,
    root: PathBuf,
    /// The run whose sandbox (limits, secrets, cancellation) the declaration runs in.
    run: RunContext,
}

impl OperationCommand {
    /// The operation command `name`, with local files (`files/`, `templates/`) from `root`,
    /// declared in `run`'s sandbox.
    pub fn find(name: &str, root: &std::path::Path, run: &RunContext) -> Option<OperationCommand> {
        OPERATIONS
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|&(name, positional, options)| OperationCommand {
                name,
                positional,
                options,
                root: root.to_owned(),
                run: run.clone(),
            })
    }

    /// Declare the operation for `host` as a runbook would (which checks every
    /// argument), and return it. Nothing is asked of the host.
    fn declare(
        &self,
        task: &Task,
        host: Host,
        transport: Arc<dyn Transport>,
        runtime: tokio::runtime::Handle,
        run: RunContext,
    ) -> Result<Runbook, String> {
        let mut positional = RhaiMap::new();
        let mut options = RhaiMap::new();
        for key in self.positional {
            match task.args.get(*key) {
                Some(value) => {
                    positional.insert((*key).into(), json_to_dynamic(value));
                }
                None => {
                    return Err(format!(
                        "`{}` needs argument `{key}` (it is called as `{}({})`)",
                        self.name,
                        self.name,
                        self.positional.join(", ")
                    ))
                }
            }
        }
        for (key, value) in &task.args {
            if !self.positional.contains(&key.as_str()) && !COMMON.contains(&key.as_str()) {
                if !self.options {
                    return Err(format!(
                        "`{}` has no argument `{key}` (arguments: {})",
                        self.name,
                        self.positional.join(", ")
                    ));
                }
                options.insert(key.as_str().into(), json_to_dynamic(value));
            }
        }
        let call = self
            .positional
            .iter()
            .map(|k| format!("args.{k}"))
            .chain(self.options.then(|| "opts".to_owned()))
            .collect::<Vec<_>>()
            .join(", ");
        let source = format!("{}({call});", self.name);
        let mut sandbox = run.sandbox(&self.root);
        crate::register(&mut sandbox);
        let origin = std::path::Path::new("task");
        let ast = sandbox
            .compile_text(&source, origin)
            .map_err(|e| e.message.clone())?;
        let context = Arc::new(HostContext::new(
            host,
            transport,
            runtime,
            run,
            self.root.clone(),
        ));
        let engine = sandbox.engine(Some(Arc::clone(&context).into_tag()), |_| {});
        let mut scope = Scope::new();
        scope.push("args", positional);
        scope.push("opts", options);
        scope.push(
            "vars",
            json_to_dynamic(&Value::Object(context.vars().clone())),
        );
        engine
            .run_ast_with_scope(&mut scope, &ast)
            .map_err(|e| sandbox.describe(&e, origin).message)?;
        Ok(context.take_runbook())
    }

    /// Check the task's arguments by declaring the operation for `host` (its vars are what
    /// templates see), with no connection.
    pub fn initialize(&self, task: &Task, host: Host) -> Result<(), String> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| "operations are checked inside toyc's runtime".to_owned())?;
        let transport: Arc<dyn Transport> = Arc::new(LocalTransport::new(host.name.clone()));
        // Nothing is reported while checking: the run's events are left out.
        let quiet = self
            .run
            .clone()
            .with_events(Arc::new(toyc_engine::events::Discard));
        self.declare(task, host, transport, runtime, quiet)
            .map(|_| ())
    }

    /// The declared operation, for a batch: planned and made by the engine with its
    /// neighbours ([`toyc_engine::tasklist::batch`]). `None` when its runbook is more than
    /// one plain stage (it runs alone then).
    pub async fn remote(
        &self,
        task: &Task,
        ctx: &TaskContext,
    ) -> Result<Option<Remote>, TaskFailure> {
        let runbook = self.declared(task, ctx).await?;
        if !runbook.handlers.is_empty()
            || runbook.stages.len() > 1
            || runbook.stages.iter().any(|s| s.options.is_some())
            || runbook
                .stages
                .iter()
                .flat_map(|s| &s.operations)
                .any(|d| !d.notify.is_empty())
        {
            return Ok(None);
        }
        Ok(Some(Remote::Operations(
            runbook.operations().cloned().collect(),
        )))
    }

    /// Declare the operation for the task's host on a blocking thread (it runs Rhai).
    async fn declared(&self, task: &Task, ctx: &TaskContext) -> Result<Runbook, TaskFailure> {
        let (me, task_owned, host, transport, run) = (
            self.clone(),
            task.clone(),
            ctx.host.clone(),
            Arc::clone(&ctx.transport),
            ctx.run.clone(),
        );
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || me.declare(&task_owned, host, transport, runtime, run))
            .await
            .map_err(|e| TaskFailure::new(format!("the operation's thread failed: {e}")))?
            .map_err(TaskFailure::new)
    }

    /// Plan the operation on the host (one round trip for its facts) and make its change,
    /// if it has one (one more), as a run makes a runbook's.
    pub async fn execute(&self, task: &Task, ctx: &TaskContext) -> Result<usize, TaskFailure> {
        let runbook = self.declared(task, ctx).await?;
        let applied = apply_runbook(
            ctx.host.clone(),
            Arc::clone(&ctx.transport),
            runbook,
            &ctx.run,
            ctx.sudo,
            ctx.timeout,
        )
        .await;
        match applied {
            Ok(0) => {
                ctx.log(Level::Info, "no change");
                Ok(0)
            }
            Ok(made) => Ok(made),
            Err(failed) => Err(TaskFailure::of_kind(
                failed.kind.unwrap_or(FailureKind::Apply),
                failed
                    .error
                    .unwrap_or_else(|| "the change failed".to_owned()),
            )),
        }
    }
}
