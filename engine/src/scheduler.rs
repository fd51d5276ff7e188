//! Running one stage's tasks: as many at once as `concurrency` and `concurrency_per_host`
//! allow, a host's own tasks in their order, retries with a delay, and a failure policy
//! that decides what happens to the work not started yet.
//!
//! The scheduler knows nothing of what a task does: the caller gives each task's host
//! and a function that runs task `i` (attempt `n`); runbooks (one task per host and
//! stage) and generated task lists (many tasks per host) share it.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use crate::cancel::Cancel;

/// What a failed task does to the rest of its stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailurePolicy {
    /// Start nothing new, let running tasks finish, fail the run.
    #[default]
    Abort,
    /// Drop the failed host (its later tasks and stages are skipped); the others go on.
    Isolate,
    /// Go on as if nothing failed (the failure still counts in the result).
    Continue,
}

impl FailurePolicy {
    /// The policy named `name` (`abort`, `isolate`, `continue`), or why not.
    pub fn parse(name: &str) -> Result<FailurePolicy, String> {
        match name {
            "abort" => Ok(FailurePolicy::Abort),
            "isolate" => Ok(FailurePolicy::Isolate),
            "continue" => Ok(FailurePolicy::Continue),
            other => Err(format!(
                "`{other}` is not a failure policy; use `abort`, `isolate` or `continue`"
            )),
        }
    }
}

/// How a stage runs its tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageOptions {
    /// Tasks running at once over all hosts (`None`: no limit).
    pub concurrency: Option<usize>,
    /// Tasks running at once on one host (`None`: no limit).
    pub concurrency_per_host: Option<usize>,
    /// What a failure does to the work not started yet.
    pub on_failure: FailurePolicy,
    /// With [`FailurePolicy::Isolate`]: abort once more than this percentage of the
    /// stage's hosts failed (Ansible's `max_fail_percentage`).
    pub max_fail_percent: Option<u8>,
    /// How long one attempt of a task may take.
    pub timeout: Option<Duration>,
    /// Further attempts of a failed task.
    pub retries: u32,
    /// Wait between attempts.
    pub retry_delay: Duration,
}

impl Default for StageOptions {
    fn default() -> StageOptions {
        StageOptions {
            concurrency: None,
            concurrency_per_host: None,
            on_failure: FailurePolicy::Abort,
            max_fail_percent: None,
            timeout: None,
            retries: 0,
            retry_delay: Duration::from_secs(1),
        }
    }
}

/// How one attempt of a task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskOutcome {
    /// It did its job.
    Ok,
    /// It failed; the text says why. Retried while attempts remain.
    Failed(String),
    /// Its host could not be reached. Not retried: the connection is gone.
    Unreachable(String),
}

impl TaskOutcome {
    fn is_ok(&self) -> bool {
        matches!(self, TaskOutcome::Ok)
    }
}

/// What became of one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskReport {
    /// It ran; `attempts` is how many times (1 without retries).
    Ran {
        /// The last attempt's outcome.
        outcome: TaskOutcome,
        /// How many attempts were made.
        attempts: u32,
    },
    /// It never started: the stage aborted, or its host was dropped.
    Skipped(String),
}

impl TaskReport {
    /// Why a task that ran failed, with the number of attempts when there were several;
    /// `None` when it succeeded or never ran.
    pub fn failure(&self) -> Option<String> {
        match self {
            TaskReport::Ran {
                outcome: TaskOutcome::Failed(e) | TaskOutcome::Unreachable(e),
                attempts,
            } if *attempts > 1 => Some(format!("{e} (after {attempts} attempts)")),
            TaskReport::Ran {
                outcome: TaskOutcome::Failed(e) | TaskOutcome::Unreachable(e),
                ..
            } => Some(e.clone()),
            _ => None,
        }
    }
}

/// What a stage did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageReport {
    /// One report per task, in the order the tasks were given.
    pub tasks: Vec<TaskReport>,
    /// Whether a failure stopped the stage from starting more work (the run fails).
    pub aborted: bool,
    /// Hosts with a task that failed or was unreachable.
    pub failed_hosts: BTreeSet<String>,
}

/// How one task of a finished stage ended, as the driver that owns its host sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskEnd<'a> {
    /// It succeeded.
    Ok,
    /// It failed (or its host was lost): `why`, with the attempts made; under
    /// `continue` (`continues`) the failure is only reported, the host goes on.
    Failed {
        /// What went wrong.
        why: String,
        /// The stage continues on failure: the host is not failed for it.
        continues: bool,
    },
    /// It never started.
    Skipped(&'a str),
}

/// The counts a stage ends with: tasks (or hosts) that succeeded, failed, never started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Succeeded.
    pub ok: usize,
    /// Failed.
    pub failed: usize,
    /// Never started.
    pub skipped: usize,
}

impl StageReport {
    /// Hand each task's end to `each` (with its index), in task order, and count them:
    /// the one reading of a stage's report that the runbook and task-list drivers share.
    pub fn tally(&self, options: &StageOptions, mut each: impl FnMut(usize, TaskEnd)) -> Tally {
        let mut tally = Tally::default();
        for (index, report) in self.tasks.iter().enumerate() {
            let end = match report {
                TaskReport::Ran {
                    outcome: TaskOutcome::Ok,
                    ..
                } => {
                    tally.ok += 1;
                    TaskEnd::Ok
                }
                TaskReport::Ran { .. } => {
                    tally.failed += 1;
                    TaskEnd::Failed {
                        why: report.failure().unwrap_or_default(),
                        continues: options.on_failure == FailurePolicy::Continue,
                    }
                }
                TaskReport::Skipped(why) => {
                    tally.skipped += 1;
                    TaskEnd::Skipped(why)
                }
            };
            each(index, end);
        }
        tally
    }

    /// Whether every task ran and succeeded.
    pub fn all_ok(&self) -> bool {
        self.tasks.iter().all(|t| {
            matches!(
                t,
                TaskReport::Ran {
                    outcome: TaskOutcome::Ok,
                    ..
                }
            )
        })
    }
}

/// One attempt to run: which task, which attempt (0 first), and its time limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// Index of the task in the stage.
    pub task: usize,
    /// 0 for the first attempt, then 1, 2, ...
    pub number: u32,
    /// The stage's per-task timeout, for the task to apply where it can kill its work
    /// (a remote command killed on the host, not merely abandoned).
    pub timeout: Option<Duration>,
}

/// Run the tasks of one stage, whose hosts are `hosts[i]`, by calling `run` for each
/// attempt. A task starts when the stage's limits leave room and every earlier task of
/// its host has started (so with `concurrency_per_host: 1` a host's tasks run in order).
/// No slot stays idle while a host with room has work, and a freed slot goes to the host
/// with the most rounds of work left, then to the task earliest in the list.
/// Once `cancel` fires, failed tasks are not retried.
pub async fn run_stage<F, Fut>(
    options: &StageOptions,
    hosts: &[String],
    cancel: &Cancel,
    run: F,
) -> StageReport
where
    F: Fn(Attempt) -> Fut,
    Fut: Future<Output = TaskOutcome> + Send + 'static,
{
    let total_hosts = hosts.iter().collect::<BTreeSet<_>>().len().max(1);
    let mut reports: Vec<Option<TaskReport>> = vec![None; hosts.len()];
    // Each host's waiting tasks, in list order: only the head of a queue may start.
    let mut queues: HashMap<&str, VecDeque<usize>> = HashMap::new();
    for (index, host) in hosts.iter().enumerate() {
        queues.entry(host.as_str()).or_default().push_back(index);
    }
    let mut running_on: HashMap<&str, usize> = HashMap::new();
    let mut dropped: BTreeSet<String> = BTreeSet::new();
    let mut failed_hosts = BTreeSet::new();
    let mut aborted = false;
    let mut running = JoinSet::new();
    let per_host = options.concurrency_per_host.map(|c| c.max(1));

    loop {
        if !aborted {
            for (host, queue) in queues.iter_mut() {
                if dropped.contains(*host) {
                    for index in queue.drain(..) {
                        reports[index] = Some(TaskReport::Skipped(format!(
                            "host `{host}` was dropped after a failure"
                        )));
                    }
                }
            }
            while options.concurrency.is_none_or(|c| running.len() < c.max(1)) {
                // A free slot goes to the host with the most rounds of work left (its
                // waiting tasks over its per-host limit): it finishes last otherwise, and
                // its tasks cannot run side by side to catch up. Ties go to the task
                // earliest in the list, so without a per-host limit the list order holds.
                let next = queues
                    .iter()
                    .filter(|(host, _)| {
                        per_host.is_none_or(|c| running_on.get(*host).copied().unwrap_or(0) < c)
                    })
                    .filter_map(|(host, queue)| {
                        let head = *queue.front()?;
                        let rounds = per_host.map_or(1, |c| queue.len().div_ceil(c));
                        Some((std::cmp::Reverse(rounds), head, *host))
                    })
                    .min();
                let Some((_, index, host)) = next else {
                    break;
                };
                if let Some(queue) = queues.get_mut(host) {
                    queue.pop_front();
                }
                *running_on.entry(host).or_default() += 1;
                let attempts = attempts(options, index, cancel, &run);
                running.spawn(async move { (index, attempts.await) });
            }
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        // A task that panicked is a toyc bug; report it as that task's failure when its
        // index is known, and do not lose the others.
        let (index, (outcome, attempts)) = match joined {
            Ok(done) => done,
            Err(e) => {
                tracing::error!("a task panicked: {e}");
                continue;
            }
        };
        let host = hosts[index].as_str();
        if let Some(count) = running_on.get_mut(host) {
            *count = count.saturating_sub(1);
        }
        if !outcome.is_ok() {
            failed_hosts.insert(host.to_owned());
            match options.on_failure {
                FailurePolicy::Abort => aborted = true,
                FailurePolicy::Isolate => {
                    dropped.insert(host.to_owned());
                    if let Some(limit) = options.max_fail_percent {
                        aborted |= failed_hosts.len() * 100 > usize::from(limit) * total_hosts;
                    }
                }
                FailurePolicy::Continue => {}
            }
        }
        reports[index] = Some(TaskReport::Ran { outcome, attempts });
    }
    let tasks = reports
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                TaskReport::Skipped("not started: an earlier task of the stage failed".into())
            })
        })
        .collect();
    StageReport {
        tasks,
        aborted,
        failed_hosts,
    }
}

/// Every attempt of task `index`: the first, then a retry after each failure while
/// retries remain, waiting `retry_delay` between them.
fn attempts<F, Fut>(
    options: &StageOptions,
    index: usize,
    cancel: &Cancel,
    run: &F,
) -> impl Future<Output = (TaskOutcome, u32)> + Send + 'static
where
    F: Fn(Attempt) -> Fut,
    Fut: Future<Output = TaskOutcome> + Send + 'static,
{
    // The futures are made up front (the closure is not 'static); each waits its turn.
    let futures: Vec<Fut> = (0..=options.retries)
        .map(|number| {
            run(Attempt {
                task: index,
                number,
                timeout: options.timeout,
            })
        })
        .collect();
    let delay = options.retry_delay;
    let cancel = cancel.clone();
    async move {
        let mut made = 0;
        let mut outcome = TaskOutcome::Failed("no attempt was made".into());
        for attempt in futures {
            if made > 0 {
                tokio::time::sleep(delay).await;
            }
            made += 1;
            outcome = attempt.await;
            if !matches!(outcome, TaskOutcome::Failed(_)) || cancel.is_cancelled() {
                break;
            }
        }
        (outcome, made)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    type Log = Arc<Mutex<Vec<(usize, u128, u128)>>>;
    type Task = std::pin::Pin<Box<dyn Future<Output = TaskOutcome> + Send>>;

    /// Tasks that sleep `ms` and record (task, start, end) in milliseconds since `t0`,
    /// failing where `fails(task, attempt)` says.
    fn probe(
        ms: u64,
        fails: impl Fn(usize, u32) -> bool + Send + Sync + 'static,
    ) -> (Log, impl Fn(Attempt) -> Task) {
        let log = Arc::new(Mutex::new(Vec::new()));
        let t0 = tokio::time::Instant::now();
        let fails = Arc::new(fails);
        let record = Arc::clone(&log);
        let run = move |attempt: Attempt| {
            let (log, fails) = (Arc::clone(&record), Arc::clone(&fails));
            Box::pin(async move {
                let start = t0.elapsed().as_millis();
                tokio::time::sleep(Duration::from_millis(ms)).await;
                let end = t0.elapsed().as_millis();
                log.lock().expect("log").push((attempt.task, start, end));
                if fails(attempt.task, attempt.number) {
                    TaskOutcome::Failed(format!("task {} failed", attempt.task))
                } else {
                    TaskOutcome::Ok
                }
            }) as Task
        };
        (log, run)
    }

    fn most_at_once(log: &[(usize, u128, u128)], filter: impl Fn(usize) -> bool) -> usize {
        log.iter()
            .filter(|(t, _, _)| filter(*t))
            .map(|&(_, start, _)| {
                log.iter()
                    .filter(|(t, s, e)| filter(*t) && *s <= start && start < *e)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    fn names(hosts: &[&str]) -> Vec<String> {
        hosts.iter().map(|h| (*h).to_owned()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn limits_are_never_exceeded_and_a_hosts_tasks_keep_their_order() {
        let hosts = names(&["a", "a", "a", "b", "b", "c", "c", "d"]);
        let (log, run) = probe(100, |_, _| false);
        let options = StageOptions {
            concurrency: Some(3),
            concurrency_per_host: Some(1),
            ..StageOptions::default()
        };
        let report = run_stage(&options, &hosts, &Cancel::new(), run).await;
        assert!(report.all_ok());
        let log = log.lock().expect("log").clone();
        assert_eq!(log.len(), 8);
        assert_eq!(most_at_once(&log, |_| true), 3);
        for host in ["a", "b", "c"] {
            let mine = |t: usize| hosts[t] == host;
            assert_eq!(most_at_once(&log, mine), 1, "host {host}");
            let order: Vec<usize> = log.iter().map(|e| e.0).filter(|&t| mine(t)).collect();
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(order, sorted, "host {host} keeps its order");
        }
    }

    /// 12 one-second tasks, 3 per host on 4 hosts, 3 at once and 1 per host: 12 task-seconds
    /// over 3 slots can finish at 4 s whatever the list order, and must: a host whose
    /// tasks come last in the list still gets a slot as soon as one frees.
    #[tokio::test(start_paused = true)]
    async fn a_free_slot_goes_to_a_host_with_work_left_so_the_stage_finishes_as_early_as_it_can() {
        let grouped = names(&["a", "a", "a", "b", "b", "b", "c", "c", "c", "d", "d", "d"]);
        let interleaved = names(&["a", "b", "c", "d", "a", "b", "c", "d", "a", "b", "c", "d"]);
        for hosts in [grouped, interleaved] {
            let (log, run) = probe(1000, |_, _| false);
            let options = StageOptions {
                concurrency: Some(3),
                concurrency_per_host: Some(1),
                ..StageOptions::default()
            };
            let report = run_stage(&options, &hosts, &Cancel::new(), run).await;
            assert!(report.all_ok());
            let log = log.lock().expect("log").clone();
            let finished = log.iter().map(|e| e.2).max().unwrap_or(0);
            assert_eq!(finished, 4000, "{hosts:?}: {log:?}");
            assert_eq!(most_at_once(&log, |_| true), 3);
            for host in ["a", "b", "c", "d"] {
                let mine = |t: usize| hosts[t] == host;
                assert_eq!(most_at_once(&log, mine), 1, "host {host}");
                let mut order: Vec<(u128, usize)> = log
                    .iter()
                    .filter(|e| mine(e.0))
                    .map(|e| (e.1, e.0))
                    .collect();
                order.sort_unstable();
                let tasks: Vec<usize> = order.iter().map(|e| e.1).collect();
                let mut sorted = tasks.clone();
                sorted.sort_unstable();
                assert_eq!(tasks, sorted, "host {host} keeps its order");
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn abort_starts_nothing_new_and_lets_running_tasks_finish() {
        // Six tasks, two at once; task 1 fails at 100 ms while task 0 runs.
        let hosts = names(&["h1", "h2", "h3", "h4", "h5", "h6"]);
        let log = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&log);
        let run = move |attempt: Attempt| {
            let log = Arc::clone(&record);
            async move {
                let ms = if attempt.task == 1 { 100 } else { 300 };
                tokio::time::sleep(Duration::from_millis(ms)).await;
                log.lock().expect("log").push(attempt.task);
                if attempt.task == 1 {
                    TaskOutcome::Failed("boom".into())
                } else {
                    TaskOutcome::Ok
                }
            }
        };
        let options = StageOptions {
            concurrency: Some(2),
            ..StageOptions::default()
        };
        let report = run_stage(&options, &hosts, &Cancel::new(), run).await;
        assert!(report.aborted);
        assert_eq!(*log.lock().expect("log"), vec![1, 0], "task 0 finished");
        assert!(matches!(
            report.tasks[0],
            TaskReport::Ran {
                outcome: TaskOutcome::Ok,
                ..
            }
        ));
        assert!(report.tasks[2..]
            .iter()
            .all(|t| matches!(t, TaskReport::Skipped(_))));
        assert_eq!(report.failed_hosts, BTreeSet::from(["h2".to_owned()]));
    }

    #[tokio::test(start_paused = true)]
    async fn isolate_drops_the_failed_host_and_the_others_go_on() {
        let hosts = names(&["a", "a", "b", "b"]);
        let (log, run) = probe(10, |task, _| task == 0);
        let options = StageOptions {
            on_failure: FailurePolicy::Isolate,
            concurrency_per_host: Some(1),
            ..StageOptions::default()
        };
        let report = run_stage(&options, &hosts, &Cancel::new(), run).await;
        assert!(!report.aborted);
        assert!(matches!(report.tasks[1], TaskReport::Skipped(_)));
        assert_eq!(log.lock().expect("log").len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn isolate_aborts_past_max_fail_percent() {
        // 4 hosts, one at a time; 25 % may fail, the second failure aborts.
        let hosts = names(&["a", "b", "c", "d"]);
        let (log, run) = probe(10, |task, _| task < 2);
        let options = StageOptions {
            concurrency: Some(1),
            on_failure: FailurePolicy::Isolate,
            max_fail_percent: Some(25),
            ..StageOptions::default()
        };
        let report = run_stage(&options, &hosts, &Cancel::new(), run).await;
        assert!(report.aborted);
        assert_eq!(log.lock().expect("log").len(), 2);
        assert!(matches!(report.tasks[3], TaskReport::Skipped(_)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_task_is_retried_after_the_delay() {
        let hosts = names(&["a"]);
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&calls);
        let (log, run) = probe(10, move |_, attempt| {
            counter.fetch_add(1, Ordering::SeqCst);
            attempt < 2
        });
        let options = StageOptions {
            retries: 3,
            retry_delay: Duration::from_secs(5),
            ..StageOptions::default()
        };
        let report = run_stage(&options, &hosts, &Cancel::new(), run).await;
        assert_eq!(
            report.tasks[0],
            TaskReport::Ran {
                outcome: TaskOutcome::Ok,
                attempts: 3
            }
        );
        let log = log.lock().expect("log").clone();
        assert!(log[1].1 >= log[0].2 + 5000, "waited the delay: {log:?}");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn policies_parse_by_name() {
        assert_eq!(FailurePolicy::parse("isolate"), Ok(FailurePolicy::Isolate));
        let err = FailurePolicy::parse("ignore").expect_err("unknown");
        assert!(err.contains("`abort`, `isolate` or `continue`"), "{err}");
    }
}
