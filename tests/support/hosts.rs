//! Real OpenSSH test hosts, as docker containers, for the end-to-end tests.
//!
//! The image (`toyc-testhost:<hash>`) is built on this machine by
//! `tests/hosts/build-image.sh`, because no container registry is reachable. Every
//! container is a small Debian with its own ed25519 host key, a `root` and a `deploy`
//! account (passwordless sudo) that accept the pool's client key, and sshd as PID 1.
//!
//! [`shared`] gives the pool of [`SHARED_HOSTS`] hosts that every test of the binary
//! uses; [`dedicated`] gives fresh hosts to a test that stops, pauses or cuts one off.
//! Without docker both return `None` after a loud warning, so `cargo test` still works
//! on a laptop; with `CI=true` they panic instead, so CI cannot go green by skipping.
//!
//! Containers are labelled `toyc-test-owner=<pid of the test binary>`. A detached
//! reaper process removes them when the test binary exits, however it exits, and the
//! first use in a later run removes any left by test binaries that are gone.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// Number of hosts in the pool returned by [`shared`].
pub const SHARED_HOSTS: usize = 10;

/// How long a started container may take to answer on port 22 with an SSH banner.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// `ConnectTimeout` (seconds) of [`HostPool::ssh`]; it also bounds the banner
/// exchange, so a paused host fails within it too.
const SSH_CONNECT_TIMEOUT_SECS: u64 = 5;

/// Hard limit on one [`HostPool::ssh`] command, so a wedged host fails a test
/// instead of hanging it.
const SSH_COMMAND_LIMIT: Duration = Duration::from_secs(60);

/// The docker network the containers join (docker's default bridge).
const NETWORK: &str = "bridge";

/// Label that marks our containers; its value is the pid of the test binary.
const OWNER_LABEL: &str = "toyc-test-owner";

/// One test host: a running container reachable over ssh.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestHost {
    /// Inventory name and hostname inside the container: "h1", "h2", ...
    pub name: String,
    /// The container's IPv4 address on docker's default bridge.
    pub address: String,
    /// The docker container name, for `docker` commands.
    pub container: String,
    /// The host's public key, "ssh-ed25519 AAAA...", as pinned in the known_hosts file.
    pub host_key: String,
}

/// A set of test hosts and the client credentials that reach them.
pub struct HostPool {
    /// The hosts; `start` and `reconnect` may change an address, so the slice is
    /// replaced under the lock. Each replaced slice is leaked (a few hundred bytes per
    /// restart in a test binary) so that `hosts()` can keep returning a plain slice.
    hosts: Mutex<&'static [TestHost]>,
    /// Holds the client key pair, authorized_keys and known_hosts; removed on drop.
    _dir: tempfile::TempDir,
    identity: PathBuf,
    known_hosts: PathBuf,
    /// Whether dropping the pool removes its containers (the shared pool is static
    /// and never dropped: the reaper removes its containers).
    owns_containers: bool,
}

/// What this test process knows about docker, found out once.
enum Docker {
    /// Docker works and the image is there.
    Ready { image: String, scratch: PathBuf },
    /// No usable docker (or ssh client): host tests are skipped, or fail under CI.
    Unavailable(String),
    /// Docker works but the image could not be built: every host test fails.
    Broken(String),
}

static DOCKER: OnceLock<Docker> = OnceLock::new();
static SHARED: OnceLock<Result<HostPool, String>> = OnceLock::new();
static POOL_SEQ: AtomicUsize = AtomicUsize::new(1);

/// The pool of [`SHARED_HOSTS`] hosts, started once per test binary and shared by
/// every test (read-mostly: don't stop them or change what other tests rely on).
///
/// `None`, after a loud warning on stderr, when docker is unavailable; panics with a
/// clear message instead when the environment has `CI=true`, or when the hosts fail
/// to start.
pub fn shared() -> Option<&'static HostPool> {
    let (image, scratch) = docker_env()?;
    let pool = SHARED.get_or_init(|| HostPool::start_new(image, scratch, SHARED_HOSTS, false));
    match pool {
        Ok(pool) => Some(pool),
        Err(e) => panic!("the shared test hosts could not be started:\n{e}"),
    }
}

/// `n` fresh hosts for one test that does something destructive to them (stop,
/// pause, disconnect); their containers are removed when the pool is dropped.
///
/// `None` or a panic under the same conditions as [`shared`].
pub fn dedicated(n: usize) -> Option<HostPool> {
    let (image, scratch) = docker_env()?;
    match HostPool::start_new(image, scratch, n, true) {
        Ok(pool) => Some(pool),
        Err(e) => panic!("{n} dedicated test hosts could not be started:\n{e}"),
    }
}

/// The test-host image and the label that marks a container as this test process's
/// (the reaper removes such containers when the process ends), for tests that have
/// toyc create containers itself (workflows). `None` under the same conditions as
/// [`shared`].
pub fn image_and_owner_label() -> Option<(String, String, String)> {
    let (image, _) = docker_env()?;
    Some((
        image.to_owned(),
        OWNER_LABEL.to_owned(),
        std::process::id().to_string(),
    ))
}

/// Runs `cmd` with stdin closed and its output captured, killing it if it is still
/// running after `limit` (then its stderr ends with a line saying so).
///
/// Output is read until every holder of the pipes has closed them, so a command that
/// leaves a background process holding its stdout or stderr blocks this call.
pub fn run_with_timeout(cmd: &mut Command, limit: Duration) -> Output {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    // Drain both pipes while waiting, or a chatty child blocks on a full pipe.
    let mut stdout_pipe = child.stdout.take().expect("stdout was piped");
    let mut stderr_pipe = child.stderr.take().expect("stderr was piped");
    let stdout_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout_pipe.read_to_end(&mut buf);
        buf
    });
    let stderr_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr_pipe.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + limit;
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for a child process") {
            break status;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            let _ = child.kill();
            break child.wait().expect("waiting for a killed child process");
        }
        thread::sleep(Duration::from_millis(10));
    };
    let stdout = stdout_reader.join().expect("stdout reader thread");
    let mut stderr = stderr_reader.join().expect("stderr reader thread");
    if timed_out {
        stderr
            .extend_from_slice(format!("\n[harness: killed {what} after {limit:?}]\n").as_bytes());
    }
    Output {
        status,
        stdout,
        stderr,
    }
}

impl HostPool {
    /// The hosts, in order h1, h2, ...; a snapshot: after [`HostPool::start`] or
    /// [`HostPool::reconnect`] call it again for the current addresses.
    pub fn hosts(&self) -> &[TestHost] {
        *self.hosts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The client's private ed25519 key, authorized for `root` and `deploy` on every host.
    pub fn identity(&self) -> &Path {
        &self.identity
    }

    /// A known_hosts file with one line per host, "<ip> <host_key>".
    pub fn known_hosts(&self) -> &Path {
        &self.known_hosts
    }

    /// Writes a toyc YAML inventory of all hosts (group `testhosts`) logging in as
    /// `user` with this pool's identity and known_hosts; returns the file's path.
    pub fn write_inventory(&self, dir: &Path, user: &str) -> PathBuf {
        let path = dir.join("inventory.yml");
        std::fs::write(&path, self.inventory_yaml(user))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }

    /// The text of the inventory that [`HostPool::write_inventory`] writes.
    pub fn inventory_yaml(&self, user: &str) -> String {
        let hosts = self.hosts();
        let all: Vec<usize> = (0..hosts.len()).collect();
        let mut yaml = self.inventory_of(user, &all);
        let names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
        let _ = writeln!(yaml, "groups:");
        let _ = writeln!(yaml, "  testhosts:");
        let _ = writeln!(yaml, "    hosts: [{}]", names.join(", "));
        yaml
    }

    /// An inventory of hosts `indices` (by their names), reached as `user` with the
    /// pool's key and known_hosts; more `hosts:` lines may be appended to it.
    pub fn inventory_of(&self, user: &str, indices: &[usize]) -> String {
        let hosts = self.hosts();
        let mut yaml = String::new();
        // Paths and the user are quoted as JSON strings, which YAML reads as
        // double-quoted scalars: safe whatever characters they hold.
        let quote = |s: &str| serde_json::to_string(s).expect("a string serializes as JSON");
        let _ = writeln!(yaml, "ssh:");
        let _ = writeln!(yaml, "  user: {}", quote(user));
        let _ = writeln!(yaml, "  identity: {}", quote(&path_text(&self.identity)));
        let _ = writeln!(
            yaml,
            "  known_hosts: {}",
            quote(&path_text(&self.known_hosts))
        );
        let _ = writeln!(yaml, "hosts:");
        for host in indices.iter().map(|&i| &hosts[i]) {
            let _ = writeln!(yaml, "  {}: {{address: {}}}", host.name, host.address);
        }
        yaml
    }

    /// Runs `sh -c cmd` inside host `i` (index into [`HostPool::hosts`]) as root,
    /// bypassing ssh: for checking what a test did to the host's filesystem.
    pub fn docker_exec(&self, i: usize, cmd: &str) -> Output {
        let container = self.container(i);
        Command::new("docker")
            .args(["exec", &container, "sh", "-c", cmd])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run docker exec on {container}: {e}"))
    }

    /// An `ssh` command line for `user` on host `i`, with this pool's identity and
    /// strict host-key checking against [`HostPool::known_hosts`], ignoring the
    /// user's ssh config and agent; append the remote command (or more options).
    pub fn ssh_command(&self, i: usize, user: &str, connect_timeout_secs: u64) -> Command {
        let address = self.hosts()[i].address.clone();
        let mut cmd = Command::new("ssh");
        cmd.arg("-F")
            .arg("/dev/null")
            .arg("-i")
            .arg(&self.identity)
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                path_text(&self.known_hosts)
            ))
            .args([
                "-o",
                "GlobalKnownHostsFile=/dev/null",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "IdentityAgent=none",
                "-o",
                "BatchMode=yes",
                "-o",
                "LogLevel=ERROR",
                "-o",
            ])
            .arg(format!("ConnectTimeout={connect_timeout_secs}"))
            .arg(format!("{user}@{address}"));
        cmd
    }

    /// Runs `cmd` as `user` on host `i` over real ssh (see [`HostPool::ssh_command`]),
    /// with a connect timeout and a hard time limit.
    pub fn ssh(&self, i: usize, user: &str, cmd: &str) -> Output {
        let mut ssh = self.ssh_command(i, user, SSH_CONNECT_TIMEOUT_SECS);
        run_with_timeout(ssh.arg("--").arg(cmd), SSH_COMMAND_LIMIT)
    }

    /// Stops host `i` (`docker stop`): its sshd exits and its address stops answering.
    pub fn stop(&self, i: usize) {
        docker_ok(&["stop", &self.container(i)]);
    }

    /// Starts a stopped host `i` again and waits until its sshd answers. It keeps its
    /// host key, but its address may change: the host list and known_hosts are updated.
    pub fn start(&self, i: usize) {
        docker_ok(&["start", &self.container(i)]);
        self.refresh(i);
    }

    /// Freezes every process of host `i` (`docker pause`): connections hang.
    pub fn pause(&self, i: usize) {
        docker_ok(&["pause", &self.container(i)]);
    }

    /// Resumes a paused host `i`.
    pub fn unpause(&self, i: usize) {
        docker_ok(&["unpause", &self.container(i)]);
    }

    /// Takes host `i` off the network (`docker network disconnect`); it keeps running.
    pub fn disconnect(&self, i: usize) {
        docker_ok(&["network", "disconnect", NETWORK, &self.container(i)]);
    }

    /// Puts a disconnected host `i` back on the network and waits until its sshd
    /// answers; its address may change (the host list and known_hosts are updated).
    pub fn reconnect(&self, i: usize) {
        docker_ok(&["network", "connect", NETWORK, &self.container(i)]);
        self.refresh(i);
    }

    fn container(&self, i: usize) -> String {
        self.hosts()[i].container.clone()
    }

    /// Re-reads host `i`'s address and key after it came back, and waits for sshd.
    fn refresh(&self, i: usize) {
        // Probe before taking the lock: a panic here must not poison it (Drop needs it).
        let (address, host_key) =
            probe_container(&self.container(i)).unwrap_or_else(|e| panic!("{e}"));
        let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        let mut updated = hosts.to_vec();
        updated[i].address = address;
        updated[i].host_key = host_key;
        write_known_hosts(&self.known_hosts, &updated);
        *hosts = Vec::leak(updated);
    }

    /// Creates `n` containers in parallel and waits until all of them serve ssh.
    fn start_new(
        image: &str,
        scratch: &Path,
        n: usize,
        owns_containers: bool,
    ) -> Result<HostPool, String> {
        let began = Instant::now();
        let seq = POOL_SEQ.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let dir = tempfile::Builder::new()
            .prefix(&format!("pool{seq}-"))
            .tempdir_in(scratch)
            .map_err(|e| format!("cannot create a directory in {}: {e}", scratch.display()))?;
        let identity = dir.path().join("id_ed25519");
        let keygen = Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "toyc-test-client",
                "-f",
            ])
            .arg(&identity)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run ssh-keygen: {e}"))?;
        if !keygen.status.success() {
            return Err(format!(
                "ssh-keygen failed: {}",
                String::from_utf8_lossy(&keygen.stderr)
            ));
        }
        let authorized_keys = dir.path().join("authorized_keys");
        std::fs::copy(identity.with_extension("pub"), &authorized_keys)
            .map_err(|e| format!("cannot write {}: {e}", authorized_keys.display()))?;
        let known_hosts = dir.path().join("known_hosts");

        let names: Vec<String> = (1..=n)
            .map(|k| format!("toyc-test-{pid}-{seq}-h{k}"))
            .collect();
        // Until the pool owns them, containers are removed if anything fails.
        let mut guard = RemoveOnDrop(names.clone());
        let mount = format!("{}:/toyc/authorized_keys:ro", path_text(&authorized_keys));
        let results: Vec<Result<TestHost, String>> = thread::scope(|s| {
            let handles: Vec<_> = names
                .iter()
                .enumerate()
                .map(|(k, container)| {
                    let mount = &mount;
                    s.spawn(move || {
                        start_container(image, container, &format!("h{}", k + 1), mount)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err("a starter thread panicked".to_string()))
                })
                .collect()
        });
        let errors: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        if !errors.is_empty() {
            let all: Vec<&str> = errors.iter().map(|e| e.as_str()).collect();
            return Err(all.join("\n\n"));
        }
        let hosts: Vec<TestHost> = results.into_iter().filter_map(Result::ok).collect();
        write_known_hosts(&known_hosts, &hosts);
        guard.0.clear();
        say(&format!(
            "toyc test hosts: started {n} containers ({} .. {}) in {:.1} s",
            names.first().map_or("", String::as_str),
            names.last().map_or("", String::as_str),
            began.elapsed().as_secs_f64()
        ));
        Ok(HostPool {
            hosts: Mutex::new(Vec::leak(hosts)),
            _dir: dir,
            identity,
            known_hosts,
            owns_containers,
        })
    }
}

impl Drop for HostPool {
    fn drop(&mut self) {
        if self.owns_containers {
            let names: Vec<String> = self.hosts().iter().map(|h| h.container.clone()).collect();
            drop(RemoveOnDrop(names));
        }
        // The key directory (`_dir`) is removed after this, once no container mounts it.
    }
}

/// Removes the named containers when dropped (also while unwinding from a panic).
struct RemoveOnDrop(Vec<String>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let mut args = vec!["rm", "-f"];
        args.extend(self.0.iter().map(String::as_str));
        if let Err(e) = docker(&args) {
            say(&format!(
                "toyc test hosts: could not remove containers: {e}"
            ));
        }
    }
}

/// Starts one container and waits until it serves ssh.
fn start_container(
    image: &str,
    container: &str,
    hostname: &str,
    mount: &str,
) -> Result<TestHost, String> {
    let owner = format!("{OWNER_LABEL}={}", std::process::id());
    // No `--rm`: docker would delete the container on `docker stop`, and `start`
    // must be able to bring a stopped host back. Removal is by `docker rm -f`
    // (pool drop, the reaper, or the leftover sweep).
    docker(&[
        "run",
        "-d",
        "--hostname",
        hostname,
        "--name",
        container,
        "--label",
        &owner,
        "-v",
        mount,
        image,
    ])?;
    let (address, host_key) = probe_container(container)?;
    Ok(TestHost {
        name: hostname.to_string(),
        address,
        container: container.to_string(),
        host_key,
    })
}

/// Finds a running container's address, waits until its port 22 answers with an
/// SSH banner, and reads its host key.
fn probe_container(container: &str) -> Result<(String, String), String> {
    let began = Instant::now();
    let mut address = String::new();
    let mut last_error = String::from("not probed yet");
    let mut next_state_check = began + Duration::from_secs(1);
    while began.elapsed() < READY_TIMEOUT {
        if address.is_empty() {
            address = docker(&[
                "inspect",
                "-f",
                "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                container,
            ])?;
            if address.is_empty() {
                last_error = "the container has no IP address".to_string();
            }
        }
        if !address.is_empty() {
            match ssh_banner(&address) {
                Ok(()) => {
                    let key = docker(&[
                        "exec",
                        container,
                        "cat",
                        "/etc/ssh/ssh_host_ed25519_key.pub",
                    ])?;
                    let key: Vec<&str> = key.split_whitespace().take(2).collect();
                    if key.len() == 2 && key[0] == "ssh-ed25519" {
                        return Ok((address, key.join(" ")));
                    }
                    return Err(format!("{container}: unexpected host key {key:?}"));
                }
                Err(e) => last_error = e,
            }
        }
        // A container whose sshd died will never answer: say so now, not in 30 s.
        if Instant::now() >= next_state_check {
            next_state_check += Duration::from_secs(1);
            if docker(&["inspect", "-f", "{{.State.Running}}", container])? != "true" {
                return Err(not_ready(
                    container,
                    &address,
                    "the container is not running",
                ));
            }
        }
        thread::sleep(Duration::from_millis(50));
    }
    Err(not_ready(
        container,
        &address,
        &format!("no SSH banner within {READY_TIMEOUT:?}: {last_error}"),
    ))
}

/// The error for a container that did not come up, with its logs.
fn not_ready(container: &str, address: &str, why: &str) -> String {
    let logs = Command::new("docker")
        .args(["logs", "--tail", "50", container])
        .output()
        .map(|o| {
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        })
        .unwrap_or_else(|e| format!("(docker logs failed: {e})"));
    format!("test host {container} ({address}) is not ready: {why}\n--- docker logs {container} ---\n{logs}")
}

/// Connects to `address:22` and checks that the server greets with "SSH-2.0".
fn ssh_banner(address: &str) -> Result<(), String> {
    let socket: SocketAddr = format!("{address}:22")
        .parse()
        .map_err(|e| format!("bad address {address:?}: {e}"))?;
    let mut stream = TcpStream::connect_timeout(&socket, Duration::from_secs(1))
        .map_err(|e| format!("connect {socket}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| format!("set_read_timeout: {e}"))?;
    let mut banner = Vec::new();
    let mut buf = [0u8; 256];
    while !banner.contains(&b'\n') && banner.len() < 1024 {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => banner.extend_from_slice(&buf[..k]),
            Err(e) => return Err(format!("reading the banner of {socket}: {e}")),
        }
    }
    if banner.starts_with(b"SSH-2.0-") {
        // Greet back before closing, so sshd logs a plain disconnect.
        let _ = stream.write_all(b"SSH-2.0-toyc-harness-probe\r\n");
        Ok(())
    } else {
        Err(format!(
            "{socket} answered {:?}",
            String::from_utf8_lossy(&banner)
        ))
    }
}

fn write_known_hosts(path: &Path, hosts: &[TestHost]) {
    let text: String = hosts
        .iter()
        .map(|h| format!("{} {}\n", h.address, h.host_key))
        .collect();
    std::fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// Finds out once whether docker works, cleans up after dead test runs, builds the
/// image and starts the reaper. `None` when host tests are to be skipped.
fn docker_env() -> Option<(&'static str, &'static Path)> {
    match DOCKER.get_or_init(init_docker) {
        Docker::Ready { image, scratch } => Some((image.as_str(), scratch.as_path())),
        Docker::Broken(why) => panic!("the test hosts cannot be used: {why}"),
        Docker::Unavailable(why) => {
            if is_ci() {
                panic!(
                    "CI=true but the test hosts are unavailable: {why}\n\
                     CI must run the end-to-end tests against real hosts, not skip them."
                );
            }
            let test = thread::current().name().unwrap_or("a test").to_string();
            say(&format!("toyc test hosts: SKIPPING {test} (no docker)"));
            None
        }
    }
}

fn init_docker() -> Docker {
    if let Err(why) = docker(&["info", "--format", "{{.ServerVersion}}"]) {
        return unavailable(format!("`docker info` failed: {why}"));
    }
    for tool in ["ssh", "ssh-keygen"] {
        if let Err(e) = Command::new(tool).arg("-V").stdin(Stdio::null()).output() {
            return unavailable(format!("`{tool}` cannot run ({e}); install openssh-client"));
        }
    }
    remove_leftovers();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hosts/build-image.sh");
    // The script's progress goes to our stderr (a first build takes minutes); its
    // last stdout line is the tag. It returns at once when the image exists.
    let built = Command::new(&script)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output();
    let image = match built {
        Ok(out) if out.status.success() => {
            match String::from_utf8_lossy(&out.stdout)
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
            {
                Some(tag) => tag.trim().to_string(),
                None => {
                    return Docker::Broken(format!("{} printed no image tag", script.display()))
                }
            }
        }
        Ok(out) => return Docker::Broken(format!("{} failed ({})", script.display(), out.status)),
        Err(e) => return Docker::Broken(format!("cannot run {}: {e}", script.display())),
    };
    let scratch = match tempfile::Builder::new()
        .prefix(&format!("toyc-test-{}-", std::process::id()))
        .tempdir()
    {
        Ok(dir) => dir.keep(),
        Err(e) => return Docker::Broken(format!("cannot create a scratch directory: {e}")),
    };
    if let Err(e) = spawn_reaper(&scratch) {
        return Docker::Broken(e);
    }
    Docker::Ready { image, scratch }
}

/// A loud, once-per-process explanation of why the host tests are skipped.
fn unavailable(why: String) -> Docker {
    if !is_ci() {
        say(&format!(
            "\n==================================================================\n\
             toyc test hosts: DOCKER IS NOT AVAILABLE: {why}\n\
             Every end-to-end test that needs test hosts (the tests calling\n\
             support::hosts::shared or ::dedicated) is SKIPPED and passes without\n\
             checking anything. To run them: install Docker Engine (Debian:\n\
             apt-get install docker.io), start it, make sure `docker info` works for\n\
             this user, then run tests/run (it builds the test-host image).\n\
             With CI=true these tests fail instead of skipping.\n\
             ==================================================================\n"
        ));
    }
    Docker::Unavailable(why)
}

/// A detached process that removes this process's containers and scratch directory
/// once this process is gone, even if it is killed: the shared pool is a static and
/// is never dropped. It gets its own process group so that a Ctrl-C sent to the
/// test run's group does not take it down too.
fn spawn_reaper(scratch: &Path) -> Result<(), String> {
    let script = format!(
        "while kill -0 \"$1\" 2>/dev/null; do sleep 1; done; \
         docker ps -aq --filter \"label={OWNER_LABEL}=$1\" | xargs -r docker rm -f; rm -rf \"$2\""
    );
    Command::new("sh")
        .args(["-c", &script, "toyc-test-reaper"])
        .arg(std::process::id().to_string())
        .arg(scratch)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map(drop)
        .map_err(|e| format!("cannot start the container reaper: {e}"))
}

/// Removes containers left by test binaries that are no longer running (killed
/// before their reaper could act, or on a machine that rebooted).
fn remove_leftovers() {
    let Ok(list) = docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("label={OWNER_LABEL}"),
        "--format",
        &format!("{{{{.Names}}}} {{{{.Label \"{OWNER_LABEL}\"}}}}"),
    ]) else {
        return;
    };
    let dead: BTreeSet<&str> = list
        .lines()
        .filter_map(|line| line.split_once(' '))
        .filter(|(_, pid)| {
            !pid.parse::<u32>()
                .is_ok_and(|p| Path::new(&format!("/proc/{p}")).exists())
        })
        .map(|(name, _)| name)
        .collect();
    if !dead.is_empty() {
        say(&format!(
            "toyc test hosts: removing {} leftover containers",
            dead.len()
        ));
        drop(RemoveOnDrop(dead.into_iter().map(str::to_string).collect()));
    }
}

/// Runs `docker args...`; its trimmed stdout, or an error naming the command.
fn docker(args: &[&str]) -> Result<String, String> {
    let out = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run docker: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "`docker {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// [`docker`], panicking on failure: for the pool's fault-injection methods.
fn docker_ok(args: &[&str]) {
    if let Err(e) = docker(args) {
        panic!("{e}");
    }
}

fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// Writes to the real stderr: libtest captures `eprintln!` of passing tests, and
/// these messages (skips, timings) must be seen.
fn say(message: &str) {
    let _ = writeln!(std::io::stderr(), "{message}");
}

fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}
