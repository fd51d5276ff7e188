//! Running a workflow: every step is checked to exist before the first one runs; then
//! each step gets the clipboard and returns the next one, and the caller is told of
//! every step's start and end (with the clipboard to save) through [`Progress`].

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::context::StepContext;
use crate::definition::{Step, Workflow};
use crate::modules;

/// Where a run reports, so the clipboard is saved after every step and people can ask
/// where it is.
#[async_trait]
pub trait Progress: Send + Sync {
    /// Step `index` (0-based) starts.
    async fn started(&self, index: usize, step: &Step);
    /// Step `index` ended; `clip` is the clipboard it left. Saving it must be durable
    /// before this returns: a resumed run starts from it.
    async fn done(&self, index: usize, step: &Step, clip: &Map<String, Value>);
    /// Step `index` failed with `error`; the clipboard is as the previous step left it.
    async fn failed(&self, index: usize, step: &Step, error: &str);
}

/// How a run ended without finishing.
#[derive(Debug, Clone, PartialEq)]
pub struct Failed {
    /// The step that failed (0-based), or the first step that does not exist.
    pub index: usize,
    /// Why.
    pub error: String,
    /// The clipboard as the last successful step left it.
    pub clip: Map<String, Value>,
}

/// Check that every step exists (a built-in task, or a `modules/NAME.rhai` with a
/// function `task(clip)` that compiles): all problems, one per line.
pub fn check(workflow: &Workflow, ctx: &StepContext) -> Result<(), Vec<String>> {
    let problems: Vec<String> = workflow
        .steps
        .iter()
        .enumerate()
        .filter_map(|(i, step)| {
            modules::check(step, &workflow.base, ctx)
                .err()
                .map(|why| format!("step {} `{step}`: {why}", i + 1))
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Run `workflow` from step `start` with `clip`; returns the last clipboard.
pub async fn run(
    workflow: &Workflow,
    start: usize,
    mut clip: Map<String, Value>,
    ctx: &StepContext,
    progress: &dyn Progress,
) -> Result<Map<String, Value>, Failed> {
    if let Err(problems) = check(workflow, ctx) {
        return Err(Failed {
            index: start,
            error: problems.join("; "),
            clip,
        });
    }
    for (index, step) in workflow.steps.iter().enumerate().skip(start) {
        if ctx.cancel.is_cancelled() {
            let error = "cancelled".to_owned();
            progress.failed(index, step, &error).await;
            return Err(Failed { index, error, clip });
        }
        progress.started(index, step).await;
        match modules::run(step, &workflow.base, clip.clone(), ctx).await {
            Ok(next) => {
                clip = next;
                progress.done(index, step, &clip).await;
            }
            Err(error) => {
                let error = ctx.secrets.redact(&error).into_owned();
                progress.failed(index, step, &error).await;
                return Err(Failed { index, error, clip });
            }
        }
    }
    Ok(clip)
}
