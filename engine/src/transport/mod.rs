//! How commands reach a host: one [`Transport`] trait, a `local` process spawner and an
//! `ssh` OpenSSH master per host. Everything else (uploads, downloads, existence checks)
//! is built here once on top of [`Transport::exec`], so both transports behave alike and
//! each costs exactly one round trip.

mod local;
mod output;
mod remote_shell;
mod ssh;

use std::time::Duration;

use tokio::sync::mpsc;

pub use local::LocalTransport;
pub use output::{max_output, DEFAULT_MAX_OUTPUT_MIB};
pub use remote_shell::{
    atomic_write, env_block, is_env_name, quote, sudo_with_env, ENV_READER, PAYLOAD_FUNCTION,
};
pub(crate) use ssh::MAX_CONTROL_DIR;
pub use ssh::{SshOptions, SshTransport};

/// Which output stream a chunk of command output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// A line of output as it arrives, for live (`--stream`) display.
pub type OutputSink = mpsc::UnboundedSender<(Stream, String)>;

/// One shell command to run on a host.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    /// The command, interpreted by `sh -c` on the host.
    pub command: String,
    /// Bytes written to the command's standard input (closed after them).
    pub stdin: Option<Vec<u8>>,
    /// Local files streamed to the command's standard input after [`ExecRequest::stdin`],
    /// read piece by piece (an upload costs the controller no memory of its size), each
    /// exactly its given length so the command can tell where one ends. A file that
    /// ends before its length ends the input there: the command sees it cut short.
    pub stdin_files: Vec<(std::path::PathBuf, u64)>,
    /// Environment variables set for the command.
    pub env: Vec<(String, String)>,
    /// Working directory; the login directory when `None`.
    pub cwd: Option<String>,
    /// Run through `sudo -n` (never prompts: a password requirement is an error).
    pub sudo: bool,
    /// Kill the command (on the host too) when it runs longer than this.
    pub timeout: Option<Duration>,
    /// Keep standard input open after [`ExecRequest::stdin`] is written, until the
    /// command's output ends: end-of-file on it then means toyc, or the connection, is
    /// gone (the watchdog of an [`ApplyScript`](crate::plan::ApplyScript) stops the
    /// script on it).
    pub hold_stdin: bool,
}

impl ExecRequest {
    /// A request for `command` with every option at its default.
    pub fn new(command: impl Into<String>) -> ExecRequest {
        ExecRequest {
            command: command.into(),
            ..ExecRequest::default()
        }
    }
}

/// What a finished command left behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// The command's exit status (128+n when killed by signal n).
    pub status: i32,
    /// Everything it wrote to standard output.
    pub stdout: Vec<u8>,
    /// Everything it wrote to standard error.
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    /// Standard output as text (invalid UTF-8 replaced).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Standard error as text (invalid UTF-8 replaced).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Why a command could not be run to completion. A non-zero exit status is *not* an
/// error: it is reported in [`ExecOutput::status`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The connection to the host could not be established.
    #[error("unable to connect to `{host}`: {reason}")]
    Connect {
        /// The inventory name of the host.
        host: String,
        /// What ssh said, cleaned up for people.
        reason: String,
    },
    /// The host's key differs from the one on record: possibly a man-in-the-middle.
    #[error(
        "host key for `{host}` has changed (known_hosts entry {entry}); toyc refuses to connect. \
         If the host was reinstalled, remove the old key with `ssh-keygen -f {file} -R {address}` and connect again"
    )]
    HostKeyChanged {
        /// The inventory name of the host.
        host: String,
        /// The address connected to, as known_hosts spells it (`[address]:port` off port 22).
        address: String,
        /// `file:line` of the offending known_hosts entry, as ssh reported it.
        entry: String,
        /// The known_hosts file holding that entry, quoted for a shell.
        file: String,
    },
    /// The host's key is not in known_hosts and trust-on-first-use was not requested.
    #[error(
        "host key for `{host}` is not known; add it to known_hosts (e.g. `ssh-keyscan {scan} >> {file}` \
         after checking its fingerprint) or pass `--accept-new-host-keys`"
    )]
    HostKeyUnknown {
        /// The inventory name of the host.
        host: String,
        /// What `ssh-keyscan` needs to reach it (`-p PORT ADDRESS` off port 22).
        scan: String,
        /// The known_hosts file toyc checks for this host, quoted for a shell.
        file: String,
    },
    /// The connection broke while a command was running or being started.
    #[error("lost the connection to `{host}`: {reason}")]
    Disconnected {
        /// The inventory name of the host.
        host: String,
        /// What went wrong.
        reason: String,
    },
    /// The command ran longer than its timeout; it was killed on the host.
    #[error("command timed out after {}s on `{host}` and was killed", .after.as_secs_f64())]
    Timeout {
        /// The inventory name of the host.
        host: String,
        /// The timeout that expired.
        after: Duration,
    },
    /// The run was cancelled (Ctrl-C); the command was killed on the host.
    #[error("cancelled on `{host}`; the command was killed")]
    Cancelled {
        /// The inventory name of the host.
        host: String,
    },
    /// The command wrote more than toyc keeps of one stream ([`max_output`]); it ran
    /// to its end, but its result is not known whole.
    #[error(
        "the command on `{host}` wrote more than {limit_mib} MiB to {stream}, more than toyc keeps; \
         redirect its output to a file on the host, or raise TOYC_MAX_OUTPUT (MiB)"
    )]
    OutputTooLarge {
        /// The inventory name of the host.
        host: String,
        /// `stdout` or `stderr`.
        stream: &'static str,
        /// The limit, in MiB.
        limit_mib: usize,
    },
    /// `sudo -n` refused because it would have asked for a password.
    #[error(
        "sudo on `{host}` needs a password, and toyc runs sudo non-interactively; \
         allow the user passwordless sudo (NOPASSWD) or connect as root"
    )]
    SudoPassword {
        /// The inventory name of the host.
        host: String,
    },
    /// `sudo -n` refused because the host's sudoers demand a terminal.
    #[error("sudo on `{host}` requires a tty (`Defaults requiretty`); remove that setting for this user")]
    SudoTty {
        /// The inventory name of the host.
        host: String,
    },
    /// A request set an environment variable whose name is not one (nothing was run).
    /// Resolution: use letters, digits and `_`, not starting with a digit.
    #[error(
        "`{key}` is not a valid environment variable name (command for `{host}` not run); \
         use letters, digits and `_`, not starting with a digit"
    )]
    BadEnvName {
        /// The inventory name of the host.
        host: String,
        /// The refused name.
        key: String,
    },
    /// A local I/O failure (spawning a process, reading its output).
    #[error("local I/O failed while talking to `{host}`")]
    Io {
        /// The inventory name of the host.
        host: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl TransportError {
    /// True when the host could not be reached at all (as opposed to a command failing).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            TransportError::Connect { .. }
                | TransportError::HostKeyChanged { .. }
                | TransportError::HostKeyUnknown { .. }
                | TransportError::Disconnected { .. }
        )
    }
}

/// A command failed on the host: how the scripts and `exec` report a non-zero exit.
pub fn describe_failure(command: &str, output: &ExecOutput) -> String {
    let stderr = output.stderr_text();
    let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    let short: String = command.chars().take(80).collect();
    if tail.is_empty() {
        format!("command `{short}` exited with status {}", output.status)
    } else {
        format!(
            "command `{short}` exited with status {}: {}",
            output.status,
            tail.join("\n")
        )
    }
}

/// Options of an atomic upload.
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    /// Octal mode such as `0644`; the umask decides when `None`.
    pub mode: Option<String>,
    /// Owner (user name or id), applied with `chown`.
    pub owner: Option<String>,
    /// Group (name or id), applied with `chgrp`.
    pub group: Option<String>,
    /// Write through `sudo -n`.
    pub sudo: bool,
    /// With no owner or group asked, keep the existing file's (where permitted).
    pub keep_owner: bool,
    /// The SHA-256 (lower-case hex) the written content must have, else `dest` is left
    /// as it was: for content streamed after an apply script, where a stream cut short
    /// or a local file changed since planning must not land (one `sha256sum` process).
    pub sha256: Option<String>,
}

/// A way to run commands on one host. Implementations only need [`Transport::exec`] and
/// [`Transport::close`]; file transfer is built on top of `exec`.
#[async_trait::async_trait]
pub trait Transport: Send + Sync {
    /// The inventory name of the host this transport reaches.
    fn host(&self) -> &str;

    /// Run one command to completion, forwarding its output lines to `sink` as they come.
    async fn exec(
        &self,
        request: &ExecRequest,
        sink: Option<&OutputSink>,
    ) -> Result<ExecOutput, TransportError>;

    /// Release the connection (closes the SSH master).
    async fn close(&self);

    /// Write `content` to `dest` atomically: a temporary file in the same directory, then
    /// `mv` over the destination, so readers see the old file or the new one, never half.
    async fn put(
        &self,
        content: &[u8],
        dest: &str,
        options: &PutOptions,
    ) -> Result<ExecOutput, TransportError> {
        let request = ExecRequest {
            command: remote_shell::atomic_write(dest, Some(content.len()), options),
            stdin: Some(content.to_vec()),
            sudo: options.sudo,
            ..ExecRequest::default()
        };
        self.exec(&request, None).await
    }

    /// Read a whole file. A missing file is a non-zero status, not an error.
    async fn get(&self, path: &str, sudo: bool) -> Result<ExecOutput, TransportError> {
        let request = ExecRequest {
            command: format!("cat -- {}", quote(path)),
            sudo,
            ..ExecRequest::default()
        };
        self.exec(&request, None).await
    }

    /// Whether `path` exists (any kind of file, following symlinks).
    async fn file_exists(&self, path: &str, sudo: bool) -> Result<bool, TransportError> {
        let request = ExecRequest {
            command: format!("test -e {}", quote(path)),
            sudo,
            ..ExecRequest::default()
        };
        Ok(self.exec(&request, None).await?.status == 0)
    }
}

/// How a command's wait ended: on its own, at its timeout, or by cancellation.
pub(crate) enum Bounded<T> {
    /// The command finished (or failed) by itself.
    Done(T),
    /// The timeout expired first.
    TimedOut(Duration),
    /// The run was cancelled first.
    Cancelled,
}

/// Wait for `work`, but no longer than `timeout` and not past `cancel`.
pub(crate) async fn bounded<T>(
    timeout: Option<Duration>,
    cancel: &crate::cancel::Cancel,
    work: impl std::future::Future<Output = T>,
) -> Bounded<T> {
    let expiry = async {
        match timeout {
            Some(limit) => tokio::time::sleep(limit).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        result = work => Bounded::Done(result),
        () = expiry => Bounded::TimedOut(timeout.unwrap_or_default()),
        () = cancel.cancelled() => Bounded::Cancelled,
    }
}

/// Recognise sudo's two non-interactive refusals in a command's stderr.
pub(crate) fn sudo_refusal(
    host: &str,
    request: &ExecRequest,
    output: &ExecOutput,
) -> Option<TransportError> {
    if !request.sudo || output.status == 0 {
        return None;
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("sudo: a password is required") {
        Some(TransportError::SudoPassword {
            host: host.to_owned(),
        })
    } else if stderr.contains("you must have a tty to run sudo") {
        Some(TransportError::SudoTty {
            host: host.to_owned(),
        })
    } else {
        None
    }
}

/// The output of a finished command, or [`TransportError::OutputTooLarge`] when a stream
/// was longer than toyc keeps.
pub(crate) fn whole_output(
    host: &str,
    status: i32,
    stdout: output::Captured,
    stderr: output::Captured,
) -> Result<ExecOutput, TransportError> {
    for (captured, stream) in [(&stdout, "stdout"), (&stderr, "stderr")] {
        if captured.truncated {
            return Err(TransportError::OutputTooLarge {
                host: host.to_owned(),
                stream,
                limit_mib: max_output() / (1024 * 1024),
            });
        }
    }
    Ok(ExecOutput {
        status,
        stdout: stdout.bytes,
        stderr: stderr.bytes,
    })
}
