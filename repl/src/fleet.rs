//! The console's view of the inventory: which hosts are selected, their connections (kept
//! open between lines), and each host's pending operations (declared at the prompt,
//! planned after each line, applied only by `.apply`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use toyc_engine::apply::{apply_host, changes, plan_host, ApplyError};
use toyc_engine::context::HostContext;
use toyc_engine::events::{Event, EventSink, HostStatus};
use toyc_engine::inventory::{Host, Inventory, InventoryError};
use toyc_engine::plan::{Change, Operation, Outcome};
use toyc_engine::runner::{connect, elapsed_ms, for_each_host};
use toyc_engine::transport::{ExecOutput, ExecRequest, SshOptions, Transport, TransportError};

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

/// A host and the operations declared for it, in call order.
type HostPlan = (Host, Vec<Arc<dyn Operation>>);

/// A host's pending operations as planned: its connection (none when unreachable) and
/// what each operation would do, or why planning failed.
type Planned = (
    Host,
    Option<Arc<dyn Transport>>,
    Result<Vec<Outcome>, String>,
);

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
    ssh: Arc<SshOptions>,
    forks: usize,
    sudo: AtomicBool,
    runtime: tokio::runtime::Handle,
    events: Arc<dyn EventSink>,
    root: PathBuf,
    transports: tokio::sync::Mutex<HashMap<String, Arc<dyn Transport>>>,
    /// Keyed by inventory position, so hosts are planned and shown in inventory order.
    pending: Mutex<BTreeMap<usize, HostPlan>>,
    new_pending: AtomicBool,
}

/// What a session starts with.
pub struct FleetConfig {
    /// The inventory (localhost only without `-i`).
    pub inventory: Inventory,
    /// `-l`: the hosts the session works on.
    pub limit: Option<String>,
    /// How to reach SSH hosts.
    pub ssh: SshOptions,
    /// Hosts worked on at once.
    pub forks: usize,
    /// `--sudo`: start with `.sudo on`.
    pub sudo: bool,
    /// Where messages go.
    pub events: Arc<dyn EventSink>,
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
            ssh: Arc::new(config.ssh),
            forks: config.forks,
            sudo: AtomicBool::new(config.sudo),
            runtime,
            events: config.events,
            root: config.root,
            transports: tokio::sync::Mutex::new(HashMap::new()),
            pending: Mutex::new(BTreeMap::new()),
            new_pending: AtomicBool::new(false),
        })
    }

    /// The inventory.
    pub fn inventory(&self) -> &Inventory {
        &self.inventory
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
        self.transports
            .try_lock()
            .map(|t| t.contains_key(host))
            .unwrap_or(false)
    }

    /// Open the connections `hosts` do not have yet, all at once; the ones that failed,
    /// with why. Connections stay open for the rest of the session.
    pub async fn connect(&self, hosts: &[Host]) -> Vec<(String, TransportError)> {
        let mut transports = self.transports.lock().await;
        let missing: Vec<Host> = hosts
            .iter()
            .filter(|h| !transports.contains_key(&h.name))
            .cloned()
            .collect();
        let ssh = &self.ssh;
        let opened = for_each_host(&missing, self.forks, |host| {
            let ssh = Arc::clone(ssh);
            async move {
                let result = connect(&host, &ssh).await;
                (host.name, result)
            }
        })
        .await;
        let mut failures = Vec::new();
        for (name, result) in opened {
            match result {
                Ok(transport) => {
                    transports.insert(name, transport);
                }
                Err(e) => failures.push((name, e)),
            }
        }
        failures
    }

    /// The open connection of every host in `hosts` (connecting those without one), or why not.
    async fn transports(&self, hosts: &[Host]) -> Vec<(Host, Result<Arc<dyn Transport>, String>)> {
        let failures: HashMap<String, TransportError> =
            self.connect(hosts).await.into_iter().collect();
        let transports = self.transports.lock().await;
        hosts
            .iter()
            .map(|host| {
                let transport = match transports.get(&host.name) {
                    Some(t) => Ok(Arc::clone(t)),
                    None => Err(failures
                        .get(&host.name)
                        .map(ToString::to_string)
                        .unwrap_or_else(|| format!("`{}` is not connected", host.name))),
                };
                (host.clone(), transport)
            })
            .collect()
    }

    /// Forget a host's connection (it broke): the next request reconnects.
    async fn forget(&self, host: &str) {
        if let Some(transport) = self.transports.lock().await.remove(host) {
            transport.close().await;
        }
    }

    /// Run `request` on every host of `hosts` at once; one row per host, in inventory order.
    pub fn exec(&self, hosts: &[Host], request: &ExecRequest) -> Vec<Row> {
        self.runtime.block_on(async {
            let started = Instant::now();
            let connected = self.transports(hosts).await;
            let sudo = self.sudo();
            let rows = for_each_host(hosts, self.forks, |host| {
                let transport = connected
                    .iter()
                    .find(|(h, _)| h.name == host.name)
                    .map(|(_, t)| t.clone())
                    .unwrap_or_else(|| Err(format!("`{}` is not connected", host.name)));
                let mut request = request.clone();
                request.sudo |= sudo || host.sudo;
                async move {
                    match transport {
                        Ok(transport) => {
                            Row::of_exec(&host.name, transport.exec(&request, None).await, started)
                        }
                        Err(e) => Row::failed(&host.name, HostStatus::Unreachable, e, started),
                    }
                }
            })
            .await;
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
                        Arc::clone(&self.events),
                        self.root.clone(),
                    );
                    context.sudo |= sudo;
                    Arc::new(context)
                });
                (host, context)
            })
            .collect()
    }

    /// Move the operations `context` collected into its host's pending plan.
    pub fn adopt_operations(&self, context: &HostContext) {
        let operations = context.take_operations();
        if operations.is_empty() {
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
            .or_insert_with(|| (context.host.clone(), Vec::new()))
            .1
            .extend(operations);
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
            .map(|(_, ops)| ops.len())
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

    /// Plan every host's pending operations (one round trip per host, all at once) and
    /// report the changes they would make; the number of changes.
    pub fn show_pending(&self) -> Result<usize, String> {
        let planned = self.plan_pending();
        let mut count = 0;
        let mut problems = Vec::new();
        for (host, _, outcome) in &planned {
            match outcome {
                Ok(outcomes) => {
                    for outcome in outcomes {
                        self.report_outcome(&host.name, outcome);
                        count += usize::from(matches!(outcome, Outcome::Change(_)));
                    }
                }
                Err(e) => problems.push(format!("{}: {e}", host.name)),
            }
        }
        if problems.is_empty() {
            Ok(count)
        } else {
            Err(problems.join("\n"))
        }
    }

    fn report_outcome(&self, host: &str, outcome: &Outcome) {
        match outcome {
            Outcome::Change(change) => self.events.emit(&Event::Change {
                host: host.to_owned(),
                change: change.into(),
            }),
            Outcome::NoChange(same) => self.events.emit(&Event::NoChange {
                host: host.to_owned(),
                operation: same.operation.clone(),
                target: same.target.clone(),
                reason: same.reason.clone(),
            }),
        }
    }

    fn plan_pending(&self) -> Vec<Planned> {
        let pending = self.pending_snapshot();
        let hosts: Vec<Host> = pending.iter().map(|(h, _)| h.clone()).collect();
        let sudo = self.sudo();
        self.runtime.block_on(async {
            let connected = self.transports(&hosts).await;
            for_each_host(&hosts, self.forks, |host| {
                let operations = pending
                    .iter()
                    .find(|(h, _)| h.name == host.name)
                    .map(|(_, ops)| ops.clone())
                    .unwrap_or_default();
                let transport = connected
                    .iter()
                    .find(|(h, _)| h.name == host.name)
                    .and_then(|(_, t)| t.as_ref().ok().cloned());
                let sudo = sudo || host.sudo;
                async move {
                    let Some(transport) = transport else {
                        return (host, None, Err("unreachable".to_owned()));
                    };
                    let planned = plan_host(transport.as_ref(), &operations, true, sudo)
                        .await
                        .map_err(|e: ApplyError| e.to_string());
                    (host, Some(transport), planned)
                }
            })
            .await
        })
    }

    /// Apply every host's pending changes (one round trip per host, all at once), report
    /// each step, and clear the plan of every host whose changes all succeeded.
    /// Returns (steps done, steps failed, hosts that could not be planned or applied).
    pub fn apply_pending(&self) -> (usize, usize, Vec<String>) {
        let planned = self.plan_pending();
        let sudo = self.sudo();
        let hosts: Vec<Host> = planned.iter().map(|(h, _, _)| h.clone()).collect();
        let planned: HashMap<String, _> = planned
            .into_iter()
            .map(|(host, transport, outcomes)| (host.name, (transport, outcomes)))
            .collect();
        let results = self
            .runtime
            .block_on(for_each_host(&hosts, self.forks, |host| {
                let entry = planned.get(&host.name).cloned();
                let sudo = sudo || host.sudo;
                async move {
                    let Some((Some(transport), Ok(outcomes))) = entry else {
                        let why = match entry {
                            Some((_, Err(why))) => why,
                            _ => "unreachable".to_owned(),
                        };
                        return (host, Err(why), Vec::new());
                    };
                    let todo: Vec<Change> = changes(&outcomes).into_iter().cloned().collect();
                    let refs: Vec<&Change> = todo.iter().collect();
                    let steps = apply_host(transport.as_ref(), &refs, sudo)
                        .await
                        .map_err(|e| e.to_string());
                    (host, steps, todo)
                }
            }));
        let (mut done, mut failed, mut problems) = (0, 0, Vec::new());
        let mut clean = Vec::new();
        for (host, steps, todo) in results {
            match steps {
                Ok(steps) => {
                    let mut all_ok = steps.len() == todo.len();
                    for step in &steps {
                        let Some(change) = todo.get(step.index) else {
                            continue;
                        };
                        self.events.emit(&Event::Step {
                            host: host.name.clone(),
                            operation: change.operation.clone(),
                            target: change.target.clone(),
                            status: step.status,
                            output: step.output.clone(),
                        });
                        if step.status == 0 {
                            done += 1;
                        } else {
                            failed += 1;
                            all_ok = false;
                        }
                    }
                    if all_ok {
                        clean.push(host.name);
                    }
                }
                Err(e) => problems.push(format!("{}: {e}", host.name)),
            }
        }
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, (host, _)| !clean.contains(&host.name));
        (done, failed, problems)
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
        self.runtime.block_on(async {
            let transports: Vec<_> = self.transports.lock().await.drain().collect();
            for (_, transport) in transports {
                transport.close().await;
            }
        });
    }
}
