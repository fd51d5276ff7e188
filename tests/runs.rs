//! The engine's one entry point, in process: a run is a value, so one process (a daemon,
//! a supervisor) runs several jobs at once, each with its own secrets and cancellation.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use toyc_engine::events::{Event, EventSink, FailureKind, HostStatus};
use toyc_engine::inventory::{Host, Inventory};
use toyc_engine::run::{Approve, Job, RunContext, RunbookJob, RunbookSource, Verdict};
use toyc_engine::sandbox::Limits;
use toyc_engine::secrets::Secrets;
use toyc_engine::transport::SshOptions;

use crate::support::hosts;

/// Every event of one run, as `--json` would print it: masked with that run's secrets.
struct Capture {
    secrets: Secrets,
    lines: Mutex<Vec<String>>,
}

impl EventSink for Capture {
    fn emit(&self, event: &Event) {
        let line = serde_json::to_string(event).expect("an event serializes");
        let masked = self.secrets.redact(&line).into_owned();
        self.lines.lock().expect("lines").push(masked);
    }
}

/// A run of `script` on `hosts`, reporting to its own capture.
fn job(dir: &Path, script: &str, source: &str, hosts: &[Host]) -> (Job, RunContext, Arc<Capture>) {
    std::fs::write(dir.join(script), source).expect("write the script");
    let run_dir = tempfile::Builder::new()
        .prefix("toyc-t-")
        .tempdir_in("/tmp")
        .expect("run dir");
    let mut ssh = SshOptions::new(PathBuf::from(run_dir.path()));
    ssh.write_config(run_dir.path(), None).expect("ssh config");
    ssh.run_dir = Some(Arc::new(run_dir));
    let run = RunContext::new(ssh, Limits::default());
    let capture = Arc::new(Capture {
        secrets: run.secrets.clone(),
        lines: Mutex::new(Vec::new()),
    });
    let run = run.with_events(Arc::clone(&capture) as Arc<dyn EventSink>);
    let job = Job::Runbook(RunbookJob {
        hosts: hosts.to_vec(),
        source: RunbookSource::Script {
            path: dir.join(script),
            root: dir.to_owned(),
        },
        vars: serde_json::Map::new(),
        sudo: false,
        command_timeout: None,
        check: false,
        diff: false,
        forks: 10,
        max_cycles: None,
        after_apply: None,
    });
    (job, run, capture)
}

#[test]
fn two_jobs_in_one_process_keep_their_secrets_and_cancellation_apart() {
    let Some(pool) = hosts::shared() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("inv.yml"),
        pool.inventory_of("root", &[7, 8]),
    )
    .expect("write the inventory");
    let inventory = Inventory::load(&dir.path().join("inv.yml")).expect("inventory");
    let hosts: Vec<Host> = inventory
        .select(None)
        .expect("hosts")
        .into_iter()
        .cloned()
        .collect();
    let target = format!("/tmp/toyc-two-jobs-{}", std::process::id());
    // Job A marks its own secret, prints it and B's (which is no secret to A), and makes
    // a change after a pause that B's cancellation must not cut short.
    let (a_job, a_run, a_seen) = job(
        dir.path(),
        "a.rhai",
        &format!(
            r#"let s = secret("alpha-s3cret-value");
print(`A: ${{s}} and beta-s3cret-value`);
host::exec("sleep 2");
files::content("{target}", "from A\n");"#
        ),
        &hosts,
    );
    // Job B marks its own secret and waits far longer than the test does.
    let (b_job, b_run, b_seen) = job(
        dir.path(),
        "b.rhai",
        r#"let s = secret("beta-s3cret-value");
print(`B: ${s} and alpha-s3cret-value`);
host::exec("sleep 60");"#,
        &hosts,
    );
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let started = Instant::now();
    let (a, b) = runtime.block_on(async {
        let b_cancel = b_run.cancel.clone();
        let cancel_b = async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            b_cancel.cancel();
        };
        let a = toyc_engine::run::run(a_job, &a_run, &toyc_stdlib::Library, &Approve);
        let b = toyc_engine::run::run(b_job, &b_run, &toyc_stdlib::Library, &Approve);
        let (a, b, ()) = tokio::join!(a, b, cancel_b);
        (a.expect("job A runs"), b.expect("job B runs"))
    });
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "cancelling B ends it at once"
    );

    // A finished normally: both hosts changed, its secret masked, B's in clear.
    assert_eq!(a.verdict, Verdict::Done);
    assert_eq!(a.summary.ok, 2, "{:?}", a.results);
    assert_eq!(a.summary.changed, 2, "{:?}", a.results);
    let a_text = a_seen.lines.lock().expect("lines").join("\n");
    assert!(
        a_text.contains("A: ******** and beta-s3cret-value"),
        "{a_text}"
    );
    assert!(!a_text.contains("alpha-s3cret-value"), "{a_text}");
    for i in [7, 8] {
        let cat = pool.docker_exec(i, &format!("cat {target}; rm -f {target}"));
        assert_eq!(String::from_utf8_lossy(&cat.stdout), "from A\n");
    }

    // B was cancelled, and says so; it masked its own secret only.
    assert_eq!(b.results.len(), 2, "{:?}", b.results);
    assert!(
        b.results
            .iter()
            .all(|r| r.status == HostStatus::Failed && r.kind == Some(FailureKind::Cancelled)),
        "{:?}",
        b.results
    );
    assert!(
        b.results
            .iter()
            .all(|r| r.error.as_deref().is_some_and(|e| e.contains("cancelled"))),
        "{:?}",
        b.results
    );
    let b_text = b_seen.lines.lock().expect("lines").join("\n");
    assert!(
        b_text.contains("B: ******** and alpha-s3cret-value"),
        "{b_text}"
    );
    assert!(!b_text.contains("beta-s3cret-value"), "{b_text}");
}
