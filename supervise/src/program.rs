//! One program's supervisor: a task that owns the program's process, its restarts and
//! its deploys, and takes commands (`start`, `stop`, `restart`, `deploy`) through its
//! [`Handle`]. What it knows is published in a [`Status`] snapshot (read without
//! waiting for a deploy in progress) and saved in the store at each change.
//!
//! A deploy: poll at a random time in [minimum, maximum]; a new tip that is not bad is
//! checked out in the staging checkout and verified there, off this task, while the
//! running version serves. Verified: stop the old one, switch the live checkout, start,
//! health-check; a failed health check rolls back to the previous commit and marks the
//! new one bad. Bad commits are never deployed again; a newer commit is.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::sleep_until;
use toyc_store::{ProgramRecord, ProgramStore};

use crate::backoff::Backoff;
use crate::config::{Process, Program};
use crate::hooks::{self, Hook};
use crate::logs::Log;
use crate::{git, health, now_ms, process};

/// How long a verify command may run.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(1800);

/// What every program's task shares.
pub struct Shared {
    /// The state store.
    pub store: Arc<dyn ProgramStore>,
    /// `STATE/supervise`: staging checkouts live under it.
    pub dir: PathBuf,
    /// toyc's state directory (pull mode's role checkouts).
    pub state_dir: PathBuf,
    /// Where the program logs go.
    pub log_dir: PathBuf,
}

/// A command to a program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verb {
    /// Start it (and keep it started across supervisor restarts).
    Start,
    /// Stop it (and keep it stopped across supervisor restarts).
    Stop,
    /// Stop it if it runs, then start it.
    Restart,
    /// Poll now.
    Deploy,
}

/// What a program's task is told.
pub(crate) enum Msg {
    /// A command, answered with a message or an error.
    Control(Verb, oneshot::Sender<Result<String, String>>),
    /// The process with this pid exited.
    Exited { pid: i32, status: String },
    /// A poll ended.
    Polled(Poll),
    /// Stop the process (the program stays as it was recorded) and end.
    Shutdown(oneshot::Sender<()>),
}

/// What a poll found.
pub(crate) enum Poll {
    /// The remote could not be reached or staging failed.
    Error(String),
    /// The tip is deployed already, or bad.
    Nothing,
    /// The tip failed its verify.
    VerifyFailed { commit: String, why: String },
    /// The tip passed its verify (or has none): deploy it.
    Verified(String),
}

/// A program as its supervisor sees it now. Times are Unix milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// Its name.
    pub name: String,
    /// `process` or `role`.
    pub kind: String,
    /// `running`, `backoff` (waiting to restart: see `next_start_ms`), `stopped`,
    /// `idle` (nothing to run: no `start`, or a role between polls), `starting`.
    pub state: String,
    /// What it is busy with (`verifying abc1234`, `deploying abc1234`).
    pub activity: Option<String>,
    /// The running process (also its group's id).
    pub pid: Option<i32>,
    /// When it started.
    pub started_ms: Option<i64>,
    /// Restarts after an exit, over the supervisor's lives.
    pub restarts: i64,
    /// When the next restart is (in `backoff`).
    pub next_start_ms: Option<i64>,
    /// How the last run ended.
    pub last_exit: Option<String>,
    /// The deployed commit.
    pub deployed: Option<String>,
    /// The commit before it.
    pub previous: Option<String>,
    /// The last deploy: `{commit, outcome, at_ms, message}`.
    pub last_deploy: Option<Value>,
    /// When the next poll is.
    pub next_poll_ms: Option<i64>,
    /// Commits never to deploy.
    pub bad_commits: Vec<String>,
    /// The last error (a failed start, clone or poll); cleared by success.
    pub error: Option<String>,
    /// The log file.
    pub log: PathBuf,
}

/// A running program's task.
pub struct Handle {
    /// The config it runs with.
    pub program: Program,
    tx: mpsc::UnboundedSender<Msg>,
    status: Arc<Mutex<Status>>,
    task: JoinHandle<()>,
}

impl Handle {
    /// Starts the task of `program` (a process program or a role).
    pub fn spawn(program: Program, shared: Arc<Shared>) -> Handle {
        let (tx, rx) = mpsc::unbounded_channel();
        let status = Arc::new(Mutex::new(Status {
            name: program.name.clone(),
            kind: if program.process().is_some() {
                "process".into()
            } else {
                "role".into()
            },
            state: "starting".into(),
            log: shared.log_dir.join(format!("{}.log", program.name)),
            ..Status::default()
        }));
        let task = match &program.kind {
            crate::config::Kind::Process(spec) => {
                let actor = Actor::new(
                    program.clone(),
                    (**spec).clone(),
                    shared,
                    tx.clone(),
                    rx,
                    status.clone(),
                );
                tokio::spawn(actor.run())
            }
            crate::config::Kind::Role(spec) => tokio::spawn(crate::pull::run(
                program.clone(),
                spec.clone(),
                shared,
                rx,
                status.clone(),
            )),
        };
        Handle {
            program,
            tx,
            status,
            task,
        }
    }

    /// Its status now.
    pub fn status(&self) -> Status {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A handle that sends it commands, to use without holding the registry.
    pub fn controller(&self) -> Controller {
        Controller {
            tx: self.tx.clone(),
        }
    }

    /// Stops its process and ends its task.
    pub async fn shutdown(self) {
        let (reply, done) = oneshot::channel();
        if self.tx.send(Msg::Shutdown(reply)).is_ok() {
            let _ = done.await;
        }
        let _ = self.task.await;
    }
}

/// Sends commands to a program's task.
#[derive(Clone)]
pub struct Controller {
    tx: mpsc::UnboundedSender<Msg>,
}

impl Controller {
    /// Sends it a command; the answer says what was done.
    pub async fn control(&self, verb: Verb) -> Result<String, String> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Msg::Control(verb, reply))
            .map_err(|_| "the program's supervisor has ended".to_owned())?;
        answer
            .await
            .map_err(|_| "the program's supervisor has ended".to_owned())?
    }
}

/// The program's process.
struct Running {
    pid: i32,
    since: Instant,
}

/// What the task is doing with the process.
#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Running,
    Backoff(Instant),
    Stopped,
    Idle,
}

struct Actor {
    program: Program,
    spec: Process,
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Msg>,
    rx: mpsc::UnboundedReceiver<Msg>,
    published: Arc<Mutex<Status>>,
    log: Option<Log>,
    record: ProgramRecord,
    bad: HashSet<String>,
    running: Option<Running>,
    state: State,
    backoff: Backoff,
    next_poll: Instant,
    polling: bool,
    activity: Option<String>,
    last_exit: Option<String>,
    error: Option<String>,
    /// The live checkout was found on the recorded commit: restarts skip git.
    prepared: bool,
}

/// Far enough to mean never, near enough not to overflow an `Instant`.
fn never() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

fn ms_from_now(at: Instant) -> i64 {
    now_ms() + i64::try_from(at.saturating_duration_since(Instant::now()).as_millis()).unwrap_or(0)
}

fn short(commit: &str) -> &str {
    commit.get(..7).unwrap_or(commit)
}

impl Actor {
    fn new(
        program: Program,
        spec: Process,
        shared: Arc<Shared>,
        tx: mpsc::UnboundedSender<Msg>,
        rx: mpsc::UnboundedReceiver<Msg>,
        published: Arc<Mutex<Status>>,
    ) -> Actor {
        let log_path = shared.log_dir.join(format!("{}.log", program.name));
        let log = match Log::open(&log_path, program.logs) {
            Ok(log) => Some(log),
            Err(error) => {
                tracing::warn!(program = %program.name, %error, "no log file");
                None
            }
        };
        Actor {
            backoff: Backoff::new(program.restart),
            record: ProgramRecord {
                name: program.name.clone(),
                ..ProgramRecord::default()
            },
            next_poll: Instant::now() + program.timing.next_wait(),
            program,
            spec,
            shared,
            tx,
            rx,
            published,
            log,
            bad: HashSet::new(),
            running: None,
            state: State::Idle,
            polling: false,
            activity: None,
            last_exit: None,
            error: None,
            prepared: false,
        }
    }

    fn note(&self, text: &str) {
        tracing::info!(program = %self.program.name, "{text}");
        if let Some(log) = &self.log {
            log.note(text);
        }
    }

    fn staging(&self) -> PathBuf {
        self.shared.dir.join("staging").join(&self.program.name)
    }

    async fn save(&mut self) {
        self.record.pid = self.running.as_ref().map(|r| i64::from(r.pid));
        if self.running.is_none() {
            self.record.pid_started = None;
        }
        if let Err(error) = self.shared.store.save_program(&self.record).await {
            self.note(&format!("unable to save its state: {error}"));
        }
        self.publish();
    }

    fn publish(&self) {
        let mut status = self.published.lock().unwrap_or_else(|p| p.into_inner());
        status.state = match self.state {
            State::Running => "running",
            State::Backoff(_) => "backoff",
            State::Stopped => "stopped",
            State::Idle => "idle",
        }
        .into();
        status.pid = self.running.as_ref().map(|r| r.pid);
        status.started_ms = self.running.as_ref().and(self.record.started_ms);
        status.restarts = self.record.restarts;
        status.next_start_ms = match self.state {
            State::Backoff(at) => Some(ms_from_now(at)),
            _ => None,
        };
        status.activity = self.activity.clone();
        status.last_exit = self.last_exit.clone();
        status.deployed = self.record.deployed.clone();
        status.previous = self.record.previous.clone();
        status.last_deploy = self.record.last_deploy.clone();
        status.next_poll_ms = (!self.polling).then(|| ms_from_now(self.next_poll));
        let mut bad: Vec<String> = self.bad.iter().cloned().collect();
        bad.sort();
        status.bad_commits = bad;
        status.error = self.error.clone();
    }

    async fn run(mut self) {
        self.init().await;
        loop {
            let restart_at = match self.state {
                State::Backoff(at) => Some(at),
                _ => None,
            };
            tokio::select! {
                msg = self.rx.recv() => {
                    let Some(msg) = msg else {
                        self.stop_process().await;
                        break;
                    };
                    if let Some(done) = self.handle(msg).await {
                        self.stop_process().await;
                        self.save().await;
                        let _ = done.send(());
                        break;
                    }
                }
                _ = sleep_until(restart_at.unwrap_or_else(never).into()), if restart_at.is_some() => {
                    self.start_process().await;
                }
                _ = sleep_until(self.next_poll.into()), if !self.polling => {
                    self.spawn_poll();
                }
            }
        }
    }

    /// Picks up where the last supervisor left: the recorded commit checked out (a
    /// deploy cut short by a kill goes back to the commit before it), then started
    /// unless it was stopped.
    async fn init(&mut self) {
        match self.shared.store.program(&self.program.name).await {
            Ok(Some(record)) => self.record = record,
            Ok(None) => {}
            Err(error) => self.error = Some(format!("unable to read its state: {error}")),
        }
        self.record.pid = None;
        self.record.pid_started = None;
        match self.shared.store.bad_commits(&self.program.name).await {
            Ok(bad) => self.bad = bad.into_iter().map(|b| b.commit).collect(),
            Err(error) => self.error = Some(format!("unable to read its bad commits: {error}")),
        }
        let interrupted = self
            .record
            .last_deploy
            .as_ref()
            .and_then(|d| d.get("outcome"))
            .and_then(Value::as_str)
            == Some("in progress");
        if interrupted {
            let commit = self.deploy_commit().unwrap_or_default();
            self.note(&format!(
                "the deploy of {} was cut short (the supervisor died): back to {}",
                short(&commit),
                self.record.previous.as_deref().map_or("(none)", short)
            ));
            if self.record.deployed.as_deref() == Some(&commit) {
                self.record.deployed = self.record.previous.take();
            }
            self.record.last_deploy = Some(json!({
                "commit": commit, "outcome": "interrupted", "at_ms": now_ms(),
                "message": "the supervisor died during the deploy; it is tried again at the next poll",
            }));
        }
        if self.record.stopped {
            self.state = State::Stopped;
            self.note("stopped (as it was left)");
            self.save().await;
            return;
        }
        self.start_process().await;
    }

    fn deploy_commit(&self) -> Option<String> {
        self.record
            .last_deploy
            .as_ref()?
            .get("commit")?
            .as_str()
            .map(str::to_owned)
    }

    /// Makes sure the live checkout is there and on the recorded commit (recording its
    /// head when nothing is recorded yet).
    async fn prepare_checkout(&mut self) -> Result<(), String> {
        let repo = &self.spec.repository;
        git::ensure_clone(repo, &repo.path).await?;
        let head = git::head(repo, &repo.path).await?;
        match self.record.deployed.clone() {
            None => self.record.deployed = Some(head),
            Some(deployed) if deployed != head => {
                git::checkout(repo, &repo.path, &deployed).await?;
            }
            Some(_) => {}
        }
        Ok(())
    }

    async fn start_process(&mut self) {
        if self.running.is_some() {
            return;
        }
        if !self.prepared {
            if let Err(why) = self.prepare_checkout().await {
                self.failed_start(why).await;
                return;
            }
            self.prepared = true;
        }
        let Some(start) = self.spec.start.clone() else {
            self.state = State::Idle;
            self.error = None;
            self.save().await;
            return;
        };
        let Some(log) = self.log.clone() else {
            self.failed_start(format!(
                "its log `{}` cannot be opened",
                self.shared.log_dir.display()
            ))
            .await;
            return;
        };
        let commit = self.record.deployed.clone().unwrap_or_default();
        let extra = [
            ("TOYC_PROGRAM", self.program.name.as_str()),
            ("TOYC_COMMIT", commit.as_str()),
        ];
        match process::start(&self.spec, &start, &log, &extra) {
            Ok(mut started) => {
                let pid = started.pid;
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    let status = match started.child.wait().await {
                        Ok(status) => status.to_string(),
                        Err(e) => format!("unknown ({e})"),
                    };
                    let _ = tx.send(Msg::Exited { pid, status });
                });
                self.note(&format!("started pid {pid} at {}", short(&commit)));
                self.running = Some(Running {
                    pid,
                    since: Instant::now(),
                });
                self.record.pid_started = started.started;
                self.record.started_ms = Some(now_ms());
                self.state = State::Running;
                self.error = None;
                self.save().await;
            }
            Err(why) => self.failed_start(why).await,
        }
    }

    async fn failed_start(&mut self, why: String) {
        // The checkout may be what is wrong (removed, moved): look at it again next time.
        self.prepared = false;
        let delay = self.backoff.after_exit(Duration::ZERO);
        // A start that cannot happen (no checkout yet) is tried again like a crash.
        let delay = delay.max(self.program.restart.initial);
        self.note(&format!(
            "unable to start: {why}; next try in {:.1}s",
            delay.as_secs_f64()
        ));
        self.error = Some(why);
        self.state = State::Backoff(Instant::now() + delay);
        self.save().await;
    }

    /// Stops the process, grandchildren included.
    async fn stop_process(&mut self) {
        if let Some(running) = self.running.take() {
            self.note(&format!("stopping pid {}", running.pid));
            let killed = process::stop_group(running.pid, self.spec.stop_timeout).await;
            if killed {
                self.note(&format!(
                    "pid {}'s group did not stop within {}s of TERM: killed",
                    running.pid,
                    self.spec.stop_timeout.as_secs_f64()
                ));
            }
        }
        if self.state == State::Running {
            self.state = State::Idle;
        }
    }

    /// Handles one message; `Some` when the task is to end.
    async fn handle(&mut self, msg: Msg) -> Option<oneshot::Sender<()>> {
        match msg {
            Msg::Shutdown(done) => return Some(done),
            Msg::Exited { pid, status } => self.exited(pid, status).await,
            Msg::Polled(poll) => self.polled(poll).await,
            Msg::Control(verb, reply) => {
                let answer = self.control(verb).await;
                let _ = reply.send(answer);
            }
        }
        None
    }

    async fn exited(&mut self, pid: i32, status: String) {
        let Some(running) = self.running.as_ref().filter(|r| r.pid == pid) else {
            // One this task stopped itself.
            return;
        };
        let uptime = running.since.elapsed();
        self.running = None;
        // What it left in its group goes with it: a restart must not find the port taken.
        process::stop_group(pid, self.spec.stop_timeout).await;
        let delay = self.backoff.after_exit(uptime);
        self.record.restarts += 1;
        let exit = format!("exited ({status}) after {:.1}s", uptime.as_secs_f64());
        self.note(&format!(
            "{exit}; restart #{} in {:.2}s",
            self.record.restarts,
            delay.as_secs_f64()
        ));
        self.last_exit = Some(exit);
        self.state = State::Backoff(Instant::now() + delay);
        self.save().await;
        if delay.is_zero() {
            self.start_process().await;
        }
    }

    async fn control(&mut self, verb: Verb) -> Result<String, String> {
        match verb {
            Verb::Start => {
                self.record.stopped = false;
                if let Some(running) = &self.running {
                    return Ok(format!(
                        "{} runs already (pid {})",
                        self.program.name, running.pid
                    ));
                }
                self.backoff = Backoff::new(self.program.restart);
                self.start_process().await;
                self.started_answer()
            }
            Verb::Stop => {
                self.record.stopped = true;
                self.stop_process().await;
                self.state = State::Stopped;
                self.note("stopped by request");
                self.save().await;
                Ok(format!("{} stopped", self.program.name))
            }
            Verb::Restart => {
                self.record.stopped = false;
                self.stop_process().await;
                self.backoff = Backoff::new(self.program.restart);
                self.start_process().await;
                self.started_answer()
            }
            Verb::Deploy => {
                if self.polling {
                    return Ok(format!("{}: a poll is under way", self.program.name));
                }
                self.spawn_poll();
                Ok(format!("{}: polling now", self.program.name))
            }
        }
    }

    fn started_answer(&self) -> Result<String, String> {
        match (&self.running, &self.error) {
            (Some(running), _) => Ok(format!(
                "{} started (pid {})",
                self.program.name, running.pid
            )),
            (None, Some(error)) => Err(format!("{}: {error}", self.program.name)),
            (None, None) => Ok(format!(
                "{}: nothing to run (no `start`)",
                self.program.name
            )),
        }
    }

    /// Fetches and verifies off this task; the result comes back as [`Msg::Polled`].
    fn spawn_poll(&mut self) {
        self.polling = true;
        let (repo, staging, tx) = (
            self.spec.repository.clone(),
            self.staging(),
            self.tx.clone(),
        );
        let (deployed, bad) = (self.record.deployed.clone(), self.bad.clone());
        let verify = self.spec.verify.clone();
        let (log, name) = (self.log.clone(), self.program.name.clone());
        let published = self.published.clone();
        self.publish();
        tokio::spawn(async move {
            let poll = async {
                let tip = git::poll(&repo, &staging).await?;
                if deployed.as_deref() == Some(tip.as_str()) || bad.contains(&tip) {
                    return Ok(Poll::Nothing);
                }
                git::stage(&repo, &staging, &tip).await?;
                let env = [
                    ("TOYC_PROGRAM", name.as_str()),
                    ("TOYC_COMMIT", tip.as_str()),
                ];
                if let Some(verify) = verify {
                    if let Some(log) = &log {
                        log.note(&format!(
                            "verifying {} in {}",
                            short(&tip),
                            staging.display()
                        ));
                    }
                    published.lock().unwrap_or_else(|p| p.into_inner()).activity =
                        Some(format!("verifying {}", short(&tip)));
                    if let Err(why) =
                        process::run_check(&verify, &staging, &env, VERIFY_TIMEOUT).await
                    {
                        return Ok(Poll::VerifyFailed { commit: tip, why });
                    }
                }
                Ok(
                    match hooks::run(Hook::Verify, &staging, &name, &tip, log.as_ref()).await {
                        Some(Err(why)) => Poll::VerifyFailed { commit: tip, why },
                        _ => Poll::Verified(tip),
                    },
                )
            };
            let poll = poll.await.unwrap_or_else(Poll::Error);
            let _ = tx.send(Msg::Polled(poll));
        });
    }

    async fn polled(&mut self, poll: Poll) {
        self.polling = false;
        self.activity = None;
        match poll {
            Poll::Error(why) => {
                self.note(&format!("poll failed: {why}"));
                self.error = Some(format!("poll failed: {why}"));
            }
            Poll::Nothing => {
                if self
                    .error
                    .as_deref()
                    .is_some_and(|e| e.starts_with("poll failed"))
                {
                    self.error = None;
                }
            }
            Poll::VerifyFailed { commit, why } => {
                self.note(&format!(
                    "{} failed its verify, not deployed: {why}",
                    short(&commit)
                ));
                self.mark_bad(&commit, &format!("verify failed: {why}"))
                    .await;
                self.record.last_deploy = Some(json!({
                    "commit": commit, "outcome": "verify failed", "at_ms": now_ms(), "message": why,
                }));
            }
            Poll::Verified(commit) => self.deploy(commit).await,
        }
        self.next_poll = Instant::now() + self.program.timing.next_wait();
        self.save().await;
    }

    async fn mark_bad(&mut self, commit: &str, reason: &str) {
        self.bad.insert(commit.to_owned());
        if let Err(error) = self
            .shared
            .store
            .mark_bad(&self.program.name, commit, reason)
            .await
        {
            self.note(&format!(
                "unable to record {} as bad: {error}",
                short(commit)
            ));
        }
    }

    /// The repo's health hook, tried as often as the health check is (10 times, half a
    /// second apart, without one); `Ok` when there is none.
    async fn health_hook(&mut self, commit: &str) -> Result<(), String> {
        let (tries, interval) = self
            .spec
            .health
            .as_ref()
            .map_or((10, Duration::from_millis(500)), |h| {
                (h.retries, h.interval)
            });
        let checkout = self.spec.repository.path.clone();
        let mut last = String::new();
        for attempt in 0..tries.max(1) {
            if attempt > 0 {
                tokio::time::sleep(interval).await;
            }
            match hooks::run(
                Hook::Health,
                &checkout,
                &self.program.name,
                commit,
                self.log.as_ref(),
            )
            .await
            {
                None | Some(Ok(())) => return Ok(()),
                Some(Err(why)) => last = why,
            }
        }
        Err(last)
    }

    /// Stop, switch, start, health-check; roll back on a failed check.
    async fn deploy(&mut self, commit: String) {
        let old = self.record.deployed.clone();
        self.activity = Some(format!("deploying {}", short(&commit)));
        self.note(&format!(
            "deploying {} (was {})",
            short(&commit),
            old.as_deref().map_or("(none)", short)
        ));
        self.record.last_deploy = Some(json!({
            "commit": commit, "outcome": "in progress", "at_ms": now_ms(),
        }));
        self.save().await;
        let was_stopped = self.state == State::Stopped;
        self.stop_process().await;
        let repo = self.spec.repository.clone();
        if let Err(why) = git::switch(&repo, &repo.path, &self.staging(), &commit).await {
            self.note(&format!("unable to switch to {}: {why}", short(&commit)));
            self.record.last_deploy = Some(json!({
                "commit": commit, "outcome": "switch failed", "at_ms": now_ms(), "message": why,
            }));
            self.activity = None;
            if !was_stopped {
                self.start_process().await;
            }
            return;
        }
        self.record.previous = old.clone();
        self.record.deployed = Some(commit.clone());
        self.save().await;
        if was_stopped {
            self.state = State::Stopped;
            self.record.last_deploy = Some(json!({
                "commit": commit, "outcome": "deployed", "at_ms": now_ms(),
                "message": "checked out; the program is stopped",
            }));
            self.activity = None;
            return;
        }
        self.backoff = Backoff::new(self.program.restart);
        self.start_process().await;
        let healthy = match &self.spec.health {
            Some(check) => {
                self.activity = Some(format!("health-checking {}", short(&commit)));
                self.publish();
                health::check(check, &self.spec.directory).await
            }
            None if self.spec.start.is_some() && self.running.is_none() => Err(self
                .error
                .clone()
                .unwrap_or_else(|| "it did not start".into())),
            None => Ok(()),
        };
        let healthy = match healthy {
            Ok(()) => self.health_hook(&commit).await,
            Err(why) => Err(why),
        };
        match healthy {
            Ok(()) => {
                self.note(&format!("deployed {}", short(&commit)));
                let after = hooks::run(
                    Hook::AfterDeploy,
                    &repo.path,
                    &self.program.name,
                    &commit,
                    self.log.as_ref(),
                )
                .await;
                let mut deployed = json!({
                    "commit": commit, "outcome": "deployed", "at_ms": now_ms(),
                });
                if let Some(Err(why)) = after {
                    self.note(&format!("the after-deploy hook failed: {why}"));
                    deployed["message"] =
                        Value::from(format!("the after-deploy hook failed: {why}"));
                }
                self.record.last_deploy = Some(deployed);
            }
            Err(why) => {
                self.note(&format!(
                    "{} failed its health check ({why}): rolling back to {}",
                    short(&commit),
                    old.as_deref().map_or("(none)", short)
                ));
                self.mark_bad(&commit, &format!("health check failed: {why}"))
                    .await;
                self.stop_process().await;
                if let Some(old) = &old {
                    if let Err(e) = git::checkout(&repo, &repo.path, old).await {
                        self.note(&format!("unable to check {} out again: {e}", short(old)));
                    }
                }
                self.record.deployed = old.clone();
                self.record.previous = None;
                self.record.last_deploy = Some(json!({
                    "commit": commit, "outcome": "rolled back", "at_ms": now_ms(),
                    "message": format!("health check failed: {why}"),
                }));
                self.save().await;
                self.backoff = Backoff::new(self.program.restart);
                self.start_process().await;
            }
        }
        self.activity = None;
    }
}
