//! What `toyc plan`, `toyc apply` and `toyc run SCRIPT --config F` share: the deploy
//! config with the command line merged in, the generator run, validation before any host
//! is touched, and the run of a task list with its log lines, table and exit code.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, Context};
use serde_json::Value;
use toyc_engine::events::{EventSink, HumanSink, JsonSink, Printer};
use toyc_engine::inventory::deploy_config::{host_named, DeployConfig};
use toyc_engine::inventory::{Host, Inventory};
use toyc_engine::run::{Approve, Gate, Job, Library as _, RunContext, RunError, TaskListJob};
use toyc_engine::sandbox::Limits;
use toyc_engine::secrets::Secrets;
use toyc_engine::tasklist::log::TaskLogSink;
use toyc_engine::tasklist::{validate, Invalid, TaskList};
use toyc_stdlib::generator::Generator;
use toyc_stdlib::Library;

use super::args::{DeployArgs, OutputArgs, RunArgs, TargetArgs};
use super::run::{exit_code, TerminalGate};
use super::targets::{run_context, script_limits};
use super::{Failure, Outcome, Process};

/// The top-level entry point for `toyc run GENERATOR --config F`: generate, validate,
/// show, confirm (`-y` skips), run.
pub async fn run(args: RunArgs, process: &Process) -> Outcome {
    let run = deploy_run(
        process,
        "run",
        &args.targets,
        &args.output,
        script_limits(&args.limits)?,
    )?;
    let (list, hosts) =
        generate_checked(args.script.as_deref(), &args.deploy, &args.targets, &run).await?;
    if !args.output.json {
        show(&list, &run.secrets);
    }
    let job = TaskListJob {
        list,
        hosts,
        sudo: args.targets.sudo,
        forks: args.targets.forks,
        check: args.changes.check,
        base: PathBuf::from("."),
    };
    let gate: Box<dyn Gate> = if args.changes.yes {
        Box::new(Approve)
    } else {
        Box::new(TerminalGate)
    };
    execute(job, &run, gate.as_ref()).await
}

/// The run of a task list: its events as the task list's log lines (or `--json`).
pub fn deploy_run(
    process: &Process,
    command: &str,
    targets: &TargetArgs,
    output: &OutputArgs,
    limits: Limits,
) -> Result<RunContext, Failure> {
    run_context(process, command, targets, output, limits, |printer| {
        task_sink(output, printer)
    })
}

/// A generator's task list, checked, with the hosts it names: what `toyc plan` and
/// `toyc run --config` share. The generator runs in `run` (its `remote_versions`
/// connections stay open for the tasks).
pub async fn generate_checked(
    script: Option<&Path>,
    deploy: &DeployArgs,
    targets: &TargetArgs,
    run: &RunContext,
) -> Result<(TaskList, Vec<Host>), Failure> {
    let inventory = inventory(targets)?;
    let config = load_config(deploy)?;
    let list = generate(script, config.clone(), deploy, inventory.as_ref(), run).await?;
    let hosts = plan_hosts(&list, inventory.as_ref(), Some(&config));
    let unknown = unknown_hosts(&list, inventory.as_ref(), Some(&config));
    check(&list, Path::new("."), &hosts, run, unknown)?;
    Ok((list, hosts))
}

/// The tasks whose host the list cannot run on: in neither the inventory it will run with
/// (`-i`; without it only `localhost`) nor the deploy config's host groups. A host name
/// that is known nowhere is a typo or a plan applied without its inventory: refused
/// before any host is touched, rather than a failure to resolve it per host.
pub fn unknown_hosts(
    list: &TaskList,
    inventory: Option<&Inventory>,
    config: Option<&DeployConfig>,
) -> Vec<Invalid> {
    let in_config = |name: &str| {
        config.is_some_and(|c| c.hostgroups.iter().flat_map(|(_, m)| m).any(|m| m == name))
    };
    let known = |name: &str| {
        name == "localhost" || inventory.is_some_and(|i| i.host(name).is_some()) || in_config(name)
    };
    let mut unknown = Vec::new();
    for stage in &list.stages {
        for (i, task) in stage.tasks.iter().enumerate() {
            if task.host.trim().is_empty() || known(&task.host) {
                continue;
            }
            let reason = match (inventory.is_some(), config.is_some()) {
                (true, true) => format!(
                    "host `{}` is in neither the inventory nor the config's host groups",
                    task.host
                ),
                (true, false) => format!("host `{}` is not in the inventory", task.host),
                (false, true) => format!(
                    "host `{}` is not in the config's host groups, and no inventory was given (`-i`)",
                    task.host
                ),
                (false, false) => format!(
                    "host `{}` is not in the inventory: no `-i` was given; pass the inventory the plan was made with",
                    task.host
                ),
            };
            unknown.push(Invalid {
                stage: stage.name.clone(),
                index: i + 1,
                host: task.host.clone(),
                command: task.command.clone(),
                reason,
            });
        }
    }
    unknown
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
    inventory: Option<&Inventory>,
    run: &RunContext,
) -> Result<TaskList, Failure> {
    // One rule for every deploy: its paths resolve against the config's directory, which
    // is the sandbox root of its generator (imports, local files) and holds `commands/`,
    // whether the generator is named or chosen by platform. Absolute, so that a relative
    // `--config` (`deploy.yml`, `./x/deploy.yml`) resolves exactly as an absolute one.
    let base = config
        .path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let base = base.canonicalize().map_err(|e| {
        Failure::input(anyhow!(
            "unable to read the config's directory `{}`: {e}",
            base.display()
        ))
    })?;
    let script = match script {
        Some(script) => std::path::absolute(script).unwrap_or_else(|_| script.to_owned()),
        None => {
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
    let root = Some(base);
    let hosts = config.hosts(inventory);
    let generator = Generator {
        script,
        components: components(deploy)?,
        directory: deploy.directory.clone(),
        hosts,
        run: run.clone(),
        root,
        config,
    };
    generator
        .generate()
        .await
        .map_err(|e| Failure::input(anyhow!(e)))
}

/// Every host the task list names: from the config's host groups (which take the
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

/// Every task's `initialize`, with local files below `base`, and the tasks of `unknown`
/// hosts; all failures listed, none run.
pub fn check(
    list: &TaskList,
    base: &Path,
    hosts: &[Host],
    run: &RunContext,
    unknown: Vec<Invalid>,
) -> Result<(), Failure> {
    let commands = Library.commands(list, base, hosts, run);
    let mut invalid = unknown;
    invalid.extend(validate(list, commands.as_ref()));
    if invalid.is_empty() {
        return Ok(());
    }
    Err(invalid_list(RunError::Invalid {
        list: list.name.clone(),
        problems: invalid.iter().map(ToString::to_string).collect(),
    }))
}

/// A job that could not run: a task list's problems listed one per line, then the error.
pub fn invalid_list(error: RunError) -> Failure {
    if let RunError::Invalid { problems, .. } = &error {
        for problem in problems {
            eprintln!("invalid: {problem}");
        }
    }
    Failure::input(error)
}

/// The task list for people, stage by stage, secrets masked.
pub fn show(list: &TaskList, secrets: &Secrets) {
    eprintln!("task list `{}`: {} task(s)", list.name, list.task_count());
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
                .map(|(k, v)| format!("{k}={}", super::plan::listed(v, secrets)))
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
                secrets.redact(&args.join(" "))
            );
        }
    }
}

/// The human sink of a task list: a log line per task event, then the table.
fn task_sink(output: &OutputArgs, printer: Printer) -> Arc<dyn EventSink> {
    if output.json {
        Arc::new(JsonSink::new(printer))
    } else {
        // Host names are not known yet; log lines do not pad them, the table pads itself.
        let table = HumanSink::new(false, output.verbose > 0, 0, printer)
            .with_table()
            .with_full_table(output.full_table);
        Arc::new(TaskLogSink::new(table, output.verbose > 0))
    }
}

/// Run a task list through the engine and report: log lines (or `--json` events), the
/// per-host table, the summary, and the exit code (1 when a stage aborted or a task
/// failed).
pub async fn execute(job: TaskListJob, run: &RunContext, gate: &dyn Gate) -> Outcome {
    let report = toyc_engine::run::run(Job::TaskList(job), run, &Library, gate)
        .await
        .map_err(invalid_list)?;
    if report.verdict == toyc_engine::run::Verdict::Declined {
        eprintln!("nothing was run");
        return Ok(crate::exit::ExitCode::Failed);
    }
    exit_code(&report)
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
