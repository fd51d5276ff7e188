//! Keeping a local copy of a remote git repository up to date, for role repos: clone it,
//! or fetch and move to the remote's commit (git2, so no `git` binary is needed).
//!
//! This is engine plumbing, not a script module: the controller syncs a role before any
//! script runs, into toyc's own cache (see [`crate::state_dir`]). Because the cache is
//! toyc's, it is never merged into: local changes and diverged history are reset to the
//! remote, with a note saying so.
//!
//! Remotes: `file://` (and plain paths), `ssh://` and scp-like `user@host:path` (libssh2:
//! the key from `identity`, else the ssh agent, else `~/.ssh/id_ed25519`, `id_ecdsa`,
//! `id_rsa`; each tried once, never in a loop; host keys checked against a known_hosts
//! file, plain or hashed), and `https://` (certificates checked by OpenSSL; a token may be
//! given in the URL). Everything is bounded by one timeout.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use git2::build::CheckoutBuilder;
use git2::{
    AutotagOption, CertificateCheckStatus, Cred, CredentialType, FetchOptions, Oid,
    RemoteCallbacks, Repository, ResetType, StatusOptions,
};

/// How to reach the remote and what to check out.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// A branch, tag or commit; the remote's default branch when `None`.
    pub reference: Option<String>,
    /// The ssh private key to offer (only it); the agent and default keys when `None`.
    pub identity: Option<PathBuf>,
    /// The known_hosts file ssh host keys are checked against; `~/.ssh/known_hosts` when `None`.
    pub known_hosts: Option<PathBuf>,
    /// How long the whole sync may take.
    pub timeout: Duration,
}

impl Default for SyncOptions {
    fn default() -> SyncOptions {
        SyncOptions {
            reference: None,
            identity: None,
            known_hosts: None,
            timeout: Duration::from_secs(60),
        }
    }
}

/// What a sync did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synced {
    /// The commit checked out before, `None` on a first clone.
    pub old: Option<String>,
    /// The commit checked out now.
    pub new: String,
    /// Files that differ between `old` and `new` (every file on a first clone).
    pub files_changed: usize,
    /// Things reset on the way (local changes, diverged history), for the output.
    pub notes: Vec<String>,
}

/// Why a repository could not be synced. Messages name the remote (without any password).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The remote could not be reached, refused us, or the transfer failed.
    #[error("unable to fetch `{url}`: {message}")]
    Remote {
        /// The remote, as given (password removed).
        url: String,
        /// What went wrong and what to do.
        message: String,
    },
    /// The sync took longer than [`SyncOptions::timeout`].
    #[error("fetching `{url}` took longer than {seconds} s; check that the remote is reachable, or raise the timeout")]
    Timeout {
        /// The remote (password removed).
        url: String,
        /// The timeout.
        seconds: u64,
    },
    /// The branch, tag or commit asked for is not in the remote.
    #[error("`{reference}` is not a branch, tag or commit of `{url}`")]
    Reference {
        /// The remote (password removed).
        url: String,
        /// What was asked for.
        reference: String,
    },
    /// The local cache could not be created or updated.
    #[error("unable to update the cache `{}`: {message}", path.display())]
    Cache {
        /// The cache directory.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// Bring `dest` to the remote `url`'s commit (see the module docs), within the timeout.
/// Blocks the calling thread; the work runs on its own thread, abandoned on timeout.
pub fn sync(url: &str, dest: &Path, options: &SyncOptions) -> Result<Synced, SyncError> {
    let (tx, rx) = mpsc::channel();
    let (url_owned, dest_owned, options_owned) = (url.to_owned(), dest.to_owned(), options.clone());
    let deadline = Instant::now() + options.timeout;
    std::thread::spawn(move || {
        let _ = tx.send(sync_now(&url_owned, &dest_owned, &options_owned, deadline));
    });
    match rx.recv_timeout(options.timeout) {
        Ok(result) => result,
        Err(_) => Err(SyncError::Timeout {
            url: display_url(url),
            seconds: options.timeout.as_secs().max(1),
        }),
    }
}

/// Where the cache of repo `url`, named `name`, lives under `base`: one directory per
/// name and URL, so pointing a role at another remote starts a fresh clone.
/// A password or token in the URL is left out, so rotating it keeps the cache.
pub fn cache_path(base: &Path, name: &str, url: &str) -> PathBuf {
    let digest = sha1_smol::Sha1::from(display_url(url)).digest().to_string();
    base.join(format!("{name}-{}", &digest[..12]))
}

/// Why `relative` (a path below a checkout) may not be read by the checkout's own
/// scripts and templates, if it is inside a `.git` directory: that is git's bookkeeping
/// (remotes, reflogs, hooks), never a role's files, and the last place a credential
/// could be left in.
pub fn git_metadata_refusal(relative: &Path) -> Option<String> {
    relative
        .components()
        .any(|part| part.as_os_str() == ".git")
        .then(|| {
            format!(
                "`{}` is inside `.git`; scripts and templates may not read git's metadata, only the repo's files",
                relative.display()
            )
        })
}

/// The commit checked out in `dest`, if it is a repository with one.
pub fn head(dest: &Path) -> Option<String> {
    let repo = Repository::open(dest).ok()?;
    let head = repo.head().ok()?.peel_to_commit().ok()?;
    Some(head.id().to_string())
}

/// How many commits `new` is ahead of `old` in `dest`, or `None` when `old` is not one of
/// its ancestors (or not in the repository).
pub fn commits_between(dest: &Path, old: &str, new: &str) -> Option<usize> {
    let repo = Repository::open(dest).ok()?;
    let (old, new) = (Oid::from_str(old).ok()?, Oid::from_str(new).ok()?);
    if old == new {
        return Some(0);
    }
    if !repo.graph_descendant_of(new, old).ok()? {
        return None;
    }
    let (ahead, _) = repo.graph_ahead_behind(new, old).ok()?;
    Some(ahead)
}

/// How many files differ between commits `old` and `new` of the repository at `dest`
/// (every file of `new` when `old` is `None`); `None` when either is not there.
pub fn files_between(dest: &Path, old: Option<&str>, new: &str) -> Option<usize> {
    let repo = Repository::open(dest).ok()?;
    let old = match old {
        Some(old) => Some(Oid::from_str(old).ok()?),
        None => None,
    };
    files_changed(&repo, old, Oid::from_str(new).ok()?).ok()
}

/// `url` without a password, for messages (`https://user:token@host` → `https://user@host`).
pub fn display_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}@{host}{path}")
        }
        _ => url.to_owned(),
    }
}

/// What the callbacks found out, for a better message than libgit2's.
#[derive(Default)]
struct Trouble {
    auth: Vec<String>,
    host_key: Option<String>,
    timed_out: bool,
}

fn sync_now(
    url: &str,
    dest: &Path,
    options: &SyncOptions,
    deadline: Instant,
) -> Result<Synced, SyncError> {
    let cache = |e: &dyn std::fmt::Display| SyncError::Cache {
        path: dest.to_owned(),
        message: e.to_string(),
    };
    let mut notes = Vec::new();
    let (repo, fresh) = match Repository::open(dest) {
        Ok(repo) => (repo, None),
        Err(_) => {
            if dest.exists() {
                notes.push(format!(
                    "the cache `{}` was not a usable repository; cloned again",
                    dest.display()
                ));
            }
            // Cloned beside the destination and renamed at the end, so an interrupted
            // first clone never leaves a half repository where the next run looks.
            let parent = dest.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(parent).map_err(|e| cache(&e))?;
            let tmp = tempfile::Builder::new()
                .prefix(".clone-")
                .tempdir_in(parent)
                .map_err(|e| cache(&e))?;
            let repo = Repository::init(tmp.path()).map_err(|e| cache(&e))?;
            (repo, Some(tmp))
        }
    };
    // The cache names its remote without any password: the checkout is the runbook's
    // sandbox, and a token in `.git/config` would be readable from it. Fetches go
    // through an anonymous remote with the real URL.
    let shown = display_url(url);
    match repo.find_remote("origin") {
        Ok(remote) if remote.url().ok() == Some(shown.as_str()) => {}
        Ok(_) => repo
            .remote_set_url("origin", &shown)
            .map_err(|e| cache(&e))?,
        Err(_) => {
            repo.remote("origin", &shown).map_err(|e| cache(&e))?;
        }
    }
    let old = repo
        .head()
        .ok()
        .and_then(|h| h.peel_to_commit().ok())
        .map(|c| c.id());

    let trouble = RefCell::new(Trouble::default());
    let default_branch = fetch(&repo, url, options, deadline, &trouble)?;
    let target = resolve(&repo, url, options.reference.as_deref(), default_branch)?;

    if let Some(old) = old {
        let descends = |a: Oid, b: Oid| repo.graph_descendant_of(a, b).unwrap_or(false);
        if old == target || descends(target, old) {
            // Unchanged, or a fast-forward.
        } else if descends(old, target) {
            // Older than the cache: asked for with `--ref`, or the remote moved back.
            if options.reference.is_none() {
                notes.push(format!(
                    "the remote moved back from {} to {}; the cache follows it",
                    short(&old),
                    short(&target)
                ));
            }
        } else {
            notes.push(format!(
                "the cache was at {}, which the remote's history no longer holds (diverged or rewritten); reset to the remote's {}",
                short(&old),
                short(&target)
            ));
        }
        let mut status = StatusOptions::new();
        status.include_untracked(true).include_ignored(false);
        if repo
            .statuses(Some(&mut status))
            .is_ok_and(|s| !s.is_empty())
        {
            notes.push(format!(
                "local changes in the cache `{}` were discarded",
                dest.display()
            ));
        }
    }
    let commit = repo.find_commit(target).map_err(|e| cache(&e))?;
    // Working tree first (dropping untracked files), then HEAD and the index.
    let mut checkout = CheckoutBuilder::new();
    checkout.force().remove_untracked(true);
    repo.checkout_tree(commit.as_object(), Some(&mut checkout))
        .map_err(|e| cache(&e))?;
    repo.set_head_detached(target).map_err(|e| cache(&e))?;
    repo.reset(commit.as_object(), ResetType::Hard, None)
        .map_err(|e| cache(&e))?;
    let files_changed = files_changed(&repo, old, target).map_err(|e| cache(&e))?;
    drop(commit);
    drop(repo);
    if let Some(tmp) = fresh {
        if dest.exists() {
            std::fs::remove_dir_all(dest).map_err(|e| cache(&e))?;
        }
        std::fs::rename(tmp.keep(), dest).map_err(|e| cache(&e))?;
    }
    Ok(Synced {
        old: old.map(|o| o.to_string()),
        new: target.to_string(),
        files_changed,
        notes,
    })
}

/// Fetch every branch and tag of `url` into `refs/remotes/origin/*` and `refs/tags/*`;
/// returns the remote's default branch.
fn fetch(
    repo: &Repository,
    url: &str,
    options: &SyncOptions,
    deadline: Instant,
    trouble: &RefCell<Trouble>,
) -> Result<Option<String>, SyncError> {
    let cache = |e: git2::Error| SyncError::Cache {
        path: repo.path().to_owned(),
        message: e.to_string(),
    };
    // The cache is the role's sandbox: nothing written into it may hold a password. So
    // the remote is named without one (the credentials callback gives it from `url`),
    // no FETCH_HEAD, and no reflogs (libgit2 would log the URL with every ref update;
    // removing `logs/` also scrubs caches written before this was so).
    repo.config()
        .and_then(|mut config| config.set_bool("core.logAllRefUpdates", false))
        .map_err(cache)?;
    let logs = repo.path().join("logs");
    if logs.exists() {
        std::fs::remove_dir_all(&logs).map_err(|e| SyncError::Cache {
            path: logs,
            message: e.to_string(),
        })?;
    }
    let mut remote = repo.remote_anonymous(&display_url(url)).map_err(cache)?;
    let mut fetch = FetchOptions::new();
    fetch
        .remote_callbacks(callbacks(url, options, deadline, trouble))
        .download_tags(AutotagOption::All)
        .update_fetchhead(false);
    let refspecs = [
        "+refs/heads/*:refs/remotes/origin/*",
        "+refs/tags/*:refs/tags/*",
    ];
    let fetched = remote.fetch(&refspecs, Some(&mut fetch), Some("fetch"));
    if let Err(e) = fetched {
        return Err(remote_error(url, options, &e, &trouble.borrow()));
    }
    Ok(remote
        .default_branch()
        .ok()
        .and_then(|b| b.as_str().ok().map(str::to_owned)))
}

fn remote_error(url: &str, options: &SyncOptions, e: &git2::Error, trouble: &Trouble) -> SyncError {
    let shown = display_url(url);
    if trouble.timed_out {
        return SyncError::Timeout {
            url: shown,
            seconds: options.timeout.as_secs().max(1),
        };
    }
    let message = if let Some(host_key) = &trouble.host_key {
        host_key.clone()
    } else if !trouble.auth.is_empty() || e.code() == git2::ErrorCode::Auth {
        let tried = if trouble.auth.is_empty() {
            "no credentials".to_owned()
        } else {
            trouble.auth.join(", ")
        };
        let hint = if url.starts_with("https://") || url.starts_with("http://") {
            "check the user and token in the URL (`https://USER:TOKEN@host/...`)"
        } else {
            "check that the key is authorized on the remote, or pass `--git-identity KEY`"
        };
        format!("authentication failed (tried {tried}); {hint}")
    } else if e.code() == git2::ErrorCode::Certificate {
        format!(
            "{}; to trust a private certificate authority, point SSL_CERT_FILE at its certificate",
            e.message()
        )
    } else {
        e.message().to_owned()
    };
    SyncError::Remote {
        url: shown,
        message,
    }
}

/// Credentials tried once each (libgit2 asks again after a refusal; the list running out
/// ends the fetch), host keys checked against known_hosts, the deadline honoured.
fn callbacks<'a>(
    url: &'a str,
    options: &'a SyncOptions,
    deadline: Instant,
    trouble: &'a RefCell<Trouble>,
) -> RemoteCallbacks<'a> {
    let mut callbacks = RemoteCallbacks::new();
    let mut keys = ssh_keys(options);
    keys.reverse();
    let mut offered_plaintext = false;
    callbacks.credentials(move |_url, user_from_url, allowed| {
        let user = user_from_url.unwrap_or("git");
        if allowed.contains(CredentialType::USERNAME) {
            return Cred::username(user);
        }
        if allowed.contains(CredentialType::SSH_KEY) {
            return match keys.pop() {
                Some(SshKey::Agent) => {
                    trouble.borrow_mut().auth.push("the ssh agent".into());
                    Cred::ssh_key_from_agent(user)
                }
                Some(SshKey::File(path)) => {
                    trouble
                        .borrow_mut()
                        .auth
                        .push(format!("key `{}`", path.display()));
                    Cred::ssh_key(user, None, &path, None)
                }
                None => Err(git2::Error::from_str("every ssh credential was refused")),
            };
        }
        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) && !offered_plaintext {
            offered_plaintext = true;
            if let Some((user, password)) = url_credentials(url) {
                trouble
                    .borrow_mut()
                    .auth
                    .push("the user and token in the URL".into());
                return Cred::userpass_plaintext(&user, &password);
            }
        }
        trouble
            .borrow_mut()
            .auth
            .push("nothing the remote accepts".into());
        Err(git2::Error::from_str("no usable credentials"))
    });
    let known_hosts = options
        .known_hosts
        .clone()
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".ssh/known_hosts")));
    let port = ssh_port(url);
    callbacks.certificate_check(move |cert, host| {
        let Some(key) = cert.as_hostkey().and_then(|k| k.hostkey()) else {
            // TLS: libgit2 has verified the certificate chain already; keep its verdict.
            return Ok(CertificateCheckStatus::CertificatePassthrough);
        };
        let Some(file) = &known_hosts else {
            let why = "no known_hosts file to check the host key against (HOME is not set); pass `--git-known-hosts FILE`".to_owned();
            trouble.borrow_mut().host_key = Some(why.clone());
            return Err(git2::Error::from_str(&why));
        };
        match check_host_key(file, host, port, key) {
            Ok(()) => Ok(CertificateCheckStatus::CertificateOk),
            Err(why) => {
                trouble.borrow_mut().host_key = Some(why.clone());
                Err(git2::Error::from_str(&why))
            }
        }
    });
    let past_deadline = move || Instant::now() >= deadline;
    callbacks.transfer_progress(move |_| {
        if past_deadline() {
            trouble.borrow_mut().timed_out = true;
            false
        } else {
            true
        }
    });
    callbacks.sideband_progress(move |_| !past_deadline());
    callbacks
}

/// One ssh credential to offer.
enum SshKey {
    Agent,
    File(PathBuf),
}

/// The key given, else the agent (when one runs) and the usual key files that exist.
fn ssh_keys(options: &SyncOptions) -> Vec<SshKey> {
    if let Some(identity) = &options.identity {
        return vec![SshKey::File(identity.clone())];
    }
    let mut keys = Vec::new();
    if std::env::var_os("SSH_AUTH_SOCK").is_some() {
        keys.push(SshKey::Agent);
    }
    if let Some(home) = std::env::var_os("HOME") {
        for name in ["id_ed25519", "id_ecdsa", "id_rsa"] {
            let path = PathBuf::from(&home).join(".ssh").join(name);
            if path.is_file() {
                keys.push(SshKey::File(path));
            }
        }
    }
    keys
}

/// The user and password of an `https://user:password@host/...` URL.
fn url_credentials(url: &str) -> Option<(String, String)> {
    let rest = url.split_once("://")?.1;
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let (userinfo, _) = authority.rsplit_once('@')?;
    let (user, password) = userinfo.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// The port of an `ssh://host:port/...` URL (22 otherwise).
fn ssh_port(url: &str) -> u16 {
    let Some(rest) = url.strip_prefix("ssh://") else {
        return 22;
    };
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host_port.starts_with('[') {
        return host_port
            .rsplit_once("]:")
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or(22);
    }
    host_port
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(22)
}

/// Whether `known_hosts` lists `key` (the raw ssh wire-format blob) for `host`.
fn check_host_key(known_hosts: &Path, host: &str, port: u16, key: &[u8]) -> Result<(), String> {
    let text = std::fs::read_to_string(known_hosts).map_err(|e| {
        format!(
            "unable to read `{}` to check the host key of `{host}`: {e}",
            known_hosts.display()
        )
    })?;
    let name = if port == 22 {
        host.to_owned()
    } else {
        format!("[{host}]:{port}")
    };
    let mut listed = false;
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('@') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(patterns), Some(_kind), Some(blob)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if !host_matches(patterns, &name) {
            continue;
        }
        listed = true;
        let blob = base64::engine::general_purpose::STANDARD.decode(blob);
        if blob.as_deref() == Ok(key) {
            return Ok(());
        }
        tracing::debug!(
            "known_hosts line {} lists another key for {name}",
            index + 1
        );
    }
    if listed {
        Err(format!(
            "the host key of `{name}` does not match the one in `{}`; it changed (or someone is in between): fix known_hosts only if you know why it changed",
            known_hosts.display()
        ))
    } else {
        Err(format!(
            "the host key of `{name}` is not in `{}`; add it (check it first, e.g. `ssh-keyscan {host}`), or pass `--git-known-hosts FILE`",
            known_hosts.display()
        ))
    }
}

/// Whether a known_hosts pattern list (`a,b`, `[h]:p`, globs, `!neg`, hashed `|1|salt|hash`)
/// names `name`.
fn host_matches(patterns: &str, name: &str) -> bool {
    if let Some(hashed) = patterns.strip_prefix("|1|") {
        let Some((salt, hash)) = hashed.split_once('|') else {
            return false;
        };
        let b64 = base64::engine::general_purpose::STANDARD;
        let (Ok(salt), Ok(hash)) = (b64.decode(salt), b64.decode(hash)) else {
            return false;
        };
        return hmac_sha1(&salt, name.as_bytes()) == hash.as_slice();
    }
    let mut matched = false;
    for pattern in patterns.split(',') {
        let (negated, pattern) = match pattern.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, pattern),
        };
        let hit = if pattern.contains(['*', '?']) {
            glob::Pattern::new(pattern).is_ok_and(|p| p.matches(name))
        } else {
            pattern == name
        };
        if hit && negated {
            return false;
        }
        matched |= hit;
    }
    matched
}

/// HMAC-SHA1 (RFC 2104), as OpenSSH hashes known_hosts names.
fn hmac_sha1(key: &[u8], message: &[u8]) -> [u8; 20] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..20].copy_from_slice(&sha1_smol::Sha1::from(key).digest().bytes());
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let mut inner = sha1_smol::Sha1::new();
    inner.update(&pad(0x36));
    inner.update(message);
    let mut outer = sha1_smol::Sha1::new();
    outer.update(&pad(0x5c));
    outer.update(&inner.digest().bytes());
    outer.digest().bytes()
}

/// The commit to check out: the reference asked for, else the remote's default branch
/// (else `main`, else `master`).
fn resolve(
    repo: &Repository,
    url: &str,
    reference: Option<&str>,
    default_branch: Option<String>,
) -> Result<Oid, SyncError> {
    let commit_of = |name: &str| {
        repo.find_reference(name)
            .ok()
            .and_then(|r| r.peel_to_commit().ok())
            .map(|c| c.id())
    };
    let found = match reference {
        Some(r) => commit_of(&format!("refs/remotes/origin/{r}"))
            .or_else(|| commit_of(&format!("refs/tags/{r}")))
            .or_else(|| {
                repo.revparse_single(r)
                    .ok()
                    .and_then(|o| o.peel_to_commit().ok())
                    .map(|c| c.id())
            }),
        None => default_branch
            .as_deref()
            .and_then(|b| b.strip_prefix("refs/heads/"))
            .and_then(|b| commit_of(&format!("refs/remotes/origin/{b}")))
            .or_else(|| commit_of("refs/remotes/origin/main"))
            .or_else(|| commit_of("refs/remotes/origin/master")),
    };
    found.ok_or_else(|| SyncError::Reference {
        url: display_url(url),
        reference: reference.unwrap_or("the default branch").to_owned(),
    })
}

/// Files that differ between two commits (every file when there is no `old`).
fn files_changed(repo: &Repository, old: Option<Oid>, new: Oid) -> Result<usize, git2::Error> {
    let new_tree = repo.find_commit(new)?.tree()?;
    let old_tree = match old {
        Some(old) => repo.find_commit(old).ok().and_then(|c| c.tree().ok()),
        None => None,
    };
    let diff = repo.diff_tree_to_tree(old_tree.as_ref(), Some(&new_tree), None)?;
    Ok(diff.stats()?.files_changed())
}

/// The first 7 hex digits of a commit, as git shows it.
pub fn short(commit: &impl ToString) -> String {
    commit.to_string().chars().take(7).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_into_git_metadata_are_refused_wherever_the_component_is() {
        for path in [
            ".git",
            ".git/config",
            "files/../.git/HEAD",
            "a/.git/x",
            "./.git",
        ] {
            assert!(git_metadata_refusal(Path::new(path)).is_some(), "{path}");
        }
        for path in ["files/a.git", ".gitignore", "templates/.github/x"] {
            assert!(git_metadata_refusal(Path::new(path)).is_none(), "{path}");
        }
    }

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            display_url("https://me:tok3n@example.com/r.git"),
            "https://me@example.com/r.git"
        );
        assert_eq!(
            display_url("ssh://git@h:2222/r.git"),
            "ssh://git@h:2222/r.git"
        );
        assert_eq!(display_url("/srv/r.git"), "/srv/r.git");
    }

    #[test]
    fn ports_come_from_ssh_urls() {
        assert_eq!(ssh_port("ssh://git@h:2222/r.git"), 2222);
        assert_eq!(ssh_port("ssh://h/r.git"), 22);
        assert_eq!(ssh_port("git@h:r.git"), 22);
        assert_eq!(ssh_port("ssh://[::1]:2200/r"), 2200);
    }

    #[test]
    fn known_hosts_patterns_plain_glob_negated_and_hashed() {
        assert!(host_matches("a,b.example", "b.example"));
        assert!(host_matches("*.example", "x.example"));
        assert!(!host_matches("*.example,!x.example", "x.example"));
        assert!(host_matches("[h]:2222", "[h]:2222"));
        // `ssh-keygen -H` of `10.0.0.5` with this salt.
        let salt = [7u8; 20];
        let hash = hmac_sha1(&salt, b"10.0.0.5");
        let b64 = base64::engine::general_purpose::STANDARD;
        let entry = format!("|1|{}|{}", b64.encode(salt), b64.encode(hash));
        assert!(host_matches(&entry, "10.0.0.5"));
        assert!(!host_matches(&entry, "10.0.0.6"));
    }

    #[test]
    fn hmac_sha1_matches_rfc_2202() {
        let digest = hmac_sha1(b"Jefe", b"what do ya want for nothing?");
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
    }

    fn git(dir: &Path, args: &[&str]) {
        let status = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@t")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@t")
            .status()
            .expect("git runs");
        assert!(status.success(), "git {args:?}");
    }

    #[test]
    fn clone_then_fast_forward_then_reset_a_dirty_diverged_cache() {
        let dir = tempfile::tempdir().expect("tempdir");
        let work = dir.path().join("work");
        std::fs::create_dir(&work).expect("mkdir");
        git(&work, &["init", "-q", "-b", "trunk"]);
        std::fs::write(work.join("a"), "1").expect("write");
        git(&work, &["add", "."]);
        git(&work, &["commit", "-qm", "one"]);
        let url = format!("file://{}", work.display());
        let cache = dir.path().join("cache/web");
        let options = SyncOptions::default();

        let first = sync(&url, &cache, &options).expect("clone");
        assert_eq!((first.old.clone(), first.files_changed), (None, 1));
        assert_eq!(std::fs::read_to_string(cache.join("a")).expect("a"), "1");

        std::fs::write(work.join("b"), "2").expect("write");
        git(&work, &["add", "."]);
        git(&work, &["commit", "-qm", "two"]);
        let second = sync(&url, &cache, &options).expect("fast-forward");
        assert_eq!(second.old.as_deref(), Some(first.new.as_str()));
        assert_eq!((second.files_changed, second.notes.len()), (1, 0));
        assert_eq!(commits_between(&cache, &first.new, &second.new), Some(1));

        // Rewrite the remote's history and dirty the cache.
        git(&work, &["reset", "-q", "--hard", &first.new]);
        std::fs::write(work.join("c"), "3").expect("write");
        git(&work, &["add", "."]);
        git(&work, &["commit", "-qm", "three"]);
        std::fs::write(cache.join("a"), "edited").expect("write");
        std::fs::write(cache.join("stray"), "x").expect("write");
        let third = sync(&url, &cache, &options).expect("reset");
        assert_eq!(third.notes.len(), 2, "{:?}", third.notes);
        assert_eq!(std::fs::read_to_string(cache.join("a")).expect("a"), "1");
        assert!(!cache.join("stray").exists() && !cache.join("b").exists());
        assert_eq!(head(&cache).as_deref(), Some(third.new.as_str()));

        // A tag, then a bare commit id, instead of the default branch.
        git(&work, &["tag", "v1", &first.new]);
        for reference in ["v1", first.new.as_str()] {
            let pinned = SyncOptions {
                reference: Some(reference.into()),
                ..SyncOptions::default()
            };
            let synced = sync(&url, &cache, &pinned).expect("pinned");
            assert_eq!(synced.new, first.new, "{reference}");
            assert!(!cache.join("c").exists());
        }

        let tagged = SyncOptions {
            reference: Some("nosuch".into()),
            ..SyncOptions::default()
        };
        let err = sync(&url, &cache, &tagged).expect_err("unknown ref");
        assert!(
            err.to_string().contains("`nosuch` is not a branch"),
            "{err}"
        );
    }
}
