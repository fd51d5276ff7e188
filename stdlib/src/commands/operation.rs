//! The operations of runbooks as task-list commands: `#{command: "files::copy", host,
//! src, dest, mode}` calls `files::copy(src, dest, #{mode})` for that host, exactly as
//! a runbook would, then plans it against the host's facts (one round trip) and makes
//! the change only if one is needed (one more). The positional arguments are named
//! by [`OPERATIONS`]; the other arguments are the operation's options.

use std::path::PathBuf;
use std::sync::Arc;

use rhai::{Map as RhaiMap, Scope};
use serde_json::Value;
use toyc_engine::apply::{apply_within, changes, plan_host, ApplyError};
use toyc_engine::context::HostContext;
use toyc_engine::events::{Event, Level};
use toyc_engine::inventory::Host;
use toyc_engine::plan::Operation;
use toyc_engine::runner::json_to_dynamic;
use toyc_engine::sandbox::{Limits, Sandbox};
use toyc_engine::tasklist::{Task, TaskContext, TaskFailure};
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
}

impl OperationCommand {
    /// The operation command `name`, with local files (`files/`, `templates/`) from `root`.
    pub fn find(name: &str, root: &std::path::Path) -> Option<OperationCommand> {
        OPERATIONS
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|&(name, positional, options)| OperationCommand {
                name,
                positional,
                options,
                root: root.to_owned(),
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
        events: Arc<dyn toyc_engine::events::EventSink>,
    ) -> Result<Vec<Arc<dyn Operation>>, String> {
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
        let mut sandbox = Sandbox::new(&self.root, Limits::default());
        crate::register(&mut sandbox);
        let origin = std::path::Path::new("task");
        let ast = sandbox
            .compile_text(&source, origin)
            .map_err(|e| e.message.clone())?;
        let context = Arc::new(HostContext::new(
            host,
            transport,
            runtime,
            events,
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
        Ok(context.take_operations())
    }

    /// Check the task's arguments by declaring the operation for `host` (its vars are what
    /// templates see), with no connection.
    pub fn initialize(&self, task: &Task, host: Host) -> Result<(), String> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| "operations are checked inside toyc's runtime".to_owned())?;
        let transport: Arc<dyn Transport> = Arc::new(LocalTransport::new(host.name.clone()));
        let events: Arc<dyn toyc_engine::events::EventSink> = Arc::new(Discard);
        self.declare(task, host, transport, runtime, events)
            .map(|_| ())
    }

    /// Plan the operation on the host (one round trip for its facts) and make its change,
    /// if it has one (one more).
    pub async fn execute(&self, task: &Task, ctx: &TaskContext) -> Result<usize, TaskFailure> {
        let (me, task_owned, host, transport, events) = (
            self.clone(),
            task.clone(),
            ctx.host.clone(),
            Arc::clone(&ctx.transport),
            Arc::clone(&ctx.events),
        );
        let runtime = tokio::runtime::Handle::current();
        let operations = tokio::task::spawn_blocking(move || {
            me.declare(&task_owned, host, transport, runtime, events)
        })
        .await
        .map_err(|e| TaskFailure::new(format!("the operation's thread failed: {e}")))?
        .map_err(TaskFailure::new)?;
        let failed = |e: ApplyError| match e {
            ApplyError::Transport(t) => TaskFailure::from(t),
            ApplyError::Interrupted { source, .. } => TaskFailure::from(source),
            other => TaskFailure::new(other.to_string()),
        };
        let outcomes = plan_host(ctx.transport.as_ref(), &operations, false, ctx.sudo)
            .await
            .map_err(failed)?;
        let pending = changes(&outcomes);
        if pending.is_empty() {
            ctx.log(Level::Info, "no change");
            return Ok(0);
        }
        let steps = apply_within(ctx.transport.as_ref(), &pending, ctx.sudo, ctx.timeout)
            .await
            .map_err(failed)?;
        let mut made = 0;
        for step in &steps {
            let change = pending[step.index];
            ctx.events.emit(&Event::Step {
                host: ctx.host.name.clone(),
                operation: change.operation.clone(),
                target: change.target.clone(),
                status: step.status,
                output: step.output.clone(),
            });
            if step.status != 0 {
                return Err(TaskFailure::new(format!(
                    "`{}` on `{}` failed (status {}): {}",
                    change.operation,
                    change.target,
                    step.status,
                    step.output.trim()
                )));
            }
            ctx.log(
                Level::Info,
                format!(
                    "{} {} {}: {}",
                    change.kind.sign(),
                    change.operation,
                    change.target,
                    change.summary
                ),
            );
            made += 1;
        }
        if made < pending.len() {
            return Err(TaskFailure::new(format!(
                "only {made} of {} changes were reported made",
                pending.len()
            )));
        }
        Ok(made)
    }
}

/// Events of a validation nobody sees.
struct Discard;

impl toyc_engine::events::EventSink for Discard {
    fn emit(&self, _: &Event) {}
}
