//! A role's status: each host's [`Record`] read back (one round trip per host, all hosts
//! at once) and compared with the commit the remote is at now.

use std::path::Path;

use super::record::Record;
use crate::gitsync;
use crate::inventory::Host;
use crate::run::RunContext;
use crate::runner::for_each_host;

/// One host's state for a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostState {
    /// The host could not be reached or its record not read; the error says why.
    Unreachable(String),
    /// The host holds no record of the role.
    NeverApplied,
    /// The host applied the role: `commit`, at `applied_at` by its clock.
    Applied {
        /// The commit it applied.
        commit: String,
        /// When, by the host's clock.
        applied_at: Option<String>,
        /// How that commit stands against the remote's.
        behind: Behind,
    },
}

/// How an applied commit stands against the remote's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behind {
    /// It is the remote's commit.
    UpToDate,
    /// The remote is this many commits ahead of it.
    By(usize),
    /// It is not an ancestor of the remote's commit (history was rewritten, or the cache
    /// does not hold it).
    Diverged,
}

/// One host's row of `toyc role --status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The host's name.
    pub host: String,
    /// Its state.
    pub state: HostState,
}

/// Every host's record of `role`, at most `forks` hosts at once, in `hosts` order; each
/// applied commit compared with `remote` in the role's cached checkout `cache`. The
/// hosts are reached through `run`'s session, which its owner closes.
pub async fn status(
    role: &str,
    hosts: &[Host],
    run: &RunContext,
    forks: usize,
    cache: &Path,
    remote: &str,
) -> Vec<Row> {
    let read = for_each_host(hosts, forks, |host| {
        let run = run.clone();
        let role = role.to_owned();
        async move {
            let transport = match run.session.connect(&host).await {
                Ok(t) => t,
                Err(e) => return (host.name, Err(e.to_string())),
            };
            let record = Record::read(&role, transport.as_ref()).await;
            (host.name, record.map_err(|e| e.to_string()))
        }
    })
    .await;
    read.into_iter()
        .map(|(host, record)| Row {
            host,
            state: match record {
                Err(e) => HostState::Unreachable(e),
                Ok(None) => HostState::NeverApplied,
                Ok(Some(record)) => HostState::Applied {
                    behind: behind(cache, &record.commit, remote),
                    commit: record.commit,
                    applied_at: record.applied_at,
                },
            },
        })
        .collect()
}

/// How `commit` stands against `remote` in the repo at `cache`.
fn behind(cache: &Path, commit: &str, remote: &str) -> Behind {
    match gitsync::commits_between(cache, commit, remote) {
        Some(0) => Behind::UpToDate,
        Some(n) => Behind::By(n),
        None => Behind::Diverged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `git` in `dir`, with a fixed identity and no user config; its stdout.
    fn git(dir: &Path, args: &[&str]) -> String {
        let output = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@t")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@t")
            .output()
            .expect("git runs");
        assert!(output.status.success(), "git {args:?}");
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    #[test]
    fn an_applied_commit_is_up_to_date_behind_or_diverged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path();
        git(repo, &["init", "-q", "-b", "main"]);
        let mut commits = Vec::new();
        for n in 0..3 {
            git(
                repo,
                &["commit", "-q", "--allow-empty", "-m", &format!("c{n}")],
            );
            commits.push(git(repo, &["rev-parse", "HEAD"]));
        }
        git(repo, &["checkout", "-q", "--orphan", "other"]);
        git(repo, &["commit", "-q", "--allow-empty", "-m", "elsewhere"]);
        let elsewhere = git(repo, &["rev-parse", "HEAD"]);
        let remote = &commits[2];
        assert_eq!(behind(repo, remote, remote), Behind::UpToDate);
        assert_eq!(behind(repo, &commits[0], remote), Behind::By(2));
        assert_eq!(behind(repo, &elsewhere, remote), Behind::Diverged);
    }
}
