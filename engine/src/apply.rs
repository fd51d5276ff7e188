//! A host's operations, planned and applied in the fewest round trips: one to ask every
//! fact the operations need ([`gather_facts`], then [`plan_operation`] for each), one to
//! make every change ([`apply_within`]). [`crate::rollout`] is their one caller.

use std::sync::Arc;

use crate::facts::{FactBatch, FactQuery, Facts};
use crate::host_lock::{HostLock, LockNews};
use crate::plan::{ApplyScript, Change, Operation, Outcome, StepResult};
use crate::transport::{ExecRequest, Transport, TransportError};

/// Why a host could not be planned or applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// The host could not be asked or told.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The host was lost (or the changes timed out or were cancelled) after it
    /// reported some steps: those steps ran, the rest are unknown.
    #[error("{source} (after {} step(s) reported)", .steps.len())]
    Interrupted {
        /// The steps the host reported before it went, in order.
        steps: Vec<StepResult>,
        /// How it went.
        #[source]
        source: TransportError,
    },
    /// Another run held the host's apply lock for longer than this one would wait.
    /// Resolution: let that run end, or wait longer (`TOYC_LOCK_TIMEOUT`, seconds).
    #[error(
        "gave up after {waited}s waiting for the apply lock on `{host}`, held by {holder}; \
         nothing was changed. Let that run end, or wait longer with TOYC_LOCK_TIMEOUT=SECONDS"
    )]
    LockTimeout {
        /// The host.
        host: String,
        /// Who held the lock, as it wrote itself down.
        holder: String,
        /// How long this run waited, in seconds.
        waited: u64,
    },
    /// The facts script failed or answered nonsense.
    #[error("gathering facts failed: {0}")]
    Facts(String),
    /// An operation could not be planned (e.g. a line edit on a missing file).
    #[error("`{operation}` on `{target}`: {reason}")]
    Operation {
        /// The operation's name.
        operation: String,
        /// What it acts on.
        target: String,
        /// Why.
        reason: String,
    },
}

/// Every fact `operations` need; with `contents`, also each target's content (for diffs).
pub fn fact_queries<'a>(
    operations: impl Iterator<Item = &'a Arc<dyn Operation>> + Clone,
    contents: bool,
) -> Vec<FactQuery> {
    let mut queries: Vec<FactQuery> = operations.clone().flat_map(|op| op.facts()).collect();
    if contents {
        // Only paths have content: a user name or a command does not.
        queries.extend(
            operations
                .map(|op| op.target())
                .filter(|target| target.starts_with('/'))
                .map(|target| FactQuery::Content(target.to_owned())),
        );
    }
    queries
}

/// Plan one operation against `facts` (which it updates with the state it leaves).
pub fn plan_operation(op: &dyn Operation, facts: &mut Facts) -> Result<Outcome, ApplyError> {
    op.plan(facts).map_err(|reason| ApplyError::Operation {
        operation: op.name().to_owned(),
        target: op.target().to_owned(),
        reason,
    })
}

/// Ask `queries` of the host in one round trip (none when there are none).
pub async fn gather_facts(
    transport: &dyn Transport,
    queries: &[FactQuery],
    sudo: bool,
) -> Result<Facts, ApplyError> {
    let batch = FactBatch::new(queries.to_vec());
    if batch.is_empty() {
        return Ok(Facts::default());
    }
    let script = batch.script();
    // A command line arrives whole or not at all, and costs the host no extra
    // processes; only a script too long for one argument goes through stdin.
    let request = if fits_inline(&script) {
        ExecRequest {
            command: script,
            sudo,
            ..ExecRequest::default()
        }
    } else {
        ExecRequest {
            command: run_from_stdin(script.len()),
            stdin: Some(script.into_bytes()),
            sudo,
            ..ExecRequest::default()
        }
    };
    let output = transport.exec(&request, None).await?;
    if output.status != 0 {
        return Err(ApplyError::Facts(format!(
            "exit status {}: {}",
            output.status,
            output.stderr_text().trim()
        )));
    }
    batch
        .parse(&output.stdout_text())
        .map_err(ApplyError::Facts)
}

/// Make `changes` in one round trip (each step's result comes back), killing them on the host when they take longer than `timeout`.
pub async fn apply_within(
    transport: &dyn Transport,
    changes: &[&Change],
    sudo: bool,
    timeout: Option<std::time::Duration>,
) -> Result<Vec<StepResult>, ApplyError> {
    apply_telling(transport, changes, sudo, timeout, &|_| {}).await
}

/// [`apply_within`], calling `waiting` with the holder when another run holds the host's
/// apply lock (see [`crate::host_lock`]) and this one waits for it.
pub async fn apply_telling(
    transport: &dyn Transport,
    changes: &[&Change],
    sudo: bool,
    timeout: Option<std::time::Duration>,
    waiting: &(dyn Fn(&str) + Send + Sync),
) -> Result<Vec<StepResult>, ApplyError> {
    if changes.is_empty() {
        return Ok(Vec::new());
    }
    let lock = HostLock::for_this_run();
    let mut script = ApplyScript::locked(changes, &lock);
    // Always on stdin, never the command line: file contents and environment values are
    // in the script, and any user of the host reads command lines (`ps -eo args`). The
    // script is one brace group, which the host's shell reads whole before it runs any
    // of it, so a transfer cut short is a syntax error and changes nothing.
    // The text moves into the request: with every host applying at once, each copy of
    // the scripts (file contents inside) counts in the controller's memory.
    let request = ExecRequest {
        sudo,
        timeout,
        ..script.request()
    };
    // The output as it arrives: the lock's news is told at once, and when the connection
    // is lost, the steps the host reported before it went are still known, and counted.
    let (lines, mut arrived) = tokio::sync::mpsc::unbounded_channel();
    let mut text = String::new();
    let mut timed_out = None;
    // Beyond the output cap only the markers are kept: the exec fails then, and what
    // counts is which steps ended.
    let limit = crate::transport::max_output();
    let mut take = |line: &str, text: &mut String| {
        match script.lock_news(line) {
            Some(LockNews::Waiting(holder)) => waiting(&holder),
            Some(LockNews::TimedOut(holder)) => timed_out = Some(holder),
            None => {}
        }
        if text.len() < limit || line.starts_with("@@toyc-") {
            text.push_str(line);
            text.push('\n');
        }
    };
    let result = {
        let exec = transport.exec(&request, Some(&lines));
        tokio::pin!(exec);
        loop {
            tokio::select! {
                result = &mut exec => break result,
                Some((_, line)) = arrived.recv() => take(&line, &mut text),
            }
        }
    };
    drop(lines);
    while let Ok((_, line)) = arrived.try_recv() {
        take(&line, &mut text);
    }
    if let Some(holder) = timed_out {
        return Err(ApplyError::LockTimeout {
            host: transport.host().to_owned(),
            holder,
            waited: lock.wait.as_secs(),
        });
    }
    match result {
        Ok(output) => Ok(script.parse(&output.stdout_text())),
        Err(source) => {
            // A step that began but has no end did not finish: not reported as made.
            let steps: Vec<StepResult> = script
                .parse(&text)
                .into_iter()
                .filter(|step| step.status != -1)
                .collect();
            if steps.is_empty() {
                Err(ApplyError::Transport(source))
            } else {
                Err(ApplyError::Interrupted { steps, source })
            }
        }
    }
}

/// The longest script sent as the command itself: Linux caps one argument at 128 KiB,
/// and the command is wrapped and quoted once more on its way.
const INLINE_SCRIPT_LIMIT: usize = 32 * 1024;

/// Whether `script` can be the command itself once wrapped: each quoting on its way
/// (the transport's `sh -c`, and sudo's) turns a `'` into `'\''`, so quotes count
/// 16 times.
fn fits_inline(script: &str) -> bool {
    script.len() + 15 * script.matches('\'').count() <= INLINE_SCRIPT_LIMIT
}

/// A small command that reads a script of `len` bytes from stdin and runs it only if
/// all of it arrived. The script cannot be the command itself: Linux caps one argument
/// at 128 KiB and file contents travel inside it; and a script cut short by a dropped
/// connection must not run half-way.
fn run_from_stdin(len: usize) -> String {
    format!(
        "t=$(mktemp) || exit 1; trap 'rm -f \"$t\"' EXIT; cat > \"$t\"; \
         if [ \"$(wc -c < \"$t\")\" -eq {len} ]; then sh \"$t\"; else echo 'toyc: changes cut short in transit, none made' >&2; exit 1; fi"
    )
}

/// The changes among `outcomes`, in order.
pub fn changes(outcomes: &[Outcome]) -> Vec<&Change> {
    outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Change(c) => Some(c),
            Outcome::NoChange(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plan `operations` in order against facts asked in one round trip.
    async fn plan_host(
        transport: &dyn Transport,
        operations: &[Arc<dyn Operation>],
        contents: bool,
        sudo: bool,
    ) -> Result<Vec<Outcome>, ApplyError> {
        let queries = fact_queries(operations.iter(), contents);
        let mut facts = gather_facts(transport, &queries, sudo).await?;
        operations
            .iter()
            .map(|op| plan_operation(op.as_ref(), &mut facts))
            .collect()
    }

    /// Make `changes` in one round trip, with no timeout.
    async fn apply_host(
        transport: &dyn Transport,
        changes: &[&Change],
        sudo: bool,
    ) -> Result<Vec<StepResult>, ApplyError> {
        apply_within(transport, changes, sudo, None).await
    }
    use crate::facts::{Fact, PathFact};
    use crate::plan::{ChangeKind, NoChange};
    use crate::transport::LocalTransport;

    /// A minimal operation: "this file exists".
    #[derive(Debug)]
    struct Touch(String);

    impl Operation for Touch {
        fn name(&self) -> &str {
            "test::touch"
        }
        fn target(&self) -> &str {
            &self.0
        }
        fn facts(&self) -> Vec<FactQuery> {
            vec![FactQuery::Path(self.0.clone())]
        }
        fn plan(&self, facts: &mut Facts) -> Result<Outcome, String> {
            match facts.path(&self.0) {
                Some(PathFact::Absent) => {
                    facts.record(
                        FactQuery::Path(self.0.clone()),
                        Fact::Path(PathFact::File {
                            mode: "644".into(),
                            owner: "root".into(),
                            group: "root".into(),
                            size: 0,
                            sha256: String::new(),
                        }),
                    );
                    Ok(Outcome::Change(Change {
                        operation: self.name().into(),
                        target: self.0.clone(),
                        kind: ChangeKind::Create,
                        summary: "create".into(),
                        diff: None,
                        script: format!("touch {}", crate::transport::quote(&self.0)),
                        payload: None,
                    }))
                }
                Some(_) => Ok(Outcome::NoChange(NoChange {
                    operation: self.name().into(),
                    target: self.0.clone(),
                    reason: "exists".into(),
                })),
                None => Err("fact missing".into()),
            }
        }
    }

    #[test]
    fn a_payload_larger_than_one_command_argument_is_applied() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("big");
        let bytes: Vec<u8> = (0..=255u8).cycle().take(1 << 20).collect();
        let change = Change {
            operation: "test::put".into(),
            target: dest.display().to_string(),
            kind: ChangeKind::Create,
            summary: String::new(),
            diff: None,
            script: format!(
                "cat > {}",
                crate::transport::quote(&dest.display().to_string())
            ),
            payload: Some(bytes.clone().into()),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let results = runtime
            .block_on(apply_host(
                &LocalTransport::new("localhost"),
                &[&change],
                false,
            ))
            .expect("applies");
        assert_eq!(results[0].status, 0, "{}", results[0].output);
        assert_eq!(std::fs::read(&dest).expect("written"), bytes);
    }

    #[test]
    fn plan_apply_then_nothing_left_to_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x").to_string_lossy().into_owned();
        let ops: Vec<Arc<dyn Operation>> =
            vec![Arc::new(Touch(path.clone())), Arc::new(Touch(path.clone()))];
        let transport = LocalTransport::new("localhost");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let outcomes = plan_host(&transport, &ops, false, false)
                .await
                .expect("plans");
            // The second operation sees the state the first one will leave.
            assert!(matches!(outcomes[0], Outcome::Change(_)));
            assert!(matches!(outcomes[1], Outcome::NoChange(_)));
            let results = apply_host(&transport, &changes(&outcomes), false)
                .await
                .expect("applies");
            assert_eq!(results.len(), 1);
            assert_eq!(results[0].status, 0);
            let again = plan_host(&transport, &ops, false, false)
                .await
                .expect("plans");
            assert!(changes(&again).is_empty());
        });
        assert!(std::path::Path::new(&path).exists());
    }
}
