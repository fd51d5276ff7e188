//! Where a step's `module::task` comes from: a built-in module (Rust, [`crate::steps`])
//! or `modules/NAME.rhai` beside the workflow file, whose `fn TASK(clip) { ...; clip }`
//! runs in the sandbox and returns the next clipboard.

use std::path::Path;

use rhai::Dynamic;
use serde_json::{Map, Value};
use toyc_engine::context::confined_path;
use toyc_engine::limits::Limits;
use toyc_engine::sandbox::Sandbox;

use crate::context::StepContext;
use crate::definition::Step;
use crate::steps;

/// Whether `step` exists: a built-in task, or a Rhai module that compiles and has a
/// function of that name taking the clipboard.
pub fn check(step: &Step, base: &Path, ctx: &StepContext) -> Result<(), String> {
    if let Some(tasks) = steps::tasks(&step.module) {
        return if tasks.contains(&step.task.as_str()) {
            Ok(())
        } else {
            Err(format!(
                "module `{}` has no task `{}` (it has: {})",
                step.module,
                step.task,
                tasks.join(", ")
            ))
        };
    }
    let (sandbox, path) = script(step, base, ctx)?;
    let ast = sandbox.compile(&path).map_err(|e| e.to_string())?;
    let found = ast
        .iter_functions()
        .any(|f| f.name == step.task && f.params.len() == 1);
    if found {
        Ok(())
    } else {
        Err(format!(
            "`{}` has no function `{}(clip)`",
            path.display(),
            step.task
        ))
    }
}

/// Run `step` on `clip`; the next clipboard.
pub async fn run(
    step: &Step,
    base: &Path,
    clip: Map<String, Value>,
    ctx: &StepContext,
) -> Result<Map<String, Value>, String> {
    if steps::tasks(&step.module).is_some() {
        return steps::run(step, clip, ctx).await;
    }
    let (sandbox, path) = script(step, base, ctx)?;
    let task = step.task.clone();
    tokio::task::spawn_blocking(move || {
        let ast = sandbox.compile(&path).map_err(|e| e.to_string())?;
        let engine = sandbox.engine(None, |line| tracing::info!(target: "workflow", "{line}"));
        let input = rhai::serde::to_dynamic(Value::Object(clip)).map_err(|e| e.to_string())?;
        let mut scope = rhai::Scope::new();
        let output: Dynamic = engine
            .call_fn(&mut scope, &ast, &task, (input,))
            .map_err(|e| sandbox.describe(&e, &path).to_string())?;
        match rhai::serde::from_dynamic::<Value>(&output) {
            Ok(Value::Object(next)) => Ok(next),
            Ok(other) => Err(format!(
                "`{}`: `{task}` returned {other}, not the clipboard (a map): end it with `clip`",
                path.display()
            )),
            Err(e) => Err(e.to_string()),
        }
    })
    .await
    .map_err(|e| format!("the step's thread failed: {e}"))?
}

/// The sandbox of the workflow's directory and the module's file in it.
fn script(
    step: &Step,
    base: &Path,
    ctx: &StepContext,
) -> Result<(Sandbox, std::path::PathBuf), String> {
    let relative = format!("modules/{}.rhai", step.module);
    let path = confined_path(base, &relative).map_err(|_| {
        format!(
            "no module `{}`: not built in ({}), and no `{relative}` beside the workflow",
            step.module,
            steps::MODULES.join(", ")
        )
    })?;
    if !path.is_file() {
        return Err(format!(
            "no module `{}`: not built in ({}), and no `{relative}` beside the workflow",
            step.module,
            steps::MODULES.join(", ")
        ));
    }
    let mut sandbox = Sandbox::for_run(
        base,
        Limits::default(),
        ctx.cancel.clone(),
        ctx.secrets.clone(),
    );
    toyc_stdlib::register(&mut sandbox);
    Ok((sandbox, path))
}
