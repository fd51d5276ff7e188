//! `toyc apply PLAN`: read a saved, possibly hand-edited task list, validate every task
//! before any host is touched, then run it. A saved plan was reviewed already, so it
//! runs without asking (like `terraform apply plan.tfplan`).

use anyhow::anyhow;
use toyc_engine::tasklist::TaskList;

use super::args::ApplyArgs;
use super::deploy::{check, commands, execute, inventory, plan_hosts};
use super::{Failure, Outcome};

/// The top-level entry point for `toyc apply`.
pub async fn apply(args: ApplyArgs) -> Outcome {
    let list = TaskList::load(&args.plan).map_err(|e| Failure::input(anyhow!(e)))?;
    let inventory = inventory(&args.targets)?;
    let hosts = plan_hosts(&list, inventory.as_ref(), None);
    let commands = commands(&list, Some(&args.plan), &hosts);
    check(&list, &commands)?;
    execute("apply", &list, hosts, commands, &args.targets, &args.output).await
}
