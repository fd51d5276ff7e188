//! The git a program's checkouts need, through the `git` executable its config names
//! (Huddle's `executable`): clone, fetch the followed branch, check a commit out.
//!
//! Two checkouts per program: the live one (`local path`, the program runs there) and a
//! staging one under the state directory, where a new commit is fetched and verified
//! while the live one keeps serving. The live checkout fetches a verified commit from
//! the staging one, never from the remote, so it gets exactly what was verified.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::config::Repository;

/// How long one git command may take.
const GIT_TIMEOUT: Duration = Duration::from_secs(300);

/// The ref a fetched branch tip is kept under, in either checkout.
const FETCHED: &str = "refs/toyc/fetched";

/// Runs `git ARGS` in `dir`; its stdout, trimmed.
async fn git(repo: &Repository, dir: Option<&Path>, args: &[&str]) -> Result<String, String> {
    let mut command = Command::new(&repo.git);
    if let Some(dir) = dir {
        command.arg("-C").arg(dir);
    }
    command
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = tokio::time::timeout(GIT_TIMEOUT, command.output())
        .await
        .map_err(|_| {
            format!(
                "`git {}` took over {}s",
                args.join(" "),
                GIT_TIMEOUT.as_secs()
            )
        })?
        .map_err(|e| format!("unable to run `{}`: {e}", repo.git.display()))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    } else {
        Err(format!(
            "`git {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

fn is_checkout(dir: &Path) -> bool {
    dir.join(".git").exists()
}

/// Clones the repo's branch into `dir` unless a checkout is there; the remote is named
/// as the config says.
pub async fn ensure_clone(repo: &Repository, dir: &Path) -> Result<(), String> {
    if is_checkout(dir) {
        return Ok(());
    }
    if dir.exists()
        && std::fs::read_dir(dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(format!(
            "`{}` exists and is not a git checkout: empty it or point `local path` elsewhere",
            dir.display()
        ));
    }
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("unable to create `{}`: {e}", parent.display()))?;
    }
    let path = dir.to_string_lossy();
    git(
        repo,
        None,
        &[
            "clone",
            "--quiet",
            "--origin",
            &repo.remote,
            "--branch",
            &repo.branch,
            &repo.url,
            &path,
        ],
    )
    .await
    .map(drop)
}

/// The commit checked out in `dir`.
pub async fn head(repo: &Repository, dir: &Path) -> Result<String, String> {
    git(repo, Some(dir), &["rev-parse", "HEAD"]).await
}

/// Fetches the branch's tip from the remote into `dir`; returns it.
pub async fn fetch_remote(repo: &Repository, dir: &Path) -> Result<String, String> {
    let refspec = format!("+refs/heads/{}:{FETCHED}", repo.branch);
    git(repo, Some(dir), &["fetch", "--quiet", &repo.url, &refspec]).await?;
    git(repo, Some(dir), &["rev-parse", FETCHED]).await
}

/// Checks `commit` out in `dir`, discarding local changes to tracked files.
pub async fn checkout(repo: &Repository, dir: &Path, commit: &str) -> Result<(), String> {
    git(
        repo,
        Some(dir),
        &["checkout", "--quiet", "--force", "--detach", commit],
    )
    .await
    .map(drop)
}

/// Polls the remote: the staging checkout at `staging` (cloned when missing) fetches
/// the branch; returns its tip.
pub async fn poll(repo: &Repository, staging: &Path) -> Result<String, String> {
    if !is_checkout(staging) {
        if let Some(parent) = staging.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("unable to create `{}`: {e}", parent.display()))?;
        }
        let path = staging.to_string_lossy();
        git(
            repo,
            None,
            &["clone", "--quiet", "--no-checkout", &repo.url, &path],
        )
        .await?;
    }
    fetch_remote(repo, staging).await
}

/// Checks `commit` (fetched by [`poll`]) out in the staging checkout, untracked files
/// removed: what verify runs in.
pub async fn stage(repo: &Repository, staging: &Path, commit: &str) -> Result<(), String> {
    checkout(repo, staging, commit).await?;
    git(repo, Some(staging), &["clean", "-qffdx"])
        .await
        .map(drop)
}

/// Brings `commit` from the staging checkout into the live one and checks it out.
pub async fn switch(
    repo: &Repository,
    live: &Path,
    staging: &Path,
    commit: &str,
) -> Result<(), String> {
    let staging_path = staging.to_string_lossy();
    git(
        repo,
        Some(staging),
        &["update-ref", "refs/toyc/verified", commit],
    )
    .await?;
    git(
        repo,
        Some(live),
        &[
            "fetch",
            "--quiet",
            &staging_path,
            "+refs/toyc/verified:refs/toyc/verified",
        ],
    )
    .await?;
    checkout(repo, live, commit).await
}
