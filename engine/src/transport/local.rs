//! The `local` transport: commands run as child processes of toyc, through `sh -c`.

use std::process::Stdio;

use tokio::process::Command;

use super::output::{communicate, Feed};
use super::remote_shell::{stdin_of, wrap};
use crate::cancel::Cancel;

use super::{
    bounded, sudo_refusal, Bounded, ExecOutput, ExecRequest, OutputSink, Transport, TransportError,
};

/// Runs commands on the machine toyc runs on.
#[derive(Debug, Clone)]
pub struct LocalTransport {
    host: String,
    /// The run's cancellation: commands in flight are killed when it fires.
    cancel: Cancel,
}

impl LocalTransport {
    /// A local transport reported under the inventory name `host`, never cancelled.
    pub fn new(host: impl Into<String>) -> LocalTransport {
        LocalTransport::for_run(host, Cancel::new())
    }

    /// A local transport of a run cancelled through `cancel`.
    pub fn for_run(host: impl Into<String>, cancel: Cancel) -> LocalTransport {
        LocalTransport {
            host: host.into(),
            cancel,
        }
    }

    fn io_error(&self, source: std::io::Error) -> TransportError {
        TransportError::Io {
            host: self.host.clone(),
            source,
        }
    }
}

#[async_trait::async_trait]
impl Transport for LocalTransport {
    fn host(&self) -> &str {
        &self.host
    }

    async fn exec(
        &self,
        request: &ExecRequest,
        sink: Option<&OutputSink>,
    ) -> Result<ExecOutput, TransportError> {
        let script = wrap(request, false).map_err(|e| e.on(&self.host))?;
        let input = stdin_of(request);
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(if input.is_some() || !request.stdin_files.is_empty() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a timeout can kill everything the command started.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| self.io_error(e))?;
        let pid = child.id();
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let run = async {
            let (stdout, stderr) = communicate(
                Feed {
                    pipe: stdin,
                    bytes: input.as_deref(),
                    files: &request.stdin_files,
                    hold: request.hold_stdin,
                },
                stdout,
                stderr,
                sink,
                None,
            )
            .await?;
            let status = child.wait().await?;
            Ok::<_, std::io::Error>((exit_code(status), stdout, stderr))
        };
        let stopped = match bounded(request.timeout, &self.cancel, run).await {
            Bounded::Done(result) => {
                result
                    .map_err(|e| self.io_error(e))
                    .and_then(|(status, stdout, stderr)| {
                        super::whole_output(&self.host, status, stdout, stderr)
                    })
            }
            Bounded::TimedOut(after) => Err(TransportError::Timeout {
                host: self.host.clone(),
                after,
            }),
            Bounded::Cancelled => Err(TransportError::Cancelled {
                host: self.host.clone(),
            }),
        };
        let output = match stopped {
            Ok(output) => output,
            Err(error) => {
                let finished = matches!(
                    error,
                    TransportError::Io { .. } | TransportError::OutputTooLarge { .. }
                );
                if let (Some(pid), false) = (pid, finished) {
                    kill_group(pid, request.sudo).await;
                }
                return Err(error);
            }
        };
        match sudo_refusal(&self.host, request, &output) {
            Some(err) => Err(err),
            None => Ok(output),
        }
    }

    async fn close(&self) {}
}

/// Kill a local process group; `kill(1)` keeps this crate free of `unsafe`.
async fn kill_group(pid: u32, sudo: bool) {
    let mut command = if sudo {
        let mut c = Command::new("sudo");
        c.args(["-n", "kill"]);
        c
    } else {
        Command::new("kill")
    };
    let _ = command
        .args(["-KILL", "--", &format!("-{pid}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
}

/// An exit status as a shell reports it: the code, or 128+signal.
pub(crate) fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::transport::{PutOptions, Stream};

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    #[test]
    fn exec_captures_output_status_env_and_cwd() {
        let t = LocalTransport::new("localhost");
        let mut request = ExecRequest::new("echo \"$GREETING\"; pwd; echo oops >&2; exit 3");
        request.env = vec![("GREETING".into(), "hi there".into())];
        request.cwd = Some("/tmp".into());
        let out = rt().block_on(t.exec(&request, None)).expect("exec");
        assert_eq!(out.status, 3);
        assert_eq!(out.stdout_text(), "hi there\n/tmp\n");
        assert_eq!(out.stderr_text(), "oops\n");
    }

    #[test]
    fn stdin_reaches_the_command() {
        let t = LocalTransport::new("localhost");
        let mut request = ExecRequest::new("tr a-z A-Z");
        request.stdin = Some(b"shout".to_vec());
        let out = rt().block_on(t.exec(&request, None)).expect("exec");
        assert_eq!(out.stdout_text(), "SHOUT");
    }

    #[test]
    fn timeout_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().expect("tempdir");
        let marker = dir.path().join("survived");
        let t = LocalTransport::new("localhost");
        let mut request =
            ExecRequest::new(format!("(sleep 2; touch {}) & sleep 30", marker.display()));
        request.timeout = Some(Duration::from_millis(300));
        let started = Instant::now();
        let err = rt()
            .block_on(t.exec(&request, None))
            .expect_err("times out");
        assert!(matches!(err, TransportError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
        std::thread::sleep(Duration::from_millis(2500));
        assert!(
            !marker.exists(),
            "the background child was killed with its group"
        );
    }

    #[test]
    fn put_get_and_file_exists() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f.txt");
        let path = path.to_str().expect("utf-8");
        let t = LocalTransport::new("localhost");
        let rt = rt();
        assert!(!rt.block_on(t.file_exists(path, false)).expect("exists"));
        let out = rt
            .block_on(t.put(
                b"hello\n",
                path,
                &PutOptions {
                    mode: Some("0600".into()),
                    ..PutOptions::default()
                },
            ))
            .expect("put");
        assert_eq!(out.status, 0, "{}", out.stderr_text());
        assert!(rt.block_on(t.file_exists(path, false)).expect("exists"));
        assert_eq!(
            rt.block_on(t.get(path, false)).expect("get").stdout,
            b"hello\n"
        );
    }

    #[test]
    fn streamed_lines_arrive_in_order_per_stream() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let t = LocalTransport::new("localhost");
        rt().block_on(t.exec(&ExecRequest::new("echo one; echo two"), Some(&tx)))
            .expect("exec");
        drop(tx);
        let mut lines = Vec::new();
        while let Ok(item) = rx.try_recv() {
            lines.push(item);
        }
        assert_eq!(
            lines,
            vec![
                (Stream::Stdout, "one".to_owned()),
                (Stream::Stdout, "two".to_owned())
            ]
        );
    }
}
