//! Issue 16 (security): what a local user of a host, a lost connection, a second
//! controller and a big file can do to an apply, tried on real hosts.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::cli::Toyc;
use crate::support::hosts::{self, HostPool};

fn on_host(pool: &HostPool, i: usize, cmd: &str) -> String {
    let out = pool.docker_exec(i, cmd);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Issue 16, item 3: env values and file contents never reach a command line on the
/// host, where any local user reads them with `ps`; the commands and files get them.
#[test]
fn secrets_stay_out_of_the_hosts_process_list_during_an_apply() {
    let Some(pool) = hosts::shared() else { return };
    let id = std::process::id();
    let dir = format!("/tmp/secret-argv-{id}");
    let secret = |what: &str| format!("{what}-s3cr3t-{id}");
    let script = format!(
        r#"
host::exec("mkdir -p {dir}");
host::exec("sleep 1; printf %s \"$TOKEN\" > {dir}/exec; cat > {dir}/stdin", #{{ env: #{{ TOKEN: "{exec}" }}, stdin: "fed on stdin" }});
host::exec("sleep 1; printf %s \"$TOKEN\" > {dir}/exec-sudo", #{{ sudo: true, env: #{{ TOKEN: "{exec_sudo}" }} }});
files::content("{dir}/db.conf", "password={file}\n", #{{ mode: "0600" }});
shell::run("sleep 1; printf %s \"$DB_PASSWORD\" > {dir}/run", #{{ env: #{{ DB_PASSWORD: "{run}" }} }});
shell::run("sleep 1; printf %s \"$DB_PASSWORD\" > {dir}/run-sudo", #{{ sudo: true, env: #{{ DB_PASSWORD: "{run_sudo}" }} }});
"#,
        exec = secret("exec"),
        exec_sudo = secret("exec-sudo"),
        file = secret("file"),
        run = secret("run"),
        run_sudo = secret("run-sudo"),
    );
    let toyc = Toyc::new()
        .file("inv.yml", &pool.inventory_of("deploy", &[0]))
        .file("s.rhai", &script);
    let child = toyc.spawn(&["run", "s.rhai", "-i", "inv.yml", "-y"]);
    // What any user of the host sees, sampled for as long as toyc runs.
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = Arc::clone(&done);
        let container = pool.hosts()[0].container.clone();
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !done.load(Ordering::Acquire) {
                let out = std::process::Command::new("docker")
                    .args(["exec", "-u", "nobody", &container, "ps", "-eo", "args"])
                    .output()
                    .expect("docker exec ps");
                samples.push(String::from_utf8_lossy(&out.stdout).into_owned());
                std::thread::sleep(Duration::from_millis(50));
            }
            samples
        })
    };
    let ran = Toyc::wait(child);
    done.store(true, Ordering::Release);
    let samples = sampler.join().expect("sampler");
    ran.code(0);
    let during = samples.iter().filter(|s| s.contains("sleep 1")).count();
    assert!(during >= 4, "ps saw the commands run: {samples:?}");
    for what in ["exec", "exec-sudo", "file", "run", "run-sudo"] {
        let value = secret(what);
        if let Some(sample) = samples.iter().find(|s| s.contains(&value)) {
            panic!("`{value}` is in the host's process list:\n{sample}");
        }
    }
    for what in ["exec", "exec-sudo", "run", "run-sudo"] {
        assert_eq!(on_host(pool, 0, &format!("cat {dir}/{what}")), secret(what));
    }
    assert_eq!(
        on_host(pool, 0, &format!("cat {dir}/stdin")),
        "fed on stdin"
    );
    assert_eq!(
        on_host(
            pool,
            0,
            &format!("stat -c %a {dir}/db.conf; cat {dir}/db.conf")
        ),
        format!("600\npassword={}", secret("file"))
    );
}

/// Issue 16, item 7: a host lost mid-apply reports the changes it made before it went,
/// and the script left on it stops at once instead of making the rest unseen (the step
/// in progress too: it writes nothing to its closed output that would stop it).
#[test]
fn a_host_lost_mid_apply_reports_what_it_changed_and_its_script_stops() {
    let Some(pool) = hosts::dedicated(1) else {
        return;
    };
    let script = r#"
host::exec("mkdir -p /tmp/lost");
files::content("/tmp/lost/f1", "one\n");
shell::run("sleep 15; touch /tmp/lost/late");
files::content("/tmp/lost/f2", "two\n");
"#;
    let toyc = Toyc::new()
        .file("inv.yml", &pool.inventory_of("root", &[0]))
        .file("s.rhai", script);
    let child = toyc.spawn(&["run", "s.rhai", "-i", "inv.yml", "-y", "--json"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    // `slee[p]`: the pattern must not match the shell that runs pgrep.
    while on_host(&pool, 0, "pgrep -f 'slee[p] 15' || true").is_empty() {
        assert!(Instant::now() < deadline, "the sleep never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let slept = Instant::now();
    pool.pause(0);
    let ran = Toyc::wait(child);
    pool.unpause(0);
    let end = ran
        .json_lines()
        .into_iter()
        .find(|l| l["type"] == "host_end")
        .unwrap_or_else(|| panic!("no host_end:\n{}\n{}", ran.stdout, ran.stderr));
    assert_eq!(end["data"]["changed"], 1, "f1 was changed: {end}");
    let error = end["data"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("lost the connection"), "{end}");
    assert_eq!(on_host(&pool, 0, "cat /tmp/lost/f1"), "one");
    // Past the time the script would have written f2, had it gone on.
    std::thread::sleep((slept + Duration::from_secs(18)).saturating_duration_since(Instant::now()));
    assert_eq!(
        on_host(&pool, 0, "ls -A /tmp/lost; pgrep -f 'slee[p] 15' || true"),
        "f1",
        "the orphaned script stopped"
    );
}

/// Issue 16, item 9: two runs editing one file on one host at the same time lose no
/// update. Their applies take turns (the second says whose lock it waits for), and an
/// edit planned on content that changed meanwhile is refused rather than undoing the
/// other run's change.
#[test]
fn two_runs_editing_one_file_at_once_take_turns_and_lose_no_update() {
    let Some(pool) = hosts::shared() else { return };
    let dir = format!("/tmp/two-runs-{}", std::process::id());
    let path = format!("{dir}/app.conf");
    let setup = pool.docker_exec(1, &format!("mkdir -p {dir} && echo base > {path}"));
    assert!(setup.status.success(), "{setup:?}");
    let runs: Vec<(String, Toyc)> = ["alpha", "beta"]
        .iter()
        .map(|name| {
            let script =
                format!("shell::run(\"sleep 2\");\nfiles::line(\"{path}\", \"from {name}\");\n");
            let toyc = Toyc::new()
                .file("inv.yml", &pool.inventory_of("root", &[1]))
                .file("s.rhai", &script);
            ((*name).to_owned(), toyc)
        })
        .collect();
    let children: Vec<_> = runs
        .iter()
        .map(|(_, toyc)| toyc.spawn(&["run", "s.rhai", "-i", "inv.yml", "-y"]))
        .collect();
    let ran: Vec<_> = children.into_iter().map(Toyc::wait).collect();
    let file = on_host(pool, 1, &format!("cat {path}"));
    let mut lines = vec!["base".to_owned()];
    for ((name, _), ran) in runs.iter().zip(&ran) {
        if ran.code == 0 {
            lines.push(format!("from {name}"));
        } else {
            ran.stderr_has("changed after this run planned its edit");
        }
    }
    assert_eq!(
        file.lines().collect::<Vec<_>>(),
        lines,
        "every run that reported its line left it:\n{}\n{}",
        ran[0].stderr,
        ran[1].stderr
    );
    assert!(
        ran.iter().any(|r| r
            .stderr
            .contains("waiting for the apply lock on `h2`, held by run ")),
        "one run waited for the other:\n{}\n{}",
        ran[0].stderr,
        ran[1].stderr
    );
}

/// Issue 16, item 9: a run waits for the host's apply lock no longer than
/// `TOYC_LOCK_TIMEOUT`, then fails naming the holder, having changed nothing.
#[test]
fn a_run_gives_up_on_a_held_lock_after_its_timeout_and_changes_nothing() {
    let Some(pool) = hosts::dedicated(1) else {
        return;
    };
    let state = "/root/.local/state/toyc";
    let hold = format!(
        "mkdir -p {state} && echo 'run 1 from controller `elsewhere`' > {state}/apply.holder && \
         (flock {state}/apply.lock sleep 30 >/dev/null 2>&1 &) && sleep 0.3"
    );
    let held = pool.docker_exec(0, &hold);
    assert!(held.status.success(), "{held:?}");
    let toyc = Toyc::new()
        .file("inv.yml", &pool.inventory_of("root", &[0]))
        .file("s.rhai", r#"files::content("/tmp/locked-out", "x\n");"#)
        .env("TOYC_LOCK_TIMEOUT", "2");
    let started = Instant::now();
    let ran = toyc.run_with(&["run", "s.rhai", "-i", "inv.yml", "-y"]);
    ran.code(1);
    assert!(started.elapsed() < Duration::from_secs(20));
    ran.stderr_has("waiting for the apply lock on `h1`, held by run 1 from controller `elsewhere`")
        .stderr_has("gave up after 2s waiting for the apply lock on `h1`");
    assert_eq!(
        on_host(&pool, 0, "ls /tmp/locked-out 2>&1 >/dev/null | wc -l"),
        "1"
    );
}

/// Issue 16, item 11: output longer than toyc keeps (64 MiB per stream, or
/// `TOYC_MAX_OUTPUT` MiB) fails the command, saying so, instead of silently becoming
/// a short marker in a run reported ok; within the limit it is whole.
#[test]
fn output_beyond_the_cap_fails_the_command_and_says_so() {
    let Some(pool) = hosts::shared() else { return };
    let inventory = pool.inventory_of("root", &[2]);
    let run = |script: &str, max: Option<&str>| {
        let mut toyc = Toyc::new()
            .file("inv.yml", &inventory)
            .file("s.rhai", script);
        if let Some(max) = max {
            toyc = toyc.env("TOYC_MAX_OUTPUT", max);
        }
        toyc.run_with(&["run", "s.rhai", "-i", "inv.yml", "-y"])
    };
    // 70 MB on stdout: more than the default 64 MiB.
    run(r#"host::exec("head -c 70000000 /dev/zero");"#, None)
        .code(1)
        .stderr_has("wrote more than 64 MiB to stdout, more than toyc keeps");
    let dir = format!("/tmp/big-output-{}", std::process::id());
    run(
        &format!(r#"shell::run("head -c 2000000 /dev/zero; mkdir -p {dir}");"#),
        Some("1"),
    )
    .code(1)
    .stderr_has("wrote more than 1 MiB to stdout");
    // The command ran to its end; the run said it failed.
    assert_eq!(on_host(pool, 2, &format!("ls -d {dir}")), dir);
    run(
        r#"let r = host::exec("head -c 900000 /dev/zero | tr '\\0' x"); print(r.stdout.len());"#,
        Some("1"),
    )
    .code(0)
    .stdout_has("900000");
}

/// Peak resident memory of a finished process, from GNU time's `-v` report (KiB).
fn peak_rss_kib(time_report: &str) -> u64 {
    time_report
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in:\n{time_report}"))
}

/// Issue 16, item 11: `host::upload` streams the file from disk: uploading 120 MB
/// costs the controller far less than 120 MB of memory, and the host gets every byte.
#[test]
fn an_upload_streams_from_disk_instead_of_holding_the_file() {
    let Some(pool) = hosts::shared() else { return };
    let dest = format!("/tmp/streamed-{}.bin", std::process::id());
    let toyc = Toyc::new()
        .file("inv.yml", &pool.inventory_of("root", &[3]))
        .file(
            "s.rhai",
            &format!(r#"host::upload("big.bin", "{dest}", #{{}});"#),
        );
    let big = toyc.dir().join("big.bin");
    let made = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "head -c 120000000 /dev/urandom > '{}'",
            big.display()
        ))
        .status()
        .expect("sh");
    assert!(made.success());
    let out = std::process::Command::new("/usr/bin/time")
        .arg("-v")
        .arg(crate::support::cli::binary())
        .args(["run", "s.rhai", "-i", "inv.yml", "-y"])
        .current_dir(toyc.dir())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("/usr/bin/time runs toyc");
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{report}");
    let sum = |text: &[u8]| {
        String::from_utf8_lossy(text)
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    let local = std::process::Command::new("sha256sum")
        .arg(&big)
        .output()
        .expect("sha256sum");
    let remote = pool.docker_exec(3, &format!("sha256sum {dest}; rm -f {dest}"));
    assert_eq!(sum(&remote.stdout), sum(&local.stdout));
    let peak = peak_rss_kib(&report);
    eprintln!("peak RSS of a 120 MB host::upload: {peak} KiB");
    assert!(peak < 80 * 1024, "peak RSS {peak} KiB for a 120 MB upload");
}

/// Run `args` of toyc in `dir` under GNU time: (whether it succeeded, stdout, the
/// time report with toyc's stderr before it).
fn timed(dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new("/usr/bin/time")
        .arg("-v")
        .arg(crate::support::cli::binary())
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("/usr/bin/time runs toyc");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Issue 16, item 11: `files::copy` of a 200 MB file to 3 hosts streams it from disk
/// to each host (it cost the controller 1.40 GB when the content travelled inside the
/// apply script): peak memory stays far below one copy of the file, every host gets
/// every byte, a big file inline between small ones keeps them in step, and a second
/// run finds nothing to change (the sha256 decides, as for small files).
#[test]
fn a_200_mb_copy_to_3_hosts_streams_from_disk() {
    let Some(pool) = hosts::shared() else { return };
    let id = std::process::id();
    let dir = format!("/tmp/copy-200mb-{id}");
    let script = format!(
        r#"
files::directory("{dir}");
files::copy("big.bin", "{dir}/big.bin", #{{ mode: "0640" }});
files::content("{dir}/after", "small, after the stream\n");
files::copy("second.bin", "{dir}/second.bin");
"#
    );
    let toyc = Toyc::new()
        .file("inv.yml", &pool.inventory_of("root", &[4, 5, 6]))
        .file("s.rhai", &script);
    let files = toyc.dir().join("files");
    std::fs::create_dir_all(&files).expect("files/");
    let made = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "head -c 200000000 /dev/urandom > '{0}/big.bin' && head -c 3000000 /dev/urandom > '{0}/second.bin'",
            files.display()
        ))
        .status()
        .expect("sh");
    assert!(made.success());
    let args = ["run", "s.rhai", "-i", "inv.yml", "-y", "--json"];
    let (ok, stdout, report) = timed(toyc.dir(), &args);
    assert!(ok, "{stdout}\n{report}");
    let peak = peak_rss_kib(&report);
    eprintln!("peak RSS of a 200 MB files::copy to 3 hosts: {peak} KiB");
    assert!(
        peak < 150 * 1024,
        "peak RSS {peak} KiB for a 200 MB copy to 3 hosts"
    );
    let local_sums = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cd '{}' && sha256sum big.bin second.bin",
            files.display()
        ))
        .output()
        .expect("sha256sum");
    let local_sums = String::from_utf8_lossy(&local_sums.stdout)
        .trim()
        .to_owned();
    for i in [4, 5, 6] {
        assert_eq!(
            on_host(
                pool,
                i,
                &format!("cd {dir} && sha256sum big.bin second.bin")
            ),
            local_sums,
            "host {i}"
        );
        assert_eq!(
            on_host(
                pool,
                i,
                &format!("stat -c %a {dir}/big.bin; cat {dir}/after; ls -A {dir}")
            ),
            "640\nsmall, after the stream\nafter\nbig.bin\nsecond.bin",
            "host {i}: no temporary left"
        );
    }
    let (ok, stdout, report) = timed(toyc.dir(), &args);
    assert!(ok, "{stdout}\n{report}");
    let ends: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["type"] == "host_end")
        .collect();
    assert_eq!(ends.len(), 3, "{stdout}");
    for end in ends {
        assert_eq!(end["data"]["changed"], 0, "nothing to change again: {end}");
    }
    for i in [4, 5, 6] {
        pool.docker_exec(i, &format!("rm -rf {dir}"));
    }
}

/// Issue 16, item 2: a secret is masked however it is printed: a multi-line key in a
/// `--check --diff` and in `--json`, the same key read back through `host::exec` (its
/// final newline gone), and a failing command holding a secret past its 80th character.
#[test]
fn a_secret_is_masked_line_by_line_trimmed_and_before_a_command_is_cut_short() {
    let Some(pool) = hosts::shared() else { return };
    let id = std::process::id();
    let key_lines = [
        "-----BEGIN OPENSSH PRIVATE KEY-----".to_owned(),
        format!("b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ{id}"),
        format!("QyNTUxOQAAACDo8Xv2kZq0mZ1ZlG9ja2Vkc2VjcmV0{id}"),
        "-----END OPENSSH PRIVATE KEY-----".to_owned(),
    ];
    let key = format!("{}\n", key_lines.join("\n"));
    let token = format!("tok-{id}-abcdefghij");
    let secrets = serde_json::json!({ "deploy_key": key, "token": token }).to_string();
    let path = format!("/tmp/toyc-masked-{id}");
    let script = format!(
        r#"
let back = host::exec("cat", #{{ stdin: vars.deploy_key }}).stdout;
print(`read back: ${{back}}`);
files::content("{path}", vars.deploy_key, #{{ mode: "0600" }});
"#
    );
    let toyc = Toyc::new()
        .file("inv.yml", &pool.inventory_of("root", &[2]))
        .file("secrets.json", &secrets)
        .file("s.rhai", &script);
    let shown = |text: &str| {
        key_lines[1..3]
            .iter()
            .chain([&token])
            .find(|line| text.contains(line.as_str()))
            .cloned()
    };
    for extra in [
        &["--check", "--diff"][..],
        &["--check", "--diff", "--json"][..],
    ] {
        let mut args = vec![
            "run",
            "s.rhai",
            "-i",
            "inv.yml",
            "--secrets-file",
            "secrets.json",
        ];
        args.extend(extra);
        let ran = toyc.run_with(&args);
        ran.code(2);
        assert!(ran.stdout.contains("read back: ********"), "{}", ran.stdout);
        let all = format!("{}{}", ran.stdout, ran.stderr);
        assert_eq!(shown(&all), None, "{extra:?} shows a secret line:\n{all}");
        assert!(all.contains("********"), "{all}");
    }
    // A failing command whose secret starts past where the command is cut short.
    let failing = format!(
        "host::exec(`true {pad} && printf '%s' 'Authorization: ${{vars.token}}' >/dev/null && exit 3`);",
        pad = "x".repeat(30)
    );
    let toyc = toyc.file("fail.rhai", &failing);
    let ran = toyc.run_with(&[
        "run",
        "fail.rhai",
        "-i",
        "inv.yml",
        "--secrets-file",
        "secrets.json",
    ]);
    ran.code(1);
    let all = format!("{}{}", ran.stdout, ran.stderr);
    let cut = &token[..8];
    assert!(!all.contains(cut), "a cut-off secret is shown:\n{all}");
    assert!(all.contains("exited with status"), "{all}");
}
