//! Processes: a program starts in its own process group (`sh -c START` as the group's
//! leader), its output pumped line by line into its log; a stop signals the whole group
//! (TERM, then KILL after the timeout) and waits until no process of the group is left,
//! grandchildren included. The supervisor is a child subreaper, so a grandchild whose
//! parent died is reparented to it (not to init) and reaped here when it exits.

use std::collections::HashSet;
use std::path::Path;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::{Pid, User};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

use crate::config::Process;
use crate::logs::Log;

/// The process groups the supervisor started and has not seen empty yet: its zombie
/// grandchildren in these groups are its to reap.
static GROUPS: Mutex<Option<HashSet<i32>>> = Mutex::new(None);

fn groups() -> std::sync::MutexGuard<'static, Option<HashSet<i32>>> {
    GROUPS.lock().unwrap_or_else(|p| p.into_inner())
}

/// Makes this process the reaper of its descendants' orphans (Linux); elsewhere they
/// go to init as usual.
pub fn become_subreaper() {
    #[cfg(target_os = "linux")]
    if let Err(error) = nix::sys::prctl::set_child_subreaper(true) {
        tracing::warn!(%error, "not a child subreaper: orphaned grandchildren go to init");
    }
}

/// A started program.
#[derive(Debug)]
pub struct Started {
    /// The leader's pid, also the group's id.
    pub pid: i32,
    /// Its start time in `/proc` (guards against a reused pid).
    pub started: Option<u64>,
    /// The leader, to wait for.
    pub child: Child,
}

/// Starts `process` (`start` is its command line) in a new process group, its output
/// into `log`, `extra` over its environment.
pub fn start(
    process: &Process,
    start: &str,
    log: &Log,
    extra: &[(&str, &str)],
) -> Result<Started, String> {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(start)
        .current_dir(&process.directory)
        .envs(&process.env)
        .envs(extra.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(name) = &process.user {
        let user = User::from_name(name)
            .map_err(|e| format!("unable to look up user `{name}`: {e}"))?
            .ok_or_else(|| format!("no user `{name}` on this machine: fix `application.user`"))?;
        command.uid(user.uid.as_raw()).gid(user.gid.as_raw());
    }
    let mut child = command.spawn().map_err(|e| {
        format!(
            "unable to start `{start}` in `{}`: {e}",
            process.directory.display()
        )
    })?;
    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .ok_or("the started process has no pid")?;
    groups().get_or_insert_with(HashSet::new).insert(pid);
    if let Some(out) = child.stdout.take() {
        tokio::spawn(pump(out, log.clone(), "out"));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(pump(err, log.clone(), "err"));
    }
    Ok(Started {
        pid,
        started: start_time(pid),
        child,
    })
}

async fn pump(stream: impl AsyncRead + Unpin, log: Log, name: &'static str) {
    let mut lines = BufReader::new(stream).split(b'\n');
    while let Ok(Some(line)) = lines.next_segment().await {
        log.line(name, &String::from_utf8_lossy(&line));
    }
}

/// Whether any process of group `pgid` is left (zombies count until reaped).
pub fn group_alive(pgid: i32) -> bool {
    !matches!(killpg(Pid::from_raw(pgid), None), Err(Errno::ESRCH))
}

/// Signals group `pgid`; a group already gone is not an error.
pub fn signal_group(pgid: i32, signal: Signal) {
    if let Err(error) = killpg(Pid::from_raw(pgid), signal) {
        if error != Errno::ESRCH {
            tracing::warn!(pgid, %error, ?signal, "unable to signal a process group");
        }
    }
}

/// Stops group `pgid`: TERM to every process in it, KILL to what is left after
/// `timeout`, then waits (a few seconds at most) until it is empty. Returns whether it
/// needed the KILL.
pub async fn stop_group(pgid: i32, timeout: Duration) -> bool {
    if !group_alive(pgid) {
        forget_group(pgid);
        return false;
    }
    signal_group(pgid, Signal::SIGTERM);
    // A stopped (SIGSTOP) process would hold TERM until it is continued.
    signal_group(pgid, Signal::SIGCONT);
    let killed = !wait_empty(pgid, timeout).await;
    if killed {
        signal_group(pgid, Signal::SIGKILL);
        wait_empty(pgid, Duration::from_secs(5)).await;
    }
    forget_group(pgid);
    killed
}

fn forget_group(pgid: i32) {
    if let Some(set) = groups().as_mut() {
        set.remove(&pgid);
    }
}

async fn wait_empty(pgid: i32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        reap_zombies();
        if !group_alive(pgid) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reaps this process's zombie children in the groups it started, leaders aside (tokio
/// waits for those): grandchildren reparented here by the subreaper. Other children
/// (git, verify commands) are tokio's, and left alone.
pub fn reap_zombies() {
    let known: HashSet<i32> = match groups().as_ref() {
        Some(set) if !set.is_empty() => set.clone(),
        _ => return,
    };
    for pid in own_children() {
        let Some(stat) = Stat::read(pid) else {
            continue;
        };
        if stat.state == 'Z' && known.contains(&stat.pgrp) && pid != stat.pgrp {
            let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
        }
    }
}

/// This process's children, from each of its threads' `children` list (a scan of its
/// own few threads, not of every process on the machine).
fn own_children() -> Vec<i32> {
    let mut pids = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return pids;
    };
    for task in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
            pids.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
    }
    pids
}

/// What the supervisor reads of `/proc/PID/stat`.
struct Stat {
    state: char,
    pgrp: i32,
    starttime: u64,
}

impl Stat {
    fn read(pid: i32) -> Option<Stat> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name is in parentheses and may hold anything: fields start after
        // the last `)`. Field 3 (state) is index 0 here, field 22 (starttime) index 19.
        let fields: Vec<&str> = text
            .get(text.rfind(')')? + 1..)?
            .split_whitespace()
            .collect();
        Some(Stat {
            state: fields.first()?.chars().next()?,
            pgrp: fields.get(2)?.parse().ok()?,
            starttime: fields.get(19)?.parse().ok()?,
        })
    }
}

/// A process's start time (clock ticks since boot), `None` when it is gone.
pub fn start_time(pid: i32) -> Option<u64> {
    Stat::read(pid).map(|s| s.starttime)
}

/// Stops a group a previous supervisor left running (it was killed): only when its
/// leader is still the process that was recorded (same pid, same start time) or, the
/// leader gone, when its group still has members. Returns whether something was stopped.
pub async fn reap_left_over(pid: i32, started: Option<u64>, timeout: Duration) -> bool {
    let same_leader = match (start_time(pid), started) {
        (Some(now), Some(then)) => now == then,
        // The leader is gone: its group may live on in its children, and a pgid is not
        // reused while any member lives.
        (None, _) => true,
        (Some(_), None) => false,
    };
    if !same_leader || !group_alive(pid) {
        return false;
    }
    signal_group(pid, Signal::SIGTERM);
    signal_group(pid, Signal::SIGCONT);
    if !wait_empty(pid, timeout).await {
        signal_group(pid, Signal::SIGKILL);
        wait_empty(pid, Duration::from_secs(5)).await;
    }
    true
}

/// Runs `sh -c command` in `dir` in a group of its own, output captured (its last 4 KB
/// kept), killed with its group after `timeout`. `Ok` on exit 0; `Err` says why not.
pub async fn run_check(
    command: &str,
    dir: &Path,
    env: &[(&str, &str)],
    timeout: Duration,
) -> Result<String, String> {
    let child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(dir)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("unable to run `{command}` in `{}`: {e}", dir.display()))?;
    let pgid = child.id().and_then(|id| i32::try_from(id).ok());
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(output)) => {
            let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&output.stderr));
            let tail = tail(&text, 4096);
            if let Some(pgid) = pgid {
                // Whatever it left in the background goes with it.
                signal_group(pgid, Signal::SIGKILL);
            }
            if output.status.success() {
                Ok(tail)
            } else {
                Err(format!("`{command}` failed ({}): {tail}", output.status))
            }
        }
        Ok(Err(e)) => Err(format!("`{command}`: {e}")),
        Err(_) => {
            if let Some(pgid) = pgid {
                signal_group(pgid, Signal::SIGKILL);
            }
            Err(format!(
                "`{command}` did not finish within {}s",
                timeout.as_secs_f64()
            ))
        }
    }
}

/// The last `max` bytes of `text` (at a character boundary), trimmed.
pub fn tail(text: &str, max: usize) -> String {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stop_takes_the_whole_group_grandchildren_included() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let log = Log::open(&dir.path().join("t.log"), Default::default()).expect("a log");
        let process = Process {
            repository: crate::config::Repository {
                remote: "origin".into(),
                url: String::new(),
                path: dir.path().to_owned(),
                branch: "master".into(),
                git: "git".into(),
            },
            start: None,
            directory: dir.path().to_owned(),
            env: Default::default(),
            user: None,
            stop_timeout: Duration::from_secs(5),
            verify: None,
            health: None,
        };
        // The grandchild ignores TERM; the leader waits for it.
        let script = "sh -c 'trap \"\" TERM; echo $$ > grandchild; sleep 600' & wait";
        let mut started = start(&process, script, &log, &[]).expect("it starts");
        let pidfile = dir.path().join("grandchild");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !pidfile.exists() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let grandchild: i32 = std::fs::read_to_string(&pidfile)
            .expect("the grandchild wrote its pid")
            .trim()
            .parse()
            .expect("a pid");
        assert!(start_time(grandchild).is_some());
        let waiter = tokio::spawn(async move { started.child.wait().await });
        let killed = stop_group(started.pid, Duration::from_millis(300)).await;
        assert!(killed, "the grandchild ignored TERM: it took a KILL");
        assert!(!group_alive(started.pid));
        assert_eq!(start_time(grandchild), None, "the grandchild is gone");
        let _ = waiter.await;
    }

    #[tokio::test]
    async fn a_check_reports_its_output_and_its_timeout() {
        let dir = std::env::temp_dir();
        assert_eq!(
            run_check("echo fine", &dir, &[], Duration::from_secs(5)).await,
            Ok("fine".into())
        );
        let failed = run_check("echo broken; exit 3", &dir, &[], Duration::from_secs(5))
            .await
            .expect_err("exit 3");
        assert!(failed.contains("broken"), "{failed}");
        let slow = run_check("sleep 30", &dir, &[], Duration::from_millis(200))
            .await
            .expect_err("too slow");
        assert!(slow.contains("did not finish"), "{slow}");
    }
}
