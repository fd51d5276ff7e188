//! toyc's state store: what the long-lived services (the daemon first) keep between
//! runs and share between processes.
//!
//! - **deliveries**: every webhook delivery the daemon answered, with what became of it
//!   (queued, ignored, duplicate). The delivery id is unique: a delivery seen before
//!   queues nothing.
//! - **jobs and their queue**: a job is an opaque JSON payload (the daemon's job
//!   description) under a *key* (the role): at most one job per key runs at a time.
//!   Jobs queued by deliveries merge: the worker that claims the oldest queued job of a
//!   key folds the key's later queued ones into it with a function it passes, and they
//!   end as [`JobState::Merged`]. Merging when a job starts rather than when a delivery
//!   arrives keeps accepting a delivery a plain insert: deliveries for one role never
//!   wait for each other.
//! - **leases**: a worker that claims a job holds a lease it renews; a job whose lease
//!   expired is claimed again by another worker, which is told so ([`Claim::taken_over`]).
//!   Only the holder of the lease can finish a job, so none completes twice.
//! - **events**: each job's event log (the engine's JSON events), in order.
//! - **hosts**: bootstrap state, host key and last applied commit per host.
//! - **supervised programs** ([`ProgramStore`], `toyc supervise`): deployed, previous and
//!   bad commits, restart counts, the process group left running.
//!
//! Two implementations behind one trait, [`Store`]: SQLite (one file in the state
//! directory, WAL, the default) and PostgreSQL (several daemons on several machines
//! share one queue: `FOR UPDATE SKIP LOCKED`, leases, `LISTEN/NOTIFY`). [`open`] picks
//! one from a location: a `postgres://` (or `postgresql://`) URL, or else a file path.
//!
//! Times are Unix milliseconds. On PostgreSQL leases are measured by the server's
//! clock, so the machines sharing it need not agree on the time.
//!
//! ```no_run
//! # async fn example() -> Result<(), toyc_store::StoreError> {
//! use std::time::Duration;
//! use serde_json::Value;
//! use toyc_store::{NewJob, Outcome};
//!
//! fn newest(_queued: &Value, new: &Value) -> Value {
//!     new.clone()
//! }
//!
//! let store = toyc_store::open("/var/lib/toyc/state.db").await?;
//! let job = store.enqueue(NewJob { key: "web".into(), payload: "main".into() }).await?;
//! if let Some(claim) = store.claim("worker-1", Duration::from_secs(30), newest).await? {
//!     assert_eq!(claim.job.id, job);
//!     store.finish(job, "worker-1", Outcome::Succeeded, "ok".into()).await?;
//! }
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod postgres;
mod programs;
mod sqlite;

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use postgres::PostgresStore;
pub use programs::{open_programs, BadCommit, ProgramRecord, ProgramStore};
pub use sqlite::SqliteStore;

/// Opens the store at `location`: a `postgres://` or `postgresql://` URL connects to
/// PostgreSQL, anything else is the path of an SQLite file (created, with its parent
/// directories, when missing).
pub async fn open(location: &str) -> Result<Box<dyn Store>, StoreError> {
    if location.starts_with("postgres://") || location.starts_with("postgresql://") {
        Ok(Box::new(PostgresStore::connect(location).await?))
    } else {
        Ok(Box::new(SqliteStore::open(location).await?))
    }
}

/// Now, in Unix milliseconds.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
        })
}

/// A job's id, unique in its store.
pub type JobId = i64;

/// Why the store could not do what it was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store could not be opened or created (bad path, bad URL, server down).
    #[error("unable to open the store `{location}`: {reason}")]
    Open {
        /// The path or URL (with any password removed).
        location: String,
        /// What went wrong.
        reason: String,
    },
    /// A query failed (the database is gone, the disk is full, ...).
    #[error("the store failed: {0}")]
    Backend(String),
    /// No job has this id.
    #[error("no job #{0}")]
    NoSuchJob(JobId),
}

/// A webhook delivery as the daemon received it, before any git or SSH work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewDelivery {
    /// The git host's delivery id (`X-GitHub-Delivery`, `X-Gitea-Delivery`, GitLab's
    /// `Idempotency-Key` or a hash of the body): unique per store.
    pub id: String,
    /// `github`, `gitea` or `gitlab`.
    pub provider: String,
    /// The repository's full name as the git host sent it (`owner/name`).
    pub repo: String,
    /// The event (`push`, `ping`, ...).
    pub event: String,
    /// Why the delivery queues nothing when it is not a job (`"branch dev is not
    /// tracked"`); `None` when it is queued.
    pub ignored: Option<String>,
}

/// A job to queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewJob {
    /// At most one job per key runs at a time, and queued jobs with the same key merge
    /// (the daemon uses the role's name).
    pub key: String,
    /// What to run: opaque to the store.
    pub payload: Value,
}

/// What became of a delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Accepted {
    /// A new job was queued (it may be merged into an earlier queued job of its key
    /// when that one starts).
    Queued {
        /// The new job.
        job: JobId,
    },
    /// The delivery id was seen before: nothing was queued or recorded.
    Duplicate {
        /// The job the first delivery's job is now part of, if any.
        job: Option<JobId>,
    },
    /// Recorded as ignored; nothing queued.
    Ignored,
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for a worker.
    Queued,
    /// A worker holds its lease.
    Running,
    /// Finished, every host ok or changed.
    Succeeded,
    /// Finished with a failure.
    Failed,
    /// Cancelled before or while running.
    Cancelled,
    /// Folded, while queued, into an earlier queued job of its key when that one started
    /// ([`Job::merged_into`]): it runs as part of that job.
    Merged,
}

impl JobState {
    /// Whether the job is over.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Cancelled | Self::Merged
        )
    }
}

/// How a worker ended a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every host ok or changed.
    Succeeded,
    /// Something failed.
    Failed,
    /// Stopped by a cancel request.
    Cancelled,
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Its id.
    pub id: JobId,
    /// Its key (the role).
    pub key: String,
    /// What to run.
    pub payload: Value,
    /// Where it is.
    pub state: JobState,
    /// When it was queued (Unix milliseconds).
    pub created_ms: i64,
    /// When the last claim started it.
    pub started_ms: Option<i64>,
    /// When it ended.
    pub finished_ms: Option<i64>,
    /// The worker holding (or that last held) its lease.
    pub worker: Option<String>,
    /// How many times it was claimed (2 and more: taken up again after a worker died).
    pub attempts: i64,
    /// Whether a cancel was asked for while it ran.
    pub cancel_requested: bool,
    /// What the worker recorded when it finished (the run's report, or an error).
    pub result: Option<Value>,
    /// The deliveries that queued it or a job merged into it, oldest first.
    pub deliveries: Vec<String>,
    /// When it was merged: the job it runs as part of.
    pub merged_into: Option<JobId>,
}

/// A job a worker claimed.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    /// The job, now running under the claiming worker.
    pub job: Job,
    /// When the job was running under another worker whose lease expired: that worker.
    pub taken_over: Option<String>,
}

/// What renewing a lease found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    /// Still held, renewed.
    Held,
    /// Held, and a cancel was asked for: stop the run, then finish as cancelled.
    CancelRequested,
    /// Lost: another worker took the job over (this one was too slow to renew); stop
    /// without finishing.
    Lost,
}

/// A job's event, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// 1, 2, 3, ... within the job.
    pub seq: i64,
    /// Unix milliseconds.
    pub at_ms: i64,
    /// The event (one of the engine's JSON event lines).
    pub event: Value,
}

/// A delivery as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// The delivery as received.
    #[serde(flatten)]
    pub delivery: NewDelivery,
    /// Unix milliseconds.
    pub received_ms: i64,
    /// The job it queued, or the one that job was merged into.
    pub job: Option<JobId>,
}

/// What the store knows of a host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostRecord {
    /// The host's inventory name.
    pub name: String,
    /// When it was bootstrapped (Unix milliseconds); `None`: never.
    pub bootstrapped_ms: Option<i64>,
    /// Its SSH host key as recorded at bootstrap (`ssh-ed25519 AAAA...`).
    pub host_key: Option<String>,
    /// The last role applied, and its commit.
    pub role: Option<String>,
    /// The last applied commit.
    pub applied_commit: Option<String>,
    /// When it was applied (Unix milliseconds).
    pub applied_ms: Option<i64>,
}

/// A delivery waiting for the transaction that accepts it with others (group commit),
/// and where its answer goes.
pub(crate) struct PendingAccept {
    delivery: NewDelivery,
    job: Option<NewJob>,
    answer: tokio::sync::oneshot::Sender<Result<Accepted, StoreError>>,
}

/// At most this many deliveries share a transaction.
pub(crate) const MAX_BATCH: usize = 64;

/// Wakes the waiting ones now, and leaves a permit for a worker that is between a
/// fruitless claim and its wait.
pub(crate) fn poke(work: &tokio::sync::Notify) {
    work.notify_waiters();
    work.notify_one();
}

/// Hands a delivery to a store's accepting task (`accepts`) and waits for its answer.
pub(crate) async fn accept_in_batch(
    accepts: &tokio::sync::mpsc::Sender<PendingAccept>,
    delivery: NewDelivery,
    job: Option<NewJob>,
) -> Result<Accepted, StoreError> {
    let (answer, answered) = tokio::sync::oneshot::channel();
    let gone = || StoreError::Backend("the store's accepting task stopped".to_string());
    accepts
        .send(PendingAccept {
            delivery,
            job,
            answer,
        })
        .await
        .map_err(|_| gone())?;
    answered.await.map_err(|_| gone())?
}

/// Merges the payload of a later queued job into an earlier one's with the same key;
/// returns the merged payload.
pub type Merge = fn(&Value, &Value) -> Value;

/// The state store. Every method is one transaction.
#[async_trait]
pub trait Store: Send + Sync {
    /// Records a delivery and, with `job`, queues it as a job that merges (see
    /// [`Store::claim`]), in one transaction committed before this returns. A delivery id
    /// seen before records nothing.
    async fn accept(
        &self,
        delivery: NewDelivery,
        job: Option<NewJob>,
    ) -> Result<Accepted, StoreError>;

    /// Queues a job with no delivery (a deliberate re-run, a workflow run): never merged,
    /// never deduplicated.
    async fn enqueue(&self, job: NewJob) -> Result<JobId, StoreError>;

    /// Claims the oldest job that may run now for `lease`: the oldest queued job of a key
    /// with no running job, or a running job whose lease expired (then
    /// [`Claim::taken_over`] names the worker that lost it; a queued job of that key
    /// waits until the taken over one ends). `None` when there is none.
    ///
    /// A queued job that came from a delivery takes in the later queued delivery jobs
    /// of its key: its payload becomes `merge(merge(first, second), third)...` in
    /// queue order, their deliveries become its own, and they end as
    /// [`JobState::Merged`].
    async fn claim(
        &self,
        worker: &str,
        lease: Duration,
        merge: Merge,
    ) -> Result<Option<Claim>, StoreError>;

    /// Renews `worker`'s lease on `job` for `lease` from now.
    async fn renew(&self, job: JobId, worker: &str, lease: Duration) -> Result<Lease, StoreError>;

    /// Ends a job `worker` holds, with its result. `false` (and nothing written) when the
    /// worker no longer holds it.
    async fn finish(
        &self,
        job: JobId,
        worker: &str,
        outcome: Outcome,
        result: Value,
    ) -> Result<bool, StoreError>;

    /// Gives a running job back to the queue (shutdown before it could finish), so
    /// another worker takes it up at once. `false` when `worker` does not hold it.
    async fn release(&self, job: JobId, worker: &str) -> Result<bool, StoreError>;

    /// Cancels a job: a queued one at once, a running one by flagging it (its worker
    /// sees [`Lease::CancelRequested`] at its next renewal). Returns its state after.
    async fn cancel(&self, job: JobId) -> Result<JobState, StoreError>;

    /// Appends an event to a job's log.
    async fn append_event(&self, job: JobId, event: Value) -> Result<(), StoreError>;

    /// A job's events with `seq > after`, in order.
    async fn events(&self, job: JobId, after: i64) -> Result<Vec<StoredEvent>, StoreError>;

    /// One job.
    async fn job(&self, job: JobId) -> Result<Option<Job>, StoreError>;

    /// The newest `limit` jobs, newest first.
    async fn jobs(&self, limit: usize) -> Result<Vec<Job>, StoreError>;

    /// The newest `limit` deliveries, newest first.
    async fn deliveries(&self, limit: usize) -> Result<Vec<Delivery>, StoreError>;

    /// One host.
    async fn host(&self, name: &str) -> Result<Option<HostRecord>, StoreError>;

    /// Every host the store knows, by name.
    async fn hosts(&self) -> Result<Vec<HostRecord>, StoreError>;

    /// Records that a host was bootstrapped, with its host key.
    async fn record_bootstrap(&self, host: &str, host_key: Option<&str>) -> Result<(), StoreError>;

    /// Records the commit of `role` a host now runs.
    async fn record_applied(&self, host: &str, role: &str, commit: &str) -> Result<(), StoreError>;

    /// Waits until a job may be claimable (a job was queued, finished or released, in
    /// this process or, on PostgreSQL, any other), or `timeout` passes.
    async fn wait_for_work(&self, timeout: Duration);
}
