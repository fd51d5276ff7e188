//! The record each host keeps of its last successful apply of a role (role, commit, repo,
//! and the host's own time of the apply), in the login user's state directory on the host:
//! written after an apply, read back by [`super::status`]. One round trip each.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::run::AfterApply;
use crate::transport::{
    atomic_write, describe_failure, quote, ExecRequest, PutOptions, Transport, TransportError,
};

/// Where a host keeps its records, relative to the login user's home (or XDG state dir).
pub const HOST_RECORDS: &str = "${XDG_STATE_HOME:-$HOME/.local/state}/toyc/roles";

/// How long writing or reading a record may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// What a host keeps about its last successful apply of a role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The role.
    pub role: String,
    /// The commit applied.
    pub commit: String,
    /// The role's repo (without any password or token).
    pub repo: String,
    /// When, by the host's clock (`YYYY-MM-DDTHH:MM:SSZ`); filled in by the host on write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_at: Option<String>,
}

/// Why a record could not be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The command could not be run on the host.
    #[error("unable to {action} the applied commit: {source}")]
    Transport {
        /// `record` or `read`.
        action: &'static str,
        /// What the transport said.
        #[source]
        source: TransportError,
    },
    /// The command ran and failed (a full disk, a read-only home).
    #[error("unable to record the applied commit: {0}")]
    Failed(String),
}

impl Record {
    /// Write the record atomically on the host behind `transport`, with the host's clock
    /// for [`Record::applied_at`].
    pub async fn write(&self, transport: &dyn Transport) -> Result<(), RecordError> {
        self.write_in(HOST_RECORDS, transport).await
    }

    /// The record as a run's after-apply hook: each host that applied writes it over the
    /// connection the run already holds, then `then` runs for that host (a store's
    /// bookkeeping, say). An error fails the host ("applied, but ...").
    pub fn after_apply(self, then: Option<AfterApply>) -> AfterApply {
        let record = Arc::new(self);
        Arc::new(move |host: String, transport: Arc<dyn Transport>| {
            let record = Arc::clone(&record);
            let then = then.clone();
            Box::pin(async move {
                record
                    .write(transport.as_ref())
                    .await
                    .map_err(|e| format!("applied, but {e}"))?;
                match then {
                    Some(then) => then(host, transport).await,
                    None => Ok(()),
                }
            }) as Pin<Box<dyn Future<Output = Result<(), String>> + Send>>
        })
    }

    /// [`Record::write`] into `dir` (a shell word inside double quotes).
    async fn write_in(&self, dir: &str, transport: &dyn Transport) -> Result<(), RecordError> {
        let record = Record {
            applied_at: None,
            ..self.clone()
        };
        let mut json =
            serde_json::to_string(&record).map_err(|e| RecordError::Failed(e.to_string()))?;
        json.pop(); // the closing brace: the time goes in on the host.
        let write = atomic_write(
            &format!("{}.json", self.role),
            None,
            &PutOptions {
                mode: Some("0644".into()),
                ..PutOptions::default()
            },
        );
        let command = format!(
            "d=\"{dir}\" && mkdir -p \"$d\" && cd \"$d\" && printf '%s,\"applied_at\":\"%s\"}}\\n' {} \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\" | (\n{write}\n)",
            quote(&json)
        );
        let mut request = ExecRequest::new(command);
        request.timeout = Some(TIMEOUT);
        let output =
            transport
                .exec(&request, None)
                .await
                .map_err(|source| RecordError::Transport {
                    action: "record",
                    source,
                })?;
        if output.status == 0 {
            Ok(())
        } else {
            Err(RecordError::Failed(describe_failure(
                "writing the role record",
                &output,
            )))
        }
    }

    /// The host's record of `role`; `None` when it never applied it (or the record is
    /// not one toyc wrote).
    pub async fn read(
        role: &str,
        transport: &dyn Transport,
    ) -> Result<Option<Record>, RecordError> {
        Record::read_in(HOST_RECORDS, role, transport).await
    }

    /// [`Record::read`] from `dir` (a shell word inside double quotes).
    async fn read_in(
        dir: &str,
        role: &str,
        transport: &dyn Transport,
    ) -> Result<Option<Record>, RecordError> {
        let mut request = ExecRequest::new(format!("cat \"{dir}/{role}.json\" 2>/dev/null || :"));
        request.timeout = Some(TIMEOUT);
        let output =
            transport
                .exec(&request, None)
                .await
                .map_err(|source| RecordError::Transport {
                    action: "read",
                    source,
                })?;
        Ok(serde_json::from_str(output.stdout_text().trim()).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::LocalTransport;

    #[tokio::test]
    async fn a_record_written_reads_back_with_the_hosts_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let records = dir.path().join("toyc/roles");
        let records = records.to_str().expect("utf-8");
        let transport = LocalTransport::new("localhost");
        let record = Record {
            role: "web".into(),
            commit: "0123abcd".into(),
            repo: "file:///srv/git/web.git".into(),
            applied_at: None,
        };
        let read = Record::read_in(records, "web", &transport).await;
        assert_eq!(read.expect("read"), None);
        record.write_in(records, &transport).await.expect("written");
        let read = Record::read_in(records, "web", &transport)
            .await
            .expect("read")
            .expect("a record");
        assert_eq!(read.commit, "0123abcd");
        assert_eq!(read.repo, "file:///srv/git/web.git");
        assert!(read.applied_at.is_some_and(|t| t.ends_with('Z')));
        let on_disk = std::fs::read_to_string(dir.path().join("toyc/roles/web.json"))
            .expect("the record is a file");
        assert!(
            on_disk.starts_with(r#"{"role":"web","commit":"0123abcd""#),
            "{on_disk}"
        );
    }
}
