//! `toyc apply PLAN`: read a saved, possibly hand-edited task list, validate every task
//! before any host is touched, then run it. A saved task list was reviewed already, so it
//! runs without asking (like `terraform apply plan.tfplan`).

use std::path::Path;

use anyhow::anyhow;
use toyc_engine::run::{Approve, RunError, TaskListJob};
use toyc_engine::tasklist::TaskList;

use super::args::ApplyArgs;
use super::deploy::{deploy_run, execute, invalid_list, inventory, plan_hosts, unknown_hosts};
use super::targets::script_limits;
use super::{Failure, Outcome, Process};

/// The top-level entry point for `toyc apply`.
pub async fn apply(args: ApplyArgs, process: &Process) -> Outcome {
    let list = TaskList::load(&args.plan).map_err(|e| Failure::input(anyhow!(e)))?;
    let inventory = inventory(&args.targets)?;
    let unknown = unknown_hosts(&list, inventory.as_ref(), None);
    if !unknown.is_empty() {
        return Err(invalid_list(RunError::Invalid {
            list: list.name.clone(),
            problems: unknown.iter().map(ToString::to_string).collect(),
        }));
    }
    let hosts = plan_hosts(&list, inventory.as_ref(), None);
    // Local paths of a saved list resolve against the list file's directory.
    let base = args
        .plan
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_owned();
    let run = deploy_run(
        process,
        "apply",
        &args.targets,
        &args.output,
        script_limits(&args.limits)?,
    )?;
    let job = TaskListJob {
        list,
        hosts,
        sudo: args.targets.sudo,
        forks: args.targets.forks,
        check: false,
        base,
    };
    execute(job, &run, &Approve).await
}
