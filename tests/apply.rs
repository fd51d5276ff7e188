//! Plan and apply against real hosts: the peer benchmark workload converges, reports
//! nothing to change the second time, shows exactly one diff after one template edit,
//! and leaves files byte-identical to what the Ansible playbook of the same job leaves.

use crate::support::cli::{repo, Toyc};
use crate::support::hosts;

/// The peers' digest of h1's tree after a cold run (content + mode of every file,
/// `var/marker` excluded), the same for Ansible, pyinfra and the OpenSSH floor script:
/// shared/bench/peers/RESULTS.md.
const PEER_DIGEST: &str = "7b857b383965";

/// `tree_digest` of shared/bench/peers/bench.py, run by the host's own python3 (the
/// benchmark compares the tools with the same script).
const DIGEST_PY: &str = include_str!("../bench/tree_digest.py");

fn workload_inventory(pool: &hosts::HostPool, indices: &[usize]) -> String {
    let mut yaml = format!(
        "ssh: {{user: root, identity: {}, known_hosts: {}}}\nhosts:\n",
        pool.identity().display(),
        pool.known_hosts().display()
    );
    for &i in indices {
        let h = &pool.hosts()[i];
        yaml.push_str(&format!(
            "  h{}: {{address: {}, vars: {{root: /tmp/toybench/h{}}}}}\n",
            i + 1,
            h.address,
            i + 1
        ));
    }
    yaml
}

#[test]
fn the_peer_workload_converges_shows_one_diff_and_matches_ansible_byte_for_byte() {
    let Some(pool) = hosts::dedicated(2) else {
        return;
    };
    let bench = repo().join("scripts/bench");
    let toyc = Toyc::new().file("inv.yml", &workload_inventory(&pool, &[0, 1]));
    // Work on a copy, so the template edit below stays in this test.
    let copy = toyc.dir().join("bench");
    let status = std::process::Command::new("cp")
        .args([
            "-r",
            bench.to_str().expect("utf-8"),
            copy.to_str().expect("utf-8"),
        ])
        .status()
        .expect("cp");
    assert!(status.success());
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "bench/workload.rhai",
            "-i",
            "inv.yml",
            "--vars-file",
            "bench/vars.yml",
        ];
        args.extend_from_slice(extra);
        toyc.run_with(&args)
    };

    let cold = run(&["-y", "--json"]);
    cold.code(0);
    let summary = cold.json_lines().into_iter().last().expect("summary");
    assert_eq!(
        summary["data"]["changed"], 24,
        "12 changes on each of 2 hosts: {}",
        cold.stdout
    );

    let digest = pool.docker_exec(0, &format!("python3 -c '{DIGEST_PY}' /tmp/toybench/h1"));
    assert_eq!(
        String::from_utf8_lossy(&digest.stdout).trim(),
        PEER_DIGEST,
        "{}",
        String::from_utf8_lossy(&digest.stderr)
    );

    let warm = run(&["-y"]);
    warm.code(0);
    assert!(
        !warm.stderr.contains(" changed in "),
        "nothing changes the second time: {}",
        warm.stderr
    );

    let template = copy.join("templates/app.service.j2");
    let text = std::fs::read_to_string(&template).expect("template");
    std::fs::write(
        &template,
        text.replace("LimitNOFILE=65536", "LimitNOFILE=131072"),
    )
    .expect("edit");
    let check = run(&["--check", "--diff"]);
    check.code(2);
    let changes: Vec<&str> = check
        .stderr
        .lines()
        .filter(|l| l.contains(" ~ ") || l.contains(" + "))
        .collect();
    assert_eq!(changes.len(), 2, "one file per host: {}", check.stderr);
    assert!(changes
        .iter()
        .all(|l| l.contains("files::template") && l.contains("app.service")));
    assert!(
        check.stderr.contains("-LimitNOFILE=65536") && check.stderr.contains("+LimitNOFILE=131072"),
        "{}",
        check.stderr
    );
    // --check changed nothing.
    let on_host = pool.docker_exec(0, "grep LimitNOFILE /tmp/toybench/h1/etc/app/app.service");
    assert_eq!(
        String::from_utf8_lossy(&on_host.stdout).trim(),
        "LimitNOFILE=65536"
    );
}

/// An apply whose connection drops half-way through sending its script changes nothing
/// on a real host, not even the steps that arrived whole: the script is one brace group,
/// which the host's shell must read to the end before it runs any of it. Sent whole,
/// the same script applies.
#[test]
fn an_apply_cut_short_by_a_dropped_connection_leaves_the_old_file() {
    use std::io::Write;
    use std::process::Stdio;
    use toyc_engine::plan::{ApplyScript, Change, ChangeKind};
    use toyc_engine::transport::{atomic_write, PutOptions};

    let Some(pool) = hosts::shared() else {
        return;
    };
    let dir = format!("/tmp/cut-short-{}", std::process::id());
    let path = format!("{dir}/app.conf");
    let setup = pool.docker_exec(0, &format!("mkdir -p {dir} && printf old > {path}"));
    assert!(setup.status.success(), "{setup:?}");
    let options = PutOptions {
        mode: Some("644".into()),
        keep_owner: true,
        ..PutOptions::default()
    };
    let change = Change {
        operation: "files::content".into(),
        target: path.clone(),
        kind: ChangeKind::Modify,
        summary: String::new(),
        diff: None,
        script: atomic_write(&path, None, &options),
        payload: Some(b"new line\n".repeat(32 * 1024).into()),
    };
    // A first step that would run, were the script run as it arrives.
    let first = Change {
        operation: "shell::run".into(),
        target: "touch".into(),
        kind: ChangeKind::Run,
        summary: String::new(),
        diff: None,
        script: format!("touch {dir}/first"),
        payload: None,
    };
    let apply = ApplyScript::new(&[&first, &change]);
    let script = apply.script().as_bytes();
    let send = |bytes: &[u8], then_kill: bool| {
        let mut ssh = pool
            .ssh_command(0, "root", 10)
            .args(["--", "sh -s"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ssh runs");
        let mut stdin = ssh.stdin.take().expect("stdin");
        stdin.write_all(bytes).expect("sent");
        stdin.flush().expect("flushed");
        if then_kill {
            // The script has reached the host's shell; the connection dies under it.
            std::thread::sleep(std::time::Duration::from_millis(500));
            ssh.kill().expect("ssh killed");
        } else {
            // As toyc does: stdin stays open until the script is done (its watchdog
            // stops it at end-of-file).
            let mut stdout = Vec::new();
            use std::io::Read;
            ssh.stdout
                .take()
                .expect("stdout")
                .read_to_end(&mut stdout)
                .expect("read");
            drop(stdin);
            let mut output = ssh.wait_with_output().expect("ssh ends");
            output.stdout = stdout;
            return output;
        }
        drop(stdin);
        ssh.wait_with_output().expect("ssh ends")
    };
    send(&script[..script.len() / 2], true);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let after = pool.docker_exec(0, &format!("cat {path}; echo; ls -A {dir}"));
    assert_eq!(
        String::from_utf8_lossy(&after.stdout),
        "old\napp.conf\n",
        "the old file, and no temporary beside it"
    );

    let whole = send(script, false);
    let steps = apply.parse(&String::from_utf8_lossy(&whole.stdout));
    assert_eq!(steps.len(), 2, "{whole:?}");
    assert!(steps.iter().all(|s| s.status == 0), "{steps:?}");
    let size = pool.docker_exec(0, &format!("wc -c < {path}; rm -rf {dir}"));
    assert_eq!(
        String::from_utf8_lossy(&size.stdout).trim(),
        (9 * 32 * 1024).to_string()
    );
}
