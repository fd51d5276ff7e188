//! What `toyc plan`, `toyc apply` and `toyc run SCRIPT --config F` share: the deploy
//! config with the command line merged in, the generator run, validation before any host
//! is touched, and the run of a task list with its log lines, table and exit code.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, Context};
use serde_json::Value;
use toyc_engine::events::{Event, EventSink, HumanSink, JsonSink, Summary};
use toyc_engine::inventory::deploy_config::{host_named, DeployConfig};
use toyc_engine::inventory::{Host, Inventory};
use toyc_engine::progress::Progress;
use toyc_engine::runner::elapsed_ms;
use toyc_engine::sandbox::Limits;
use toyc_engine::tasklist::log::TaskLogSink;
use toyc_engine::tasklist::run::{run_list, RunSetup};
use toyc_engine::tasklist::{validate, TaskList};
use toyc_stdlib::commands::builtin::LocalRoots;
use toyc_stdlib::commands::Commands;
use toyc_stdlib::generator::Generator;

use super::args::{DeployArgs, OutputArgs, RunArgs, ScriptLimitArgs, TargetArgs};
use super::targets::{script_limits, ssh_options};
use super::{Failure, Outcome};
use crate::exit::ExitCode;

/// The top-level entry point for `toyc run GENERATOR --config F`: generate, validate,
/// show, confirm (`-y` skips), run.
pub async fn run(args: RunArgs) -> Outcome {
    let (list, hosts, commands) = generate_checked(
        Some(&args.script),
        &args.deploy,
        &args.targets,
        &args.limits,
    )
    .await?;
    if !args.output.json {
        show(&list);
    }
    if args.changes.check {
        return Ok(if list.task_count() > 0 {
            ExitCode::ChangesPending
        } else {
            ExitCode::Success
        });
    }
    if !args.changes.yes && !confirm(&list)? {
        eprintln!("nothing was run");
        return Ok(ExitCode::Failed);
    }
    execute("run", &list, hosts, commands, &args.targets, &args.output).await
}

/// A generator's task list, checked, with the hosts it names and its commands: what
/// `toyc plan` and `toyc run --config` share.
pub async fn generate_checked(
    script: Option<&Path>,
    deploy: &DeployArgs,
    targets: &TargetArgs,
    limits: &ScriptLimitArgs,
) -> Result<(TaskList, Vec<Host>, Arc<Commands>), Failure> {
    let inventory = inventory(targets)?;
    let config = load_config(deploy)?;
    let limits = script_limits(limits)?;
    let list = generate(
        script,
        config.clone(),
        deploy,
        targets,
        inventory.as_ref(),
        limits,
    )
    .await?;
    let hosts = plan_hosts(&list, inventory.as_ref(), Some(&config));
    let commands = commands(&list, None, &hosts);
    check(&list, &commands)?;
    Ok((list, hosts, commands))
}

/// `-i`, when given.
pub fn inventory(targets: &TargetArgs) -> Result<Option<Inventory>, Failure> {
    targets
        .inventory
        .as_deref()
        .map(Inventory::load)
        .transpose()
        .map_err(Failure::input)
}

/// The config file with `--set` and `--component` merged in (`config.components`:
/// name → version or null).
pub fn load_config(deploy: &DeployArgs) -> Result<DeployConfig, Failure> {
    let path = deploy.config.as_deref().ok_or_else(|| {
        Failure::input(anyhow!("a deploy config is needed: pass `--config FILE`"))
    })?;
    let mut config = DeployConfig::load(path).map_err(Failure::input)?;
    for pair in &deploy.set {
        let (key, raw) = pair
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| Failure::input(anyhow!("`--set {pair}` is not `key=value`")))?;
        let value =
            serde_yaml::from_str::<Value>(raw).unwrap_or_else(|_| Value::String(raw.to_owned()));
        config.set(key, value);
    }
    for (name, version) in components(deploy)? {
        config.set(
            &format!("components.{name}"),
            version.map_or(Value::Null, Value::String),
        );
    }
    if config.platform().is_empty() {
        return Err(Failure::input(anyhow!(
            "`--set platform=...` left the config without a `platform`"
        )));
    }
    Ok(config)
}

/// `--component NAME[=VERSION]`, checked.
fn components(deploy: &DeployArgs) -> Result<Vec<(String, Option<String>)>, Failure> {
    deploy
        .components
        .iter()
        .map(|c| {
            let (name, version) = match c.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (c.as_str(), None),
            };
            if name.is_empty() || name.contains(['.', '/', ' ']) {
                return Err(Failure::input(anyhow!(
                    "`--component {c}` must be `NAME` or `NAME=VERSION`"
                )));
            }
            Ok((name.to_owned(), version))
        })
        .collect()
}

/// Run the generator (`script`, or `generators/PLATFORM.rhai` next to the config).
pub async fn generate(
    script: Option<&Path>,
    config: DeployConfig,
    deploy: &DeployArgs,
    targets: &TargetArgs,
    inventory: Option<&Inventory>,
    limits: Limits,
) -> Result<TaskList, Failure> {
    // A generator chosen by platform works from the config's directory, which holds
    // `generators/` and `commands/`.
    let mut root = None;
    let script = match script {
        Some(script) => script.to_owned(),
        None => {
            let base = config
                .path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            root = Some(base.to_owned());
            let chosen = base.join(format!("generators/{}.rhai", config.platform()));
            if !chosen.is_file() {
                return Err(Failure::input(anyhow!(
                    "platform `{}` has no generator `{}`; name one: `toyc plan GENERATOR --config ...`",
                    config.platform(),
                    chosen.display()
                )));
            }
            chosen
        }
    };
    let hosts = config.hosts(inventory);
    let generator = Generator {
        script,
        components: components(deploy)?,
        directory: deploy.directory.clone(),
        hosts,
        ssh: ssh_options(targets)?,
        limits,
        root,
        config,
    };
    generator
        .generate()
        .await
        .map_err(|e| Failure::input(anyhow!(e)))
}

/// Every host the plan names: from the config's host groups (which take the
/// inventory's settings), else the inventory, else the name as address.
pub fn plan_hosts(
    list: &TaskList,
    inventory: Option<&Inventory>,
    config: Option<&DeployConfig>,
) -> Vec<Host> {
    let from_config = config.map(|c| c.hosts(inventory)).unwrap_or_default();
    list.hosts()
        .iter()
        .map(|name| {
            from_config
                .iter()
                .find(|h| &h.name == name)
                .cloned()
                .unwrap_or_else(|| host_named(name, inventory))
        })
        .collect()
}

/// The commands of the plan: built-ins, operations, and `commands/NAME.rhai` from the
/// plan's `root` (relative to `plan_file`'s directory; that directory when absent).
pub fn commands(list: &TaskList, plan_file: Option<&Path>, hosts: &[Host]) -> Arc<Commands> {
    let base = plan_file
        .and_then(Path::parent)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let root = match &list.root {
        Some(root) => base.join(root),
        None => base.to_owned(),
    };
    let releases = list.releases.as_ref().map(|r| base.join(r));
    Arc::new(Commands::new(LocalRoots { root, releases }, hosts))
}

/// Every task's `initialize`; all failures listed, none run.
pub fn check(list: &TaskList, commands: &Commands) -> Result<(), Failure> {
    let invalid = validate(list, commands);
    if invalid.is_empty() {
        return Ok(());
    }
    for problem in &invalid {
        eprintln!("invalid: {problem}");
    }
    Err(Failure::input(anyhow!(
        "{} problem(s) in the task list `{}`; nothing was run, no host was touched",
        invalid.len(),
        list.name
    )))
}

/// The plan for people, stage by stage.
pub fn show(list: &TaskList) {
    eprintln!("plan `{}`: {} task(s)", list.name, list.task_count());
    for stage in &list.stages {
        let mut limits = Vec::new();
        if let Some(c) = stage.concurrency {
            limits.push(format!("concurrency {c}"));
        }
        if let Some(c) = stage.concurrency_per_host {
            limits.push(format!("{c} per host"));
        }
        limits.push(format!("on failure {:?}", stage.on_failure).to_lowercase());
        eprintln!("  stage `{}` ({})", stage.name, limits.join(", "));
        for (i, task) in stage.tasks.iter().enumerate() {
            let args: Vec<String> = task
                .args
                .iter()
                .filter(|(k, _)| k.as_str() != "service")
                .map(|(k, v)| match v {
                    Value::String(s) => format!("{k}={s}"),
                    other => format!("{k}={other}"),
                })
                .collect();
            let service = task
                .service()
                .map(|s| format!(" [{s}]"))
                .unwrap_or_default();
            eprintln!(
                "    {}. {} on {}{service}: {}",
                i + 1,
                task.command,
                task.host,
                toyc_engine::secrets::redact(&args.join(" "))
            );
        }
    }
}

/// Ask before running; without a terminal, refuse unless `-y`.
fn confirm(list: &TaskList) -> Result<bool, Failure> {
    if !std::io::stdin().is_terminal() {
        return Err(Failure::input(anyhow!(
            "running {} task(s) needs confirmation, and stdin is not a terminal; pass `-y` to run them, \
             or `--check` to only show them",
            list.task_count()
        )));
    }
    eprint!("Run {} task(s)? [y/N] ", list.task_count());
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .context("unable to read the answer")?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// Run a validated plan and report: log lines (or `--json` events), the per-host
/// table, the summary, and the exit code (1 when a stage aborted or a task failed).
pub async fn execute(
    command: &str,
    list: &TaskList,
    hosts: Vec<Host>,
    commands: Arc<Commands>,
    targets: &TargetArgs,
    output: &OutputArgs,
) -> Outcome {
    let events: Arc<dyn EventSink> = if output.json {
        Arc::new(JsonSink::default())
    } else {
        let width = hosts.iter().map(|h| h.name.len()).max().unwrap_or(0);
        let table = HumanSink::new(false, output.verbose > 0, width).with_table();
        Arc::new(TaskLogSink::new(table, output.verbose > 0))
    };
    events.emit(&Event::RunStart {
        command: command.to_owned(),
        hosts: hosts.iter().map(|h| h.name.clone()).collect(),
    });
    let started = Instant::now();
    let setup = RunSetup {
        hosts,
        ssh: ssh_options(targets)?,
        commands,
        sudo: targets.sudo,
        forks: targets.forks,
    };
    let progress = Progress::new(!output.json);
    let report = run_list(list, setup, &events, &progress).await;
    progress.finish();
    for result in &report.results {
        events.emit(&Event::HostEnd(result.clone()));
    }
    let summary = Summary::of(&report.results, elapsed_ms(started));
    events.emit(&Event::Summary(summary));
    Ok(if report.aborted {
        ExitCode::Failed
    } else {
        ExitCode::of(summary.failed + summary.skipped, summary.unreachable)
    })
}

/// Write `text` to `path` atomically: a temporary file next to it, then a rename.
pub fn save(path: &Path, text: &str) -> Result<(), Failure> {
    let dir: PathBuf = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_owned();
    let tmp = dir.join(format!(
        ".{}.toyc-{}",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("unable to write the plan to `{}`", path.display()))?;
    Ok(())
}
