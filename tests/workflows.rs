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
use crate::support::{bind9, hosts, ngircd};

/// `workflows: dns:` for the test process's bind9, with `secret_file` as the secret.
fn dns_settings(secret_file: &Path) -> String {
    let bind = bind9::server();
    format!(
        "  dns:\n    server: \"127.0.0.1:{}\"\n    zone: {}\n    tsig_key: {}\n    tsig_secret_file: \"{}\"\n",
        bind.port,
        bind9::ZONE,
        bind9::KEY,
        secret_file.display()
    )
}

/// A daemon with workflows in `dir/workflows`, logging in with the pool's key.
fn workflow_daemon(dir: &Path, identity: &Path, extra: &str) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir.join("workflows/modules")).expect("mkdir");
    std::fs::write(dir.join("secrets.yml"), "webhook: unused\n").expect("secrets");
    let config = dir.join("daemon.yml");
    std::fs::write(
        &config,
        format!(
            "secrets_file: secrets.yml\nlease_seconds: 3\nshutdown_timeout_seconds: 2\n\
             workflows:\n  dir: workflows\n  ssh_identity: \"{}\"\n  ssh_timeout_seconds: 60\n{extra}",
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

#[test]
fn dns_register_sets_the_a_and_sshfp_records_signed_with_tsig_and_a_wrong_key_is_refused() {
    let Some(pool) = hosts::shared() else { return };
    let scratch = tempfile::tempdir().expect("tempdir");
    let bind = bind9::server();
    let wrong = scratch.path().join("wrong.secret");
    std::fs::write(&wrong, "d3Jvbmctc2VjcmV0LWZvci10aGUtdGVzdHMtMzJieXRl").expect("write");
    let key = &pool.hosts()[0].host_key;
    let fqdn = format!("dns{}.{}", std::process::id(), bind9::ZONE);
    for (name, secret) in [("wfdnsgood", bind.secret_file.clone()), ("wfdnsbad", wrong)] {
        let dir = scratch.path().join(name);
        let (config, state) = workflow_daemon(&dir, pool.identity(), &dns_settings(&secret));
        std::fs::write(
            dir.join(format!("workflows/{name}.yml")),
            format!(
                "instance: {{hostname: {name}, fqdn: {fqdn}, ip: 192.0.2.77}}\n\
                 ssh: {{host_key: \"{key}\"}}\nsteps: [host::record_key, dns::register]\n"
            ),
        )
        .expect("workflow");
        let daemon = Daemon::start(&config, &state, &[]);
        let (code, _, err) = toyc_workflow(&daemon, &["run", name]);
        assert_eq!(code, 0, "{err}");
        let end = wait_state(
            &daemon,
            name,
            &["succeeded", "failed"],
            Duration::from_secs(30),
        );
        if name == "wfdnsgood" {
            assert_eq!(end["state"], "succeeded", "{end:#}");
            assert_eq!(bind.dig(&fqdn, "A"), "192.0.2.77");
            let sshfp = Command::new("ssh-keygen")
                .args(["-r", &fqdn, "-f", "/dev/stdin"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .and_then(|mut child| {
                    use std::io::Write;
                    child
                        .stdin
                        .take()
                        .expect("piped")
                        .write_all(key.as_bytes())?;
                    child.wait_with_output()
                })
                .expect("ssh-keygen -r");
            let expected = String::from_utf8_lossy(&sshfp.stdout)
                .lines()
                .find(|l| l.contains("SSHFP 4 2"))
                .map(|l| l.rsplit("SSHFP ").next().unwrap_or("").to_owned())
                .expect("ssh-keygen prints a type 2 SSHFP");
            assert_eq!(
                bind.dig(&fqdn, "SSHFP")
                    .to_ascii_lowercase()
                    .replace(' ', ""),
                expected.to_ascii_lowercase().replace(' ', ""),
                "the SSHFP record is the one ssh-keygen computes"
            );
        } else {
            assert_eq!(end["state"], "failed", "{end:#}");
            let error = end["error"].as_str().unwrap_or("");
            assert!(
                error.contains("dns::register") || error.contains("DNS update"),
                "{error}"
            );
            assert!(
                error.to_ascii_lowercase().contains("tsig")
                    || error.contains("BADKEY")
                    || error.contains("BADSIG"),
                "{error}"
            );
            assert!(
                !error.contains("d3Jvbmct"),
                "the secret never shows: {error}"
            );
            assert_eq!(
                bind.dig(&fqdn, "A"),
                "192.0.2.77",
                "the refused update changed nothing"
            );
        }
    }
}

/// daemon.yml's chat section for an IRC server on `port`.
fn chat_settings(port: u16) -> String {
    format!(
        "chat:\n  irc:\n    server: \"127.0.0.1:{port}\"\n    nick: jarvis\n    channels: [\"#ops\"]\n    allowed: [anna]\n"
    )
}

#[test]
fn the_example_workflow_runs_end_to_end_from_chat_and_chat_says_where_it_is() {
    let Some(pool) = hosts::shared() else { return };
    let (image, owner, pid) = hosts::image_and_owner_label().expect("docker");
    let scratch = tempfile::tempdir().expect("tempdir");
    let bind = bind9::server();
    let irc = ngircd::Ngircd::start(None);
    let (_, role_url) = file_repo(&repo().join("scripts/roles/web"), scratch.path(), "web");
    let extra = format!("{}{}", dns_settings(&bind.secret_file), "");
    let (config, state) = workflow_daemon(scratch.path(), pool.identity(), &extra);
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(&config, format!("{}{text}", chat_settings(irc.port))).expect("config");
    // The example, with this machine's image, the tests' key, a local copy of the role,
    // a name of this test process, and the harness's owner label for cleanup.
    let name = format!("web{}", std::process::id());
    let public = std::fs::read_to_string(pool.identity().with_extension("pub")).expect("pub");
    let example = std::fs::read_to_string(repo().join("scripts/workflows/web-host.yml"))
        .expect("the example")
        .replace("web7", &name)
        .replace("toyc-testhost ", &format!("\"{image}\" "))
        .replace(
            "ssh-ed25519 AAAA-replace-me ops@example",
            &format!("\"{}\"", public.trim()),
        )
        .replace("file:///srv/git/roles/web.git", &role_url)
        .replace(
            "  provider: docker\n",
            &format!("  provider: docker\n  tags: {{\"{owner}\": \"{pid}\"}}\n"),
        );
    std::fs::write(scratch.path().join("workflows/web-host.yml"), example).expect("write");
    copy_modules(
        &repo().join("scripts/workflows/modules"),
        &scratch.path().join("workflows/modules"),
    );

    let daemon = Daemon::start(&config, &state, &[]);
    let mut anna = ngircd::Person::join(irc.port, "anna", "#ops");
    anna.wait_for_nick("jarvis", Duration::from_secs(20));
    anna.say("#ops", "jarvis: deploy web-host");
    anna.wait_for(Duration::from_secs(20), |l| {
        l.contains(&format!("anna: deploying {name} (job #"))
    });
    anna.say("#ops", &format!("jarvis: status {name}"));
    let during = anna.wait_for(Duration::from_secs(20), |l| {
        l.contains(&format!("PRIVMSG #ops :{name}: ")) && !l.contains("step ")
            || l.contains("working on step")
    });
    assert!(!during.contains("failed"), "{during}");
    anna.wait_for(Duration::from_secs(180), |l| {
        l.contains(&format!("{name}: ready, all steps done"))
            || l.contains(&format!("{name}: failed"))
    });
    anna.say("#ops", &format!("jarvis: status {name}"));
    let after = anna.wait_for(Duration::from_secs(20), |l| {
        l.contains(&format!(":{name}: done"))
    });
    assert!(after.contains("all 8 steps"), "{after}");

    let status = daemon.get(&format!("/api/workflows/{name}"));
    let ip = status["clip"]["instance"]["ip"]
        .as_str()
        .expect("an ip")
        .to_owned();
    assert_eq!(
        bind.dig(&format!("{name}.example.test"), "A"),
        ip,
        "registered in DNS"
    );
    assert!(!bind
        .dig(&format!("{name}.example.test"), "SSHFP")
        .is_empty());
    assert!(
        status["clip"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("is ready"),
        "{status:#}"
    );
    let conf = container_has(
        &name,
        &format!("/etc/nginx/conf.d/{name}.example.test.conf"),
    );
    assert!(
        conf.contains(&format!("{name}.example.test")),
        "the web role configured it: {conf}"
    );

    let mut bob = ngircd::Person::join(irc.port, "bob", "#ops");
    bob.say("#ops", "jarvis: list");
    bob.wait_for(Duration::from_secs(20), |l| {
        l.contains("bob: sorry, you may not command me")
    });
}

fn copy_modules(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("modules").flatten() {
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}

#[test]
fn the_chat_bot_answers_in_order_without_flooding_and_comes_back_after_the_server_restarts() {
    let Some(pool) = hosts::shared() else { return };
    let scratch = tempfile::tempdir().expect("tempdir");
    let mut irc = ngircd::Ngircd::start(None);
    let (config, state) = workflow_daemon(scratch.path(), pool.identity(), "");
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(&config, format!("{}{text}", chat_settings(irc.port))).expect("config");
    // Twelve finished runs make a twelve-line `list`.
    for i in 0..12 {
        std::fs::write(
            scratch.path().join(format!("workflows/chat{i}.yml")),
            format!("instance: {{hostname: chat{i}, ip: 192.0.2.{i}}}\nssh: {{host_key: \"{}\"}}\nsteps: [host::record_key]\n", pool.hosts()[0].host_key),
        )
        .expect("workflow");
    }
    let daemon = Daemon::start(&config, &state, &[]);
    for i in 0..12 {
        let (status, body) = daemon.post(
            "/api/workflows",
            format!("{{\"what\": \"chat{i}\"}}").as_bytes(),
            &[],
        );
        assert_eq!(status, 202, "{body}");
    }
    for i in 0..12 {
        wait_state(
            &daemon,
            &format!("chat{i}"),
            &["succeeded"],
            Duration::from_secs(30),
        );
    }
    let mut anna = ngircd::Person::join(irc.port, "anna", "#ops");
    anna.wait_for_nick("jarvis", Duration::from_secs(20));
    let from = anna.seen.len();
    let asked = Instant::now();
    anna.say("#ops", "jarvis: list");
    let mut names = Vec::new();
    for _ in 0..12 {
        // Announcements of the twelve runs may still be draining at the paced rate: the
        // answer's lines are the status lines.
        let line = anna.wait_for(Duration::from_secs(60), |l| {
            l.contains("PRIVMSG #ops :chat") && l.contains(": done, all 1 steps")
        });
        names.push(
            line.rsplit(":chat")
                .next()
                .unwrap_or("")
                .split(':')
                .next()
                .unwrap_or("")
                .to_owned(),
        );
    }
    // Paced: after a burst of 4, one line per 500 ms, however many there are to say.
    let took = asked.elapsed();
    let said = anna.seen[from..]
        .iter()
        .filter(|l| l.starts_with(":jarvis!") && l.contains("PRIVMSG"))
        .count();
    assert!(said >= 12, "{:?}", &anna.seen[from..]);
    let floor = Duration::from_millis(450) * (said as u32 - 4);
    assert!(
        took >= floor,
        "{said} lines in {took:?}: faster than the pace allows"
    );
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 12, "every run listed once: {names:?}");
    assert!(
        !anna.seen.iter().any(|l| l.contains("Excess Flood")),
        "{:?}",
        anna.seen
    );

    // The server goes away and comes back on the same port: the bot returns and rejoins.
    let port = irc.port;
    irc.stop();
    std::thread::sleep(Duration::from_secs(1));
    let _irc = ngircd::Ngircd::start(Some(port));
    let mut anna = ngircd::Person::join(port, "anna", "#ops");
    anna.wait_for_nick("jarvis", Duration::from_secs(60));
    anna.say("#ops", "jarvis: help");
    anna.wait_for(Duration::from_secs(20), |l| {
        l.contains("deploy NAME | status NAME")
    });
}

#[test]
fn the_ec2_provider_creates_finds_by_name_and_terminates_against_moto() {
    let Some(pool) = hosts::shared() else { return };
    let moto = crate::support::moto::Moto::start();
    let scratch = tempfile::tempdir().expect("tempdir");
    let secret = scratch.path().join("aws.secret");
    std::fs::write(&secret, "moto-secret-key-do-not-log\n").expect("secret");
    let ec2 = format!(
        "  ec2:\n    endpoint: \"{}\"\n    region: us-east-1\n    access_key_id: AKIDTOYCTEST\n    secret_access_key_file: \"{}\"\n",
        moto.endpoint,
        secret.display()
    );
    let (config, state) = workflow_daemon(scratch.path(), pool.identity(), &ec2);
    // An image moto knows, asked through the provider's own client.
    let settings: toyc_workflow::provider::ec2::Ec2Settings = serde_yaml::from_str(&format!(
        "endpoint: \"{}\"\nregion: us-east-1\naccess_key_id: AKIDTOYCTEST\nsecret_access_key_file: \"{}\"\n",
        moto.endpoint,
        secret.display()
    ))
    .expect("settings");
    let client = toyc_workflow::provider::ec2::Ec2::new(settings).expect("client");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let image = runtime
        .block_on(client.images())
        .expect("DescribeImages")
        .into_iter()
        .next()
        .expect("moto serves images");
    let workflow = |name: &str, steps: &str| {
        std::fs::write(
            scratch.path().join(format!("workflows/{name}.yml")),
            format!(
                "instance: {{hostname: ec2host, provider: ec2, image: {image}, size: t3.micro, \
                 sshpubkey: \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIArmQT47lNPpzrs9Re9xbmtMewl238V2+LQx1p298Lne ops\"}}\n\
                 steps: [{steps}]\n"
            ),
        )
        .expect("workflow");
    };
    workflow(
        "ec2a",
        "host::keygen, provider::create, provider::wait_running",
    );
    workflow("ec2b", "provider::create, provider::wait_running");
    workflow("ec2c", "provider::destroy");
    let daemon = Daemon::start(&config, &state, &[]);
    let run = |name: &str| {
        let (code, _, err) = toyc_workflow(&daemon, &["run", name, "--name", name]);
        assert_eq!(code, 0, "{err}");
        wait_state(
            &daemon,
            name,
            &["succeeded", "failed"],
            Duration::from_secs(60),
        )
    };
    let first = run("ec2a");
    assert_eq!(first["state"], "succeeded", "{first:#}\n{}", daemon.log());
    let id = first["clip"]["instance"]["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    assert!(id.starts_with("i-"), "{id}");
    assert_eq!(first["clip"]["instance"]["state"], "running");
    assert!(first["clip"]["instance"]["ip"].is_string(), "{first:#}");
    // The same name again: found, not created twice.
    let again = run("ec2b");
    assert_eq!(
        again["clip"]["instance"]["id"].as_str(),
        Some(id.as_str()),
        "{again:#}"
    );
    let gone = run("ec2c");
    assert_eq!(gone["state"], "succeeded", "{gone:#}");
    let after = runtime
        .block_on(async { toyc_workflow::provider::Provider::get(&client, &id).await })
        .expect("DescribeInstances");
    assert!(
        ["shutting-down", "terminated"].contains(&after.state.as_str()),
        "{after:?}"
    );
    let log = daemon.log();
    assert!(
        !log.contains("moto-secret-key-do-not-log"),
        "the secret key leaked:\n{log}"
    );
}

#[test]
fn a_running_workflow_is_cancelled_with_its_remote_work_and_a_rhai_workflow_runs_by_name() {
    let Some(pool) = hosts::shared() else { return };
    let scratch = tempfile::tempdir().expect("tempdir");
    let (config, state) = workflow_daemon(scratch.path(), pool.identity(), "");
    let role = scratch.path().join("sleepy");
    std::fs::create_dir_all(&role).expect("mkdir");
    std::fs::write(role.join("runbook.rhai"), "shell::run(\"sleep 303\");\n").expect("runbook");
    let (_, role_url) = file_repo(&role, scratch.path(), "wfsleepy");
    let host = &pool.hosts()[1];
    // A Rhai workflow script, found by its name like a YAML one.
    std::fs::write(
        scratch.path().join("workflows/wfcancel.rhai"),
        format!(
            "#{{ instance: #{{ hostname: \"wfcancel\", ip: \"{}\" }}, ssh: #{{ host_key: \"{}\" }},\n\
               role: #{{ name: \"wfsleepy\", repo: \"{role_url}\" }},\n\
               steps: [\"host::record_key\", \"role::apply\"] }}\n",
            host.address, host.host_key
        ),
    )
    .expect("workflow");
    let daemon = Daemon::start(&config, &state, &[]);
    let (code, _, err) = toyc_workflow(&daemon, &["run", "wfcancel"]);
    assert_eq!(code, 0, "{err}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !pool
        .docker_exec(1, "pgrep -f '[s]leep 303'")
        .status
        .success()
    {
        assert!(
            Instant::now() < deadline,
            "the slow step never started:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (code, out, err) = toyc_workflow(&daemon, &["cancel", "wfcancel"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("wfcancel: "), "{out}");
    let cancelled = wait_state(&daemon, "wfcancel", &["cancelled"], Duration::from_secs(20));
    assert_eq!(cancelled["failed_step"], 1, "{cancelled:#}");
    assert!(
        !pool
            .docker_exec(1, "pgrep -f '[s]leep 303'")
            .status
            .success(),
        "the step's remote command was killed"
    );
}

/// An IAM call to a moto_server before it checks signatures (its first few), the answer.
fn iam_unchecked(endpoint: &str, params: &[(&str, &str)]) -> String {
    let mut form = vec![("Version", "2010-05-08")];
    form.extend_from_slice(params);
    // moto routes by the credential scope's service; nothing is checked yet.
    reqwest::blocking::Client::new()
        .post(endpoint)
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIAUNCHECKED/20260101/us-east-1/iam/aws4_request, \
             SignedHeaders=host, Signature=0",
        )
        .form(&form)
        .send()
        .expect("moto answers")
        .error_for_status()
        .expect("IAM call accepted")
        .text()
        .expect("the answer")
}

#[test]
fn moto_checking_signatures_accepts_the_ec2_providers_and_refuses_a_wrong_secret() {
    let moto = crate::support::moto::Moto::with_auth_after(3);
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:*","Resource":"*"}]}"#;
    iam_unchecked(
        &moto.endpoint,
        &[("Action", "CreateUser"), ("UserName", "toyc")],
    );
    iam_unchecked(
        &moto.endpoint,
        &[
            ("Action", "PutUserPolicy"),
            ("UserName", "toyc"),
            ("PolicyName", "ec2"),
            ("PolicyDocument", policy),
        ],
    );
    let xml = iam_unchecked(
        &moto.endpoint,
        &[("Action", "CreateAccessKey"), ("UserName", "toyc")],
    );
    let field = |name: &str| {
        let open = format!("<{name}>");
        let start = xml.find(&open).expect("an access key field") + open.len();
        xml[start..].split('<').next().expect("its text").to_owned()
    };
    let (key_id, secret) = (field("AccessKeyId"), field("SecretAccessKey"));
    let scratch = tempfile::tempdir().expect("tempdir");
    let client = |secret: &str| {
        let file = scratch.path().join("secret");
        std::fs::write(&file, secret).expect("write");
        let settings: toyc_workflow::provider::ec2::Ec2Settings = serde_yaml::from_str(&format!(
            "endpoint: \"{}\"\nregion: us-west-2\naccess_key_id: {key_id}\nsecret_access_key_file: \"{}\"\n",
            moto.endpoint,
            file.display()
        ))
        .expect("settings");
        toyc_workflow::provider::ec2::Ec2::new(settings).expect("client")
    };
    use toyc_workflow::provider::Provider;
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let signed = client(&secret);
    assert_eq!(
        runtime
            .block_on(signed.find("nobody"))
            .expect("signed right"),
        None
    );
    let image = runtime
        .block_on(signed.images())
        .expect("images")
        .into_iter()
        .next()
        .expect("one");
    let spec = toyc_workflow::provider::InstanceSpec {
        name: "signed".into(),
        image,
        size: None,
        ssh_public_key: None,
        tags: Default::default(),
        host_key_file: None,
    };
    let created = runtime.block_on(signed.create(&spec)).expect("created");
    runtime
        .block_on(signed.destroy(&created.id))
        .expect("terminated");
    let wrong = client("not/the/secret/at/all/0123456789abcdef");
    let error = runtime
        .block_on(wrong.find("nobody"))
        .expect_err("refused")
        .to_string();
    assert!(
        error.contains("AuthFailure") || error.contains("SignatureDoesNotMatch"),
        "{error}"
    );
    assert!(!error.contains("not/the/secret"), "{error}");
}
