//! Plans as data: what each operation found (a [`Change`] or a reasoned no-change), and
//! how a host's changes travel: **one** shell script per host and stage, with small file
//! contents inline and big ones ([`Payload::File`]) streamed from disk after it on the
//! same standard input, that reports each step's result. Nothing here touches a host;
//! the runner sends [`ApplyScript::request`] and reads the answer with
//! [`ApplyScript::parse`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::facts::{FactQuery, Facts};
use crate::host_lock::{HostLock, LockNews};
pub use crate::transport::PAYLOAD_FUNCTION;
use crate::transport::{quote, ExecRequest};

/// What kind of change an operation would make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Something new appears (`+`).
    Create,
    /// Something that exists is altered (`~`).
    Modify,
    /// Something is removed (`-`).
    Remove,
    /// A command runs (`!`): its effect is not known in advance.
    Run,
}

impl ChangeKind {
    /// The sign shown before the change: `+`, `~`, `-` or `!`.
    pub fn sign(self) -> char {
        match self {
            ChangeKind::Create => '+',
            ChangeKind::Modify => '~',
            ChangeKind::Remove => '-',
            ChangeKind::Run => '!',
        }
    }
}

/// One change an operation would make on a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The operation, as scripts call it (`files::file`).
    pub operation: String,
    /// What it acts on (a path, a user name, a command).
    pub target: String,
    /// Create, modify, remove or run.
    pub kind: ChangeKind,
    /// A one-line description for people: `mode 644 -> 600`.
    pub summary: String,
    /// A unified diff of the content, when the content changes and it is text.
    pub diff: Option<String>,
    /// The POSIX shell that makes the change; `set -e` applies. File content, if any,
    /// is on its standard input (see [`Change::payload`]), or, for a script that calls
    /// the shell function [`PAYLOAD_FUNCTION`], printed by it without a process.
    pub script: String,
    /// The content fed to `script`'s standard input, or printed by [`PAYLOAD_FUNCTION`]
    /// when `script` calls it. Shared, not copied, by every clone of the change.
    #[serde(skip)]
    pub payload: Option<Payload>,
}

/// Files bigger than this many bytes travel as a [`Payload::File`], streamed from disk:
/// held in memory, a 200 MB copy to 3 hosts cost the controller 1.4 GB (issue 16, item 11).
pub const STREAM_ABOVE: u64 = 1024 * 1024;

/// The content a [`Change`] writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// Bytes in memory, written into the apply script (small content).
    Bytes(Arc<[u8]>),
    /// A file on the controller, streamed from disk after the apply script on its
    /// standard input, never whole in memory. The step that writes it must check what
    /// arrived (as [`atomic_write`](crate::transport::atomic_write) does with a
    /// `sha256`): a stream cut short ends early.
    File(Arc<LocalFile>),
}

impl Payload {
    /// The bytes, when they are in memory.
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Payload::Bytes(bytes) => Some(bytes),
            Payload::File(_) => None,
        }
    }
}

impl From<Vec<u8>> for Payload {
    fn from(bytes: Vec<u8>) -> Payload {
        Payload::Bytes(bytes.into())
    }
}

impl From<&[u8]> for Payload {
    fn from(bytes: &[u8]) -> Payload {
        Payload::Bytes(bytes.into())
    }
}

impl From<Arc<[u8]>> for Payload {
    fn from(bytes: Arc<[u8]>) -> Payload {
        Payload::Bytes(bytes)
    }
}

/// A file on the controller that a [`Payload::File`] streams: its path and the length it
/// had when it was planned (exactly that many bytes are sent, so the streams after it
/// stay in step). A spooled one ([`LocalFile::spool`]) is removed with its last handle.
#[derive(Debug)]
pub struct LocalFile {
    path: PathBuf,
    len: u64,
    /// Keeps a spooled file until the last change streaming it is gone.
    _spool: Option<tempfile::TempPath>,
}

impl LocalFile {
    /// `path`, `len` bytes long.
    pub fn new(path: impl Into<PathBuf>, len: u64) -> LocalFile {
        LocalFile {
            path: path.into(),
            len,
            _spool: None,
        }
    }

    /// `bytes` written to a private temporary file (mode 0600) and dropped from memory:
    /// a big rendered template costs disk, not memory, until its apply.
    pub fn spool(bytes: Vec<u8>) -> std::io::Result<LocalFile> {
        use std::io::Write;
        let mut file = tempfile::Builder::new().prefix("toyc-spool-").tempfile()?;
        file.write_all(&bytes)?;
        file.flush()?;
        let len = bytes.len() as u64;
        drop(bytes);
        let spool = file.into_temp_path();
        Ok(LocalFile {
            path: spool.to_path_buf(),
            len,
            _spool: Some(spool),
        })
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many bytes are streamed.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl PartialEq for LocalFile {
    fn eq(&self, other: &LocalFile) -> bool {
        self.path == other.path && self.len == other.len
    }
}

impl Eq for LocalFile {}

/// An operation that needs no change, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoChange {
    /// The operation, as scripts call it.
    pub operation: String,
    /// What it acts on.
    pub target: String,
    /// Why nothing needs doing: `file /etc/motd already has mode 644`.
    pub reason: String,
}

/// What planning an operation found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Something must change.
    Change(Change),
    /// Already as desired.
    NoChange(NoChange),
}

/// A desired state. Operations never act: given facts they yield an [`Outcome`], and
/// record in `facts` the state their change would leave, so the operations after them
/// plan against that state rather than against the state before the run.
pub trait Operation: Send + Sync + std::fmt::Debug {
    /// The name scripts call it by (`files::directory`).
    fn name(&self) -> &str;
    /// What it acts on, for people.
    fn target(&self) -> &str;
    /// The facts it needs; all operations' facts of a host are asked in one round trip.
    fn facts(&self) -> Vec<FactQuery>;
    /// Compare the desired state with `facts` (updating them for the change), without side effects.
    fn plan(&self, facts: &mut Facts) -> Result<Outcome, String>;
}

/// How one step of an apply script ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepResult {
    /// Index into the changes given to [`ApplyScript::new`].
    pub index: usize,
    /// The step's exit status (0: done).
    pub status: i32,
    /// What the step printed (stdout and stderr, interleaved by the host).
    pub output: String,
}

/// A host's changes as one script: steps run in order, each in a subshell with `set -e`,
/// and the first failure stops the rest (later changes may depend on it).
///
/// The script is one shell (no process per step: on small hosts, process starts are
/// the cost) and one brace group, so the host's shell parses all of it before running
/// any of it: a script cut short in transit is a syntax error and changes nothing.
/// Each step's script is `eval`ed, so a step that does not parse fails alone, with the
/// shell's message as its output. A step's payload is printed by the shell function
/// [`PAYLOAD_FUNCTION`] (`printf` with octal escapes, a builtin; base64 only for mostly
/// binary content); a step that does not call it gets the payload on standard input.
/// A [`Payload::File`] is not in the script: it follows the script on standard input,
/// and [`PAYLOAD_FUNCTION`] copies exactly its length from there (`head -c`, one process
/// per streamed file), so a file's size never counts in the controller's memory.
///
/// The script comes on the shell's standard input ([`ApplyScript::request`]), which toyc
/// holds open until the script ends; a watchdog waits for its end-of-file and then
/// kills the script's process group, so a script whose controller or connection is
/// gone stops instead of making changes nobody will hear of. The process group must be
/// the script's own (sshd and the local transport make it so). With streamed files the
/// watchdog starts after the last of them is read (it would read them itself); before
/// that, a lost controller stops the script at its next streamed file.
#[derive(Debug, Clone)]
pub struct ApplyScript {
    script: String,
    nonce: String,
    steps: usize,
    /// The files streamed after the script, in the order their steps read them.
    streams: Vec<Arc<LocalFile>>,
}

const STEP_MARKER: &str = "@@toyc-step ";

impl ApplyScript {
    /// The script for `changes`, in order, under this run's host lock.
    pub fn new(changes: &[&Change]) -> ApplyScript {
        ApplyScript::locked(changes, &HostLock::for_this_run())
    }

    /// The script for `changes`, in order, taking `lock` before the first step.
    pub fn locked(changes: &[&Change], lock: &HostLock) -> ApplyScript {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let nonce = format!("{nanos:x}{:x}", std::process::id());
        let streams: Vec<Arc<LocalFile>> = changes
            .iter()
            .filter_map(|c| match &c.payload {
                Some(Payload::File(file)) => Some(Arc::clone(file)),
                _ => None,
            })
            .collect();
        // The watchdog reads a copy of stdin (fd 3: a background list's own stdin is
        // /dev/null) and the script's commands get none of it. Streamed files come on
        // that stdin after the script, so with streams the watchdog starts once the last
        // one is read: until then, a step reading a stream that ended early fails, and
        // the script stops there.
        const WATCHDOG: &str = "{ cat <&3; kill -TERM 0; } >/dev/null 2>&1 &\n\
             toyc_watchdog=$!\nexec 3<&-\n";
        const STOP: &str = "[ -z \"$toyc_watchdog\" ] || kill $toyc_watchdog; exit 0";
        let mut script = String::from("{\nexec 2>&1 3<&0 </dev/null\ntoyc_watchdog=\n");
        if streams.is_empty() {
            script.push_str(WATCHDOG);
        }
        script.push_str(&lock.script(&nonce, STOP));
        let mut unread = streams.len();
        for (index, change) in changes.iter().enumerate() {
            script.push_str(&format!("printf '{STEP_MARKER}{nonce} {index} begin\\n'\n"));
            let step = format!("(\nset -e\neval {}\n)", quote(&change.script));
            // Only a streaming step may read the stream (fd 3).
            let no_stream = if unread > 0 { " 3<&-" } else { "" };
            match &change.payload {
                Some(Payload::Bytes(bytes)) => {
                    payload_function(&mut script, bytes, &nonce);
                    if change.script.contains(PAYLOAD_FUNCTION) {
                        script.push_str(&format!("{step} </dev/null{no_stream} 9>&-\n"));
                    } else {
                        script.push_str(&format!("{PAYLOAD_FUNCTION} | {step}{no_stream} 9>&-\n"));
                    }
                    // No later step may print this one's payload.
                    script.push_str(&format!("rc=$?; unset -f {PAYLOAD_FUNCTION}\n"));
                }
                Some(Payload::File(file)) => {
                    // GNU head reads no byte past its count from a pipe: the next
                    // stream starts where this one ends.
                    script.push_str(&format!(
                        "{PAYLOAD_FUNCTION}() {{ head -c {} <&3; }}\n",
                        file.len()
                    ));
                    if change.script.contains(PAYLOAD_FUNCTION) {
                        script.push_str(&format!("{step} </dev/null 9>&-\n"));
                    } else {
                        script.push_str(&format!("{PAYLOAD_FUNCTION} | {step} 9>&-\n"));
                    }
                    script.push_str(&format!("rc=$?; unset -f {PAYLOAD_FUNCTION}\n"));
                    unread -= 1;
                }
                None => script.push_str(&format!("{step} </dev/null{no_stream} 9>&-\nrc=$?\n")),
            }
            script.push_str(&format!(
                "printf '\\n{STEP_MARKER}{nonce} {index} end %d\\n' $rc; [ $rc -eq 0 ] || {{ {STOP}; }}\n"
            ));
            if matches!(change.payload, Some(Payload::File(_))) && unread == 0 {
                script.push_str(WATCHDOG);
            }
        }
        script.push_str("kill $toyc_watchdog\n}\n");
        ApplyScript {
            script,
            nonce,
            steps: changes.len(),
            streams,
        }
    }

    /// What `line` of the script's output says about the host lock, if anything.
    pub fn lock_news(&self, line: &str) -> Option<LockNews> {
        crate::host_lock::news(line, &self.nonce)
    }

    /// The shell text to run on the host.
    pub fn script(&self) -> &str {
        &self.script
    }

    /// The request that runs the script: the script on standard input, held open for
    /// the watchdog, and the streamed files after it. The text moves into it
    /// ([`ApplyScript::parse`] still works).
    ///
    /// `sh -s` reads its script from a pipe in blocks, past its end, into the streams;
    /// so with streams, `head -c` (which does not) reads exactly the script, and the
    /// shell `eval`s it: still parsed whole before any of it runs, and never on a
    /// command line. That costs one process (`head`) instead of the exec of `sh`.
    pub fn request(&mut self) -> ExecRequest {
        let script = self.take_script().into_bytes();
        let command = if self.streams.is_empty() {
            "exec sh -s".to_owned()
        } else {
            format!("eval \"$(head -c {})\"", script.len())
        };
        ExecRequest {
            command,
            stdin: Some(script),
            stdin_files: self
                .streams
                .iter()
                .map(|f| (f.path().to_owned(), f.len()))
                .collect(),
            hold_stdin: true,
            ..ExecRequest::default()
        }
    }

    /// The shell text, moved out rather than copied ([`ApplyScript::parse`] still works;
    /// [`ApplyScript::script`] is empty afterwards).
    pub(crate) fn take_script(&mut self) -> String {
        std::mem::take(&mut self.script)
    }

    /// What one `line` of the script's output says about its steps, if it is a marker:
    /// for reading the steps' ends as they arrive rather than at the end.
    pub fn step_news(&self, line: &str) -> Option<StepNews> {
        let rest = line.strip_prefix(STEP_MARKER)?.strip_prefix(&self.nonce)?;
        match rest.trim_start().split(' ').collect::<Vec<_>>().as_slice() {
            [index, "begin"] => index.parse().ok().map(StepNews::Begin),
            [index, "end", status] => Some(StepNews::End(
                index.parse().ok()?,
                status.trim().parse().unwrap_or(-1),
            )),
            _ => None,
        }
    }

    /// The results of the steps that ran, in order. A step that began but has no end
    /// (the connection broke) is reported with status -1; steps after a failure are absent.
    pub fn parse(&self, output: &str) -> Vec<StepResult> {
        let prefix = format!("{STEP_MARKER}{} ", self.nonce);
        let mut results: Vec<StepResult> = Vec::new();
        let mut open: Option<StepResult> = None;
        for line in output.split('\n') {
            match line
                .strip_prefix(&prefix)
                .map(|rest| rest.split(' ').collect::<Vec<_>>())
                .as_deref()
            {
                Some([index, "begin"]) => {
                    if let Ok(index) = index.parse() {
                        open = Some(StepResult {
                            index,
                            status: -1,
                            output: String::new(),
                        });
                    }
                }
                Some([_, "end", status]) => {
                    if let Some(mut step) = open.take() {
                        step.status = status.parse().unwrap_or(-1);
                        step.output = step.output.trim_end_matches('\n').to_owned();
                        results.push(step);
                    }
                }
                _ => {
                    if let Some(step) = open.as_mut() {
                        step.output.push_str(line);
                        step.output.push('\n');
                    }
                }
            }
        }
        results.extend(open);
        debug_assert!(results.len() <= self.steps);
        results
    }
}

/// A step marker of an [`ApplyScript`]'s output ([`ApplyScript::step_news`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepNews {
    /// The step with this index began.
    Begin(usize),
    /// The step with this index ended with this exit status.
    End(usize, i32),
}

/// The definition of [`PAYLOAD_FUNCTION`] printing `bytes`: a `printf` of the bytes as
/// they are (text) with octal escapes for the rest, or, when escapes would make that
/// more than twice as long as the bytes, `base64 -d` of a here-document.
fn payload_function(script: &mut String, bytes: &[u8], nonce: &str) {
    // Written into the script in place: for a big file, every transient copy counts,
    // once per host applying at once.
    match printf_format(bytes) {
        Some(format) => {
            script.push_str(&format!("{PAYLOAD_FUNCTION}() {{ printf '"));
            // A format starting with `-` is read as an option (`printf: Illegal option
            // -X` from dash for a jvm.options file): its first byte as an escape instead.
            match format.strip_prefix('-') {
                Some(rest) => {
                    script.push_str("\\055");
                    script.push_str(rest);
                }
                None => script.push_str(&format),
            }
            script.push_str("'; }\n");
        }
        None => {
            script.push_str(&format!(
                "{PAYLOAD_FUNCTION}() {{\nbase64 -d <<'TOYC_PAYLOAD_{nonce}'\n"
            ));
            push_base64(script, bytes);
            script.push_str(&format!("TOYC_PAYLOAD_{nonce}\n}}\n"));
        }
    }
}

/// `bytes` as the inside of a single-quoted `printf` format that prints exactly them:
/// `%` and `\` doubled, `'` closing and reopening the quote, UTF-8 text and newlines
/// as they are, every other byte as a three-digit octal escape (which dash, bash and
/// busybox read alike). `None` when that is more than twice as long as `bytes`.
pub fn printf_format(bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok();
    let limit = 2 * bytes.len() + 16;
    // Checked as it grows, and binary content (mostly escapes from its first bytes on)
    // gives up at once: not after building four times its size.
    if text.is_none() && bytes.iter().take(4096).filter(|b| !b.is_ascii()).count() > 1024 {
        return None;
    }
    let mut out = String::with_capacity(bytes.len() + bytes.len() / 8 + 8);
    match text {
        Some(text) => {
            for c in text.chars() {
                match c {
                    '%' => out.push_str("%%"),
                    '\\' => out.push_str("\\\\"),
                    '\'' => out.push_str("'\\''"),
                    '\n' | '\t' | ' '..='~' => out.push(c),
                    c if !c.is_control() && !c.is_ascii() => out.push(c),
                    c => {
                        let mut buf = [0u8; 4];
                        for b in c.encode_utf8(&mut buf).bytes() {
                            push_octal(&mut out, b);
                        }
                    }
                }
                if out.len() > limit {
                    return None;
                }
            }
        }
        None => {
            for &b in bytes {
                match b {
                    b'%' => out.push_str("%%"),
                    b'\\' => out.push_str("\\\\"),
                    b'\'' => out.push_str("'\\''"),
                    b'\n' | b'\t' | b' '..=b'~' => out.push(char::from(b)),
                    b => push_octal(&mut out, b),
                }
                if out.len() > limit {
                    return None;
                }
            }
        }
    }
    (out.len() <= limit).then_some(out)
}

fn push_octal(out: &mut String, byte: u8) {
    out.push_str(&format!("\\{byte:03o}"));
}

/// Standard base64, wrapped at 76 columns like coreutils prints it (short lines keep
/// the heredoc it travels in friendly to any shell).
pub fn encode_base64(bytes: &[u8]) -> String {
    let mut out = String::new();
    push_base64(&mut out, bytes);
    out
}

/// [`encode_base64`] of `bytes`, appended to `out` without an intermediate copy.
fn push_base64(out: &mut String, bytes: &[u8]) {
    use base64::Engine;
    if bytes.is_empty() {
        out.push('\n');
        return;
    }
    out.reserve(bytes.len().div_ceil(57) * 77);
    // 57 bytes make one 76-column line.
    for line in bytes.chunks(57) {
        base64::engine::general_purpose::STANDARD.encode_string(line, out);
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::{LocalTransport, Transport};

    fn change(script: &str, payload: Option<&[u8]>) -> Change {
        Change {
            operation: "test::op".into(),
            target: "t".into(),
            kind: ChangeKind::Run,
            summary: String::new(),
            diff: None,
            script: script.into(),
            payload: payload.map(Payload::from),
        }
    }

    fn apply(changes: &[Change]) -> Vec<StepResult> {
        let refs: Vec<&Change> = changes.iter().collect();
        let mut apply = ApplyScript::new(&refs);
        let request = apply.request();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let output = runtime
            .block_on(LocalTransport::new("localhost").exec(&request, None))
            .expect("one round trip");
        apply.parse(&output.stdout_text())
    }

    #[test]
    fn steps_run_in_order_and_stop_at_the_first_failure() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("log");
        let l = log.display();
        let results = apply(&[
            change(&format!("echo one >> {l}"), None),
            change(
                &format!("echo two >> {l}; false; echo not-after-false >> {l}"),
                None,
            ),
            change(&format!("echo three >> {l}"), None),
        ]);
        assert_eq!(std::fs::read_to_string(&log).expect("log"), "one\ntwo\n");
        assert_eq!(results.len(), 2);
        assert_eq!((results[0].index, results[0].status), (0, 0));
        assert_eq!((results[1].index, results[1].status), (1, 1));
    }

    #[test]
    fn payloads_arrive_byte_for_byte_on_stdin() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out");
        let bytes: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        let results = apply(&[
            change(&format!("cat > {}", out.display()), Some(&bytes)),
            change("echo said this", None),
        ]);
        assert_eq!(std::fs::read(&out).expect("written"), bytes);
        assert_eq!(results[1].output, "said this");
    }

    #[test]
    fn a_step_can_print_its_payload_without_stdin_and_the_next_one_cannot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out");
        let text = "50% off\\n 'quoted' \"double\" \\ back\ttab\r\u{e9}t\u{e9} \u{1f600}\n";
        let results = apply(&[
            change(
                &format!("{PAYLOAD_FUNCTION} > {}; cat", out.display()),
                Some(text.as_bytes()),
            ),
            change(&format!("{PAYLOAD_FUNCTION} || echo gone"), None),
        ]);
        assert_eq!(std::fs::read_to_string(&out).expect("written"), text);
        assert_eq!((results[0].status, results[0].output.as_str()), (0, ""));
        assert_eq!(results[1].output.lines().last(), Some("gone"));
    }

    #[test]
    fn every_byte_survives_the_payload_function() {
        let binary: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
        let mostly_text: Vec<u8> =
            b"text\x00with a NUL and \xff invalid UTF-8 %s \\0101\n".to_vec();
        assert!(printf_format(&binary).is_none(), "binary goes as base64");
        assert!(
            printf_format(&mostly_text).is_some(),
            "text goes through printf"
        );
        for bytes in [binary, mostly_text, Vec::new()] {
            let dir = tempfile::tempdir().expect("tempdir");
            let out = dir.path().join("out");
            let results = apply(&[change(
                &format!("{PAYLOAD_FUNCTION} > {}", out.display()),
                Some(&bytes),
            )]);
            assert_eq!(results[0].status, 0, "{}", results[0].output);
            assert_eq!(std::fs::read(&out).expect("written"), bytes);
        }
    }

    #[test]
    fn a_script_cut_short_runs_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("log");
        let first = change(&format!("echo one >> {}", log.display()), None);
        let second = change("true", Some(&[b'x'; 4000]));
        let apply = ApplyScript::new(&[&first, &second]);
        let text = apply.script();
        for cut in [text.len() / 2, text.len() - 3] {
            use std::io::Write;
            let mut sh = std::process::Command::new("sh")
                .arg("-s")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("sh runs");
            sh.stdin
                .take()
                .expect("stdin")
                .write_all(&text.as_bytes()[..cut])
                .expect("write");
            let output = sh.wait_with_output().expect("sh ends");
            assert!(!output.status.success());
            assert!(apply
                .parse(&String::from_utf8_lossy(&output.stdout))
                .is_empty());
            assert!(!log.exists(), "nothing ran from a script cut at {cut}");
        }
    }

    /// A change writing `dest` atomically from a streamed local file, checked by sha256.
    fn streamed(dest: &std::path::Path, local: &std::path::Path) -> Change {
        let len = std::fs::metadata(local).expect("stat the local file").len();
        let sum = std::process::Command::new("sha256sum")
            .arg(local)
            .output()
            .expect("sha256sum runs");
        let sha = String::from_utf8_lossy(&sum.stdout)
            .split(' ')
            .next()
            .unwrap_or_default()
            .to_owned();
        let options = crate::transport::PutOptions {
            sha256: Some(sha),
            ..crate::transport::PutOptions::default()
        };
        Change {
            payload: Some(Payload::File(Arc::new(LocalFile::new(local, len)))),
            ..change(
                &crate::transport::atomic_write(dest.to_str().expect("utf-8 path"), None, &options),
                None,
            )
        }
    }

    #[test]
    fn streamed_files_arrive_byte_for_byte_between_inline_steps() {
        let dir = tempfile::tempdir().expect("tempdir");
        let big: Vec<u8> = (0..3u32 << 20).map(|i| ((i * 7) >> 3) as u8).collect();
        let other: Vec<u8> = (0..2u32 << 20).map(|i| ((i * 13) >> 5) as u8).collect();
        std::fs::write(dir.path().join("big"), &big).expect("write");
        std::fs::write(dir.path().join("other"), &other).expect("write");
        let out = |name: &str| dir.path().join(name);
        let results = apply(&[
            streamed(&out("big.out"), &out("big")),
            change(
                &format!("cat > {}", out("small").display()),
                Some(b"small\n"),
            ),
            change("cat <&3 2>&1 || echo no stream here", None),
            streamed(&out("other.out"), &out("other")),
            change("echo last", None),
        ]);
        assert_eq!(results.len(), 5, "{results:?}");
        assert!(results.iter().all(|r| r.status == 0), "{results:?}");
        assert_eq!(std::fs::read(out("big.out")).expect("written"), big);
        assert_eq!(std::fs::read(out("other.out")).expect("written"), other);
        assert_eq!(std::fs::read(out("small")).expect("written"), b"small\n");
        assert!(results[2].output.contains("no stream here"), "{results:?}");
        assert_eq!(results[4].output, "last");
    }

    #[test]
    fn a_streamed_file_changed_since_planning_leaves_the_old_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let local = dir.path().join("local");
        let dest = dir.path().join("dest");
        std::fs::write(&local, vec![b'a'; 2 << 20]).expect("write");
        std::fs::write(&dest, "old").expect("write");
        let planned = streamed(&dest, &local);
        // Same length, other bytes; then shorter than planned.
        std::fs::write(&local, vec![b'b'; 2 << 20]).expect("write");
        let results = apply(&[planned.clone(), change("echo not reached", None)]);
        assert_eq!(results.len(), 1, "{results:?}");
        assert_ne!(results[0].status, 0);
        assert!(
            results[0].output.contains("changed since it was planned"),
            "{results:?}"
        );
        std::fs::write(&local, vec![b'a'; 1 << 20]).expect("write");
        let results = apply(&[planned]);
        assert_ne!(results[0].status, 0, "{results:?}");
        assert_eq!(std::fs::read(&dest).expect("read"), b"old");
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("ls").count(),
            2,
            "no temporary left"
        );
    }

    #[test]
    fn a_step_that_does_not_parse_fails_alone() {
        let results = apply(&[change("echo fine", None), change("if then fi", None)]);
        assert_eq!((results[0].status, results[0].output.as_str()), (0, "fine"));
        assert_eq!(results[1].status, 2);
        assert!(
            results[1].output.contains("yntax error"),
            "{}",
            results[1].output
        );
    }

    #[test]
    fn base64_matches_coreutils() {
        for len in [0, 1, 2, 3, 56, 57, 58, 200] {
            let bytes: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(37)).collect();
            let mut child = std::process::Command::new("base64")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("base64 runs");
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(&bytes)
                .expect("write");
            let expected =
                String::from_utf8(child.wait_with_output().expect("output").stdout).expect("utf-8");
            let ours = encode_base64(&bytes);
            assert_eq!(ours.trim_end(), expected.trim_end(), "length {len}");
        }
    }
}
