//! Generators and task lists against real hosts: scripts/deploy.rhai ships release
//! tarballs of two services to two host groups; stage limits proven by the hosts' own
//! clocks; abort semantics; a hand-edited plan refused before any host is touched; a
//! metric arriving at a Carbon plaintext listener on loopback.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::cli::{repo, Toyc};
use crate::support::hosts::{self, HostPool};

fn on_host(pool: &HostPool, i: usize, cmd: &str) -> String {
    let out = pool.docker_exec(i, cmd);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A release tarball `NAME-VERSION.tar.gz` in `dir`: `VERSION` (served over HTTP) and
/// `bin/ctl`, a sysvinit-style script running `python3 -m http.server` on the port in
/// `ROOT/NAME/shared/env`.
fn release(dir: &Path, name: &str, version: &str) {
    let tree = dir.join(format!("tree-{name}-{version}"));
    std::fs::create_dir_all(tree.join("bin")).expect("mkdir");
    std::fs::write(tree.join("VERSION"), format!("{name} {version}\n")).expect("write");
    let ctl = r#"#!/bin/sh
# start|stop|restart: a tiny HTTP service serving the current release's directory.
set -e
release=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd -P)
base=$(dirname "$(dirname "$release")")
. "$base/shared/env"
pidfile=$base/shared/pid
stop() {
    if [ -f "$pidfile" ]; then
        kill "$(cat "$pidfile")" 2>/dev/null || true
        rm -f "$pidfile"
        sleep 0.5
    fi
}
start() {
    cd "$base/current"
    setsid python3 -m http.server "$PORT" --bind 127.0.0.1 >>"$base/shared/log" 2>&1 </dev/null &
    echo $! > "$pidfile"
}
case "$1" in
    start) start ;;
    stop) stop ;;
    restart) stop; start ;;
    *) echo "usage: $0 start|stop|restart" >&2; exit 2 ;;
esac
"#;
    let ctl_path = tree.join("bin/ctl");
    std::fs::write(&ctl_path, ctl).expect("write ctl");
    let status = Command::new("chmod")
        .arg("755")
        .arg(&ctl_path)
        .status()
        .expect("chmod");
    assert!(status.success());
    let tarball = dir.join(format!("{name}-{version}.tar.gz"));
    let status = Command::new("tar")
        .arg("-czf")
        .arg(&tarball)
        .arg("-C")
        .arg(&tree)
        .arg(".")
        .status()
        .expect("tar runs");
    assert!(status.success());
    std::fs::remove_dir_all(&tree).expect("cleanup");
}

/// What a service answers on its host.
fn served(pool: &HostPool, i: usize, port: u16) -> String {
    on_host(
        pool,
        i,
        &format!("python3 -c \"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:{port}/VERSION', timeout=5).read().decode().strip())\" 2>&1"),
    )
}

/// A Carbon plaintext listener on loopback: every line received.
fn carbon() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&lines);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                seen.lock().expect("lines").push(line);
            }
        }
    });
    (port, lines)
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

#[test]
fn deploy_rhai_ships_two_services_to_two_host_groups_and_reports_to_carbon() {
    let Some(pool) = hosts::dedicated(4) else {
        return;
    };
    let (carbon_port, metrics) = carbon();
    // Debug logs count the round trips per host.
    let toyc = Toyc::new()
        .env("RUST_LOG", "toyc_engine=debug")
        .file("inv.yml", &pool.inventory_yaml("root"));
    let releases = toyc.dir().join("releases");
    std::fs::create_dir_all(&releases).expect("mkdir");
    release(&releases, "web", "1.0");
    release(&releases, "api", "1.0");
    let script = repo().join("scripts/deploy.rhai");
    let config = repo().join("scripts/deploy.yml");
    let args = |command: &str, extra: &[&str]| -> Vec<String> {
        let mut all: Vec<String> = vec![
            command.into(),
            script.display().to_string(),
            "--config".into(),
            config.display().to_string(),
            "-i".into(),
            "inv.yml".into(),
            "--directory".into(),
            "releases".into(),
            "--set".into(),
            format!("graphite.port={carbon_port}"),
        ];
        all.extend(extra.iter().map(|s| (*s).to_owned()));
        all
    };

    let ran = toyc.run_with(&strs(&args("run", &["-y"])));
    ran.code(0);
    // The older deployer's log format: time [LEVEL] [component] [host] [service] message.
    let line = regex::Regex::new(
        r"(?m)^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \[INFO\] \[upload\] \[h1\] \[web\] (uploaded|done)",
    )
    .expect("regex");
    assert!(line.is_match(&ran.stderr), "{}", ran.stderr);
    assert!(
        ran.stderr
            .contains("[INFO] [prune_releases] [h3] [api] 1 release(s), none to remove"),
        "{}",
        ran.stderr
    );

    // web runs on both groups, api on `back` (h3, h4) only.
    for i in 0..4 {
        assert_eq!(
            on_host(&pool, i, "readlink /srv/web/current"),
            "releases/1.0"
        );
        assert_eq!(served(&pool, i, 8080), "web 1.0", "h{}", i + 1);
    }
    for i in [2, 3] {
        assert_eq!(served(&pool, i, 9090), "api 1.0");
    }
    for i in [0, 1] {
        assert_eq!(
            on_host(&pool, i, "test -e /srv/api && echo yes || echo no"),
            "no"
        );
    }

    // The metric arrived: `path value timestamp`.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let metric = loop {
        let found = metrics.lock().expect("lines").first().cloned();
        if let Some(line) = found {
            break line;
        }
        assert!(std::time::Instant::now() < deadline, "no metric arrived");
        std::thread::sleep(Duration::from_millis(50));
    };
    let parts: Vec<&str> = metric.split(' ').collect();
    assert_eq!(parts[..2], ["deploy.example.deployed", "1"], "{metric}");
    let stamp: u64 = parts[2].parse().expect("a timestamp");
    assert!(now().abs_diff(stamp) < 120, "{metric}");

    // A new web release: remote_versions leaves api (already at 1.0) out of the plan.
    release(&releases, "web", "1.1");
    std::fs::remove_file(releases.join("web-1.0.tar.gz")).expect("rm");
    // Without a GENERATOR, `platform: python` chooses scripts/generators/python.rhai.
    let mut plan_args = args("plan", &["--dump"]);
    plan_args.remove(1);
    let dumped = toyc.run_with(&strs(&plan_args));
    dumped.code(0).stderr_has("syntax ok");
    // remote_versions: one round trip per host, h3 and h4 running both services.
    for name in ["h1", "h3"] {
        assert_eq!(dumped.round_trips(name), 1, "{name}: {}", dumped.stderr);
    }
    let plan: serde_json::Value = serde_json::from_str(&dumped.stdout).expect("JSON plan");
    let tasks: Vec<&serde_json::Value> = plan["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .flat_map(|s| s["tasks"].as_array().expect("tasks"))
        .collect();
    assert!(
        tasks.iter().all(|t| t["service"] != "api"),
        "{}",
        dumped.stdout
    );
    let uploads: Vec<&str> = tasks
        .iter()
        .filter(|t| t["command"] == "upload")
        .map(|t| t["host"].as_str().expect("host"))
        .collect();
    assert_eq!(uploads, ["h1", "h2", "h3", "h4"]);

    let ran = toyc.run_with(&strs(&args("run", &["-y", "--json"])));
    ran.code(0);
    for i in 0..4 {
        assert_eq!(served(&pool, i, 8080), "web 1.1", "restarted on h{}", i + 1);
    }
    assert_eq!(served(&pool, 2, 9090), "api 1.0");
    // keep_releases: 2 keeps both web releases; both are there.
    assert_eq!(
        on_host(&pool, 0, "ls /srv/web/releases | grep -c '^1\\.'"),
        "2"
    );
    assert!(ran.json_lines().iter().any(|e| e["type"] == "task_end"
        && e["data"]["command"] == "wait_port"
        && e["data"]["status"] == "ok"));
}

/// (start, end) nanosecond pairs each host recorded in `dir/log`, with the host index.
fn intervals(pool: &HostPool, indices: &[usize], dir: &str) -> Vec<(usize, u128, u128)> {
    let mut all = Vec::new();
    for &i in indices {
        for line in on_host(pool, i, &format!("cat {dir}/log 2>/dev/null")).lines() {
            let mut numbers = line.split(' ').filter_map(|n| n.parse::<u128>().ok());
            if let (Some(s), Some(e)) = (numbers.next(), numbers.next()) {
                all.push((i, s, e));
            }
        }
    }
    all
}

fn most_at_once(all: &[(usize, u128, u128)], only: impl Fn(usize) -> bool) -> usize {
    all.iter()
        .filter(|(h, _, _)| only(*h))
        .map(|&(_, start, _)| {
            all.iter()
                .filter(|&&(h, s, e)| only(h) && s <= start && start < e)
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// A config naming hosts `names` in one host group.
fn config(names: &[&str]) -> String {
    format!(
        "platform: test\nhostgroup:\n  all_hosts: [{}]\nservice:\n  work: {{hosts: [all_hosts]}}\n",
        names.join(", ")
    )
}

#[test]
fn concurrency_3_and_one_task_per_host_are_never_exceeded_by_the_hosts_clocks() {
    let Some(pool) = hosts::shared() else { return };
    let dir = "/tmp/toyc-tasklist-limits";
    let indices = [0, 1, 2, 3];
    for &i in &indices {
        pool.docker_exec(i, &format!("rm -rf {dir}"));
    }
    let names: Vec<String> = indices
        .iter()
        .map(|&i| pool.hosts()[i].name.clone())
        .collect();
    // Three tasks per host, twelve in all.
    let generator = format!(
        r#"
fn generate(config) {{
    let tasks = [];
    for round in 0..3 {{
        for host in config.hostgroup.all_hosts {{
            tasks.push(#{{ command: "shell", host: host, service: "work",
                cmd: "mkdir -p {dir} && s=$(date +%s%N) && sleep 0.4 && echo \"$s $(date +%s%N)\" >> {dir}/log" }});
        }}
    }}
    #{{ name: "limits", stages: [#{{ name: "work", concurrency: 3, concurrency_per_host: 1, tasks: tasks }}] }}
}}
"#
    );
    let toyc = Toyc::new()
        .file("inv.yml", &pool.inventory_yaml("root"))
        .file(
            "deploy.yml",
            &config(&names.iter().map(String::as_str).collect::<Vec<_>>()),
        )
        .file("gen.rhai", &generator);
    toyc.run_with(&[
        "run",
        "gen.rhai",
        "--config",
        "deploy.yml",
        "-i",
        "inv.yml",
        "-y",
    ])
    .code(0);
    let all = intervals(pool, &indices, dir);
    assert_eq!(all.len(), 12, "{all:?}");
    assert_eq!(most_at_once(&all, |_| true), 3, "{all:?}");
    for &i in &indices {
        assert_eq!(most_at_once(&all, |h| h == i), 1, "host {i}: {all:?}");
    }
}

#[test]
fn a_failure_in_a_stage_of_six_starts_nothing_more_lets_running_tasks_finish_and_fails() {
    let Some(pool) = hosts::shared() else { return };
    let dir = "/tmp/toyc-tasklist-abort";
    let indices: Vec<usize> = (4..10).collect();
    for &i in &indices {
        pool.docker_exec(i, &format!("rm -rf {dir}"));
    }
    // Two at once: task 1 is quick, task 2 slow; task 3 takes task 1's place and fails
    // while task 2 still works: task 2 finishes, tasks 4..6 and stage `later` never start.
    let mark = |body: &str| {
        format!("mkdir -p {dir} && date +%s%N > {dir}/start && {body} && date +%s%N > {dir}/end")
    };
    let cmds = [
        mark("sleep 0.2"),
        mark("sleep 3"),
        format!("mkdir -p {dir} && date +%s%N > {dir}/start && sleep 0.5 && date +%s%N > {dir}/end && exit 7"),
        mark("true"),
        mark("true"),
        mark("true"),
    ];
    let tasks: Vec<serde_json::Value> = indices
        .iter()
        .zip(&cmds)
        .map(|(&i, cmd)| serde_json::json!({"command": "shell", "host": pool.hosts()[i].name, "cmd": cmd}))
        .collect();
    let later: Vec<serde_json::Value> = indices
        .iter()
        .map(|&i| serde_json::json!({"command": "shell", "host": pool.hosts()[i].name, "cmd": format!("touch {dir}/later")}))
        .collect();
    let plan = serde_json::json!({
        "name": "abort",
        "stages": [
            {"name": "work", "concurrency": 2, "tasks": tasks},
            {"name": "later", "tasks": later},
        ]
    });
    let toyc = Toyc::new()
        .file("inv.yml", &pool.inventory_yaml("root"))
        .file(
            "plan.json",
            &serde_json::to_string_pretty(&plan).expect("json"),
        );
    let ran = toyc.run_with(&["apply", "plan.json", "-i", "inv.yml", "--json"]);
    ran.code(1);

    let read = |i: usize, f: &str| on_host(pool, i, &format!("cat {dir}/{f} 2>/dev/null"));
    let started: Vec<usize> = indices
        .iter()
        .copied()
        .filter(|&i| !read(i, "start").is_empty())
        .collect();
    assert_eq!(
        started,
        indices[..3],
        "tasks 4..6 never start: {}",
        ran.stdout
    );
    let time = |i: usize, f: &str| read(i, f).parse::<u128>().expect("a time mark");
    let (t2_start, t2_end) = (time(indices[1], "start"), time(indices[1], "end"));
    let (t3_start, t3_end) = (time(indices[2], "start"), time(indices[2], "end"));
    assert!(
        t3_start >= time(indices[0], "end"),
        "task 3 waited for a slot"
    );
    assert!(
        t2_start < t3_start && t2_end > t3_end,
        "task 2 ran past the failure and finished"
    );
    assert!(indices.iter().all(|&i| read(i, "later").is_empty()));

    let events = ran.json_lines();
    let status_of = |index: u64, stage: &str| {
        events
            .iter()
            .find(|e| {
                e["type"] == "task_end"
                    && e["data"]["index"] == index
                    && e["data"]["stage"] == stage
            })
            .map(|e| e["data"]["status"].as_str().unwrap_or_default().to_owned())
    };
    assert_eq!(status_of(2, "work").as_deref(), Some("ok"));
    assert_eq!(status_of(3, "work").as_deref(), Some("failed"));
    for index in 4..=6 {
        assert_eq!(status_of(index, "work").as_deref(), Some("skipped"));
    }
    assert_eq!(status_of(1, "later").as_deref(), Some("skipped"));
    assert!(events.iter().any(|e| e["type"] == "stage_end"
        && e["data"]["stage"] == "work"
        && e["data"]["aborted"] == true));
}

/// How many logins a host's sshd has accepted (it logs to the container's stderr).
fn logins(pool: &HostPool, i: usize) -> usize {
    let container = &pool.hosts()[i].container;
    let out = Command::new("docker")
        .args(["logs", container])
        .output()
        .expect("docker logs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    text.matches("Accepted publickey").count()
}

#[test]
fn a_hand_edited_plan_with_bad_arguments_is_refused_before_any_host_is_touched() {
    let Some(pool) = hosts::dedicated(2) else {
        return;
    };
    let names: Vec<String> = pool.hosts().iter().map(|h| h.name.clone()).collect();
    let generator = r#"
fn generate(config) {
    let tasks = [];
    for host in config.hostgroup.all_hosts {
        tasks.push(#{ command: "shell", host: host, cmd: "touch /tmp/touched" });
        tasks.push(#{ command: "wait_port", host: host, port: 22 });
        tasks.push(#{ command: "prune_releases", host: host, dir: "/srv/x/releases", keep: 2 });
    }
    #{ name: "edit me", stages: [#{ name: "check", concurrency: 2, tasks: tasks }] }
}
"#;
    let prune = std::fs::read_to_string(repo().join("scripts/commands/prune_releases.rhai"))
        .expect("the example command");
    let toyc = Toyc::new()
        .file("inv.yml", &pool.inventory_yaml("root"))
        .file(
            "deploy.yml",
            &config(&names.iter().map(String::as_str).collect::<Vec<_>>()),
        )
        .file("gen.rhai", generator)
        .file("commands/prune_releases.rhai", &prune);
    toyc.run_with(&[
        "plan",
        "gen.rhai",
        "--config",
        "deploy.yml",
        "-i",
        "inv.yml",
        "--save",
        "plan.json",
    ])
    .code(0)
    .stdout_has("syntax ok");
    let path = toyc.dir().join("plan.json");
    let saved = std::fs::read_to_string(&path).expect("saved");
    let mut plan: serde_json::Value = serde_json::from_str(&saved).expect("JSON");

    // Edited by hand: a port that is not a number, a custom command's bad argument.
    plan["stages"][0]["tasks"][1]["port"] = "twenty-two".into();
    plan["stages"][0]["tasks"][5]["keep"] = 0.into();
    std::fs::write(&path, serde_json::to_string_pretty(&plan).expect("json")).expect("write");
    let before: Vec<usize> = (0..2).map(|i| logins(&pool, i)).collect();
    let ran = toyc.run_with(&["apply", "plan.json", "-i", "inv.yml"]);
    ran.code(65)
        .stderr_has(&format!(
            "stage `check` task 2 (`wait_port` on `{}`): argument `port` of `wait_port` must be a port from 1 to 65535, not the string `twenty-two`",
            names[0]
        ))
        .stderr_has(&format!("stage `check` task 6 (`prune_releases` on `{}`)", names[1]))
        .stderr_has("`keep` must be a whole number of at least 1")
        .stderr_has("no host was touched");
    let after: Vec<usize> = (0..2).map(|i| logins(&pool, i)).collect();
    assert_eq!(before, after, "no ssh login happened");
    for i in 0..2 {
        assert_eq!(
            on_host(&pool, i, "test -e /tmp/touched && echo yes || echo no"),
            "no"
        );
    }

    // A JSON syntax error names file:line:col.
    std::fs::write(&path, saved.replacen("\"stages\"", "\"stages\" oops", 1)).expect("write");
    let ran = toyc.run_with(&["apply", "plan.json", "-i", "inv.yml"]);
    ran.code(65).stderr_has("plan.json:");
    assert!(
        regex::Regex::new(r"plan\.json:\d+:\d+: ")
            .expect("regex")
            .is_match(&ran.stderr),
        "{}",
        ran.stderr
    );

    // Config errors name file and line.
    let ran = Toyc::new()
        .file(
            "deploy.yml",
            "hostgroup:\n  front: [a]\nservice:\n  web: {hosts: [frnt]}\n",
        )
        .file(
            "gen.rhai",
            "fn generate(config) { #{ name: \"x\", stages: [] } }",
        )
        .run_with(&["plan", "gen.rhai", "--config", "deploy.yml"]);
    ran.code(65)
        .stderr_has("deploy.yml:1:1: ")
        .stderr_has("no `platform`");
    let ran = Toyc::new()
        .file(
            "deploy.yml",
            "platform: p\nhostgroup:\n  front: [a]\nservice:\n  web: {hosts: [frnt]}\n",
        )
        .file(
            "gen.rhai",
            "fn generate(config) { #{ name: \"x\", stages: [] } }",
        )
        .run_with(&["plan", "gen.rhai", "--config", "deploy.yml"]);
    ran.code(65)
        .stderr_has("deploy.yml:5:")
        .stderr_has("`frnt`");
}

#[test]
fn a_stage_that_continues_on_failure_lets_the_run_go_on_and_a_timeout_fails_a_task() {
    let plan = r#"{"name": "local", "stages": [
        {"name": "best effort", "on_failure": "continue", "tasks": [
            {"command": "shell", "host": "localhost", "cmd": "exit 4"},
            {"command": "shell", "host": "localhost", "cmd": "touch first"}]},
        {"name": "then", "tasks": [{"command": "shell", "host": "localhost", "cmd": "touch second"}]}]}"#;
    let toyc = Toyc::new().file("plan.json", plan);
    let ran = toyc.run_with(&["apply", "plan.json"]);
    ran.code(0)
        .stderr_has("[WARN] [stage] [localhost] [*] stage `best effort` task 1 (`shell`): `exit 4` exited with status 4")
        .stderr_has("the stage continues on failure");
    assert!(toyc.dir().join("first").exists() && toyc.dir().join("second").exists());

    // A stage timeout kills the remote command (here a local process) and fails the task.
    let plan = r#"{"name": "slow", "stages": [{"name": "s", "timeout": 0.5, "tasks": [
        {"command": "shell", "host": "localhost", "cmd": "sleep 30; touch late"}]}]}"#;
    let toyc = Toyc::new().file("plan.json", plan);
    let started = std::time::Instant::now();
    let ran = toyc.run_with(&["apply", "plan.json"]);
    ran.code(1).stderr_has("timed out after 0.5s");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn isolate_drops_a_failed_host_from_later_stages_and_the_others_go_on() {
    let Some(pool) = hosts::shared() else { return };
    let dir = "/tmp/toyc-tasklist-isolate";
    let (a, b) = (&pool.hosts()[0].name, &pool.hosts()[1].name);
    for i in 0..2 {
        pool.docker_exec(i, &format!("rm -rf {dir}"));
    }
    let plan = serde_json::json!({"name": "isolate", "stages": [
        {"name": "first", "on_failure": "isolate", "tasks": [
            {"command": "shell", "host": a, "cmd": "exit 1"},
            {"command": "shell", "host": b, "cmd": format!("mkdir -p {dir}")}]},
        {"name": "second", "tasks": [
            {"command": "shell", "host": a, "cmd": format!("mkdir -p {dir} && touch {dir}/second")},
            {"command": "shell", "host": b, "cmd": format!("touch {dir}/second")}]}]});
    let toyc = Toyc::new()
        .file("inv.yml", &pool.inventory_yaml("root"))
        .file("plan.json", &plan.to_string());
    let ran = toyc.run_with(&["apply", "plan.json", "-i", "inv.yml", "--json"]);
    ran.code(1);
    let second = |i: usize| {
        on_host(
            pool,
            i,
            &format!("test -e {dir}/second && echo yes || echo no"),
        )
    };
    assert_eq!((second(0).as_str(), second(1).as_str()), ("no", "yes"));
    let skipped = ran.json_lines().into_iter().any(|e| {
        e["type"] == "task_end"
            && e["data"]["stage"] == "second"
            && e["data"]["host"] == a.as_str()
            && e["data"]["status"] == "skipped"
    });
    assert!(skipped, "{}", ran.stdout);
}

#[test]
fn a_custom_command_works_through_ctx_remote_and_reads_only_its_own_files() {
    let command = r#"
fn initialize(args) {
    if type_of(args.dest) != "string" { throw "`dest` must be a directory on the host"; }
}
fn execute(ctx) {
    ctx.remote.exec(`mkdir -p ${ctx.args.dest}`);
    ctx.remote.put(ctx.args.file, ctx.args.dest);
    if !ctx.remote.file_exists(`${ctx.args.dest}/notes.txt`) { throw "the upload is not there"; }
    let r = ctx.remote.exec(`cat ${ctx.args.dest}/notes.txt`, #{ sudo: false });
    ctx.log(`read back: ${r.stdout}`);
    let missing = ctx.remote.exec("exit 3", #{ check: false });
    ctx.log(`exit code ${missing.code}`);
    1
}
"#;
    let toyc = Toyc::new();
    let out = toyc.dir().join("out").display().to_string();
    let plan = |file: &str| {
        format!(
            r#"{{"name": "custom", "stages": [{{"name": "s", "tasks": [
            {{"command": "ship", "host": "localhost", "service": "docs", "file": "{file}", "dest": "{out}"}}]}}]}}"#
        )
    };
    let toyc = toyc
        .file("gen/commands/ship.rhai", command)
        .file("gen/notes.txt", "hello\n")
        .file("secret.txt", "not for scripts\n")
        .file("gen/plan.json", &plan("notes.txt"));
    // The plan file sits in the generator's directory: commands/ and files come from there.
    let ran = toyc.run_with(&["apply", "gen/plan.json"]);
    ran.code(0)
        .stderr_has("[INFO] [ship] [localhost] [docs] read back: hello")
        .stderr_has("[INFO] [ship] [localhost] [docs] exit code 3");
    assert_eq!(
        std::fs::read_to_string(toyc.dir().join("out/notes.txt")).expect("uploaded"),
        "hello\n"
    );

    std::fs::write(toyc.dir().join("gen/plan.json"), plan("../secret.txt")).expect("write");
    let ran = toyc.run_with(&["apply", "gen/plan.json"]);
    ran.code(1).stderr_has("leads outside");
}

#[test]
fn a_saved_plan_cannot_widen_the_local_files_it_reads() {
    // See: issue 16 (security), item 6.
    let Some(pool) = hosts::shared() else { return };
    let i = 4;
    let name = pool.hosts()[i].name.clone();
    pool.docker_exec(i, "rm -rf /tmp/toyc-widen && mkdir /tmp/toyc-widen");
    let toyc = Toyc::new()
        .file("inv.yml", &pool.inventory_of("root", &[i]))
        .file("secret.txt", "controller secret\n")
        .file("gen/files/ok.txt", "shipped\n");
    let secret = toyc.dir().join("secret.txt");
    let plan = |key: &str, root: &str, src: &str| {
        serde_json::json!({"name": "widen", key: root, "stages": [{"name": "s", "tasks": [
            {"command": "upload", "host": name, "src": src, "dest": "/tmp/toyc-widen/"}]}]})
        .to_string()
    };
    let secret_rel = secret
        .strip_prefix("/")
        .expect("absolute")
        .to_str()
        .expect("utf-8")
        .to_owned();
    for (key, root, src) in [
        ("root", "/", secret_rel.as_str()),
        ("releases", "/", secret_rel.as_str()),
        ("root", "..", "secret.txt"),
        ("releases", "..", "secret.txt"),
        ("root", toyc.dir().to_str().expect("utf-8"), "secret.txt"),
    ] {
        std::fs::write(toyc.dir().join("gen/plan.json"), plan(key, root, src)).expect("write");
        let ran = toyc.run_with(&["apply", "gen/plan.json", "-i", "inv.yml"]);
        ran.code(65).stderr_has(&format!(
            "gen/plan.json: `{key}` is `{root}`, outside the plan's directory"
        ));
        assert_eq!(
            on_host(pool, i, "ls -A /tmp/toyc-widen"),
            "",
            "{key}: {root} shipped nothing"
        );
    }
    // Below the plan's own directory is fine.
    std::fs::write(
        toyc.dir().join("gen/plan.json"),
        plan("root", "files", "ok.txt"),
    )
    .expect("write");
    toyc.run_with(&["apply", "gen/plan.json", "-i", "inv.yml"])
        .code(0);
    assert_eq!(on_host(pool, i, "cat /tmp/toyc-widen/ok.txt"), "shipped");
}

#[test]
fn a_custom_command_returning_false_fails_its_stage_and_an_initialize_returning_false_refuses_the_plan(
) {
    let plan = r#"{"name": "falsy", "stages": [
        {"name": "first", "tasks": [
            {"command": "x", "host": "localhost"},
            {"command": "shell", "host": "localhost", "cmd": "touch first"}]},
        {"name": "then", "tasks": [{"command": "shell", "host": "localhost", "cmd": "touch second"}]}]}"#;
    let toyc = Toyc::new()
        .file(
            "commands/x.rhai",
            "fn initialize(a) {} fn execute(ctx) { false }",
        )
        .file("plan.json", plan);
    let ran = toyc.run_with(&["apply", "plan.json"]);
    ran.code(1)
        .stderr_has("stage `first` task 1 (`x`)")
        .stderr_has("`execute` returned `false`");
    assert!(
        !toyc.dir().join("second").exists(),
        "the next stage never starts: {}",
        ran.stderr
    );

    // Returning 0 (no changes) or nothing at all is success.
    let toyc = Toyc::new()
        .file(
            "commands/x.rhai",
            "fn initialize(a) {} fn execute(ctx) { 0 }",
        )
        .file(
            "commands/y.rhai",
            "fn initialize(a) {} fn execute(ctx) { ctx.log(\"y\"); }",
        )
        .file(
            "plan.json",
            &plan.replacen(
                r#"{"command": "shell", "host": "localhost", "cmd": "touch first"}"#,
                r#"{"command": "y", "host": "localhost"}"#,
                1,
            ),
        );
    toyc.run_with(&["apply", "plan.json"]).code(0);
    assert!(toyc.dir().join("second").exists());

    // `initialize` returning `false` refuses the task before anything runs.
    let toyc = Toyc::new()
        .file(
            "commands/x.rhai",
            "fn initialize(a) { a.keep > 0 } fn execute(ctx) { 1 }",
        )
        .file(
            "plan.json",
            r#"{"name": "refused", "stages": [{"name": "s", "tasks": [
                {"command": "shell", "host": "localhost", "cmd": "touch touched"},
                {"command": "x", "host": "localhost", "keep": 0}]}]}"#,
        );
    let ran = toyc.run_with(&["apply", "plan.json"]);
    ran.code(65)
        .stderr_has("stage `s` task 2 (`x` on `localhost`)")
        .stderr_has("`initialize` returned `false`")
        .stderr_has("no host was touched");
    assert!(!toyc.dir().join("touched").exists());
}

#[test]
fn a_graphite_send_that_fails_is_a_warning_and_the_run_succeeds() {
    // A port nobody listens on: bound, then closed.
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let generator = r#"
fn generate(config) {
    #{ name: "notify", stages: [
        #{ name: "work", tasks: [#{ command: "shell", host: "localhost", cmd: "true" }] },
        graphite_stage("deployed")] }
}
"#;
    let toyc = Toyc::new()
        .file(
            "deploy.yml",
            &format!(
                "{}graphite: {{host: 127.0.0.1, port: {port}}}\n",
                config(&["localhost"])
            ),
        )
        .file("gen.rhai", generator);
    let ran = toyc.run_with(&["run", "gen.rhai", "--config", "deploy.yml", "-y"]);
    ran.code(0)
        .stderr_has("[WARN] [send_graphite] [localhost] [*] task 1 of stage `graphite deployed` failed")
        .stderr_has("[WARN] [stage] [*] [*] stage `graphite deployed`: 0 ok, 1 failed and let pass (the stage continues on failure), 0 not started");
    assert!(!ran.stderr.contains("[ERROR]"), "{}", ran.stderr);
    let json = toyc.run_with(&["run", "gen.rhai", "--config", "deploy.yml", "-y", "--json"]);
    json.code(0);
    let stage_end = json
        .json_lines()
        .into_iter()
        .find(|e| e["type"] == "stage_end" && e["data"]["stage"] == "graphite deployed")
        .expect("a stage_end");
    assert_eq!(stage_end["data"]["failed"], 1, "{stage_end}");
}

#[test]
fn plan_listings_quote_odd_values_and_plan_json_prints_json() {
    let generator = r#"
fn generate(config) {
    #{ name: "odd", stages: [#{ name: "s", tasks: [
        #{ command: "shell", host: "localhost", cmd: "printf 'a\nb' > out\necho done" },
        #{ command: "sleep", host: "localhost", seconds: 1, description: "two words" },
        #{ command: "symlink", host: "localhost", target: "/srv/x", link: "/srv/current" }] }] }
}
"#;
    let toyc = Toyc::new()
        .file("deploy.yml", &config(&["localhost"]))
        .file("gen.rhai", generator);
    let ran = toyc.run_with(&["plan", "gen.rhai", "--config", "deploy.yml", "-v"]);
    ran.code(0).stdout_has("syntax ok");
    let listing: Vec<&str> = ran
        .stderr
        .lines()
        .filter(|l| l.starts_with("    "))
        .collect();
    assert_eq!(listing.len(), 3, "one line per task:\n{}", ran.stderr);
    assert!(
        listing[0].ends_with(r#"cmd="printf 'a\nb' > out\necho done""#),
        "{}",
        listing[0]
    );
    assert!(
        listing[1].contains(r#"description="two words""#),
        "{}",
        listing[1]
    );
    // Plain words stay as they are.
    assert!(
        listing[2].ends_with("link=/srv/current target=/srv/x"),
        "{}",
        listing[2]
    );

    let ran = toyc.run_with(&["plan", "gen.rhai", "--config", "deploy.yml", "--json"]);
    ran.code(0);
    assert!(!ran.stdout.contains("syntax ok"), "{}", ran.stdout);
    let lines = ran.json_lines();
    assert_eq!(lines.len(), 1, "{}", ran.stdout);
    assert_eq!(lines[0]["type"], "plan");
    assert_eq!(lines[0]["data"]["name"], "odd");
    assert_eq!(lines[0]["data"]["tasks"], 3);
    assert_eq!(
        lines[0]["data"]["plan"]["stages"][0]["tasks"][0]["cmd"],
        "printf 'a\nb' > out\necho done"
    );
}

#[test]
fn a_generator_is_held_to_the_script_limits_given() {
    let toyc = Toyc::new()
        .file(
            "deploy.yml",
            "platform: p\nhostgroup:\n  front: [a]\nservice:\n  web: {hosts: [front]}\n",
        )
        .file(
            "gen.rhai",
            "fn generate(config) {\n  let i = 0;\n  while true { i += 1; }\n}",
        );
    for command in ["plan", "run"] {
        toyc.run_with(&[
            command,
            "gen.rhai",
            "--config",
            "deploy.yml",
            "--max-operations",
            "1000",
        ])
        .code(65)
        .stderr_has("limit of 1000 operations");
    }
}

#[test]
fn a_saved_task_list_runs_its_custom_commands_under_the_script_limits_given() {
    let plan = r#"{"name": "spin", "stages": [{"name": "s", "tasks": [
        {"command": "spin", "host": "localhost"}]}]}"#;
    let toyc = Toyc::new()
        .file(
            "commands/spin.rhai",
            "fn initialize(a) {}\nfn execute(ctx) { let i = 0; loop { i += 1; } }",
        )
        .file("plan.json", plan);
    let ran = toyc.run_with(&["apply", "plan.json", "--max-operations", "1000"]);
    ran.code(1).stderr_has("limit of 1000 operations");
}

// See: issue 15, item 2. A task's host must be known to the inventory the list runs with
// (or to the config's host groups): a typo or a plan applied without its `-i` is refused
// before any host is touched; the `--save` hint is the whole command; a host that cannot
// be reached exits 3.
#[test]
fn a_task_for_a_host_nobody_knows_is_invalid_and_an_unreachable_one_exits_3() {
    let generator = r#"
fn generate(config) {
    let tasks = [];
    for host in config.hostgroup.all_hosts { tasks.push(#{ command: "shell", host: host, cmd: "true" }); }
    tasks.push(#{ command: "shell", host: config.extra, cmd: "true" });
    #{ name: "hosts", stages: [#{ name: "s", tasks: tasks }] }
}
"#;
    // h1 is an address nobody listens on: reachable by name, never connected.
    let toyc = Toyc::new()
        .file("gen.rhai", generator)
        .file(
            "deploy.yml",
            &format!("{}extra: localhost\n", config(&["h1"])),
        )
        .file(
            "inv.yml",
            "hosts:\n  h1: {address: 127.0.0.1, ssh: {port: 1}}\n",
        );
    let plan = |extra: &str, more: &[&str]| {
        let set = format!("extra={extra}");
        let mut args = vec!["plan", "gen.rhai", "--config", "deploy.yml", "--set", &set];
        args.extend_from_slice(more);
        toyc.run_with(&args)
    };
    plan("h9", &["-i", "inv.yml"])
        .code(65)
        .stderr_has("invalid: stage `s` task 2 (`shell` on `h9`): host `h9` is in neither the inventory nor the config's host groups");
    plan("h9", &[])
        .code(65)
        .stderr_has("host `h9` is not in the config's host groups, and no inventory was given");
    plan("localhost", &["-i", "inv.yml", "--save", "plan.json"])
        .code(0)
        .stderr_has("run them with `toyc apply plan.json -i inv.yml`");

    let ran = toyc.run_with(&["apply", "plan.json"]);
    ran.code(65)
        .stderr_has("host `h1` is not in the inventory: no `-i` was given");
    assert!(!ran.stderr.contains("resolve"), "{}", ran.stderr);
    toyc.run_with(&["apply", "plan.json", "-i", "inv.yml"])
        .code(3)
        .stderr_has("unreachable");
}

// See: issue 15, items 5 and 6. A deploy's paths resolve against its config's directory,
// however `--config` is spelled, and that directory holds `commands/` for a named
// generator as for one chosen by platform; `toyc run --config F` alone runs the latter.
#[test]
fn a_relative_config_finds_its_generator_imports_and_commands_in_its_directory() {
    let generator = r#"
import "../lib" as lib;
fn generate(config) { lib::list(config) }
"#;
    let lib = r#"
fn list(config) {
    #{ name: "rel", stages: [#{ name: "s", tasks: [#{ command: "mine", host: "localhost", file: config.file }] }] }
}
"#;
    let command = r#"
fn initialize(args) { if type_of(args.file) != "string" { throw "`file` is a path"; } }
fn execute(ctx) { ctx.remote.exec(`touch ${ctx.args.file}`); 1 }
"#;
    let toyc = Toyc::new();
    let made = toyc.dir().join("made");
    let toyc = toyc
        .file(
            "d/deploy.yml",
            &format!(
                "platform: p\nhostgroup:\n  all: [localhost]\nservice:\n  work: {{hosts: [all]}}\nfile: {}\n",
                made.display()
            ),
        )
        .file("d/generators/p.rhai", generator)
        .file("d/lib.rhai", lib)
        .file("d/commands/mine.rhai", command)
        .file("d/named/gen.rhai", &format!("{lib}\nfn generate(config) {{ list(config) }}\n"));
    for config in ["d/deploy.yml", "./d/deploy.yml"] {
        toyc.run_with(&["plan", "--config", config])
            .code(0)
            .stdout_has("syntax ok");
        toyc.run_with(&["plan", "d/generators/p.rhai", "--config", config])
            .code(0)
            .stdout_has("syntax ok");
    }
    // A named generator elsewhere: `commands/` is still the config's.
    toyc.run_with(&["plan", "d/named/gen.rhai", "--config", "d/deploy.yml"])
        .code(0)
        .stdout_has("syntax ok");
    toyc.run_with(&["run", "--config", "d/deploy.yml", "-y"])
        .code(0);
    assert!(made.exists(), "the platform's generator ran its task");
}

// See: issue 15, item 7. `plan` reads hosts only through `remote_versions`; when it cannot
// reach them (no inventory to give their addresses) it says so once, for all of them.
#[test]
fn remote_versions_without_an_inventory_fails_once_for_every_host() {
    let generator = r#"
fn generate(config) {
    let running = remote_versions(packages());
    #{ name: "rv", stages: [] }
}
"#;
    let ran = Toyc::new()
        .file(
            "deploy.yml",
            "platform: p\nhostgroup:\n  all: [nohost1.invalid, nohost2.invalid]\nservice:\n  work: {hosts: [all]}\n",
        )
        .file("gen.rhai", generator)
        .run_with(&["plan", "gen.rhai", "--config", "deploy.yml", "--component", "work=1"]);
    ran.code(65)
        .stderr_has("could not ask 2 hosts (nohost1.invalid, nohost2.invalid)")
        .stderr_has("pass `-i INVENTORY`");
    assert_eq!(ran.stderr.matches("error:").count(), 1, "{}", ran.stderr);
    Toyc::new()
        .args(["plan", "--help"])
        .run()
        .code(0)
        .stdout_has("`remote_versions` asks each host");
}

/// The deploy example, task by task (`TOYC_NO_BATCH`, on h3 and h4) and batched (on h1
/// and h2): a host's consecutive tasks of a stage travel together, so it pays fewer
/// round trips, and the deploy still lands. (Issue 17, item 2.)
#[test]
fn deploy_rhai_pays_fewer_round_trips_per_host_when_a_hosts_tasks_travel_together() {
    let Some(pool) = hosts::dedicated(4) else {
        return;
    };
    // keep_releases 5: the cleanup removes nothing, so it costs the same every time.
    let make = |batched: bool| {
        let front = if batched { "[h1, h2]" } else { "[h3, h4]" };
        let config = format!(
            "platform: python\nroot: /srv\nconcurrency: 3\nkeep_releases: 5\n\
             hostgroup:\n  front: {front}\nservice:\n  web: {{hosts: [front], port: 8080}}\n"
        );
        let toyc = Toyc::new()
            .env("RUST_LOG", "toyc_engine=debug")
            .file("inv.yml", &pool.inventory_yaml("root"))
            .file("deploy.yml", &config)
            .file(
                "commands/prune_releases.rhai",
                &std::fs::read_to_string(repo().join("scripts/commands/prune_releases.rhai"))
                    .expect("the example's cleanup command"),
            );
        if batched {
            toyc
        } else {
            toyc.env("TOYC_NO_BATCH", "1")
        }
    };
    let (batched, one_by_one) = (make(true), make(false));
    let releases = batched.dir().join("releases");
    std::fs::create_dir_all(&releases).expect("mkdir");
    let script = repo().join("scripts/deploy.rhai");
    let deploy = |toyc: &Toyc, version: &str, hosts: [usize; 2]| {
        for old in std::fs::read_dir(&releases).expect("ls").flatten() {
            std::fs::remove_file(old.path()).expect("rm");
        }
        release(&releases, "web", version);
        let ran = toyc.run_with(&[
            "run",
            &script.display().to_string(),
            "--config",
            "deploy.yml",
            "-i",
            "inv.yml",
            "--directory",
            &releases.display().to_string(),
            "-y",
            "--json",
        ]);
        ran.code(0);
        for i in hosts {
            assert_eq!(
                served(&pool, i, 8080),
                format!("web {version}"),
                "h{}",
                i + 1
            );
        }
        ran
    };

    let fresh_before = deploy(&one_by_one, "1.0", [2, 3]).round_trips("h3");
    let fresh_after = deploy(&batched, "1.0", [0, 1]).round_trips("h1");
    let upgrade_before = deploy(&one_by_one, "1.1", [2, 3]).round_trips("h3");
    let upgraded = deploy(&batched, "1.1", [0, 1]);
    let upgrade_after = upgraded.round_trips("h1");
    eprintln!(
        "deploy example, round trips per host: first deploy {fresh_before} task by task, \
         {fresh_after} batched; upgrade {upgrade_before} task by task, {upgrade_after} batched"
    );
    // Task by task, a first deploy: remote_versions 1; prepare 4 (facts and change of each
    // directory); upload 1; unpack 1, then 2 for the env file; switch 1, then 2 for the
    // init link; restart 2; cleanup 2 (its script's own two commands). Batched, each
    // stage's tasks travel together: prepare 2 (facts, changes), unpack 2 (the unpack
    // with the env file's facts, then its change), switch 2, restart 1.
    assert_eq!((fresh_before, fresh_after), (16, 11));
    // An upgrade changes no directory, env file or init link: 12 and 8.
    assert_eq!((upgrade_before, upgrade_after), (12, 8));

    // Every task still has its own start and end, in the host's order.
    let events = upgraded.json_lines();
    let of_h1 = |kind: &str| -> Vec<(String, u64)> {
        events
            .iter()
            .filter(|e| e["type"] == kind && e["data"]["host"] == "h1")
            .map(|e| {
                (
                    e["data"]["stage"].as_str().unwrap_or_default().to_owned(),
                    e["data"]["index"].as_u64().unwrap_or_default(),
                )
            })
            .collect()
    };
    let (starts, ends) = (of_h1("task_start"), of_h1("task_end"));
    assert_eq!(starts.len(), 10, "{starts:?}");
    assert_eq!(starts, ends);
    assert!(events
        .iter()
        .all(|e| e["type"] != "task_end" || e["data"]["status"] == "ok"));
}

/// A batch on one host keeps its tasks' order (an operation planned after the task
/// before it ran), their events, the stage's timeout per task (the running one is
/// killed, the rest skipped), and a retry resumes at the task that failed.
#[test]
fn a_batch_keeps_order_per_task_timeouts_abort_and_retries_of_its_tasks() {
    let toyc = Toyc::new();
    let dir = toyc.dir().display().to_string();
    let plan = serde_json::json!({"name": "batch", "stages": [
        {"name": "work", "concurrency_per_host": 1, "timeout": 1.5, "tasks": [
            {"command": "shell", "host": "localhost", "cmd": format!("echo 1 >> {dir}/log")},
            {"command": "files::content", "host": "localhost", "dest": format!("{dir}/f"), "text": "x\n"},
            {"command": "shell", "host": "localhost", "cmd": format!("cat {dir}/f >> {dir}/log")},
            {"command": "shell", "host": "localhost", "cmd": format!("sleep 31.5; touch {dir}/late")},
            {"command": "shell", "host": "localhost", "cmd": format!("touch {dir}/never")}]}]});
    let toyc = toyc.file("plan.json", &plan.to_string());
    let started = std::time::Instant::now();
    let ran = toyc.run_with(&["apply", "plan.json", "--json"]);
    ran.code(1);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    let log = std::fs::read_to_string(toyc.dir().join("log")).expect("log");
    assert_eq!(log, "1\nx\n");
    assert!(!toyc.dir().join("never").exists());
    let events = ran.json_lines();
    let ends: Vec<(u64, String, String)> = events
        .iter()
        .filter(|e| e["type"] == "task_end")
        .map(|e| {
            (
                e["data"]["index"].as_u64().unwrap_or_default(),
                e["data"]["status"].as_str().unwrap_or_default().to_owned(),
                e["data"]["error"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let statuses: Vec<(u64, &str)> = ends.iter().map(|(i, s, _)| (*i, s.as_str())).collect();
    assert_eq!(
        statuses,
        [
            (1, "ok"),
            (2, "ok"),
            (3, "ok"),
            (4, "failed"),
            (5, "skipped")
        ],
        "{}",
        ran.stdout
    );
    assert!(ends[3].2.contains("timed out after 1.5s"), "{:?}", ends[3]);
    let starts = events.iter().filter(|e| e["type"] == "task_start").count();
    assert_eq!(starts, 4, "{}", ran.stdout);
    // The timed-out command was killed, not left running.
    std::thread::sleep(Duration::from_millis(500));
    let alive = Command::new("pgrep")
        .args(["-f", "sleep 31.5"])
        .output()
        .expect("pgrep");
    assert!(
        alive.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&alive.stdout)
    );

    // A retry resumes at the task that failed: the first task runs once.
    let toyc = Toyc::new();
    let dir = toyc.dir().display().to_string();
    let plan = serde_json::json!({"name": "retry", "stages": [
        {"name": "work", "concurrency_per_host": 1, "retries": 1, "retry_delay": 0.1, "tasks": [
            {"command": "shell", "host": "localhost", "cmd": format!("echo a >> {dir}/log")},
            {"command": "shell", "host": "localhost", "cmd": format!("test -e {dir}/flag || {{ touch {dir}/flag; exit 3; }}")},
            {"command": "shell", "host": "localhost", "cmd": format!("echo c >> {dir}/log")}]}]});
    let toyc = toyc.file("plan.json", &plan.to_string());
    let ran = toyc.run_with(&["apply", "plan.json", "--json"]);
    ran.code(0);
    let log = std::fs::read_to_string(toyc.dir().join("log")).expect("log");
    assert_eq!(log, "a\nc\n");
    let starts_of_2 = ran
        .json_lines()
        .iter()
        .filter(|e| e["type"] == "task_start" && e["data"]["index"] == 2)
        .count();
    assert_eq!(starts_of_2, 2, "{}", ran.stdout);
}
