//! The commands task lists may name: the [built-ins](builtin) (`shell`, `upload`,
//! `file_exists`, `symlink`, `unpack`, `service_restart`, `wait_port`, `send_graphite`,
//! `sleep`), every operation of runbooks by name ([`operation`]: `files::copy`,
//! `shell::run`, ...), and custom commands, `commands/NAME.rhai` next to the generator
//! ([`custom`]).

mod args;
pub mod builtin;
pub mod custom;
pub mod operation;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use toyc_engine::inventory::deploy_config::host_named;
use toyc_engine::inventory::Host;
use toyc_engine::run::RunContext;
use toyc_engine::tasklist::{CommandSet, Remote, Task, TaskCommand, TaskContext, TaskFailure};

use builtin::{Builtin, LocalRoots, BUILTINS};
use custom::CustomCommand;
use operation::{OperationCommand, OPERATIONS};

/// Every command a task list may name, for one generator directory.
pub struct Commands {
    roots: LocalRoots,
    hosts: Arc<HashMap<String, Host>>,
    custom: Mutex<HashMap<String, Arc<dyn TaskCommand>>>,
    /// The run whose sandboxes (limits, secrets, cancellation) command scripts get.
    run: RunContext,
}

impl Commands {
    /// The commands of a generator in `roots.root`; `hosts` are the task list's hosts as the
    /// inventory describes them (operations check templates against their vars).
    pub fn new(roots: LocalRoots, hosts: &[Host], run: &RunContext) -> Commands {
        Commands {
            roots,
            hosts: Arc::new(hosts.iter().map(|h| (h.name.clone(), h.clone())).collect()),
            custom: Mutex::new(HashMap::new()),
            run: run.clone(),
        }
    }
}

impl CommandSet for Commands {
    fn command(&self, name: &str) -> Result<Arc<dyn TaskCommand>, String> {
        let roots = self.roots.clone();
        if let Some((_, builtin)) = BUILTINS.iter().find(|(n, _)| *n == name) {
            return Ok(Arc::new(BuiltinCommand(*builtin, roots)));
        }
        if let Some(op) = OperationCommand::find(name, &roots.root, &self.run) {
            return Ok(Arc::new(Op(op, Arc::clone(&self.hosts))));
        }
        let mut cache = self.custom.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = cache.get(name) {
            return Ok(Arc::clone(found));
        }
        match CustomCommand::load(name, &roots, &self.run) {
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
    fn batchable(&self, _task: &Task) -> bool {
        self.0.batchable()
    }
    async fn remote(&self, task: &Task, _ctx: &TaskContext) -> Result<Option<Remote>, TaskFailure> {
        self.0.remote(task, &self.1)
    }
}

struct Op(OperationCommand, Arc<HashMap<String, Host>>);

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
    fn batchable(&self, task: &Task) -> bool {
        // Operations run with the context's `sudo`; one that names its own runs alone.
        !task.args.contains_key("sudo")
    }
    async fn remote(&self, task: &Task, ctx: &TaskContext) -> Result<Option<Remote>, TaskFailure> {
        self.0.remote(task, ctx).await
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

#[cfg(test)]
mod tests {
    use super::*;
    use toyc_engine::tasklist::{validate, TaskList};

    fn problems(root: &std::path::Path, tasks: &str) -> Vec<String> {
        let text = format!(r#"{{"name": "t", "stages": [{{"name": "s", "tasks": [{tasks}]}}]}}"#);
        let list = TaskList::parse(&text, std::path::Path::new("p.json")).expect("a plan");
        let commands = Commands::new(
            LocalRoots {
                root: root.to_owned(),
                releases: None,
            },
            &[],
            &RunContext::new(
                toyc_engine::transport::SshOptions::new("/tmp".into()),
                toyc_engine::sandbox::Limits::default(),
            ),
        );
        validate(&list, &commands)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[tokio::test]
    async fn every_bad_task_is_named_with_its_stage_index_host_and_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("gen");
        std::fs::create_dir_all(root.join("files")).expect("mkdir");
        std::fs::write(root.join("app.tar.gz"), "x").expect("write");
        std::fs::write(root.join("files/app.tar.gz"), "x").expect("write");
        std::fs::write(dir.path().join("secret"), "x").expect("write");
        std::fs::create_dir(root.join("commands")).expect("mkdir");
        std::fs::write(
            root.join("commands/check.rhai"),
            "fn initialize(args) { if args.level > 2 { throw \"`level` is at most 2\"; } }\nfn execute(ctx) { 0 }",
        )
        .expect("write");
        let found = problems(
            &root,
            r#"{"command": "upload", "host": "h1", "src": "app.tar.gz", "dest": "/srv/"},
               {"command": "upload", "host": "h2", "src": "../secret", "dest": "/srv/"},
               {"command": "wait_port", "host": "h3", "prot": 80},
               {"command": "uplaod", "host": "h4"},
               {"command": "files::directory", "host": "h5", "path": "relative"},
               {"command": "check", "host": "h6", "level": 3},
               {"command": "check", "host": "h7", "level": 1},
               {"command": "files::copy", "host": "h8", "src": "app.tar.gz", "dest": "/srv/app.tar.gz", "mode": "0644"}"#,
        );
        assert_eq!(found.len(), 5, "{found:#?}");
        assert!(
            found[0].starts_with("stage `s` task 2 (`upload` on `h2`): "),
            "{}",
            found[0]
        );
        assert!(found[0].contains("leads outside"), "{}", found[0]);
        assert!(
            found[1].contains("no argument `prot`") && found[1].contains("did you mean `port`?"),
            "{}",
            found[1]
        );
        assert!(
            found[2].contains("unknown command `uplaod`") && found[2].contains("`upload`"),
            "{}",
            found[2]
        );
        assert!(
            found[3].contains("task 5") && found[3].contains("not an absolute path"),
            "{}",
            found[3]
        );
        assert!(
            found[4].contains("task 6") && found[4].contains("`level` is at most 2"),
            "{}",
            found[4]
        );
        assert!(found[4].contains("check.rhai:1:"), "{}", found[4]);
    }
}
