//! The built-in commands of task lists. Each checks its arguments in `initialize`
//! (no I/O, except that `upload` finds its local file) and does its work in
//! `execute` in one round trip to its host.
//!
//! [`Builtin::doc`] documents each one's arguments (`toyc doc tasks`, `toyc doc sleep`),
//! and the same list is what its `initialize` accepts, so the manual cannot drift.
//!
//! Every task may also have `service` (shown in logs), `sudo` and `description`.

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use toyc_engine::events::Level;
use toyc_engine::tasklist::{Remote, Task, TaskContext, TaskFailure};
use toyc_engine::transport::{quote, ExecOutput, ExecRequest, PutOptions};

use super::args::Args;

/// A built-in command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// `shell`
    Shell,
    /// `upload`
    Upload,
    /// `file_exists`
    FileExists,
    /// `symlink`
    Symlink,
    /// `unpack`
    Unpack,
    /// `service_restart`
    ServiceRestart,
    /// `wait_port`
    WaitPort,
    /// `send_graphite`
    SendGraphite,
    /// `sleep`
    Sleep,
}

/// Every built-in by name.
pub const BUILTINS: &[(&str, Builtin)] = &[
    ("shell", Builtin::Shell),
    ("upload", Builtin::Upload),
    ("file_exists", Builtin::FileExists),
    ("symlink", Builtin::Symlink),
    ("unpack", Builtin::Unpack),
    ("service_restart", Builtin::ServiceRestart),
    ("wait_port", Builtin::WaitPort),
    ("send_graphite", Builtin::SendGraphite),
    ("sleep", Builtin::Sleep),
];

/// What every task is, for `toyc doc tasks`.
pub const TASKS_DOC: &str = "\
A task is a map `#{ command: NAME, host: HOST, ...arguments }` in a stage's `tasks`.
`command` and `host` are required: `host` is an inventory name (`localhost` is the
controller). Every command also takes `service` (shown in logs), `sudo` (true or
false) and `description`. Besides these built-ins, a task may name an operation
(`files::copy`, `shell::run`, ...: `toyc doc files`) or a custom command,
`commands/NAME.rhai` in the deploy config's directory.";

/// What `toyc doc` says about a built-in.
#[derive(Debug, Clone, Copy)]
pub struct BuiltinDoc {
    /// What it does, in a sentence or two.
    pub summary: &'static str,
    /// Its arguments as `(name, what it is)`: exactly the keys its `initialize` accepts
    /// (besides `service`, `sudo` and `description`).
    pub arguments: &'static [(&'static str, &'static str)],
    /// A task using it, as a generator writes it (compiled by tests/docs.rs).
    pub example: &'static str,
}

impl Builtin {
    /// Its name in a task's `command`.
    pub fn name(self) -> &'static str {
        BUILTINS
            .iter()
            .find(|(_, b)| *b == self)
            .map_or("?", |(n, _)| n)
    }

    /// Its manual.
    pub fn doc(self) -> BuiltinDoc {
        match self {
            Builtin::Shell => BuiltinDoc {
                summary: "Runs `cmd` with `sh -c` on the host; a non-zero exit fails the task.",
                arguments: &[
                    ("cmd", "the command line (required)"),
                    ("cwd", "the directory it runs in"),
                ],
                example: r#"#{ command: "shell", host: "web1", cmd: "systemctl reload nginx" }"#,
            },
            Builtin::Upload => BuiltinDoc {
                summary: "Copies a local file (from the generator's directory or `--directory`) to the host, written atomically.",
                arguments: &[
                    ("src", "the local file (required)"),
                    ("dest", "an absolute path on the host; ending in `/`, a directory the file goes into (required)"),
                    ("mode", "its mode, such as `0644`"),
                ],
                example: r#"#{ command: "upload", host: "web1", service: "web", src: "web-1.2.tar.gz", dest: "/srv/web/releases/" }"#,
            },
            Builtin::FileExists => BuiltinDoc {
                summary: "Fails unless `path` exists on the host.",
                arguments: &[("path", "an absolute path on the host (required)")],
                example: r#"#{ command: "file_exists", host: "web1", path: "/srv/web/current/bin/ctl" }"#,
            },
            Builtin::Symlink => BuiltinDoc {
                summary: "Points `link` at `target`, atomically: a new link is renamed over the old one.",
                arguments: &[
                    ("target", "what the link points at (required)"),
                    ("link", "the link, an absolute path on the host (required)"),
                ],
                example: r#"#{ command: "symlink", host: "web1", target: "/srv/web/releases/1.2", link: "/srv/web/current" }"#,
            },
            Builtin::Unpack => BuiltinDoc {
                summary: "Unpacks a `.tar.gz` on the host into `dest`, replaced whole (unpacked next to it, then renamed).",
                arguments: &[
                    ("archive", "the archive, an absolute path on the host (required)"),
                    ("dest", "the directory it becomes, an absolute path (required)"),
                    ("strip_components", "leading path components to drop (0)"),
                ],
                example: r#"#{ command: "unpack", host: "web1", archive: "/srv/web/releases/web-1.2.tar.gz", dest: "/srv/web/releases/1.2" }"#,
            },
            Builtin::ServiceRestart => BuiltinDoc {
                summary: "Restarts a service: `systemctl restart` under systemd, else `/etc/init.d/NAME restart`.",
                arguments: &[
                    ("unit", "the unit or init script to restart (the task's `service` when absent)"),
                    ("service", "the service, restarted when there is no `unit`"),
                ],
                example: r#"#{ command: "service_restart", host: "web1", service: "web" }"#,
            },
            Builtin::WaitPort => BuiltinDoc {
                summary: "Waits on the host until something accepts connections on the port; fails when the wait is over.",
                arguments: &[
                    ("port", "a TCP port from 1 to 65535 (required)"),
                    ("address", "the address to connect to (127.0.0.1)"),
                    ("wait", "how long to wait, in seconds (30)"),
                ],
                example: r#"#{ command: "wait_port", host: "web1", port: 8080, wait: 60 }"#,
            },
            Builtin::SendGraphite => BuiltinDoc {
                summary: "Sends `metric value timestamp` to a Carbon server over its plaintext protocol, from the controller (`graphite_stage` makes such a task).",
                arguments: &[
                    ("metric", "the metric's name, without white space (required)"),
                    ("value", "a number (1)"),
                    ("carbon_host", "the Carbon server (required)"),
                    ("carbon_port", "its plaintext port, usually 2003 (required)"),
                ],
                example: r#"#{ command: "send_graphite", host: "localhost", metric: "deploy.web.done", carbon_host: "carbon.internal", carbon_port: 2003 }"#,
            },
            Builtin::Sleep => BuiltinDoc {
                summary: "Waits, on the controller, without touching the host.",
                arguments: &[("seconds", "how long, a number (required)")],
                example: r#"#{ command: "sleep", host: "localhost", seconds: 5 }"#,
            },
        }
    }

    /// The argument names `initialize` accepts: those the manual lists.
    fn known(self) -> Vec<&'static str> {
        self.doc().arguments.iter().map(|(name, _)| *name).collect()
    }
}

/// Where local files come from: the generator's directory, then `--directory`.
#[derive(Debug, Clone)]
pub struct LocalRoots {
    /// The generator's directory.
    pub root: PathBuf,
    /// `--directory`, if given.
    pub releases: Option<PathBuf>,
}

impl LocalRoots {
    /// The local file `src`, confined to one of the roots (no `..`, no symlink out).
    pub fn resolve(&self, src: &str) -> Result<PathBuf, String> {
        let first = toyc_engine::context::confined_path(&self.root, src);
        match (&first, &self.releases) {
            (Err(_), Some(releases)) => {
                toyc_engine::context::confined_path(releases, src).map_err(|e| {
                    format!(
                        "{}; and in `--directory`: {e}",
                        first.err().unwrap_or_default()
                    )
                })
            }
            _ => first,
        }
    }
}

/// What a built-in's arguments say, checked.
enum Checked {
    Shell {
        cmd: String,
        cwd: Option<String>,
    },
    Upload {
        src: PathBuf,
        dest: String,
        mode: Option<String>,
    },
    FileExists {
        path: String,
    },
    Symlink {
        target: String,
        link: String,
    },
    Unpack {
        archive: String,
        dest: String,
        strip: u64,
    },
    ServiceRestart {
        unit: String,
    },
    WaitPort {
        address: String,
        port: u16,
        wait: f64,
    },
    SendGraphite {
        metric: String,
        value: f64,
        server: (String, u16),
    },
    Sleep {
        seconds: f64,
    },
}

impl Checked {
    /// The work as one shell command on the host: what it does (for failures), the
    /// command, and the changes it makes when it succeeds. `None` for the built-ins that
    /// move files or work on the controller.
    fn shell_step(&self) -> Option<(String, String, usize)> {
        Some(match self {
            Checked::Shell { cmd, cwd } => {
                let command = match cwd {
                    Some(dir) => format!("cd -- {} || exit 125\n{cmd}", quote(dir)),
                    None => cmd.clone(),
                };
                (cmd.clone(), command, 1)
            }
            Checked::Symlink { target, link } => {
                // A new link renamed over the old one: readers see the old target or the new.
                let tmp = format!("{link}.toyc-$$");
                (
                    format!("symlink {link} -> {target}"),
                    format!(
                        "ln -sfn {} \"{tmp}\" && mv -fT \"{tmp}\" {}",
                        quote(target),
                        quote(link)
                    ),
                    1,
                )
            }
            Checked::Unpack {
                archive,
                dest,
                strip,
            } => {
                let strip = if *strip > 0 {
                    format!(" --strip-components={strip}")
                } else {
                    String::new()
                };
                (
                    format!("unpack {archive} into {dest}"),
                    format!(
                    "d={d}; t=\"$d.toyc-$$\"; rm -rf \"$t\" && mkdir -p \"$t\" && tar -xzf {a} -C \"$t\"{strip} \
                     && rm -rf \"$d\" && mv \"$t\" \"$d\" || {{ rm -rf \"$t\"; exit 1; }}",
                    d = quote(dest),
                    a = quote(archive)
                    ),
                    1,
                )
            }
            Checked::ServiceRestart { unit } => {
                let u = quote(unit);
                (
                    format!("restart {unit}"),
                    format!(
                    "if [ -d /run/systemd/system ]; then systemctl restart {u}; \
                     elif [ -x /etc/init.d/{u} ]; then /etc/init.d/{u} restart; \
                     else echo \"no systemd here and no /etc/init.d/\"{u}\" script\" >&2; exit 3; fi"
                    ),
                    1,
                )
            }
            Checked::WaitPort {
                address,
                port,
                wait,
            } => (
                format!("wait for port {port}"),
                wait_port_script(address, *port, *wait),
                0,
            ),
            Checked::Upload { .. }
            | Checked::FileExists { .. }
            | Checked::SendGraphite { .. }
            | Checked::Sleep { .. } => return None,
        })
    }
}

impl Builtin {
    fn check(self, task: &Task, roots: &LocalRoots) -> Result<Checked, String> {
        Ok(match self {
            Builtin::Shell => {
                let a = Args::new(task, &self.known())?;
                Checked::Shell {
                    cmd: a.required("cmd")?,
                    cwd: a.string("cwd")?,
                }
            }
            Builtin::Upload => {
                let a = Args::new(task, &self.known())?;
                let src = roots.resolve(&a.required("src")?)?;
                let mut dest = a.required("dest")?;
                if !dest.starts_with('/') {
                    return Err(format!(
                        "argument `dest`: `{dest}` is not an absolute path; paths on the host must start with `/`"
                    ));
                }
                if dest.ends_with('/') {
                    let name = src.file_name().map(|n| n.to_string_lossy().into_owned());
                    dest.push_str(&name.unwrap_or_default());
                }
                let mode = a.string("mode")?;
                if let Some(m) = &mode {
                    crate::ops::Mode::parse(m).map_err(|e| format!("argument `mode`: {e}"))?;
                }
                Checked::Upload { src, dest, mode }
            }
            Builtin::FileExists => Checked::FileExists {
                path: Args::new(task, &self.known())?.path("path")?,
            },
            Builtin::Symlink => {
                let a = Args::new(task, &self.known())?;
                Checked::Symlink {
                    target: a.required("target")?,
                    link: a.path("link")?,
                }
            }
            Builtin::Unpack => {
                let a = Args::new(task, &self.known())?;
                let dest = a.path("dest")?;
                // Unpacking replaces `dest` whole (`rm -rf` of the old one).
                if dest == "/" {
                    return Err("argument `dest`: refusing to replace `/`".into());
                }
                Checked::Unpack {
                    archive: a.path("archive")?,
                    dest,
                    strip: a.number("strip_components")?.map_or(0, |n| n as u64),
                }
            }
            Builtin::ServiceRestart => {
                let a = Args::new(task, &self.known())?;
                let unit = match a.string("unit")? {
                    Some(unit) => unit,
                    None => a.required("service")?,
                };
                crate::ops::check_name("unit", &unit)?;
                if unit.contains('/') {
                    return Err(format!("`{unit}` is not a valid unit name: it has a `/`"));
                }
                Checked::ServiceRestart { unit }
            }
            Builtin::WaitPort => {
                let a = Args::new(task, &self.known())?;
                Checked::WaitPort {
                    port: a.port("port")?,
                    address: a.string("address")?.unwrap_or_else(|| "127.0.0.1".into()),
                    wait: a.number("wait")?.unwrap_or(30.0),
                }
            }
            Builtin::SendGraphite => {
                let a = Args::new(task, &self.known())?;
                let metric = a.required("metric")?;
                if metric.contains(char::is_whitespace) {
                    return Err(format!(
                        "argument `metric`: `{metric}` has white space, which Carbon's plaintext protocol does not allow"
                    ));
                }
                Checked::SendGraphite {
                    metric,
                    value: a.number("value")?.unwrap_or(1.0),
                    server: (a.required("carbon_host")?, a.port("carbon_port")?),
                }
            }
            Builtin::Sleep => {
                let a = Args::new(task, &self.known())?;
                Checked::Sleep {
                    seconds: a
                        .number("seconds")?
                        .ok_or("`sleep` needs argument `seconds` (a number)")?,
                }
            }
        })
    }

    /// Check `task`'s arguments.
    pub fn initialize(self, task: &Task, roots: &LocalRoots) -> Result<(), String> {
        self.check(task, roots).map(|_| ())
    }

    /// Whether its work is one shell step on the host, so that it can travel in a batch
    /// with its host's neighbouring tasks.
    pub fn batchable(self) -> bool {
        matches!(
            self,
            Builtin::Shell
                | Builtin::Symlink
                | Builtin::Unpack
                | Builtin::ServiceRestart
                | Builtin::WaitPort
        )
    }

    /// Its work as one shell step, for a batch: `None` for the built-ins that are not one
    /// (they run alone).
    pub fn remote(self, task: &Task, roots: &LocalRoots) -> Result<Option<Remote>, TaskFailure> {
        let checked = self.check(task, roots).map_err(TaskFailure::new)?;
        Ok(checked
            .shell_step()
            .map(|(what, script, made)| Remote::Step { what, script, made }))
    }

    /// Do the work of `task` on `ctx`'s host; how many changes it made.
    pub async fn execute(
        self,
        task: &Task,
        ctx: &TaskContext,
        roots: &LocalRoots,
    ) -> Result<usize, TaskFailure> {
        let sudo = task
            .args
            .get("sudo")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(ctx.sudo);
        let checked = self.check(task, roots).map_err(TaskFailure::new)?;
        let run = |what: String, command: String| run(ctx, what, command, sudo);
        match checked {
            Checked::Shell { cmd, cwd } => {
                let request = ExecRequest {
                    command: cmd.clone(),
                    cwd,
                    sudo,
                    timeout: ctx.timeout,
                    ..ExecRequest::default()
                };
                let output = ctx.transport.exec(&request, None).await?;
                ok_or_fail(&cmd, &output)?;
                Ok(1)
            }
            Checked::Upload { src, dest, mode } => {
                let content = tokio::fs::read(&src).await.map_err(|e| {
                    TaskFailure::new(format!("unable to read `{}`: {e}", src.display()))
                })?;
                let options = PutOptions {
                    mode,
                    sudo,
                    ..PutOptions::default()
                };
                let output = ctx.transport.put(&content, &dest, &options).await?;
                ok_or_fail(&format!("write {dest}"), &output)?;
                ctx.log(
                    Level::Info,
                    format!(
                        "uploaded {} ({} bytes) to {dest}",
                        src.display(),
                        content.len()
                    ),
                );
                Ok(1)
            }
            Checked::FileExists { path } => {
                if ctx.transport.file_exists(&path, sudo).await? {
                    Ok(0)
                } else {
                    Err(TaskFailure::new(format!(
                        "`{path}` does not exist on `{}`",
                        ctx.host.name
                    )))
                }
            }
            checked @ (Checked::Symlink { .. }
            | Checked::Unpack { .. }
            | Checked::ServiceRestart { .. }
            | Checked::WaitPort { .. }) => {
                let (what, command, made) = checked
                    .shell_step()
                    .expect("symlink, unpack, service_restart and wait_port are one shell step");
                run(what, command).await?;
                Ok(made)
            }
            Checked::SendGraphite {
                metric,
                value,
                server,
            } => {
                let line = send_graphite(&metric, value, &server).await?;
                ctx.log(
                    Level::Info,
                    format!("sent `{}` to {}:{}", line.trim_end(), server.0, server.1),
                );
                Ok(0)
            }
            Checked::Sleep { seconds } => {
                let wanted = Duration::from_secs_f64(seconds);
                match ctx.timeout.filter(|limit| *limit < wanted) {
                    Some(limit) => {
                        tokio::time::sleep(limit).await;
                        Err(TaskFailure::new(format!(
                            "timed out after {}s (the stage's `timeout`)",
                            limit.as_secs_f64()
                        )))
                    }
                    None => {
                        tokio::time::sleep(wanted).await;
                        Ok(0)
                    }
                }
            }
        }
    }
}

/// Run `command` on the task's host; a non-zero exit fails the task, described as `what`
/// (the script itself would tell people little).
async fn run(
    ctx: &TaskContext,
    what: String,
    command: String,
    sudo: bool,
) -> Result<ExecOutput, TaskFailure> {
    let request = ExecRequest {
        command: command.clone(),
        sudo,
        timeout: ctx.timeout,
        ..ExecRequest::default()
    };
    let output = ctx.transport.exec(&request, None).await?;
    ok_or_fail(&what, &output)?;
    Ok(output)
}

/// A non-zero exit as a failure that shows what the command said.
fn ok_or_fail(command: &str, output: &ExecOutput) -> Result<(), TaskFailure> {
    if output.status == 0 {
        return Ok(());
    }
    let said = [output.stderr_text(), output.stdout_text()]
        .into_iter()
        .map(|t| t.trim().to_owned())
        .find(|t| !t.is_empty())
        .map(|t| {
            let lines: Vec<&str> = t.lines().collect();
            lines[lines.len().saturating_sub(5)..].join(" | ")
        })
        .unwrap_or_else(|| "no output".into());
    let shown: String = command.chars().take(80).collect();
    Err(TaskFailure::new(format!(
        "`{shown}` exited with status {}: {said}",
        output.status
    )))
}

/// A host-side loop that waits until `address:port` accepts a connection, probing with
/// bash's `/dev/tcp`, or `nc -z`, or python3, whichever the host has.
fn wait_port_script(address: &str, port: u16, wait: f64) -> String {
    let a = quote(address);
    format!(
        "probe() {{ if command -v bash >/dev/null 2>&1; then bash -c 'exec 3<>/dev/tcp/'\"$1\"'/'\"$2\" 2>/dev/null; \
         elif command -v nc >/dev/null 2>&1; then nc -z \"$1\" \"$2\" 2>/dev/null; \
         else python3 -c 'import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 1)' \"$1\" \"$2\" 2>/dev/null; fi; }}; \
         end=$(( $(date +%s) + {wait} )); \
         until probe {a} {port}; do \
         if [ \"$(date +%s)\" -ge \"$end\" ]; then echo \"nothing accepts connections on \"{a}\":{port} after {wait}s\" >&2; exit 1; fi; \
         sleep 0.2; done",
        wait = wait.ceil() as u64
    )
}

/// Send one metric over Carbon's plaintext protocol: `path value timestamp\n` on TCP.
async fn send_graphite(
    metric: &str,
    value: f64,
    (host, port): &(String, u16),
) -> Result<String, TaskFailure> {
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let line = format!("{metric} {value} {timestamp}\n");
    let fail = |e: std::io::Error| {
        TaskFailure::new(format!(
            "unable to send to the Carbon server {host}:{port}: {e}"
        ))
    };
    let connect = tokio::net::TcpStream::connect((host.as_str(), *port));
    let mut stream = tokio::time::timeout(Duration::from_secs(10), connect)
        .await
        .map_err(|_| fail(std::io::Error::from(std::io::ErrorKind::TimedOut)))?
        .map_err(fail)?;
    stream.write_all(line.as_bytes()).await.map_err(fail)?;
    stream.shutdown().await.map_err(fail)?;
    Ok(line)
}
