//! Reading a command's stdout and stderr together: captured for the result, forwarded
//! line by line for live display, with the SSH wrapper's pid line taken out of stderr.

use std::sync::atomic::{AtomicU32, Ordering};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use super::remote_shell::PID_MARKER;
use super::{OutputSink, Stream};

/// The most output kept per stream; beyond it lines are still streamed but not stored,
/// so a runaway `cat` cannot exhaust the controller's memory.
const MAX_CAPTURE: usize = 64 * 1024 * 1024;

/// Where the remote shell's pid lands once its marker line has been read (0 = not yet).
#[derive(Debug, Default)]
pub(crate) struct PidSlot(AtomicU32);

impl PidSlot {
    pub(crate) fn get(&self) -> Option<u32> {
        match self.0.load(Ordering::Acquire) {
            0 => None,
            pid => Some(pid),
        }
    }
}

/// Feed `input` to a command's stdin while reading its stdout and stderr to their ends,
/// all at once (sequentially, a command filling one pipe while we wait on another would
/// deadlock). With `hold`, stdin stays open until stdout ends. Returns (stdout, stderr).
pub(crate) async fn communicate<W, O, E>(
    stdin: Option<W>,
    input: Option<Vec<u8>>,
    hold: bool,
    stdout: Option<O>,
    stderr: Option<E>,
    sink: Option<&OutputSink>,
    pid: Option<&PidSlot>,
) -> std::io::Result<(Vec<u8>, Vec<u8>)>
where
    W: AsyncWrite + Unpin,
    O: AsyncRead + Unpin,
    E: AsyncRead + Unpin,
{
    let (stdout_ended, stdout_end) = tokio::sync::oneshot::channel::<()>();
    let feed = async {
        if let (Some(mut pipe), Some(bytes)) = (stdin, input) {
            // The command may exit without reading its input: not an error here.
            let _ = pipe.write_all(&bytes).await;
            drop(bytes);
            if hold {
                // Resolves (with an error) when the stdout reader drops its sender.
                let _ = stdout_end.await;
            }
            let _ = pipe.shutdown().await;
        }
    };
    let out = async {
        let read = match stdout {
            Some(s) => read_stream(s, Stream::Stdout, sink, None).await,
            None => Ok(Vec::new()),
        };
        drop(stdout_ended);
        read
    };
    let err = async {
        match stderr {
            Some(s) => read_stream(s, Stream::Stderr, sink, pid).await,
            None => Ok(Vec::new()),
        }
    };
    let ((), out, err) = tokio::join!(feed, out, err);
    Ok((out?, err?))
}

/// Read `reader` to its end. With `pid`, a first line carrying [`PID_MARKER`] is parsed
/// into it and dropped from the output.
pub(crate) async fn read_stream<R: AsyncRead + Unpin>(
    reader: R,
    stream: Stream,
    sink: Option<&OutputSink>,
    pid: Option<&PidSlot>,
) -> std::io::Result<Vec<u8>> {
    let mut reader = BufReader::new(reader);
    let mut captured = Vec::new();
    let mut line = Vec::new();
    let mut first = true;
    let mut truncated = false;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            break;
        }
        if std::mem::take(&mut first) {
            if let Some(slot) = pid {
                if let Some(rest) = line.strip_prefix(PID_MARKER.as_bytes()) {
                    let text = String::from_utf8_lossy(rest);
                    if let Ok(n) = text.trim().parse::<u32>() {
                        slot.0.store(n, Ordering::Release);
                        continue;
                    }
                }
            }
        }
        if let Some(sink) = sink {
            let text = String::from_utf8_lossy(&line);
            // A closed receiver only means nobody watches live output any more.
            let _ = sink.send((stream, text.trim_end_matches(['\n', '\r']).to_owned()));
        }
        if captured.len() + line.len() <= MAX_CAPTURE {
            captured.extend_from_slice(&line);
        } else if !truncated {
            truncated = true;
            captured.extend_from_slice(b"\n[toyc: output truncated at 64 MiB]\n");
        }
    }
    Ok(captured)
}
