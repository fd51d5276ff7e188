//! `toyc exec` and `toyc run` over SSH against real OpenSSH servers (the container test
//! hosts): reach, failures, timeouts, sudo and host keys.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::support::cli::{repo, Toyc};
use crate::support::hosts::{self, HostPool};

/// Inventory text for some hosts of `pool` (by index) plus extra raw YAML host lines.
fn inventory(pool: &HostPool, user: &str, indices: &[usize], extra_hosts: &str) -> String {
    let mut yaml = format!(
        "ssh:\n  user: {user}\n  identity: {}\n  known_hosts: {}\nhosts:\n",
        pool.identity().display(),
        pool.known_hosts().display()
    );
    for &i in indices {
        let h = &pool.hosts()[i];
        yaml.push_str(&format!("  {}: {{address: {}}}\n", h.name, h.address));
    }
    yaml.push_str(extra_hosts);
    yaml
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
        toyc.run_with(&args).code(3).stdout_has(&format!(
            "host key for `{}` has changed (known_hosts entry {}:1)",
            h1.name,
            known.display()
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
