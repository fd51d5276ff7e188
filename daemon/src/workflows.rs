//! Workflow runs in the daemon's queue: a run is a job under the key `workflow:NAME`
//! (one run per name at a time) whose payload is the workflow, the step to start from
//! and the clipboard to start with. Every step's start and end is appended to the job's
//! event log before the next step starts, with the clipboard it left: that is what
//! `status` reads and what `resume` starts from.
//!
//! A run whose daemon died mid-step is not run again by the daemon that takes its job
//! over: it is marked interrupted at that step, and only an explicit `resume` runs the
//! step again (it may have half-happened).

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use toyc_engine::cancel::Cancel;
use toyc_engine::secrets::Secrets;
use toyc_store::{Job, JobId, JobState, NewJob, Outcome, StoredEvent};
use toyc_workflow::runner::{self, Progress};
use toyc_workflow::{Step, StepContext, Workflow};

use crate::chat::{Announcement, Asked, Command, Commands};
use crate::worker::Workers;

/// The key prefix of workflow jobs.
pub const KEY_PREFIX: &str = "workflow:";

/// A queued workflow run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowRun {
    /// The workflow, as loaded when the run was asked for (a later edit of its file does
    /// not change a run in flight).
    pub workflow: Workflow,
    /// The step to start from (0: the first).
    pub start: usize,
    /// The clipboard to start with.
    pub clip: Map<String, Value>,
    /// The chat channel it was started from, where it announces itself.
    #[serde(default)]
    pub channel: Option<String>,
    /// The job this run resumes.
    #[serde(default)]
    pub resumes: Option<JobId>,
}

impl WorkflowRun {
    /// A stored payload; `None` when it is not a workflow run.
    pub fn from_value(value: &Value) -> Option<WorkflowRun> {
        value.get("workflow")?;
        serde_json::from_value(value.clone()).ok()
    }
}

/// Why a workflow could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The file is unusable, or a step does not exist.
    #[error("{0}")]
    Invalid(String),
    /// A run of that name is queued or running.
    #[error("workflow `{0}` is already queued or running (`status {0}`)")]
    Busy(String),
    /// Nothing to resume.
    #[error("{0}")]
    NotFound(String),
    /// The store failed.
    #[error("{0}")]
    Store(#[from] toyc_store::StoreError),
}

/// The step context of a run in this daemon.
pub fn step_context(workers: &Workers, name: &str, job: JobId, cancel: &Cancel) -> StepContext {
    StepContext {
        settings: workers.daemon.config.workflows.clone().unwrap_or_default(),
        run_dir: workers
            .state_dir
            .join("workflows")
            .join(name)
            .join(job.to_string()),
        known_hosts: workers.state_dir.join("known_hosts"),
        state_dir: workers.state_dir.clone(),
        cancel: cancel.clone(),
        secrets: Secrets::new(),
    }
}

/// Where the workflow named `what` is: a path, or `NAME` in the configured workflows
/// directory (`DIR/NAME.yml`).
pub fn locate(workers: &Workers, what: &str) -> Result<PathBuf, StartError> {
    let path = PathBuf::from(what);
    if path.is_absolute() && path.is_file() {
        return Ok(path);
    }
    let dir = workers
        .daemon
        .config
        .workflows
        .as_ref()
        .and_then(|w| w.dir.clone());
    let plain = !what.is_empty()
        && what
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    match dir {
        Some(dir) if plain => {
            let file = if [".yml", ".yaml", ".rhai"].iter().any(|e| what.ends_with(e)) {
                dir.join(what)
            } else {
                // A YAML workflow, else a Rhai workflow script of that name.
                let yaml = dir.join(format!("{what}.yml"));
                let script = dir.join(format!("{what}.rhai"));
                if !yaml.is_file() && script.is_file() {
                    script
                } else {
                    yaml
                }
            };
            if file.is_file() {
                Ok(file)
            } else {
                Err(StartError::Invalid(format!(
                    "no workflow `{what}`: `{}` does not exist",
                    file.display()
                )))
            }
        }
        _ => Err(StartError::Invalid(format!(
            "no workflow `{what}`: give an absolute path, or a name from the `workflows: dir:` of daemon.yml"
        ))),
    }
}

/// The largest workflow file fetched by URL.
const MAX_FETCHED: usize = 1024 * 1024;

/// Fetch a workflow file from a URL into the state directory (named by a digest of the
/// URL); it can use built-in modules only, having no directory of its own.
async fn fetch(workers: &Workers, url: &str) -> Result<PathBuf, StartError> {
    let shown = toyc_engine::gitsync::display_url(url);
    let invalid = |why: String| StartError::Invalid(format!("unable to fetch `{shown}`: {why}"));
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .map_err(|e| invalid(e.to_string()))?;
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| invalid(e.to_string()))?;
    if !response.status().is_success() {
        return Err(invalid(format!(
            "the server answered {}",
            response.status()
        )));
    }
    let body = response.bytes().await.map_err(|e| invalid(e.to_string()))?;
    if body.len() > MAX_FETCHED {
        return Err(invalid(format!("it is larger than {MAX_FETCHED} bytes")));
    }
    let digest = digest_hex(url);
    let dir = workers
        .state_dir
        .join("workflows")
        .join("fetched")
        .join(digest);
    std::fs::create_dir_all(&dir).map_err(|e| invalid(e.to_string()))?;
    let path = dir.join("workflow.yml");
    std::fs::write(&path, &body).map_err(|e| invalid(e.to_string()))?;
    Ok(path)
}

fn digest_hex(text: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))[..16].to_owned()
}

/// Load, check and queue a workflow; its job id and name.
pub async fn start(
    workers: &Workers,
    what: &str,
    name: Option<&str>,
    channel: Option<String>,
) -> Result<(JobId, String), StartError> {
    let path = if what.starts_with("https://") || what.starts_with("http://") {
        fetch(workers, what).await?
    } else {
        locate(workers, what)?
    };
    let workflow = Workflow::load(&path, name).map_err(|e| StartError::Invalid(e.to_string()))?;
    let ctx = step_context(workers, &workflow.name, 0, &Cancel::new());
    runner::check(&workflow, &ctx).map_err(|p| StartError::Invalid(p.join("\n")))?;
    if let Some(job) = latest(workers, &workflow.name).await? {
        if !job.state.is_final() {
            return Err(StartError::Busy(workflow.name));
        }
    }
    let run = WorkflowRun {
        clip: workflow.record.clone(),
        workflow,
        start: 0,
        channel,
        resumes: None,
    };
    queue(workers, run).await
}

async fn queue(workers: &Workers, run: WorkflowRun) -> Result<(JobId, String), StartError> {
    let name = run.workflow.name.clone();
    let payload = serde_json::to_value(&run).map_err(|e| StartError::Invalid(e.to_string()))?;
    let job = workers
        .store
        .enqueue(NewJob {
            key: format!("{KEY_PREFIX}{name}"),
            payload,
        })
        .await?;
    tracing::info!(workflow = %name, job, start = run.start, "workflow queued");
    Ok((job, name))
}

/// Queue the run of `name` again from the step where its last run failed, was
/// cancelled or interrupted, with the clipboard it had saved.
pub async fn resume(
    workers: &Workers,
    name: &str,
    channel: Option<String>,
) -> Result<(JobId, String), StartError> {
    let job = latest(workers, name)
        .await?
        .ok_or_else(|| StartError::NotFound(format!("no workflow run named `{name}`")))?;
    if !job.state.is_final() {
        return Err(StartError::Busy(name.to_owned()));
    }
    if job.state == JobState::Succeeded {
        return Err(StartError::NotFound(format!(
            "workflow `{name}` is done: nothing to resume"
        )));
    }
    let run = WorkflowRun::from_value(&job.payload)
        .ok_or_else(|| StartError::NotFound(format!("job #{} is not a workflow run", job.id)))?;
    let events = workers.store.events(job.id, 0).await?;
    let status = Status::of(&job, &run, &events);
    let run = WorkflowRun {
        start: status.failed_step.unwrap_or(run.start),
        clip: status.clip,
        channel: channel.or(run.channel),
        resumes: Some(job.id),
        workflow: run.workflow,
    };
    queue(workers, run).await
}

/// The newest job of workflow `name`.
pub async fn latest(workers: &Workers, name: &str) -> Result<Option<Job>, StartError> {
    let key = format!("{KEY_PREFIX}{name}");
    Ok(workers
        .store
        .jobs(1000)
        .await?
        .into_iter()
        .find(|job| job.key == key))
}

/// The newest job of every workflow name.
pub async fn all(workers: &Workers) -> Result<Vec<Job>, StartError> {
    let mut seen = std::collections::BTreeSet::new();
    Ok(workers
        .store
        .jobs(1000)
        .await?
        .into_iter()
        .filter(|job| job.key.starts_with(KEY_PREFIX) && seen.insert(job.key.clone()))
        .collect())
}

/// Where a run is, read from its job and events.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    /// The run's name.
    pub name: String,
    /// Its job.
    pub job: JobId,
    /// `queued`, `running`, `succeeded`, `failed`, `cancelled`, or `interrupted` (its
    /// daemon died mid-step).
    pub state: String,
    /// The steps, in order.
    pub steps: Vec<String>,
    /// The step being worked on (0-based), while running.
    pub current_step: Option<usize>,
    /// The step that failed, was cancelled or interrupted.
    pub failed_step: Option<usize>,
    /// Why it failed.
    pub error: Option<String>,
    /// How long it took (or has taken), in milliseconds.
    pub elapsed_ms: Option<i64>,
    /// The last saved clipboard.
    pub clip: Map<String, Value>,
}

impl Status {
    /// Read a run's status from its job and event log.
    pub fn of(job: &Job, run: &WorkflowRun, events: &[StoredEvent]) -> Status {
        let mut clip = run.clip.clone();
        let mut current = None;
        let mut failed = None;
        let mut error = None;
        for event in events {
            let data = &event.event["data"];
            if event.event["type"] != "workflow_step" {
                continue;
            }
            let index = data["index"].as_u64().map(|i| i as usize);
            match data["status"].as_str() {
                Some("started") => current = index,
                Some("done") => {
                    current = None;
                    if let Some(next) = data["clipboard"].as_object() {
                        clip = next.clone();
                    }
                }
                Some("failed") => {
                    current = None;
                    failed = index;
                    error = data["error"].as_str().map(str::to_owned);
                }
                _ => {}
            }
        }
        let interrupted = job
            .result
            .as_ref()
            .and_then(|r| r.get("interrupted_at"))
            .and_then(Value::as_u64)
            .map(|i| i as usize);
        if failed.is_none() && job.state.is_final() && job.state != JobState::Succeeded {
            // A run that ended before its first step (a step that vanished, a cancel).
            let result = job.result.as_ref();
            failed = result
                .and_then(|r| r.get("failed_step"))
                .and_then(Value::as_u64)
                .map(|i| i as usize);
            error = result
                .and_then(|r| r.get("error"))
                .and_then(Value::as_str)
                .map(str::to_owned);
        }
        if let Some(at) = interrupted {
            failed = Some(at);
            error = job
                .result
                .as_ref()
                .and_then(|r| r["error"].as_str())
                .map(str::to_owned);
        }
        let state = match (job.state, interrupted) {
            (_, Some(_)) => "interrupted".to_owned(),
            (state, _) => serde_json::to_value(state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
        };
        let end = job.finished_ms.unwrap_or_else(now_ms);
        Status {
            name: run.workflow.name.clone(),
            job: job.id,
            state,
            steps: run.workflow.steps.iter().map(Step::to_string).collect(),
            current_step: if job.state == JobState::Running {
                current
            } else {
                None
            },
            failed_step: failed,
            error,
            elapsed_ms: job.started_ms.map(|s| end - s),
            clip: masked(&clip),
        }
    }

    /// One line for people (chat, `toyc workflow status`).
    pub fn line(&self) -> String {
        let step = |i: usize| {
            format!(
                "step {}/{} {}",
                i + 1,
                self.steps.len(),
                self.steps.get(i).map_or("?", String::as_str)
            )
        };
        let seconds = self.elapsed_ms.map_or(String::new(), |ms| {
            format!(" in {:.1} s", ms as f64 / 1000.0)
        });
        match (self.state.as_str(), self.current_step, self.failed_step) {
            ("running", Some(i), _) => format!("{}: working on {}", self.name, step(i)),
            ("running", None, _) => format!("{}: running", self.name),
            ("queued", _, _) => format!("{}: queued", self.name),
            ("succeeded", _, _) => format!(
                "{}: done, all {} steps{seconds}",
                self.name,
                self.steps.len()
            ),
            (state, _, Some(i)) => format!(
                "{}: {state} at {}: {}",
                self.name,
                step(i),
                self.error.as_deref().unwrap_or("no reason recorded")
            ),
            (state, _, None) => format!("{}: {state}", self.name),
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The clipboard with the values of secret-looking keys masked, for status and chat.
pub fn masked(clip: &Map<String, Value>) -> Map<String, Value> {
    fn mask(key: &str, value: &Value) -> Value {
        let key = key.to_ascii_lowercase();
        let secret = [
            "password", "passwd", "secret", "token", "private", "api_key",
        ]
        .iter()
        .any(|word| key.contains(word));
        match value {
            _ if secret => Value::String("********".into()),
            Value::Object(map) => {
                Value::Object(map.iter().map(|(k, v)| (k.clone(), mask(k, v))).collect())
            }
            Value::Array(items) => Value::Array(items.iter().map(|v| mask("", v)).collect()),
            other => other.clone(),
        }
    }
    clip.iter().map(|(k, v)| (k.clone(), mask(k, v))).collect()
}

/// The status of workflow `name`.
pub async fn status(workers: &Workers, name: &str) -> Result<Status, StartError> {
    let job = latest(workers, name)
        .await?
        .ok_or_else(|| StartError::NotFound(format!("no workflow run named `{name}`")))?;
    let run = WorkflowRun::from_value(&job.payload)
        .ok_or_else(|| StartError::NotFound(format!("job #{} is not a workflow run", job.id)))?;
    let events = workers.store.events(job.id, 0).await?;
    Ok(Status::of(&job, &run, &events))
}

/// Run a claimed workflow job. A job taken over from a dead daemon is not run again:
/// it ends interrupted at the step it was on.
pub async fn execute(
    workers: &Workers,
    job: JobId,
    run: &WorkflowRun,
    taken_over: bool,
    cancel: &Cancel,
) -> (Outcome, Value) {
    let store = &workers.store;
    if taken_over {
        let events = store.events(job, 0).await.unwrap_or_default();
        let mut at = run.start;
        for event in &events {
            if event.event["type"] == "workflow_step" && event.event["data"]["status"] == "started"
            {
                at = event.event["data"]["index"]
                    .as_u64()
                    .map_or(at, |i| i as usize);
            }
        }
        let step = run
            .workflow
            .steps
            .get(at)
            .map_or("?".into(), Step::to_string);
        let error = format!(
            "interrupted: the daemon running it stopped during step {} ({step}); it may have \
             half-happened, so it is not run again by itself: `toyc workflow resume {}` runs it again",
            at + 1,
            run.workflow.name
        );
        announce(workers, run, format!("{}: {error}", run.workflow.name));
        return (
            Outcome::Failed,
            json!({"interrupted_at": at, "step": step, "error": error}),
        );
    }
    let ctx = step_context(workers, &run.workflow.name, job, cancel);
    let progress = StoreProgress { workers, job, run };
    announce(
        workers,
        run,
        format!(
            "{}: starting{} ({} steps)",
            run.workflow.name,
            if run.start > 0 {
                format!(" again at step {}", run.start + 1)
            } else {
                String::new()
            },
            run.workflow.steps.len()
        ),
    );
    match runner::run(&run.workflow, run.start, run.clip.clone(), &ctx, &progress).await {
        Ok(clip) => {
            announce(
                workers,
                run,
                format!("{}: ready, all steps done", run.workflow.name),
            );
            (Outcome::Succeeded, json!({"clipboard": masked(&clip)}))
        }
        Err(failed) if cancel.is_cancelled() => (
            Outcome::Cancelled,
            json!({"failed_step": failed.index, "error": failed.error}),
        ),
        Err(failed) => (
            Outcome::Failed,
            json!({"failed_step": failed.index, "error": failed.error}),
        ),
    }
}

fn announce(workers: &Workers, run: &WorkflowRun, line: String) {
    let _ = workers.announcements.send(Announcement {
        channel: run.channel.clone(),
        line,
    });
}

/// Progress into the job's event log (written before the next step starts) and chat.
struct StoreProgress<'a> {
    workers: &'a Workers,
    job: JobId,
    run: &'a WorkflowRun,
}

impl StoreProgress<'_> {
    async fn record(&self, event: Value) {
        if let Err(e) = self.workers.store.append_event(self.job, event).await {
            tracing::error!(job = self.job, error = %e, "unable to record a workflow step");
        }
    }
}

#[async_trait]
impl Progress for StoreProgress<'_> {
    async fn started(&self, index: usize, step: &Step) {
        self.record(json!({"type": "workflow_step", "data": {
            "index": index, "step": step.to_string(), "status": "started"}}))
            .await;
        announce(
            self.workers,
            self.run,
            format!(
                "{}: step {}/{} {step}",
                self.run.workflow.name,
                index + 1,
                self.run.workflow.steps.len()
            ),
        );
    }

    async fn done(&self, index: usize, step: &Step, clip: &Map<String, Value>) {
        self.record(json!({"type": "workflow_step", "data": {
            "index": index, "step": step.to_string(), "status": "done", "clipboard": clip}}))
            .await;
    }

    async fn failed(&self, index: usize, step: &Step, error: &str) {
        self.record(json!({"type": "workflow_step", "data": {
            "index": index, "step": step.to_string(), "status": "failed", "error": error}}))
            .await;
        announce(
            self.workers,
            self.run,
            format!(
                "{}: failed at step {}/{} {step}: {error}",
                self.run.workflow.name,
                index + 1,
                self.run.workflow.steps.len()
            ),
        );
    }
}

/// The chat commands, answered from the daemon's workflows.
pub struct ChatCommands {
    /// The daemon's workers.
    pub workers: Arc<Workers>,
}

#[async_trait]
impl Commands for ChatCommands {
    async fn handle(&self, asked: &Asked) -> Vec<String> {
        let workers = &self.workers;
        match &asked.command {
            Command::Deploy { what } => {
                match start(workers, what, None, Some(asked.channel.clone())).await {
                    Ok((job, name)) => {
                        vec![format!("{}: deploying {name} (job #{job})", asked.nick)]
                    }
                    Err(e) => e
                        .to_string()
                        .lines()
                        .map(|l| format!("{}: {l}", asked.nick))
                        .collect(),
                }
            }
            Command::Status { name } => match status(workers, name).await {
                Ok(status) => vec![status.line()],
                Err(e) => vec![e.to_string()],
            },
            Command::Cancel { name } => match cancel(workers, name).await {
                Ok(state) => vec![format!("{name}: {state}")],
                Err(e) => vec![e.to_string()],
            },
            Command::List => match list(workers).await {
                Ok(lines) if lines.is_empty() => vec!["no workflow runs".into()],
                Ok(lines) => lines,
                Err(e) => vec![e.to_string()],
            },
            Command::Help { unknown } => {
                let mut lines = Vec::new();
                if let Some(text) = unknown {
                    lines.push(format!("I don't know `{text}`."));
                }
                lines.push("deploy NAME | status NAME | list | cancel NAME | help".to_owned());
                lines
            }
        }
    }
}

/// One status line per workflow name.
pub async fn list(workers: &Workers) -> Result<Vec<String>, StartError> {
    let mut lines = Vec::new();
    for job in all(workers).await? {
        if let Some(run) = WorkflowRun::from_value(&job.payload) {
            let events = workers.store.events(job.id, 0).await?;
            lines.push(Status::of(&job, &run, &events).line());
        }
    }
    Ok(lines)
}

/// Cancel workflow `name`'s run; its state after.
pub async fn cancel(workers: &Workers, name: &str) -> Result<String, StartError> {
    let job = latest(workers, name)
        .await?
        .ok_or_else(|| StartError::NotFound(format!("no workflow run named `{name}`")))?;
    let state = workers.store.cancel(job.id).await?;
    workers.cancel_here(job.id);
    Ok(match state {
        JobState::Running => {
            "cancel requested: stopping after the current step's work is killed".into()
        }
        other => serde_json::to_value(other)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
    })
}
