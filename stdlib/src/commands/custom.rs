//! Commands written in Rhai: `commands/NAME.rhai` next to the generator defines
//!
//! ```rhai
//! fn initialize(args) {            // checks the task's arguments; no I/O is available
//!     if type_of(args.keep) != "i64" || args.keep < 1 { throw "`keep` must be a whole number of at least 1"; }
//! }
//! fn execute(ctx) {                // does the work
//!     let r = ctx.remote.exec(`ls -1t ${ctx.args.dir}`, #{ sudo: false });
//!     ctx.log(`${r.stdout.split("\n").len()} releases`);
//! }
//! ```
//!
//! `initialize` runs in the sandbox with nothing but Rhai's standard functions: it
//! refuses a task by throwing or by returning `false`. `execute(ctx)` gets the task's `ctx.args`, `ctx.host`
//! (name), `ctx.service`, `ctx.log(text)`, and `ctx.remote`: `exec(cmd)` /
//! `exec(cmd, #{sudo, check, timeout})` returning `#{code, stdout, stderr}` (a non-zero
//! exit throws unless `check: false`), `put(local, dir)` (a file of the generator's
//! directory or `--directory` written atomically into `dir` on the host) and
//! `file_exists(path)`. It fails the task by throwing or by returning `false` (a
//! check that came out false must not read as done); otherwise it returns the number of
//! changes it made (1 when it returns anything else, `()` included).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rhai::{Dynamic, Engine, EvalAltResult, Map as RhaiMap, Scope, AST};
use serde_json::Value;
use toyc_engine::events::Level;
use toyc_engine::run::RunContext;
use toyc_engine::runner::json_to_dynamic;
use toyc_engine::sandbox::Sandbox;
use toyc_engine::tasklist::{Task, TaskContext, TaskFailure};
use toyc_engine::transport::{ExecRequest, PutOptions, Transport};

use super::builtin::LocalRoots;

/// A compiled `commands/NAME.rhai`.
#[derive(Clone)]
pub struct CustomCommand {
    name: String,
    path: PathBuf,
    sandbox: Sandbox,
    ast: Arc<AST>,
    roots: LocalRoots,
}

type Fail = Box<EvalAltResult>;

impl CustomCommand {
    /// Compile `commands/NAME.rhai` below `roots.root`, to run in `run`'s sandbox (its
    /// limits, secrets and cancellation); `None` when there is no such file.
    pub fn load(
        name: &str,
        roots: &LocalRoots,
        run: &RunContext,
    ) -> Option<Result<CustomCommand, String>> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return None;
        }
        let relative = format!("commands/{name}.rhai");
        let path = toyc_engine::context::confined_path(&roots.root, &relative).ok()?;
        let sandbox = run.sandbox(&roots.root);
        Some((|| {
            let ast = sandbox.compile(&path).map_err(|e| e.to_string())?;
            for wanted in ["initialize", "execute"] {
                if !ast
                    .iter_functions()
                    .any(|f| f.name == wanted && f.params.len() == 1)
                {
                    return Err(format!(
                        "`{relative}` defines no `{wanted}({})`; a command needs `initialize(args)` and `execute(ctx)`",
                        if wanted == "initialize" { "args" } else { "ctx" }
                    ));
                }
            }
            Ok(CustomCommand {
                name: name.to_owned(),
                path: path.clone(),
                sandbox,
                ast: Arc::new(ast),
                roots: roots.clone(),
            })
        })())
    }

    fn args(task: &Task) -> RhaiMap {
        let mut args = task.args.clone();
        args.insert("host".into(), Value::String(task.host.clone()));
        json_to_dynamic(&Value::Object(args))
            .try_cast::<RhaiMap>()
            .unwrap_or_default()
    }

    /// `initialize(args)` in the bare sandbox: no host, no files, nothing but Rhai.
    pub fn initialize(&self, task: &Task) -> Result<(), String> {
        let engine = self.sandbox.engine(None, |_| {});
        let mut scope = Scope::new();
        let value = engine
            .call_fn::<Dynamic>(&mut scope, &self.ast, "initialize", (Self::args(task),))
            .map_err(|e| self.sandbox.describe(&e, &self.path).to_string())?;
        if is_false(&value) {
            return Err(format!(
                "`initialize` returned `false` in `{}`: the arguments are refused (throw a message to say why)",
                self.path.display()
            ));
        }
        Ok(())
    }

    /// `execute(ctx)` on a blocking thread (Rhai is synchronous; `ctx.remote` blocks on
    /// the runtime).
    pub async fn execute(&self, task: &Task, ctx: &TaskContext) -> Result<usize, TaskFailure> {
        let api = TaskApi(Arc::new(Inner {
            host: ctx.host.name.clone(),
            service: ctx.service.clone(),
            args: Self::args(task),
            transport: Arc::clone(&ctx.transport),
            runtime: tokio::runtime::Handle::current(),
            sudo: ctx.sudo,
            timeout: ctx.timeout,
            roots: self.roots.clone(),
            log: {
                let (events, component, host, service) = (
                    Arc::clone(&ctx.run.events),
                    self.name.clone(),
                    ctx.host.name.clone(),
                    ctx.service.clone(),
                );
                Box::new(move |level, text| {
                    events.emit(&toyc_engine::events::Event::Log {
                        level,
                        component: component.clone(),
                        host: Some(host.clone()),
                        service: service.clone(),
                        text,
                    });
                })
            },
        }));
        let me = self.clone();
        let done = tokio::task::spawn_blocking(move || {
            let mut engine = me.sandbox.engine(None, |_| {});
            register(&mut engine);
            let mut scope = Scope::new();
            engine
                .call_fn::<Dynamic>(&mut scope, &me.ast, "execute", (api,))
                .map_err(|e| me.sandbox.describe(&e, &me.path).to_string())
        })
        .await
        .map_err(|e| TaskFailure::new(format!("the command's thread failed: {e}")))?;
        match done {
            Ok(value) if is_false(&value) => Err(TaskFailure::new(format!(
                "`execute` returned `false` in `{}` (throw a message to say why)",
                self.path.display()
            ))),
            Ok(value) => Ok(value
                .as_int()
                .ok()
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(1)),
            Err(message) => Err(TaskFailure::new(message)),
        }
    }
}

/// A command says "failed" by returning `false`; `0` means "no changes" and `()` is
/// what a body ending in a statement returns, so neither of those fails.
fn is_false(value: &Dynamic) -> bool {
    value.as_bool() == Ok(false)
}

/// What `ctx` reaches: one task on one host.
struct Inner {
    host: String,
    service: Option<String>,
    args: RhaiMap,
    transport: Arc<dyn Transport>,
    runtime: tokio::runtime::Handle,
    sudo: bool,
    timeout: Option<std::time::Duration>,
    roots: LocalRoots,
    log: Box<dyn Fn(Level, String) + Send + Sync>,
}

/// `ctx` in `execute(ctx)`.
#[derive(Clone)]
struct TaskApi(Arc<Inner>);

/// `ctx.remote`.
#[derive(Clone)]
struct Remote(Arc<Inner>);

fn register(engine: &mut Engine) {
    engine
        .register_type_with_name::<TaskApi>("TaskContext")
        .register_get("remote", |c: &mut TaskApi| Remote(Arc::clone(&c.0)))
        .register_get("args", |c: &mut TaskApi| c.0.args.clone())
        .register_get("host", |c: &mut TaskApi| c.0.host.clone())
        .register_get("service", |c: &mut TaskApi| {
            c.0.service.clone().map_or(Dynamic::UNIT, Dynamic::from)
        })
        .register_fn("log", |c: &mut TaskApi, text: &str| {
            (c.0.log)(Level::Info, text.to_owned());
        })
        .register_type_with_name::<Remote>("Remote")
        .register_fn("exec", |r: &mut Remote, cmd: &str| {
            exec(&r.0, cmd, &RhaiMap::new())
        })
        .register_fn("exec", |r: &mut Remote, cmd: &str, opts: RhaiMap| {
            exec(&r.0, cmd, &opts)
        })
        .register_fn("put", |r: &mut Remote, local: &str, dir: &str| {
            put(&r.0, local, dir)
        })
        .register_fn("file_exists", |r: &mut Remote, path: &str| {
            let inner = &r.0;
            inner
                .runtime
                .block_on(inner.transport.file_exists(path, inner.sudo))
                .map_err(|e| -> Fail { e.to_string().into() })
        });
}

fn exec(inner: &Inner, cmd: &str, opts: &RhaiMap) -> Result<RhaiMap, Fail> {
    for key in opts.keys() {
        if !["sudo", "check", "timeout"].contains(&key.as_str()) {
            return Err(format!(
                "`ctx.remote.exec` has no option `{key}` (options: sudo, check, timeout)"
            )
            .into());
        }
    }
    let flag = |key: &str, default: bool| {
        opts.get(key)
            .and_then(|v| v.as_bool().ok())
            .unwrap_or(default)
    };
    let timeout = opts
        .get("timeout")
        .and_then(|v| {
            v.as_float()
                .ok()
                .or_else(|| v.as_int().ok().map(|i| i as f64))
        })
        .and_then(|s| std::time::Duration::try_from_secs_f64(s).ok())
        .or(inner.timeout);
    let request = ExecRequest {
        command: cmd.to_owned(),
        sudo: flag("sudo", inner.sudo),
        timeout,
        ..ExecRequest::default()
    };
    let output = inner
        .runtime
        .block_on(inner.transport.exec(&request, None))
        .map_err(|e| -> Fail { e.to_string().into() })?;
    let (stdout, stderr) = (output.stdout_text(), output.stderr_text());
    if output.status != 0 && flag("check", true) {
        return Err(format!(
            "on `{}`: `{cmd}` exited with status {}: {}",
            inner.host,
            output.status,
            stderr.trim()
        )
        .into());
    }
    let mut result = RhaiMap::new();
    result.insert("code".into(), i64::from(output.status).into());
    result.insert(
        "stdout".into(),
        stdout.trim_end_matches('\n').to_owned().into(),
    );
    result.insert(
        "stderr".into(),
        stderr.trim_end_matches('\n').to_owned().into(),
    );
    Ok(result)
}

fn put(inner: &Inner, local: &str, dir: &str) -> Result<(), Fail> {
    let src = inner.roots.resolve(local)?;
    if !dir.starts_with('/') {
        return Err(
            format!("`ctx.remote.put`: `{dir}` is not an absolute path on the host").into(),
        );
    }
    let name = Path::new(local)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dest = format!("{}/{name}", dir.trim_end_matches('/'));
    let content = std::fs::read(&src)
        .map_err(|e| -> Fail { format!("unable to read `{}`: {e}", src.display()).into() })?;
    let options = PutOptions {
        sudo: inner.sudo,
        ..PutOptions::default()
    };
    let output = inner
        .runtime
        .block_on(inner.transport.put(&content, &dest, &options))
        .map_err(|e| -> Fail { e.to_string().into() })?;
    if output.status != 0 {
        return Err(format!(
            "on `{}`: writing `{dest}` failed: {}",
            inner.host,
            output.stderr_text().trim()
        )
        .into());
    }
    Ok(())
}
