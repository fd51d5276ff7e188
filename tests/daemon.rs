//! `toyc daemon`: the real binary on port 0, real bare git repos with real pushes,
//! deliveries signed exactly as GitHub, Gitea and GitLab sign them, real container
//! hosts, a real SQLite store (and PostgreSQL in its own test).
//!
//! Each test uses its own role (so host records do not collide) and its own directory
//! on the hosts, under /tmp/toyc-daemon-ROLE.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::roles::git;
use crate::support::cli::binary;
use crate::support::hosts::{self, HostPool};

const SECRET: &str = "webhook-s3cret";

/// A role repo: a working repo and the bare repo it pushes to (the "git host").
pub(crate) struct RoleRepo {
    pub work: PathBuf,
    pub url: String,
}

impl RoleRepo {
    /// A repo holding `files` (path, content), committed on `main` and pushed.
    pub fn new(scratch: &Path, name: &str, files: &[(&str, &str)]) -> RoleRepo {
        let work = scratch.join(name);
        std::fs::create_dir_all(&work).expect("mkdir");
        git(&work, &["init", "-q", "-b", "main"], &[]);
        let bare = scratch.join(format!("{name}.git"));
        git(
            scratch,
            &[
                "init",
                "-q",
                "--bare",
                "-b",
                "main",
                bare.to_str().expect("utf-8"),
            ],
            &[],
        );
        git(
            &work,
            &["remote", "add", "origin", bare.to_str().expect("utf-8")],
            &[],
        );
        let repo = RoleRepo {
            work,
            url: format!("file://{}", bare.display()),
        };
        repo.commit(files, "the role");
        repo
    }

    /// Write `files`, commit, push; returns (before, after) as a push webhook tells them.
    pub fn commit(&self, files: &[(&str, &str)], message: &str) -> (String, String) {
        let before = self.head().unwrap_or_else(|| "0".repeat(40));
        for (path, content) in files {
            let path = self.work.join(path);
            std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
            std::fs::write(&path, content).expect("write");
        }
        git(&self.work, &["add", "-A"], &[]);
        git(
            &self.work,
            &["commit", "-q", "--allow-empty", "-m", message],
            &[],
        );
        git(&self.work, &["push", "-q", "origin", "main"], &[]);
        (before, self.head().expect("a commit"))
    }

    fn head(&self) -> Option<String> {
        let out = Command::new("git")
            .args(["rev-parse", "--verify", "-q", "HEAD"])
            .current_dir(&self.work)
            .output()
            .expect("git");
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}

/// A GitHub push payload.
pub(crate) fn push_body(repo: &str, branch: &str, before: &str, after: &str) -> Vec<u8> {
    json!({
        "ref": format!("refs/heads/{branch}"),
        "before": before,
        "after": after,
        "forced": false,
        "repository": {"full_name": repo, "clone_url": "https://example.invalid/x.git"},
        "commits": [],
    })
    .to_string()
    .into_bytes()
}

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// A running daemon; killed (SIGKILL) when dropped.
pub(crate) struct Daemon {
    child: Option<Child>,
    pub url: String,
    log: Arc<Mutex<String>>,
}

impl Daemon {
    /// `toyc daemon --config CONFIG` with its state in `state`, listening on port 0.
    pub fn start(config: &Path, state: &Path, extra: &[&str]) -> Daemon {
        let listen: &[&str] = if extra.contains(&"--listen") {
            &[]
        } else {
            &["--listen", "127.0.0.1:0"]
        };
        let mut child = Command::new(binary())
            .args(["daemon", "--config"])
            .arg(config)
            .args(listen)
            .args(extra)
            .env("TOYC_STATE_DIR", state)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the daemon starts");
        let stderr = child.stderr.take().expect("piped");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("toyc daemon: listening on ") {
                    let _ = tx.send(url.to_owned());
                }
                let mut log = sink.lock().expect("log lock");
                log.push_str(&line);
                log.push('\n');
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the daemon did not start listening:\n{}",
                    log.lock().expect("log lock")
                );
            }
        };
        Daemon {
            child: Some(child),
            url,
            log,
        }
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        self.log.lock().expect("log lock").clone()
    }

    /// `kill -9`.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait for it to exit; its exit code.
    pub fn terminate(&mut self, limit: Duration) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// POST a GitHub delivery signed with `secret` (none: unsigned).
    pub fn github(&self, body: &[u8], delivery: &str, secret: Option<&str>) -> (u16, Value) {
        let mut headers = vec![
            ("X-GitHub-Event", "push".to_owned()),
            ("X-GitHub-Delivery", delivery.to_owned()),
        ];
        if let Some(secret) = secret {
            headers.push((
                "X-Hub-Signature-256",
                format!("sha256={}", hmac_hex(secret, body)),
            ));
        }
        self.post("/hooks/github", body, &headers)
    }

    /// POST `body` to `path` with `headers`.
    pub fn post(&self, path: &str, body: &[u8], headers: &[(&str, String)]) -> (u16, Value) {
        let client = reqwest::blocking::Client::new();
        let mut request = client
            .post(format!("{}{path}", self.url))
            .header("Content-Type", "application/json")
            .body(body.to_vec());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().expect("the daemon answers");
        let status = response.status().as_u16();
        let text = response.text().unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// GET an API path, as JSON.
    pub fn get(&self, path: &str) -> Value {
        let response = reqwest::blocking::get(format!("{}{path}", self.url)).expect("answers");
        assert!(
            response.status().is_success(),
            "GET {path}: {}",
            response.status()
        );
        response.json().expect("JSON")
    }

    /// Wait until job `id` is final; returns it.
    pub fn wait_job(&self, id: i64, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let job = self.get(&format!("/api/jobs/{id}"));
            let state = job["job"]["state"].as_str().unwrap_or("").to_owned();
            if ["succeeded", "failed", "cancelled"].contains(&state.as_str()) {
                return job;
            }
            assert!(
                Instant::now() < deadline,
                "job #{id} still {state} after {limit:?}:\n{job:#}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A daemon configuration for `repos` (full name, url, role, hosts pattern) in `dir`,
/// with the pool's inventory; returns its path.
pub(crate) fn write_config(
    dir: &Path,
    pool: &HostPool,
    hosts: &[usize],
    repos: &[(&str, &str, &str)],
    extra: &str,
) -> PathBuf {
    let mut inventory = pool.inventory_of("root", hosts);
    let names: Vec<&str> = hosts
        .iter()
        .map(|&i| pool.hosts()[i].name.as_str())
        .collect();
    inventory.push_str("groups:\n");
    for (_, _, role) in repos {
        inventory.push_str(&format!("  {role}:\n    hosts: [{}]\n", names.join(", ")));
    }
    std::fs::write(dir.join("inventory.yml"), inventory).expect("inventory");
    std::fs::write(
        dir.join("secrets.yml"),
        format!("webhook: {SECRET}\nrepos:\n  acme/other: other-secret\n"),
    )
    .expect("secrets");
    let mut config = String::from(
        "inventory: inventory.yml\nsecrets_file: secrets.yml\nlease_seconds: 3\n\
         shutdown_timeout_seconds: 5\nconnect_timeout_seconds: 10\n",
    );
    config.push_str(extra);
    config.push_str("repos:\n");
    for (name, url, role) in repos {
        config.push_str(&format!(
            "  {name}:\n    url: \"{url}\"\n    role: {role}\n"
        ));
    }
    let path = dir.join("daemon.yml");
    std::fs::write(&path, config).expect("config");
    path
}

fn host_file(pool: &HostPool, i: usize, path: &str) -> String {
    let out = pool.docker_exec(i, &format!("cat {path} 2>/dev/null || echo MISSING"));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn queued(answer: &(u16, Value)) -> i64 {
    assert_eq!(answer.0, 202, "not accepted: {answer:?}");
    answer.1["queued"]
        .as_i64()
        .unwrap_or_else(|| panic!("no job in {answer:?}"))
}

/// The log lines of a job's events.
fn messages(job: &Value) -> Vec<String> {
    job["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["event"]["data"]["message"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn a_push_bootstraps_new_hosts_then_applies_only_what_it_changed_on_every_host() {
    let Some(pool) = hosts::shared() else { return };
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = "/tmp/toyc-daemon-dinc";
    let runbook = format!(
        "if changed(\"templates/a.j2\") {{ files::template(\"a.j2\", \"{dir}/a.conf\"); }}\n\
         if changed(\"templates/b.j2\") {{ files::template(\"b.j2\", \"{dir}/b.conf\"); }}\n"
    );
    let bootstrap = format!("files::directory(\"{dir}\", #{{ mode: \"0755\" }});\nfiles::content(\"{dir}/bootstrapped\", \"yes\\n\");\n");
    let repo = RoleRepo::new(
        scratch.path(),
        "dinc",
        &[
            ("runbook.rhai", &runbook),
            ("bootstrap.rhai", &bootstrap),
            ("templates/a.j2", "a1 for {{ role }}\n"),
            ("templates/b.j2", "b1\n"),
        ],
    );
    for i in [2, 3] {
        pool.docker_exec(i, &format!("rm -rf {dir}"));
    }
    let config = write_config(
        scratch.path(),
        pool,
        &[2, 3],
        &[("acme/dinc", &repo.url, "dinc")],
        "",
    );
    let state = scratch.path().join("state");
    let daemon = Daemon::start(&config, &state, &[]);

    // The first push: a new branch, so a full run, after bootstrapping both hosts.
    let (before, after) = ("0".repeat(40), repo.commit(&[], "nothing").1);
    let started = Instant::now();
    let answer = daemon.github(
        &push_body("acme/dinc", "main", &before, &after),
        "d-1",
        Some(SECRET),
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "answered in {:?}",
        started.elapsed()
    );
    let first = daemon.wait_job(queued(&answer), Duration::from_secs(90));
    assert_eq!(
        first["job"]["state"],
        "succeeded",
        "{first:#}\n{}",
        daemon.log()
    );
    let log = messages(&first);
    assert!(
        log.iter()
            .any(|m| m.contains("bootstrapping 2 new host(s)")),
        "{log:?}"
    );
    assert!(
        log.iter().any(|m| m.contains("full run: a new branch")),
        "{log:?}"
    );
    for i in [2, 3] {
        assert_eq!(host_file(pool, i, &format!("{dir}/bootstrapped")), "yes");
        assert_eq!(host_file(pool, i, &format!("{dir}/a.conf")), "a1 for dinc");
        assert_eq!(host_file(pool, i, &format!("{dir}/b.conf")), "b1");
    }
    let hosts = daemon.get("/api/hosts");
    for host in hosts.as_array().expect("hosts") {
        assert!(host["bootstrapped_ms"].is_i64(), "{hosts:#}");
        assert!(
            host["host_key"]
                .as_str()
                .is_some_and(|k| k.starts_with("ssh-ed25519 ")),
            "{hosts:#}"
        );
        assert_eq!(
            host["applied_commit"].as_str(),
            Some(after.as_str()),
            "{hosts:#}"
        );
    }

    // A host's b.conf drifts; a push that changes only a.j2 leaves b.conf alone and does
    // not bootstrap again.
    pool.docker_exec(
        2,
        &format!("echo drifted > {dir}/b.conf; rm {dir}/bootstrapped"),
    );
    let (before, after) = repo.commit(&[("templates/a.j2", "a2 for {{ role }}\n")], "a2");
    let answer = daemon.github(
        &push_body("acme/dinc", "main", &before, &after),
        "d-2",
        Some(SECRET),
    );
    let second = daemon.wait_job(queued(&answer), Duration::from_secs(60));
    assert_eq!(second["job"]["state"], "succeeded", "{second:#}");
    let log = messages(&second);
    assert!(
        log.iter()
            .any(|m| m.contains("1 file(s) changed: templates/a.j2")),
        "the header names the files: {log:?}"
    );
    assert!(!log.iter().any(|m| m.contains("bootstrapping")), "{log:?}");
    for i in [2, 3] {
        assert_eq!(host_file(pool, i, &format!("{dir}/a.conf")), "a2 for dinc");
    }
    assert_eq!(host_file(pool, 2, &format!("{dir}/b.conf")), "drifted");
    assert_eq!(
        host_file(pool, 2, &format!("{dir}/bootstrapped")),
        "MISSING"
    );
    let summary = &second["job"]["result"]["summary"];
    assert_eq!(summary["changed"], 2, "one file on each host: {second:#}");
}

#[test]
fn forged_replayed_oversized_malformed_and_unknown_deliveries_are_refused_and_queue_nothing() {
    let Some(pool) = hosts::shared() else { return };
    let scratch = tempfile::tempdir().expect("tempdir");
    let repo = RoleRepo::new(
        scratch.path(),
        "drefuse",
        &[("runbook.rhai", "// nothing to do\n")],
    );
    let config = write_config(
        scratch.path(),
        pool,
        &[4],
        &[
            ("acme/drefuse", &repo.url, "drefuse"),
            ("acme/other", &repo.url, "dother"),
        ],
        "body_limit: 4096\n",
    );
    let daemon = Daemon::start(&config, &scratch.path().join("state"), &[]);
    let head = repo.commit(&[("x", "1")], "x").1;
    let body = push_body("acme/drefuse", "main", &"1".repeat(40), &head);

    let refused = |answer: (u16, Value), status: u16, what: &str| {
        assert_eq!(answer.0, status, "{what}: {answer:?}");
    };
    let ping = daemon.post(
        "/hooks/github",
        b"{\"zen\": \"hi\"}",
        &[
            ("X-GitHub-Event", "ping".into()),
            (
                "X-Hub-Signature-256",
                format!("sha256={}", hmac_hex(SECRET, b"{\"zen\": \"hi\"}")),
            ),
        ],
    );
    assert_eq!((ping.0, &ping.1["pong"]), (200, &json!(true)), "{ping:?}");
    refused(daemon.github(&body, "r-1", None), 401, "unsigned");
    refused(
        daemon.github(&body, "r-2", Some("wrong")),
        401,
        "wrong secret",
    );
    // Signed with acme/other's own secret, for acme/drefuse: refused.
    refused(
        daemon.github(&body, "r-3", Some("other-secret")),
        401,
        "another repo's secret",
    );
    let mut tampered = body.clone();
    let signature = format!("sha256={}", hmac_hex(SECRET, &body));
    tampered.extend_from_slice(b" ");
    refused(
        daemon.post(
            "/hooks/github",
            &tampered,
            &[
                ("X-GitHub-Event", "push".into()),
                ("X-Hub-Signature-256", signature),
            ],
        ),
        401,
        "a body changed after signing",
    );
    let big = push_body("acme/drefuse", "main", &"1".repeat(40), &"2".repeat(5000));
    refused(
        daemon.github(&big, "r-4", Some(SECRET)),
        413,
        "over the body limit",
    );
    refused(
        daemon.github(b"{\"ref\": ", "r-5", Some(SECRET)),
        400,
        "malformed JSON",
    );
    let unknown = push_body("acme/nope", "main", &"1".repeat(40), &head);
    refused(
        daemon.github(&unknown, "r-6", Some(SECRET)),
        404,
        "unknown repo",
    );
    let (status, answer) = daemon.github(
        &push_body("acme/drefuse", "dev", &"1".repeat(40), &head),
        "r-7",
        Some(SECRET),
    );
    assert_eq!(
        (status, &answer["ignored"]),
        (200, &json!(true)),
        "untracked branch: {answer}"
    );
    assert!(daemon.get("/api/jobs").as_array().expect("jobs").is_empty());

    // Accepted once; the same delivery again is a duplicate.
    let job = queued(&daemon.github(&body, "r-8", Some(SECRET)));
    let (status, answer) = daemon.github(&body, "r-8", Some(SECRET));
    assert_eq!(
        (status, &answer["duplicate"]),
        (200, &json!(true)),
        "{answer}"
    );
    // Gitea and GitLab deliveries, signed their way.
    let gitea = daemon.post(
        "/hooks/gitea",
        &body,
        &[
            ("X-Gitea-Event", "push".into()),
            ("X-Gitea-Delivery", "g-1".into()),
            ("X-Gitea-Signature", hmac_hex(SECRET, &body)),
        ],
    );
    let gitlab_body = json!({"ref": "refs/heads/main", "before": "1".repeat(40), "after": head,
        "project": {"path_with_namespace": "acme/drefuse"}})
    .to_string()
    .into_bytes();
    let gitlab = daemon.post(
        "/hooks/gitlab",
        &gitlab_body,
        &[
            ("X-Gitlab-Event", "Push Hook".into()),
            ("Idempotency-Key", "l-1".into()),
            ("X-Gitlab-Token", SECRET.into()),
        ],
    );
    let wrong_token = daemon.post(
        "/hooks/gitlab",
        &gitlab_body,
        &[
            ("X-Gitlab-Event", "Push Hook".into()),
            ("X-Gitlab-Token", "nope".into()),
        ],
    );
    assert_eq!(wrong_token.0, 401, "{wrong_token:?}");
    for answer in [&gitea, &gitlab] {
        assert!(answer.0 == 202, "{answer:?}");
    }
    let jobs = daemon.get("/api/jobs");
    let ids: Vec<i64> = jobs
        .as_array()
        .expect("jobs")
        .iter()
        .filter_map(|j| j["id"].as_i64())
        .collect();
    assert!(ids.contains(&job), "{jobs:#}");
    let deliveries = daemon.get("/api/deliveries");
    let recorded: Vec<&str> = deliveries
        .as_array()
        .expect("deliveries")
        .iter()
        .filter_map(|d| d["id"].as_str())
        .collect();
    assert_eq!(
        recorded.len(),
        4,
        "r-7 (ignored), r-8, g-1 and l-1 only: {deliveries:#}"
    );
}

#[test]
fn a_daemon_killed_right_after_the_2xx_runs_the_job_exactly_once_after_restart() {
    let Some(pool) = hosts::shared() else { return };
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = "/tmp/toyc-daemon-donce";
    let runbook = format!(
        "files::directory(\"{dir}\", #{{ mode: \"0755\" }});\n\
         shell::run(\"echo run >> {dir}/count\");\n"
    );
    let repo = RoleRepo::new(scratch.path(), "donce", &[("runbook.rhai", &runbook)]);
    pool.docker_exec(5, &format!("rm -rf {dir}"));
    let config = write_config(
        scratch.path(),
        pool,
        &[5],
        &[("acme/donce", &repo.url, "donce")],
        "",
    );
    let state = scratch.path().join("state");
    let mut daemon = Daemon::start(&config, &state, &[]);
    let (before, after) = repo.commit(&[("x", "1")], "x");
    let job = queued(&daemon.github(
        &push_body("acme/donce", "main", &before, &after),
        "k-1",
        Some(SECRET),
    ));
    daemon.kill9();

    let daemon = Daemon::start(&config, &state, &[]);
    let done = daemon.wait_job(job, Duration::from_secs(60));
    assert_eq!(done["job"]["state"], "succeeded", "{done:#}");
    // Idle a lease and more: nothing runs it again.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        host_file(pool, 5, &format!("{dir}/count")),
        "run",
        "ran exactly once"
    );
    assert_eq!(daemon.get("/api/jobs").as_array().expect("jobs").len(), 1);
}

#[test]
fn pushes_queued_while_a_role_runs_merge_into_one_run_of_the_newest_commit() {
    let Some(pool) = hosts::shared() else { return };
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = "/tmp/toyc-daemon-dmerge";
    let runbook = format!(
        "files::directory(\"{dir}\", #{{ mode: \"0755\" }});\n\
         files::copy(\"version\", \"{dir}/version\");\n\
         shell::run(\"sleep 2; echo run >> {dir}/count\");\n"
    );
    let repo = RoleRepo::new(
        scratch.path(),
        "dmerge",
        &[("runbook.rhai", &runbook), ("files/version", "1\n")],
    );
    pool.docker_exec(6, &format!("rm -rf {dir}"));
    let config = write_config(
        scratch.path(),
        pool,
        &[6],
        &[("acme/dmerge", &repo.url, "dmerge")],
        "",
    );
    let daemon = Daemon::start(&config, &scratch.path().join("state"), &[]);
    let (b1, a1) = repo.commit(&[("files/version", "1\n")], "v1");
    let first = queued(&daemon.github(
        &push_body("acme/dmerge", "main", &b1, &a1),
        "m-1",
        Some(SECRET),
    ));
    // Wait until it runs, then push twice.
    let deadline = Instant::now() + Duration::from_secs(30);
    while daemon.get(&format!("/api/jobs/{first}"))["job"]["state"] != "running" {
        assert!(Instant::now() < deadline, "job #{first} never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (b2, a2) = repo.commit(&[("files/version", "2\n")], "v2");
    let (b3, a3) = repo.commit(&[("files/version", "3\n")], "v3");
    let second = queued(&daemon.github(
        &push_body("acme/dmerge", "main", &b2, &a2),
        "m-2",
        Some(SECRET),
    ));
    let third = queued(&daemon.github(
        &push_body("acme/dmerge", "main", &b3, &a3),
        "m-3",
        Some(SECRET),
    ));

    assert_eq!(
        daemon.wait_job(first, Duration::from_secs(60))["job"]["state"],
        "succeeded"
    );
    let done = daemon.wait_job(second, Duration::from_secs(60));
    assert_eq!(done["job"]["state"], "succeeded", "{done:#}");
    assert_eq!(done["job"]["payload"]["commit"].as_str(), Some(a3.as_str()));
    assert_eq!(done["job"]["result"]["changes"], json!(["files/version"]));
    assert_eq!(host_file(pool, 6, &format!("{dir}/version")), "3");
    assert_eq!(
        host_file(pool, 6, &format!("{dir}/count")),
        "run\nrun",
        "two runs for three pushes"
    );
    assert_eq!(
        done["job"]["deliveries"],
        json!(["github:m-2", "github:m-3"]),
        "the second run is both pushes'"
    );
    let merged = daemon.get(&format!("/api/jobs/{third}"));
    assert_eq!(merged["job"]["state"], "merged", "{merged:#}");
    assert_eq!(merged["job"]["merged_into"].as_i64(), Some(second));
    assert_eq!(daemon.get("/api/jobs").as_array().expect("jobs").len(), 3);
}

#[test]
fn jobs_can_be_listed_shown_cancelled_on_every_host_and_retried() {
    let Some(pool) = hosts::shared() else { return };
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = "/tmp/toyc-daemon-dcancel";
    let runbook = format!(
        "shell::run(\"if [ -e {dir}/slow ]; then sleep 301; fi; echo done >> {dir}/log\");\n"
    );
    let repo = RoleRepo::new(scratch.path(), "dcancel", &[("runbook.rhai", &runbook)]);
    pool.docker_exec(
        7,
        &format!("rm -rf {dir}; mkdir -p {dir}; touch {dir}/slow"),
    );
    let (b1, slow) = repo.commit(&[("x", "1")], "slow");
    let config = write_config(
        scratch.path(),
        pool,
        &[7],
        &[("acme/dcancel", &repo.url, "dcancel")],
        "",
    );
    let daemon = Daemon::start(&config, &scratch.path().join("state"), &[]);
    let toyc = |args: &[&str]| {
        let out = Command::new(binary())
            .args(["jobs", "--url", &daemon.url])
            .args(args)
            .output()
            .expect("toyc jobs runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let job = queued(&daemon.github(
        &push_body("acme/dcancel", "main", &b1, &slow),
        "c-1",
        Some(SECRET),
    ));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !pool
        .docker_exec(7, "pgrep -f '[s]leep 301'")
        .status
        .success()
    {
        assert!(
            Instant::now() < deadline,
            "the slow command never started:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (code, out, err) = toyc(&["list"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains(&format!("#{job}")) && out.contains("running"),
        "{out}"
    );
    let (code, out, err) = toyc(&["cancel", &job.to_string()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("running") || out.contains("cancelled"),
        "{out}"
    );
    let cancelled = daemon.wait_job(job, Duration::from_secs(20));
    assert_eq!(cancelled["job"]["state"], "cancelled", "{cancelled:#}");
    assert!(
        !pool
            .docker_exec(7, "pgrep -f '[s]leep 301'")
            .status
            .success(),
        "the remote command was killed"
    );
    let (code, out, _) = toyc(&["show", &job.to_string()]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("cancelled") && out.contains("cancel requested"),
        "{out}"
    );

    // A retry of the same commit is a new job, never a duplicate: with the host no
    // longer slow, it completes.
    pool.docker_exec(7, &format!("rm {dir}/slow"));
    let (code, out, err) = toyc(&["retry", &job.to_string()]);
    assert_eq!(code, Some(0), "{err}");
    let retried: i64 = out
        .rsplit('#')
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no new job in {out}"));
    let done = daemon.wait_job(retried, Duration::from_secs(60));
    assert_eq!(done["job"]["state"], "succeeded", "{done:#}");
    assert_eq!(
        host_file(pool, 7, &format!("{dir}/log")),
        "done",
        "the cancelled run never got past its sleep"
    );
    let (code, _, err) = toyc(&["show", "999"]);
    assert_eq!(code, Some(65), "an unknown job is bad input: {err}");
    assert!(err.contains("no job #999"), "{err}");
}

/// The status page as a real headless Chromium renders it after its script ran.
fn rendered_page(url: &str) -> String {
    let chromium = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("chromium is installed (tests/run installs it)");
    let profile = tempfile::tempdir().expect("tempdir");
    let out = hosts::run_with_timeout(
        Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(["--virtual-time-budget=4000", "--dump-dom"])
            .arg(url),
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The state the page shows for job `id`, from its row (`<tr id="job-ID" data-state=...>`).
fn page_state(dom: &str, id: i64) -> Option<String> {
    let row = dom.find(&format!("id=\"job-{id}\""))?;
    let tail = &dom[row..];
    let start = tail.find("data-state=\"")? + "data-state=\"".len();
    Some(tail[start..].split('"').next()?.to_owned())
}

#[test]
fn the_status_page_in_a_headless_browser_shows_a_job_appear_and_finish() {
    let Some(pool) = hosts::shared() else { return };
    let scratch = tempfile::tempdir().expect("tempdir");
    let runbook = "shell::run(\"sleep 8\");\n";
    let repo = RoleRepo::new(scratch.path(), "dpage", &[("runbook.rhai", runbook)]);
    let config = write_config(
        scratch.path(),
        pool,
        &[8],
        &[("acme/dpage", &repo.url, "dpage")],
        "",
    );
    let daemon = Daemon::start(&config, &scratch.path().join("state"), &[]);
    let (before, after) = repo.commit(&[("x", "1")], "x");
    let job = queued(&daemon.github(
        &push_body("acme/dpage", "main", &before, &after),
        "p-1",
        Some(SECRET),
    ));
    let dom = rendered_page(&format!("{}/", daemon.url));
    let state = page_state(&dom, job);
    assert!(
        matches!(state.as_deref(), Some("queued" | "running")),
        "the page shows job #{job} in the queue or running, not {state:?}:\n{dom}"
    );
    assert!(dom.contains("dpage"), "the role is shown:\n{dom}");
    daemon.wait_job(job, Duration::from_secs(60));
    let dom = rendered_page(&format!("{}/", daemon.url));
    assert_eq!(page_state(&dom, job).as_deref(), Some("succeeded"), "{dom}");
    assert!(
        dom.contains("1 ok, 1 changed"),
        "per-host totals are shown:\n{dom}"
    );
}

#[test]
fn sigterm_lets_a_running_job_finish_within_the_grace_period_and_leaves_a_longer_one_queued() {
    let Some(pool) = hosts::shared() else { return };
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = "/tmp/toyc-daemon-dterm";
    let runbook = format!(
        "shell::run(\"sleep 2; if [ -e {dir}/slow ]; then sleep 302; fi; echo done >> {dir}/log\");\n"
    );
    let repo = RoleRepo::new(scratch.path(), "dterm", &[("runbook.rhai", &runbook)]);
    pool.docker_exec(9, &format!("rm -rf {dir}; mkdir -p {dir}"));
    let config = write_config(
        scratch.path(),
        pool,
        &[9],
        &[("acme/dterm", &repo.url, "dterm")],
        "",
    );
    let state = scratch.path().join("state");
    let wait_running = |daemon: &Daemon, job: i64| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while daemon.get(&format!("/api/jobs/{job}"))["job"]["state"] != "running" {
            assert!(Instant::now() < deadline, "job #{job} never started");
            std::thread::sleep(Duration::from_millis(100));
        }
    };

    // A job that ends within the grace period (5 s) ends, then the daemon exits 0.
    let mut daemon = Daemon::start(&config, &state, &[]);
    let (before, after) = repo.commit(&[("x", "1")], "1");
    let quick = queued(&daemon.github(
        &push_body("acme/dterm", "main", &before, &after),
        "t-1",
        Some(SECRET),
    ));
    wait_running(&daemon, quick);
    let url = daemon.url.clone();
    assert_eq!(
        daemon.terminate(Duration::from_secs(20)),
        Some(0),
        "{}",
        daemon.log()
    );
    assert_eq!(host_file(pool, 9, &format!("{dir}/log")), "done");
    assert!(
        reqwest::blocking::get(format!("{url}/api/jobs")).is_err(),
        "a stopped daemon accepts nothing"
    );

    // One that would outlast it is stopped on its host and left queued for the next daemon.
    pool.docker_exec(9, &format!("touch {dir}/slow"));
    let mut daemon = Daemon::start(&config, &state, &[]);
    assert_eq!(
        daemon.get(&format!("/api/jobs/{quick}"))["job"]["state"],
        "succeeded"
    );
    let (before, after) = repo.commit(&[("x", "2")], "2");
    let slow = queued(&daemon.github(
        &push_body("acme/dterm", "main", &before, &after),
        "t-2",
        Some(SECRET),
    ));
    wait_running(&daemon, slow);
    let started = Instant::now();
    assert_eq!(
        daemon.terminate(Duration::from_secs(30)),
        Some(0),
        "{}",
        daemon.log()
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        !pool
            .docker_exec(9, "pgrep -f '[s]leep 302'")
            .status
            .success(),
        "stopped on the host"
    );
    pool.docker_exec(9, &format!("rm {dir}/slow"));
    let daemon = Daemon::start(&config, &state, &[]);
    let done = daemon.wait_job(slow, Duration::from_secs(60));
    assert_eq!(done["job"]["state"], "succeeded", "{done:#}");
    assert_eq!(done["job"]["attempts"], 2, "{done:#}");
    assert!(
        messages(&done)
            .iter()
            .any(|m| m.contains("the daemon is stopping")),
        "{:?}",
        messages(&done)
    );
    assert_eq!(host_file(pool, 9, &format!("{dir}/log")), "done\ndone");
}

#[test]
fn off_loopback_the_api_and_page_need_the_token_and_the_daemon_will_not_start_without_one() {
    let Some(pool) = hosts::shared() else { return };
    let scratch = tempfile::tempdir().expect("tempdir");
    let repo = RoleRepo::new(
        scratch.path(),
        "dtoken",
        &[("runbook.rhai", "// nothing\n")],
    );
    let config = write_config(
        scratch.path(),
        pool,
        &[0],
        &[("acme/dtoken", &repo.url, "dtoken")],
        "",
    );
    let state = scratch.path().join("state");
    let refused = Command::new(binary())
        .args(["daemon", "--config"])
        .arg(&config)
        .args(["--listen", "0.0.0.0:0"])
        .env("TOYC_STATE_DIR", &state)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(65), "{stderr}");
    assert!(stderr.contains("needs a token"), "{stderr}");

    let secrets = scratch.path().join("secrets.yml");
    let text = std::fs::read_to_string(&secrets).expect("secrets");
    std::fs::write(&secrets, format!("{text}api_token: t0ken-for-api\n")).expect("write");
    let mut daemon = Daemon::start(&config, &state, &["--listen", "0.0.0.0:0"]);
    // Reached through the loopback address, but bound to every address: the token counts.
    daemon.url = daemon.url.replace("0.0.0.0", "127.0.0.1");
    let get = |path: &str, token: Option<&str>| {
        let mut request = reqwest::blocking::Client::new().get(format!("{}{path}", daemon.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().expect("answers").status().as_u16()
    };
    for path in [
        "/",
        "/api/jobs",
        "/api/hosts",
        "/api/roles",
        "/api/deliveries",
    ] {
        assert_eq!(get(path, None), 401, "{path} without a token");
        assert_eq!(get(path, Some("wrong")), 401, "{path} with a wrong token");
        assert_eq!(
            get(path, Some("t0ken-for-api")),
            200,
            "{path} with the token"
        );
    }
    assert_eq!(
        get("/?token=t0ken-for-api", None),
        200,
        "the page opened with ?token="
    );
    let (before, after) = repo.commit(&[("x", "1")], "x");
    let answer = daemon.github(
        &push_body("acme/dtoken", "main", &before, &after),
        "o-1",
        Some(SECRET),
    );
    assert_eq!(
        answer.0, 202,
        "webhooks need their signature only: {answer:?}"
    );
}

#[test]
fn two_daemons_share_one_postgresql_queue_and_a_job_whose_daemon_dies_completes_once() {
    let Some(pool) = hosts::shared() else { return };
    let url = crate::support::postgres::database();
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = "/tmp/toyc-daemon-dpg";
    let runbook = format!("shell::run(\"sleep 4; echo run >> {dir}/count\");\n");
    let repo = RoleRepo::new(scratch.path(), "dpg", &[("runbook.rhai", &runbook)]);
    pool.docker_exec(1, &format!("rm -rf {dir}; mkdir -p {dir}"));
    let config = write_config(
        scratch.path(),
        pool,
        &[1],
        &[("acme/dpg", &repo.url, "dpg")],
        "",
    );
    // Two machines: each daemon its own state directory, one store.
    let mut daemons = [
        Daemon::start(&config, &scratch.path().join("a"), &["--store", &url]),
        Daemon::start(&config, &scratch.path().join("b"), &["--store", &url]),
    ];
    let (before, after) = repo.commit(&[("x", "1")], "x");
    let job = queued(&daemons[0].github(
        &push_body("acme/dpg", "main", &before, &after),
        "pg-1",
        Some(SECRET),
    ));
    // Either daemon may claim it: kill -9 the one that did, mid-run.
    let deadline = Instant::now() + Duration::from_secs(30);
    let holder = loop {
        let state = daemons[1].get(&format!("/api/jobs/{job}"));
        if state["job"]["state"] == "running" {
            let worker = state["job"]["worker"].as_str().unwrap_or("").to_owned();
            break daemons
                .iter()
                .position(|d| {
                    d.pid()
                        .is_some_and(|pid| worker.contains(&format!(":{pid}:")))
                })
                .unwrap_or_else(|| panic!("worker {worker} is neither daemon"));
        }
        assert!(
            Instant::now() < deadline,
            "job #{job} never started: {state:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(Duration::from_secs(1));
    daemons[holder].kill9();
    let survivor = &daemons[1 - holder];
    let done = survivor.wait_job(job, Duration::from_secs(60));
    assert_eq!(
        done["job"]["state"],
        "succeeded",
        "{done:#}\n{}",
        survivor.log()
    );
    assert_eq!(done["job"]["attempts"], 2, "{done:#}");
    let worker = done["job"]["worker"].as_str().unwrap_or("");
    assert!(
        worker.contains(&format!(":{}:", survivor.pid().expect("running"))),
        "{worker}"
    );
    assert!(
        messages(&done)
            .iter()
            .any(|m| m.contains("taken up again (attempt 2)")),
        "{:?}",
        messages(&done)
    );
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        host_file(pool, 1, &format!("{dir}/count")),
        "run",
        "the killed daemon's command stopped with it; the job ran to completion once"
    );
    let jobs = survivor.get("/api/jobs");
    assert_eq!(jobs.as_array().expect("jobs").len(), 1, "{jobs:#}");
}

#[test]
fn a_host_that_fails_bootstrap_is_left_out_and_bootstrapped_by_a_later_push() {
    let Some(pool) = hosts::shared() else { return };
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = "/tmp/toyc-daemon-dboot";
    let (bad, good) = (pool.hosts()[0].name.clone(), pool.hosts()[1].name.clone());
    let bootstrap = |failing: &str| {
        format!(
            "files::directory(\"{dir}\", #{{ mode: \"0755\" }});\n\
             if host.name == \"{failing}\" {{ shell::run(\"exit 3\"); }}\n\
             shell::run(\"echo boot >> {dir}/boots\");\n"
        )
    };
    let runbook = format!("files::content(\"{dir}/role\", \"role \" + vars.commit + \"\\n\");\n");
    let repo = RoleRepo::new(
        scratch.path(),
        "dboot",
        &[
            ("runbook.rhai", &runbook),
            ("bootstrap.rhai", &bootstrap(&bad)),
        ],
    );
    for i in [0, 1] {
        pool.docker_exec(i, &format!("rm -rf {dir}"));
    }
    let config = write_config(
        scratch.path(),
        pool,
        &[0, 1],
        &[("acme/dboot", &repo.url, "dboot")],
        "",
    );
    let daemon = Daemon::start(&config, &scratch.path().join("state"), &[]);
    let (before, first) = repo.commit(&[("x", "1")], "1");
    let job = queued(&daemon.github(
        &push_body("acme/dboot", "main", &before, &first),
        "b-1",
        Some(SECRET),
    ));
    let done = daemon.wait_job(job, Duration::from_secs(60));
    assert_eq!(
        done["job"]["state"], "failed",
        "a host failed bootstrap: {done:#}"
    );
    assert_eq!(
        done["job"]["result"]["bootstrap"]["failed"],
        json!([bad]),
        "{done:#}"
    );
    assert_eq!(
        host_file(pool, 0, &format!("{dir}/role")),
        "MISSING",
        "isolated"
    );
    assert_eq!(
        host_file(pool, 1, &format!("{dir}/role")),
        format!("role {first}")
    );
    let hosts = daemon.get("/api/hosts");
    let bootstrapped = |name: &str| {
        hosts
            .as_array()
            .expect("hosts")
            .iter()
            .any(|h| h["name"] == name && h["bootstrapped_ms"].is_i64())
    };
    assert!(bootstrapped(&good) && !bootstrapped(&bad), "{hosts:#}");

    // Fixed: the next push bootstraps only the host that failed, then applies both.
    let (before, second) = repo.commit(&[("bootstrap.rhai", &bootstrap("nobody"))], "fixed");
    let job = queued(&daemon.github(
        &push_body("acme/dboot", "main", &before, &second),
        "b-2",
        Some(SECRET),
    ));
    let done = daemon.wait_job(job, Duration::from_secs(60));
    assert_eq!(done["job"]["state"], "succeeded", "{done:#}");
    assert_eq!(
        done["job"]["result"]["bootstrap"]["hosts"],
        json!([bad]),
        "{done:#}"
    );
    for i in [0, 1] {
        assert_eq!(
            host_file(pool, i, &format!("{dir}/role")),
            format!("role {second}")
        );
        assert_eq!(
            host_file(pool, i, &format!("{dir}/boots")),
            "boot",
            "bootstrapped once"
        );
    }
}

#[test]
fn a_bad_configuration_fails_at_start_naming_file_line_and_column() {
    let scratch = tempfile::tempdir().expect("tempdir");
    std::fs::write(scratch.path().join("secrets.yml"), "webhook: s\n").expect("write");
    let config = scratch.path().join("daemon.yml");
    std::fs::write(
        &config,
        "secrets_file: secrets.yml\nrepos:\n  acme/web:\n    url: file:///nowhere\n    branches: main\n",
    )
    .expect("write");
    let out = Command::new(binary())
        .args(["daemon", "--config"])
        .arg(&config)
        .env("TOYC_STATE_DIR", scratch.path().join("state"))
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(65), "{stderr}");
    assert!(
        stderr.contains("daemon.yml:5:5") && stderr.contains("branches"),
        "{stderr}"
    );
    assert!(!stderr.contains("listening"), "{stderr}");
}
