//! The queue's workers: claim a job, hold its lease, run it through the engine's one
//! entry point, record how it ended. A job is a [`RoleRun`]: sync the role's repo to the
//! pushed commit, work out which files the pushes changed, bootstrap the hosts the store
//! has never seen bootstrapped, then apply the role on every host in parallel.
//!
//! Exactly once: a worker renews its lease every third of its length; a worker that
//! loses it (it was too slow, or another daemon took the job over after this one looked
//! dead) stops the run and writes nothing, since only the lease's holder can finish a job.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, watch};
use toyc_engine::cancel::Cancel;
use toyc_engine::events::{Event, EventSink, HostStatus};
use toyc_engine::gitsync::{short, SyncOptions};
use toyc_engine::inventory::{Host, Inventory};
use toyc_engine::limits::Limits;
use toyc_engine::role::hosts::{self, HostChoice};
use toyc_engine::role::record::Record;
use toyc_engine::role::Role;
use toyc_engine::run::{AfterApply, Approve, Job, Report, RunContext, RunbookJob, RunbookSource};
use toyc_engine::secrets::Secrets;
use toyc_engine::transport::{ExecRequest, SshOptions};
use toyc_store::{Claim, JobId, Lease, Outcome, Store};

use crate::config::{Daemon, Repo};
use crate::job::{self, changed_files, Changes, RoleRun};

/// What every worker of a daemon shares.
pub struct Workers {
    /// The configuration.
    pub daemon: Daemon,
    /// The queue.
    pub store: Arc<dyn Store>,
    /// This daemon's name in leases: host, pid and start time.
    pub id: String,
    /// toyc's state directory (role checkouts).
    pub state_dir: PathBuf,
    /// The jobs running in this process, to cancel at once when the API asks (other
    /// daemons see the store's flag at their next renewal).
    pub running: Mutex<HashMap<JobId, Cancel>>,
    /// What workflow runs say on their own, for the chat adapters.
    pub announcements: tokio::sync::broadcast::Sender<crate::chat::Announcement>,
}

impl Workers {
    /// Cancel a job if it runs in this process.
    pub fn cancel_here(&self, job: JobId) {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cancel) = running.get(&job) {
            cancel.cancel();
        }
    }
}

/// One worker: claims and runs jobs until `stopping` turns true; a job running then is
/// given `grace` to finish, then stopped and released to the queue.
pub async fn work(workers: Arc<Workers>, stopping: watch::Receiver<bool>, grace: Duration) {
    let lease = workers.daemon.lease();
    loop {
        if *stopping.borrow() {
            return;
        }
        match workers.store.claim(&workers.id, lease, job::merge).await {
            Ok(Some(claim)) => run_claim(&workers, claim, stopping.clone(), grace).await,
            Ok(None) => {
                let mut stopping = stopping.clone();
                tokio::select! {
                    () = workers.store.wait_for_work(Duration::from_secs(2)) => {}
                    _ = stopping.changed() => {}
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "unable to claim a job; retrying in 2 s");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}

/// How a claimed job's lease ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Still held: finish the job.
    Finish,
    /// Another worker took it over: write nothing.
    Lost,
    /// The daemon is stopping: give it back.
    Release,
}

#[tracing::instrument(skip_all, fields(job = claim.job.id, role = %claim.job.key))]
async fn run_claim(
    workers: &Arc<Workers>,
    claim: Claim,
    mut stopping: watch::Receiver<bool>,
    grace: Duration,
) {
    let job = claim.job;
    let cancel = Cancel::new();
    workers
        .running
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(job.id, cancel.clone());
    let (log, writer) = event_log(Arc::clone(&workers.store), job.id);
    match &claim.taken_over {
        Some(old) => {
            let note = format!(
                "taken up again (attempt {}): worker {old} stopped renewing its lease",
                job.attempts
            );
            tracing::warn!("{note}");
            log.note(&note);
        }
        None => tracing::info!("started"),
    }

    // The lease keeper: renews, and stops the run when the job is cancelled, lost, or
    // the daemon is stopping and the grace period is over.
    let ending = Arc::new(Mutex::new(Ending::Finish));
    let keeper = {
        let (store, id, cancel, ending) = (
            Arc::clone(&workers.store),
            workers.id.clone(),
            cancel.clone(),
            Arc::clone(&ending),
        );
        let lease = workers.daemon.lease();
        let log = log.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(lease / 3);
            tick.tick().await;
            let mut stop_at: Option<tokio::time::Instant> = None;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    changed = stopping.changed(), if stop_at.is_none() => {
                        if changed.is_err() || *stopping.borrow() {
                            stop_at = Some(tokio::time::Instant::now() + grace);
                        }
                        continue;
                    }
                }
                if stop_at.is_some_and(|at| tokio::time::Instant::now() >= at) {
                    log.note("the daemon is stopping: run stopped, job left to be taken up again");
                    *ending.lock().unwrap_or_else(|p| p.into_inner()) = Ending::Release;
                    cancel.cancel();
                    return;
                }
                match store.renew(job.id, &id, lease).await {
                    Ok(Lease::Held) => {}
                    Ok(Lease::CancelRequested) => cancel.cancel(),
                    Ok(Lease::Lost) => {
                        tracing::warn!(job = job.id, "lease lost to another worker; stopping");
                        *ending.lock().unwrap_or_else(|p| p.into_inner()) = Ending::Lost;
                        cancel.cancel();
                        return;
                    }
                    Err(e) => {
                        tracing::error!(job = job.id, error = %e, "unable to renew the lease")
                    }
                }
            }
        })
    };

    let result = if let Some(run) = crate::workflows::WorkflowRun::from_value(&job.payload) {
        let taken_over = claim.taken_over.is_some();
        Ok(crate::workflows::execute(workers, job.id, &run, taken_over, &cancel).await)
    } else {
        match RoleRun::from_value(&job.payload) {
            Some(run) => execute(workers, &run, &cancel, &log).await,
            None => Err(format!(
                "job #{} is neither a role run nor a workflow run: {}",
                job.id, job.payload
            )),
        }
    };
    keeper.abort();
    let ending = *ending.lock().unwrap_or_else(|p| p.into_inner());
    workers
        .running
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&job.id);
    let (outcome, record) = match result {
        Ok((outcome, record)) => (outcome, record),
        Err(error) => {
            log.note(&format!("failed: {error}"));
            (Outcome::Failed, json!({ "error": error }))
        }
    };
    let outcome = if cancel.is_cancelled() && ending == Ending::Finish {
        log.note("cancel requested: the run was stopped on every host");
        Outcome::Cancelled
    } else {
        outcome
    };
    drop(log);
    let _ = writer.await;
    let store = &workers.store;
    let written = match ending {
        Ending::Lost => return,
        Ending::Release => store.release(job.id, &workers.id).await,
        Ending::Finish => store.finish(job.id, &workers.id, outcome, record).await,
    };
    match written {
        Ok(true) => tracing::info!(outcome = ?outcome, ending = ?ending, "ended"),
        Ok(false) => tracing::warn!("the lease was lost before the end: nothing recorded"),
        Err(e) => tracing::error!(error = %e, "unable to record the job's end"),
    }
}

/// A job's event log: events go, in order, through a channel to one task that appends
/// them to the store (the engine's sinks must not block).
#[derive(Clone)]
struct EventLog {
    tx: mpsc::UnboundedSender<Value>,
    secrets: Secrets,
}

fn event_log(store: Arc<dyn Store>, job: JobId) -> (EventLog, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Value>();
    let writer = tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            if let Err(e) = store.append_event(job, event).await {
                tracing::error!(job, error = %e, "unable to record an event");
            }
        }
    });
    (
        EventLog {
            tx,
            secrets: Secrets::new(),
        },
        writer,
    )
}

impl EventLog {
    /// A line of the daemon's own (the run's header, a takeover, a cancel).
    fn note(&self, message: &str) {
        let _ = self
            .tx
            .send(json!({"type": "daemon", "data": {"message": message}}));
    }
}

impl EventSink for EventLog {
    fn emit(&self, event: &Event) {
        if matches!(event, Event::Phase { .. }) {
            return;
        }
        let Ok(line) = serde_json::to_string(event) else {
            return;
        };
        if let Ok(value) = serde_json::from_str(&self.secrets.redact(&line)) {
            let _ = self.tx.send(value);
        }
    }
}

/// Run one role run: sync, changed files, bootstrap, apply. `Err` when it could not
/// start on any host.
async fn execute(
    workers: &Workers,
    run: &RoleRun,
    cancel: &Cancel,
    log: &EventLog,
) -> Result<(Outcome, Value), String> {
    let daemon = &workers.daemon;
    let repo = daemon
        .repos
        .get(&run.repo)
        .ok_or(format!("repo `{}` is no longer configured", run.repo))?;
    let role = Role::new(&run.role, Some(&repo.config.url), None, &workers.state_dir)
        .map_err(|e| e.to_string())?;
    let options = SyncOptions {
        reference: Some(run.commit.clone()),
        identity: daemon.config.git_identity.clone(),
        known_hosts: None,
        timeout: Duration::from_secs(daemon.config.git_timeout_seconds),
    };
    let synced = {
        let role = role.clone();
        tokio::task::spawn_blocking(move || role.sync(&options))
            .await
            .map_err(|e| format!("the git sync thread failed: {e}"))?
            .map_err(|e| e.to_string())?
    };
    let checkout = role.open(&synced).map_err(|e| e.to_string())?;
    let changes = {
        let (cache, run) = (role.cache.clone(), run.clone());
        tokio::task::spawn_blocking(move || changed_files(&cache, &run))
            .await
            .map_err(|e| format!("the git diff thread failed: {e}"))?
    };
    log.note(&header(run, &changes));

    let (inventory, hosts) = role_hosts(daemon, repo)?;
    let (ready, bootstrap) = bootstrap(workers, &role, run, &hosts, cancel, log).await?;
    if ready.is_empty() {
        return Ok((
            Outcome::Failed,
            json!({"commit": run.commit, "bootstrap": bootstrap, "error": "no host is ready"}),
        ));
    }
    let mut vars = Map::new();
    vars.insert("role".into(), json!(run.role));
    vars.insert("commit".into(), json!(run.commit));
    if let Changes::Files(files) = &changes {
        vars.insert("changed_files".into(), json!(files));
    }
    let hosts: Vec<Host> = ready
        .into_iter()
        .map(|mut host| {
            host.vars = checkout
                .attributes
                .layered_for(&inventory, &host, &run.role);
            host
        })
        .collect();
    let applied: AfterApply = {
        let (store, role_name, commit) = (
            Arc::clone(&workers.store),
            run.role.clone(),
            run.commit.clone(),
        );
        Arc::new(move |host, _| {
            let (store, role_name, commit) =
                (Arc::clone(&store), role_name.clone(), commit.clone());
            Box::pin(async move {
                store
                    .record_applied(&host, &role_name, &commit)
                    .await
                    .map_err(|e| format!("applied, but {e}"))
            })
        })
    };
    let record = Record {
        role: run.role.clone(),
        commit: run.commit.clone(),
        repo: role.display_url(),
        applied_at: None,
    };
    let job = RunbookJob {
        hosts,
        source: RunbookSource::Script {
            path: checkout.script.clone(),
            root: role.cache.clone(),
        },
        vars,
        sudo: false,
        command_timeout: None,
        check: false,
        diff: false,
        forks: daemon.config.forks,
        max_cycles: None,
        after_apply: Some(record.after_apply(Some(applied))),
    };
    let report = run_job(daemon, Job::Runbook(job), "role", cancel, log).await?;
    let outcome = outcome_of(&report, bootstrap_failed(&bootstrap));
    Ok((
        outcome,
        json!({
            "commit": run.commit,
            "changes": match &changes {
                Changes::Full(why) => json!({"full": why}),
                Changes::Files(files) => json!(files),
            },
            "bootstrap": bootstrap,
            "summary": report.summary,
            "hosts": report.results,
        }),
    ))
}

/// The run's header: the commits and the files it is for.
fn header(run: &RoleRun, changes: &Changes) -> String {
    let first = run.pushes.first().map_or("", |(before, _)| before.as_str());
    let pushes = match run.pushes.len() {
        1 => String::new(),
        n => format!(" ({n} pushes merged)"),
    };
    let files = match changes {
        Changes::Full(why) => format!("full run: {why}"),
        Changes::Files(files) if files.is_empty() => "no file changed".into(),
        Changes::Files(files) => format!("{} file(s) changed: {}", files.len(), files.join(", ")),
    };
    format!(
        "role {}: {} → {}{pushes}, {files}",
        run.role,
        if crate::webhook::is_zero(first) {
            "(new)".to_owned()
        } else {
            short(&first)
        },
        short(&run.commit)
    )
}

/// The inventory, read afresh for each job (its role overrides apply to the run), and
/// the role's hosts in it.
fn role_hosts(daemon: &Daemon, repo: &Repo) -> Result<(Inventory, Vec<Host>), String> {
    let inventory = match &daemon.config.inventory {
        Some(path) => Inventory::load(path).map_err(|e| e.to_string())?,
        None => Inventory::localhost_only(),
    };
    let choice = HostChoice {
        local: false,
        hosts_file: repo.config.hosts_file.as_deref(),
        limit: repo.config.hosts.as_deref(),
        inventory_file: daemon.config.inventory.as_deref(),
    };
    let hosts = hosts::choose(&repo.role, &inventory, &choice).map_err(|e| e.to_string())?;
    Ok((inventory, hosts))
}

/// Bootstrap the hosts the store has never seen bootstrapped: the role repo's
/// `bootstrap.rhai`, else the daemon's default script; each host that succeeds is
/// recorded with its host key. Returns the hosts ready for the role (those bootstrapped
/// before, and those that succeeded now) and a summary of what was done.
async fn bootstrap(
    workers: &Workers,
    role: &Role,
    run: &RoleRun,
    hosts: &[Host],
    cancel: &Cancel,
    log: &EventLog,
) -> Result<(Vec<Host>, Value), String> {
    let store = &workers.store;
    let mut new = Vec::new();
    for host in hosts {
        let known = store.host(&host.name).await.map_err(|e| e.to_string())?;
        if known.is_none_or(|h| h.bootstrapped_ms.is_none()) {
            new.push(host.clone());
        }
    }
    if new.is_empty() {
        return Ok((hosts.to_vec(), json!({"hosts": []})));
    }
    let own = role.cache.join("bootstrap.rhai");
    let (script, root) = if own.is_file() {
        (own, role.cache.clone())
    } else if let Some(default) = &workers.daemon.config.bootstrap {
        let root = default.parent().map(PathBuf::from).unwrap_or_default();
        (default.clone(), root)
    } else {
        // Nothing to run: reachable hosts are recorded by the role run's first apply.
        (PathBuf::new(), PathBuf::new())
    };
    let names: Vec<&str> = new.iter().map(|h| h.name.as_str()).collect();
    log.note(&format!(
        "bootstrapping {} new host(s): {}{}",
        new.len(),
        names.join(", "),
        if script.as_os_str().is_empty() {
            " (no bootstrap script: recording them)".to_owned()
        } else {
            format!(" with {}", script.display())
        }
    ));
    let keys: AfterApply = {
        let store = Arc::clone(store);
        Arc::new(move |host, transport| {
            let store = Arc::clone(&store);
            Box::pin(async move {
                // The key as the host presents it, over the connection whose key ssh
                // just checked (or accepted as new).
                let request = ExecRequest::new("cat /etc/ssh/ssh_host_ed25519_key.pub");
                let key = transport
                    .exec(&request, None)
                    .await
                    .ok()
                    .filter(|out| out.status == 0)
                    .map(|out| out.stdout_text().trim().to_owned());
                store
                    .record_bootstrap(&host, key.as_deref())
                    .await
                    .map_err(|e| format!("bootstrapped, but {e}"))
            })
        })
    };
    let empty = script.as_os_str().is_empty();
    let script = if empty {
        // A script with no operations: each host is connected to, then recorded.
        let path = workers.state_dir.join("daemon-record-only.rhai");
        std::fs::write(&path, "// toyc daemon: hosts recorded without bootstrap\n")
            .map_err(|e| format!("unable to write `{}`: {e}", path.display()))?;
        path
    } else {
        script
    };
    let root = if empty {
        workers.state_dir.clone()
    } else {
        root
    };
    let job = RunbookJob {
        hosts: new.clone(),
        source: RunbookSource::Script { path: script, root },
        vars: Map::from_iter([("commit".to_owned(), json!(run.commit))]),
        sudo: false,
        command_timeout: None,
        check: false,
        diff: false,
        forks: workers.daemon.config.forks,
        max_cycles: None,
        after_apply: Some(keys),
    };
    let report = run_job(&workers.daemon, Job::Runbook(job), "bootstrap", cancel, log).await?;
    let failed: Vec<&str> = report
        .results
        .iter()
        .filter(|r| !matches!(r.status, HostStatus::Ok))
        .map(|r| r.host.as_str())
        .collect();
    if !failed.is_empty() {
        log.note(&format!(
            "bootstrap failed on {}: isolated, the others go on",
            failed.join(", ")
        ));
    }
    let ready = hosts
        .iter()
        .filter(|h| !failed.contains(&h.name.as_str()))
        .cloned()
        .collect();
    Ok((
        ready,
        json!({"hosts": names, "failed": failed, "results": report.results}),
    ))
}

fn bootstrap_failed(bootstrap: &Value) -> bool {
    bootstrap
        .get("failed")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty())
}

/// A job through the engine's one entry point, in a run of its own: the job's
/// cancellation, its own secrets, events into the job's log, changes approved.
async fn run_job(
    daemon: &Daemon,
    job: Job,
    command: &str,
    cancel: &Cancel,
    log: &EventLog,
) -> Result<Report, String> {
    let mut ssh = SshOptions::in_run_directory(None)
        .map_err(|e| format!("unable to create a directory for the run: {e}"))?;
    ssh.connect_timeout = Duration::from_secs(daemon.config.connect_timeout_seconds.max(1));
    ssh.accept_new_host_keys = daemon.config.accept_new_host_keys;
    let run = RunContext::new(ssh, Limits::default())
        .with_cancel(cancel.clone())
        .with_secrets(log.secrets.clone())
        .with_command(command)
        .with_events(Arc::new(log.clone()));
    toyc_engine::run::run(job, &run, &toyc_stdlib::Library, &Approve)
        .await
        .map_err(|e| e.to_string())
}

/// How a role run ended.
fn outcome_of(report: &Report, bootstrap_failed: bool) -> Outcome {
    let s = &report.summary;
    let all_ok = s.failed == 0 && s.unreachable == 0 && s.skipped == 0 && !bootstrap_failed;
    match report.verdict {
        toyc_engine::run::Verdict::Done if all_ok => Outcome::Succeeded,
        _ => Outcome::Failed,
    }
}
