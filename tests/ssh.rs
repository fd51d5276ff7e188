//! `toyc exec` and `toyc run` over SSH against real OpenSSH servers (the container test
//! hosts): reach, failures, timeouts, sudo and host keys.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::support::cli::{repo, Toyc};
use crate::support::hosts::{self, HostPool};

/// Inventory text for some hosts of `pool` (by index) plus extra raw YAML host lines.
fn inventory(pool: &HostPool, user: &str, indices: &[usize], extra_hosts: &str) -> String {
    pool.inventory_of(user, indices) + extra_hosts
}

#[test]
fn exec_reaches_ten_hosts_and_prints_their_distinct_hostnames_in_inventory_order() {
    let Some(pool) = hosts::shared() else { return };
    let toyc = Toyc::new();
    let inv = pool.write_inventory(toyc.dir(), "root");
    let ran = toyc
        .args(["exec", "-i", inv.to_str().expect("utf-8"), "--", "hostname"])
        .run();
    ran.code(0).stderr_has("10 ok, 0 failed, 0 unreachable");
    let names: Vec<&str> = ran
        .stdout
        .lines()
        .filter(|l| !l.starts_with("--- "))
        .collect();
    let expected: Vec<String> = pool.hosts().iter().map(|h| h.name.clone()).collect();
    assert_eq!(names, expected, "one hostname per host, in inventory order");
    assert_eq!(names.iter().collect::<BTreeSet<_>>().len(), 10);
}

#[test]
fn a_stopped_host_is_unreachable_within_the_connect_timeout_and_the_others_succeed() {
    let Some(pool) = hosts::shared() else { return };
    let Some(dead) = hosts::dedicated(1) else {
        return;
    };
    let address = dead.hosts()[0].address.clone();
    dead.stop(0);
    let indices: Vec<usize> = (0..9).collect();
    let toyc = Toyc::new().file(
        "inv.yml",
        &inventory(
            pool,
            "root",
            &indices,
            &format!("  dead: {{address: {address}}}\n"),
        ),
    );
    let started = Instant::now();
    toyc.args([
        "exec",
        "-i",
        "inv.yml",
        "--connect-timeout",
        "3",
        "--",
        "hostname",
    ])
    .run()
    .code(3)
    .stdout_has("--- dead (unreachable: unable to connect to `dead`")
    .stderr_has("9 ok, 0 failed, 1 unreachable");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_host_paused_mid_command_fails_by_timeout_while_the_others_finish() {
    let Some(pool) = hosts::shared() else { return };
    let Some(victim) = hosts::dedicated(1) else {
        return;
    };
    let v = &victim.hosts()[0];
    // A dedicated pool has its own client key.
    let mut yaml = inventory(
        pool,
        "root",
        &[0, 1],
        &format!(
            "  victim: {{address: {}, ssh: {{identity: {}}}}}\n",
            v.address,
            victim.identity().display()
        ),
    );
    // The victim's key lives in its own pool's known_hosts: merge both files.
    let merged = format!(
        "{}{}",
        std::fs::read_to_string(pool.known_hosts()).expect("known_hosts"),
        std::fs::read_to_string(victim.known_hosts()).expect("known_hosts")
    );
    let toyc = Toyc::new().file("known_hosts", &merged);
    let known = toyc.dir().join("known_hosts");
    yaml = yaml.replace(
        &pool.known_hosts().display().to_string(),
        &known.display().to_string(),
    );
    let toyc = toyc.file("inv.yml", &yaml);
    let pauser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        victim.pause(0);
        std::thread::sleep(Duration::from_secs(6));
        victim.unpause(0);
        victim
    });
    let started = Instant::now();
    let ran = toyc
        .args([
            "exec",
            "-i",
            "inv.yml",
            "--timeout",
            "4",
            "--",
            "sleep 2.5; echo finished",
        ])
        .run();
    let _victim = pauser.join().expect("pauser thread");
    ran.code(1)
        .stdout_has("--- victim (failed: command timed out after 4s on `victim`")
        .stderr_has("2 ok, 1 failed, 0 unreachable");
    assert_eq!(ran.stdout.matches("finished").count(), 2, "{}", ran.stdout);
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_timed_out_command_is_killed_on_the_host_too() {
    let Some(pool) = hosts::shared() else { return };
    let toyc = Toyc::new().file("inv.yml", &inventory(pool, "root", &[2], ""));
    toyc.args([
        "exec",
        "-i",
        "inv.yml",
        "--timeout",
        "1",
        "--",
        "sleep 347; touch /tmp/should-not-exist",
    ])
    .run()
    .code(1)
    .stdout_has("timed out after 1s");
    std::thread::sleep(Duration::from_millis(2500));
    let left = pool.docker_exec(2, "pgrep -f 'slee[p] 347' || true");
    assert_eq!(
        String::from_utf8_lossy(&left.stdout).trim(),
        "",
        "the remote sleep was killed"
    );
}

#[test]
fn sudo_as_deploy_runs_as_root() {
    let Some(pool) = hosts::shared() else { return };
    let toyc = Toyc::new().file("inv.yml", &inventory(pool, "deploy", &[0, 1, 2], ""));
    let ran = toyc.args(["exec", "-i", "inv.yml", "--", "id -un"]).run();
    ran.code(0);
    assert_eq!(
        ran.stdout.matches("\ndeploy\n").count(),
        3,
        "{}",
        ran.stdout
    );
    let toyc = Toyc::new().file("inv.yml", &inventory(pool, "deploy", &[0, 1, 2], ""));
    let ran = toyc
        .args(["exec", "-i", "inv.yml", "--sudo", "--", "id -un"])
        .run();
    ran.code(0);
    assert_eq!(ran.stdout.matches("\nroot\n").count(), 3, "{}", ran.stdout);
}

#[test]
fn a_changed_host_key_is_refused_naming_the_host_and_the_known_hosts_line() {
    let Some(pool) = hosts::shared() else { return };
    let (h1, h2) = (&pool.hosts()[0], &pool.hosts()[1]);
    // h1's address with h2's key: what a man in the middle (or a reinstall) looks like.
    let toyc = Toyc::new().file("known_hosts", &format!("{} {}\n", h1.address, h2.host_key));
    let known = toyc.dir().join("known_hosts");
    let yaml = inventory(pool, "root", &[0], "").replace(
        &pool.known_hosts().display().to_string(),
        &known.display().to_string(),
    );
    let toyc = toyc.file("inv.yml", &yaml);
    for extra in [&[][..], &["--accept-new-host-keys"][..]] {
        let args: Vec<&str> = ["exec", "-i", "inv.yml"]
            .iter()
            .chain(extra)
            .chain(&["--", "true"])
            .copied()
            .collect();
        toyc.run_with(&args)
            .code(3)
            .stdout_has(&format!(
                "host key for `{}` has changed (known_hosts entry {}:1)",
                h1.name,
                known.display()
            ))
            // The hint fixes the file the inventory names, not ~/.ssh/known_hosts.
            .stdout_has(&format!(
                "`ssh-keygen -f {} -R {}`",
                known.display(),
                h1.address
            ));
    }
}

#[test]
fn an_unknown_host_key_is_refused_unless_trust_on_first_use_is_asked_for() {
    let Some(pool) = hosts::shared() else { return };
    let toyc = Toyc::new().file("known_hosts", "");
    let known = toyc.dir().join("known_hosts");
    let yaml = inventory(pool, "root", &[3], "").replace(
        &pool.known_hosts().display().to_string(),
        &known.display().to_string(),
    );
    let toyc = toyc.file("inv.yml", &yaml);
    toyc.run_with(&["exec", "-i", "inv.yml", "--", "true"])
        .code(3)
        .stdout_has("is not known")
        .stdout_has(&format!(
            "`ssh-keyscan {} >> {}`",
            pool.hosts()[3].address,
            known.display()
        ))
        .stdout_has("--accept-new-host-keys");
    toyc.run_with(&[
        "exec",
        "-i",
        "inv.yml",
        "--accept-new-host-keys",
        "--",
        "true",
    ])
    .code(0);
    let recorded = std::fs::read_to_string(&known).expect("known_hosts");
    assert!(
        recorded.contains("ssh-ed25519"),
        "the key was recorded: {recorded}"
    );
}

#[test]
fn hello_script_runs_on_every_host_and_leaves_its_file() {
    let Some(pool) = hosts::shared() else { return };
    let toyc = Toyc::new();
    let inv = pool.write_inventory(toyc.dir(), "root");
    let script = repo().join("scripts/hello.rhai");
    let ran = toyc
        .args([
            "run",
            script.to_str().expect("utf-8"),
            "-i",
            inv.to_str().expect("utf-8"),
        ])
        .run();
    ran.code(0).stderr_has("10 ok, 0 failed, 0 unreachable");
    for (i, host) in pool.hosts().iter().enumerate() {
        let line = ran
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("[{}] wrote ", host.name)))
            .unwrap_or_else(|| panic!("no line for {}: {}", host.name, ran.stdout));
        let path = line
            .split("wrote ")
            .nth(1)
            .and_then(|r| r.split(':').next())
            .expect("path");
        let content = pool.docker_exec(i, &format!("cat {path}"));
        assert_eq!(
            String::from_utf8_lossy(&content.stdout),
            format!("hello from toyc, {}\n", host.name)
        );
    }
}

#[test]
fn sudo_that_needs_a_password_fails_clearly_instead_of_hanging() {
    let Some(pool) = hosts::shared() else { return };
    // A user whose sudo wants a password (Debian's `%sudo ALL=(ALL:ALL) ALL`).
    let setup = pool.docker_exec(
        4,
        "id nopw >/dev/null 2>&1 || { useradd -m -s /bin/bash -p '*' -G sudo nopw && \
         install -d -m 700 -o nopw -g nopw /home/nopw/.ssh && \
         install -m 600 -o nopw -g nopw /root/.ssh/authorized_keys /home/nopw/.ssh/authorized_keys; }",
    );
    assert!(
        setup.status.success(),
        "{}",
        String::from_utf8_lossy(&setup.stderr)
    );
    let toyc = Toyc::new().file("inv.yml", &inventory(pool, "nopw", &[4], ""));
    let started = Instant::now();
    toyc.run_with(&["exec", "-i", "inv.yml", "--sudo", "--", "true"])
        .code(1)
        .stdout_has(&format!(
            "sudo on `{}` needs a password",
            pool.hosts()[4].name
        ));
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn the_users_ssh_config_applies() {
    let Some(pool) = hosts::shared() else { return };
    let h = &pool.hosts()[5];
    // The inventory names only an alias; HostName, User and IdentityFile come from ssh config.
    let config = format!(
        "Host web-alias\n  HostName {}\n  User deploy\n  IdentityFile {}\n  UserKnownHostsFile {}\n",
        h.address,
        pool.identity().display(),
        pool.known_hosts().display()
    );
    Toyc::new()
        .file("ssh_config", &config)
        .file("inv.yml", "hosts:\n  web: {address: web-alias}\n")
        .run_with(&[
            "exec",
            "-i",
            "inv.yml",
            "--ssh-config",
            "ssh_config",
            "--",
            "id -un; hostname",
        ])
        .code(0)
        .stdout_has(&format!("deploy\n{}\n", h.name));
}

#[test]
fn an_ansible_ini_inventory_works_as_it_is() {
    let Some(pool) = hosts::shared() else { return };
    let (a, b) = (&pool.hosts()[6], &pool.hosts()[7]);
    let ini = format!(
        "[web]\nweb1 ansible_host={} ansible_user=deploy\nweb2 ansible_host={}\n\n[web:vars]\n\
         ansible_ssh_private_key_file={}\nansible_become=true\n\n[all:vars]\nansible_user=root\n",
        a.address,
        b.address,
        pool.identity().display()
    );
    let config = format!(
        "Host *\n  UserKnownHostsFile {}\n",
        pool.known_hosts().display()
    );
    let ran = Toyc::new()
        .file("hosts.ini", &ini)
        .file("ssh_config", &config)
        .run_with(&[
            "exec",
            "-i",
            "hosts.ini",
            "--ssh-config",
            "ssh_config",
            "-l",
            "web",
            "--",
            "echo $SUDO_USER-$(id -un)",
        ]);
    ran.code(0);
    // ansible_become: both run through sudo; web1 logs in as deploy, web2 as root.
    assert!(
        ran.stdout.contains("--- web1 (ok") && ran.stdout.contains("deploy-root"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains("--- web2 (ok") && ran.stdout.contains("root-root"),
        "{}",
        ran.stdout
    );
}

/// The pool's host `index` as the engine's inventory has it, for tests that drive a
/// transport directly.
fn engine_host(pool: &HostPool, index: usize) -> toyc_engine::inventory::Host {
    let h = &pool.hosts()[index];
    toyc_engine::inventory::Host {
        name: h.name.clone(),
        address: h.address.clone(),
        transport: toyc_engine::inventory::TransportKind::Ssh,
        ssh: toyc_engine::inventory::SshParams {
            user: Some("root".into()),
            port: None,
            identity: Some(pool.identity().to_owned()),
            known_hosts: Some(pool.known_hosts().to_owned()),
        },
        sudo: false,
        groups: Vec::new(),
        vars: Default::default(),
    }
}

#[test]
fn a_host_never_gets_more_concurrent_commands_than_sshd_allows() {
    let Some(pool) = hosts::shared() else { return };
    let host = engine_host(pool, 8);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::Builder::new()
        .prefix("toyc-t")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let outputs = runtime.block_on(async {
        let options = toyc_engine::transport::SshOptions::new(dir.path().to_owned());
        let transport = std::sync::Arc::new(
            toyc_engine::transport::SshTransport::connect(&host, &options, Default::default())
                .await
                .expect("connects"),
        );
        // 40 at once: sshd's MaxSessions is 10, so without toyc's cap 30 would be refused.
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..40 {
            let t = std::sync::Arc::clone(&transport);
            tasks.spawn(async move {
                use toyc_engine::transport::Transport;
                t.exec(
                    &toyc_engine::transport::ExecRequest::new(format!("sleep 0.1; echo {i}")),
                    None,
                )
                .await
            });
        }
        let mut outputs = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            outputs.push(joined.expect("task"));
        }
        outputs
    });
    for output in &outputs {
        let output = output.as_ref().expect("every command ran");
        assert_eq!(output.status, 0);
    }
    assert_eq!(outputs.len(), 40);
}

#[test]
fn a_command_after_the_master_went_away_reconnects_and_runs_once() {
    let Some(pool) = hosts::shared() else { return };
    let host = engine_host(pool, 7);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::Builder::new()
        .prefix("toyc-t")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let stamp = format!("/tmp/reconnect-{}", std::process::id());
    runtime.block_on(async {
        use toyc_engine::transport::{ExecRequest, Transport};
        let options = toyc_engine::transport::SshOptions::new(dir.path().to_owned());
        let transport =
            toyc_engine::transport::SshTransport::connect(&host, &options, Default::default())
                .await
                .expect("connects");
        // The first command skips the liveness check of a master just started.
        let first = transport.exec(&ExecRequest::new("true"), None).await;
        assert_eq!(first.expect("runs").status, 0);
        // The master exits (as after its ControlPersist idle time, or killed).
        let socket = std::fs::read_dir(dir.path())
            .expect("control directory")
            .flatten()
            .find_map(|e| {
                let master = e.path().join("master");
                master.exists().then_some(master)
            })
            .expect("a control socket");
        let exit = std::process::Command::new("ssh")
            .arg("-S")
            .arg(&socket)
            .args(["-O", "exit", "x"])
            .output()
            .expect("ssh -O exit");
        assert!(exit.status.success(), "{exit:?}");
        let again = transport
            .exec(
                &ExecRequest::new(format!("echo x >> {stamp}; cat {stamp}")),
                None,
            )
            .await
            .expect("reconnects and runs");
        assert_eq!(
            String::from_utf8_lossy(&again.stdout),
            "x\n",
            "ran exactly once"
        );
        let _ = transport
            .exec(&ExecRequest::new(format!("rm -f {stamp}")), None)
            .await;
        transport.close().await;
    });
}

#[test]
fn ctrl_c_exits_130_kills_the_remote_command_and_leaves_no_ssh_master_behind() {
    let Some(pool) = hosts::dedicated(1) else {
        return;
    };
    let address = pool.hosts()[0].address.clone();
    let toyc = Toyc::new().file("inv.yml", &inventory(&pool, "root", &[0], ""));
    // toyc puts its control sockets under XDG_RUNTIME_DIR: a private one names this
    // run's masters unambiguously (addresses of stopped test hosts get reused).
    let runtime_dir = tempfile::Builder::new()
        .prefix("tc")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let mut child = std::process::Command::new(crate::support::cli::binary())
        .args(["exec", "-i", "inv.yml", "--", "sleep 31"])
        .env("XDG_RUNTIME_DIR", runtime_dir.path())
        .current_dir(toyc.dir())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("toyc starts");
    std::thread::sleep(Duration::from_millis(1500));
    let started = Instant::now();
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(kill.success());
    let status = child.wait().expect("toyc exits");
    assert_eq!(status.code(), Some(130));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    std::thread::sleep(Duration::from_millis(500));
    let masters = std::process::Command::new("pgrep")
        .args(["-f", &format!("ssh .*{}", runtime_dir.path().display())])
        .output()
        .expect("pgrep runs");
    assert_eq!(
        String::from_utf8_lossy(&masters.stdout).trim(),
        "",
        "no master for {address} survives"
    );
    let remote = pool.docker_exec(0, "pgrep -f 'slee[p] 31' || true");
    assert_eq!(
        String::from_utf8_lossy(&remote.stdout).trim(),
        "",
        "the remote command was killed"
    );
    let leftovers: Vec<_> = std::fs::read_dir(runtime_dir.path()).expect("ls").collect();
    assert!(
        leftovers.is_empty(),
        "the run directory was removed: {leftovers:?}"
    );
}

#[test]
fn host_functions_work_over_ssh_as_documented() {
    let Some(pool) = hosts::shared() else { return };
    let script = r#"
let r = host::exec("cat; echo \"$GREETING\"; pwd", #{ stdin: "in\n", env: #{ GREETING: "hi there" }, cwd: "/tmp" });
print(`exec:${r.stdout}|${r.code}`);
let r = host::exec("echo oops >&2; exit 4", #{ check: false });
print(`check:${r.code}:${r.stderr}`);
print(`sudo:${host::exec("id -un", #{ sudo: true }).stdout}`);
host::put("x = 1\n", "/tmp/toyc-put-test.conf", #{ mode: "0640", sudo: true, owner: "root", group: "deploy" });
print(`put:${host::exec("stat -c '%a %U %G' /tmp/toyc-put-test.conf").stdout}:${host::get("/tmp/toyc-put-test.conf")}`);
host::upload("files/motd", "/tmp/toyc-motd", #{});
print(`upload:${host::get("/tmp/toyc-motd")}`);
print(`exists:${host::file_exists("/tmp/toyc-motd")}:${host::file_exists("/nope")}`);
print(`facts:${host::os()}:${host::arch()}:${host::hostname() == host.name}`);
"#;
    let toyc = Toyc::new()
        .file("s.rhai", script)
        .file("files/motd", "welcome\n")
        .file("inv.yml", &inventory(pool, "deploy", &[9], ""));
    let ran = toyc.run_with(&["run", "s.rhai", "-i", "inv.yml"]);
    ran.code(0);
    let name = &pool.hosts()[9].name;
    for line in [
        "exec:in\nhi there\n/tmp|0",
        "check:4:oops",
        "sudo:root",
        "put:640 root deploy:x = 1\n",
        "upload:welcome\n",
        "exists:true:false",
        "facts:linux:x86_64:true",
    ] {
        assert!(
            ran.stdout.contains(&format!("[{name}] {line}")),
            "missing {line:?} in\n{}",
            ran.stdout
        );
    }
    // A failing command stops the script with the host and the command named.
    let toyc = Toyc::new()
        .file(
            "s.rhai",
            "host::exec(\"echo bad >&2; exit 3\");\nprint(\"not reached\");",
        )
        .file("inv.yml", &inventory(pool, "deploy", &[9], ""));
    let ran = toyc.run_with(&["run", "s.rhai", "-i", "inv.yml"]);
    ran.code(1)
        .stderr_has(&format!(
            "on `{name}`: command `echo bad >&2; exit 3` exited with status 3: bad"
        ))
        .stderr_has("--> s.rhai:1:7");
    assert!(!ran.stdout.contains("not reached"));
}

#[test]
fn control_characters_from_a_host_are_shown_escaped_and_kept_in_json() {
    let Some(pool) = hosts::shared() else { return };
    let host = &pool.hosts()[0].name;
    // A window title, a screen clear and a `\r` that would overwrite "FAILED".
    let command = r"printf 'a\033]0;pwned\007b\033[2Jc FAILED\rok\n'; printf 'e\033[31mf\n' >&2";
    let shown = r"a\x1b]0;pwned\x07b\x1b[2Jc FAILED\rok";
    let toyc = |extra: &[&str]| {
        let toyc = Toyc::new().file("inv.yml", &inventory(pool, "root", &[0], ""));
        toyc.args(["exec", "-i", "inv.yml"])
            .args(extra)
            .args(["--", command])
            .run()
    };
    let assert_no_escape = |ran: &crate::support::cli::Ran| {
        assert!(
            !ran.stdout.contains(['\x1b', '\r', '\x07']) && !ran.stderr.contains(['\x1b', '\r']),
            "raw control characters printed:\n{:?}\n{:?}",
            ran.stdout,
            ran.stderr
        );
    };

    let grouped = toyc(&[]);
    grouped.code(0).stdout_has(shown).stderr_has(r"e\x1b[31mf");
    assert_no_escape(&grouped);

    let streamed = toyc(&["--stream"]);
    streamed
        .code(0)
        .stdout_has(&format!("{host} | {shown}"))
        .stderr_has(&format!(r"{host} ! e\x1b[31mf"));
    assert_no_escape(&streamed);

    let json = toyc(&["--json"]);
    json.code(0);
    let lines: Vec<String> = json
        .json_lines()
        .iter()
        .filter(|e| e["type"] == "output")
        .filter_map(|e| e["data"]["line"].as_str().map(str::to_owned))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l == "a\x1b]0;pwned\x07b\x1b[2Jc FAILED\rok"),
        "{lines:?}"
    );
}

#[test]
fn a_killed_toyc_leaves_its_run_directory_in_the_state_directory_and_the_next_run_sweeps_it() {
    let Some(pool) = hosts::shared() else { return };
    let toyc = Toyc::new().file("inv.yml", &inventory(pool, "root", &[0], ""));
    let state = toyc.dir().join("state");
    let state_text = state.to_str().expect("utf-8").to_owned();
    let toyc = toyc
        .env("TOYC_STATE_DIR", &state_text)
        .args(["exec", "-i", "inv.yml", "--", "sleep 5"]);
    let mut child = toyc.spawn(&[]);
    let prefix = format!("toyc-{}-", child.id());
    // Its directory, once the ssh master's socket is in it.
    let run_dir = || {
        std::fs::read_dir(state.join("run"))
            .ok()?
            .flatten()
            .find(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .map(|e| e.path())
            .filter(|dir| {
                std::fs::read_dir(dir).is_ok_and(|entries| {
                    entries.flatten().any(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .starts_with(".ssh-connection")
                    })
                })
            })
    };
    let started = Instant::now();
    let dir = loop {
        if let Some(dir) = run_dir() {
            break dir;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no run directory with a control socket under {}",
            state.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    assert!(dir.exists(), "a killed toyc cannot clean up after itself");

    Toyc::new()
        .env("TOYC_STATE_DIR", &state_text)
        .args(["exec", "--", "true"])
        .run()
        .code(0);
    assert!(!dir.exists(), "{} outlived its owner", dir.display());
}
