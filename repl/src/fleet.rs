//! The console's view of the inventory: which hosts are selected, their connections (the
//! session's run keeps them open between lines), and each host's pending runbook
//! (declared at the prompt, shown after each line, applied only by `.apply`). Showing
//! and applying are jobs of the engine's one entry point, so the console honours stages,
//! handlers, `notify`, timeouts and retries as `toyc run` does.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rhai::Dynamic;
use toyc_engine::context::HostContext;
use toyc_engine::events::HostStatus;
use toyc_engine::inventory::{Host, Inventory, InventoryError};
use toyc_engine::run::{Approve, Job, Report, RunContext, RunbookJob, RunbookSource};
use toyc_engine::runbook::Runbook;
use toyc_engine::runner::{elapsed_ms, for_each_host};
use toyc_engine::transport::{ExecOutput, ExecRequest, Transport, TransportError};
use toyc_stdlib::Library;

/// How one host answered one request at the prompt.
#[derive(Debug, Clone)]
pub struct Row {
    /// The host's inventory name.
    pub host: String,
    /// ok, failed or unreachable.
    pub status: HostStatus,
    /// The command's exit status, when it ran to its end.
    pub code: Option<i32>,
    /// What the command printed on stdout.
    pub stdout: String,
    /// What the command printed on stderr.
    pub stderr: String,
    /// What went wrong, for people.
    pub error: Option<String>,
    /// Wall time on the host.
    pub elapsed_ms: u64,
}

impl Row {
    fn failed(host: &str, status: HostStatus, error: String, started: Instant) -> Row {
        Row {
            host: host.to_owned(),
            status,
            code: None,
            stdout: String::new(),
            stderr: String::new(),
            error: Some(error),
            elapsed_ms: elapsed_ms(started),
        }
    }

    fn of_exec(host: &str, outcome: Result<ExecOutput, TransportError>, started: Instant) -> Row {
        match outcome {
            Ok(output) => Row {
                host: host.to_owned(),
                status: if output.status == 0 {
                    HostStatus::Ok
                } else {
                    HostStatus::Failed
                },
                code: Some(output.status),
                stdout: output.stdout_text(),
                stderr: output.stderr_text(),
                error: (output.status != 0).then(|| format!("exit status {}", output.status)),
                elapsed_ms: elapsed_ms(started),
            },
            Err(e) => {
                let status = if e.is_unreachable() {
                    HostStatus::Unreachable
                } else {
                    HostStatus::Failed
                };
                Row::failed(host, status, e.to_string(), started)
            }
        }
    }
}

/// A host and the runbook declared for it so far.
type HostPlan = (Host, Runbook);

/// Why the console could not select hosts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FleetError {
    /// A pattern named no host, or the inventory refused it.
    #[error(transparent)]
    Select(#[from] InventoryError),
    /// The pattern and the session's `.limit` have no host in common.
    #[error("`{pattern}` selects no host inside the limit `{limit}`; `.limit all` widens it")]
    OutsideLimit {
        /// The pattern asked for.
        pattern: String,
        /// The session's limit.
        limit: String,
    },
}

/// The hosts, connections and pending plan of one console session.
pub struct Fleet {
    inventory: Inventory,
    limit: Mutex<Option<String>>,
    forks: usize,
    sudo: AtomicBool,
    runtime: tokio::runtime::Handle,
    /// The session's run: its connections, its cancellation (reset after each line),
    /// its secrets and its events.
    run: RunContext,
    root: PathBuf,
    /// Keyed by inventory position, so hosts are planned and shown in inventory order.
    pending: Mutex<BTreeMap<usize, HostPlan>>,
    new_pending: AtomicBool,
    /// `host` and `vars` of the session's scope, set by `on(...)` for each host.
    closure_variables: ClosureVariables,
}

/// The session's `host` and `vars`: shared values in its scope, so a closure given to
/// `on(PATTERN, || ...)` captures them (Rhai captures a closure's outer variables when
/// it is made, before any host is chosen) and sees what `on` sets for each host, as a
/// script sees its host's. `()` outside `on`; a `let host`/`let vars` at the prompt
/// makes the session's own instead.
#[derive(Debug, Clone)]
pub struct ClosureVariables {
    host: Dynamic,
    vars: Dynamic,
}

impl Default for ClosureVariables {
    fn default() -> ClosureVariables {
        ClosureVariables {
            host: Dynamic::UNIT.into_shared(),
            vars: Dynamic::UNIT.into_shared(),
        }
    }
}

impl ClosureVariables {
    /// A session scope holding them.
    pub fn scope(&self) -> rhai::Scope<'static> {
        let mut scope = rhai::Scope::new();
        scope.push_dynamic("host", self.host.clone());
        scope.push_dynamic("vars", self.vars.clone());
        scope
    }

    /// Set them to `host`'s (`None`: back to `()`).
    pub fn set(&self, host: Option<&Host>) {
        let (info, vars) = match host {
            Some(host) => toyc_engine::runner::script_variables(host),
            None => (Dynamic::UNIT, Dynamic::UNIT),
        };
        for (cell, value) in [(&self.host, info), (&self.vars, vars)] {
            let mut cell = cell.clone();
            if let Some(mut guard) = cell.write_lock::<Dynamic>() {
                *guard = value;
            };
        }
    }
}

/// What a session starts with.
pub struct FleetConfig {
    /// The inventory (localhost only without `-i`).
    pub inventory: Inventory,
    /// `-l`: the hosts the session works on.
    pub limit: Option<String>,
    /// Hosts worked on at once.
    pub forks: usize,
    /// `--sudo`: start with `.sudo on`.
    pub sudo: bool,
    /// The session's run (connections, cancellation, secrets, events, limits).
    pub run: RunContext,
    /// The directory local files (`files::copy`) come from: the working directory.
    pub root: PathBuf,
}

impl Fleet {
    /// A session's fleet; nothing is connected yet.
    pub fn new(config: FleetConfig, runtime: tokio::runtime::Handle) -> Result<Fleet, FleetError> {
        config.inventory.select(config.limit.as_deref())?;
        Ok(Fleet {
            inventory: config.inventory,
            limit: Mutex::new(config.limit),
            forks: config.forks,
            sudo: AtomicBool::new(config.sudo),
            runtime,
            run: config.run,
            root: config.root,
            pending: Mutex::new(BTreeMap::new()),
            new_pending: AtomicBool::new(false),
            closure_variables: ClosureVariables::default(),
        })
    }

    /// The session's `host` and `vars`, which `on(...)` sets for each host.
    pub fn closure_variables(&self) -> &ClosureVariables {
        &self.closure_variables
    }

    /// The inventory.
    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    /// The session's run.
    pub fn run(&self) -> &RunContext {
        &self.run
    }

    /// The session's limit (`None`: every host).
    pub fn limit(&self) -> Option<String> {
        self.limit.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Narrow the session to `pattern` (`all` or `None`: every host); checked first.
    pub fn set_limit(&self, pattern: Option<&str>) -> Result<usize, FleetError> {
        let pattern = pattern.filter(|p| *p != "all");
        let count = self.inventory.select(pattern)?.len();
        *self.limit.lock().unwrap_or_else(|p| p.into_inner()) = pattern.map(str::to_owned);
        Ok(count)
    }

    /// Whether commands and changes go through sudo.
    pub fn sudo(&self) -> bool {
        self.sudo.load(Ordering::Relaxed)
    }

    /// `.sudo on|off`.
    pub fn set_sudo(&self, on: bool) {
        self.sudo.store(on, Ordering::Relaxed);
    }

    /// The hosts `pattern` selects inside the session's limit, in inventory order.
    pub fn select(&self, pattern: Option<&str>) -> Result<Vec<Host>, FleetError> {
        let limit = self.limit();
        let inside: HashSet<&str> = self
            .inventory
            .select(limit.as_deref())?
            .into_iter()
            .map(|h| h.name.as_str())
            .collect();
        let chosen: Vec<Host> = self
            .inventory
            .select(pattern)?
            .into_iter()
            .filter(|h| inside.contains(h.name.as_str()))
            .cloned()
            .collect();
        match (chosen.is_empty(), pattern, limit) {
            (true, Some(pattern), Some(limit)) => Err(FleetError::OutsideLimit {
                pattern: pattern.to_owned(),
                limit,
            }),
            _ => Ok(chosen),
        }
    }

    /// Whether `host` has an open connection.
    pub fn is_connected(&self, host: &str) -> bool {
        self.run.session.is_connected(host)
    }

    /// Open the connections `hosts` do not have yet, all at once; the ones that failed,
    /// with why (forgotten, so the next request tries again). Connections stay open for
    /// the rest of the session.
    pub async fn connect(&self, hosts: &[Host]) -> Vec<(String, String)> {
        let opened = for_each_host(hosts, self.forks, |host| {
            let run = self.run.clone();
            async move {
                let result = run.session.connect(&host).await.map(|_| ());
                (host.name, result)
            }
        })
        .await;
        let mut failures = Vec::new();
        for (name, result) in opened {
            if let Err(e) = result {
                self.run.session.forget(&name).await;
                failures.push((name, e.to_string()));
            }
        }
        failures
    }

    /// The open connection of every host in `hosts` (connecting those without one, all
    /// at once), or why not.
    async fn transports(&self, hosts: &[Host]) -> Vec<(Host, Result<Arc<dyn Transport>, String>)> {
        let failures: HashMap<String, String> = self.connect(hosts).await.into_iter().collect();
        let mut connected = Vec::with_capacity(hosts.len());
        for host in hosts {
            // Connected by now, or failed: the session answers at once either way.
            let transport = match failures.get(&host.name) {
                Some(why) => Err(why.clone()),
                None => self
                    .run
                    .session
                    .connect(host)
                    .await
                    .map_err(|e| e.to_string()),
            };
            connected.push((host.clone(), transport));
        }
        connected
    }

    /// Forget a host's connection (it broke): the next request reconnects.
    async fn forget(&self, host: &str) {
        self.run.session.forget(host).await;
    }

    /// Run `request` on every host of `hosts` at once; one row per host, in inventory order.
    pub fn exec(&self, hosts: &[Host], request: &ExecRequest) -> Vec<Row> {
        self.runtime.block_on(async {
            let started = Instant::now();
            let connected = self.transports(hosts).await;
            let sudo = self.sudo();
            // The live line of the hosts still running (on a terminal), as `toyc run` has.
            let progress = self.run.progress.clone();
            progress.phase("exec", hosts.len());
            let rows = for_each_host(hosts, self.forks, |host| {
                let progress = progress.clone();
                let transport = connected
                    .iter()
                    .find(|(h, _)| h.name == host.name)
                    .map(|(_, t)| t.clone())
                    .unwrap_or_else(|| Err(format!("`{}` is not connected", host.name)));
                let mut request = request.clone();
                request.sudo |= sudo || host.sudo;
                async move {
                    progress.start(&host.name);
                    let row = match transport {
                        Ok(transport) => {
                            Row::of_exec(&host.name, transport.exec(&request, None).await, started)
                        }
                        Err(e) => Row::failed(&host.name, HostStatus::Unreachable, e, started),
                    };
                    progress.done(&host.name);
                    row
                }
            })
            .await;
            progress.finish();
            for row in &rows {
                if row.status == HostStatus::Unreachable {
                    self.forget(&row.host).await;
                }
            }
            rows
        })
    }

    /// A context for `host` whose calls act at once (`host::*`) or join its pending plan
    /// (operations): see [`Fleet::adopt_operations`]. `None` with why when unreachable.
    pub fn contexts(&self, hosts: &[Host]) -> Vec<(Host, Result<Arc<HostContext>, String>)> {
        let connected = self.runtime.block_on(self.transports(hosts));
        let sudo = self.sudo();
        connected
            .into_iter()
            .map(|(host, transport)| {
                let context = transport.map(|transport| {
                    let mut context = HostContext::new(
                        host.clone(),
                        transport,
                        self.runtime.clone(),
                        self.run.clone(),
                        self.root.clone(),
                    );
                    context.sudo |= sudo;
                    Arc::new(context)
                });
                (host, context)
            })
            .collect()
    }

    /// `context` as the state of a tag of the session's engines: what `on(...)` gives
    /// its closure, so `host::` functions and operations act on that host.
    pub fn tag(&self, context: &Arc<HostContext>) -> Dynamic {
        toyc_engine::sandbox::script_tag(&self.run.secrets, Arc::clone(context).into_tag())
    }

    /// Move the runbook `context` collected into its host's pending runbook.
    pub fn adopt_operations(&self, context: &HostContext) {
        let runbook = context.take_runbook();
        if runbook.is_empty() {
            return;
        }
        let index = self
            .inventory
            .hosts()
            .iter()
            .position(|h| h.name == context.host.name)
            .unwrap_or(usize::MAX);
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending
            .entry(index)
            .or_insert_with(|| (context.host.clone(), Runbook::default()))
            .1
            .append(runbook);
        self.new_pending.store(true, Ordering::Relaxed);
    }

    /// Whether operations joined the plan since the last call.
    pub fn take_new_pending(&self) -> bool {
        self.new_pending.swap(false, Ordering::Relaxed)
    }

    /// Number of pending operations over all hosts.
    pub fn pending_count(&self) -> usize {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|(_, book)| book.len())
            .sum()
    }

    fn pending_snapshot(&self) -> Vec<HostPlan> {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// The pending runbooks as a job of the session: `check` shows, otherwise applies.
    fn pending_job(&self, check: bool) -> Job {
        let pending = self.pending_snapshot();
        Job::Runbook(RunbookJob {
            hosts: pending.iter().map(|(h, _)| h.clone()).collect(),
            source: RunbookSource::Declared(
                pending
                    .into_iter()
                    .map(|(h, book)| (h.name, book))
                    .collect(),
            ),
            vars: serde_json::Map::new(),
            sudo: self.sudo(),
            command_timeout: None,
            check,
            diff: true,
            forks: self.forks,
            max_cycles: None,
            after_apply: None,
        })
    }

    /// Run a job of the session through the engine, leaving the connections open;
    /// hosts found unreachable are forgotten, so the next line reconnects.
    fn run_job(&self, job: Job) -> Result<Report, String> {
        let run = self.run.keeping_connections();
        self.runtime.block_on(async {
            let report = toyc_engine::run::run(job, &run, &Library, &Approve)
                .await
                .map_err(|e| e.to_string())?;
            for result in &report.results {
                if result.status == HostStatus::Unreachable {
                    self.forget(&result.host).await;
                }
            }
            Ok(report)
        })
    }

    /// Plan every host's pending runbook (one round trip per host, all at once) and
    /// report the changes it would make; the number of changes.
    pub fn show_pending(&self) -> Result<usize, String> {
        let report = self.run_job(self.pending_job(true))?;
        let problems: Vec<String> = report
            .results
            .iter()
            .filter(|r| r.status != HostStatus::Ok)
            .map(|r| format!("{}: {}", r.host, r.error.as_deref().unwrap_or("failed")))
            .collect();
        if problems.is_empty() {
            Ok(report.pending)
        } else {
            Err(problems.join("\n"))
        }
    }

    /// Apply every host's pending runbook (stage by stage, one round trip per host and
    /// stage, all hosts at once), report each step, and clear the runbook of every host
    /// whose changes all succeeded. Returns (changes made, hosts failed, what went wrong).
    pub fn apply_pending(&self) -> (usize, usize, Vec<String>) {
        let report = match self.run_job(self.pending_job(false)) {
            Ok(report) => report,
            Err(e) => return (0, 0, vec![e]),
        };
        let clean: Vec<&str> = report
            .results
            .iter()
            .filter(|r| r.status == HostStatus::Ok)
            .map(|r| r.host.as_str())
            .collect();
        let problems = report
            .results
            .iter()
            .filter(|r| r.status != HostStatus::Ok)
            .map(|r| format!("{}: {}", r.host, r.error.as_deref().unwrap_or("failed")))
            .collect();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, (host, _)| !clean.contains(&host.name.as_str()));
        let failed = report.summary.failed + report.summary.unreachable + report.summary.skipped;
        (report.summary.changed, failed, problems)
    }

    /// Drop every pending operation.
    pub fn discard_pending(&self) -> usize {
        let count = self.pending_count();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        count
    }

    /// Close every connection.
    pub fn close(&self) {
        self.runtime.block_on(self.run.session.close());
    }
}
