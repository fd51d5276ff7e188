//! Reading a command's stdout and stderr together: captured for the result, forwarded
//! line by line for live display, with the SSH wrapper's pid line taken out of stderr.

use std::sync::atomic::{AtomicU32, Ordering};

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use super::remote_shell::PID_MARKER;
use super::{OutputSink, Stream};

/// The most output kept per stream and command, in MiB, unless `TOYC_MAX_OUTPUT` says
/// otherwise: with every host answering at once, what each keeps adds up.
pub const DEFAULT_MAX_OUTPUT_MIB: usize = 64;

/// The most output kept per stream, in bytes (`TOYC_MAX_OUTPUT` MiB, else
/// [`DEFAULT_MAX_OUTPUT_MIB`]). Beyond it lines are still read (and shown live) but not
/// stored, and the command's result is
/// [`TransportError::OutputTooLarge`](super::TransportError::OutputTooLarge): never a
/// silently shortened output.
pub fn max_output() -> usize {
    std::env::var("TOYC_MAX_OUTPUT")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(DEFAULT_MAX_OUTPUT_MIB)
        .saturating_mul(1024 * 1024)
}

/// A stream read to its end: what was kept, and whether more came than is kept.
#[derive(Debug, Default)]
pub(crate) struct Captured {
    pub(crate) bytes: Vec<u8>,
    pub(crate) truncated: bool,
}

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

/// What goes to a command's standard input, and for how long it stays open.
pub(crate) struct Feed<'a, W> {
    /// The pipe to the command's stdin (`None`: the command got `/dev/null`).
    pub(crate) pipe: Option<W>,
    /// Bytes written first.
    pub(crate) bytes: Option<&'a [u8]>,
    /// Local files streamed after them, each exactly its length.
    pub(crate) files: &'a [(std::path::PathBuf, u64)],
    /// Keep the pipe open until stdout ends ([`ExecRequest::hold_stdin`](super::ExecRequest)).
    pub(crate) hold: bool,
}

/// Feed `stdin` to a command while reading its stdout and stderr to their ends, all at
/// once (sequentially, a command filling one pipe while we wait on another would
/// deadlock). Its bytes are borrowed: a copy of a big upload per host would add up.
/// Returns (stdout, stderr).
pub(crate) async fn communicate<W, O, E>(
    stdin: Feed<'_, W>,
    stdout: Option<O>,
    stderr: Option<E>,
    sink: Option<&OutputSink>,
    pid: Option<&PidSlot>,
) -> std::io::Result<(Captured, Captured)>
where
    W: AsyncWrite + Unpin,
    O: AsyncRead + Unpin,
    E: AsyncRead + Unpin,
{
    let (stdout_ended, stdout_end) = tokio::sync::oneshot::channel::<()>();
    let feed = async {
        let Feed {
            pipe,
            bytes: input,
            files,
            hold,
        } = stdin;
        if let Some(mut pipe) = pipe {
            // The command may exit without reading its input: not an error here. A file
            // that cannot be read arrives short, which the command is told to check.
            let mut fed = match input {
                Some(bytes) => pipe.write_all(bytes).await.is_ok(),
                None => true,
            };
            for (path, len) in files {
                if !fed {
                    break;
                }
                fed = feed_file(&mut pipe, path, *len).await;
            }
            // A file that fed short ends the input at once: the command must see its
            // end rather than wait for the rest.
            if hold && fed {
                // Resolves (with an error) when the stdout reader drops its sender.
                let _ = stdout_end.await;
            }
            let _ = pipe.shutdown().await;
        }
    };
    let out = async {
        let read = match stdout {
            Some(s) => read_stream(s, Stream::Stdout, sink, None).await,
            None => Ok(Captured::default()),
        };
        drop(stdout_ended);
        read
    };
    let err = async {
        match stderr {
            Some(s) => read_stream(s, Stream::Stderr, sink, pid).await,
            None => Ok(Captured::default()),
        }
    };
    let ((), out, err) = tokio::join!(feed, out, err);
    Ok((out?, err?))
}

/// Write exactly `len` bytes of the file at `path` to `pipe`, in pieces; false when the
/// file could not be read whole (the input must end here, so the command sees a file
/// cut short rather than the next one's bytes in its place) or the pipe closed.
async fn feed_file<W: AsyncWrite + Unpin>(pipe: &mut W, path: &std::path::Path, len: u64) -> bool {
    use tokio::io::AsyncReadExt;
    let source = match tokio::fs::File::open(path).await {
        Ok(source) => source,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read a file to upload");
            return false;
        }
    };
    let mut piece = source.take(len);
    match tokio::io::copy(&mut piece, pipe).await {
        Ok(sent) if sent == len => true,
        Ok(sent) => {
            tracing::warn!(path = %path.display(), sent, len, "a file to upload shrank since it was planned");
            false
        }
        Err(_) => false,
    }
}

/// Read `reader` to its end. With `pid`, a first line carrying [`PID_MARKER`] is parsed
/// into it and dropped from the output.
pub(crate) async fn read_stream<R: AsyncRead + Unpin>(
    reader: R,
    stream: Stream,
    sink: Option<&OutputSink>,
    pid: Option<&PidSlot>,
) -> std::io::Result<Captured> {
    let limit = max_output();
    let mut reader = BufReader::new(reader);
    let mut captured = Vec::new();
    let mut line = Vec::new();
    let mut first = true;
    let mut truncated = false;
    loop {
        line.clear();
        if read_line_bounded(&mut reader, &mut line).await? == 0 {
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
        if !truncated && captured.len() + line.len() <= limit {
            captured.extend_from_slice(&line);
        } else {
            truncated = true;
        }
    }
    Ok(Captured {
        bytes: captured,
        truncated,
    })
}

/// The longest line read at once: a longer one (a binary blob without newlines) comes
/// in pieces, so reading it never holds more than this.
const MAX_LINE: usize = 1024 * 1024;

/// Read up to and including the next `\n`, or [`MAX_LINE`] bytes, into `line`.
/// Returns how many bytes were read (0 at the end).
async fn read_line_bounded<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
) -> std::io::Result<usize> {
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(line.len());
        }
        let room = &available[..available.len().min(MAX_LINE - line.len())];
        let (take, ended) = match room.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (room.len(), false),
        };
        line.extend_from_slice(&room[..take]);
        reader.consume(take);
        if ended || line.len() >= MAX_LINE {
            return Ok(line.len());
        }
    }
}
