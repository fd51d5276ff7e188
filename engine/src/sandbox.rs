//! The Rhai engine scripts run in: it starts empty (`Engine::new_raw`), gets the standard
//! library and toyc's modules, and has every limit set explicitly, because scripts come
//! from repositories other people push to.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use rhai::module_resolvers::ModuleResolver;
use rhai::packages::{Package, StandardPackage};
use rhai::{
    Array, Blob, Dynamic, Engine, EvalAltResult, Module, Position, Scope, Shared, AST, INT,
};

use crate::cancel::Cancel;
use crate::script_error::ScriptError;
use crate::secrets::Secrets;

pub use crate::limits::{Limits, CANCEL_TOKEN, MEMORY_TOKEN, TIMEOUT_TOKEN};

/// A check [`Sandbox::compile`] runs on a compiled script, given the sandbox's root: bad
/// input it can see before the script runs (a module registers one for the files its
/// functions read).
pub type Check = Arc<dyn Fn(&AST, &Path) -> Result<(), ScriptError> + Send + Sync>;

/// A recipe for engines: limits, the directory scripts are confined to, and the modules
/// every engine gets. Cheap to turn into an [`Engine`] per host.
#[derive(Clone)]
pub struct Sandbox {
    limits: Limits,
    root: PathBuf,
    /// The run's cancellation: a script stops at its next operation once it fires.
    cancel: Cancel,
    /// The run's secrets, which `secret(value)` adds to.
    secrets: Secrets,
    standard: Shared<Module>,
    global: Vec<Shared<Module>>,
    modules: Vec<(String, Shared<Module>)>,
    checks: Vec<Check>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("limits", &self.limits)
            .field("root", &self.root)
            .field(
                "modules",
                &self.modules.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Sandbox {
    /// A sandbox for scripts living in `root` (imports and local files resolve below it),
    /// outside any run: nothing cancels it, and its secrets are its own. A run makes its
    /// sandboxes with [`crate::run::RunContext::sandbox`].
    pub fn new(root: impl Into<PathBuf>, limits: Limits) -> Sandbox {
        Sandbox::for_run(root, limits, Cancel::new(), Secrets::new())
    }

    /// A sandbox of the run with this cancellation and these secrets.
    pub fn for_run(
        root: impl Into<PathBuf>,
        limits: Limits,
        cancel: Cancel,
        secrets: Secrets,
    ) -> Sandbox {
        let sized = sized_in_one_call(limits.max_memory);
        Sandbox {
            limits,
            root: root.into(),
            cancel,
            secrets,
            standard: StandardPackage::new().as_shared_module(),
            global: vec![sized],
            modules: Vec::new(),
            checks: Vec::new(),
        }
    }

    /// The directory scripts are confined to.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The limits every engine gets.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The run's secrets.
    pub fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    /// The run's cancellation.
    pub fn cancel(&self) -> &Cancel {
        &self.cancel
    }

    /// `state` (what the stdlib's functions look for, such as a host's context) as the tag
    /// of an engine of this sandbox, beside the run's secrets: see [`tag_state`].
    pub fn tag(&self, state: Dynamic) -> Dynamic {
        script_tag(&self.secrets, state)
    }

    /// Make `module` available to scripts as `name::function`.
    pub fn add_module(&mut self, name: &str, module: Shared<Module>) {
        self.modules.push((name.to_owned(), module));
    }

    /// Run `check` on every script this sandbox compiles.
    pub fn add_check(&mut self, check: Check) {
        self.checks.push(check);
    }

    /// Make `module`'s functions callable without a prefix (and as methods).
    pub fn add_global(&mut self, module: Shared<Module>) {
        self.global.push(module);
    }

    /// A fresh engine with the limits, modules and `tag`; `print` and `debug` go to `printer`.
    /// The wall-clock limit starts counting now.
    pub fn engine(
        &self,
        tag: Option<Dynamic>,
        printer: impl Fn(&str) + Send + Sync + 'static,
    ) -> Engine {
        let mut engine = Engine::new_raw();
        engine.register_global_module(Shared::clone(&self.standard));
        for module in &self.global {
            engine.register_global_module(Shared::clone(module));
        }
        for (name, module) in &self.modules {
            engine.register_static_module(name.as_str(), Shared::clone(module));
        }
        let limits = &self.limits;
        engine
            .set_max_operations(limits.max_operations)
            .set_max_call_levels(limits.max_call_levels)
            .set_max_expr_depths(limits.max_expr_depth, limits.max_fn_expr_depth)
            // 0: none of Rhai's per-value size checks, see `Limits::max_memory`.
            .set_max_string_size(0)
            .set_max_array_size(0)
            .set_max_map_size(0)
            .set_max_modules(limits.max_modules)
            .set_module_resolver(ConfinedResolver {
                root: self.root.clone(),
            });
        // `eval` would run text that was never compiled (or checked) as part of the script.
        engine.disable_symbol("eval");
        let deadline = Instant::now() + limits.timeout;
        let max_memory = limits.max_memory;
        let cancel = self.cancel.clone();
        crate::memory::watch(max_memory);
        engine.on_progress(move |_| {
            if cancel.is_cancelled() {
                Some(CANCEL_TOKEN.into())
            } else if Instant::now() >= deadline {
                Some(TIMEOUT_TOKEN.into())
            } else if crate::memory::resident() > max_memory {
                Some(MEMORY_TOKEN.into())
            } else {
                None
            }
        });
        let printer = Arc::new(printer);
        let debug_printer = Arc::clone(&printer);
        engine.on_print(move |text| printer(text));
        engine.on_debug(move |text, _, _| debug_printer(text));
        engine.set_default_tag(self.tag(tag.unwrap_or(Dynamic::UNIT)));
        engine
    }

    /// Compile the script at `path` (errors point at file, line and column).
    pub fn compile(&self, path: &Path) -> Result<AST, ScriptError> {
        let source = std::fs::read_to_string(path).map_err(|e| ScriptError::io(path, &e))?;
        self.compile_text(&source, path)
    }

    /// Compile `source`, reporting errors as if it came from `path`. Modules it imports by a
    /// literal path are compiled too, so a syntax error in one is bad input found before
    /// any host is touched, like one in the script itself.
    pub fn compile_text(&self, source: &str, path: &Path) -> Result<AST, ScriptError> {
        let source = without_bom(source);
        let engine = self.engine(None, |_| {});
        let mut ast = engine
            .compile(source)
            .map_err(|e| ScriptError::from_parse(&e, path, source))?;
        ast.set_source(path.to_string_lossy().as_ref());
        let mut seen = Vec::new();
        self.check_imports(&engine, &ast, path, &mut seen)?;
        for check in &self.checks {
            check(&ast, &self.root)?;
        }
        Ok(ast)
    }

    /// Compile what `ast` (from `path`) imports, and what those import, each once. Paths
    /// that are computed or that the resolver refuses are left to the run, which reports
    /// them where they are evaluated.
    fn check_imports(
        &self,
        engine: &Engine,
        ast: &AST,
        path: &Path,
        seen: &mut Vec<PathBuf>,
    ) -> Result<(), ScriptError> {
        let mut imports = Vec::new();
        ast.walk(&mut |nodes| {
            if let Some(rhai::ASTNode::Stmt(rhai::Stmt::Import(import, _))) = nodes.last() {
                if let rhai::Expr::StringConstant(name, _) = &import.0 {
                    imports.push(name.to_string());
                }
            }
            true
        });
        let resolver = ConfinedResolver {
            root: self.root.clone(),
        };
        let source = path.to_string_lossy();
        for import in imports {
            if seen.len() >= self.limits.max_modules {
                break;
            }
            let Ok(file) = resolver.file(Some(source.as_ref()), &import) else {
                continue;
            };
            if seen.contains(&file) {
                continue;
            }
            seen.push(file.clone());
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            let module = engine
                .compile(without_bom(&text))
                .map_err(|e| ScriptError::from_parse(&e, &file, &text))?;
            self.check_imports(engine, &module, &file, seen)?;
        }
        Ok(())
    }

    /// Render an evaluation error of a script compiled from `path`.
    pub fn describe(&self, error: &EvalAltResult, path: &Path) -> ScriptError {
        ScriptError::from_eval(error, path, &self.limits)
    }
}

/// What every engine of a sandbox carries as its tag: the run's secrets, and the state
/// the stdlib's functions reach (a host's context, a generator's run).
#[derive(Clone)]
struct ScriptTag {
    secrets: Secrets,
    state: Dynamic,
}

/// `state` as the tag of an engine of a run with `secrets`: what [`Sandbox::tag`] makes,
/// for a caller that has the run's secrets but no sandbox at hand (the console's `on`).
pub fn script_tag(secrets: &Secrets, state: Dynamic) -> Dynamic {
    Dynamic::from(ScriptTag {
        secrets: secrets.clone(),
        state,
    })
}

/// The state of type `T` that the engine making this call carries (see [`Sandbox::tag`]).
pub fn tag_state<T: Clone + Send + Sync + 'static>(ctx: &rhai::NativeCallContext) -> Option<T> {
    ctx.tag()
        .and_then(|tag| tag.clone().try_cast::<ScriptTag>())
        .and_then(|tag| tag.state.try_cast::<T>())
}

/// The secrets of the run whose script makes this call.
pub fn tag_secrets(ctx: &rhai::NativeCallContext) -> Option<Secrets> {
    ctx.tag()
        .and_then(|tag| tag.clone().try_cast::<ScriptTag>())
        .map(|tag| tag.secrets)
}

/// The standard functions that allocate a size given as a number, in one piece, refusing
/// sizes past `max_memory`: the memory watcher cannot stop an allocation that fails outright,
/// and a failed allocation aborts toyc. They replace the standard package's (a global
/// module registered later wins) and otherwise behave the same.
fn sized_in_one_call(max_memory: u64) -> Shared<Module> {
    type RhaiResultOf<T> = Result<T, Box<EvalAltResult>>;
    let refuse = move |what: String, bytes: u64| -> RhaiResultOf<()> {
        if bytes <= max_memory {
            return Ok(());
        }
        Err(format!(
            "{what} would take {} MiB, more than the {} MiB toyc may use (`--max-memory`)",
            bytes / (1024 * 1024),
            max_memory / (1024 * 1024)
        )
        .into())
    };
    let size = |len: INT| usize::try_from(len).unwrap_or(0);
    let item_bytes = std::mem::size_of::<Dynamic>() as u64;
    let mut module = Module::new();
    module.set_native_fn("blob", move |len: INT| -> RhaiResultOf<Blob> {
        refuse(format!("`blob` of {len} bytes"), size(len) as u64)?;
        Ok(vec![0; size(len)])
    });
    module.set_native_fn("blob", move |len: INT, value: INT| -> RhaiResultOf<Blob> {
        refuse(format!("`blob` of {len} bytes"), size(len) as u64)?;
        Ok(vec![(value & 0xff) as u8; size(len)])
    });
    module.set_native_fn(
        "pad",
        move |array: &mut Array, len: INT, item: Dynamic| -> RhaiResultOf<()> {
            let more = size(len).saturating_sub(array.len()) as u64;
            refuse(
                format!("`pad` to {len} items"),
                more.saturating_mul(item_bytes),
            )?;
            if size(len) > array.len() {
                array.resize(size(len), item);
            }
            Ok(())
        },
    );
    module.set_native_fn(
        "pad",
        move |blob: &mut Blob, len: INT, value: INT| -> RhaiResultOf<()> {
            let more = size(len).saturating_sub(blob.len()) as u64;
            refuse(format!("`pad` to {len} bytes"), more)?;
            if size(len) > blob.len() {
                blob.resize(size(len), (value & 0xff) as u8);
            }
            Ok(())
        },
    );
    module.into()
}

/// `text` without the UTF-8 byte order mark some Windows editors start files with.
fn without_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// `relative` with `.` and `..` resolved lexically, or `None` when it climbs above its start.
fn normalize_inside(relative: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in relative.components() {
        match part {
            std::path::Component::Normal(p) => out.push(p),
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            _ => return None,
        }
    }
    Some(out)
}

/// `import` resolution confined to the script's directory tree: no absolute paths, no
/// `..`, no symlinks out. Module files are compiled with the importing engine, so they
/// share its limits and modules.
struct ConfinedResolver {
    root: PathBuf,
}

impl ConfinedResolver {
    /// The file `import "path"` names, in a file whose path is `source`; why not, if it
    /// leaves the script's directory.
    fn file(&self, source: Option<&str>, path: &str) -> Result<PathBuf, String> {
        if Path::new(path).is_absolute() {
            return Err(
                "an absolute path; scripts import only modules inside their own directory, by a path relative to the importing file".into(),
            );
        }
        // Imports are relative to the importing file, like Rhai's own file resolver.
        let base = source
            .map(Path::new)
            .and_then(Path::parent)
            .filter(|dir| !dir.as_os_str().is_empty())
            .unwrap_or(&self.root);
        // A module's source is its canonical path, and the root may be relative (`.`).
        let canonical_root = std::fs::canonicalize(&self.root).ok();
        // A relative source (`./generators/x.rhai` under a canonical root) is compared
        // canonical too: where it is, not how it was spelled.
        let relative_to_root = base
            .strip_prefix(&self.root)
            .ok()
            .map(Path::to_owned)
            .or_else(|| {
                let canonical_root = canonical_root.as_deref()?;
                base.strip_prefix(canonical_root)
                    .ok()
                    .map(Path::to_owned)
                    .or_else(|| {
                        let base = std::fs::canonicalize(base).ok()?;
                        base.strip_prefix(canonical_root).ok().map(Path::to_owned)
                    })
            })
            .unwrap_or_default()
            .join(format!("{path}.rhai"));
        let inside = normalize_inside(&relative_to_root).ok_or_else(|| {
            format!(
                "it leads outside the script's directory `{}`; scripts may only import their own files",
                self.root.display()
            )
        })?;
        crate::context::confined_path(&self.root, &inside.to_string_lossy())
    }
}

impl ModuleResolver for ConfinedResolver {
    fn resolve(
        &self,
        engine: &Engine,
        source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<Shared<Module>, Box<EvalAltResult>> {
        // Not ErrorModuleNotFound: Rhai replaces its text with the bare path.
        let refuse = |why: String| -> Box<EvalAltResult> {
            EvalAltResult::ErrorRuntime(format!("cannot import `{path}`: {why}").into(), pos).into()
        };
        let file = self.file(source, path).map_err(refuse)?;
        let text = std::fs::read_to_string(&file).map_err(|e| refuse(e.to_string()))?;
        let file_name = file.to_string_lossy().into_owned();
        let mut ast = engine.compile(without_bom(&text)).map_err(|e| {
            Box::new(EvalAltResult::ErrorInModule(
                file_name.clone(),
                EvalAltResult::ErrorParsing(e.0.as_ref().clone(), e.1).into(),
                pos,
            ))
        })?;
        ast.set_source(file_name.as_str());
        let module = Module::eval_ast_as_new(Scope::new(), &ast, engine)
            .map_err(|e| Box::new(EvalAltResult::ErrorInModule(file_name, e, pos)))?;
        Ok(module.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seconds to build an array of `n` items with `push`.
    fn push_time(n: u64) -> f64 {
        let sandbox = Sandbox::new(".", Limits::default());
        let script = format!(
            "let a = [];\nfor i in 0..{n} {{ a.push(#{{ name: `task ${{i}}` }}); }}\na.len()"
        );
        let ast = sandbox
            .compile_text(&script, Path::new("t.rhai"))
            .expect("compiles");
        let started = Instant::now();
        let len = sandbox
            .engine(None, |_| {})
            .eval_ast::<rhai::INT>(&ast)
            .expect("runs");
        assert_eq!(len as u64, n);
        started.elapsed().as_secs_f64()
    }

    #[test]
    fn building_a_large_array_with_push_takes_linear_time() {
        // Linear: four times the items, about four times the time; quadratic: sixteen.
        let small = push_time(25_000);
        let large = push_time(100_000);
        assert!(
            large < 8.0 * small,
            "100k pushes took {large:.3}s, 25k took {small:.3}s"
        );
    }

    #[test]
    fn too_many_modules_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("m.rhai"), "fn f() { 1 }").expect("write");
        let sandbox = Sandbox::new(
            dir.path(),
            Limits {
                max_modules: 1,
                ..Limits::default()
            },
        );
        let ast = sandbox
            .compile_text(
                "import \"m\" as a;\nimport \"m\" as b;",
                &dir.path().join("t.rhai"),
            )
            .expect("compiles");
        let err = sandbox
            .engine(None, |_| {})
            .run_ast(&ast)
            .expect_err("stopped");
        assert_eq!(
            sandbox.describe(&err, Path::new("t.rhai")).message,
            "script imports more than 1 modules"
        );
    }
}
