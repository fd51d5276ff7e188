//! `toyc supervise` end to end: the real binary supervising real processes (a tiny HTTP
//! program in python) from real git repos, polling every 1–2 s. Every test's supervisor
//! and programs are stopped when the test ends, even when it fails ([`Supervisor`]'s
//! drop kills the process groups the supervisor reported).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::roles::git;
use crate::support::cli::binary;

/// The HTTP program: answers every GET with the checkout's `version` file as it was at
/// start; refuses to start when it is `sick` (a commit that passes its tests but fails
/// its health check).
const SERVE_PY: &str = r#"import http.server, os, sys
version = open("version").read().strip()
if version == "sick":
    sys.exit("sick: refusing to start")
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(version.encode())
    def log_message(self, *args):
        pass
print("serving", version, flush=True)
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"#;

/// Its tests: a commit whose version is `bad` fails them (slowly, so the old version is
/// seen answering while they run).
const TEST_SH: &str = "#!/bin/sh\nsleep 1\ntest \"$(cat version)\" != bad\n";

/// A scratch directory with a git repo of the HTTP program and a config directory.
struct Scene {
    dir: tempfile::TempDir,
    port: u16,
}

impl Scene {
    fn new() -> Scene {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(&repo).expect("mkdir");
        git(&repo, &["init", "-q", "-b", "main"], &[]);
        std::fs::write(repo.join("serve.py"), SERVE_PY).expect("write");
        write_executable(&repo.join("test.sh"), TEST_SH);
        std::fs::create_dir_all(dir.path().join("conf")).expect("mkdir");
        let scene = Scene {
            dir,
            port: free_port(),
        };
        scene.commit("v1");
        scene
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Commits `version`; returns the commit.
    fn commit(&self, version: &str) -> String {
        let repo = self.path("repo");
        std::fs::write(repo.join("version"), format!("{version}\n")).expect("write");
        git(&repo, &["add", "-A"], &[]);
        git(&repo, &["commit", "-q", "-m", version], &[]);
        git(&repo, &["rev-parse", "HEAD"], &[])
    }

    /// A config for the HTTP program named `name`, with its tests and an HTTP health check.
    fn web_config(&self, name: &str) -> String {
        format!(
            "repository: {{remote path: {repo}, local path: {live}, branch: main}}
timing: {{minimum: 1, maximum: 2}}
application: {{start: exec python3 serve.py, env: {{PORT: '{port}'}}, stop timeout: 5}}
verify: ./test.sh
health: {{http: 'http://127.0.0.1:{port}/', retries: 6, interval: 0.3, timeout: 1}}
",
            repo = self.path("repo").display(),
            live = self.path(&format!("live-{name}")).display(),
            port = self.port,
        )
    }

    fn config(&self, file: &str, text: &str) {
        std::fs::write(self.path("conf").join(file), text).expect("write the config");
    }

    fn get(&self) -> Option<String> {
        http_get(self.port)
    }
}

fn write_executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `GET /` on the port: the body, or `None` when nothing answers.
fn http_get(port: u16) -> Option<String> {
    let mut stream =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.trim().to_owned())
}

/// A running `toyc supervise -c DIR`.
struct Supervisor {
    child: Option<Child>,
    root: PathBuf,
    /// Every process group it reported, killed on drop whatever happened.
    groups: Arc<Mutex<Vec<i32>>>,
}

impl Supervisor {
    fn start(scene: &Scene) -> Supervisor {
        let root = scene.dir.path().to_owned();
        let mut child = Command::new(binary())
            .args(["supervise", "-c"])
            .arg(root.join("conf"))
            .env("TOYC_STATE_DIR", root.join("state"))
            .env("XDG_STATE_HOME", root.join("xdg"))
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env_remove("TOYC_STORE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("toyc supervise starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let log = root.join("supervisor.stderr");
        std::thread::spawn(move || {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .ok();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("listening on") {
                    let _ = ready_tx.send(());
                }
                if let Some(file) = file.as_mut() {
                    let _ = writeln!(file, "{line}");
                }
            }
        });
        ready
            .recv_timeout(Duration::from_secs(30))
            .expect("the supervisor announces its socket");
        Supervisor {
            child: Some(child),
            root,
            groups: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// `toyc supervise ARGS` against this supervisor: (exit code, stdout, stderr).
    fn ctl(&self, args: &[&str]) -> (i32, String, String) {
        let output = Command::new(binary())
            .arg("supervise")
            .args(args)
            .env("TOYC_STATE_DIR", self.root.join("state"))
            .output()
            .expect("toyc supervise runs");
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// One program's status (`Null` when it is not there).
    fn status(&self, name: &str) -> Value {
        let (code, stdout, _) = self.ctl(&["status", "--json"]);
        if code != 0 {
            return Value::Null;
        }
        let response: Value = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
        let programs = response["programs"].as_array().cloned().unwrap_or_default();
        for program in &programs {
            if let Some(pid) = program["pid"].as_i64() {
                let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
                if !groups.contains(&(pid as i32)) {
                    groups.push(pid as i32);
                }
            }
        }
        programs
            .into_iter()
            .find(|p| p["name"] == name)
            .unwrap_or(Value::Null)
    }

    fn whole_status(&self) -> Value {
        let (_, stdout, _) = self.ctl(&["status", "--json"]);
        serde_json::from_str(stdout.trim()).unwrap_or(Value::Null)
    }

    /// Polls `name`'s status until `ready` holds; panics with the last status after
    /// `limit`.
    fn wait_for(
        &self,
        name: &str,
        what: &str,
        limit: Duration,
        ready: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let status = self.status(name);
            if ready(&status) {
                return status;
            }
            if Instant::now() > deadline {
                panic!(
                    "{what}: not within {limit:?}; last status: {status:#}\nlog:\n{}\nsupervisor:\n{}",
                    self.log(name),
                    std::fs::read_to_string(self.root.join("supervisor.stderr")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.root.join(format!("state/supervise/logs/{name}.log")))
            .unwrap_or_default()
    }

    /// `kill -9` of the supervisor: its programs stay behind.
    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, and the exit it made.
    fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        child.wait().ok()
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.status("");
        }
        self.terminate();
        for group in self.groups.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{group}")])
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn alive(pid: i64) -> bool {
    // A zombie is dead for this purpose.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .is_some_and(|zombie| !zombie)
}

fn outcome(status: &Value) -> (&str, &str) {
    (
        status["last_deploy"]["commit"].as_str().unwrap_or(""),
        status["last_deploy"]["outcome"].as_str().unwrap_or(""),
    )
}

const WAIT: Duration = Duration::from_secs(60);

#[test]
fn a_good_commit_is_deployed_and_one_failing_its_tests_never_while_the_old_one_serves() {
    let scene = Scene::new();
    let c1 = git(&scene.path("repo"), &["rev-parse", "HEAD"], &[]);
    scene.config("web.yml", &scene.web_config("web"));
    let supervisor = Supervisor::start(&scene);
    supervisor.wait_for("web", "v1 runs", WAIT, |s| {
        s["state"] == "running" && s["deployed"] == c1.as_str()
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while scene.get().as_deref() != Some("v1") {
        assert!(Instant::now() < deadline, "v1 never answered");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Every request answered by v1 while a bad commit is fetched, tested and refused.
    let (stop, answers) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(Mutex::new(Vec::new())),
    );
    let checker = {
        let (stop, answers, port) = (stop.clone(), answers.clone(), scene.port);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let answer = http_get(port);
                answers.lock().expect("answers").push(answer);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let bad = scene.commit("bad");
    let status = supervisor.wait_for("web", "the bad commit is refused", WAIT, |s| {
        outcome(s) == (bad.as_str(), "verify failed")
    });
    // A few more polls: it is not tried again.
    std::thread::sleep(Duration::from_secs(4));
    stop.store(true, Ordering::Relaxed);
    checker.join().expect("the checker");
    let answers = answers.lock().expect("answers");
    assert!(answers.len() > 50, "{} answers", answers.len());
    let wrong: Vec<_> = answers
        .iter()
        .filter(|a| a.as_deref() != Some("v1"))
        .collect();
    assert!(wrong.is_empty(), "answers other than v1: {wrong:?}");
    assert_eq!(status["deployed"], c1.as_str());
    assert!(status["bad_commits"]
        .as_array()
        .is_some_and(|b| b.contains(&Value::from(bad.as_str()))));
    let log = supervisor.log("web");
    assert_eq!(
        log.matches(&format!("verifying {}", &bad[..7])).count(),
        1,
        "{log}"
    );

    // A newer commit is deployed.
    let c3 = scene.commit("v3");
    let status = supervisor.wait_for("web", "v3 is deployed", WAIT, |s| {
        outcome(s) == (c3.as_str(), "deployed")
    });
    assert_eq!(status["deployed"], c3.as_str());
    assert_eq!(status["previous"], c1.as_str());
    assert_eq!(scene.get().as_deref(), Some("v3"));
    // `status` and `logs` for people.
    let (code, table, _) = supervisor.ctl(&["status"]);
    assert_eq!(code, 0);
    assert!(table.contains(&format!("{} deployed", &c3[..7])), "{table}");
    assert!(
        table.contains(&format!("bad commits (never deployed): {}", &bad[..7])),
        "{table}"
    );
    let (code, logs, _) = supervisor.ctl(&["logs", "web", "-n", "500"]);
    assert_eq!(code, 0);
    assert!(logs.contains(" out| serving v3"), "{logs}");
    assert!(
        logs.contains(&format!("toyc| deployed {}", &c3[..7])),
        "{logs}"
    );
}

#[test]
fn a_commit_failing_its_health_check_is_rolled_back_and_not_retried() {
    let scene = Scene::new();
    let c1 = git(&scene.path("repo"), &["rev-parse", "HEAD"], &[]);
    scene.config("web.yml", &scene.web_config("web"));
    let supervisor = Supervisor::start(&scene);
    supervisor.wait_for("web", "v1 runs", WAIT, |s| s["state"] == "running");
    let sick = scene.commit("sick");
    let status = supervisor.wait_for("web", "the sick commit is rolled back", WAIT, |s| {
        outcome(s) == (sick.as_str(), "rolled back") && s["state"] == "running"
    });
    assert_eq!(status["deployed"], c1.as_str());
    assert!(status["bad_commits"]
        .as_array()
        .is_some_and(|b| b.contains(&Value::from(sick.as_str()))));
    let deadline = Instant::now() + Duration::from_secs(20);
    while scene.get().as_deref() != Some("v1") {
        assert!(Instant::now() < deadline, "v1 never answered again");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(5));
    let log = supervisor.log("web");
    assert_eq!(
        log.matches(&format!("deploying {}", &sick[..7])).count(),
        1,
        "{log}"
    );
    assert!(log.contains("sick: refusing to start"), "{log}");
    assert_eq!(supervisor.status("web")["deployed"], c1.as_str());
}

#[test]
fn a_crash_loop_shows_growing_delays_and_keeps_trying() {
    let scene = Scene::new();
    scene.config(
        "crash.yml",
        &format!(
            "repository: {{remote path: {}, local path: {}, branch: main}}
application: {{start: 'echo up; exit 3'}}
restart: {{initial: 0.2, maximum: 1.5, reset after: 30}}
",
            scene.path("repo").display(),
            scene.path("live").display()
        ),
    );
    let supervisor = Supervisor::start(&scene);
    let status = supervisor.wait_for("crash", "seven restarts", WAIT, |s| {
        s["restarts"].as_i64().is_some_and(|r| r >= 7)
    });
    assert!(
        matches!(status["state"].as_str(), Some("backoff" | "running")),
        "{status:#}"
    );
    let log = supervisor.log("crash");
    let starts: Vec<f64> = log
        .lines()
        .filter(|l| l.contains("toyc| started pid"))
        .filter_map(|l| seconds_of_day(&l[..23]))
        .collect();
    assert!(starts.len() >= 7, "{log}");
    let gaps: Vec<f64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    // 0, 0.2, 0.4, 0.8, then the cap (1.5), each ±25%.
    assert!(gaps[0] < 0.15, "the first restart is immediate: {gaps:?}");
    for pair in gaps[..4].windows(2) {
        assert!(pair[1] > pair[0], "delays grow: {gaps:?}");
    }
    for gap in &gaps[4..] {
        assert!(*gap >= 1.0 && *gap < 1.9, "capped at 1.5s: {gaps:?}");
    }
    assert!(log.contains("exited (exit status: 3)"), "{log}");
    // `logs -f` follows what comes.
    let mut follow = Command::new(binary())
        .args(["supervise", "logs", "crash", "-f", "-n", "1"])
        .env("TOYC_STATE_DIR", scene.path("state"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("logs -f");
    let mut lines = BufReader::new(follow.stdout.take().expect("piped")).lines();
    let mut restarts_seen = 0;
    while restarts_seen < 2 {
        let line = lines.next().expect("logs -f goes on").expect("a line");
        if line.contains("toyc| started pid") {
            restarts_seen += 1;
        }
    }
    let _ = follow.kill();
    let _ = follow.wait();
    // It never gives up: still trying later.
    let before = status["restarts"].as_i64().unwrap_or(0);
    supervisor.wait_for("crash", "more restarts", WAIT, |s| {
        s["restarts"].as_i64().is_some_and(|r| r >= before + 2)
    });
    let status = supervisor.status("crash");
    if status["state"] == "backoff" {
        assert!(status["next_start_ms"].as_i64().is_some(), "{status:#}");
    }
}

/// `HH:MM:SS.mmm` of a log line's timestamp, in seconds.
fn seconds_of_day(stamp: &str) -> Option<f64> {
    let time = stamp.get(11..23)?;
    let (h, rest) = time.split_once(':')?;
    let (m, s) = rest.split_once(':')?;
    Some(h.parse::<f64>().ok()? * 3600.0 + m.parse::<f64>().ok()? * 60.0 + s.parse::<f64>().ok()?)
}

#[test]
fn stop_kills_grandchildren_and_start_brings_it_back() {
    let scene = Scene::new();
    scene.config(
        "tree.yml",
        &format!(
            "repository: {{remote path: {}, local path: {}, branch: main}}
application: {{start: 'sleep 600 & echo $! > grandchild; sh -c \"sleep 600\" & wait', stop timeout: 3}}
",
            scene.path("repo").display(),
            scene.path("live").display()
        ),
    );
    let supervisor = Supervisor::start(&scene);
    let status = supervisor.wait_for("tree", "it runs", WAIT, |s| s["state"] == "running");
    let pidfile = scene.path("live/grandchild");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&pidfile).map_or(true, |s| !s.ends_with('\n')) {
        assert!(Instant::now() < deadline, "no grandchild pid");
        std::thread::sleep(Duration::from_millis(50));
    }
    let grandchild: i64 = std::fs::read_to_string(&pidfile)
        .expect("the pid file")
        .trim()
        .parse()
        .expect("a pid");
    let leader = status["pid"].as_i64().expect("a pid");
    assert!(alive(grandchild) && alive(leader));
    let (code, out, err) = supervisor.ctl(&["stop", "tree"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("tree stopped"), "{out}");
    assert!(
        !alive(grandchild),
        "the grandchild was stopped with its group"
    );
    assert!(!alive(leader));
    assert_eq!(supervisor.status("tree")["state"], "stopped");
    let (code, out, _) = supervisor.ctl(&["start", "tree"]);
    assert_eq!(code, 0);
    assert!(out.contains("tree started"), "{out}");
    supervisor.wait_for("tree", "it runs again", WAIT, |s| {
        s["state"] == "running" && s["pid"].as_i64() != Some(leader)
    });
    let (code, _, err) = supervisor.ctl(&["stop", "nothing"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no program `nothing` (programs: tree)"),
        "{err}"
    );
}

#[test]
fn underscore_files_are_ignored_bad_ones_reported_and_a_config_added_live_starts() {
    let scene = Scene::new();
    let program = |marker: &str| {
        format!(
            "repository: {{remote path: {}, local path: {}, branch: main}}
application: {{start: 'touch {}; exec sleep 600'}}
",
            scene.path("repo").display(),
            scene.path(&format!("live-{marker}")).display(),
            scene.path(marker).display()
        )
    };
    scene.config("_disabled.yml", &program("disabled"));
    scene.config(
        "broken.json",
        "{\n  \"repository\": {\"remote path\": \"/r.git\"}\n}\n",
    );
    scene.config("first.yml", &program("first"));
    let supervisor = Supervisor::start(&scene);
    supervisor.wait_for("first", "first runs", WAIT, |s| s["state"] == "running");
    let whole = supervisor.whole_status();
    let names: Vec<&str> = whole["programs"]
        .as_array()
        .map(|p| p.iter().filter_map(|p| p["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["first"]);
    let errors = whole["config_errors"].to_string();
    assert!(
        errors.contains("broken.json:2:41: missing field `local path`"),
        "{errors}"
    );
    let first_pid = supervisor.status("first")["pid"].as_i64();

    scene.config("second.yml", &program("second"));
    supervisor.wait_for(
        "second",
        "a config added live starts",
        Duration::from_secs(15),
        |s| s["state"] == "running",
    );
    assert!(scene.path("second").exists());
    assert!(!scene.path("disabled").exists(), "`_` files are ignored");
    assert_eq!(
        supervisor.status("first")["pid"].as_i64(),
        first_pid,
        "the other programs are left alone"
    );
    let second_pid = supervisor.status("second")["pid"].as_i64().expect("a pid");
    std::fs::remove_file(scene.path("conf/second.yml")).expect("remove");
    supervisor.wait_for(
        "second",
        "a removed config stops",
        Duration::from_secs(15),
        Value::is_null,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(second_pid) {
        assert!(Instant::now() < deadline, "the removed program still runs");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn kill_9_of_the_supervisor_and_a_restart_resume_cleanly() {
    let scene = Scene::new();
    let c1 = git(&scene.path("repo"), &["rev-parse", "HEAD"], &[]);
    scene.config("web.yml", &scene.web_config("web"));
    let mut supervisor = Supervisor::start(&scene);
    supervisor.wait_for("web", "v1 runs", WAIT, |s| s["state"] == "running");
    let bad = scene.commit("bad");
    let status = supervisor.wait_for("web", "the bad commit is refused", WAIT, |s| {
        outcome(s) == (bad.as_str(), "verify failed")
    });
    let old_pid = status["pid"].as_i64().expect("a pid");
    supervisor.kill9();
    assert!(alive(old_pid), "kill -9 leaves the program running");

    let again = Supervisor::start(&scene);
    // Its drop also kills the groups the first one reported.
    again
        .groups
        .lock()
        .expect("groups")
        .extend(supervisor.groups.lock().expect("groups").iter());
    let status = again.wait_for("web", "it runs again", WAIT, |s| s["state"] == "running");
    assert!(!alive(old_pid), "the left-over process was stopped");
    assert_ne!(status["pid"].as_i64(), Some(old_pid));
    // Up and answering (not between its fork and exec, when its environment is still
    // the supervisor's), then exactly one copy runs.
    let deadline = Instant::now() + Duration::from_secs(20);
    while scene.get().as_deref() != Some("v1") {
        assert!(Instant::now() < deadline, "v1 never answered again");
        std::thread::sleep(Duration::from_millis(100));
    }
    let copies = std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i64>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
                env.split(|b| *b == 0)
                    .any(|v| v == format!("PORT={}", scene.port).as_bytes())
            }) && alive(*pid)
        })
        .count();
    assert_eq!(copies, 1, "one copy of the program, not {copies}");
    assert_eq!(status["deployed"], c1.as_str());
    assert!(status["bad_commits"]
        .as_array()
        .is_some_and(|b| b.contains(&Value::from(bad.as_str()))));
    // Polls go on and the bad commit stays undeployed.
    std::thread::sleep(Duration::from_secs(5));
    let status = again.status("web");
    assert_eq!(status["deployed"], c1.as_str());
    assert_eq!(scene.get().as_deref(), Some("v1"));
    let stderr = std::fs::read_to_string(scene.path("supervisor.stderr")).unwrap_or_default();
    assert!(
        stderr.contains(&format!("stopped process group {old_pid} of `web`")),
        "{stderr}"
    );
}

#[test]
fn a_second_supervisor_on_the_same_state_is_refused_and_sigterm_stops_every_program() {
    let scene = Scene::new();
    scene.config("web.yml", &scene.web_config("web"));
    let mut supervisor = Supervisor::start(&scene);
    let pid = supervisor.wait_for("web", "it runs", WAIT, |s| s["state"] == "running")["pid"]
        .as_i64()
        .expect("a pid");
    let second = Command::new(binary())
        .args(["supervise", "-c"])
        .arg(scene.path("conf"))
        .env("TOYC_STATE_DIR", scene.path("state"))
        .output()
        .expect("runs");
    assert_eq!(second.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&second.stderr).contains("another `toyc supervise` runs"));
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &str| {
            std::fs::metadata(scene.path(p))
                .expect("it exists")
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("state/supervise/control.sock"), 0o600);
        assert_eq!(mode("state/supervise"), 0o700);
    }
    let status = supervisor.terminate().expect("it ends");
    assert!(status.success(), "{status:?}");
    assert!(!alive(pid), "SIGTERM stopped the program");
    assert!(!scene.path("state/supervise/control.sock").exists());
}

#[test]
fn huddles_json_example_runs_unchanged() {
    let scene = Scene::new();
    let repo = scene.path("repo");
    // Huddle's example starts `python -m app`, on its `develop` branch.
    std::fs::create_dir_all(repo.join("app")).expect("mkdir");
    std::fs::write(repo.join("app/__main__.py"), SERVE_PY).expect("write");
    git(&repo, &["add", "-A"], &[]);
    git(&repo, &["commit", "-q", "-m", "app"], &[]);
    git(&repo, &["branch", "develop"], &[]);
    let python = String::from_utf8_lossy(
        &Command::new("sh")
            .args(["-c", "command -v python3"])
            .output()
            .expect("sh")
            .stdout,
    )
    .trim()
    .to_owned();
    let git_path = String::from_utf8_lossy(
        &Command::new("sh")
            .args(["-c", "command -v git"])
            .output()
            .expect("sh")
            .stdout,
    )
    .trim()
    .to_owned();
    // The example's text, paths and command aside; trailing comma included.
    scene.config(
        "app.json",
        &format!(
            r#"{{
  "repository": {{"remote": "origin", "remote path": "{remote}",
                 "local path": "{live}", "branch": "develop", "executable": "{git_path}"}},
  "timing": {{"minimum": 60, "maximum": 600}},
  "application": {{"start": "PORT={port} {python} -m app"}},
}}
"#,
            remote = repo.display(),
            live = scene.path("srv-app").display(),
            port = scene.port,
        ),
    );
    let supervisor = Supervisor::start(&scene);
    let status = supervisor.wait_for("app", "the example runs", WAIT, |s| s["state"] == "running");
    let deadline = Instant::now() + Duration::from_secs(20);
    while scene.get().as_deref() != Some("v1") {
        assert!(
            Instant::now() < deadline,
            "the example never answered: {status:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let next_poll = status["next_poll_ms"].as_i64().expect("a next poll");
    let wait = next_poll
        - std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_millis() as i64;
    assert!(
        (50_000..=600_000).contains(&wait),
        "polls in [60 s, 600 s]: {wait} ms"
    );
    assert_eq!(
        git(
            &scene.path("srv-app"),
            &["remote", "get-url", "origin"],
            &[]
        ),
        repo.display().to_string()
    );
}

#[test]
fn pull_mode_applies_each_new_role_commit_to_this_machine() {
    let scene = Scene::new();
    let role = scene.path("role");
    std::fs::create_dir_all(&role).expect("mkdir");
    git(&role, &["init", "-q", "-b", "main"], &[]);
    let runbook = |text: &str| {
        std::fs::write(
            role.join("runbook.rhai"),
            format!("files::content(vars.target, \"{text} \" + vars.commit + \"\\n\");\n"),
        )
        .expect("write");
        git(&role, &["add", "-A"], &[]);
        git(&role, &["commit", "-q", "-m", text], &[]);
        git(&role, &["rev-parse", "HEAD"], &[])
    };
    let c1 = runbook("first");
    let target = scene.path("configured");
    scene.config(
        "web-role.yml",
        &format!(
            "role: {{name: web, repo: 'file://{}', branch: main, vars: {{target: '{}'}}}}
timing: {{minimum: 1, maximum: 2}}
",
            role.display(),
            target.display()
        ),
    );
    let supervisor = Supervisor::start(&scene);
    supervisor.wait_for("web-role", "the first commit is applied", WAIT, |s| {
        outcome(s) == (c1.as_str(), "deployed")
    });
    assert_eq!(
        std::fs::read_to_string(&target).expect("the role wrote its file"),
        format!("first {c1}\n")
    );
    let c2 = runbook("second");
    let status = supervisor.wait_for("web-role", "the second commit is applied", WAIT, |s| {
        outcome(s) == (c2.as_str(), "deployed")
    });
    assert_eq!(status["kind"], "role");
    assert_eq!(status["deployed"], c2.as_str());
    assert_eq!(
        std::fs::read_to_string(&target).expect("the file"),
        format!("second {c2}\n")
    );
    // A commit whose runbook fails is marked bad and not applied again.
    std::fs::write(role.join("runbook.rhai"), "throw \"broken on purpose\";\n").expect("write");
    git(&role, &["commit", "-qam", "broken"], &[]);
    let c3 = git(&role, &["rev-parse", "HEAD"], &[]);
    supervisor.wait_for("web-role", "the broken commit is refused", WAIT, |s| {
        outcome(s) == (c3.as_str(), "apply failed")
    });
    std::thread::sleep(Duration::from_secs(4));
    let log = supervisor.log("web-role");
    assert_eq!(
        log.matches(&format!("applying role web at {}", &c3[..7]))
            .count(),
        1,
        "{log}"
    );
    assert_eq!(supervisor.status("web-role")["deployed"], c2.as_str());
}

#[test]
fn rhai_hooks_in_the_repo_verify_check_health_and_run_after_a_deploy() {
    let scene = Scene::new();
    let repo = scene.path("repo");
    std::fs::create_dir_all(repo.join("toyc")).expect("mkdir");
    // The hooks read the checkout's `version` through the engine's local host.
    std::fs::write(
        repo.join("toyc/verify.rhai"),
        "let v = host::exec(`cat ${vars.checkout}/version`).stdout;\n\
         if v == \"bad\" { throw `version ${v} is refused by the verify hook`; }\n",
    )
    .expect("write");
    std::fs::write(
        repo.join("toyc/health.rhai"),
        "let v = host::exec(`cat ${vars.checkout}/version`).stdout;\n\
         if v == \"unwell\" { throw \"unwell says the health hook\"; }\n",
    )
    .expect("write");
    std::fs::write(
        repo.join("toyc/after_deploy.rhai"),
        "files::content(`${vars.checkout}.deployed`, vars.program + \" \" + vars.commit);\n",
    )
    .expect("write");
    let c1 = scene.commit("v1");
    scene.config(
        "hooked.yml",
        &format!(
            "repository: {{remote path: {}, local path: {}, branch: main}}
timing: {{minimum: 1, maximum: 2}}
application: {{start: exec python3 serve.py, env: {{PORT: '{}'}}}}
",
            repo.display(),
            scene.path("live").display(),
            scene.port
        ),
    );
    let supervisor = Supervisor::start(&scene);
    supervisor.wait_for("hooked", "v1 runs", WAIT, |s| {
        s["state"] == "running" && s["deployed"] == c1.as_str()
    });
    let bad = scene.commit("bad");
    let status = supervisor.wait_for("hooked", "the verify hook refuses", WAIT, |s| {
        outcome(s) == (bad.as_str(), "verify failed")
    });
    assert!(
        status["last_deploy"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("version bad is refused by the verify hook")),
        "{status:#}"
    );
    let unwell = scene.commit("unwell");
    let status = supervisor.wait_for("hooked", "the health hook rolls back", WAIT, |s| {
        outcome(s) == (unwell.as_str(), "rolled back")
    });
    assert_eq!(status["deployed"], c1.as_str());
    assert!(
        !scene.path("live.deployed").exists(),
        "no after-deploy for a rollback"
    );
    let good = scene.commit("v4");
    supervisor.wait_for("hooked", "v4 is deployed", WAIT, |s| {
        outcome(s) == (good.as_str(), "deployed")
    });
    assert_eq!(
        std::fs::read_to_string(scene.path("live.deployed")).expect("the after-deploy hook ran"),
        format!("hooked {good}")
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while scene.get().as_deref() != Some("v4") {
        assert!(Instant::now() < deadline, "v4 never answered");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_deploy_cut_short_by_kill_9_goes_back_to_the_previous_commit() {
    let scene = Scene::new();
    let c1 = git(&scene.path("repo"), &["rev-parse", "HEAD"], &[]);
    // Polls only when asked (`deploy`); the health check of a `slow` version hangs.
    scene.config(
        "web.yml",
        &format!(
            "repository: {{remote path: {}, local path: {}, branch: main}}
timing: {{minimum: 600, maximum: 600}}
application: {{start: exec python3 serve.py, env: {{PORT: '{}'}}}}
health: {{command: 'test \"$(cat version)\" != slow || sleep 8', timeout: 20, retries: 1}}
",
            scene.path("repo").display(),
            scene.path("live").display(),
            scene.port
        ),
    );
    let mut supervisor = Supervisor::start(&scene);
    supervisor.wait_for("web", "v1 runs", WAIT, |s| s["state"] == "running");
    let slow = scene.commit("slow");
    let (code, out, _) = supervisor.ctl(&["deploy", "web"]);
    assert_eq!(code, 0);
    assert!(out.contains("polling now"), "{out}");
    let status = supervisor.wait_for("web", "the slow commit is being checked", WAIT, |s| {
        s["activity"]
            .as_str()
            .is_some_and(|a| a.starts_with("health-checking"))
    });
    let slow_pid = status["pid"].as_i64().expect("the new commit runs");
    supervisor.kill9();

    let again = Supervisor::start(&scene);
    again
        .groups
        .lock()
        .expect("groups")
        .extend(supervisor.groups.lock().expect("groups").iter());
    let status = again.wait_for("web", "it runs again", WAIT, |s| s["state"] == "running");
    assert!(
        !alive(slow_pid),
        "the process of the cut-short deploy was stopped"
    );
    assert_eq!(status["deployed"], c1.as_str());
    assert_eq!(outcome(&status), (slow.as_str(), "interrupted"));
    assert_eq!(
        git(&scene.path("live"), &["rev-parse", "HEAD"], &[]),
        c1,
        "the checkout is back on the previous commit"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while scene.get().as_deref() != Some("v1") {
        assert!(Instant::now() < deadline, "v1 never answered");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(again.log("web").contains("was cut short"));
}

#[test]
fn a_program_runs_as_its_user_in_its_directory_with_its_env() {
    let scene = Scene::new();
    let root = nix_is_root();
    let user = if root { "user: nobody, " } else { "" };
    scene.config(
        "who.yml",
        &format!(
            "repository: {{remote path: {}, local path: {}, branch: main}}
application: {{start: 'exec sleep 600', directory: ., env: {{GREETING: hello}}, {user}stop timeout: 2}}
",
            scene.path("repo").display(),
            scene.path("live").display(),
        ),
    );
    let supervisor = Supervisor::start(&scene);
    let status = supervisor.wait_for("who", "it runs", WAIT, |s| s["state"] == "running");
    let pid = status["pid"].as_i64().expect("a pid");
    let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("its environment");
    let has = |pair: &str| environ.split(|b| *b == 0).any(|v| v == pair.as_bytes());
    assert!(has("GREETING=hello"));
    assert!(has("TOYC_PROGRAM=who"));
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).expect("its directory");
    assert_eq!(cwd, scene.path("live"));
    if root {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        let uid = status
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .expect("a uid");
        assert_eq!(uid, "65534", "it runs as nobody");
    }
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
