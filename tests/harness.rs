//! Tests of the test-host harness itself, over real ssh: if these fail, every
//! end-to-end test's results are suspect.

use std::collections::BTreeSet;
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::hosts::{self, HostPool, SHARED_HOSTS};

/// `ssh` with a short connect timeout, for hosts expected to be unreachable.
fn ssh_quick(pool: &HostPool, i: usize, user: &str, cmd: &str) -> Output {
    let mut ssh = pool.ssh_command(i, user, 2);
    hosts::run_with_timeout(ssh.arg("--").arg(cmd), Duration::from_secs(20))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts that `hostname` over ssh works on every host of the pool and names it.
fn assert_all_reachable(pool: &HostPool) {
    let outputs: Vec<Output> = thread::scope(|s| {
        let handles: Vec<_> = (0..pool.hosts().len())
            .map(|i| s.spawn(move || pool.ssh(i, "root", "hostname")))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("ssh thread"))
            .collect()
    });
    for (host, out) in pool.hosts().iter().zip(&outputs) {
        assert!(
            out.status.success(),
            "ssh root@{} ({}) failed: {}",
            host.address,
            host.name,
            text(&out.stderr)
        );
        assert_eq!(
            text(&out.stdout).trim(),
            host.name,
            "hostname of {}",
            host.container
        );
    }
}

/// Whether a container with exactly this name exists, running or not.
fn container_exists(name: &str) -> bool {
    let out = Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("name=^/{name}$")])
        .output()
        .expect("docker ps runs");
    assert!(
        out.status.success(),
        "docker ps failed: {}",
        text(&out.stderr)
    );
    !text(&out.stdout).trim().is_empty()
}

#[test]
fn shared_pool_has_ten_distinct_hosts_reachable_over_ssh() {
    let Some(pool) = hosts::shared() else { return };
    let hosts = pool.hosts();
    assert_eq!(hosts.len(), SHARED_HOSTS);
    assert_eq!(SHARED_HOSTS, 10);

    let expected: BTreeSet<String> = (1..=10).map(|k| format!("h{k}")).collect();
    let names: BTreeSet<String> = hosts.iter().map(|h| h.name.clone()).collect();
    assert_eq!(names, expected);
    let addresses: BTreeSet<&str> = hosts.iter().map(|h| h.address.as_str()).collect();
    assert_eq!(addresses.len(), 10, "addresses must differ: {hosts:?}");
    let keys: BTreeSet<&str> = hosts.iter().map(|h| h.host_key.as_str()).collect();
    assert_eq!(
        keys.len(),
        10,
        "every host must have its own host key: {hosts:?}"
    );

    let known_hosts = std::fs::read_to_string(pool.known_hosts()).expect("known_hosts is readable");
    let expected_lines: Vec<String> = hosts
        .iter()
        .map(|h| format!("{} {}", h.address, h.host_key))
        .collect();
    assert_eq!(known_hosts.lines().collect::<Vec<_>>(), expected_lines);

    // Real ssh with strict host-key checking: each host answers with its own name.
    assert_all_reachable(pool);
}

#[test]
fn a_host_key_missing_from_known_hosts_is_refused() {
    // Proves the reachability test above depends on the pinned host keys.
    let Some(pool) = hosts::shared() else { return };
    let empty = tempfile::NamedTempFile::new().expect("temp file");
    // Built by hand: ssh takes the first value of an option, so the pool's
    // known_hosts in `ssh_command` could not be overridden.
    let mut ssh = Command::new("ssh");
    ssh.args(["-F", "/dev/null", "-i"])
        .arg(pool.identity())
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", empty.path().display()))
        .args(["-o", "GlobalKnownHostsFile=/dev/null"])
        .args(["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"])
        .args(["-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=5"])
        .arg(format!("root@{}", pool.hosts()[0].address))
        .args(["--", "true"]);
    let out = hosts::run_with_timeout(&mut ssh, Duration::from_secs(20));
    assert!(!out.status.success(), "ssh must refuse an unknown host key");
    assert!(
        text(&out.stderr).contains("Host key verification failed"),
        "unexpected ssh error: {}",
        text(&out.stderr)
    );
}

#[test]
fn deploy_logs_in_with_the_key_and_has_passwordless_sudo() {
    let Some(pool) = hosts::shared() else { return };
    let out = pool.ssh(1, "deploy", "id -un; echo $HOME; sudo -n id -u");
    assert!(
        out.status.success(),
        "ssh deploy@h2 failed: {}",
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout), "deploy\n/home/deploy\n0\n");
}

#[test]
fn docker_exec_sees_what_ssh_wrote() {
    let Some(pool) = hosts::shared() else { return };
    let file = format!("/tmp/harness-{}", std::process::id());
    let out = pool.ssh(2, "deploy", &format!("echo written-over-ssh > {file}"));
    assert!(out.status.success(), "ssh failed: {}", text(&out.stderr));
    let seen = pool.docker_exec(2, &format!("stat -c %U {file} && cat {file} && rm {file}"));
    assert!(
        seen.status.success(),
        "docker exec failed: {}",
        text(&seen.stderr)
    );
    assert_eq!(text(&seen.stdout), "deploy\nwritten-over-ssh\n");
}

#[test]
fn sshd_runs_with_the_test_host_config() {
    let Some(pool) = hosts::shared() else { return };
    // `sshd -T` prints the configuration in force, defaults included.
    let out = pool.docker_exec(0, "sshd -T");
    assert!(
        out.status.success(),
        "sshd -T failed: {}",
        text(&out.stderr)
    );
    let config = text(&out.stdout);
    for line in [
        "maxsessions 10",
        "maxstartups 100:30:100",
        "permitrootlogin without-password",
        "usepam no",
        "passwordauthentication no",
        "kbdinteractiveauthentication no",
        "pubkeyauthentication yes",
        "usedns no",
        "hostkey /etc/ssh/ssh_host_ed25519_key",
        "subsystem sftp /usr/lib/openssh/sftp-server",
    ] {
        assert!(
            config.lines().any(|l| l == line),
            "sshd -T lacks {line:?}:\n{config}"
        );
    }
    let host_keys = config.lines().filter(|l| l.starts_with("hostkey ")).count();
    assert_eq!(host_keys, 1, "exactly one host key:\n{config}");
}

#[test]
fn inventory_lists_every_host_with_the_pool_credentials() {
    let Some(pool) = hosts::shared() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let path = pool.write_inventory(dir.path(), "deploy");
    assert_eq!(path, dir.path().join("inventory.yml"));
    let yaml = std::fs::read_to_string(&path).expect("inventory is readable");
    let lines: Vec<&str> = yaml.lines().collect();
    assert_eq!(
        &lines[..4],
        &[
            "ssh:",
            "  user: \"deploy\"",
            &format!("  identity: \"{}\"", pool.identity().display()),
            &format!("  known_hosts: \"{}\"", pool.known_hosts().display()),
        ]
    );
    assert_eq!(lines[4], "hosts:");
    for (k, host) in pool.hosts().iter().enumerate() {
        assert_eq!(
            lines[5 + k],
            format!("  h{}: {{address: {}}}", k + 1, host.address)
        );
    }
    assert_eq!(
        &lines[15..],
        &[
            "groups:",
            "  testhosts:",
            "    hosts: [h1, h2, h3, h4, h5, h6, h7, h8, h9, h10]",
        ]
    );
    assert!(pool.identity().is_file() && pool.known_hosts().is_file());
}

#[test]
fn stop_pause_and_disconnect_cut_a_host_off_until_undone() {
    let Some(pool) = hosts::dedicated(3) else {
        return;
    };
    assert_all_reachable(&pool);
    let key_before = pool.hosts()[0].host_key.clone();

    pool.stop(0);
    pool.pause(1);
    pool.disconnect(2);
    let began = Instant::now();
    let outputs: Vec<Output> = thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|i| {
                let pool = &pool;
                s.spawn(move || ssh_quick(pool, i, "root", "hostname"))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("ssh thread"))
            .collect()
    });
    for (what, out) in ["stopped", "paused", "disconnected"].iter().zip(&outputs) {
        assert!(
            !out.status.success(),
            "ssh to the {what} host succeeded: {}",
            text(&out.stdout)
        );
    }
    // ConnectTimeout=2 bounds all three, the paused host's banner wait included.
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "cut-off hosts took {:?} to fail",
        began.elapsed()
    );

    pool.start(0);
    pool.unpause(1);
    pool.reconnect(2);
    assert_all_reachable(&pool);
    // Like a real host across a reboot, a restarted container keeps its host key.
    assert_eq!(pool.hosts()[0].host_key, key_before);
}

#[test]
fn dropping_a_dedicated_pool_removes_its_containers() {
    let Some(pool) = hosts::dedicated(2) else {
        return;
    };
    let names: Vec<String> = pool.hosts().iter().map(|h| h.container.clone()).collect();
    for name in &names {
        assert!(container_exists(name), "{name} should be running");
    }
    drop(pool);
    for name in &names {
        assert!(!container_exists(name), "{name} should be gone after drop");
    }
}
