//! A file with exact content: `files::content`, `files::copy` and `files::template` are
//! this one operation with the bytes coming from the script, a local file or a template.
//!
//! Content over [`STREAM_ABOVE`] bytes is never held in memory: a local file is hashed
//! in pieces and streamed from disk at apply time, other content is spooled to a
//! private temporary file first ([`LocalFile::spool`]). Such a change has no diff, and
//! the host checks the file's sha256 before it replaces the old one.

use std::sync::Arc;

use toyc_engine::facts::{FactQuery, Facts, PathFact};
use toyc_engine::plan::{
    Change, ChangeKind, LocalFile, NoChange, Operation, Outcome, Payload, STREAM_ABOVE,
};
use toyc_engine::transport::quote;

use super::attrs::{Attrs, Mode};
use super::upload::{diff, Upload, NEW_FILE_MODE};
use super::{
    absolute, current, path_fact, record_file, record_streamed, sha256_file, sha256_hex, what_is,
};

/// A regular file at `dest` holding exactly some bytes, with optional mode and owner.
#[derive(Debug, Clone)]
pub struct Content {
    operation: &'static str,
    dest: String,
    /// Shared with the change's payload rather than copied into it.
    payload: Payload,
    len: u64,
    sha256: String,
    attrs: Attrs,
    force: bool,
}

impl Content {
    /// `dest` (absolute) with `bytes`; `operation` is the name scripts called
    /// (`files::copy`). Without `force`, an existing `dest` is left as it is, whatever
    /// its content and attributes (Ansible's `force: false`: seed a file once).
    /// Over [`STREAM_ABOVE`] bytes, they are spooled to disk and dropped from memory.
    pub fn new(
        operation: &'static str,
        dest: &str,
        bytes: Vec<u8>,
        attrs: Attrs,
        force: bool,
    ) -> Result<Content, String> {
        let dest = checked_dest(dest)?;
        let sha256 = sha256_hex(&bytes);
        let len = bytes.len() as u64;
        let payload = if len > STREAM_ABOVE {
            let spooled = LocalFile::spool(bytes).map_err(|e| {
                format!("unable to spool {len} bytes for `{dest}` to a temporary file: {e}; set TMPDIR to a directory with room")
            })?;
            Payload::File(Arc::new(spooled))
        } else {
            Payload::Bytes(bytes.into())
        };
        Ok(Content {
            operation,
            dest,
            payload,
            len,
            sha256,
            attrs,
            force,
        })
    }

    /// `dest` (absolute) with the content of the local file `local` (`shown` in
    /// messages): read into memory when it is small, else hashed in pieces now and
    /// streamed from disk at apply time.
    pub fn from_file(
        operation: &'static str,
        dest: &str,
        local: &std::path::Path,
        shown: &str,
        attrs: Attrs,
        force: bool,
    ) -> Result<Content, String> {
        let unreadable = |e: std::io::Error| format!("unable to read `{shown}`: {e}");
        let len = std::fs::metadata(local).map_err(unreadable)?.len();
        if len <= STREAM_ABOVE {
            let bytes = std::fs::read(local).map_err(unreadable)?;
            return Content::new(operation, dest, bytes, attrs, force);
        }
        let dest = checked_dest(dest)?;
        let (len, sha256) = sha256_file(local).map_err(unreadable)?;
        Ok(Content {
            operation,
            dest,
            payload: Payload::File(Arc::new(LocalFile::new(local, len))),
            len,
            sha256,
            attrs,
            force,
        })
    }

    /// The bytes the file will hold, when they are held in memory (small content).
    pub fn bytes(&self) -> Option<&[u8]> {
        self.payload.bytes()
    }

    fn no_change(&self, reason: String) -> Outcome {
        Outcome::NoChange(NoChange {
            operation: self.operation.into(),
            target: self.dest.clone(),
            reason,
        })
    }

    fn change(
        &self,
        kind: ChangeKind,
        summary: String,
        diff: Option<String>,
        script: String,
        upload: bool,
    ) -> Outcome {
        Outcome::Change(Change {
            operation: self.operation.into(),
            target: self.dest.clone(),
            kind,
            summary,
            diff,
            script,
            payload: upload.then(|| self.payload.clone()),
        })
    }
}

/// `dest` in its normal form, if it can hold content.
fn checked_dest(dest: &str) -> Result<String, String> {
    let dest = absolute(dest)?;
    if dest == "/" {
        return Err("`/` is a directory and cannot hold content".into());
    }
    Ok(dest)
}

fn short(sha256: &str) -> &str {
    sha256.get(..12).unwrap_or(sha256)
}

impl Operation for Content {
    fn name(&self) -> &str {
        self.operation
    }

    fn target(&self) -> &str {
        &self.dest
    }

    /// Only the path: its sha256 decides. `Content(dest)`, when also present, adds a diff.
    fn facts(&self) -> Vec<FactQuery> {
        vec![FactQuery::Path(self.dest.clone())]
    }

    fn plan(&self, facts: &mut Facts) -> Result<Outcome, String> {
        let fact = path_fact(facts, &self.dest)?.clone();
        let dest = &self.dest;
        let size = self.len;
        let bytes = self.payload.bytes();
        // Streamed content is checked on the host before it replaces anything.
        let check = bytes.is_none().then_some(self.sha256.as_str());
        let outcome = match &fact {
            PathFact::Absent => {
                let mode = self.attrs.mode.unwrap_or(NEW_FILE_MODE);
                let upload = Upload {
                    dest,
                    mode: Some(mode),
                    owner: self.attrs.owner.as_deref(),
                    group: self.attrs.group.as_deref(),
                    keep: None,
                    sha256: check,
                };
                self.change(
                    ChangeKind::Create,
                    format!("create, {size} bytes, mode {mode}"),
                    bytes.and_then(|new| diff(dest, b"", new)),
                    upload.script(),
                    true,
                )
            }
            PathFact::File { .. } if !self.force => {
                return Ok(self.no_change(format!("`{dest}` exists and force is false")));
            }
            PathFact::File { sha256, .. } => {
                let now = current(&fact).ok_or("a file has attributes")?;
                let differences = self.attrs.differences(now);
                if *sha256 == self.sha256 {
                    if differences.is_empty() {
                        return Ok(self.no_change(format!(
                            "`{dest}` already has this content (sha256 {}){}",
                            short(sha256),
                            self.attrs.describe()
                        )));
                    }
                    // Same bytes: fix the attributes in place, nothing to upload.
                    self.change(
                        ChangeKind::Modify,
                        differences.join(", "),
                        None,
                        self.attrs.commands(&quote(dest)),
                        false,
                    )
                } else {
                    let upload = Upload {
                        dest,
                        mode: self.attrs.mode.or_else(|| Mode::from_stat(now.mode)),
                        owner: self.attrs.owner.as_deref(),
                        group: self.attrs.group.as_deref(),
                        keep: Some((now.owner, now.group)),
                        sha256: check,
                    };
                    let mut summary = vec![format!(
                        "content {} -> {} ({size} bytes)",
                        short(sha256),
                        short(&self.sha256)
                    )];
                    summary.extend(differences);
                    let old = facts.content(dest).flatten();
                    self.change(
                        ChangeKind::Modify,
                        summary.join(", "),
                        old.zip(bytes).and_then(|(old, new)| diff(dest, old, new)),
                        upload.script(),
                        true,
                    )
                }
            }
            other => {
                return Err(format!(
                    "`{dest}` is {}, not a regular file; remove it first",
                    what_is(other)
                ))
            }
        };
        let (mode, owner, group) = self.attrs.after(current(&fact));
        let mode = match (self.attrs.mode, &fact) {
            (None, PathFact::Absent) => NEW_FILE_MODE.stat_form(),
            _ => mode,
        };
        match bytes {
            Some(bytes) => record_file(facts, dest, (mode, owner, group), bytes),
            None => record_streamed(facts, dest, (mode, owner, group), self.len, &self.sha256),
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use toyc_engine::facts::Fact;

    const DEST: &str = "/etc/app.conf";

    fn facts_with(fact: PathFact) -> Facts {
        let mut facts = Facts::default();
        facts.record(FactQuery::Path(DEST.into()), Fact::Path(fact));
        facts
    }

    fn file(mode: &str, content: &[u8]) -> PathFact {
        PathFact::File {
            mode: mode.into(),
            owner: "root".into(),
            group: "root".into(),
            size: content.len() as u64,
            sha256: sha256_hex(content),
        }
    }

    fn op(text: &str, mode: Option<&str>, force: bool) -> Content {
        let attrs = Attrs::new(mode.map(|m| Mode::parse(m).unwrap()), None, None).unwrap();
        Content::new(
            "files::content",
            DEST,
            text.as_bytes().to_vec(),
            attrs,
            force,
        )
        .unwrap()
    }

    fn change(outcome: Outcome) -> Change {
        match outcome {
            Outcome::Change(c) => c,
            Outcome::NoChange(n) => panic!("expected a change, got {n:?}"),
        }
    }

    fn reason(outcome: Outcome) -> String {
        match outcome {
            Outcome::NoChange(n) => n.reason,
            Outcome::Change(c) => panic!("expected no change, got {c:?}"),
        }
    }

    #[test]
    fn a_missing_file_is_created_with_its_content_and_recorded() {
        let mut facts = facts_with(PathFact::Absent);
        let c = change(op("a = 1\n", Some("0600"), true).plan(&mut facts).unwrap());
        assert_eq!(c.kind, ChangeKind::Create);
        assert_eq!(c.summary, "create, 6 bytes, mode 600");
        assert_eq!(
            c.payload.as_ref().and_then(Payload::bytes),
            Some(&b"a = 1\n"[..])
        );
        assert!(c.script.starts_with("umask 0177\n"), "{}", c.script);
        assert_eq!(
            c.diff.as_deref(),
            Some(
                "--- /etc/app.conf (on host)\n+++ /etc/app.conf (planned)\n@@ -0,0 +1 @@\n+a = 1\n"
            )
        );
        assert_eq!(
            facts.path(DEST),
            Some(&PathFact::File {
                mode: "600".into(),
                owner: "?".into(),
                group: "?".into(),
                size: 6,
                sha256: sha256_hex(b"a = 1\n"),
            })
        );
        assert_eq!(facts.content(DEST), Some(Some(&b"a = 1\n"[..])));
    }

    #[test]
    fn same_content_and_mode_is_no_change() {
        let mut facts = facts_with(file("644", b"x\n"));
        let r = reason(op("x\n", Some("644"), true).plan(&mut facts).unwrap());
        assert_eq!(
            r,
            format!(
                "`/etc/app.conf` already has this content (sha256 {}) with mode 644",
                &sha256_hex(b"x\n")[..12]
            )
        );
    }

    #[test]
    fn same_content_other_mode_changes_only_the_mode() {
        let mut facts = facts_with(file("600", b"x\n"));
        let c = change(op("x\n", Some("644"), true).plan(&mut facts).unwrap());
        assert_eq!(c.summary, "mode 600 -> 644");
        assert_eq!(c.script, "chmod 644 /etc/app.conf\n");
        assert_eq!(c.payload, None);
        assert!(matches!(facts.path(DEST), Some(PathFact::File { mode, .. }) if mode == "644"));
    }

    #[test]
    fn new_content_keeps_the_current_mode_and_diffs_when_the_content_is_known() {
        let mut facts = facts_with(file("640", b"old\n"));
        let c = change(op("new\n", None, true).plan(&mut facts).unwrap());
        assert!(c.summary.starts_with("content "), "{}", c.summary);
        assert!(c.script.starts_with("umask 0137\n"), "{}", c.script);
        assert!(c
            .script
            .contains("chown --reference=/etc/app.conf \"$tmp\" 2>/dev/null || :"));
        assert_eq!(c.diff, None, "no Content fact, no diff");

        let mut facts = facts_with(file("640", b"old\n"));
        facts.record(
            FactQuery::Content(DEST.into()),
            Fact::Content(Some(b"old\n".to_vec())),
        );
        let c = change(op("new\n", None, true).plan(&mut facts).unwrap());
        assert_eq!(
            c.diff.as_deref(),
            Some("--- /etc/app.conf (on host)\n+++ /etc/app.conf (planned)\n@@ -1 +1 @@\n-old\n+new\n")
        );
        assert!(
            matches!(facts.path(DEST), Some(PathFact::File { mode, owner, .. }) if mode == "640" && owner == "root")
        );
    }

    #[test]
    fn without_force_an_existing_file_is_left_alone() {
        let mut facts = facts_with(file("600", b"edited\n"));
        let r = reason(op("seed\n", Some("644"), false).plan(&mut facts).unwrap());
        assert_eq!(r, "`/etc/app.conf` exists and force is false");
        assert_eq!(facts.content(DEST), None, "nothing recorded");
        let mut facts = facts_with(PathFact::Absent);
        assert!(matches!(
            op("seed\n", None, false).plan(&mut facts).unwrap(),
            Outcome::Change(_)
        ));
    }

    #[test]
    fn a_directory_in_the_way_is_an_error() {
        let mut facts = facts_with(PathFact::Directory {
            mode: "755".into(),
            owner: "root".into(),
            group: "root".into(),
        });
        let err = op("x", None, true).plan(&mut facts).unwrap_err();
        assert_eq!(
            err,
            "`/etc/app.conf` is a directory, not a regular file; remove it first"
        );
        let err = op("x", None, true).plan(&mut Facts::default()).unwrap_err();
        assert!(err.contains("was not gathered"), "{err}");
    }

    #[test]
    fn big_content_is_streamed_from_disk_checked_by_sha256_and_never_held() {
        let dir = tempfile::tempdir().unwrap();
        let local = dir.path().join("big");
        let big: Vec<u8> = (0..(STREAM_ABOVE as u32 + 1))
            .map(|i| (i % 251) as u8)
            .collect();
        std::fs::write(&local, &big).unwrap();
        let small = dir.path().join("small");
        std::fs::write(&small, b"x\n").unwrap();
        let attrs = Attrs::default();
        let from_file = Content::from_file(
            "files::copy",
            DEST,
            &local,
            "files/big",
            attrs.clone(),
            true,
        )
        .unwrap();
        let spooled =
            Content::new("files::template", DEST, big.clone(), attrs.clone(), true).unwrap();
        for op in [from_file, spooled] {
            assert_eq!(op.bytes(), None, "not held in memory");
            let mut facts = facts_with(file("644", b"old\n"));
            facts.record(
                FactQuery::Content(DEST.into()),
                Fact::Content(Some(b"old\n".to_vec())),
            );
            let c = change(op.plan(&mut facts).unwrap());
            let Some(Payload::File(streamed)) = &c.payload else {
                panic!("streamed: {:?}", c.payload)
            };
            assert_eq!(std::fs::read(streamed.path()).unwrap(), big);
            assert_eq!(c.diff, None, "no diff of a streamed file");
            assert!(
                c.script.contains(&format!(
                    "case $(sha256sum < \"$tmp\") in {}*)",
                    sha256_hex(&big)
                )),
                "{}",
                c.script
            );
            assert_eq!(facts.content(DEST), None, "the new content is not held");
            assert!(
                matches!(facts.path(DEST), Some(PathFact::File { size, sha256, .. }) if *size == big.len() as u64 && *sha256 == sha256_hex(&big))
            );
            // Unchanged: no change, by the sha256.
            let mut facts = facts_with(file("644", &big));
            reason(op.plan(&mut facts).unwrap());
        }
        let op =
            Content::from_file("files::copy", DEST, &small, "files/small", attrs, true).unwrap();
        assert_eq!(op.bytes(), Some(&b"x\n"[..]), "small files stay inline");
        let err = Content::from_file(
            "files::copy",
            DEST,
            &dir.path().join("missing"),
            "files/missing",
            Attrs::default(),
            true,
        )
        .unwrap_err();
        assert!(err.starts_with("unable to read `files/missing`: "), "{err}");
    }

    #[test]
    fn relative_destinations_are_refused() {
        let err =
            Content::new("files::content", "etc/x", vec![], Attrs::default(), true).unwrap_err();
        assert!(err.contains("not an absolute path"), "{err}");
    }
}
