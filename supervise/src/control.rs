//! The control socket: `toyc supervise status|start|stop|restart|deploy|logs` talk to a
//! running supervisor over a Unix socket in its state directory. Only the supervisor's
//! user gets in: the socket's directory is `0700`, the socket `0600`, and each peer's
//! uid is checked (`SO_PEERCRED`) besides.
//!
//! The protocol is JSON lines: one [`Request`] per connection, answered by one
//! [`Response`]; `logs` answers with chunks of the log (`log`) and, unless it follows,
//! a last response with `done`.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

use crate::program::{Status, Verb};
use crate::Registry;

/// A request to the supervisor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "lowercase")]
pub enum Request {
    /// Every program's status, or one's.
    Status {
        /// One program.
        name: Option<String>,
    },
    /// Start, stop, restart or deploy (poll now) a program.
    Control {
        /// What to do.
        verb: Verb,
        /// The program.
        name: String,
    },
    /// A program's log: its last lines, then what comes, with `follow`.
    Logs {
        /// The program.
        name: String,
        /// Keep sending what is appended.
        follow: bool,
        /// How many of the last lines to send first.
        lines: usize,
    },
}

/// The supervisor's answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Whether the request was done.
    pub ok: bool,
    /// What was done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `status`: the programs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub programs: Vec<Status>,
    /// `status`: config files that could not be read (`file:line:col: why`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_errors: Vec<String>,
    /// `logs`: a chunk of the log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    /// `logs`: the last response.
    #[serde(default)]
    pub done: bool,
}

impl Response {
    fn failed(error: impl Into<String>) -> Response {
        Response {
            ok: false,
            error: Some(error.into()),
            done: true,
            ..Response::default()
        }
    }
}

/// Binds the socket at `path` for this user only (a stale socket file, left by a
/// supervisor that was killed, is replaced: the caller holds the supervisor's lock).
pub(crate) fn bind(path: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Answers connections until `stopping` turns true.
pub(crate) async fn serve(
    listener: UnixListener,
    registry: Arc<tokio::sync::Mutex<Registry>>,
    mut stopping: watch::Receiver<bool>,
) {
    let me = nix::unistd::geteuid().as_raw();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "control socket: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stopping.changed() => return,
        };
        match stream.peer_cred() {
            Ok(cred) if cred.uid() == me => {}
            _ => {
                tracing::warn!("control socket: a connection from another user, refused");
                continue;
            }
        }
        let (registry, stopping) = (registry.clone(), stopping.clone());
        tokio::spawn(async move {
            if let Err(error) = connection(stream, registry, stopping).await {
                tracing::debug!(%error, "control connection ended");
            }
        });
    }
}

async fn send(stream: &mut UnixStream, response: &Response) -> std::io::Result<()> {
    let mut line = serde_json::to_string(response).map_err(std::io::Error::other)?;
    line.push('\n');
    stream.write_all(line.as_bytes()).await
}

async fn connection(
    mut stream: UnixStream,
    registry: Arc<tokio::sync::Mutex<Registry>>,
    stopping: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut line = String::new();
    BufReader::new(&mut stream).read_line(&mut line).await?;
    let request: Request = match serde_json::from_str(&line) {
        Ok(request) => request,
        Err(error) => {
            return send(
                &mut stream,
                &Response::failed(format!("a bad request: {error}")),
            )
            .await
        }
    };
    match request {
        Request::Status { name } => {
            let registry = registry.lock().await;
            let programs: Vec<Status> = registry
                .programs
                .values()
                .filter(|h| name.as_deref().is_none_or(|n| n == h.program.name))
                .map(|h| h.status())
                .collect();
            if let (Some(name), true) = (&name, programs.is_empty()) {
                return send(&mut stream, &Response::failed(unknown(name, &registry))).await;
            }
            let response = Response {
                ok: true,
                programs,
                config_errors: registry.errors.clone(),
                done: true,
                ..Response::default()
            };
            drop(registry);
            send(&mut stream, &response).await
        }
        Request::Control { verb, name } => {
            let controller = {
                let registry = registry.lock().await;
                match registry.programs.get(&name) {
                    Some(handle) => handle.controller(),
                    None => {
                        let error = unknown(&name, &registry);
                        drop(registry);
                        return send(&mut stream, &Response::failed(error)).await;
                    }
                }
            };
            let response = match controller.control(verb).await {
                Ok(message) => Response {
                    ok: true,
                    message: Some(message),
                    done: true,
                    ..Response::default()
                },
                Err(error) => Response::failed(error),
            };
            send(&mut stream, &response).await
        }
        Request::Logs {
            name,
            follow,
            lines,
        } => {
            let path = {
                let registry = registry.lock().await;
                match registry.programs.get(&name) {
                    Some(handle) => handle.status().log,
                    None => {
                        let error = unknown(&name, &registry);
                        drop(registry);
                        return send(&mut stream, &Response::failed(error)).await;
                    }
                }
            };
            logs(&mut stream, &path, follow, lines, stopping).await
        }
    }
}

fn unknown(name: &str, registry: &Registry) -> String {
    let names: Vec<&str> = registry.programs.keys().map(String::as_str).collect();
    format!(
        "no program `{name}` (programs: {})",
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    )
}

/// Sends the last `lines` lines of the log, then, with `follow`, what is appended
/// (from the start of a new file after a rotation) until the client goes away.
async fn logs(
    stream: &mut UnixStream,
    path: &PathBuf,
    follow: bool,
    lines: usize,
    mut stopping: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let text = tokio::fs::read(path).await.unwrap_or_default();
    let mut offset = text.len() as u64;
    let text = String::from_utf8_lossy(&text);
    let all: Vec<&str> = text.split_inclusive('\n').collect();
    let tail = all[all.len().saturating_sub(lines)..].concat();
    if !tail.is_empty() {
        send(
            stream,
            &Response {
                ok: true,
                log: Some(tail),
                ..Response::default()
            },
        )
        .await?;
    }
    if !follow {
        return send(
            stream,
            &Response {
                ok: true,
                done: true,
                ..Response::default()
            },
        )
        .await;
    }
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = stopping.changed() => return Ok(()),
        }
        let size = tokio::fs::metadata(path).await.map_or(0, |m| m.len());
        if size < offset {
            offset = 0;
        }
        if size == offset {
            continue;
        }
        let mut file = tokio::fs::File::open(path).await?;
        file.seek(SeekFrom::Start(offset)).await?;
        let mut chunk = Vec::new();
        file.read_to_end(&mut chunk).await?;
        offset += chunk.len() as u64;
        send(
            stream,
            &Response {
                ok: true,
                log: Some(String::from_utf8_lossy(&chunk).into_owned()),
                ..Response::default()
            },
        )
        .await?;
    }
}

/// Sends `request` to the supervisor at `socket`; calls `each` with every response
/// until the last (`done`) one, which it returns.
pub async fn request(
    socket: &Path,
    request: &Request,
    mut each: impl FnMut(&Response),
) -> Result<Response, String> {
    let mut stream = UnixStream::connect(socket).await.map_err(|e| {
        format!(
            "no supervisor answers at `{}` ({e}): is `toyc supervise -c DIR` running with the same state directory?",
            socket.display()
        )
    })?;
    let mut line = serde_json::to_string(request).map_err(|e| e.to_string())?;
    line.push('\n');
    stream
        .write_all(line.as_bytes())
        .await
        .map_err(|e| format!("unable to talk to the supervisor: {e}"))?;
    let mut lines = BufReader::new(stream).lines();
    loop {
        let Some(line) = lines
            .next_line()
            .await
            .map_err(|e| format!("the supervisor's answer broke off: {e}"))?
        else {
            return Err("the supervisor closed the connection".into());
        };
        let response: Response = serde_json::from_str(&line)
            .map_err(|e| format!("the supervisor's answer is not understood: {e}"))?;
        if response.done {
            return Ok(response);
        }
        each(&response);
    }
}
