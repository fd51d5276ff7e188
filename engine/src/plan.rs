//! Plans as data: what each operation found (a [`Change`] or a reasoned no-change), and
//! how a host's changes travel: **one** shell script per host and stage, with file
//! contents inline, that reports each step's result. Nothing here touches a host; the
//! runner sends [`ApplyScript::script`] and reads the answer with [`ApplyScript::parse`].

use serde::{Deserialize, Serialize};

use crate::facts::{FactQuery, Facts};
use crate::transport::quote;

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
    /// is on its standard input (see [`Change::payload`]).
    pub script: String,
    /// Bytes fed to `script`'s standard input (file content).
    #[serde(skip)]
    pub payload: Option<Vec<u8>>,
}

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
#[derive(Debug, Clone)]
pub struct ApplyScript {
    script: String,
    nonce: String,
    steps: usize,
}

const STEP_MARKER: &str = "@@toyc-step ";

impl ApplyScript {
    /// The script for `changes`, in order.
    pub fn new(changes: &[&Change]) -> ApplyScript {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let nonce = format!("{nanos:x}{:x}", std::process::id());
        let mut script = String::from("exec 2>&1\n");
        for (index, change) in changes.iter().enumerate() {
            script.push_str(&format!("printf '{STEP_MARKER}{nonce} {index} begin\\n'\n"));
            let body = format!("set -e\n{}", change.script);
            match &change.payload {
                // The content travels inside the script as base64 (binary-safe, one stream),
                // decoded straight into the step's standard input.
                Some(bytes) => script.push_str(&format!(
                    "base64 -d <<'TOYC_PAYLOAD_{nonce}' | sh -c {}\n{}TOYC_PAYLOAD_{nonce}\n",
                    quote(&body),
                    encode_base64(bytes)
                )),
                None => script.push_str(&format!("sh -c {} </dev/null\n", quote(&body))),
            }
            script.push_str(&format!(
                "rc=$?; printf '\\n{STEP_MARKER}{nonce} {index} end %d\\n' $rc; [ $rc -eq 0 ] || exit 0\n"
            ));
        }
        ApplyScript {
            script,
            nonce,
            steps: changes.len(),
        }
    }

    /// The shell text to run on the host.
    pub fn script(&self) -> &str {
        &self.script
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

/// Standard base64, wrapped at 76 columns like coreutils prints it (short lines keep
/// the heredoc it travels in friendly to any shell).
pub fn encode_base64(bytes: &[u8]) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut out = String::with_capacity(encoded.len() + encoded.len() / 76 + 1);
    for line in encoded.as_bytes().chunks(76) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    if encoded.is_empty() {
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::{ExecRequest, LocalTransport, Transport};

    fn change(script: &str, payload: Option<&[u8]>) -> Change {
        Change {
            operation: "test::op".into(),
            target: "t".into(),
            kind: ChangeKind::Run,
            summary: String::new(),
            diff: None,
            script: script.into(),
            payload: payload.map(<[u8]>::to_vec),
        }
    }

    fn apply(changes: &[Change]) -> Vec<StepResult> {
        let refs: Vec<&Change> = changes.iter().collect();
        let apply = ApplyScript::new(&refs);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let output = runtime
            .block_on(
                LocalTransport::new("localhost").exec(&ExecRequest::new(apply.script()), None),
            )
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
