//! `toyc role ROLE`: the command line of roles. The engine's [`toyc_engine::role`] syncs
//! the role's repo, opens its checkout, chooses its hosts, layers its attributes and
//! keeps the applied-commit records; this file turns arguments into those calls, prints
//! what they return, and applies the runbook exactly as `toyc run` applies a script
//! (prepare → show → confirm → apply), each host recording the commit once it applied.

use std::path::Path;

use anyhow::{anyhow, Context};
use serde_json::{Map, Value};
use toyc_engine::gitsync::{short, SyncOptions, Synced};
use toyc_engine::inventory::Inventory;
use toyc_engine::role::attributes::Attributes;
use toyc_engine::role::hosts::{self, HostChoice, HostsError};
use toyc_engine::role::record::Record;
use toyc_engine::role::status::{self, Behind, HostState};
use toyc_engine::role::{Role, RoleError};

use super::args::{DeployArgs, RoleArgs, RunArgs};
use super::run::{converge_with, extra_vars, RunExtras};
use super::targets::{seconds, ssh_options};
use super::{Failure, Outcome, Process};
use crate::exit::ExitCode;
use toyc_engine::run::RunContext;
use toyc_engine::secrets::Secrets;

/// The top-level entry point for `toyc role`.
pub async fn role(args: RoleArgs, process: &Process) -> Outcome {
    let state = toyc_engine::state_dir::state_dir().map_err(Failure::input)?;
    let role = Role::new(
        &args.role,
        args.repo.as_deref(),
        args.repos_base.as_deref(),
        &state,
    )
    .map_err(role_failure)?;
    let synced = sync(&args, &role).await?;
    for note in &synced.notes {
        eprintln!("note: {note}");
    }
    let checkout = role.open(&synced).map_err(role_failure)?;
    for warning in &checkout.warnings {
        eprintln!("warning: {warning}");
    }
    if args.explain {
        let Some(runbook) = &checkout.runbook_yml else {
            return Err(Failure::input(anyhow!(
                "role `{}` has a runbook.rhai already; `--explain` translates a runbook.yml",
                role.name
            )));
        };
        print!("{}", runbook.to_rhai(&role.name));
        return Ok(ExitCode::Success);
    }

    let inventory = match &args.targets.inventory {
        Some(path) => Inventory::load(path).map_err(Failure::input)?,
        None => Inventory::localhost_only(),
    };
    let run = run_args(&args, &checkout.script);
    if let Some(name) = &args.show_attributes {
        return show_attributes(
            &checkout.attributes,
            &inventory,
            name,
            &extra_vars(&run, &process.secrets)?,
            &process.secrets,
        );
    }
    let choice = HostChoice {
        local: args.local,
        hosts_file: args.hosts_file.as_deref(),
        limit: args.targets.limit.as_deref(),
        inventory_file: args.targets.inventory.as_deref(),
    };
    let hosts = hosts::choose(&role.name, &inventory, &choice).map_err(hosts_failure)?;
    if args.status {
        return print_status(&args, &role, &hosts, &synced, process).await;
    }
    let last = role.applied_here();
    eprintln!(
        "role {}: {} → {} commit, {} changed",
        role.name,
        last.as_ref().map_or("(never applied)".to_owned(), short),
        short(&synced.new),
        match role.files_changed(last.as_deref(), &synced.new) {
            Some(1) => "1 file".to_owned(),
            Some(n) => format!("{n} files"),
            None => "unknown files (history rewritten)".to_owned(),
        }
    );
    let hosts = hosts
        .into_iter()
        .map(|mut host| {
            host.vars = checkout.attributes.layered(&host.vars);
            host
        })
        .collect();
    let record = Record {
        role: role.name.clone(),
        commit: synced.new.clone(),
        repo: role.display_url(),
        applied_at: None,
    };
    let extras = RunExtras {
        hosts: Some(hosts),
        root: Some(role.cache.clone()),
        after_apply: Some(record.after_apply(None)),
    };
    let outcome = converge_with(&run, "role", None, extras, process).await;
    if matches!(outcome, Ok(ExitCode::Success)) && !args.changes.check {
        role.note_applied(&synced.new).map_err(role_failure)?;
    }
    outcome
}

/// A role error as the CLI's failure: bad input exits 65, a failed sync or a cache that
/// cannot be read or written exits 1.
fn role_failure(error: RoleError) -> Failure {
    let failed = matches!(
        error,
        RoleError::Sync(_) | RoleError::Read { .. } | RoleError::Write { .. }
    );
    let error = anyhow::Error::new(error);
    if failed {
        Failure::from(error)
    } else {
        Failure::input(error)
    }
}

/// Choosing hosts fails only on bad input.
fn hosts_failure(error: HostsError) -> Failure {
    Failure::input(anyhow::Error::new(error))
}

/// Clone or update the cache, off the async threads (git2 blocks).
async fn sync(args: &RoleArgs, role: &Role) -> Result<Synced, Failure> {
    let options = SyncOptions {
        reference: args.reference.clone(),
        identity: args.git_identity.clone(),
        known_hosts: args.git_known_hosts.clone(),
        timeout: seconds(args.git_timeout, "--git-timeout")?,
    };
    if args.output.verbose > 0 && !args.output.json {
        eprintln!(
            "--> Syncing role `{}` from {}...",
            role.name,
            role.display_url()
        );
    }
    let role = role.clone();
    tokio::task::spawn_blocking(move || role.sync(&options))
        .await
        .context("the git sync thread failed")?
        .map_err(role_failure)
}

/// The `toyc run` arguments for the role's runbook: every flag group `toyc role` shares
/// with `toyc run`, as given.
fn run_args(args: &RoleArgs, script: &Path) -> RunArgs {
    RunArgs {
        script: script.to_owned(),
        targets: args.targets.clone(),
        output: args.output.clone(),
        changes: args.changes.clone(),
        limits: args.limits.clone(),
        variables: args.variables.clone(),
        deploy: DeployArgs::default(),
    }
}

/// `--show-attributes HOST`: each attribute, its value, and the layer it came from.
fn show_attributes(
    attributes: &Attributes,
    inventory: &Inventory,
    name: &str,
    extra: &Map<String, Value>,
    secrets: &Secrets,
) -> Outcome {
    let host = inventory.host(name).ok_or_else(|| {
        Failure::input(anyhow!(
            "no host `{name}` in the inventory (it has: {})",
            inventory
                .hosts()
                .iter()
                .map(|h| h.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    let shown = attributes.explain(inventory, host, extra);
    let width = shown.iter().map(|a| a.name.len()).max().unwrap_or(0);
    for attribute in &shown {
        let text = attribute.value.to_string();
        let value = secrets.redact(&text);
        println!(
            "{:<width$} = {value}    # {}",
            attribute.name, attribute.origin
        );
    }
    Ok(ExitCode::Success)
}

/// `--status`: each host's record and how it stands against the remote, as a table.
async fn print_status(
    args: &RoleArgs,
    role: &Role,
    hosts: &[toyc_engine::inventory::Host],
    synced: &Synced,
    process: &Process,
) -> Outcome {
    let run = RunContext::new(ssh_options(&args.targets)?, Default::default())
        .with_cancel(process.cancel.clone());
    let rows = status::status(
        &role.name,
        hosts,
        &run,
        args.targets.forks,
        &role.cache,
        &synced.new,
    )
    .await;
    run.session.close().await;
    let width = rows.iter().map(|r| r.host.len()).max().unwrap_or(4).max(4);
    println!(
        "{:<width$}  {:<7}  {:<20}  state (remote at {})",
        "host",
        "commit",
        "applied at",
        short(&synced.new)
    );
    let mut unreachable = 0;
    for row in rows {
        let (commit, at, state) = match row.state {
            HostState::Unreachable(e) => {
                unreachable += 1;
                ("-".into(), "-".into(), format!("unreachable: {e}"))
            }
            HostState::NeverApplied => ("-".into(), "-".into(), "never applied".into()),
            HostState::Applied {
                commit,
                applied_at,
                behind,
            } => {
                let state = match behind {
                    Behind::UpToDate => "up to date".to_owned(),
                    Behind::By(n) => {
                        format!("behind by {n} commit{}", if n == 1 { "" } else { "s" })
                    }
                    Behind::Diverged => {
                        "behind (its commit is not an ancestor of the remote's)".to_owned()
                    }
                };
                (
                    short(&commit),
                    applied_at.unwrap_or_else(|| "-".into()),
                    state,
                )
            }
        };
        println!("{:<width$}  {commit:<7}  {at:<20}  {state}", row.host);
    }
    Ok(if unreachable > 0 {
        ExitCode::Unreachable
    } else {
        ExitCode::Success
    })
}
