//! `toyc role ROLE`: sync the role's git repo into toyc's cache, find the role's hosts,
//! layer the role's attributes under their inventory vars, and apply the role's runbook
//! exactly as `toyc run` applies a script (prepare → show → confirm → apply). Each host
//! that applied it records the role and commit; `--status` reads those records back.
//!
//! A role repo holds `runbook.rhai` (or the older `runbook.yml`, see [`legacy`]),
//! `files/`, `templates/`, `attributes.yml` and Rhai modules under `lib/`. The repo's
//! checkout is the script's sandbox root: files, templates, imports and attributes
//! resolve only inside it.

mod legacy;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use serde_json::{Map, Value};
use toyc_engine::gitsync::{self, short, SyncOptions, Synced};
use toyc_engine::inventory::{Host, Inventory, TransportKind};
use toyc_engine::runner::{connect, for_each_host};
use toyc_engine::transport::{atomic_write, quote, ExecRequest, PutOptions, Transport};

use super::args::{DeployArgs, RoleArgs, RunArgs};
use super::run::{converge_with, extra_vars, AfterApply, RunExtras};
use super::targets::{seconds, ssh_options};
use super::{Failure, Outcome};
use crate::exit::ExitCode;

/// Where a host keeps its records, relative to the login user's home (or XDG state dir).
const HOST_RECORDS: &str = "${XDG_STATE_HOME:-$HOME/.local/state}/toyc/roles";

/// The top-level entry point for `toyc role`.
pub async fn role(args: RoleArgs) -> Outcome {
    check_name(&args.role)?;
    let url = repo_url(&args)?;
    let state = toyc_engine::state_dir::state_dir().map_err(Failure::input)?;
    let cache = gitsync::cache_path(&state.join("roles"), &args.role, &url);
    let synced = sync(&args, &url, &cache).await?;
    for note in &synced.notes {
        eprintln!("note: {note}");
    }
    let repo = RoleRepo::open(&args.role, &cache, &synced)?;
    if args.explain {
        let Some(runbook) = &repo.legacy else {
            return Err(Failure::input(anyhow!(
                "role `{}` has a runbook.rhai already; `--explain` translates a runbook.yml",
                args.role
            )));
        };
        print!("{}", runbook.to_rhai(&args.role));
        return Ok(ExitCode::Success);
    }

    let inventory = match &args.targets.inventory {
        Some(path) => Inventory::load(path).map_err(Failure::input)?,
        None => Inventory::localhost_only(),
    };
    if let Some(name) = &args.show_attributes {
        let run_args = run_args(&args, &repo.script)?;
        return show_attributes(&repo, &inventory, name, &extra_vars(&run_args)?);
    }
    let hosts = role_hosts(&args, &inventory)?;
    if args.status {
        return status(&args, &hosts, &cache, &synced).await;
    }
    // Against what the last successful `toyc role` from here applied, not what the cache
    // held: `--status` and `--show-attributes` sync the cache too.
    let applied_here = beside(&cache, "applied");
    let last = std::fs::read_to_string(&applied_here)
        .ok()
        .map(|c| c.trim().to_owned());
    let changed = gitsync::files_between(&cache, last.as_deref(), &synced.new);
    eprintln!(
        "role {}: {} → {} commit, {} changed",
        args.role,
        last.as_ref().map_or("(never applied)".to_owned(), short),
        short(&synced.new),
        match changed {
            Some(1) => "1 file".to_owned(),
            Some(n) => format!("{n} files"),
            None => "unknown files (history rewritten)".to_owned(),
        }
    );
    let hosts = hosts
        .into_iter()
        .map(|mut host| {
            host.vars = repo.layered(&host.vars);
            host
        })
        .collect();
    let record = Record {
        role: args.role.clone(),
        commit: synced.new.clone(),
        repo: gitsync::display_url(&url),
    };
    let extras = RunExtras {
        hosts: Some(hosts),
        root: Some(cache),
        after_apply: Some(record.hook()),
    };
    let check = args.changes.check;
    let outcome = converge_with(&run_args(&args, &repo.script)?, "role", None, extras).await;
    if matches!(outcome, Ok(ExitCode::Success)) && !check {
        note_applied(&applied_here, &synced.new)?;
    }
    outcome
}

/// `path` with `.suffix` appended (not replacing an extension: role names may hold dots).
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

/// Remember (atomically) the commit every host of this run applied.
fn note_applied(path: &Path, commit: &str) -> Result<(), Failure> {
    let tmp = beside(path, "tmp");
    std::fs::write(&tmp, format!("{commit}\n"))
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("unable to write `{}`", path.display()))?;
    Ok(())
}

/// Role names become directory and file names: keep them plain.
fn check_name(role: &str) -> Result<(), Failure> {
    let plain = !role.is_empty()
        && !role.starts_with('.')
        && role
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if plain {
        Ok(())
    } else {
        Err(Failure::input(anyhow!(
            "role name `{role}` must be letters, digits, `-`, `_` or `.` (and not start with `.`)"
        )))
    }
}

/// `--repo`, or `ROLE.git` under `--repos-base`.
fn repo_url(args: &RoleArgs) -> Result<String, Failure> {
    match (&args.repo, &args.repos_base) {
        (Some(url), _) => Ok(url.clone()),
        (None, Some(base)) => Ok(format!("{}/{}.git", base.trim_end_matches('/'), args.role)),
        (None, None) => Err(Failure::input(anyhow!(
            "where is role `{}`? pass `--repo URL`, or `--repos-base URL` (or set TOYC_REPOS_BASE) for `URL/{}.git`",
            args.role,
            args.role
        ))),
    }
}

/// Clone or update the cache, off the async threads (git2 blocks).
async fn sync(args: &RoleArgs, url: &str, cache: &Path) -> Result<Synced, Failure> {
    let options = SyncOptions {
        reference: args.reference.clone(),
        identity: args.git_identity.clone(),
        known_hosts: args.git_known_hosts.clone(),
        timeout: seconds(args.git_timeout, "--git-timeout")?,
    };
    if args.output.verbose > 0 && !args.output.json {
        eprintln!(
            "--> Syncing role `{}` from {}...",
            args.role,
            gitsync::display_url(url)
        );
    }
    let (url, cache) = (url.to_owned(), cache.to_owned());
    let synced = tokio::task::spawn_blocking(move || gitsync::sync(&url, &cache, &options))
        .await
        .context("the git sync thread failed")?;
    synced.map_err(|e| Failure::from(anyhow::Error::new(e)))
}

/// A synced role repo: its runbook and its attributes.
struct RoleRepo {
    /// The script to run: `runbook.rhai`, or the translation of `runbook.yml` beside the cache.
    script: PathBuf,
    /// The role's attribute layers, lowest first, each with where it came from.
    attributes: Vec<(&'static str, Map<String, Value>)>,
    /// The parsed `runbook.yml`, for `--explain`.
    legacy: Option<legacy::Runbook>,
}

impl RoleRepo {
    fn open(role: &str, checkout: &Path, synced: &Synced) -> Result<RoleRepo, Failure> {
        let confined = |name: &str| toyc_engine::context::confined_path(checkout, name);
        let mut attributes = Vec::new();
        let (script, legacy) = if checkout.join("runbook.rhai").exists() {
            let script = confined("runbook.rhai").map_err(|e| Failure::input(anyhow!(e)))?;
            (script, None)
        } else if checkout.join("runbook.yml").exists() {
            let path = confined("runbook.yml").map_err(|e| Failure::input(anyhow!(e)))?;
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("unable to read `{}`", path.display()))?;
            let runbook =
                legacy::Runbook::parse(&text, &path).map_err(|e| Failure::input(anyhow!(e)))?;
            // Beside the checkout, not in it: the cache stays exactly the remote's tree.
            let script = beside(checkout, "runbook.rhai");
            std::fs::write(&script, runbook.to_rhai(role))
                .with_context(|| format!("unable to write `{}`", script.display()))?;
            attributes.push(("runbook.yml", runbook.attributes.clone()));
            (script, Some(runbook))
        } else {
            return Err(Failure::input(anyhow!(
                "role `{role}` (commit {}) has neither `runbook.rhai` nor `runbook.yml` at the top of its repo",
                short(&synced.new)
            )));
        };
        if checkout.join("attributes.yml").exists() {
            let path = confined("attributes.yml").map_err(|e| Failure::input(anyhow!(e)))?;
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("unable to read `{}`", path.display()))?;
            let value: Value = serde_yaml::from_str(&text)
                .map_err(|e| Failure::input(anyhow!("role `{role}`: attributes.yml: {e}")))?;
            match value {
                Value::Object(map) => attributes.push(("attributes.yml", map)),
                Value::Null => {}
                _ => {
                    return Err(Failure::input(anyhow!(
                        "role `{role}`: attributes.yml must hold a map of names to values"
                    )))
                }
            }
        }
        Ok(RoleRepo {
            script,
            attributes,
            legacy,
        })
    }

    /// The role's attributes with `inventory` (a host's merged inventory vars) over them.
    fn layered(&self, inventory: &Map<String, Value>) -> Map<String, Value> {
        let mut vars = Map::new();
        for (_, layer) in &self.attributes {
            vars.extend(layer.clone());
        }
        vars.extend(inventory.clone());
        vars
    }
}

/// The role's hosts: `--local` is this machine; else the `--hosts-file` entry or the
/// inventory group named after the role, narrowed by `-l`; else what `-l` selects.
fn role_hosts(args: &RoleArgs, inventory: &Inventory) -> Result<Vec<Host>, Failure> {
    if args.local {
        let mut host = inventory
            .host("localhost")
            .cloned()
            .unwrap_or_else(Host::localhost);
        host.transport = TransportKind::Local;
        return Ok(vec![host]);
    }
    let role = &args.role;
    let listed: Option<Vec<Host>> = if let Some(file) = &args.hosts_file {
        Some(hosts_file_entry(
            file,
            role,
            inventory,
            args.targets.inventory.is_some(),
        )?)
    } else {
        inventory.group(role).map(|group| {
            group
                .hosts
                .iter()
                .filter_map(|name| inventory.host(name).cloned())
                .collect()
        })
    };
    let limit = args.targets.limit.as_deref();
    let hosts: Vec<Host> = match (listed, limit) {
        (Some(listed), None) => listed,
        (Some(listed), Some(limit)) => {
            let selected = inventory.select(Some(limit)).map_err(Failure::input)?;
            listed
                .into_iter()
                .filter(|h| selected.iter().any(|s| s.name == h.name))
                .collect()
        }
        (None, Some(limit)) => inventory
            .select(Some(limit))
            .map_err(Failure::input)?
            .into_iter()
            .cloned()
            .collect(),
        (None, None) => {
            return Err(Failure::input(anyhow!(
                "no hosts for role `{role}`: {} has no group `{role}`; add one, map the role to hosts with `--hosts-file`, select hosts with `-l`, or apply it here with `--local`",
                args.targets
                    .inventory
                    .as_ref()
                    .map_or("without `-i`, the inventory".to_owned(), |p| format!("the inventory `{}`", p.display()))
            )))
        }
    };
    if hosts.is_empty() {
        return Err(Failure::input(match limit {
            Some(limit) => anyhow!("no hosts for role `{role}` are left after `-l {limit}`"),
            None => anyhow!("role `{role}` has no hosts: its list is empty"),
        }));
    }
    Ok(hosts)
}

/// The hosts `file` (`role: [host, ...]`) lists for `role`, as the inventory defines them
/// (without an inventory, each name is an ssh host of that address).
fn hosts_file_entry(
    file: &Path,
    role: &str,
    inventory: &Inventory,
    have_inventory: bool,
) -> Result<Vec<Host>, Failure> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("unable to read hosts file `{}`", file.display()))
        .map_err(Failure::input)?;
    let map: std::collections::BTreeMap<String, Vec<String>> = serde_yaml::from_str(&text)
        .map_err(|e| {
            Failure::input(anyhow!(
                "hosts file `{}`: {e}; it maps roles to host lists, like `web: [web1, web2]`",
                file.display()
            ))
        })?;
    let names = map.get(role).ok_or_else(|| {
        Failure::input(anyhow!(
            "hosts file `{}` has no entry for role `{role}` (it has: {})",
            file.display(),
            map.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
    })?;
    names
        .iter()
        .map(|name| match inventory.host(name) {
            Some(host) => Ok(host.clone()),
            None if !have_inventory => Ok(Host {
                name: name.clone(),
                address: name.clone(),
                transport: TransportKind::Ssh,
                ..Host::localhost()
            }),
            None => Err(Failure::input(anyhow!(
                "host `{name}`, listed for role `{role}` in `{}`, is not in the inventory",
                file.display()
            ))),
        })
        .collect()
}

/// The `toyc run` arguments for the role's runbook: every flag group `toyc role` shares
/// with `toyc run`, as given.
fn run_args(args: &RoleArgs, script: &Path) -> Result<RunArgs, Failure> {
    Ok(RunArgs {
        script: script.to_owned(),
        targets: args.targets.clone(),
        output: args.output.clone(),
        changes: args.changes.clone(),
        limits: args.limits.clone(),
        variables: args.variables.clone(),
        deploy: DeployArgs::default(),
    })
}

/// `--show-attributes HOST`: each attribute, its value, and the layer it came from.
fn show_attributes(
    repo: &RoleRepo,
    inventory: &Inventory,
    name: &str,
    extra: &Map<String, Value>,
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
    let mut merged: std::collections::BTreeMap<String, (Value, String)> = Default::default();
    for (origin, layer) in &repo.attributes {
        for (key, value) in layer {
            merged.insert(key.clone(), (value.clone(), (*origin).to_owned()));
        }
    }
    for (key, value) in &host.vars {
        merged.insert(
            key.clone(),
            (value.clone(), inventory_origin(inventory, host, key)),
        );
    }
    for (key, value) in extra {
        merged.insert(key.clone(), (value.clone(), "--var/--vars-file".to_owned()));
    }
    let width = merged.keys().map(String::len).max().unwrap_or(0);
    for (key, (value, origin)) in &merged {
        let text = value.to_string();
        let shown = toyc_engine::secrets::redact(&text);
        println!("{key:<width$} = {shown}    # {origin}");
    }
    Ok(ExitCode::Success)
}

/// Which inventory layer gave `host` its value of `key`: the host's own, else the last of
/// the inventory-wide vars and its groups (in definition order) holding that same value.
fn inventory_origin(inventory: &Inventory, host: &Host, key: &str) -> String {
    let value = host.vars.get(key);
    let mut origin = format!("host {}", host.name);
    for group in inventory.groups() {
        let member = group.name == "all" || host.groups.contains(&group.name);
        if member && group.vars.get(key) == value {
            origin = if group.name == "all" {
                "inventory vars".to_owned()
            } else {
                format!("group {}", group.name)
            };
        }
    }
    origin
}

/// What a host keeps about its last successful apply of a role.
#[derive(Clone, serde::Serialize)]
struct Record {
    role: String,
    commit: String,
    repo: String,
}

impl Record {
    /// The after-apply hook: write the record atomically on the host (one round trip),
    /// with the host's own clock for the time.
    fn hook(self) -> AfterApply {
        let record = Arc::new(self);
        Arc::new(move |_host, transport| {
            let record = Arc::clone(&record);
            Box::pin(async move { record.write(transport.as_ref()).await })
                as Pin<Box<dyn Future<Output = Result<(), String>> + Send>>
        })
    }

    async fn write(&self, transport: &dyn Transport) -> Result<(), String> {
        let mut json = serde_json::to_string(self).map_err(|e| e.to_string())?;
        json.pop(); // the closing brace: the time goes in on the host.
        let write = atomic_write(
            &format!("{}.json", self.role),
            None,
            &PutOptions {
                mode: Some("0644".into()),
                ..PutOptions::default()
            },
        );
        let command = format!(
            "d=\"{HOST_RECORDS}\" && mkdir -p \"$d\" && cd \"$d\" && printf '%s,\"applied_at\":\"%s\"}}\\n' {} \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\" | (\n{write}\n)",
            quote(&json)
        );
        let mut request = ExecRequest::new(command);
        request.timeout = Some(Duration::from_secs(30));
        let output = transport
            .exec(&request, None)
            .await
            .map_err(|e| format!("applied, but unable to record the applied commit: {e}"))?;
        if output.status == 0 {
            Ok(())
        } else {
            Err(format!(
                "applied, but unable to record the applied commit: {}",
                toyc_engine::transport::describe_failure("writing the role record", &output)
            ))
        }
    }
}

/// `--status`: each host's record, read in one round trip per host.
async fn status(args: &RoleArgs, hosts: &[Host], cache: &Path, synced: &Synced) -> Outcome {
    let ssh = Arc::new(ssh_options(&args.targets)?);
    let path = format!("{HOST_RECORDS}/{}.json", args.role);
    let rows = for_each_host(hosts, args.targets.forks, |host| {
        let (ssh, path) = (Arc::clone(&ssh), path.clone());
        async move {
            let transport = match connect(&host, &ssh).await {
                Ok(t) => t,
                Err(e) => return (host.name, Err(e.to_string())),
            };
            let request = ExecRequest::new(format!("cat \"{path}\" 2>/dev/null || :"));
            let read = transport.exec(&request, None).await;
            transport.close().await;
            let record = read
                .map_err(|e| e.to_string())
                .map(|out| serde_json::from_str::<Value>(out.stdout_text().trim()).ok());
            (host.name, record)
        }
    })
    .await;
    let width = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(4).max(4);
    println!(
        "{:<width$}  {:<7}  {:<20}  state (remote at {})",
        "host",
        "commit",
        "applied at",
        short(&synced.new)
    );
    let mut unreachable = 0;
    for (name, record) in rows {
        let (commit, at, state) = match record {
            Err(e) => {
                unreachable += 1;
                ("-".into(), "-".into(), format!("unreachable: {e}"))
            }
            Ok(None) => ("-".into(), "-".into(), "never applied".into()),
            Ok(Some(record)) => {
                let commit = record["commit"].as_str().unwrap_or_default().to_owned();
                let at = record["applied_at"].as_str().unwrap_or("-").to_owned();
                let state = match gitsync::commits_between(cache, &commit, &synced.new) {
                    Some(0) => "up to date".to_owned(),
                    Some(n) => format!("behind by {n} commit{}", if n == 1 { "" } else { "s" }),
                    None => "behind (its commit is not an ancestor of the remote's)".to_owned(),
                };
                (short(&commit), at, state)
            }
        };
        println!("{name:<width$}  {commit:<7}  {at:<20}  {state}");
    }
    Ok(if unreachable > 0 {
        ExitCode::Unreachable
    } else {
        ExitCode::Success
    })
}
