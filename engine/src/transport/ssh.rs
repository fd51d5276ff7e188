//! The `ssh` transport: one OpenSSH master per host (the `openssh` crate, native-mux),
//! every command multiplexed over it without spawning a process per command.
//!
//! Each failure mode measured in `shared/research/spike-findings.md` has its option here:
//! a short control directory (sun_path is 108 bytes), an idle `ControlPersist` so a killed
//! toyc leaves no master behind for long, a connect timeout and server keepalives so a dead
//! or hung host fails in seconds, a per-host cap at sshd's `MaxSessions`, a remote kill
//! when a command times out, and the curve25519 key exchange preferred for connect speed.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openssh::{ControlPersist, KnownHosts, Session, SessionBuilder, Stdio};
use tokio::sync::{Mutex, Semaphore};

use super::output::{communicate, Feed, PidSlot};
use super::remote_shell::{kill_group, quote, stdin_of, wrap};
use super::{
    bounded, sudo_refusal, Bounded, ExecOutput, ExecRequest, OutputSink, Transport, TransportError,
};
use crate::cancel::Cancel;
use crate::inventory::Host;

/// Longest control directory that still leaves room for the crate's
/// `/.ssh-connectionXXXXXX/master.<16 random chars>` under Linux's 108-byte sun_path.
pub(crate) const MAX_CONTROL_DIR: usize = 60;

/// Retries of a session open that sshd refused (see [`SshTransport::spawn`]); with the
/// growing pause that is about 1.5 s in all.
const SESSION_RETRIES: u32 = 12;

/// A master younger than this is taken to be alive by its first command: far below its
/// 60 s `ControlPersist` idle limit.
const JUST_STARTED: Duration = Duration::from_secs(10);

/// How long a timed-out command's remote kill may take before toyc gives up on it.
const KILL_WAIT: Duration = Duration::from_secs(2);

/// Settings shared by every SSH connection of a run.
#[derive(Debug, Clone)]
pub struct SshOptions {
    /// Directory for the control sockets; short enough for a Unix socket path (at most 60 bytes).
    pub control_dir: PathBuf,
    /// The ssh config file passed with `-F` (see [`SshOptions::write_config`]).
    pub config_file: Option<PathBuf>,
    /// Give up connecting after this long.
    pub connect_timeout: Duration,
    /// Probe the server this often; three missed answers drop the connection.
    pub keepalive: Duration,
    /// Trust a host key seen for the first time (`StrictHostKeyChecking=accept-new`).
    /// A changed key is refused either way.
    pub accept_new_host_keys: bool,
    /// Commands in flight per host, at most; sshd refuses more than its `MaxSessions` (10).
    pub max_sessions: usize,
    /// The directory holding `control_dir`, removed only after every connection made
    /// with these options is closed: a master whose socket is gone cannot be told to exit.
    pub run_dir: Option<Arc<tempfile::TempDir>>,
}

impl SshOptions {
    /// Options with toyc's defaults, control sockets under `control_dir`.
    pub fn new(control_dir: PathBuf) -> SshOptions {
        SshOptions {
            control_dir,
            config_file: None,
            connect_timeout: Duration::from_secs(10),
            keepalive: Duration::from_secs(2),
            accept_new_host_keys: false,
            max_sessions: 10,
            run_dir: None,
        }
    }

    /// Options for one run: control sockets in a fresh private run directory (see
    /// [`crate::run_dir`]) that lives as long as the options, with toyc's ssh config
    /// written there over the user's (`user_config`, else `~/.ssh/config`).
    pub fn in_run_directory(user_config: Option<&Path>) -> std::io::Result<SshOptions> {
        let run_dir = Arc::new(crate::run_dir::run_directory()?);
        let mut options = SshOptions::new(PathBuf::from(run_dir.path()));
        options.write_config(run_dir.path(), user_config)?;
        options.run_dir = Some(run_dir);
        Ok(options)
    }

    /// Write the ssh config toyc connects with into `dir` and use it: the user's own config
    /// (or `user_config`) and the system one come first, so every setting there wins;
    /// toyc's defaults follow for whatever they leave unset.
    pub fn write_config(&mut self, dir: &Path, user_config: Option<&Path>) -> std::io::Result<()> {
        let mut text = String::from("# written by toyc for one run\n");
        let home_config = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".ssh/config"));
        for include in [
            user_config.map(Path::to_owned).or(home_config),
            Some(PathBuf::from("/etc/ssh/ssh_config")),
        ]
        .into_iter()
        .flatten()
        {
            if include.exists() {
                text.push_str(&format!("Include {}\n", include.display()));
            }
        }
        // curve25519 first: measured 3x cheaper to connect than OpenSSH 9's default
        // sntrup761 hybrid at 50 hosts on 2 cores (spike-findings.md).
        text.push_str("Host *\n  KexAlgorithms ^curve25519-sha256,curve25519-sha256@libssh.org\n  ServerAliveCountMax 3\n");
        let path = dir.join("ssh_config");
        std::fs::write(&path, text)?;
        self.config_file = Some(path);
        Ok(())
    }
}

/// A connection to one host through an OpenSSH master.
pub struct SshTransport {
    /// `None` once closed. Declared first so it drops first: the session asks its master
    /// to exit through the control socket, which lives in `options.run_dir`.
    session: Mutex<Option<Arc<Session>>>,
    slots: Semaphore,
    host: Host,
    options: SshOptions,
    /// The run's cancellation: commands in flight are killed on the host when it fires.
    cancel: Cancel,
    /// When the master was started, until a command uses it: a first command soon after
    /// skips the liveness check (a connection to the master, 1 of a warm run's 3 per
    /// host). Later, an idle master may have exited (`ControlPersist`): check then.
    started: std::sync::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for SshTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshTransport")
            .field("host", &self.host.name)
            .finish()
    }
}

impl SshTransport {
    /// Open the master connection to `host`, for a run cancelled through `cancel`.
    pub async fn connect(
        host: &Host,
        options: &SshOptions,
        cancel: Cancel,
    ) -> Result<SshTransport, TransportError> {
        let session = open_session(host, options).await?;
        Ok(SshTransport {
            host: host.clone(),
            options: options.clone(),
            cancel,
            session: Mutex::new(Some(Arc::new(session))),
            slots: Semaphore::new(options.max_sessions.max(1)),
            started: std::sync::Mutex::new(Some(Instant::now())),
        })
    }

    fn lost(&self, reason: impl std::fmt::Display) -> TransportError {
        TransportError::Disconnected {
            host: self.host.name.clone(),
            reason: reason.to_string(),
        }
    }

    /// The current session, or a new one when the master has gone away while idle
    /// (`ControlPersist` expiry, sshd restart). Only ever called before a command starts,
    /// so reconnecting never runs anything twice.
    async fn live_session(&self) -> Result<Arc<Session>, TransportError> {
        let mut guard = self.session.lock().await;
        let Some(session) = guard.as_ref() else {
            return Err(self.lost("the connection was closed by toyc"));
        };
        let started = self
            .started
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let just_started = started.is_some_and(|at| at.elapsed() < JUST_STARTED);
        if just_started || session.check().await.is_ok() {
            return Ok(Arc::clone(session));
        }
        tracing::debug!(host = %self.host.name, "ssh master gone; reconnecting");
        let fresh = Arc::new(open_session(&self.host, &self.options).await?);
        *guard = Some(Arc::clone(&fresh));
        Ok(fresh)
    }

    async fn run(
        &self,
        session: &Session,
        request: &ExecRequest,
        sink: Option<&OutputSink>,
        pid: &PidSlot,
    ) -> Result<ExecOutput, TransportError> {
        let wrapped = wrap(request, true).map_err(|e| e.on(&self.host.name))?;
        let script = format!("sh -c {}", quote(&wrapped));
        drop(wrapped);
        let input = stdin_of(request);
        let with_stdin = input.is_some() || !request.stdin_files.is_empty();
        let mut child = self.spawn(session, &script, with_stdin).await?;
        // Sent: not kept for the command's whole run (a copy per host adds up).
        drop(script);
        let stdin = child.stdin().take();
        let stdout = child.stdout().take();
        let stderr = child.stderr().take();
        let collected = communicate(
            Feed {
                pipe: stdin,
                bytes: input.as_deref(),
                files: &request.stdin_files,
                hold: request.hold_stdin,
            },
            stdout,
            stderr,
            sink,
            Some(pid),
        )
        .await;
        let status = child.wait().await.map_err(|e| self.map_error(e))?;
        let (stdout, stderr) = collected.map_err(|e| self.lost(e))?;
        super::whole_output(
            &self.host.name,
            super::local::exit_code(status),
            stdout,
            stderr,
        )
    }

    /// Open a session for `script`. sshd frees a session slot a moment after the client
    /// sees the previous command exit, so under a full `MaxSessions` an open can be
    /// refused although toyc's cap was respected: nothing started then, so retry briefly.
    async fn spawn<'s>(
        &self,
        session: &'s Session,
        script: &str,
        with_stdin: bool,
    ) -> Result<openssh::RemoteChild<'s>, TransportError> {
        let mut attempt = 0;
        loop {
            let spawned = session
                .raw_command(script)
                .stdin(if with_stdin {
                    Stdio::piped()
                } else {
                    Stdio::null()
                })
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .await;
            match spawned {
                Ok(child) => return Ok(child),
                Err(e)
                    if attempt < SESSION_RETRIES
                        && error_chain(&e).contains("Session open refused") =>
                {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
                }
                Err(e) => return Err(self.map_error(e)),
            }
        }
    }

    fn map_error(&self, error: openssh::Error) -> TransportError {
        match error {
            openssh::Error::RemoteProcessTerminated => self.lost(
                "the remote command ended without an exit status (connection dropped or host hung)",
            ),
            openssh::Error::Disconnected => self.lost("the ssh master connection is closed"),
            other => self.lost(error_chain(&other)),
        }
    }

    /// Kill a timed-out command's process group on the host. Awaited (a detached task
    /// would die with toyc when the run ends) but bounded: a hung host must not hold up
    /// the report of its timeout for long.
    async fn kill_remote(&self, session: &Session, pid: u32, sudo: bool) {
        let mut kill = session.raw_command(format!("sh -c {}", quote(&kill_group(pid, sudo))));
        kill.stdin(Stdio::null());
        if tokio::time::timeout(KILL_WAIT, kill.output())
            .await
            .is_err()
        {
            tracing::warn!(host = %self.host.name, pid, "could not kill a timed-out command on the host");
        }
    }
}

#[async_trait::async_trait]
impl Transport for SshTransport {
    fn host(&self) -> &str {
        &self.host.name
    }

    async fn exec(
        &self,
        request: &ExecRequest,
        sink: Option<&OutputSink>,
    ) -> Result<ExecOutput, TransportError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| self.lost("the transport is closed"))?;
        let session = self.live_session().await?;
        // Counted by bench/ (RUST_LOG=toyc_engine=debug): round trips are toyc's main cost.
        tracing::debug!(host = %self.host.name, "round trip");
        let pid = PidSlot::default();
        let stopped = match bounded(
            request.timeout,
            &self.cancel,
            self.run(&session, request, sink, &pid),
        )
        .await
        {
            Bounded::Done(result) => Ok(result?),
            Bounded::TimedOut(after) => Err(TransportError::Timeout {
                host: self.host.name.clone(),
                after,
            }),
            Bounded::Cancelled => Err(TransportError::Cancelled {
                host: self.host.name.clone(),
            }),
        };
        let output = match stopped {
            Ok(output) => output,
            Err(error) => {
                // Timed out or cancelled: the command must not go on running on the host.
                if let Some(pid) = pid.get() {
                    self.kill_remote(&session, pid, request.sudo).await;
                }
                return Err(error);
            }
        };
        match sudo_refusal(&self.host.name, request, &output) {
            Some(err) => Err(err),
            None => Ok(output),
        }
    }

    async fn close(&self) {
        let Some(session) = self.session.lock().await.take() else {
            return;
        };
        // A clone may still be held by a pending remote kill; the master then exits when
        // that last handle drops (the crate's Drop asks it to).
        if let Ok(session) = Arc::try_unwrap(session) {
            if let Err(e) = session.close().await {
                tracing::debug!(host = %self.host.name, error = %e, "closing the ssh master");
            }
        }
    }
}

/// Start the master for `host` and interpret ssh's complaints for people.
async fn open_session(host: &Host, options: &SshOptions) -> Result<Session, TransportError> {
    let dir_len = options.control_dir.as_os_str().len();
    if dir_len > MAX_CONTROL_DIR {
        return Err(TransportError::Connect {
            host: host.name.clone(),
            reason: format!(
                "control socket directory `{}` is {dir_len} bytes, more than the {MAX_CONTROL_DIR} a Unix socket path leaves room for; \
                 set TMPDIR to a shorter directory",
                options.control_dir.display()
            ),
        });
    }
    // The last line of defence for addresses that did not come through the inventory's
    // checks (a task list's or deploy config's host names): ssh reads `-...` as an option.
    if host.address.starts_with('-') {
        return Err(TransportError::Connect {
            host: host.name.clone(),
            reason: format!(
                "the address `{}` starts with `-`, which ssh would read as an option; give a host name or IP address",
                host.address
            ),
        });
    }
    let mut builder = SessionBuilder::default();
    builder
        .known_hosts_check(if options.accept_new_host_keys {
            KnownHosts::Add
        } else {
            KnownHosts::Strict
        })
        .control_directory(&options.control_dir)
        .control_persist(ControlPersist::IdleFor(
            NonZeroUsize::MIN.saturating_add(59),
        ))
        .connect_timeout(options.connect_timeout)
        .server_alive_interval(options.keepalive);
    if let Some(config) = &options.config_file {
        builder.config_file(config);
    }
    if let Some(user) = &host.ssh.user {
        builder.user(user.clone());
    }
    if let Some(port) = host.ssh.port {
        builder.port(port);
    }
    if let Some(identity) = &host.ssh.identity {
        builder.keyfile(identity);
    }
    if let Some(known_hosts) = &host.ssh.known_hosts {
        builder.user_known_hosts_file(known_hosts);
    }
    builder
        .connect_mux(&host.address)
        .await
        .map_err(|e| interpret_connect_error(host, &error_chain(&e)))
}

/// Every message in an error's source chain, joined: ssh's own words are at the bottom.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let more = inner.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = inner.source();
    }
    text
}

/// The known_hosts file toyc checks `host` against, for a shell command in a hint.
fn known_hosts_file(host: &Host) -> String {
    match &host.ssh.known_hosts {
        Some(file) => quote(&file.to_string_lossy()),
        None => "~/.ssh/known_hosts".to_owned(),
    }
}

/// Turn ssh's log output into the error a person can act on.
fn interpret_connect_error(host: &Host, log: &str) -> TransportError {
    if log.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
        || log.contains("Host key verification failed") && log.contains("Offending")
    {
        let entry = log
            .lines()
            .find_map(|l| {
                l.split_once("Offending ")
                    .and_then(|(_, rest)| rest.split_once(" key in "))
                    .map(|(_, e)| e.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        // The file ssh named wins: `~/.ssh/config` may point elsewhere than the inventory.
        let file = match entry.rsplit_once(':') {
            Some((file, line)) if line.parse::<u32>().is_ok() => quote(file),
            _ => known_hosts_file(host),
        };
        let address = match host.ssh.port {
            Some(port) if port != 22 => format!("[{}]:{port}", host.address),
            _ => host.address.clone(),
        };
        return TransportError::HostKeyChanged {
            host: host.name.clone(),
            address,
            entry,
            file,
        };
    }
    if log.contains("host key is known") || log.contains("Host key verification failed") {
        let scan = match host.ssh.port {
            Some(port) if port != 22 => format!("-p {port} {}", host.address),
            _ => host.address.clone(),
        };
        return TransportError::HostKeyUnknown {
            host: host.name.clone(),
            scan,
            file: known_hosts_file(host),
        };
    }
    let reason = log
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !l.starts_with("Warning: Permanently added"))
        .unwrap_or("ssh failed without a message")
        .trim_start_matches("ssh: ")
        .to_owned();
    TransportError::Connect {
        host: host.name.clone(),
        reason,
    }
}
