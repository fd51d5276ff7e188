//! What `toyc supervise` keeps about its programs, so that a supervisor killed with
//! `kill -9` and started again knows what it ran: the deployed, previous and bad commits,
//! the restart count, the process group it left behind (to reap it) and the last deploy.
//!
//! A trait of its own, [`ProgramStore`], beside [`crate::Store`]: the supervisor needs
//! none of the queue, and the daemon none of this. Both backends implement it on the
//! same handle; its tables are created when a store is opened (`IF NOT EXISTS`, so a
//! store made before they existed gets them too).

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{now_ms, PostgresStore, SqliteStore, StoreError};

/// The SQLite tables. A program's record is one JSON document: the supervisor reads and
/// writes it whole, and its fields can grow without a migration.
pub(crate) const SQLITE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS supervised_programs (
    name TEXT PRIMARY KEY,
    record TEXT NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS supervised_bad_commits (
    program TEXT NOT NULL,
    commit_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (program, commit_id)
);
";

/// The PostgreSQL tables, the same as [`SQLITE_SCHEMA`].
pub(crate) const POSTGRES_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS supervised_programs (
    name TEXT PRIMARY KEY,
    record TEXT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS supervised_bad_commits (
    program TEXT NOT NULL,
    commit_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    PRIMARY KEY (program, commit_id)
);
";

/// What the supervisor knows of one program between its own lives.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProgramRecord {
    /// The program's name (its config file's name without the extension).
    pub name: String,
    /// The commit running now, or that runs when the program is started.
    #[serde(default)]
    pub deployed: Option<String>,
    /// The commit deployed before it: where a failed health check rolls back to.
    #[serde(default)]
    pub previous: Option<String>,
    /// How many times the program was restarted after it exited.
    #[serde(default)]
    pub restarts: i64,
    /// The running process's pid, which is also its process group's id; `None` when
    /// none runs.
    #[serde(default)]
    pub pid: Option<i64>,
    /// The process's start time (`/proc/PID/stat`, clock ticks since boot): a pid reused
    /// by another process after a reboot or a wrap is not taken for the program.
    #[serde(default)]
    pub pid_started: Option<u64>,
    /// When the process started (Unix milliseconds).
    #[serde(default)]
    pub started_ms: Option<i64>,
    /// Stopped by a `stop` command: stays stopped after a supervisor restart.
    #[serde(default)]
    pub stopped: bool,
    /// The last deploy: commit, outcome, when, message (the supervisor's JSON).
    #[serde(default)]
    pub last_deploy: Option<Value>,
}

/// A commit that failed its verify or health check: never deployed again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BadCommit {
    /// The commit.
    pub commit: String,
    /// Why (`verify failed: ...`, `health check failed: ...`).
    pub reason: String,
    /// When it was found bad (Unix milliseconds).
    pub at_ms: i64,
}

/// The supervisor's part of the state store. Every method is one transaction.
#[async_trait]
pub trait ProgramStore: Send + Sync {
    /// One program's record.
    async fn program(&self, name: &str) -> Result<Option<ProgramRecord>, StoreError>;

    /// Every program's record, by name.
    async fn programs(&self) -> Result<Vec<ProgramRecord>, StoreError>;

    /// Writes a program's record whole (inserted or replaced).
    async fn save_program(&self, record: &ProgramRecord) -> Result<(), StoreError>;

    /// Forgets a program (its config was removed); its bad commits are kept, so a
    /// config put back does not deploy them.
    async fn forget_program(&self, name: &str) -> Result<(), StoreError>;

    /// Remembers `commit` of `program` as bad (again: the first reason is kept).
    async fn mark_bad(&self, program: &str, commit: &str, reason: &str) -> Result<(), StoreError>;

    /// A program's bad commits, oldest first.
    async fn bad_commits(&self, program: &str) -> Result<Vec<BadCommit>, StoreError>;
}

/// Opens the store at `location` (as [`crate::open`]) for the supervisor.
pub async fn open_programs(location: &str) -> Result<Box<dyn ProgramStore>, StoreError> {
    if location.starts_with("postgres://") || location.starts_with("postgresql://") {
        Ok(Box::new(PostgresStore::connect(location).await?))
    } else {
        Ok(Box::new(SqliteStore::open(location).await?))
    }
}

fn record_from_text(name: &str, text: &str) -> Result<ProgramRecord, StoreError> {
    serde_json::from_str(text).map_err(|error| {
        StoreError::Backend(format!(
            "program `{name}` has an unreadable record: {error}"
        ))
    })
}

fn record_text(record: &ProgramRecord) -> Result<String, StoreError> {
    serde_json::to_string(record)
        .map_err(|error| StoreError::Backend(format!("unable to encode a record: {error}")))
}

#[async_trait]
impl ProgramStore for SqliteStore {
    async fn program(&self, name: &str) -> Result<Option<ProgramRecord>, StoreError> {
        let name = name.to_owned();
        self.call(move |conn| {
            let text: Option<String> = conn
                .query_row(
                    "SELECT record FROM supervised_programs WHERE name = ?1",
                    [&name],
                    |row| row.get(0),
                )
                .optional()
                .map_err(crate::sqlite::backend)?;
            text.map(|text| record_from_text(&name, &text)).transpose()
        })
        .await
    }

    async fn programs(&self) -> Result<Vec<ProgramRecord>, StoreError> {
        self.call(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT name, record FROM supervised_programs ORDER BY name")
                .map_err(crate::sqlite::backend)?;
            let rows = stmt
                .query_map([], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
                })
                .map_err(crate::sqlite::backend)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(crate::sqlite::backend)?;
            rows.iter()
                .map(|(name, text)| record_from_text(name, text))
                .collect()
        })
        .await
    }

    async fn save_program(&self, record: &ProgramRecord) -> Result<(), StoreError> {
        let (name, text) = (record.name.clone(), record_text(record)?);
        self.write(move |conn, now| {
            conn.execute(
                "INSERT INTO supervised_programs (name, record, updated_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET record = excluded.record,
                     updated_ms = excluded.updated_ms",
                params![name, text, now],
            )
            .map_err(crate::sqlite::backend)?;
            Ok(())
        })
        .await
    }

    async fn forget_program(&self, name: &str) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.write(move |conn, _| {
            conn.execute("DELETE FROM supervised_programs WHERE name = ?1", [&name])
                .map_err(crate::sqlite::backend)?;
            Ok(())
        })
        .await
    }

    async fn mark_bad(&self, program: &str, commit: &str, reason: &str) -> Result<(), StoreError> {
        let (program, commit, reason) = (program.to_owned(), commit.to_owned(), reason.to_owned());
        self.write(move |conn, now| {
            conn.execute(
                "INSERT INTO supervised_bad_commits (program, commit_id, reason, at_ms)
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (program, commit_id) DO NOTHING",
                params![program, commit, reason, now],
            )
            .map_err(crate::sqlite::backend)?;
            Ok(())
        })
        .await
    }

    async fn bad_commits(&self, program: &str) -> Result<Vec<BadCommit>, StoreError> {
        let program = program.to_owned();
        self.call(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT commit_id, reason, at_ms FROM supervised_bad_commits
                     WHERE program = ?1 ORDER BY at_ms, commit_id",
                )
                .map_err(crate::sqlite::backend)?;
            let rows = stmt
                .query_map([&program], |row| {
                    Ok(BadCommit {
                        commit: row.get(0)?,
                        reason: row.get(1)?,
                        at_ms: row.get(2)?,
                    })
                })
                .map_err(crate::sqlite::backend)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(crate::sqlite::backend)?;
            Ok(rows)
        })
        .await
    }
}

#[async_trait]
impl ProgramStore for PostgresStore {
    async fn program(&self, name: &str) -> Result<Option<ProgramRecord>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT record FROM supervised_programs WHERE name = $1",
                &[&name],
            )
            .await
            .map_err(crate::postgres::backend)?;
        row.map(|row| record_from_text(name, &row.get::<_, String>(0)))
            .transpose()
    }

    async fn programs(&self) -> Result<Vec<ProgramRecord>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT name, record FROM supervised_programs ORDER BY name",
                &[],
            )
            .await
            .map_err(crate::postgres::backend)?;
        rows.iter()
            .map(|row| record_from_text(&row.get::<_, String>(0), &row.get::<_, String>(1)))
            .collect()
    }

    async fn save_program(&self, record: &ProgramRecord) -> Result<(), StoreError> {
        let text = record_text(record)?;
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO supervised_programs (name, record, updated_ms) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE SET record = excluded.record,
                     updated_ms = excluded.updated_ms",
                &[&record.name, &text, &now_ms()],
            )
            .await
            .map_err(crate::postgres::backend)?;
        Ok(())
    }

    async fn forget_program(&self, name: &str) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute("DELETE FROM supervised_programs WHERE name = $1", &[&name])
            .await
            .map_err(crate::postgres::backend)?;
        Ok(())
    }

    async fn mark_bad(&self, program: &str, commit: &str, reason: &str) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO supervised_bad_commits (program, commit_id, reason, at_ms)
                 VALUES ($1, $2, $3, $4) ON CONFLICT (program, commit_id) DO NOTHING",
                &[&program, &commit, &reason, &now_ms()],
            )
            .await
            .map_err(crate::postgres::backend)?;
        Ok(())
    }

    async fn bad_commits(&self, program: &str) -> Result<Vec<BadCommit>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT commit_id, reason, at_ms FROM supervised_bad_commits
                 WHERE program = $1 ORDER BY at_ms, commit_id",
                &[&program],
            )
            .await
            .map_err(crate::postgres::backend)?;
        Ok(rows
            .iter()
            .map(|row| BadCommit {
                commit: row.get(0),
                reason: row.get(1),
                at_ms: row.get(2),
            })
            .collect())
    }
}
