//! Stages, failure policies, handlers and `toyc up` against real hosts: limits proven by
//! times the hosts themselves recorded, a host killed mid-execute, an upload cut off
//! mid-way.

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use crate::support::cli::Toyc;
use crate::support::hosts::{self, HostPool};

/// Inventory of hosts `indices` of `pool`, as root.
fn inventory(pool: &HostPool, indices: &[usize]) -> String {
    pool.inventory_of("root", indices)
}

fn on_host(pool: &HostPool, i: usize, cmd: &str) -> String {
    let out = pool.docker_exec(i, cmd);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// (start, end) in nanoseconds, as recorded by a host, if it ran the task.
fn interval(pool: &HostPool, i: usize, dir: &str) -> Option<(u128, u128)> {
    let text = on_host(pool, i, &format!("cat {dir}/start {dir}/end 2>/dev/null"));
    let mut numbers = text.lines().filter_map(|l| l.trim().parse::<u128>().ok());
    Some((numbers.next()?, numbers.next()?))
}

#[test]
fn a_stage_never_exceeds_its_concurrency_and_abort_starts_nothing_after_a_failure() {
    let Some(pool) = hosts::shared() else { return };
    let dir = "/tmp/toyc-stage-abort";
    let indices: Vec<usize> = (0..6).collect();
    for &i in &indices {
        pool.docker_exec(i, &format!("rm -rf {dir}"));
    }
    // Two hosts at once: h1 is quick, h2 slow; h3 takes h1's place and fails while h2
    // still works, so h2 finishes and h4..h6 never start.
    let script = format!(
        r#"
stage("work", #{{ concurrency: 2, on_failure: "abort" }}, || {{
    let fail = switch host.name {{ "h1" => "sleep 0.2", "h2" => "sleep 4", "h3" => `sleep 0.5 && date +%s%N > {dir}/end && exit 7`, _ => "sleep 0.2" }};
    shell::run(`mkdir -p {dir} && date +%s%N > {dir}/start && ${{fail}} && date +%s%N > {dir}/end`);
}});
stage("later", || {{ shell::run("touch {dir}/later"); }});
"#
    );
    let toyc = Toyc::new()
        .file("inv.yml", &inventory(pool, &indices))
        .file("s.rhai", &script);
    let ran = toyc.run_with(&["run", "s.rhai", "-i", "inv.yml", "-y", "--json"]);
    ran.code(1);

    let started: Vec<usize> = indices
        .iter()
        .copied()
        .filter(|&i| !on_host(pool, i, &format!("cat {dir}/start 2>/dev/null")).is_empty())
        .collect();
    assert_eq!(started, [0, 1, 2], "h4..h6 never start: {}", ran.stdout);
    let all: Vec<(u128, u128)> = [0, 1, 2]
        .iter()
        .map(|&i| interval(pool, i, dir).expect("start and end marks"))
        .collect();
    let [(_, h1_end), (h2_start, h2_end), (h3_start, h3_end)] = all[..] else {
        unreachable!("three intervals");
    };
    // h3 had to wait for h1's slot; h2 was running when h3 failed, and was let finish.
    assert!(h3_start >= h1_end, "{all:?}");
    assert!(h2_start < h3_start && h2_end > h3_end, "{all:?}");
    // Never more than 2 at once, by the hosts' own clocks (one kernel, one clock).
    for &(s, _) in &all {
        let overlapping = all.iter().filter(|&&(a, b)| a <= s && s < b).count();
        assert!(overlapping <= 2, "{overlapping} at once: {all:?}");
    }
    assert!(indices
        .iter()
        .all(|&i| on_host(pool, i, &format!("ls {dir}/later 2>/dev/null")).is_empty()));

    let lines = ran.json_lines();
    let end = lines
        .iter()
        .find(|l| l["type"] == "stage_end")
        .expect("stage_end");
    assert_eq!(end["data"]["aborted"], true);
    assert_eq!(end["data"]["skipped"], 3);
    let summary = lines.last().expect("summary");
    assert_eq!(
        (
            &summary["data"]["ok"],
            &summary["data"]["failed"],
            &summary["data"]["skipped"]
        ),
        (&0.into(), &1.into(), &5.into()),
        "h1 and h2 did `work` but, like h4..h6, not `later`: {summary}"
    );
}

#[test]
fn a_host_killed_mid_execute_is_reported_failed_and_the_others_complete() {
    let Some(pool) = hosts::dedicated(3) else {
        return;
    };
    let script = r#"shell::run("sleep 3 && touch /tmp/done");"#;
    let toyc = Toyc::new()
        .file("inv.yml", &inventory(&pool, &[0, 1, 2]))
        .file("s.rhai", script);
    let child = toyc.spawn(&["run", "s.rhai", "-i", "inv.yml", "-y"]);
    // Kill h2 once the command runs on it.
    let deadline = Instant::now() + Duration::from_secs(20);
    // `slee[p]`: the pattern must not match the shell that runs pgrep.
    while on_host(&pool, 1, "pgrep -f 'slee[p] 3' || true").is_empty() {
        assert!(Instant::now() < deadline, "the command never started on h2");
        std::thread::sleep(Duration::from_millis(50));
    }
    pool.stop(1);
    let ran = Toyc::wait(child);
    ran.code(1);
    let row = ran
        .stderr
        .lines()
        .find(|l| l.starts_with("h2 ") && l.contains(" failed "))
        .unwrap_or_else(|| panic!("no failed row for h2:\n{}", ran.stderr));
    assert!(row.contains("lost the connection"), "{row}");
    ran.stderr_has("2 ok, 1 failed, 0 unreachable");
    for i in [0, 2] {
        assert_eq!(on_host(&pool, i, "ls /tmp/done"), "/tmp/done", "host {i}");
    }
}

#[test]
fn handlers_run_once_when_notified_even_after_a_later_failure_and_not_when_nothing_changed() {
    let Some(pool) = hosts::shared() else { return };
    let dir = "/tmp/toyc-handlers";
    pool.docker_exec(6, &format!("rm -rf {dir}"));
    let script = format!(
        r#"
handler("restart app", || {{ shell::run("echo restart >> {dir}/restarts"); }});
files::directory("{dir}");
files::content("{dir}/a.conf", "a\n");
notify("restart app");
files::content("{dir}/b.conf", "b\n");
notify("restart app");
shell::run("test -e {dir}/ok", #{{ creates: "{dir}/never" }});
"#
    );
    let toyc = Toyc::new()
        .file("inv.yml", &inventory(pool, &[6]))
        .file("s.rhai", &script);
    let first = toyc.run_with(&["run", "s.rhai", "-i", "inv.yml", "-y"]);
    first.code(1).stderr_has("shell::run test -e");
    assert_eq!(
        on_host(pool, 6, &format!("cat {dir}/restarts")),
        "restart",
        "once, although two changes notified it and a later one failed"
    );
    // Let the last step pass: nothing notifies, so the handler does not run again.
    pool.docker_exec(6, &format!("touch {dir}/ok"));
    let second = toyc.run_with(&["run", "s.rhai", "-i", "inv.yml", "-y"]);
    second.code(0);
    assert_eq!(on_host(pool, 6, &format!("cat {dir}/restarts")), "restart");
    // An undefined handler is an error naming it, before anything changes.
    let toyc = toyc.file(
        "bad.rhai",
        &format!("files::content(\"{dir}/c\", \"c\");\nnotify(\"reload\");\n"),
    );
    toyc.run_with(&["run", "bad.rhai", "-i", "inv.yml", "-y"])
        .code(1)
        .stderr_has("notifies handler `reload`, which is not defined");
    assert!(on_host(pool, 6, &format!("ls {dir}/c 2>/dev/null")).is_empty());
}

#[test]
fn up_converges_in_cycles_and_drops_failed_hosts() {
    let Some(pool) = hosts::shared() else { return };
    let dir = "/tmp/toyc-up";
    for i in [7, 8] {
        pool.docker_exec(i, &format!("rm -rf {dir}"));
    }
    // Each pass can only see what the previous one made: three passes to converge,
    // and h9 fails in the second.
    let script = format!(
        r#"
files::directory("{dir}");
if host::file_exists("{dir}/one") {{
    files::content("{dir}/two", "2\n");
    if host.name == "h9" {{ shell::run("exit 3"); }}
}}
files::content("{dir}/one", "1\n");
"#
    );
    let toyc = Toyc::new()
        .file("inv.yml", &inventory(pool, &[7, 8]))
        .file("s.rhai", &script);
    let ran = toyc.run_with(&["up", "s.rhai", "-i", "inv.yml", "-y", "--json"]);
    ran.code(1);
    let lines = ran.json_lines();
    let host_end = |name: &str| {
        lines
            .iter()
            .find(|l| l["type"] == "host_end" && l["data"]["host"] == name)
            .unwrap_or_else(|| panic!("no host_end for {name}: {}", ran.stdout))
            .clone()
    };
    assert_eq!(host_end("h8")["data"]["status"], "ok");
    assert_eq!(host_end("h8")["data"]["changed"], 3, "{}", ran.stdout);
    assert_eq!(host_end("h9")["data"]["status"], "failed");
    assert_eq!(on_host(pool, 7, &format!("cat {dir}/two")), "2");

    // Converged: one pass, nothing to change, exit 0.
    let again = toyc.run_with(&["up", "s.rhai", "-i", "inv.yml", "-l", "h8", "-y"]);
    again.code(0);
    // Not converging within the cycles fails and says so.
    pool.docker_exec(7, &format!("rm -rf {dir}"));
    toyc.run_with(&[
        "up",
        "s.rhai",
        "-i",
        "inv.yml",
        "-l",
        "h8",
        "-y",
        "--max-cycles",
        "1",
    ])
    .code(1)
    .stderr_has("still pending after 1 cycle(s); not converged");
}

#[test]
fn an_upload_cut_off_mid_way_leaves_the_old_file_intact() {
    let Some(pool) = hosts::dedicated(1) else {
        return;
    };
    pool.docker_exec(0, "mkdir -p /srv/app && echo old > /srv/app/big");
    // 96 MiB of incompressible bytes: long enough in transit to cut.
    let big: Vec<u8> = (0..96u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let toyc = Toyc::new().file("inv.yml", &inventory(&pool, &[0])).file(
        "s.rhai",
        r#"files::copy("big.bin", "/srv/app/big", #{ mode: "0644" });"#,
    );
    std::fs::create_dir_all(toyc.dir().join("files")).expect("files/");
    std::fs::write(toyc.dir().join("files/big.bin"), &big).expect("write the payload");
    let mut child = toyc.spawn(&["run", "s.rhai", "-i", "inv.yml", "-y", "-v"]);
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Wait until the host has read part of the file (streamed after the apply script,
    // a file over 1 MiB is copied by `head -c` into a temporary file beside the
    // destination), then cut the connection by killing the host's sshd session
    // processes. The reader is stopped meanwhile, so it cannot read what was still in
    // flight: it sees the end of its input after what it had, and the sha256 check
    // must keep the part that came from replacing the file.
    let cut = on_host(
        &pool,
        0,
        "end=$(($(date +%s) + 60)); while [ $(date +%s) -lt $end ]; do \
           for d in /proc/[0-9]*; do \
             case \"$(tr -d '\\000' < $d/cmdline 2>/dev/null)\" in head-c*) ;; *) continue;; esac; \
             r=$(sed -n 's/^rchar: //p' $d/io 2>/dev/null); \
             if [ \"${r:-0}\" -gt 1048576 ]; then \
               kill -STOP ${d#/proc/}; pkill -KILL -f 'sshd: [r]oot'; kill -CONT ${d#/proc/}; \
               echo $r; exit 0; \
             fi; \
           done; \
         done; echo none",
    );
    assert_ne!(cut, "none", "no partial upload seen on the host");
    let status = child.wait().expect("toyc finishes");
    let stderr: Vec<String> = rx.try_iter().collect();
    assert_ne!(status.code(), Some(0), "{}", stderr.join("\n"));
    // Give a shell that kept going the time to finish: nothing may change later either.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        on_host(&pool, 0, "cat /srv/app/big"),
        "old",
        "cut after {cut} bytes"
    );
    assert_eq!(
        on_host(&pool, 0, "ls -A /srv/app"),
        "big",
        "no temporary file left beside the destination"
    );
}
