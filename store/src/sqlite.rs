//! The SQLite store: one file (the default, in the state directory), WAL, one
//! connection per handle, its blocking calls on tokio's blocking threads.
//!
//! Several processes may open the same file (a daemon restarted while the old one is
//! still dying): every write is a `BEGIN IMMEDIATE` transaction, so SQLite's file lock
//! serializes claims across processes, and `busy_timeout` makes a writer wait its turn
//! rather than fail. With `synchronous=NORMAL` under WAL a committed transaction
//! survives the process being killed (not a power cut, which the daemon does not
//! promise).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde_json::Value;
use tokio::sync::{mpsc, Mutex, Notify};

use crate::{
    accept_in_batch, now_ms, poke, Accepted, Claim, Delivery, HostRecord, Job, JobId, JobState,
    Lease, Merge, NewDelivery, NewJob, Outcome, PendingAccept, Store, StoreError, StoredEvent,
    MAX_BATCH,
};

/// The schema this build writes; [`SqliteStore::open`] refuses a newer one.
const SCHEMA_VERSION: i64 = 2;

/// What each version after 1 adds, applied in order to a store at an older version.
const MIGRATIONS: &[(i64, &str)] = &[(
    2,
    // Merging moved from accepting a delivery to claiming a job: which jobs merge, into
    // which job a merged one went, and an index for the claim's "oldest queued job of
    // its key" (one probe however many are queued).
    "ALTER TABLE jobs ADD COLUMN mergeable INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE jobs ADD COLUMN merged_into INTEGER REFERENCES jobs (id);
     CREATE INDEX jobs_key_state_id ON jobs (key, state, id);",
)];

/// Version 1. `jobs_one_running_per_key` is the last guard of "one run per role": the
/// claim query already skips keys with a running job.
const SCHEMA: &str = "
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    started_ms INTEGER,
    finished_ms INTEGER,
    worker TEXT,
    lease_until_ms INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    result TEXT
);
CREATE INDEX jobs_state_key ON jobs (state, key);
CREATE UNIQUE INDEX jobs_one_running_per_key ON jobs (key) WHERE state = 'running';
CREATE TABLE deliveries (
    n INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    provider TEXT NOT NULL,
    repo TEXT NOT NULL,
    event TEXT NOT NULL,
    ignored TEXT,
    received_ms INTEGER NOT NULL,
    job INTEGER REFERENCES jobs (id)
);
CREATE INDEX deliveries_job ON deliveries (job);
CREATE TABLE events (
    job INTEGER NOT NULL REFERENCES jobs (id),
    seq INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (job, seq)
);
CREATE TABLE hosts (
    name TEXT PRIMARY KEY,
    bootstrapped_ms INTEGER,
    host_key TEXT,
    role TEXT,
    applied_commit TEXT,
    applied_ms INTEGER
);
";

/// The columns [`job_from_row`] reads, in its order.
const JOB_COLUMNS: &str = "id, key, payload, state, created_ms, started_ms, finished_ms, \
     worker, attempts, cancel_requested, result, merged_into";

/// How long a writer waits for another process's transaction before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The SQLite store. Each handle has its own connection; handles on the same file (in
/// one process or several) share its queue.
pub struct SqliteStore {
    /// The connection. A tokio mutex: waiting for it blocks no thread, and its guard
    /// can go to the blocking thread that uses the connection.
    conn: Arc<Mutex<Connection>>,
    /// The file, for messages.
    path: PathBuf,
    /// Poked by whatever may make a job claimable in this process (shared by every
    /// handle on the same file, see [`wake_ups`]); other processes are seen when
    /// `wait_for_work` times out.
    work: Arc<Notify>,
    /// Deliveries to accept, to the task that commits them in batches.
    accepts: mpsc::Sender<PendingAccept>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

pub(crate) fn backend(error: rusqlite::Error) -> StoreError {
    StoreError::Backend(error.to_string())
}

fn joined(error: tokio::task::JoinError) -> StoreError {
    StoreError::Backend(format!("a store thread died: {error}"))
}

impl SqliteStore {
    /// Opens (creating it and its parent directories when missing) the store in the file
    /// `path`, and creates or checks its schema.
    pub async fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        let at = path.clone();
        let conn = tokio::task::spawn_blocking(move || open_blocking(&at))
            .await
            .map_err(joined)?
            .map_err(|reason| StoreError::Open {
                location: path.display().to_string(),
                reason,
            })?;
        let work = wake_ups(&path);
        let conn = Arc::new(Mutex::new(conn));
        let (accepts, pending) = mpsc::channel(1024);
        tokio::spawn(accept_batches(conn.clone(), work.clone(), pending));
        Ok(SqliteStore {
            conn,
            path,
            work,
            accepts,
        })
    }

    /// Runs `f` on the connection, on a blocking thread.
    pub(crate) async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        // The guard goes to the blocking thread: a caller dropped while waiting for
        // it cannot leave a transaction half done.
        let mut guard = self.conn.clone().lock_owned().await;
        tokio::task::spawn_blocking(move || f(&mut guard))
            .await
            .map_err(joined)?
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction, committed when it returns `Ok`.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, i64) -> Result<T, StoreError> + Send + 'static,
    {
        self.call(move |conn| {
            begin(conn)?;
            let result = f(conn, now_ms());
            end(conn, result)
        })
        .await
    }

    /// Wakes this process's `wait_for_work`: the waiting ones now, and leaves a permit
    /// for a worker that is between a fruitless claim and its wait.
    fn poke(&self) {
        poke(&self.work);
    }
}

/// The wake-ups of the store in the file `path`: one per file and process, so that a
/// change through one handle wakes the waiters of every handle on the same file.
fn wake_ups(path: &Path) -> Arc<Notify> {
    static BY_FILE: std::sync::Mutex<Vec<(PathBuf, Weak<Notify>)>> =
        std::sync::Mutex::new(Vec::new());
    // The file exists now (`open` created it): its canonical path names it.
    let file = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mut by_file = BY_FILE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    by_file.retain(|(_, work)| work.strong_count() > 0);
    if let Some(work) = by_file
        .iter()
        .find(|(known, _)| *known == file)
        .and_then(|(_, work)| work.upgrade())
    {
        return work;
    }
    let work = Arc::new(Notify::new());
    by_file.push((file, Arc::downgrade(&work)));
    work
}

fn begin(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(backend)
}

/// Commits after `Ok`, rolls back after `Err`.
fn end<T>(conn: &Connection, result: Result<T, StoreError>) -> Result<T, StoreError> {
    match result {
        Ok(value) => {
            conn.execute_batch("COMMIT").map_err(backend)?;
            Ok(value)
        }
        Err(error) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(error)
        }
    }
}

fn open_blocking(path: &Path) -> Result<Connection, String> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|error| {
            format!(
                "cannot create its directory `{}`: {error}",
                parent.display()
            )
        })?;
    }
    let conn = Connection::open(path).map_err(|e| e.to_string())?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| e.to_string())?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(|e| e.to_string())?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(format!(
            "SQLite refused write-ahead logging (journal mode `{mode}`): put the store on a local file system"
        ));
    }
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
        .map_err(|e| e.to_string())?;
    // Two processes opening a new file at once: the IMMEDIATE transaction makes one
    // create the schema and the other see it.
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(|e| e.to_string())?;
    let schema = (|| -> Result<(), String> {
        let exists: bool = conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version')",
                [],
                |row| row.get(0),
            )
            .map_err(|e| e.to_string())?;
        // The supervisor's tables came after version 1: created in any store that lacks
        // them, old or new.
        conn.execute_batch(crate::programs::SQLITE_SCHEMA)
            .map_err(|e| e.to_string())?;
        if !exists {
            conn.execute_batch(SCHEMA).map_err(|e| e.to_string())?;
            conn.execute("INSERT INTO schema_version (version) VALUES (1)", [])
                .map_err(|e| e.to_string())?;
        }
        let version: i64 = conn
            .query_row("SELECT max(version) FROM schema_version", [], |row| {
                row.get::<_, Option<i64>>(0)
            })
            .map_err(|e| e.to_string())?
            .unwrap_or(0);
        if version > SCHEMA_VERSION {
            return Err(format!(
                "it has schema version {version}, this toyc knows up to {SCHEMA_VERSION}: run a newer toyc"
            ));
        }
        for (to, migration) in MIGRATIONS.iter().filter(|(to, _)| *to > version) {
            conn.execute_batch(migration)
                .and_then(|()| {
                    conn.execute("INSERT INTO schema_version (version) VALUES (?1)", [to])
                })
                .map_err(|e| format!("cannot upgrade it to schema version {to}: {e}"))?;
        }
        Ok(())
    })();
    end(&conn, schema.map_err(StoreError::Backend)).map_err(|error| match error {
        StoreError::Backend(reason) => reason,
        other => other.to_string(),
    })?;
    Ok(conn)
}

fn state_name(state: JobState) -> &'static str {
    match state {
        JobState::Queued => "queued",
        JobState::Running => "running",
        JobState::Succeeded => "succeeded",
        JobState::Failed => "failed",
        JobState::Cancelled => "cancelled",
        JobState::Merged => "merged",
    }
}

pub(crate) fn parse_state(name: &str) -> Option<JobState> {
    Some(match name {
        "queued" => JobState::Queued,
        "running" => JobState::Running,
        "succeeded" => JobState::Succeeded,
        "failed" => JobState::Failed,
        "cancelled" => JobState::Cancelled,
        "merged" => JobState::Merged,
        _ => return None,
    })
}

fn outcome_state(outcome: Outcome) -> JobState {
    match outcome {
        Outcome::Succeeded => JobState::Succeeded,
        Outcome::Failed => JobState::Failed,
        Outcome::Cancelled => JobState::Cancelled,
    }
}

/// A column that holds JSON text.
fn json_column(row: &Row<'_>, index: usize) -> rusqlite::Result<Value> {
    let text: String = row.get(index)?;
    serde_json::from_str(&text).map_err(|error| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, error.into())
    })
}

fn job_from_row(row: &Row<'_>) -> rusqlite::Result<Job> {
    let state: String = row.get(3)?;
    let result: Option<String> = row.get(10)?;
    Ok(Job {
        id: row.get(0)?,
        key: row.get(1)?,
        payload: json_column(row, 2)?,
        state: parse_state(&state).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                3,
                rusqlite::types::Type::Text,
                format!("unknown job state `{state}`").into(),
            )
        })?,
        created_ms: row.get(4)?,
        started_ms: row.get(5)?,
        finished_ms: row.get(6)?,
        worker: row.get(7)?,
        attempts: row.get(8)?,
        cancel_requested: row.get(9)?,
        result: result
            .map(|text| serde_json::from_str(&text))
            .transpose()
            .map_err(|error| {
                rusqlite::Error::FromSqlConversionFailure(
                    10,
                    rusqlite::types::Type::Text,
                    error.into(),
                )
            })?,
        deliveries: Vec::new(),
        merged_into: row.get(11)?,
    })
}

/// One job with its deliveries.
fn load_job(conn: &Connection, id: JobId) -> Result<Option<Job>, StoreError> {
    let job = conn
        .query_row(
            &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"),
            [id],
            job_from_row,
        )
        .optional()
        .map_err(backend)?;
    job.map(|job| with_deliveries(conn, job)).transpose()
}

fn with_deliveries(conn: &Connection, mut job: Job) -> Result<Job, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT id FROM deliveries WHERE job = ?1 ORDER BY n")
        .map_err(backend)?;
    job.deliveries = stmt
        .query_map([job.id], |row| row.get(0))
        .map_err(backend)?
        .collect::<rusqlite::Result<_>>()
        .map_err(backend)?;
    Ok(job)
}

/// The running job's state, worker and cancel flag; `NoSuchJob` when there is no job.
fn lease_row(conn: &Connection, id: JobId) -> Result<(JobState, Option<String>, bool), StoreError> {
    let row: Option<(String, Option<String>, bool)> = conn
        .query_row(
            "SELECT state, worker, cancel_requested FROM jobs WHERE id = ?1",
            [id],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()
        .map_err(backend)?;
    let (state, worker, cancel) = row.ok_or(StoreError::NoSuchJob(id))?;
    let state = parse_state(&state)
        .ok_or_else(|| StoreError::Backend(format!("job #{id} has an unknown state `{state}`")))?;
    Ok((state, worker, cancel))
}

fn holds(state: JobState, holder: Option<&str>, worker: &str) -> bool {
    state == JobState::Running && holder == Some(worker)
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn insert_delivery(
    conn: &Connection,
    delivery: &NewDelivery,
    now: i64,
    job: Option<JobId>,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO deliveries (id, provider, repo, event, ignored, received_ms, job)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .and_then(|mut insert| {
        insert.execute(params![
            delivery.id,
            delivery.provider,
            delivery.repo,
            delivery.event,
            delivery.ignored,
            now,
            job
        ])
    })
    .map_err(backend)?;
    Ok(())
}

/// Queues `job`; `mergeable`: it came from a delivery, and merges with the key's other
/// such jobs when one of them is claimed.
fn insert_job(
    conn: &Connection,
    job: &NewJob,
    mergeable: bool,
    now: i64,
) -> Result<JobId, StoreError> {
    conn.prepare_cached(
        "INSERT INTO jobs (key, payload, state, created_ms, mergeable)
         VALUES (?1, ?2, 'queued', ?3, ?4)",
    )
    .and_then(|mut insert| {
        insert.execute(params![job.key, job.payload.to_string(), now, mergeable])
    })
    .map_err(backend)?;
    Ok(conn.last_insert_rowid())
}

/// Folds the later queued mergeable jobs of `claimed`'s key into it (see
/// [`Store::claim`]); returns how many.
fn merge_later_jobs(
    conn: &Connection,
    claimed: JobId,
    merge: Merge,
    now: i64,
) -> Result<usize, StoreError> {
    let (key, mergeable, mut payload): (String, bool, Value) = conn
        .query_row(
            "SELECT key, mergeable, payload FROM jobs WHERE id = ?1",
            [claimed],
            |row| Ok((row.get(0)?, row.get(1)?, json_column(row, 2)?)),
        )
        .map_err(backend)?;
    if !mergeable {
        return Ok(0);
    }
    let later: Vec<(JobId, Value)> = {
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, payload FROM jobs
                 WHERE key = ?1 AND state = 'queued' AND mergeable AND id > ?2 ORDER BY id",
            )
            .map_err(backend)?;
        let rows = stmt
            .query_map(params![key, claimed], |row| {
                Ok((row.get(0)?, json_column(row, 1)?))
            })
            .map_err(backend)?;
        rows.collect::<rusqlite::Result<_>>().map_err(backend)?
    };
    for (id, later_payload) in &later {
        payload = merge(&payload, later_payload);
        conn.execute(
            "UPDATE jobs SET state = 'merged', merged_into = ?1, finished_ms = ?2 WHERE id = ?3",
            params![claimed, now, id],
        )
        .map_err(backend)?;
        conn.execute(
            "UPDATE deliveries SET job = ?1 WHERE job = ?2",
            params![claimed, id],
        )
        .map_err(backend)?;
    }
    if !later.is_empty() {
        conn.execute(
            "UPDATE jobs SET payload = ?1 WHERE id = ?2",
            params![payload.to_string(), claimed],
        )
        .map_err(backend)?;
    }
    Ok(later.len())
}

/// Accepts deliveries as they come, those that arrived while the previous transaction
/// ran in one transaction together (one blocking hop, one commit: the pages they
/// share go to the WAL once). Each delivery has a savepoint of its own, so that one
/// that fails fails alone. Ends when the store is dropped.
async fn accept_batches(
    conn: Arc<Mutex<Connection>>,
    work: Arc<Notify>,
    mut pending: mpsc::Receiver<PendingAccept>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while pending.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (inputs, answers): (Vec<_>, Vec<_>) = batch
            .drain(..)
            .map(|p| ((p.delivery, p.job), p.answer))
            .unzip();
        let count = inputs.len();
        let mut guard = conn.clone().lock_owned().await;
        let results = tokio::task::spawn_blocking(move || accept_all(&mut guard, inputs))
            .await
            .unwrap_or_else(|error| {
                let error = joined(error).to_string();
                (0..count)
                    .map(|_| Err(StoreError::Backend(error.clone())))
                    .collect()
            });
        if results.iter().any(|result| matches!(result, Ok((_, true)))) {
            poke(&work);
        }
        for (answer, result) in answers.into_iter().zip(results) {
            // The caller may have gone (its connection closed): its delivery is stored
            // all the same.
            let _ = answer.send(result.map(|(accepted, _)| accepted));
        }
    }
}

/// Accepts `inputs` in one transaction: each delivery's answer, and whether its job may
/// be claimed now.
fn accept_all(
    conn: &mut Connection,
    inputs: Vec<(NewDelivery, Option<NewJob>)>,
) -> Vec<Result<(Accepted, bool), StoreError>> {
    if let Err(error) = begin(conn) {
        let error = error.to_string();
        return inputs
            .iter()
            .map(|_| Err(StoreError::Backend(error.clone())))
            .collect();
    }
    let now = now_ms();
    let mut results = Vec::with_capacity(inputs.len());
    for (delivery, job) in &inputs {
        let result = conn
            .execute_batch("SAVEPOINT delivery")
            .map_err(backend)
            .and_then(|()| accept_one(conn, delivery, job.as_ref(), now));
        let end = if result.is_ok() {
            "RELEASE delivery"
        } else {
            "ROLLBACK TO delivery; RELEASE delivery"
        };
        let _ = conn.execute_batch(end);
        results.push(result);
    }
    match end(conn, Ok(())) {
        Ok(()) => results,
        Err(error) => {
            let error = error.to_string();
            results
                .iter()
                .map(|_| Err(StoreError::Backend(error.clone())))
                .collect()
        }
    }
}

/// One delivery, within the batch's transaction.
fn accept_one(
    conn: &Connection,
    delivery: &NewDelivery,
    job: Option<&NewJob>,
    now: i64,
) -> Result<(Accepted, bool), StoreError> {
    let earlier: Option<Option<JobId>> = conn
        .prepare_cached("SELECT job FROM deliveries WHERE id = ?1")
        .and_then(|mut seen| seen.query_row([&delivery.id], |row| row.get(0)).optional())
        .map_err(backend)?;
    if let Some(job) = earlier {
        return Ok((Accepted::Duplicate { job }, false));
    }
    let Some(job) = job else {
        insert_delivery(conn, delivery, now, None)?;
        return Ok((Accepted::Ignored, false));
    };
    // Behind another job of its key, it is merged or claimed when that one is claimed
    // or ends (which wakes the workers): no wake-up now.
    let busy: bool = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM jobs WHERE key = ?1 AND state IN ('queued', 'running'))",
        )
        .and_then(|mut busy| busy.query_row([&job.key], |row| row.get(0)))
        .map_err(backend)?;
    let id = insert_job(conn, job, true, now)?;
    insert_delivery(conn, delivery, now, Some(id))?;
    Ok((Accepted::Queued { job: id }, !busy))
}

#[async_trait]
impl Store for SqliteStore {
    async fn accept(
        &self,
        delivery: NewDelivery,
        job: Option<NewJob>,
    ) -> Result<Accepted, StoreError> {
        accept_in_batch(&self.accepts, delivery, job).await
    }

    async fn enqueue(&self, job: NewJob) -> Result<JobId, StoreError> {
        let id = self
            .write(move |conn, now| insert_job(conn, &job, false, now))
            .await?;
        self.poke();
        Ok(id)
    }

    async fn claim(
        &self,
        worker: &str,
        lease: Duration,
        merge: Merge,
    ) -> Result<Option<Claim>, StoreError> {
        let worker = worker.to_string();
        self.write(move |conn, now| {
            // A queued job waits while its key has a running job, live or not (a dead
            // worker's job is taken over, the second arm, before the next one starts),
            // and while an older job of its key is queued.
            let found: Option<(JobId, String, Option<String>)> = conn
                .query_row(
                    "SELECT id, state, worker FROM jobs AS j
                     WHERE (state = 'queued'
                            AND NOT EXISTS (SELECT 1 FROM jobs AS r
                                            WHERE r.key = j.key AND r.state = 'running')
                            AND NOT EXISTS (SELECT 1 FROM jobs AS q
                                            WHERE q.key = j.key AND q.state = 'queued' AND q.id < j.id))
                        OR (state = 'running' AND lease_until_ms <= ?1)
                     ORDER BY id LIMIT 1",
                    [now],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .optional()
                .map_err(backend)?;
            let Some((id, state, previous)) = found else {
                return Ok(None);
            };
            if state == "queued" {
                merge_later_jobs(conn, id, merge, now)?;
            }
            conn.execute(
                "UPDATE jobs SET state = 'running', worker = ?1, lease_until_ms = ?2,
                     started_ms = ?3, attempts = attempts + 1
                 WHERE id = ?4",
                params![worker, now.saturating_add(millis(lease)), now, id],
            )
            .map_err(backend)?;
            let job = load_job(conn, id)?.ok_or(StoreError::NoSuchJob(id))?;
            let taken_over = if state == "running" { previous } else { None };
            Ok(Some(Claim { job, taken_over }))
        })
        .await
    }

    async fn renew(&self, job: JobId, worker: &str, lease: Duration) -> Result<Lease, StoreError> {
        let worker = worker.to_string();
        self.write(move |conn, now| {
            let (state, holder, cancel) = lease_row(conn, job)?;
            if !holds(state, holder.as_deref(), &worker) {
                return Ok(Lease::Lost);
            }
            conn.execute(
                "UPDATE jobs SET lease_until_ms = ?1 WHERE id = ?2",
                params![now.saturating_add(millis(lease)), job],
            )
            .map_err(backend)?;
            Ok(if cancel {
                Lease::CancelRequested
            } else {
                Lease::Held
            })
        })
        .await
    }

    async fn finish(
        &self,
        job: JobId,
        worker: &str,
        outcome: Outcome,
        result: Value,
    ) -> Result<bool, StoreError> {
        let worker = worker.to_string();
        let finished = self
            .write(move |conn, now| {
                let (state, holder, _) = lease_row(conn, job)?;
                if !holds(state, holder.as_deref(), &worker) {
                    return Ok(false);
                }
                conn.execute(
                    "UPDATE jobs SET state = ?1, finished_ms = ?2, result = ?3, lease_until_ms = NULL
                     WHERE id = ?4",
                    params![
                        state_name(outcome_state(outcome)),
                        now,
                        result.to_string(),
                        job
                    ],
                )
                .map_err(backend)?;
                Ok(true)
            })
            .await?;
        if finished {
            self.poke();
        }
        Ok(finished)
    }

    async fn release(&self, job: JobId, worker: &str) -> Result<bool, StoreError> {
        let worker = worker.to_string();
        let released = self
            .write(move |conn, now| {
                let (state, holder, cancel) = lease_row(conn, job)?;
                if !holds(state, holder.as_deref(), &worker) {
                    return Ok(false);
                }
                // A job whose cancel was asked for is not worth running again.
                if cancel {
                    conn.execute(
                        "UPDATE jobs SET state = 'cancelled', finished_ms = ?1, lease_until_ms = NULL
                         WHERE id = ?2",
                        params![now, job],
                    )
                } else {
                    conn.execute(
                        "UPDATE jobs SET state = 'queued', lease_until_ms = NULL WHERE id = ?1",
                        [job],
                    )
                }
                .map_err(backend)?;
                Ok(true)
            })
            .await?;
        if released {
            self.poke();
        }
        Ok(released)
    }

    async fn cancel(&self, job: JobId) -> Result<JobState, StoreError> {
        let state = self
            .write(move |conn, now| {
                let (state, _, _) = lease_row(conn, job)?;
                match state {
                    JobState::Queued => {
                        conn.execute(
                            "UPDATE jobs SET state = 'cancelled', finished_ms = ?1 WHERE id = ?2",
                            params![now, job],
                        )
                        .map_err(backend)?;
                        Ok(JobState::Cancelled)
                    }
                    JobState::Running => {
                        conn.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?1", [job])
                            .map_err(backend)?;
                        Ok(JobState::Running)
                    }
                    done => Ok(done),
                }
            })
            .await?;
        self.poke();
        Ok(state)
    }

    async fn append_event(&self, job: JobId, event: Value) -> Result<(), StoreError> {
        self.write(move |conn, now| {
            lease_row(conn, job)?;
            conn.execute(
                "INSERT INTO events (job, seq, at_ms, event)
                 VALUES (?1, (SELECT coalesce(max(seq), 0) + 1 FROM events WHERE job = ?1), ?2, ?3)",
                params![job, now, event.to_string()],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn events(&self, job: JobId, after: i64) -> Result<Vec<StoredEvent>, StoreError> {
        self.call(move |conn| {
            lease_row(conn, job)?;
            let mut stmt = conn
                .prepare_cached(
                    "SELECT seq, at_ms, event FROM events WHERE job = ?1 AND seq > ?2 ORDER BY seq",
                )
                .map_err(backend)?;
            let events = stmt
                .query_map(params![job, after], |row| {
                    Ok(StoredEvent {
                        seq: row.get(0)?,
                        at_ms: row.get(1)?,
                        event: json_column(row, 2)?,
                    })
                })
                .map_err(backend)?
                .collect::<rusqlite::Result<_>>()
                .map_err(backend)?;
            Ok(events)
        })
        .await
    }

    async fn job(&self, job: JobId) -> Result<Option<Job>, StoreError> {
        self.call(move |conn| load_job(conn, job)).await
    }

    async fn jobs(&self, limit: usize) -> Result<Vec<Job>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.call(move |conn| {
            let jobs: Vec<Job> = {
                let mut stmt = conn
                    .prepare_cached(&format!(
                        "SELECT {JOB_COLUMNS} FROM jobs ORDER BY id DESC LIMIT ?1"
                    ))
                    .map_err(backend)?;
                let rows = stmt.query_map([limit], job_from_row).map_err(backend)?;
                rows.collect::<rusqlite::Result<_>>().map_err(backend)?
            };
            jobs.into_iter()
                .map(|job| with_deliveries(conn, job))
                .collect()
        })
        .await
    }

    async fn deliveries(&self, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.call(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, provider, repo, event, ignored, received_ms, job
                     FROM deliveries ORDER BY n DESC LIMIT ?1",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map([limit], |row| {
                    Ok(Delivery {
                        delivery: NewDelivery {
                            id: row.get(0)?,
                            provider: row.get(1)?,
                            repo: row.get(2)?,
                            event: row.get(3)?,
                            ignored: row.get(4)?,
                        },
                        received_ms: row.get(5)?,
                        job: row.get(6)?,
                    })
                })
                .map_err(backend)?;
            rows.collect::<rusqlite::Result<_>>().map_err(backend)
        })
        .await
    }

    async fn host(&self, name: &str) -> Result<Option<HostRecord>, StoreError> {
        let name = name.to_string();
        self.call(move |conn| {
            conn.query_row(
                "SELECT name, bootstrapped_ms, host_key, role, applied_commit, applied_ms
                 FROM hosts WHERE name = ?1",
                [name],
                host_from_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn hosts(&self) -> Result<Vec<HostRecord>, StoreError> {
        self.call(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT name, bootstrapped_ms, host_key, role, applied_commit, applied_ms
                     FROM hosts ORDER BY name",
                )
                .map_err(backend)?;
            let rows = stmt.query_map([], host_from_row).map_err(backend)?;
            rows.collect::<rusqlite::Result<_>>().map_err(backend)
        })
        .await
    }

    async fn record_bootstrap(&self, host: &str, host_key: Option<&str>) -> Result<(), StoreError> {
        let host = host.to_string();
        let host_key = host_key.map(str::to_string);
        self.write(move |conn, now| {
            conn.execute(
                "INSERT INTO hosts (name, bootstrapped_ms, host_key) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE
                 SET bootstrapped_ms = excluded.bootstrapped_ms, host_key = excluded.host_key",
                params![host, now, host_key],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn record_applied(&self, host: &str, role: &str, commit: &str) -> Result<(), StoreError> {
        let (host, role, commit) = (host.to_string(), role.to_string(), commit.to_string());
        self.write(move |conn, now| {
            conn.execute(
                "INSERT INTO hosts (name, role, applied_commit, applied_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO UPDATE
                 SET role = excluded.role, applied_commit = excluded.applied_commit,
                     applied_ms = excluded.applied_ms",
                params![host, role, commit, now],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn wait_for_work(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.work.notified()).await;
    }
}

fn host_from_row(row: &Row<'_>) -> rusqlite::Result<HostRecord> {
    Ok(HostRecord {
        name: row.get(0)?,
        bootstrapped_ms: row.get(1)?,
        host_key: row.get(2)?,
        role: row.get(3)?,
        applied_commit: row.get(4)?,
        applied_ms: row.get(5)?,
    })
}
