//! `toyc workflow`: queue a workflow run in the daemon and ask about it (see
//! `toyc_daemon::workflows`), or run one here with `--foreground`.

use std::path::Path;

use anyhow::{anyhow, Context};
use async_trait::async_trait;
use serde_json::{json, Map, Value};
use toyc_workflow::runner::{self, Progress};
use toyc_workflow::{Step, StepContext, Workflow, WorkflowSettings};

use super::args::{WorkflowAction, WorkflowArgs};
use super::daemon_client::DaemonClient;
use super::{Failure, Outcome, Process};
use crate::exit::ExitCode;

/// The top-level entry point for `toyc workflow`.
pub async fn workflow(args: WorkflowArgs, process: &Process) -> Outcome {
    if let WorkflowAction::Run {
        workflow,
        name,
        foreground: true,
        ssh_identity,
    } = &args.action
    {
        return foreground(
            Path::new(workflow),
            name.as_deref(),
            ssh_identity.clone(),
            process,
        )
        .await;
    }
    let client = DaemonClient::new(&args.connection)?;
    let body = match &args.action {
        WorkflowAction::Run { workflow, name, .. } => {
            // The daemon reads the file: give it the path as seen from here.
            let what = match std::fs::canonicalize(workflow) {
                Ok(path) => path.to_string_lossy().into_owned(),
                Err(_) => workflow.clone(),
            };
            client
                .call("/api/workflows", Some(json!({"what": what, "name": name})))
                .await?
        }
        WorkflowAction::Status { name } => {
            client.call(&format!("/api/workflows/{name}"), None).await?
        }
        WorkflowAction::Resume { name } => {
            client
                .call(&format!("/api/workflows/{name}/resume"), Some(json!({})))
                .await?
        }
        WorkflowAction::Cancel { name } => {
            client
                .call(&format!("/api/workflows/{name}/cancel"), Some(json!({})))
                .await?
        }
        WorkflowAction::List => client.call("/api/workflows", None).await?,
    };
    if args.json {
        println!("{body}");
        return Ok(ExitCode::Success);
    }
    match &args.action {
        WorkflowAction::Run { .. } | WorkflowAction::Resume { .. } => println!(
            "workflow {} queued (job #{}); `toyc workflow status {}` says where it is",
            text(&body["name"]),
            body["job"],
            text(&body["name"])
        ),
        WorkflowAction::Status { .. } => {
            println!("{}", text(&body["line"]));
            println!(
                "clipboard: {}",
                serde_json::to_string_pretty(&body["clip"]).unwrap_or_default()
            );
            if body["state"] == "failed" || body["state"] == "interrupted" {
                return Ok(ExitCode::Failed);
            }
        }
        WorkflowAction::Cancel { name } => println!("{name}: {}", text(&body["state"])),
        WorkflowAction::List => {
            for status in body.as_array().into_iter().flatten() {
                println!("{}", status_line(status));
            }
        }
    }
    Ok(ExitCode::Success)
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A status from `/api/workflows` as one line.
fn status_line(status: &Value) -> String {
    let step = |i: &Value| {
        i.as_u64().map_or(String::new(), |i| {
            let steps = status["steps"].as_array().map_or(0, Vec::len);
            format!(
                " step {}/{steps} {}",
                i + 1,
                text(&status["steps"][i as usize])
            )
        })
    };
    format!(
        "{:<16} {:<12}{}{}",
        text(&status["name"]),
        text(&status["state"]),
        step(&status["current_step"]),
        if status["failed_step"].is_null() {
            String::new()
        } else {
            format!(
                "{}: {}",
                step(&status["failed_step"]),
                text(&status["error"])
            )
        }
    )
}

/// `--foreground`: run here, each step printed; the clipboard saved after every step
/// in the state directory.
async fn foreground(
    path: &Path,
    name: Option<&str>,
    ssh_identity: Option<std::path::PathBuf>,
    process: &Process,
) -> Outcome {
    let workflow = Workflow::load(path, name).map_err(Failure::input)?;
    let state_dir = toyc_engine::state_dir::state_dir().map_err(Failure::input)?;
    let run_dir = state_dir
        .join("workflows")
        .join(&workflow.name)
        .join("foreground");
    std::fs::create_dir_all(&run_dir)
        .with_context(|| format!("unable to create `{}`", run_dir.display()))?;
    let ctx = StepContext {
        settings: WorkflowSettings {
            ssh_identity,
            ..serde_json::from_value(json!({})).map_err(|e| anyhow!("{e}"))?
        },
        known_hosts: state_dir.join("known_hosts"),
        state_dir,
        run_dir: run_dir.clone(),
        cancel: process.cancel.clone(),
        secrets: process.secrets.clone(),
    };
    if let Err(problems) = runner::check(&workflow, &ctx) {
        return Err(Failure::input(anyhow!(
            "workflow `{}`:\n{}",
            workflow.path.display(),
            problems.join("\n")
        )));
    }
    let progress = Printed {
        total: workflow.steps.len(),
        clip_file: run_dir.join("clipboard.json"),
    };
    let started = std::time::Instant::now();
    match runner::run(&workflow, 0, workflow.record.clone(), &ctx, &progress).await {
        Ok(_) => {
            eprintln!(
                "{}: done, all {} steps in {:.1} s",
                workflow.name,
                workflow.steps.len(),
                started.elapsed().as_secs_f64()
            );
            Ok(ExitCode::Success)
        }
        Err(failed) => {
            eprintln!(
                "{}: failed at step {}: {}",
                workflow.name,
                failed.index + 1,
                failed.error
            );
            Ok(ExitCode::Failed)
        }
    }
}

struct Printed {
    total: usize,
    clip_file: std::path::PathBuf,
}

#[async_trait]
impl Progress for Printed {
    async fn started(&self, index: usize, step: &Step) {
        eprintln!("--> step {}/{} {step}", index + 1, self.total);
    }

    async fn done(&self, _index: usize, _step: &Step, clip: &Map<String, Value>) {
        let tmp = self.clip_file.with_extension("tmp");
        let text = serde_json::to_string_pretty(clip).unwrap_or_default();
        if std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &self.clip_file))
            .is_err()
        {
            eprintln!(
                "warning: unable to save the clipboard to `{}`",
                self.clip_file.display()
            );
        }
    }

    async fn failed(&self, index: usize, step: &Step, error: &str) {
        eprintln!(
            "--> step {}/{} {step} failed: {error}",
            index + 1,
            self.total
        );
    }
}
