//! Workflows: the daemon runs `module::task` steps that create a real container host
//! from the test-host image (docker provider), record its generated host key, wait for
//! SSH and apply the example role to it; status, failures, resume and `kill -9`
//! mid-step, through the real binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::daemon::Daemon;
use crate::roles::file_repo;
use crate::support::cli::{binary, repo};
use crate::support::hosts;

/// A daemon with workflows in `dir/workflows`, logging in with the pool's key.
fn workflow_daemon(dir: &Path, identity: &Path, extra: &str) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir.join("workflows/modules")).expect("mkdir");
    std::fs::write(dir.join("secrets.yml"), "webhook: unused\n").expect("secrets");
    let config = dir.join("daemon.yml");
    std::fs::write(
        &config,
        format!(
            "secrets_file: secrets.yml\nlease_seconds: 3\nshutdown_timeout_seconds: 2\n{extra}\
             workflows:\n  dir: workflows\n  ssh_identity: \"{}\"\n  ssh_timeout_seconds: 60\n",
            identity.display()
        ),
    )
    .expect("config");
    (config, dir.join("state"))
}

/// A workflow file creating container `name`, with `steps`.
fn workflow_file(dir: &Path, name: &str, role_url: &str, steps: &[&str]) -> PathBuf {
    let (image, owner, pid) = hosts::image_and_owner_label().expect("docker is usable");
    let pool = hosts::shared().expect("the shared pool");
    let public = std::fs::read_to_string(pool.identity().with_extension("pub")).expect("pub key");
    let mut text = format!(
        "instance:\n  hostname: {name}\n  provider: docker\n  image: \"{image}\"\n  \
         sshpubkey: \"{}\"\n  tags: {{\"{owner}\": \"{pid}\"}}\n\
         role:\n  name: web\n  repo: \"{role_url}\"\n  vars: {{server_name: {name}.example.org}}\n\
         steps:\n",
        public.trim()
    );
    for step in steps {
        text.push_str(&format!("  - {step}\n"));
    }
    let path = dir.join("workflows").join(format!("{name}.yml"));
    std::fs::write(&path, text).expect("workflow file");
    path
}

fn toyc_workflow(daemon: &Daemon, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(binary())
        .args(["workflow", "--url", &daemon.url])
        .args(args)
        .output()
        .expect("toyc workflow runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn wait_state(daemon: &Daemon, name: &str, states: &[&str], limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let status = daemon.get(&format!("/api/workflows/{name}"));
        if states.contains(&status["state"].as_str().unwrap_or("")) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "workflow {name} is {status:#} after {limit:?}\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn container_has(name: &str, path: &str) -> String {
    let out = Command::new("docker")
        .args(["exec", &format!("toyc-wf-{name}"), "cat", path])
        .output()
        .expect("docker exec");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_workflow_creates_a_container_host_records_its_generated_key_and_applies_a_role() {
    let Some(pool) = hosts::shared() else { return };
    let scratch = tempfile::tempdir().expect("tempdir");
    let (_, role_url) = file_repo(&repo().join("scripts/roles/web"), scratch.path(), "web");
    let (config, state) = workflow_daemon(scratch.path(), pool.identity(), "");
    let name = format!("wfa{}", std::process::id());
    workflow_file(
        scratch.path(),
        &name,
        &role_url,
        &[
            "host::keygen",
            "provider::create",
            "provider::wait_running",
            "host::record_key",
            "host::wait_ssh",
            "role::apply",
        ],
    );
    let daemon = Daemon::start(&config, &state, &[]);
    let started = Instant::now();
    let (code, out, err) = toyc_workflow(&daemon, &["run", &name]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("queued"), "{out}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "run returns at once"
    );
    let done = wait_state(
        &daemon,
        &name,
        &["succeeded", "failed"],
        Duration::from_secs(120),
    );
    assert_eq!(done["state"], "succeeded", "{done:#}\n{}", daemon.log());

    // The key toyc recorded is the one it generated, and the one the host presents.
    let known = std::fs::read_to_string(state.join("known_hosts")).expect("known_hosts");
    let ip = done["clip"]["instance"]["ip"]
        .as_str()
        .expect("an ip")
        .to_owned();
    let presented = container_has(&name, "/etc/ssh/ssh_host_ed25519_key.pub");
    let presented: Vec<&str> = presented.split_whitespace().take(2).collect();
    assert_eq!(
        known.trim(),
        format!("{ip} {}", presented.join(" ")),
        "{known}"
    );
    assert!(
        container_has(&name, &format!("/etc/nginx/conf.d/{name}.example.org.conf"))
            .contains(&format!("{name}.example.org")),
        "the role configured the new host"
    );
    let (code, out, _) = toyc_workflow(&daemon, &["status", &name]);
    assert_eq!(code, 0);
    assert!(out.contains("done, all 6 steps"), "{out}");
    let (code, out, _) = toyc_workflow(&daemon, &["list"]);
    assert_eq!(code, 0);
    assert!(out.contains(&name) && out.contains("succeeded"), "{out}");
}

#[test]
fn a_failing_step_keeps_the_clipboard_and_resume_starts_again_at_that_step() {
    let Some(pool) = hosts::shared() else { return };
    let scratch = tempfile::tempdir().expect("tempdir");
    let (config, state) = workflow_daemon(scratch.path(), pool.identity(), "");
    let name = format!("wfb{}", std::process::id());
    let file = workflow_file(
        scratch.path(),
        &name,
        "file:///nowhere",
        &["note::first", "note::gate", "note::last"],
    );
    std::fs::write(
        scratch.path().join("workflows/modules/note.rhai"),
        "fn first(clip) { clip.first = \"yes\"; clip.token = secret(\"hunter22\"); clip }\n\
         fn gate(clip) { throw \"the gate is closed\"; }\n\
         fn last(clip) { clip.last = \"yes\"; clip }\n",
    )
    .expect("module");
    let daemon = Daemon::start(&config, &state, &[]);
    let (code, _, err) = toyc_workflow(&daemon, &["run", file.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{err}");
    let failed = wait_state(&daemon, &name, &["failed"], Duration::from_secs(30));
    assert_eq!(failed["failed_step"], 1, "{failed:#}");
    assert!(
        failed["error"]
            .as_str()
            .unwrap_or("")
            .contains("the gate is closed"),
        "{failed:#}"
    );
    assert_eq!(
        failed["clip"]["first"], "yes",
        "the clipboard of step 1 is kept"
    );
    assert_eq!(
        failed["clip"]["token"], "********",
        "secret-looking keys are masked"
    );
    let (code, out, _) = toyc_workflow(&daemon, &["status", &name]);
    assert_eq!(code, 1, "a failed run's status exits 1");
    assert!(out.contains("failed at step 2/3 note::gate: "), "{out}");

    // Open the gate; resume runs step 2 and 3 only (step 1 would set `first` again).
    std::fs::write(
        scratch.path().join("workflows/modules/note.rhai"),
        "fn first(clip) { clip.first = \"again\"; clip }\n\
         fn gate(clip) { clip.gate = \"open\"; clip }\n\
         fn last(clip) { clip.last = \"yes\"; clip }\n",
    )
    .expect("module");
    let (code, _, err) = toyc_workflow(&daemon, &["resume", &name]);
    assert_eq!(code, 0, "{err}");
    let done = wait_state(
        &daemon,
        &name,
        &["succeeded", "failed"],
        Duration::from_secs(30),
    );
    assert_eq!(done["state"], "succeeded", "{done:#}");
    assert_eq!(done["clip"]["first"], "yes", "step 1 was not run again");
    assert_eq!(done["clip"]["gate"], "open");
    assert_eq!(done["clip"]["last"], "yes");
    let log = daemon.log();
    assert!(
        !log.contains("hunter22"),
        "a secret reached the log:\n{log}"
    );
}

#[test]
fn a_daemon_killed_mid_step_leaves_the_run_interrupted_at_that_step_until_resumed() {
    let Some(pool) = hosts::shared() else { return };
    let scratch = tempfile::tempdir().expect("tempdir");
    let (config, state) = workflow_daemon(scratch.path(), pool.identity(), "");
    let name = format!("wfc{}", std::process::id());
    // The slow step applies a role that sleeps on a pool host, whose key the record holds.
    let role = scratch.path().join("slow-role");
    std::fs::create_dir_all(&role).expect("mkdir");
    std::fs::write(
        role.join("runbook.rhai"),
        "shell::run(\"sleep 6; echo slept >> /tmp/toyc-wfc-slept\");\n",
    )
    .expect("runbook");
    let (_, role_url) = file_repo(&role, scratch.path(), "wfslow");
    std::fs::write(
        scratch.path().join("workflows/modules/slow.rhai"),
        "fn last(clip) { clip.last = true; clip }\n",
    )
    .expect("module");
    let host = &pool.hosts()[0];
    let file = scratch.path().join(format!("workflows/{name}.yml"));
    std::fs::write(
        &file,
        format!(
            "instance: {{hostname: {name}, ip: \"{}\"}}\nssh: {{host_key: \"{}\"}}\n\
             role: {{name: wfslow, repo: \"{role_url}\"}}\n\
             steps: [host::record_key, role::apply, slow::last]\n",
            host.address, host.host_key
        ),
    )
    .expect("workflow");
    pool.docker_exec(0, "rm -f /tmp/toyc-wfc-slept");
    let mut daemon = Daemon::start(&config, &state, &[]);
    let (code, _, err) = toyc_workflow(&daemon, &["run", &name]);
    assert_eq!(code, 0, "{err}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = daemon.get(&format!("/api/workflows/{name}"));
        if status["current_step"] == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never reached step 2: {status:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    daemon.kill9();
    let daemon = Daemon::start(&config, &state, &[]);
    let interrupted = wait_state(&daemon, &name, &["interrupted"], Duration::from_secs(30));
    assert_eq!(interrupted["failed_step"], 1, "{interrupted:#}");
    assert!(
        interrupted["error"]
            .as_str()
            .unwrap_or("")
            .contains("not run again by itself"),
        "{interrupted:#}"
    );
    // Not re-run by itself: still interrupted a lease and more later.
    std::thread::sleep(Duration::from_secs(4));
    let still = daemon.get(&format!("/api/workflows/{name}"));
    assert_eq!(still["state"], "interrupted", "{still:#}");
    let (code, _, err) = toyc_workflow(&daemon, &["resume", &name]);
    assert_eq!(code, 0, "{err}");
    let done = wait_state(
        &daemon,
        &name,
        &["succeeded", "failed"],
        Duration::from_secs(60),
    );
    assert_eq!(done["state"], "succeeded", "{done:#}");
    assert_eq!(done["clip"]["last"], true);
    let slept = pool.docker_exec(0, "cat /tmp/toyc-wfc-slept");
    assert_eq!(
        String::from_utf8_lossy(&slept.stdout).trim(),
        "slept",
        "the interrupted step's command died with its daemon; only the resumed one ran to the end"
    );
}

/// Serves `body` to every GET on 127.0.0.1 (a port it picks), in a thread; its URL.
fn serve_once(body: String) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!(
        "http://{}/loki.yml",
        listener.local_addr().expect("address")
    );
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten().take(4) {
            let mut stream = stream;
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

#[test]
fn a_workflow_fetched_by_url_runs_its_built_in_steps_and_a_missing_step_is_refused_first() {
    let Some(pool) = hosts::shared() else { return };
    let scratch = tempfile::tempdir().expect("tempdir");
    let (config, state) = workflow_daemon(scratch.path(), pool.identity(), "");
    let daemon = Daemon::start(&config, &state, &[]);
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIArmQT47lNPpzrs9Re9xbmtMewl238V2+LQx1p298Lne";
    let url = serve_once(format!(
        "instance: {{hostname: wfurl, ip: 192.0.2.55}}\nssh: {{host_key: \"{key}\"}}\nsteps: [host::record_key]\n"
    ));
    let (code, _, err) = toyc_workflow(&daemon, &["run", &url]);
    assert_eq!(code, 0, "{err}");
    let done = wait_state(
        &daemon,
        "wfurl",
        &["succeeded", "failed"],
        Duration::from_secs(30),
    );
    assert_eq!(done["state"], "succeeded", "{done:#}");
    let known = std::fs::read_to_string(state.join("known_hosts")).expect("known_hosts");
    assert_eq!(known.trim(), format!("192.0.2.55 {key}"));

    // A step that does not exist is refused before anything runs, naming it.
    let url = serve_once(
        "instance: {hostname: wfbad}\nsteps: [host::record_key, host::nope, dns::x]\n".into(),
    );
    let (code, _, err) = toyc_workflow(&daemon, &["run", &url]);
    assert_eq!(code, 65, "{err}");
    assert!(
        err.contains("step 2 `host::nope`: module `host` has no task `nope`"),
        "{err}"
    );
    assert!(err.contains("step 3 `dns::x`"), "{err}");
    let (code, _, err) = toyc_workflow(&daemon, &["status", "wfbad"]);
    assert_eq!(code, 65, "nothing was queued: {err}");
}
