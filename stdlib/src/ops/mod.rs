//! The idempotent operations behind `files::*`, `shell::run`, `users::*` and `packages::*`, as plain Rust values
//! implementing [`Operation`](toyc_engine::plan::Operation): built (and validated) when the
//! script calls them, planned later against the host's facts, never acting themselves.
//!
//! Each operation asks for the fewest facts that decide its outcome, so a warm run of a
//! host costs one round trip. Every `plan` records in the [`Facts`] what its change
//! leaves, so an operation later in the same run plans against that state: a
//! `files::line` on a file that an earlier `files::copy` seeds plans correctly on a host
//! where the file does not exist yet.
//!
//! # Diffs
//!
//! [`Content`] (`files::content`, `files::copy`, `files::template`) asks only
//! `Path(dest)`: a sha256 decides whether the content changes. Its change carries a
//! unified diff when the facts it is planned with also hold `Content(dest)`; a runner
//! showing diffs asks `FactQuery::Content(change.target)` for the changes of these
//! operations in a second round trip ([`diff_query`] names it) and plans again
//! (planning has no side effects).
//! [`Line`] always has the content, so its changes always carry a diff for text.

mod attrs;
mod content;
pub(crate) mod declare;
mod directory;
mod file;
mod group;
mod line;
mod link;
mod package;
mod run;
mod upload;
mod user;

#[cfg(test)]
mod bench_tests;
#[cfg(test)]
mod local_tests;
#[cfg(test)]
mod script_tests;

pub use attrs::{check_name, owner_name, Attrs, Current, Mode, UNKNOWN};
pub use content::Content;
pub use directory::Directory;
pub use file::{File, FileState};
pub use group::Group;
pub use line::{Line, LineState};
pub use link::Link;
pub use package::{package_name, Packages};
pub use run::{Guards, Run};
pub use user::{account_name, User, UserSpec, UserState};

use sha2::{Digest, Sha256};
use toyc_engine::facts::{Fact, FactQuery, Facts, PathFact};
use toyc_engine::plan::{Change, ChangeKind, NoChange, Outcome, Payload};

/// `path` if it is absolute, in its one normal form, or why not: no empty or `.`
/// components (`/etc//app/.` is `/etc/app`, one fact), and no `..`. Every safety check
/// (such as "never remove `/`") compares normal forms, so `/.` or `/tmp/..` cannot slip
/// past one. `..` is refused rather than resolved: through a symlink, the host would
/// resolve it somewhere else than the text says.
pub fn absolute(path: &str) -> Result<String, String> {
    if !path.starts_with('/') {
        return Err(format!(
            "`{path}` is not an absolute path; paths on the host must start with `/`"
        ));
    }
    if path.contains('\0') {
        return Err(format!("`{}` contains a NUL byte", path.escape_debug()));
    }
    let mut normal = String::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(format!(
                    "`{path}` has a `..` component; write the path without it"
                ))
            }
            part => {
                normal.push('/');
                normal.push_str(part);
            }
        }
    }
    if normal.is_empty() {
        normal.push('/');
    }
    Ok(normal)
}

/// The fact that adds a diff to `change` when its operation is planned again with it:
/// `Content(target)` for new content uploaded over an existing file by `files::content`,
/// `files::copy` or `files::template` (the other operations' changes already carry
/// their diff, or have none).
pub fn diff_query(change: &Change) -> Option<FactQuery> {
    let uploads = matches!(
        change.operation.as_str(),
        "files::content" | "files::copy" | "files::template"
    );
    // A streamed file is too big to diff, and its old content too big to fetch.
    (uploads
        && change.kind == ChangeKind::Modify
        && matches!(change.payload, Some(Payload::Bytes(_)))
        && change.diff.is_none())
    .then(|| FactQuery::Content(change.target.clone()))
}

/// SHA-256 of `bytes` in lower-case hex, as `sha256sum` prints it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The length and SHA-256 (as [`sha256_hex`]) of the file at `path`, read in pieces:
/// never whole in memory.
pub fn sha256_file(path: &std::path::Path) -> std::io::Result<(u64, String)> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut piece = vec![0u8; 64 * 1024];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut piece)?;
        if n == 0 {
            break;
        }
        hasher.update(&piece[..n]);
        len += n as u64;
    }
    Ok((len, hex(&hasher.finalize())))
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `Path` fact of `path`, which the operation asked for: its absence is a bug in the
/// runner (or a test), not something a script can cause.
fn path_fact<'f>(facts: &'f Facts, path: &str) -> Result<&'f PathFact, String> {
    facts
        .path(path)
        .ok_or_else(|| format!("the fact `Path({path})` was not gathered"))
}

/// A change of `operation` on `target` without content (no payload, no diff).
fn change(
    operation: &str,
    target: &str,
    kind: ChangeKind,
    summary: String,
    script: String,
) -> Outcome {
    Outcome::Change(Change {
        operation: operation.into(),
        target: target.into(),
        kind,
        summary,
        diff: None,
        script,
        payload: None,
    })
}

/// `operation` on `target` needs nothing, because of `reason`.
fn no_change(operation: &str, target: &str, reason: String) -> Outcome {
    Outcome::NoChange(NoChange {
        operation: operation.into(),
        target: target.into(),
        reason,
    })
}

/// ` with a, b` for a no-change reason or a summary, or nothing without parts.
fn with_parts(parts: &[String]) -> String {
    if parts.is_empty() {
        String::new()
    } else {
        format!(" with {}", parts.join(", "))
    }
}

/// What is at a path, for people: `a directory`, `a symbolic link to /x`.
fn what_is(fact: &PathFact) -> String {
    match fact {
        PathFact::Absent => "absent".into(),
        PathFact::File { .. } => "a regular file".into(),
        PathFact::Directory { .. } => "a directory".into(),
        PathFact::Link { target } => format!("a symbolic link to `{target}`"),
        PathFact::Other => "a special file (socket, device or fifo)".into(),
    }
}

/// Record that a regular file with `content` will be at `path` once the change applied.
fn record_file(
    facts: &mut Facts,
    path: &str,
    (mode, owner, group): (String, String, String),
    content: &[u8],
) {
    facts.record(
        FactQuery::Path(path.to_owned()),
        Fact::Path(PathFact::File {
            mode,
            owner,
            group,
            size: content.len() as u64,
            sha256: sha256_hex(content),
        }),
    );
    facts.record(
        FactQuery::Content(path.to_owned()),
        Fact::Content(Some(content.to_vec())),
    );
}

/// Record that a regular file of `len` bytes with this `sha256` will be at `path`, its
/// content not held by toyc (streamed from disk): an operation after it that needs the
/// content cannot plan.
fn record_streamed(
    facts: &mut Facts,
    path: &str,
    (mode, owner, group): (String, String, String),
    len: u64,
    sha256: &str,
) {
    facts.record(
        FactQuery::Path(path.to_owned()),
        Fact::Path(PathFact::File {
            mode,
            owner,
            group,
            size: len,
            sha256: sha256.to_owned(),
        }),
    );
    facts.forget(&FactQuery::Content(path.to_owned()));
}

/// Record that something other than a regular file (or nothing) will be at `path`.
fn record_not_file(facts: &mut Facts, path: &str, fact: PathFact) {
    facts.record(FactQuery::Path(path.to_owned()), Fact::Path(fact));
    facts.record(FactQuery::Content(path.to_owned()), Fact::Content(None));
}

/// The current attributes in a `File` or `Directory` fact.
fn current(fact: &PathFact) -> Option<Current<'_>> {
    match fact {
        PathFact::File {
            mode, owner, group, ..
        }
        | PathFact::Directory { mode, owner, group } => Some(Current { mode, owner, group }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_must_be_absolute_and_lose_trailing_slashes() {
        assert_eq!(absolute("/etc/app/").unwrap(), "/etc/app");
        assert_eq!(absolute("///").unwrap(), "/");
        assert_eq!(absolute("/.").unwrap(), "/");
        assert_eq!(absolute("//etc/./app//").unwrap(), "/etc/app");
        assert!(absolute("/tmp/..").unwrap_err().contains("`..` component"));
        let err = absolute("etc/app").unwrap_err();
        assert!(err.contains("not an absolute path"), "{err}");
        assert!(absolute("").is_err());
    }

    #[test]
    fn sha256_is_hex_like_sha256sum() {
        assert_eq!(
            sha256_hex(b"hello\n"),
            "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
        );
    }
}
