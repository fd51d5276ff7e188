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
            &role.name,
            &extra_vars(&run.variables, &process.secrets)?,
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
    let rows = read_records(&args, &role, &hosts, &synced, process).await?;
    for line in header(&role, &rows, &synced.new) {
        eprintln!("{line}");
    }
    let hosts = hosts
        .into_iter()
        .map(|mut host| {
            host.vars = checkout
                .attributes
                .layered_for(&inventory, &host, &role.name);
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
        script: Some(script.to_owned()),
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
    role: &str,
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
    let shown = attributes.explain(inventory, host, role, extra);
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

/// Every host's record of the role, compared with the commit just synced.
async fn read_records(
    args: &RoleArgs,
    role: &Role,
    hosts: &[toyc_engine::inventory::Host],
    synced: &Synced,
    process: &Process,
) -> Result<Vec<status::Row>, Failure> {
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
    Ok(rows)
}

/// The header of a role run: where the hosts stand before it, from their own records
/// (what this machine applied last says nothing of hosts another run left behind),
/// hosts in the same state on one line: `h1, h2, h3: 1 commit behind (at 64b425a), 2 files`.
fn header(role: &Role, rows: &[status::Row], remote: &str) -> Vec<String> {
    let files = |old: Option<&str>| match role.files_changed(old, remote) {
        Some(1) => "1 file to change".to_owned(),
        Some(n) => format!("{n} files to change"),
        None => "files unknown (history rewritten)".to_owned(),
    };
    let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
    for row in rows {
        let state = match &row.state {
            HostState::Unreachable(_) => "record unreadable (not reached)".to_owned(),
            HostState::NeverApplied => format!("never applied, {}", files(None)),
            HostState::Applied {
                behind: Behind::UpToDate,
                ..
            } => "up to date".to_owned(),
            HostState::Applied {
                commit,
                behind: Behind::By(n),
                ..
            } => format!(
                "{n} commit{} behind (at {}), {}",
                if *n == 1 { "" } else { "s" },
                short(commit),
                files(Some(commit))
            ),
            HostState::Applied {
                commit,
                behind: Behind::Diverged,
                ..
            } => format!(
                "at {}, not an ancestor of the remote's commit, {}",
                short(commit),
                files(Some(commit))
            ),
        };
        match groups.iter_mut().find(|(s, _)| *s == state) {
            Some((_, hosts)) => hosts.push(&row.host),
            None => groups.push((state, vec![&row.host])),
        }
    }
    let mut lines = vec![format!("role {} → {}:", role.name, short(&remote))];
    for (state, hosts) in groups {
        lines.push(format!("  {}: {state}", host_list(&hosts)));
    }
    lines
}

/// Host names for one line: all of them up to six, else the first five and a count.
fn host_list(hosts: &[&str]) -> String {
    if hosts.len() <= 6 {
        hosts.join(", ")
    } else {
        format!("{} and {} more", hosts[..5].join(", "), hosts.len() - 5)
    }
}

/// `--status`: each host's record and how it stands against the remote, as a table.
/// Exits 2 when a host is behind, diverged or never applied (as `git diff --exit-code`
/// does, so scripts and monitoring can tell), 3 when one could not be reached.
async fn print_status(
    args: &RoleArgs,
    role: &Role,
    hosts: &[toyc_engine::inventory::Host],
    synced: &Synced,
    process: &Process,
) -> Outcome {
    let rows = read_records(args, role, hosts, synced, process).await?;
    let width = rows.iter().map(|r| r.host.len()).max().unwrap_or(4).max(4);
    println!(
        "{:<width$}  {:<7}  {:<20}  state (remote at {})",
        "host",
        "commit",
        "applied at",
        short(&synced.new)
    );
    let mut unreachable = 0;
    let mut behind_or_new = 0;
    for row in rows {
        let (commit, at, state) = match row.state {
            HostState::Unreachable(e) => {
                unreachable += 1;
                ("-".into(), "-".into(), format!("unreachable: {e}"))
            }
            HostState::NeverApplied => {
                behind_or_new += 1;
                ("-".into(), "-".into(), "never applied".into())
            }
            HostState::Applied {
                commit,
                applied_at,
                behind,
            } => {
                if behind != Behind::UpToDate {
                    behind_or_new += 1;
                }
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
    } else if behind_or_new > 0 {
        ExitCode::ChangesPending
    } else {
        ExitCode::Success
    })
}
