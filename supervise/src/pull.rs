//! Pull mode: a program that is a role. At start and then at a random time in [minimum,
//! maximum], the role's repo is synced; a new commit that is not bad is applied to this
//! machine through the engine's one entry point (`Job::Runbook`, the local transport, as
//! `toyc role --local` does), and the host records the commit as every role apply does.
//! A failed apply marks the commit bad: it is not applied again, a newer commit is (a
//! fleet polling a broken commit would otherwise re-apply it on every poll).
//!
//! `stop` pauses the polling, `start` resumes it, `deploy` and `restart` poll now.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::sleep_until;
use toyc_engine::gitsync::SyncOptions;
use toyc_engine::inventory::Inventory;
use toyc_engine::role::hosts::{self, HostChoice};
use toyc_engine::role::record::Record;
use toyc_engine::role::Role;
use toyc_store::ProgramRecord;

use crate::config::{Program, RoleSpec};
use crate::logs::Log;
use crate::now_ms;
use crate::program::{Msg, Shared, Status, Verb};

struct Puller {
    program: Program,
    spec: RoleSpec,
    shared: Arc<Shared>,
    log: Option<Log>,
    record: ProgramRecord,
    bad: HashSet<String>,
    published: Arc<Mutex<Status>>,
    next_poll: Instant,
    error: Option<String>,
}

/// The task of a role program.
pub(crate) async fn run(
    program: Program,
    spec: RoleSpec,
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    published: Arc<Mutex<Status>>,
) {
    let log = Log::open(
        &shared.log_dir.join(format!("{}.log", program.name)),
        program.logs,
    )
    .ok();
    let mut puller = Puller {
        record: ProgramRecord {
            name: program.name.clone(),
            ..ProgramRecord::default()
        },
        program,
        spec,
        shared,
        log,
        bad: HashSet::new(),
        published,
        // At start: a machine that boots configures itself at once.
        next_poll: Instant::now(),
        error: None,
    };
    if let Ok(Some(record)) = puller.shared.store.program(&puller.program.name).await {
        puller.record = record;
    }
    if let Ok(bad) = puller.shared.store.bad_commits(&puller.program.name).await {
        puller.bad = bad.into_iter().map(|b| b.commit).collect();
    }
    puller.publish(None);
    loop {
        let paused = puller.record.stopped;
        tokio::select! {
            msg = rx.recv() => match msg {
                None => break,
                Some(Msg::Shutdown(done)) => {
                    let _ = done.send(());
                    break;
                }
                Some(Msg::Control(verb, reply)) => {
                    let answer = match verb {
                        Verb::Stop => {
                            puller.record.stopped = true;
                            Ok(format!("{}: polling paused", puller.program.name))
                        }
                        Verb::Start => {
                            puller.record.stopped = false;
                            Ok(format!("{}: polling", puller.program.name))
                        }
                        Verb::Deploy | Verb::Restart => {
                            puller.next_poll = Instant::now();
                            Ok(format!("{}: polling now", puller.program.name))
                        }
                    };
                    puller.save().await;
                    let _ = reply.send(answer);
                }
                Some(Msg::Exited { .. } | Msg::Polled(_)) => {}
            },
            _ = sleep_until(puller.next_poll.into()), if !paused => {
                puller.poll().await;
                puller.next_poll = Instant::now() + puller.program.timing.next_wait();
                puller.save().await;
            }
        }
    }
}

impl Puller {
    fn note(&self, text: &str) {
        tracing::info!(program = %self.program.name, "{text}");
        if let Some(log) = &self.log {
            log.note(text);
        }
    }

    fn publish(&self, activity: Option<String>) {
        let mut status = self.published.lock().unwrap_or_else(|p| p.into_inner());
        status.state = if self.record.stopped {
            "stopped"
        } else {
            "idle"
        }
        .into();
        status.activity = activity;
        status.deployed = self.record.deployed.clone();
        status.previous = self.record.previous.clone();
        status.last_deploy = self.record.last_deploy.clone();
        let wait = self.next_poll.saturating_duration_since(Instant::now());
        status.next_poll_ms = Some(now_ms() + i64::try_from(wait.as_millis()).unwrap_or(0));
        let mut bad: Vec<String> = self.bad.iter().cloned().collect();
        bad.sort();
        status.bad_commits = bad;
        status.error = self.error.clone();
    }

    async fn save(&mut self) {
        if let Err(error) = self.shared.store.save_program(&self.record).await {
            self.note(&format!("unable to save its state: {error}"));
        }
        self.publish(None);
    }

    async fn poll(&mut self) {
        self.publish(Some("syncing".into()));
        let role = match Role::new(
            &self.spec.name,
            Some(&self.spec.url),
            None,
            &self.shared.state_dir,
        ) {
            Ok(role) => role,
            Err(error) => {
                self.error = Some(error.to_string());
                return;
            }
        };
        let options = SyncOptions {
            reference: Some(self.spec.branch.clone()),
            identity: None,
            known_hosts: None,
            timeout: Duration::from_secs(300),
        };
        let synced = {
            let role = role.clone();
            match tokio::task::spawn_blocking(move || role.sync(&options)).await {
                Ok(Ok(synced)) => synced,
                Ok(Err(error)) => {
                    self.note(&format!("poll failed: {error}"));
                    self.error = Some(format!("poll failed: {error}"));
                    return;
                }
                Err(error) => {
                    self.error = Some(format!("the git sync thread failed: {error}"));
                    return;
                }
            }
        };
        self.error = None;
        let commit = synced.new.clone();
        if self.record.deployed.as_deref() == Some(commit.as_str()) || self.bad.contains(&commit) {
            return;
        }
        let short = commit.get(..7).unwrap_or(&commit).to_owned();
        self.note(&format!("applying role {} at {short}", role.name));
        self.publish(Some(format!("applying {short}")));
        self.record.last_deploy = Some(json!({
            "commit": commit, "outcome": "in progress", "at_ms": now_ms(),
        }));
        self.save().await;
        let outcome = self.apply(&role, &synced).await;
        match outcome {
            Ok(()) => {
                self.note(&format!("applied {short}"));
                self.record.previous = self.record.deployed.replace(commit.clone());
                self.record.last_deploy = Some(json!({
                    "commit": commit, "outcome": "deployed", "at_ms": now_ms(),
                }));
            }
            Err(why) => {
                self.note(&format!("{short} failed to apply, not retried: {why}"));
                self.bad.insert(commit.clone());
                if let Err(error) = self
                    .shared
                    .store
                    .mark_bad(&self.program.name, &commit, &format!("apply failed: {why}"))
                    .await
                {
                    self.note(&format!("unable to record {short} as bad: {error}"));
                }
                self.record.last_deploy = Some(json!({
                    "commit": commit, "outcome": "apply failed", "at_ms": now_ms(), "message": why,
                }));
            }
        }
    }

    async fn apply(
        &self,
        role: &Role,
        synced: &toyc_engine::gitsync::Synced,
    ) -> Result<(), String> {
        let checkout = role.open(synced).map_err(|e| e.to_string())?;
        let inventory = Inventory::localhost_only();
        let choice = HostChoice {
            local: true,
            hosts_file: None,
            limit: None,
            inventory_file: None,
        };
        let hosts: Vec<_> = hosts::choose(&role.name, &inventory, &choice)
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|mut host| {
                host.vars = checkout.attributes.layered(&host.vars);
                host
            })
            .collect();
        let mut vars = self.spec.vars.clone();
        vars.insert("role".into(), Value::from(role.name.clone()));
        vars.insert("commit".into(), Value::from(synced.new.clone()));
        let record = Record {
            role: role.name.clone(),
            commit: synced.new.clone(),
            repo: role.display_url(),
            applied_at: None,
        };
        crate::hooks::run_job(
            &checkout.script,
            &role.cache,
            hosts,
            vars,
            Some(record.after_apply(None)),
            self.log.clone(),
        )
        .await
    }
}
