//! The commands task lists may name: the [built-ins](builtin) (`shell`, `upload`,
//! `file_exists`, `symlink`, `unpack`, `service_restart`, `wait_port`, `send_graphite`,
//! `sleep`), every [operation](operation) of runbooks (`files::copy`, `shell::run`, ...),
//! and [custom](custom) commands, `commands/NAME.rhai` next to the generator.

mod args;
pub mod builtin;
pub mod custom;
pub mod operation;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use toyc_engine::inventory::deploy_config::host_named;
use toyc_engine::inventory::Host;
use toyc_engine::tasklist::{CommandSet, Task, TaskCommand, TaskContext, TaskFailure};

use builtin::{Builtin, LocalRoots, BUILTINS};
use custom::CustomCommand;
use operation::{OperationCommand, OPERATIONS};

/// Every command a plan may name, for one generator directory.
pub struct Commands {
    roots: LocalRoots,
    hosts: HashMap<String, Host>,
    custom: Mutex<HashMap<String, Arc<dyn TaskCommand>>>,
}

impl Commands {
    /// The commands of a generator in `roots.root`; `hosts` are the plan's hosts as the
    /// inventory describes them (operations check templates against their vars).
    pub fn new(roots: LocalRoots, hosts: &[Host]) -> Commands {
        Commands {
            roots,
            hosts: hosts.iter().map(|h| (h.name.clone(), h.clone())).collect(),
            custom: Mutex::new(HashMap::new()),
        }
    }
}

impl CommandSet for Commands {
    fn command(&self, name: &str) -> Result<Arc<dyn TaskCommand>, String> {
        let roots = self.roots.clone();
        if let Some((_, builtin)) = BUILTINS.iter().find(|(n, _)| *n == name) {
            return Ok(Arc::new(BuiltinCommand(*builtin, roots)));
        }
        if let Some(op) = OperationCommand::find(name, &roots.root) {
            let hosts = self.hosts.clone();
            return Ok(Arc::new(Op(op, hosts)));
        }
        let mut cache = self.custom.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = cache.get(name) {
            return Ok(Arc::clone(found));
        }
        match CustomCommand::load(name, &roots) {
            Some(Ok(command)) => {
                let command: Arc<dyn TaskCommand> = Arc::new(command);
                cache.insert(name.to_owned(), Arc::clone(&command));
                Ok(command)
            }
            Some(Err(e)) => Err(e),
            None => {
                let known = BUILTINS
                    .iter()
                    .map(|(n, _)| *n)
                    .chain(OPERATIONS.iter().map(|(n, _, _)| *n));
                let close = known
                    .filter(|k| strsim::jaro_winkler(k, name) > 0.85)
                    .map(|k| format!("; did you mean `{k}`?"))
                    .next()
                    .unwrap_or_default();
                Err(format!(
                    "unknown command `{name}`: not a built-in, not an operation, and there is no `commands/{name}.rhai` in `{}`{close}",
                    roots.root.display()
                ))
            }
        }
    }
}

struct BuiltinCommand(Builtin, LocalRoots);

#[async_trait::async_trait]
impl TaskCommand for BuiltinCommand {
    fn initialize(&self, task: &Task) -> Result<(), String> {
        self.0.initialize(task, &self.1)
    }
    async fn execute(&self, task: &Task, ctx: &TaskContext) -> Result<usize, TaskFailure> {
        self.0.execute(task, ctx, &self.1).await
    }
}

struct Op(OperationCommand, HashMap<String, Host>);

#[async_trait::async_trait]
impl TaskCommand for Op {
    fn initialize(&self, task: &Task) -> Result<(), String> {
        let host = self
            .1
            .get(&task.host)
            .cloned()
            .unwrap_or_else(|| host_named(&task.host, None));
        self.0.initialize(task, host)
    }
    async fn execute(&self, task: &Task, ctx: &TaskContext) -> Result<usize, TaskFailure> {
        self.0.execute(task, ctx).await
    }
}

#[async_trait::async_trait]
impl TaskCommand for CustomCommand {
    fn initialize(&self, task: &Task) -> Result<(), String> {
        CustomCommand::initialize(self, task)
    }
    async fn execute(&self, task: &Task, ctx: &TaskContext) -> Result<usize, TaskFailure> {
        CustomCommand::execute(self, task, ctx).await
    }
}
