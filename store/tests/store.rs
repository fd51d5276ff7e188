//! The store's semantics, one suite run against both backends: SQLite in a temporary
//! directory, and a real PostgreSQL server the suite starts (tests/support/postgres.sh).

#[path = "../../tests/support/postgres.rs"]
mod postgres;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use toyc_store::{
    Accepted, JobId, JobState, Lease, NewDelivery, NewJob, Outcome, ProgramRecord, ProgramStore,
    Store, StoreError,
};

/// A database the test owns, and how to open handles on it.
struct Db {
    location: String,
    _dir: Option<tempfile::TempDir>,
}

impl Db {
    async fn open(&self) -> Arc<dyn Store> {
        Arc::from(
            toyc_store::open(&self.location)
                .await
                .expect("the test's store opens"),
        )
    }
}

impl Db {
    /// Runs `sql` on the database directly, behind the store's back.
    async fn raw(&self, sql: &str) {
        if self.location.starts_with("postgres") {
            let (client, connection) =
                tokio_postgres::connect(&self.location, tokio_postgres::NoTls)
                    .await
                    .expect("connect");
            tokio::spawn(connection);
            client.batch_execute(sql).await.expect("raw SQL");
        } else {
            rusqlite::Connection::open(&self.location)
                .expect("open the file")
                .execute_batch(sql)
                .expect("raw SQL");
        }
    }
}

async fn sqlite() -> Db {
    let dir = tempfile::tempdir().expect("a temporary directory");
    // A directory that does not exist yet: `open` creates it.
    let location = dir
        .path()
        .join("state/toyc.db")
        .to_str()
        .expect("a UTF-8 temporary path")
        .to_string();
    Db {
        location,
        _dir: Some(dir),
    }
}

async fn postgresql() -> Db {
    let location = tokio::task::spawn_blocking(postgres::database)
        .await
        .expect("a database for the test");
    Db {
        location,
        _dir: None,
    }
}

fn delivery(id: &str) -> NewDelivery {
    NewDelivery {
        id: id.to_string(),
        provider: "github".to_string(),
        repo: "acme/site".to_string(),
        event: "push".to_string(),
        ignored: None,
    }
}

fn push(key: &str, commit: &str, files: &[&str]) -> NewJob {
    NewJob {
        key: key.to_string(),
        payload: json!({ "commit": commit, "files": files }),
    }
}

/// The daemon's merge: the newest commit, the union of the changed files.
fn merge(queued: &Value, new: &Value) -> Value {
    let mut files: BTreeSet<String> = BTreeSet::new();
    for payload in [queued, new] {
        for file in payload["files"].as_array().into_iter().flatten() {
            files.insert(file.as_str().unwrap_or_default().to_string());
        }
    }
    json!({ "commit": new["commit"], "files": files })
}

const LONG: Duration = Duration::from_secs(60);

async fn accept_queues_and_refuses_a_duplicate(db: Db) {
    let store = db.open().await;
    let first = store
        .accept(delivery("d1"), Some(push("web", "a1", &["x"])))
        .await
        .expect("accept");
    let Accepted::Queued { job } = first else {
        panic!("a first delivery queues a job, not {first:?}");
    };
    let again = store
        .accept(delivery("d1"), Some(push("db", "b1", &["y"])))
        .await
        .expect("accept");
    assert_eq!(again, Accepted::Duplicate { job: Some(job) });
    let jobs = store.jobs(10).await.expect("jobs");
    assert_eq!(jobs.len(), 1, "a duplicate queues nothing: {jobs:?}");
    assert_eq!(jobs[0].key, "web");
    assert_eq!(jobs[0].state, JobState::Queued);
    assert_eq!(jobs[0].payload, json!({"commit": "a1", "files": ["x"]}));
    assert_eq!(jobs[0].deliveries, vec!["d1".to_string()]);
    assert_eq!(jobs[0].attempts, 0);
    let deliveries = store.deliveries(10).await.expect("deliveries");
    assert_eq!(deliveries.len(), 1, "a duplicate records nothing");
    assert_eq!(deliveries[0].job, Some(job));
    assert_eq!(deliveries[0].delivery, delivery("d1"));
}

async fn queued_jobs_of_a_key_merge_when_the_first_is_claimed(db: Db) {
    let store = db.open().await;
    let mut queued = Vec::new();
    for (id, key, commit, files) in [
        ("d1", "web", "a1", &["x", "y"][..]),
        ("d2", "web", "a2", &["z", "x"][..]),
        ("d3", "db", "b1", &["q"][..]),
    ] {
        let accepted = store
            .accept(delivery(id), Some(push(key, commit, files)))
            .await
            .expect("accept");
        let Accepted::Queued { job } = accepted else {
            panic!("a new delivery queues a job of its own, not {accepted:?}");
        };
        queued.push(job);
    }
    let [j1, j2, j3] = queued[..] else {
        unreachable!()
    };
    // A deliberate re-run never merges, neither way.
    let retry = store
        .enqueue(push("web", "r", &["r"]))
        .await
        .expect("enqueue");
    let Accepted::Queued { job: j5 } = store
        .accept(delivery("d5"), Some(push("web", "a3", &["w"])))
        .await
        .expect("accept")
    else {
        panic!("a new delivery queues a job");
    };
    assert_eq!(store.jobs(10).await.expect("jobs").len(), 5);

    let first = store
        .claim("w1", LONG, merge)
        .await
        .expect("claim")
        .expect("a job");
    assert_eq!(first.job.id, j1);
    assert_eq!(
        first.job.payload,
        json!({"commit": "a3", "files": ["w", "x", "y", "z"]}),
        "the newest commit, every push's files"
    );
    assert_eq!(first.job.deliveries, ["d1", "d2", "d5"]);
    for merged in [j2, j5] {
        let merged = store.job(merged).await.expect("job").expect("exists");
        assert_eq!(merged.state, JobState::Merged);
        assert_eq!(merged.merged_into, Some(j1));
        assert!(merged.state.is_final() && merged.finished_ms.is_some());
        assert!(merged.deliveries.is_empty(), "{merged:?}");
    }
    assert_eq!(
        store
            .accept(delivery("d2"), Some(push("web", "a9", &[])))
            .await
            .expect("accept"),
        Accepted::Duplicate { job: Some(j1) },
        "a redelivery names the job its push runs in"
    );
    let other = store
        .claim("w2", LONG, merge)
        .await
        .expect("claim")
        .expect("a job");
    assert_eq!(other.job.id, j3, "another key is claimed on its own");
    assert_eq!(other.job.payload, json!({"commit": "b1", "files": ["q"]}));
    assert!(store
        .claim("w3", LONG, merge)
        .await
        .expect("claim")
        .is_none());
    assert!(store
        .finish(j1, "w1", Outcome::Succeeded, json!("ok"))
        .await
        .expect("finish"));
    let rerun = store
        .claim("w3", LONG, merge)
        .await
        .expect("claim")
        .expect("a job");
    assert_eq!(rerun.job.id, retry);
    assert_eq!(rerun.job.payload, json!({"commit": "r", "files": ["r"]}));
    let deliveries = store.deliveries(10).await.expect("deliveries");
    let ids: Vec<(&str, Option<JobId>)> = deliveries
        .iter()
        .map(|d| (d.delivery.id.as_str(), d.job))
        .collect();
    assert_eq!(
        ids,
        [
            ("d5", Some(j1)),
            ("d3", Some(j3)),
            ("d2", Some(j1)),
            ("d1", Some(j1))
        ],
        "newest first, each naming the job it runs in"
    );
}

async fn accept_behind_a_running_job_queues_a_new_one(db: Db) {
    let store = db.open().await;
    let Accepted::Queued { job: first } = store
        .accept(delivery("d1"), Some(push("web", "a1", &["x"])))
        .await
        .expect("accept")
    else {
        panic!("a first delivery queues a job");
    };
    let claim = store
        .claim("w1", LONG, merge)
        .await
        .expect("claim")
        .expect("a job");
    assert_eq!(claim.job.id, first);
    let second = store
        .accept(delivery("d2"), Some(push("web", "a2", &["y"])))
        .await
        .expect("accept");
    let Accepted::Queued { job: second } = second else {
        panic!("a running job takes no merge: {second:?}");
    };
    assert_ne!(second, first);
    let running = store.job(first).await.expect("job").expect("exists");
    assert_eq!(running.payload, json!({"commit": "a1", "files": ["x"]}));
    let Accepted::Queued { job: third } = store
        .accept(delivery("d3"), Some(push("web", "a3", &["z"])))
        .await
        .expect("accept")
    else {
        panic!("a delivery queues a job");
    };
    assert!(
        store
            .claim("w2", LONG, merge)
            .await
            .expect("claim")
            .is_none(),
        "one running job per key"
    );
    assert!(store
        .finish(first, "w1", Outcome::Succeeded, json!("ok"))
        .await
        .expect("finish"));
    let next = store
        .claim("w2", LONG, merge)
        .await
        .expect("claim")
        .expect("a job");
    assert_eq!(next.job.id, second);
    assert_eq!(
        next.job.payload,
        json!({"commit": "a3", "files": ["y", "z"]}),
        "the two pushes made during the run run as one"
    );
    let third = store.job(third).await.expect("job").expect("exists");
    assert_eq!(
        (third.state, third.merged_into),
        (JobState::Merged, Some(second))
    );
}

async fn ignored_deliveries_are_recorded_once(db: Db) {
    let store = db.open().await;
    let mut ignored = delivery("d1");
    ignored.ignored = Some("branch dev is not tracked".to_string());
    let accepted = store.accept(ignored.clone(), None).await.expect("accept");
    assert_eq!(accepted, Accepted::Ignored);
    let again = store.accept(ignored.clone(), None).await.expect("accept");
    assert_eq!(again, Accepted::Duplicate { job: None });
    let deliveries = store.deliveries(10).await.expect("deliveries");
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].delivery, ignored);
    assert_eq!(deliveries[0].job, None);
    assert!(store.jobs(10).await.expect("jobs").is_empty());
    assert!(store
        .claim("w", LONG, merge)
        .await
        .expect("claim")
        .is_none());
}

async fn claim_takes_the_oldest_job_of_a_free_key(db: Db) {
    let store = db.open().await;
    let a = store.enqueue(push("web", "a", &[])).await.expect("enqueue");
    let b = store.enqueue(push("web", "b", &[])).await.expect("enqueue");
    let c = store.enqueue(push("db", "c", &[])).await.expect("enqueue");
    let first = store
        .claim("w1", LONG, merge)
        .await
        .expect("claim")
        .expect("a job");
    assert_eq!(first.job.id, a);
    assert_eq!(first.job.state, JobState::Running);
    assert_eq!(first.job.worker.as_deref(), Some("w1"));
    assert_eq!(first.job.attempts, 1);
    assert!(first.job.started_ms.is_some());
    assert_eq!(first.taken_over, None);
    let second = store
        .claim("w2", LONG, merge)
        .await
        .expect("claim")
        .expect("a job");
    assert_eq!(second.job.id, c, "web's next job waits while web runs");
    assert!(store
        .claim("w3", LONG, merge)
        .await
        .expect("claim")
        .is_none());
    assert!(store
        .finish(a, "w1", Outcome::Failed, json!({"error": "boom"}))
        .await
        .expect("finish"));
    let third = store
        .claim("w3", LONG, merge)
        .await
        .expect("claim")
        .expect("a job");
    assert_eq!(third.job.id, b);
    let done = store.job(a).await.expect("job").expect("exists");
    assert_eq!(done.state, JobState::Failed);
    assert_eq!(done.result, Some(json!({"error": "boom"})));
    assert!(done.finished_ms.is_some());
}

async fn an_expired_lease_is_taken_over_and_the_loser_cannot_finish(db: Db) {
    let store = db.open().await;
    let job = store.enqueue(push("web", "a", &[])).await.expect("enqueue");
    let queued_too = store.enqueue(push("web", "b", &[])).await.expect("enqueue");
    let first = store
        .claim("w1", Duration::from_millis(300), merge)
        .await
        .expect("claim")
        .expect("a job");
    assert_eq!(first.job.id, job);
    assert!(
        store
            .claim("w2", LONG, merge)
            .await
            .expect("claim")
            .is_none(),
        "a live lease is not taken over"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let second = store
        .claim("w2", LONG, merge)
        .await
        .expect("claim")
        .expect("a job");
    assert_eq!(
        second.job.id, job,
        "the dead worker's job comes before the key's next one"
    );
    assert_eq!(second.taken_over.as_deref(), Some("w1"));
    assert_eq!(second.job.attempts, 2);
    assert_eq!(second.job.worker.as_deref(), Some("w2"));
    assert!(
        store
            .claim("w3", LONG, merge)
            .await
            .expect("claim")
            .is_none(),
        "{queued_too} waits for the taken over job"
    );
    assert_eq!(
        store.renew(job, "w1", LONG).await.expect("renew"),
        Lease::Lost
    );
    assert!(
        !store
            .finish(job, "w1", Outcome::Succeeded, json!("late"))
            .await
            .expect("finish"),
        "the worker that lost the lease cannot finish"
    );
    let still = store.job(job).await.expect("job").expect("exists");
    assert_eq!(still.state, JobState::Running);
    assert_eq!(still.result, None);
    assert!(store
        .finish(job, "w2", Outcome::Succeeded, json!("done"))
        .await
        .expect("finish"));
    assert!(
        !store
            .finish(job, "w2", Outcome::Succeeded, json!("twice"))
            .await
            .expect("finish"),
        "no job completes twice"
    );
    let done = store.job(job).await.expect("job").expect("exists");
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(done.result, Some(json!("done")));
}

async fn renew_holds_and_reports_a_cancel(db: Db) {
    let store = db.open().await;
    let running = store.enqueue(push("web", "a", &[])).await.expect("enqueue");
    let queued = store.enqueue(push("db", "b", &[])).await.expect("enqueue");
    store
        .claim("w1", LONG, merge)
        .await
        .expect("claim")
        .expect("a job");
    assert_eq!(
        store.renew(running, "w1", LONG).await.expect("renew"),
        Lease::Held
    );
    assert_eq!(
        store.renew(running, "w2", LONG).await.expect("renew"),
        Lease::Lost
    );
    assert_eq!(
        store.cancel(running).await.expect("cancel"),
        JobState::Running
    );
    let flagged = store.job(running).await.expect("job").expect("exists");
    assert!(flagged.cancel_requested);
    assert_eq!(flagged.state, JobState::Running);
    assert_eq!(
        store.renew(running, "w1", LONG).await.expect("renew"),
        Lease::CancelRequested
    );
    assert!(store
        .finish(running, "w1", Outcome::Cancelled, json!(null))
        .await
        .expect("finish"));
    assert_eq!(
        store.cancel(running).await.expect("cancel"),
        JobState::Cancelled,
        "a final job stays as it is"
    );
    assert_eq!(
        store.cancel(queued).await.expect("cancel"),
        JobState::Cancelled
    );
    let cancelled = store.job(queued).await.expect("job").expect("exists");
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert!(cancelled.finished_ms.is_some());
    assert!(
        store
            .claim("w1", LONG, merge)
            .await
            .expect("claim")
            .is_none(),
        "a cancelled job is not claimed"
    );
    assert!(matches!(
        store.cancel(9999).await,
        Err(StoreError::NoSuchJob(9999))
    ));
    assert!(matches!(
        store.renew(9999, "w1", LONG).await,
        Err(StoreError::NoSuchJob(9999))
    ));
}

async fn release_gives_the_job_back(db: Db) {
    let store = db.open().await;
    let job = store.enqueue(push("web", "a", &[])).await.expect("enqueue");
    store
        .claim("w1", LONG, merge)
        .await
        .expect("claim")
        .expect("a job");
    assert!(!store.release(job, "w2").await.expect("release"));
    assert!(store.release(job, "w1").await.expect("release"));
    assert_eq!(
        store.job(job).await.expect("job").expect("exists").state,
        JobState::Queued
    );
    let again = store
        .claim("w2", LONG, merge)
        .await
        .expect("claim")
        .expect("a job");
    assert_eq!(again.job.id, job);
    assert_eq!(again.taken_over, None, "a released job was not taken over");
    assert_eq!(again.job.attempts, 2);
    assert!(!store.release(job, "w1").await.expect("release"));
}

async fn events_are_numbered_per_job(db: Db) {
    let store = db.open().await;
    let a = store.enqueue(push("web", "a", &[])).await.expect("enqueue");
    let b = store.enqueue(push("db", "b", &[])).await.expect("enqueue");
    for n in 1..=3 {
        store
            .append_event(a, json!({"type": "step", "n": n}))
            .await
            .expect("append");
    }
    store
        .append_event(b, json!({"type": "other"}))
        .await
        .expect("append");
    let all = store.events(a, 0).await.expect("events");
    let seqs: Vec<i64> = all.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert_eq!(all[2].event, json!({"type": "step", "n": 3}));
    assert!(all[0].at_ms > 0);
    let later = store.events(a, 1).await.expect("events");
    let ns: Vec<&Value> = later.iter().map(|e| &e.event["n"]).collect();
    assert_eq!(ns, [&json!(2), &json!(3)]);
    assert!(store.events(a, 3).await.expect("events").is_empty());
    let other = store.events(b, 0).await.expect("events");
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].seq, 1);
    assert!(matches!(
        store.append_event(9999, json!({})).await,
        Err(StoreError::NoSuchJob(9999))
    ));
}

async fn hosts_are_upserted_and_sorted(db: Db) {
    let store = db.open().await;
    store
        .record_applied("web2", "web", "c0ffee")
        .await
        .expect("record");
    store
        .record_bootstrap("db1", Some("ssh-ed25519 AAAA1"))
        .await
        .expect("record");
    store
        .record_bootstrap("web2", Some("ssh-ed25519 AAAA2"))
        .await
        .expect("record");
    store
        .record_applied("web2", "web", "beef")
        .await
        .expect("record");
    let hosts = store.hosts().await.expect("hosts");
    let names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["db1", "web2"]);
    let web2 = store.host("web2").await.expect("host").expect("known");
    assert_eq!(web2.host_key.as_deref(), Some("ssh-ed25519 AAAA2"));
    assert!(web2.bootstrapped_ms.is_some());
    assert_eq!(web2.role.as_deref(), Some("web"));
    assert_eq!(web2.applied_commit.as_deref(), Some("beef"));
    assert!(web2.applied_ms.is_some());
    let db1 = store.host("db1").await.expect("host").expect("known");
    assert_eq!(db1.role, None);
    assert_eq!(db1.applied_commit, None);
    assert!(store.host("nowhere").await.expect("host").is_none());
}

async fn jobs_are_listed_newest_first(db: Db) {
    let store = db.open().await;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(
            store
                .enqueue(push(&format!("k{n}"), "a", &[]))
                .await
                .expect("enqueue"),
        );
    }
    let listed: Vec<JobId> = store
        .jobs(3)
        .await
        .expect("jobs")
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(listed, [ids[4], ids[3], ids[2]]);
    assert!(store.job(9999).await.expect("job").is_none());
}

/// Two handles on one database (on PostgreSQL two pools of connections), each a
/// worker claiming in a loop: every job is claimed exactly once, and no two jobs of a
/// key ever run at once.
async fn two_workers_claim_each_job_once(db: Db) {
    const JOBS: usize = 100;
    const KEYS: usize = 6;
    let setup = db.open().await;
    let mut all = BTreeSet::new();
    for n in 0..JOBS {
        all.insert(
            setup
                .enqueue(push(&format!("key{}", n % KEYS), &n.to_string(), &[]))
                .await
                .expect("enqueue"),
        );
    }
    let mut workers = Vec::new();
    for worker in ["w1", "w2"] {
        let store = db.open().await;
        workers.push(tokio::spawn(async move {
            let mut claimed = Vec::new();
            let mut idle = 0;
            while idle < 20 {
                let Some(claim) = store.claim(worker, LONG, merge).await.expect("claim") else {
                    // The other worker may hold the only free key's job: wait a bit.
                    idle += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                idle = 0;
                let running: Vec<JobId> = store
                    .jobs(JOBS)
                    .await
                    .expect("jobs")
                    .into_iter()
                    .filter(|j| j.state == JobState::Running && j.key == claim.job.key)
                    .map(|j| j.id)
                    .collect();
                assert_eq!(running, [claim.job.id], "one running job per key");
                assert!(store
                    .finish(claim.job.id, worker, Outcome::Succeeded, json!(worker))
                    .await
                    .expect("finish"));
                claimed.push(claim.job.id);
            }
            claimed
        }));
    }
    let mut claimed = Vec::new();
    for worker in workers {
        claimed.extend(worker.await.expect("the worker does not panic"));
    }
    assert_eq!(claimed.len(), JOBS, "each job claimed once: {claimed:?}");
    assert_eq!(claimed.iter().copied().collect::<BTreeSet<_>>(), all);
    for job in setup.jobs(JOBS).await.expect("jobs") {
        assert_eq!(job.state, JobState::Succeeded);
        assert_eq!(job.attempts, 1);
    }
}

/// Deliveries of one key accepted through two handles while two workers claim and
/// finish jobs through two more: every push runs exactly once, in one job or merged
/// into one, and the runs of the key never overlap.
async fn concurrent_deliveries_and_claims_run_every_push_once(db: Db) {
    const PER_SENDER: usize = 40;
    let mut tasks = Vec::new();
    for side in ["a", "b"] {
        let store = db.open().await;
        tasks.push(tokio::spawn(async move {
            for n in 0..PER_SENDER {
                let file = format!("{side}{n:02}");
                let accepted = store
                    .accept(
                        delivery(&format!("{side}-{n}")),
                        Some(push("web", &file, &[&file])),
                    )
                    .await
                    .expect("accept");
                assert!(matches!(accepted, Accepted::Queued { .. }), "{accepted:?}");
            }
            Vec::new()
        }));
    }
    let senders_done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for worker in ["w1", "w2"] {
        let store = db.open().await;
        let senders_done = senders_done.clone();
        tasks.push(tokio::spawn(async move {
            let mut ran = Vec::new();
            loop {
                let done = senders_done.load(std::sync::atomic::Ordering::SeqCst) == 2;
                match store.claim(worker, LONG, merge).await.expect("claim") {
                    Some(claim) => {
                        // A run takes a while: pushes pile up behind it.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        assert!(store
                            .finish(claim.job.id, worker, Outcome::Succeeded, json!("ok"))
                            .await
                            .expect("finish"));
                        ran.push(claim.job);
                    }
                    None if done => return ran,
                    None => tokio::time::sleep(Duration::from_millis(1)).await,
                }
            }
        }));
    }
    let workers = tasks.split_off(2);
    for sender in tasks {
        sender.await.expect("the sender does not panic");
        senders_done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    let mut ran = Vec::new();
    for worker in workers {
        ran.extend(worker.await.expect("the worker does not panic"));
    }
    let mut files = Vec::new();
    let mut deliveries = 0;
    for job in &ran {
        files.extend(
            job.payload["files"]
                .as_array()
                .expect("files")
                .iter()
                .map(|f| f.as_str().expect("a file").to_string()),
        );
        deliveries += job.deliveries.len();
    }
    files.sort();
    let expected: Vec<String> = ["a", "b"]
        .iter()
        .flat_map(|side| (0..PER_SENDER).map(move |n| format!("{side}{n:02}")))
        .collect();
    assert_eq!(files, expected, "every push ran exactly once");
    assert_eq!(
        deliveries,
        2 * PER_SENDER,
        "each delivery names the job it ran in"
    );
    assert!(
        ran.len() < 2 * PER_SENDER,
        "pushes queued behind a run merged ({} runs)",
        ran.len()
    );
    let store = db.open().await;
    let jobs = store.jobs(1000).await.expect("jobs");
    assert_eq!(jobs.len(), 2 * PER_SENDER);
    for job in &jobs {
        match job.state {
            JobState::Succeeded => assert!(ran.iter().any(|r| r.id == job.id)),
            JobState::Merged => {
                let into = job.merged_into.expect("merged into a job");
                assert!(into < job.id && ran.iter().any(|r| r.id == into), "{job:?}");
            }
            other => panic!("job #{} ended {other:?}", job.id),
        }
    }
    let mut runs: Vec<(i64, i64)> = jobs
        .iter()
        .filter(|j| j.state == JobState::Succeeded)
        .map(|j| (j.started_ms.unwrap_or(0), j.finished_ms.unwrap_or(0)))
        .collect();
    runs.sort();
    for pair in runs.windows(2) {
        assert!(
            pair[0].1 <= pair[1].0,
            "two runs of one key overlapped: {pair:?}"
        );
    }
}

/// One delivery sent twenty times at once (a git host retrying, on PostgreSQL possibly
/// within one group commit): one job, and every other answer names it.
async fn a_delivery_sent_many_times_at_once_queues_one_job(db: Db) {
    let store = db.open().await;
    let mut sends = Vec::new();
    for _ in 0..20 {
        let store = store.clone();
        sends.push(tokio::spawn(async move {
            store
                .accept(delivery("same"), Some(push("web", "a", &["x"])))
                .await
                .expect("accept")
        }));
    }
    let mut answers = Vec::new();
    for send in sends {
        answers.push(send.await.expect("the sender does not panic"));
    }
    let queued: Vec<JobId> = answers
        .iter()
        .filter_map(|a| match a {
            Accepted::Queued { job } => Some(*job),
            _ => None,
        })
        .collect();
    assert_eq!(queued.len(), 1, "{answers:?}");
    for answer in &answers {
        assert!(
            *answer == Accepted::Queued { job: queued[0] }
                || *answer
                    == Accepted::Duplicate {
                        job: Some(queued[0])
                    },
            "{answer:?}"
        );
    }
    assert_eq!(store.jobs(10).await.expect("jobs").len(), 1);
    assert_eq!(store.deliveries(10).await.expect("deliveries").len(), 1);
}

/// A store written by a toyc before merging moved to the claim (schema version 1, with
/// a queued job) is upgraded when opened, and its job runs.
async fn a_version_1_store_is_upgraded(db: Db) {
    let store = db.open().await;
    let old = store
        .enqueue(push("web", "a", &["x"]))
        .await
        .expect("enqueue");
    drop(store);
    db.raw(
        "DROP INDEX jobs_key_state_id;
         ALTER TABLE jobs DROP COLUMN mergeable; ALTER TABLE jobs DROP COLUMN merged_into;
         DELETE FROM schema_version WHERE version > 1;",
    )
    .await;
    let store = db.open().await;
    let Accepted::Queued { job: new } = store
        .accept(delivery("d1"), Some(push("web", "b", &["y"])))
        .await
        .expect("accept")
    else {
        panic!("a delivery queues a job");
    };
    let claim = store
        .claim("w", LONG, merge)
        .await
        .expect("claim")
        .expect("a job");
    assert_eq!(claim.job.id, old);
    assert_eq!(
        claim.job.payload,
        json!({"commit": "a", "files": ["x"]}),
        "an old job never merges"
    );
    assert_eq!(claim.job.merged_into, None);
    assert_eq!(
        store.job(new).await.expect("job").expect("exists").state,
        JobState::Queued
    );
}

async fn wait_for_work_wakes_on_a_new_job(db: Db) {
    let waiter = db.open().await;
    // A permit left by a change nobody waited for: the next wait returns at once.
    waiter
        .enqueue(push("web", "a", &[]))
        .await
        .expect("enqueue");
    let started = Instant::now();
    waiter.wait_for_work(LONG).await;
    assert!(started.elapsed() < Duration::from_secs(5));

    // Another handle (on SQLite in the same process, on PostgreSQL through NOTIFY).
    let writer = db.open().await;
    // Let a notification of the setup arrive before waiting for the real one.
    tokio::time::sleep(Duration::from_millis(200)).await;
    waiter.wait_for_work(Duration::from_millis(10)).await;
    let started = Instant::now();
    let waiting = {
        let waiter = waiter.clone();
        tokio::spawn(async move { waiter.wait_for_work(LONG).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    writer.enqueue(push("db", "b", &[])).await.expect("enqueue");
    tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the waiter wakes up well before its timeout")
        .expect("the waiter does not panic");
    assert!(started.elapsed() < Duration::from_secs(10));

    // Nothing happens: the timeout ends the wait.
    tokio::time::sleep(Duration::from_millis(200)).await;
    waiter.wait_for_work(Duration::from_millis(10)).await;
    let started = Instant::now();
    waiter.wait_for_work(Duration::from_millis(300)).await;
    assert!(started.elapsed() >= Duration::from_millis(290));
}

/// A store opened twice (a daemon restarted) keeps its data and its schema.
async fn reopening_keeps_the_queue(db: Db) {
    let job = {
        let store = db.open().await;
        store.enqueue(push("web", "a", &[])).await.expect("enqueue")
    };
    let store = db.open().await;
    let claim = store
        .claim("w", LONG, merge)
        .await
        .expect("claim")
        .expect("a job");
    assert_eq!(claim.job.id, job);
}

/// A worker process killed (SIGKILL) in the middle of a job, while this process has
/// the same store open: what it committed is there, and its job is taken over once its
/// lease expires.
async fn a_worker_killed_mid_job_loses_nothing(db: Db) {
    use std::io::BufRead;
    let store = db.open().await;
    let mut child = Reaped(
        std::process::Command::new(std::env::current_exe().expect("the test binary"))
            .args(["--exact", "child_worker", "--ignored", "--nocapture"])
            .env(CHILD_STORE, &db.location)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("the child worker starts"),
    );
    let stdout = child.0.stdout.take().expect("a piped stdout");
    let job: JobId = tokio::task::spawn_blocking(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.expect("the child's output");
            if let Some(id) = line.strip_prefix("claimed ") {
                return id.parse().expect("a job id");
            }
        }
        panic!("the child worker ended without claiming");
    })
    .await
    .expect("reading the child's output");
    child.0.kill().expect("SIGKILL the child");
    child.0.wait().expect("the child is gone");

    let orphan = store
        .job(job)
        .await
        .expect("job")
        .expect("committed before the kill");
    assert_eq!(orphan.state, JobState::Running);
    assert_eq!(orphan.worker.as_deref(), Some("child"));
    assert!(
        store
            .claim("parent", LONG, merge)
            .await
            .expect("claim")
            .is_none(),
        "its lease is still live"
    );
    tokio::time::sleep(CHILD_LEASE + Duration::from_millis(200)).await;
    let claim = store
        .claim("parent", LONG, merge)
        .await
        .expect("claim")
        .expect("a job");
    assert_eq!(claim.job.id, job);
    assert_eq!(claim.taken_over.as_deref(), Some("child"));
    assert_eq!(claim.job.attempts, 2);
    let events = store.events(job, 0).await.expect("events");
    assert_eq!(events.len(), 1, "the child's event survived: {events:?}");
    assert!(store
        .finish(job, "parent", Outcome::Succeeded, json!("ok"))
        .await
        .expect("finish"));
}

/// A child process killed when the test ends, even by a failed assertion.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The store the child worker opens.
const CHILD_STORE: &str = "TOYC_STORE_TEST_CHILD";
/// The child worker's lease.
const CHILD_LEASE: Duration = Duration::from_millis(800);

/// The child worker of [`a_worker_killed_mid_job_loses_nothing`]: queues and claims a
/// job, logs an event, says so, and waits to be killed.
#[tokio::test]
#[ignore = "a child process of a_worker_killed_mid_job_loses_nothing"]
async fn child_worker() {
    use std::io::Write;
    let Ok(location) = std::env::var(CHILD_STORE) else {
        return;
    };
    let store = toyc_store::open(&location)
        .await
        .expect("the child opens the store");
    let job = store.enqueue(push("web", "a", &[])).await.expect("enqueue");
    let claim = store
        .claim("child", CHILD_LEASE, merge)
        .await
        .expect("claim")
        .expect("the child's job");
    assert_eq!(claim.job.id, job);
    store
        .append_event(job, json!({"type": "step_start"}))
        .await
        .expect("append");
    let mut stdout = std::io::stdout();
    writeln!(stdout, "claimed {job}").expect("stdout");
    stdout.flush().expect("stdout");
    tokio::time::sleep(Duration::from_secs(3600)).await;
}

macro_rules! suite {
    ($backend:ident, $db:ident: $($case:ident),* $(,)?) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::$db().await).await;
                }
            )*
        }
    };
}

macro_rules! both {
    ($($case:ident),* $(,)?) => {
        suite!(sqlite, sqlite: $($case),*);
        suite!(postgresql, postgresql: $($case),*);
    };
}

both!(
    accept_queues_and_refuses_a_duplicate,
    queued_jobs_of_a_key_merge_when_the_first_is_claimed,
    accept_behind_a_running_job_queues_a_new_one,
    ignored_deliveries_are_recorded_once,
    claim_takes_the_oldest_job_of_a_free_key,
    an_expired_lease_is_taken_over_and_the_loser_cannot_finish,
    renew_holds_and_reports_a_cancel,
    release_gives_the_job_back,
    events_are_numbered_per_job,
    hosts_are_upserted_and_sorted,
    jobs_are_listed_newest_first,
    two_workers_claim_each_job_once,
    concurrent_deliveries_and_claims_run_every_push_once,
    wait_for_work_wakes_on_a_new_job,
    reopening_keeps_the_queue,
    a_version_1_store_is_upgraded,
    a_delivery_sent_many_times_at_once_queues_one_job,
    a_worker_killed_mid_job_loses_nothing,
    program_records_survive_a_reopen,
);

async fn programs_of(db: &Db) -> Box<dyn ProgramStore> {
    toyc_store::open_programs(&db.location)
        .await
        .expect("the test's store opens for programs")
}

async fn program_records_survive_a_reopen(db: Db) {
    let store = programs_of(&db).await;
    assert_eq!(store.program("web").await.expect("read"), None);
    let mut web = ProgramRecord {
        name: "web".into(),
        deployed: Some("b".repeat(40)),
        previous: Some("a".repeat(40)),
        restarts: 3,
        pid: Some(4242),
        pid_started: Some(99),
        started_ms: Some(1),
        stopped: false,
        last_deploy: Some(json!({"commit": "b", "outcome": "deployed"})),
    };
    store.save_program(&web).await.expect("save");
    web.restarts = 4;
    store.save_program(&web).await.expect("save again");
    store
        .save_program(&ProgramRecord {
            name: "api".into(),
            ..ProgramRecord::default()
        })
        .await
        .expect("save another");
    store
        .mark_bad("web", "c1", "verify failed")
        .await
        .expect("bad");
    store
        .mark_bad("web", "c1", "again")
        .await
        .expect("bad twice");
    store.mark_bad("api", "c2", "health").await.expect("bad");
    drop(store);

    let store = programs_of(&db).await;
    assert_eq!(store.program("web").await.expect("read"), Some(web));
    let names: Vec<String> = store
        .programs()
        .await
        .expect("list")
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["api", "web"]);
    let bad = store.bad_commits("web").await.expect("bad commits");
    assert_eq!(bad.len(), 1);
    assert_eq!(
        (bad[0].commit.as_str(), bad[0].reason.as_str()),
        ("c1", "verify failed")
    );
    store.forget_program("web").await.expect("forget");
    assert_eq!(store.program("web").await.expect("read"), None);
    assert_eq!(
        store.bad_commits("web").await.expect("bad commits").len(),
        1,
        "a forgotten program's bad commits stay bad"
    );
    // The queue's store opens the same file, tables and all.
    let queue = db.open().await;
    assert!(queue.jobs(10).await.expect("jobs").is_empty());
}

#[tokio::test]
async fn a_password_never_shows_in_an_error() {
    let error = toyc_store::open("postgres://toyc:hunter2@%2Fnonexistent%2Fsocket:5432/toyc")
        .await
        .err()
        .expect("no server listens there");
    let message = error.to_string();
    assert!(!message.contains("hunter2"), "{message}");
    assert!(message.contains("postgres://toyc:***@"), "{message}");
}

#[tokio::test]
async fn a_postgresql_error_carries_the_servers_message() {
    let db = postgresql().await;
    let (base, _) = db.location.rsplit_once('/').expect("a database in the URL");
    let error = toyc_store::open(&format!("{base}/no_such_database"))
        .await
        .err()
        .expect("the database does not exist");
    let message = error.to_string();
    assert!(
        message.contains("database \"no_such_database\" does not exist"),
        "{message}"
    );
}

#[tokio::test]
async fn sqlite_refuses_a_newer_schema() {
    let db = sqlite().await;
    drop(db.open().await);
    let conn = rusqlite::Connection::open(&db.location).expect("open the file");
    conn.execute("UPDATE schema_version SET version = 99", [])
        .expect("update");
    drop(conn);
    let error = toyc_store::open(&db.location)
        .await
        .err()
        .expect("a newer schema is refused");
    assert!(error.to_string().contains("schema version 99"), "{error}");
}

#[tokio::test]
async fn sqlite_reports_an_unusable_path() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("file");
    std::fs::write(&file, "").expect("write");
    let error = toyc_store::open(file.join("toyc.db").to_str().expect("UTF-8"))
        .await
        .err()
        .expect("a path under a file cannot be a store");
    assert!(matches!(error, StoreError::Open { .. }), "{error}");
}
