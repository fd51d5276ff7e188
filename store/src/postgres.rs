//! The PostgreSQL store: several daemons, on several machines, share one queue.
//!
//! - claiming locks the candidate row with `FOR UPDATE SKIP LOCKED`, so two daemons
//!   never wait on each other nor take the same job; a partial unique index
//!   (`jobs_one_running_per_key`) makes "one running job per key" hold even when two
//!   of them start two queued jobs of one key at the same moment (the loser retries);
//! - `accept` is one statement that takes no lock but the delivery id's unique index
//!   entry: deliveries for one key never wait for each other. The deliveries that
//!   arrive while one transaction commits go together in the next one (group commit:
//!   one WAL flush for all of them, see [`accept_batches`]). Jobs merge
//!   when one is claimed (the claim only considers the oldest queued job of a key, so
//!   two claimers never fold the same jobs);
//! - leases are measured by the server's clock (`clock_timestamp()`), so the daemons'
//!   machines need not agree on the time;
//! - every change that may make a job claimable sends `NOTIFY toyc_jobs` (delivered at
//!   commit), which a listening connection of every store turns into a wake-up of its
//!   `wait_for_work`.

use std::future::poll_fn;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use serde_json::Value;
use tokio::sync::{mpsc, Notify, Semaphore};

use crate::{accept_in_batch, poke, PendingAccept, MAX_BATCH};
use tokio::task::JoinHandle;
use tokio_postgres::error::SqlState;
use tokio_postgres::{AsyncMessage, Client, Config, NoTls, Row, Statement};

use crate::sqlite::parse_state;
use crate::{
    Accepted, Claim, Delivery, HostRecord, Job, JobId, JobState, Lease, Merge, NewDelivery, NewJob,
    Outcome, Store, StoreError, StoredEvent,
};

/// The schema this build writes; [`PostgresStore::connect`] refuses a newer one.
const SCHEMA_VERSION: i64 = 2;

/// What each version after 1 adds, applied in order to a store at an older version.
const MIGRATIONS: &[(i64, &str)] = &[(
    2,
    // Merging moved from accepting a delivery to claiming a job: which jobs merge, into
    // which job a merged one went, and an index for the claim's "oldest queued job of
    // its key" (one probe however many are queued).
    "ALTER TABLE jobs ADD COLUMN mergeable BOOLEAN NOT NULL DEFAULT false;
     ALTER TABLE jobs ADD COLUMN merged_into BIGINT REFERENCES jobs (id);
     CREATE INDEX jobs_key_state_id ON jobs (key, state, id);",
)];

/// Records a batch of deliveries and queues their jobs in one statement (one round trip,
/// one commit): `$1..$5` arrays of the deliveries' fields, `$6` their jobs' keys
/// (`NULL`: ignored, no job), `$7` the jobs' payloads. One row per delivery, by `n`
/// (1, 2, ...): its job (drawn before the insert, so that the delivery can name it),
/// whether it was `inserted` (else a delivery id seen before, even earlier in the same
/// batch, and `earlier` the job that first delivery is part of), and whether it `woke`
/// the workers. (An ignored delivery sent twice within one batch is answered ignored
/// twice, not ignored then duplicate: it is recorded once either way.)
///
/// Only a job whose key has no job queued or running wakes the workers of every daemon
/// (`NOTIFY`): a job queued behind another of its key is merged when that one is
/// claimed, or claimed when the running one ends (which wakes them). A committing
/// `NOTIFY` holds a database-wide lock through its commit's WAL flush: one per delivery
/// made a burst's commits one at a time.
const ACCEPT: &str = "
WITH new AS MATERIALIZED (
    SELECT input.*,
           CASE WHEN input.key IS NULL THEN NULL
                ELSE nextval(pg_get_serial_sequence('jobs', 'id')) END AS job,
           (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS now
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                $7::jsonb[])
         WITH ORDINALITY AS input (id, provider, repo, event, ignored, key, payload, n)
), delivery AS (
    INSERT INTO deliveries (id, provider, repo, event, ignored, received_ms, job)
    SELECT id, provider, repo, event, ignored, now, job FROM new ORDER BY n
    ON CONFLICT (id) DO NOTHING
    RETURNING id, job
), job AS (
    INSERT INTO jobs (id, key, payload, state, created_ms, mergeable)
    SELECT new.job, new.key, new.payload, 'queued', new.now, true
    FROM new JOIN delivery ON delivery.job = new.job
    RETURNING id, key
), idle AS (
    SELECT DISTINCT key FROM job
    WHERE NOT EXISTS (SELECT 1 FROM jobs
                      WHERE jobs.key = job.key AND state IN ('queued', 'running'))
), wake AS (
    SELECT pg_notify('toyc_jobs', '') WHERE EXISTS (SELECT 1 FROM idle)
)
SELECT new.n, new.job,
       EXISTS (SELECT 1 FROM delivery WHERE delivery.job IS NOT DISTINCT FROM new.job
               AND delivery.id = new.id) AS inserted,
       coalesce((SELECT delivery.job FROM delivery WHERE delivery.id = new.id),
                (SELECT deliveries.job FROM deliveries WHERE deliveries.id = new.id)) AS earlier,
       new.key IN (SELECT key FROM idle) AS woke,
       (SELECT count(*) FROM wake) AS notified
FROM new ORDER BY new.n";

/// Version 1.
const SCHEMA: &str = "
CREATE TABLE schema_version (version BIGINT NOT NULL);
CREATE TABLE jobs (
    id BIGSERIAL PRIMARY KEY,
    key TEXT NOT NULL,
    payload JSONB NOT NULL,
    state TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    started_ms BIGINT,
    finished_ms BIGINT,
    worker TEXT,
    lease_until_ms BIGINT,
    attempts BIGINT NOT NULL DEFAULT 0,
    cancel_requested BOOLEAN NOT NULL DEFAULT false,
    result JSONB
);
CREATE INDEX jobs_state_key ON jobs (state, key);
CREATE UNIQUE INDEX jobs_one_running_per_key ON jobs (key) WHERE state = 'running';
CREATE TABLE deliveries (
    n BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    provider TEXT NOT NULL,
    repo TEXT NOT NULL,
    event TEXT NOT NULL,
    ignored TEXT,
    received_ms BIGINT NOT NULL,
    job BIGINT REFERENCES jobs (id)
);
CREATE INDEX deliveries_job ON deliveries (job);
CREATE TABLE events (
    job BIGINT NOT NULL REFERENCES jobs (id),
    seq BIGINT NOT NULL,
    at_ms BIGINT NOT NULL,
    event JSONB NOT NULL,
    PRIMARY KEY (job, seq)
);
CREATE TABLE hosts (
    name TEXT PRIMARY KEY,
    bootstrapped_ms BIGINT,
    host_key TEXT,
    role TEXT,
    applied_commit TEXT,
    applied_ms BIGINT
);
";

/// The channel of the wake-ups.
const CHANNEL: &str = "toyc_jobs";

/// The columns [`job_from_row`] reads.
const JOB_COLUMNS: &str = "id, key, payload, state, created_ms, started_ms, finished_ms, \
     worker, attempts, cancel_requested, result, merged_into";

/// Now by the server's clock, in Unix milliseconds.
const NOW_MS: &str = "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint";

/// Advisory lock classes (the first key of `pg_advisory_xact_lock(int, int)`).
const LOCK_SCHEMA: i32 = 0x746f_7900;
const LOCK_EVENTS: i32 = 0x746f_7902;

/// How often a claim that lost a race for a key (see the module's doc) tries again.
const CLAIM_ATTEMPTS: usize = 8;

/// The PostgreSQL store: a pool of connections, and one more that listens for the
/// other stores' wake-ups.
pub struct PostgresStore {
    pool: Pool,
    /// The URL without its password, for messages.
    location: String,
    /// Poked by this store's changes and by `NOTIFY toyc_jobs` from any store.
    work: Arc<Notify>,
    /// The task that keeps the listening connection (reconnecting when it drops).
    listener: JoinHandle<()>,
    /// Deliveries to accept, to the task that commits them in batches.
    accepts: mpsc::Sender<PendingAccept>,
}

/// How many of those transactions run at once.
const BATCHES_IN_FLIGHT: usize = 2;

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

pub(crate) fn backend(error: impl std::error::Error) -> StoreError {
    StoreError::Backend(describe(&error))
}

/// An error with its sources: the driver says only "db error", the server's message
/// is its source.
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let more = inner.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = inner.source();
    }
    text
}

/// `url` with its password (the `user:PASSWORD@` of a URL, any `password=` parameter)
/// replaced by `***`, for messages.
pub(crate) fn redact(url: &str) -> String {
    let mut out = url.to_string();
    if let Some((scheme, rest)) = url.split_once("://") {
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if let Some((userinfo, host)) = authority.rsplit_once('@') {
            if let Some((user, _)) = userinfo.split_once(':') {
                out = format!("{scheme}://{user}:***@{host}{tail}");
            }
        }
    }
    let mut redacted = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(at) = rest.find("password=") {
        let value = at + "password=".len();
        redacted.push_str(&rest[..value]);
        redacted.push_str("***");
        let end = rest[value..]
            .find(['&', ' '])
            .map_or(rest.len(), |end| value + end);
        rest = &rest[end..];
    }
    redacted.push_str(rest);
    redacted
}

/// `reason` without `password` (a driver message could quote the URL).
fn scrub(reason: String, password: Option<&[u8]>) -> String {
    match password.and_then(|p| std::str::from_utf8(p).ok()) {
        Some(password) if !password.is_empty() => reason.replace(password, "***"),
        _ => reason,
    }
}

impl PostgresStore {
    /// Connects to the server at `url` (`postgres://user:password@host:port/db`; a
    /// Unix socket's directory goes percent-encoded in the host:
    /// `postgresql://toyc@%2Frun%2Fpostgresql/toyc`), creates or checks the schema, and
    /// starts listening for wake-ups.
    pub async fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        let location = redact(url);
        let mut config: Config = url.parse().map_err(|error| StoreError::Open {
            location: location.clone(),
            reason: format!("not a PostgreSQL URL ({error}): write it as postgres://user:password@host:port/database"),
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        let failed = |reason: String| StoreError::Open {
            location: location.clone(),
            reason: scrub(reason, config.get_password()),
        };
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(16)
            .build()
            .map_err(|error| failed(describe(&error)))?;
        {
            let mut client = pool.get().await.map_err(|error| failed(describe(&error)))?;
            create_schema(&mut client).await.map_err(failed)?;
        }
        let work = Arc::new(Notify::new());
        let (client, driver) = listen(&config, work.clone())
            .await
            .map_err(|error| failed(describe(&error)))?;
        let listener = tokio::spawn(keep_listening(config, work.clone(), client, driver));
        let (accepts, pending) = mpsc::channel(1024);
        tokio::spawn(accept_batches(pool.clone(), work.clone(), pending));
        Ok(PostgresStore {
            pool,
            location,
            work,
            listener,
            accepts,
        })
    }

    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(backend)
    }

    /// Wakes this process's `wait_for_work` at once (the `NOTIFY` comes back a moment
    /// later, and wakes the other processes).
    fn poke(&self) {
        poke(&self.work);
    }
}

async fn create_schema(client: &mut Client) -> Result<(), String> {
    let tx = client.transaction().await.map_err(|e| describe(&e))?;
    // Two daemons starting on an empty database: one creates, the other waits and sees.
    tx.execute("SELECT pg_advisory_xact_lock($1, 0)", &[&LOCK_SCHEMA])
        .await
        .map_err(|e| describe(&e))?;
    let exists: bool = tx
        .query_one("SELECT to_regclass('schema_version') IS NOT NULL", &[])
        .await
        .map_err(|e| describe(&e))?
        .get(0);
    // The supervisor's tables came after version 1: created in any store that lacks them.
    tx.batch_execute(crate::programs::POSTGRES_SCHEMA)
        .await
        .map_err(|e| describe(&e))?;
    if !exists {
        tx.batch_execute(SCHEMA).await.map_err(|e| describe(&e))?;
        tx.execute("INSERT INTO schema_version (version) VALUES (1)", &[])
            .await
            .map_err(|e| describe(&e))?;
    }
    let version: Option<i64> = tx
        .query_one("SELECT max(version) FROM schema_version", &[])
        .await
        .map_err(|e| describe(&e))?
        .get(0);
    let version = version.unwrap_or(0);
    if version > SCHEMA_VERSION {
        return Err(format!(
            "it has schema version {version}, this toyc knows up to {SCHEMA_VERSION}: run a newer toyc"
        ));
    }
    for (to, migration) in MIGRATIONS.iter().filter(|(to, _)| *to > version) {
        let upgrade = format!("{migration}; INSERT INTO schema_version (version) VALUES ({to})");
        tx.batch_execute(&upgrade)
            .await
            .map_err(|e| format!("cannot upgrade it to schema version {to}: {}", describe(&e)))?;
    }
    tx.commit().await.map_err(|e| describe(&e))
}

/// Opens the listening connection: its messages are driven by a task that pokes `work`
/// on every notification and ends when the connection does.
async fn listen(
    config: &Config,
    work: Arc<Notify>,
) -> Result<(Client, JoinHandle<()>), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let driver = tokio::spawn(async move {
        while let Some(message) = poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(AsyncMessage::Notification(_)) => poke(&work),
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    Ok((client, driver))
}

/// Keeps a listening connection open: when it drops (server restart), reconnects, and
/// wakes the waiting ones, who may have missed a notification meanwhile.
async fn keep_listening(config: Config, work: Arc<Notify>, client: Client, driver: JoinHandle<()>) {
    let mut current = Some((client, driver));
    loop {
        if let Some((client, driver)) = current.take() {
            let _ = driver.await;
            drop(client);
            poke(&work);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        current = listen(&config, work.clone()).await.ok();
    }
}

/// Now by the server's clock.
/// `sql` prepared once per pooled connection and kept: a statement given as text is
/// prepared again on every call, one more round trip to the server each time. On the
/// webhook's path (`accept`) that doubled the round trips made while the key's lock is
/// held, which every delivery for the key waits for.
async fn cached(client: &impl GenericClient, sql: &str) -> Result<Statement, StoreError> {
    client.prepare_cached(sql).await.map_err(backend)
}

async fn now(client: &impl GenericClient) -> Result<i64, StoreError> {
    let statement = cached(client, NOW_MS).await?;
    Ok(client
        .query_one(&statement, &[])
        .await
        .map_err(backend)?
        .get(0))
}

/// Wakes every store's `wait_for_work` when the transaction commits.
async fn notify(client: &impl GenericClient) -> Result<(), StoreError> {
    let statement = cached(client, "SELECT pg_notify($1, '')").await?;
    client
        .execute(&statement, &[&CHANNEL])
        .await
        .map_err(backend)?;
    Ok(())
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

fn parse(id: JobId, state: &str) -> Result<JobState, StoreError> {
    parse_state(state)
        .ok_or_else(|| StoreError::Backend(format!("job #{id} has an unknown state `{state}`")))
}

fn job_from_row(row: &Row) -> Result<Job, StoreError> {
    let id: JobId = row.try_get(0).map_err(backend)?;
    let state: String = row.try_get(3).map_err(backend)?;
    Ok(Job {
        id,
        key: row.try_get(1).map_err(backend)?,
        payload: row.try_get(2).map_err(backend)?,
        state: parse(id, &state)?,
        created_ms: row.try_get(4).map_err(backend)?,
        started_ms: row.try_get(5).map_err(backend)?,
        finished_ms: row.try_get(6).map_err(backend)?,
        worker: row.try_get(7).map_err(backend)?,
        attempts: row.try_get(8).map_err(backend)?,
        cancel_requested: row.try_get(9).map_err(backend)?,
        result: row.try_get(10).map_err(backend)?,
        deliveries: Vec::new(),
        merged_into: row.try_get(11).map_err(backend)?,
    })
}

async fn with_deliveries(client: &impl GenericClient, mut job: Job) -> Result<Job, StoreError> {
    job.deliveries = client
        .query(
            "SELECT id FROM deliveries WHERE job = $1 ORDER BY n",
            &[&job.id],
        )
        .await
        .map_err(backend)?
        .iter()
        .map(|row| row.try_get(0).map_err(backend))
        .collect::<Result<_, _>>()?;
    Ok(job)
}

async fn load_job(client: &impl GenericClient, id: JobId) -> Result<Option<Job>, StoreError> {
    let row = client
        .query_opt(
            &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"),
            &[&id],
        )
        .await
        .map_err(backend)?;
    match row {
        Some(row) => Ok(Some(with_deliveries(client, job_from_row(&row)?).await?)),
        None => Ok(None),
    }
}

/// The job's state, worker and cancel flag, its row locked until the transaction
/// ends; `NoSuchJob` when there is no job.
async fn lease_row(
    client: &impl GenericClient,
    id: JobId,
) -> Result<(JobState, Option<String>, bool), StoreError> {
    let row = client
        .query_opt(
            "SELECT state, worker, cancel_requested FROM jobs WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .await
        .map_err(backend)?
        .ok_or(StoreError::NoSuchJob(id))?;
    let state: String = row.try_get(0).map_err(backend)?;
    Ok((
        parse(id, &state)?,
        row.try_get(1).map_err(backend)?,
        row.try_get(2).map_err(backend)?,
    ))
}

fn holds(state: JobState, holder: Option<&str>, worker: &str) -> bool {
    state == JobState::Running && holder == Some(worker)
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Queues a job that never merges (see [`Store::enqueue`]).
async fn insert_job(
    client: &impl GenericClient,
    job: &NewJob,
    now: i64,
) -> Result<JobId, StoreError> {
    let statement = cached(
        client,
        "INSERT INTO jobs (key, payload, state, created_ms) VALUES ($1, $2, 'queued', $3)
         RETURNING id",
    )
    .await?;
    Ok(client
        .query_one(&statement, &[&job.key, &job.payload, &now])
        .await
        .map_err(backend)?
        .get(0))
}

/// Folds the later queued mergeable jobs of `claimed`'s key into it (see
/// [`Store::claim`]), their rows locked until the transaction ends.
async fn merge_later_jobs(
    client: &impl GenericClient,
    claimed: JobId,
    merge: Merge,
    now: i64,
) -> Result<(), StoreError> {
    let row = client
        .query_one(
            "SELECT key, mergeable, payload FROM jobs WHERE id = $1",
            &[&claimed],
        )
        .await
        .map_err(backend)?;
    let (key, mergeable): (String, bool) = (
        row.try_get(0).map_err(backend)?,
        row.try_get(1).map_err(backend)?,
    );
    if !mergeable {
        return Ok(());
    }
    let mut payload: Value = row.try_get(2).map_err(backend)?;
    // Nobody else claims these (the claim considers only a key's oldest queued job,
    // which this transaction holds); a cancel may hold one: wait for it.
    let later = client
        .query(
            "SELECT id, payload FROM jobs
             WHERE key = $1 AND state = 'queued' AND mergeable AND id > $2
             ORDER BY id FOR UPDATE",
            &[&key, &claimed],
        )
        .await
        .map_err(backend)?;
    if later.is_empty() {
        return Ok(());
    }
    let mut merged = Vec::with_capacity(later.len());
    for row in &later {
        let id: JobId = row.try_get(0).map_err(backend)?;
        payload = merge(&payload, &row.try_get::<_, Value>(1).map_err(backend)?);
        merged.push(id);
    }
    client
        .execute(
            "UPDATE jobs SET state = 'merged', merged_into = $1, finished_ms = $2
             WHERE id = ANY($3)",
            &[&claimed, &now, &merged],
        )
        .await
        .map_err(backend)?;
    client
        .execute(
            "UPDATE deliveries SET job = $1 WHERE job = ANY($2)",
            &[&claimed, &merged],
        )
        .await
        .map_err(backend)?;
    client
        .execute(
            "UPDATE jobs SET payload = $1 WHERE id = $2",
            &[&payload, &claimed],
        )
        .await
        .map_err(backend)?;
    Ok(())
}

/// Accepts deliveries as they come, those that arrived while the previous statements
/// ran in one statement together (`ACCEPT`): one round trip, one commit, and one WAL
/// flush under PostgreSQL's durable defaults, where twenty senders made twenty. Two
/// batches are in flight at once, so that one is sent while the other commits. Ends
/// when the store is dropped.
async fn accept_batches(pool: Pool, work: Arc<Notify>, mut pending: mpsc::Receiver<PendingAccept>) {
    let in_flight = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT));
    loop {
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let mut batch = Vec::with_capacity(MAX_BATCH);
        if pending.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        let (pool, work) = (pool.clone(), work.clone());
        tokio::spawn(async move {
            let answers = match pool.get().await {
                Ok(client) => accept_batch(&client, &batch).await,
                Err(error) => batch.iter().map(|_| Err(backend(&error))).collect(),
            };
            drop(permit);
            // The same rule as the statement's NOTIFY (`ACCEPT`), whose notification
            // comes back too, a moment later.
            if answers.iter().any(|answer| matches!(answer, Ok((_, true)))) {
                poke(&work);
            }
            for (pending, answer) in batch.into_iter().zip(answers) {
                // The caller may have gone (its connection closed): its delivery is
                // stored all the same.
                let _ = pending.answer.send(answer.map(|(accepted, _)| accepted));
            }
        });
    }
}

/// Each delivery's answer, and whether its job may be claimed now. When the batch's
/// statement fails, each delivery is tried alone, so that one bad delivery fails only
/// itself.
async fn accept_batch(
    client: &deadpool_postgres::Object,
    batch: &[PendingAccept],
) -> Vec<Result<(Accepted, bool), StoreError>> {
    match accept_statement(client, batch).await {
        Ok(answers) => answers.into_iter().map(Ok).collect(),
        Err(error) if batch.len() == 1 => vec![Err(error)],
        Err(_) => {
            let mut answers = Vec::with_capacity(batch.len());
            for one in batch {
                answers.push(
                    accept_statement(client, std::slice::from_ref(one))
                        .await
                        .and_then(|mut answer| {
                            answer.pop().ok_or_else(|| {
                                StoreError::Backend("no answer for a delivery".to_string())
                            })
                        }),
                );
            }
            answers
        }
    }
}

/// The batch's statement (`ACCEPT`): each delivery's answer, in order.
async fn accept_statement(
    client: &deadpool_postgres::Object,
    batch: &[PendingAccept],
) -> Result<Vec<(Accepted, bool)>, StoreError> {
    let statement = cached(client, ACCEPT).await?;
    let column = |field: fn(&PendingAccept) -> &str| batch.iter().map(field).collect::<Vec<_>>();
    let ids = column(|p| &p.delivery.id);
    let providers = column(|p| &p.delivery.provider);
    let repos = column(|p| &p.delivery.repo);
    let events = column(|p| &p.delivery.event);
    let ignored: Vec<Option<&str>> = batch
        .iter()
        .map(|p| p.delivery.ignored.as_deref())
        .collect();
    let keys: Vec<Option<&str>> = batch
        .iter()
        .map(|p| p.job.as_ref().map(|j| j.key.as_str()))
        .collect();
    let payloads: Vec<Option<&Value>> = batch
        .iter()
        .map(|p| p.job.as_ref().map(|j| &j.payload))
        .collect();
    let rows = client
        .query(
            &statement,
            &[
                &ids, &providers, &repos, &events, &ignored, &keys, &payloads,
            ],
        )
        .await
        .map_err(backend)?;
    if rows.len() != batch.len() {
        return Err(StoreError::Backend(format!(
            "{} answers for {} deliveries",
            rows.len(),
            batch.len()
        )));
    }
    let mut answers = Vec::with_capacity(batch.len());
    for (row, pending) in rows.iter().zip(batch) {
        let inserted: bool = row.try_get("inserted").map_err(backend)?;
        if !inserted {
            let mut earlier: Option<JobId> = row.try_get("earlier").map_err(backend)?;
            if earlier.is_none() && pending.job.is_some() {
                // The first delivery committed while this statement waited on it (the
                // statement's snapshot is older): look again.
                let seen = cached(client, "SELECT job FROM deliveries WHERE id = $1").await?;
                earlier = client
                    .query_opt(&seen, &[&pending.delivery.id])
                    .await
                    .map_err(backend)?
                    .map(|row| row.try_get(0))
                    .transpose()
                    .map_err(backend)?
                    .flatten();
            }
            answers.push((Accepted::Duplicate { job: earlier }, false));
            continue;
        }
        let woke: Option<bool> = row.try_get("woke").map_err(backend)?;
        answers.push(
            match row.try_get::<_, Option<JobId>>("job").map_err(backend)? {
                Some(job) => (Accepted::Queued { job }, woke == Some(true)),
                None => (Accepted::Ignored, false),
            },
        );
    }
    Ok(answers)
}

fn host_from_row(row: &Row) -> Result<HostRecord, StoreError> {
    Ok(HostRecord {
        name: row.try_get(0).map_err(backend)?,
        bootstrapped_ms: row.try_get(1).map_err(backend)?,
        host_key: row.try_get(2).map_err(backend)?,
        role: row.try_get(3).map_err(backend)?,
        applied_commit: row.try_get(4).map_err(backend)?,
        applied_ms: row.try_get(5).map_err(backend)?,
    })
}

#[async_trait]
impl Store for PostgresStore {
    async fn accept(
        &self,
        delivery: NewDelivery,
        job: Option<NewJob>,
    ) -> Result<Accepted, StoreError> {
        accept_in_batch(&self.accepts, delivery, job).await
    }

    async fn enqueue(&self, job: NewJob) -> Result<JobId, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let now = now(&tx).await?;
        let id = insert_job(&tx, &job, now).await?;
        notify(&tx).await?;
        tx.commit().await.map_err(backend)?;
        self.poke();
        Ok(id)
    }

    async fn claim(
        &self,
        worker: &str,
        lease: Duration,
        merge: Merge,
    ) -> Result<Option<Claim>, StoreError> {
        let mut client = self.client().await?;
        for _ in 0..CLAIM_ATTEMPTS {
            let tx = client.transaction().await.map_err(backend)?;
            let now = now(&tx).await?;
            // A queued job waits while its key has a running job, live or not (a dead
            // worker's job is taken over, the second arm, before the next one starts),
            // and while an older job of its key is queued.
            let Some(row) = tx
                .query_opt(
                    "SELECT id, state, worker FROM jobs AS j
                     WHERE (state = 'queued'
                            AND NOT EXISTS (SELECT 1 FROM jobs AS r
                                            WHERE r.key = j.key AND r.state = 'running')
                            AND NOT EXISTS (SELECT 1 FROM jobs AS q
                                            WHERE q.key = j.key AND q.state = 'queued' AND q.id < j.id))
                        OR (state = 'running' AND lease_until_ms <= $1)
                     ORDER BY id LIMIT 1
                     FOR UPDATE SKIP LOCKED",
                    &[&now],
                )
                .await
                .map_err(backend)?
            else {
                return Ok(None);
            };
            let id: JobId = row.try_get(0).map_err(backend)?;
            let state: String = row.try_get(1).map_err(backend)?;
            let previous: Option<String> = row.try_get(2).map_err(backend)?;
            if state == "queued" {
                merge_later_jobs(&tx, id, merge, now).await?;
            }
            let updated = tx
                .execute(
                    "UPDATE jobs SET state = 'running', worker = $1, lease_until_ms = $2,
                         started_ms = $3, attempts = attempts + 1
                     WHERE id = $4",
                    &[&worker, &now.saturating_add(millis(lease)), &now, &id],
                )
                .await;
            match updated {
                // Another store started a job of this key since this one looked: look
                // again (that key is now skipped).
                Err(error) if error.code() == Some(&SqlState::UNIQUE_VIOLATION) => continue,
                Err(error) => return Err(backend(error)),
                Ok(_) => {}
            }
            let job = load_job(&tx, id).await?.ok_or(StoreError::NoSuchJob(id))?;
            tx.commit().await.map_err(backend)?;
            let taken_over = if state == "running" { previous } else { None };
            return Ok(Some(Claim { job, taken_over }));
        }
        Ok(None)
    }

    async fn renew(&self, job: JobId, worker: &str, lease: Duration) -> Result<Lease, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let (state, holder, cancel) = lease_row(&tx, job).await?;
        if !holds(state, holder.as_deref(), worker) {
            return Ok(Lease::Lost);
        }
        let now = now(&tx).await?;
        tx.execute(
            "UPDATE jobs SET lease_until_ms = $1 WHERE id = $2",
            &[&now.saturating_add(millis(lease)), &job],
        )
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(if cancel {
            Lease::CancelRequested
        } else {
            Lease::Held
        })
    }

    async fn finish(
        &self,
        job: JobId,
        worker: &str,
        outcome: Outcome,
        result: Value,
    ) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let (state, holder, _) = lease_row(&tx, job).await?;
        if !holds(state, holder.as_deref(), worker) {
            return Ok(false);
        }
        let now = now(&tx).await?;
        let state = match outcome {
            Outcome::Succeeded => JobState::Succeeded,
            Outcome::Failed => JobState::Failed,
            Outcome::Cancelled => JobState::Cancelled,
        };
        tx.execute(
            "UPDATE jobs SET state = $1, finished_ms = $2, result = $3, lease_until_ms = NULL
             WHERE id = $4",
            &[&state_name(state), &now, &result, &job],
        )
        .await
        .map_err(backend)?;
        notify(&tx).await?;
        tx.commit().await.map_err(backend)?;
        self.poke();
        Ok(true)
    }

    async fn release(&self, job: JobId, worker: &str) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let (state, holder, cancel) = lease_row(&tx, job).await?;
        if !holds(state, holder.as_deref(), worker) {
            return Ok(false);
        }
        let now = now(&tx).await?;
        // A job whose cancel was asked for is not worth running again.
        if cancel {
            tx.execute(
                "UPDATE jobs SET state = 'cancelled', finished_ms = $1, lease_until_ms = NULL
                 WHERE id = $2",
                &[&now, &job],
            )
            .await
        } else {
            tx.execute(
                "UPDATE jobs SET state = 'queued', lease_until_ms = NULL WHERE id = $1",
                &[&job],
            )
            .await
        }
        .map_err(backend)?;
        notify(&tx).await?;
        tx.commit().await.map_err(backend)?;
        self.poke();
        Ok(true)
    }

    async fn cancel(&self, job: JobId) -> Result<JobState, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let (state, _, _) = lease_row(&tx, job).await?;
        let after = match state {
            JobState::Queued => {
                let now = now(&tx).await?;
                tx.execute(
                    "UPDATE jobs SET state = 'cancelled', finished_ms = $1 WHERE id = $2",
                    &[&now, &job],
                )
                .await
                .map_err(backend)?;
                JobState::Cancelled
            }
            JobState::Running => {
                tx.execute(
                    "UPDATE jobs SET cancel_requested = true WHERE id = $1",
                    &[&job],
                )
                .await
                .map_err(backend)?;
                JobState::Running
            }
            done => done,
        };
        notify(&tx).await?;
        tx.commit().await.map_err(backend)?;
        self.poke();
        Ok(after)
    }

    async fn append_event(&self, job: JobId, event: Value) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        // Events of one job in order, without locking the job's row (which a claim
        // would then skip): a lock per job, folded into an int.
        let folded = i32::try_from(job.rem_euclid(i64::from(i32::MAX)))
            .expect("a remainder of i32::MAX fits in an i32");
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, $2)",
            &[&LOCK_EVENTS, &folded],
        )
        .await
        .map_err(backend)?;
        let exists = tx
            .query_opt("SELECT 1 FROM jobs WHERE id = $1", &[&job])
            .await
            .map_err(backend)?;
        if exists.is_none() {
            return Err(StoreError::NoSuchJob(job));
        }
        let now = now(&tx).await?;
        tx.execute(
            "INSERT INTO events (job, seq, at_ms, event)
             VALUES ($1, (SELECT coalesce(max(seq), 0) + 1 FROM events WHERE job = $1), $2, $3)",
            &[&job, &now, &event],
        )
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(())
    }

    async fn events(&self, job: JobId, after: i64) -> Result<Vec<StoredEvent>, StoreError> {
        let client = self.client().await?;
        let exists = client
            .query_opt("SELECT 1 FROM jobs WHERE id = $1", &[&job])
            .await
            .map_err(backend)?;
        if exists.is_none() {
            return Err(StoreError::NoSuchJob(job));
        }
        client
            .query(
                "SELECT seq, at_ms, event FROM events WHERE job = $1 AND seq > $2 ORDER BY seq",
                &[&job, &after],
            )
            .await
            .map_err(backend)?
            .iter()
            .map(|row| {
                Ok(StoredEvent {
                    seq: row.try_get(0).map_err(backend)?,
                    at_ms: row.try_get(1).map_err(backend)?,
                    event: row.try_get(2).map_err(backend)?,
                })
            })
            .collect()
    }

    async fn job(&self, job: JobId) -> Result<Option<Job>, StoreError> {
        let client = self.client().await?;
        load_job(&client, job).await
    }

    async fn jobs(&self, limit: usize) -> Result<Vec<Job>, StoreError> {
        let client = self.client().await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(
                &format!("SELECT {JOB_COLUMNS} FROM jobs ORDER BY id DESC LIMIT $1"),
                &[&limit],
            )
            .await
            .map_err(backend)?;
        let mut jobs = Vec::with_capacity(rows.len());
        for row in &rows {
            jobs.push(with_deliveries(&client, job_from_row(row)?).await?);
        }
        Ok(jobs)
    }

    async fn deliveries(&self, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        let client = self.client().await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        client
            .query(
                "SELECT id, provider, repo, event, ignored, received_ms, job
                 FROM deliveries ORDER BY n DESC LIMIT $1",
                &[&limit],
            )
            .await
            .map_err(backend)?
            .iter()
            .map(|row| {
                Ok(Delivery {
                    delivery: NewDelivery {
                        id: row.try_get(0).map_err(backend)?,
                        provider: row.try_get(1).map_err(backend)?,
                        repo: row.try_get(2).map_err(backend)?,
                        event: row.try_get(3).map_err(backend)?,
                        ignored: row.try_get(4).map_err(backend)?,
                    },
                    received_ms: row.try_get(5).map_err(backend)?,
                    job: row.try_get(6).map_err(backend)?,
                })
            })
            .collect()
    }

    async fn host(&self, name: &str) -> Result<Option<HostRecord>, StoreError> {
        let client = self.client().await?;
        client
            .query_opt(
                "SELECT name, bootstrapped_ms, host_key, role, applied_commit, applied_ms
                 FROM hosts WHERE name = $1",
                &[&name],
            )
            .await
            .map_err(backend)?
            .as_ref()
            .map(host_from_row)
            .transpose()
    }

    async fn hosts(&self) -> Result<Vec<HostRecord>, StoreError> {
        let client = self.client().await?;
        client
            .query(
                "SELECT name, bootstrapped_ms, host_key, role, applied_commit, applied_ms
                 FROM hosts ORDER BY name",
                &[],
            )
            .await
            .map_err(backend)?
            .iter()
            .map(host_from_row)
            .collect()
    }

    async fn record_bootstrap(&self, host: &str, host_key: Option<&str>) -> Result<(), StoreError> {
        let client = self.client().await?;
        let now = now(&client).await?;
        client
            .execute(
                "INSERT INTO hosts (name, bootstrapped_ms, host_key) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE
                 SET bootstrapped_ms = excluded.bootstrapped_ms, host_key = excluded.host_key",
                &[&host, &now, &host_key],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn record_applied(&self, host: &str, role: &str, commit: &str) -> Result<(), StoreError> {
        let client = self.client().await?;
        let now = now(&client).await?;
        client
            .execute(
                "INSERT INTO hosts (name, role, applied_commit, applied_ms) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (name) DO UPDATE
                 SET role = excluded.role, applied_commit = excluded.applied_commit,
                     applied_ms = excluded.applied_ms",
                &[&host, &role, &commit, &now],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn wait_for_work(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.work.notified()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redact_removes_passwords() {
        assert_eq!(
            redact("postgres://toyc:s3cr@t@db.example:5432/toyc"),
            "postgres://toyc:***@db.example:5432/toyc"
        );
        assert_eq!(
            redact("postgresql://toyc@%2Ftmp%2Fpg:5432/toyc?password=hunter2&sslmode=disable"),
            "postgresql://toyc@%2Ftmp%2Fpg:5432/toyc?password=***&sslmode=disable"
        );
        assert_eq!(
            redact("host=db user=toyc password=hunter2 dbname=toyc"),
            "host=db user=toyc password=*** dbname=toyc"
        );
        assert_eq!(redact("postgres://toyc@db/toyc"), "postgres://toyc@db/toyc");
    }
}
