//! Rhai hooks in a program's repo, run through the engine's one entry point on this
//! machine (the local transport), in the run's sandbox with the checkout as the
//! script's root: `toyc/verify.rhai` in the staging checkout after the `verify`
//! command, `toyc/health.rhai` in the live checkout after the `health` check (tried as
//! often as it), `toyc/after_deploy.rhai` once a deploy stays. A hook fails when its
//! script throws or a change it asks for fails; what it did goes to the program's log.
//!
//! The hooks see `vars.program`, `vars.commit` and `vars.checkout` (the checkout's
//! absolute path), and may use every module a runbook may (`host::exec`, `files::*`).

use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value};
use toyc_engine::events::{Event, EventSink};
use toyc_engine::inventory::Inventory;
use toyc_engine::limits::Limits;
use toyc_engine::role::hosts::{self, HostChoice};
use toyc_engine::run::{AfterApply, Approve, Job, RunContext, RunbookJob, RunbookSource, Verdict};
use toyc_engine::transport::SshOptions;

use crate::logs::Log;

/// A hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// Decides whether a staged commit may be deployed.
    Verify,
    /// Decides whether a started commit stays.
    Health,
    /// Runs once a deploy stayed.
    AfterDeploy,
}

impl Hook {
    /// The hook's script, relative to the checkout.
    pub fn file(self) -> &'static str {
        match self {
            Hook::Verify => "toyc/verify.rhai",
            Hook::Health => "toyc/health.rhai",
            Hook::AfterDeploy => "toyc/after_deploy.rhai",
        }
    }
}

/// Writes a run's events into a program's log, one JSON line each.
pub(crate) struct LogSink(pub(crate) Option<Log>);

impl EventSink for LogSink {
    fn emit(&self, event: &Event) {
        if matches!(event, Event::Phase { .. }) {
            return;
        }
        if let (Some(log), Ok(line)) = (&self.0, serde_json::to_string(event)) {
            log.line("run", &line);
        }
    }
}

/// Runs `hook` of the checkout at `checkout`; `None` when the repo has no such hook.
pub async fn run(
    hook: Hook,
    checkout: &Path,
    program: &str,
    commit: &str,
    log: Option<&Log>,
) -> Option<Result<(), String>> {
    let script = checkout.join(hook.file());
    if !script.is_file() {
        return None;
    }
    if let Some(log) = log {
        log.note(&format!("running the hook {}", hook.file()));
    }
    let mut vars = Map::new();
    vars.insert("program".into(), Value::from(program));
    vars.insert("commit".into(), Value::from(commit));
    vars.insert(
        "checkout".into(),
        Value::from(checkout.to_string_lossy().into_owned()),
    );
    Some(
        run_locally(&script, checkout, vars, None, log.cloned())
            .await
            .map_err(|why| format!("{}: {why}", hook.file())),
    )
}

/// Runs the runbook `script` (its root `root`) on this machine through the engine,
/// changes approved; `Err` says why it did not succeed.
pub(crate) async fn run_locally(
    script: &Path,
    root: &Path,
    vars: Map<String, Value>,
    after_apply: Option<AfterApply>,
    log: Option<Log>,
) -> Result<(), String> {
    let choice = HostChoice {
        local: true,
        hosts_file: None,
        limit: None,
        inventory_file: None,
    };
    let hosts = hosts::choose("supervise", &Inventory::localhost_only(), &choice)
        .map_err(|e| e.to_string())?;
    run_job(script, root, hosts, vars, after_apply, log).await
}

/// [`run_locally`] with the hosts chosen by the caller (a role layers its attributes).
pub(crate) async fn run_job(
    script: &Path,
    root: &Path,
    hosts: Vec<toyc_engine::inventory::Host>,
    vars: Map<String, Value>,
    after_apply: Option<AfterApply>,
    log: Option<Log>,
) -> Result<(), String> {
    let job = RunbookJob {
        hosts,
        source: RunbookSource::Script {
            path: script.to_owned(),
            root: root.to_owned(),
        },
        vars,
        sudo: false,
        command_timeout: None,
        check: false,
        diff: false,
        forks: 1,
        max_cycles: None,
        after_apply,
    };
    let ssh = SshOptions::in_run_directory(None)
        .map_err(|e| format!("unable to create a directory for the run: {e}"))?;
    let run = RunContext::new(ssh, Limits::default())
        .with_command("supervise")
        .with_events(Arc::new(LogSink(log)));
    let report = toyc_engine::run::run(Job::Runbook(job), &run, &toyc_stdlib::Library, &Approve)
        .await
        .map_err(|e| e.to_string())?;
    let s = &report.summary;
    match report.verdict {
        Verdict::Done if s.failed == 0 && s.unreachable == 0 => Ok(()),
        Verdict::Done => Err(report
            .results
            .iter()
            .filter_map(|r| r.error.clone())
            .next()
            .unwrap_or_else(|| format!("{} host(s) failed", s.failed + s.unreachable))),
        other => Err(format!("the run ended {other:?}")),
    }
}
