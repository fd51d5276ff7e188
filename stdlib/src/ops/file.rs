//! A regular file that exists (whatever its content) with a mode and owner, or does not.

use toyc_engine::facts::{Fact, FactQuery, Facts, PathFact};
use toyc_engine::plan::{Change, ChangeKind, NoChange, Operation, Outcome};
use toyc_engine::transport::quote;

use super::attrs::Attrs;
use super::{absolute, current, path_fact, record_file, record_not_file, what_is};

/// What `files::file` ensures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    /// The file exists (created empty if missing); its content is not looked at.
    Present,
    /// Nothing is at the path (a file, link or special file is removed; a directory is
    /// an error, see `files::directory`).
    Absent,
    /// Like `Present`, and the file's times are set to now on every run: a change each
    /// time, as `touch` is.
    Touch,
}

impl FileState {
    /// Parse `present`, `absent` or `touch`.
    pub fn parse(text: &str) -> Result<FileState, String> {
        match text {
            "present" => Ok(FileState::Present),
            "absent" => Ok(FileState::Absent),
            "touch" => Ok(FileState::Touch),
            _ => Err(format!(
                "`{text}` is not a state of a file: use \"present\", \"absent\" or \"touch\""
            )),
        }
    }
}

/// `files::file`: a regular file at `path` in `state`, with the attributes asked for.
#[derive(Debug, Clone)]
pub struct File {
    path: String,
    attrs: Attrs,
    state: FileState,
}

impl File {
    /// A file at `path` (absolute).
    pub fn new(path: &str, attrs: Attrs, state: FileState) -> Result<File, String> {
        let path = absolute(path)?;
        if path == "/" {
            return Err("`/` is a directory, not a file".into());
        }
        Ok(File { path, attrs, state })
    }

    fn change(&self, kind: ChangeKind, summary: String, script: String) -> Outcome {
        Outcome::Change(Change {
            operation: "files::file".into(),
            target: self.path.clone(),
            kind,
            summary,
            diff: None,
            script,
            payload: None,
        })
    }

    fn no_change(&self, reason: String) -> Outcome {
        Outcome::NoChange(NoChange {
            operation: "files::file".into(),
            target: self.path.clone(),
            reason,
        })
    }
}

impl Operation for File {
    fn name(&self) -> &str {
        "files::file"
    }

    fn target(&self) -> &str {
        &self.path
    }

    fn facts(&self) -> Vec<FactQuery> {
        vec![FactQuery::Path(self.path.clone())]
    }

    fn plan(&self, facts: &mut Facts) -> Result<Outcome, String> {
        let path = &self.path;
        let quoted = quote(path);
        let fact = path_fact(facts, path)?.clone();
        match (&fact, self.state) {
            (PathFact::Absent, FileState::Absent) => {
                Ok(self.no_change(format!("`{path}` is already absent")))
            }
            (PathFact::Directory { .. }, FileState::Absent) => Err(format!(
                "`{path}` is a directory; remove it with files::directory and state \"absent\""
            )),
            (_, FileState::Absent) => {
                record_not_file(facts, path, PathFact::Absent);
                Ok(self.change(
                    ChangeKind::Remove,
                    format!("remove {}", what_is(&fact)),
                    format!("rm -f {quoted}\n"),
                ))
            }
            (PathFact::Absent, _) => {
                record_file(facts, path, self.attrs.after(None), b"");
                // `>>` creates without truncating, should the file appear in between.
                // Created under the umask that gives the asked mode, it costs no process;
                // one that appeared in between gets the mode from `chmod`.
                let undo = format!("rm -f -- {quoted}");
                let script = match self.attrs.mode.and_then(|m| m.creation_umask().map(|u| (m, u))) {
                    Some((mode, umask)) => format!(
                        "if [ -e {quoted} ]; then chmod {} {quoted}; else umask {umask}; : >> {quoted}; fi\n{}",
                        mode.stat_form(),
                        self.attrs.ownership_for_new(&quoted, &undo)
                    ),
                    None => format!(": >> {quoted}\n{}", self.attrs.commands_for_new(&quoted, &undo)),
                };
                Ok(self.change(
                    ChangeKind::Create,
                    format!("create empty{}", self.attrs.describe()),
                    script,
                ))
            }
            (PathFact::File { .. }, state) => {
                let now = current(&fact).ok_or("a file has attributes")?;
                let differences = self.attrs.differences(now);
                let after = self.attrs.after(Some(now));
                if differences.is_empty() && state == FileState::Present {
                    return Ok(self.no_change(format!(
                        "file `{path}` already exists{}",
                        self.attrs.describe()
                    )));
                }
                let mut script = self.attrs.commands(&quoted);
                let mut summary = differences;
                if state == FileState::Touch {
                    script.push_str(&format!("touch -c {quoted}\n"));
                    summary.insert(0, "touch".into());
                }
                // Content is unchanged: keep a known Content fact, refresh the path fact.
                if let PathFact::File { size, sha256, .. } = &fact {
                    facts.record(
                        FactQuery::Path(path.clone()),
                        Fact::Path(PathFact::File {
                            mode: after.0,
                            owner: after.1,
                            group: after.2,
                            size: *size,
                            sha256: sha256.clone(),
                        }),
                    );
                }
                Ok(self.change(ChangeKind::Modify, summary.join(", "), script))
            }
            (other, _) => Err(format!(
                "`{path}` is {}, not a regular file; remove it first",
                what_is(other)
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{sha256_hex, Mode};

    const PATH: &str = "/etc/app/secret";

    fn facts_with(fact: PathFact) -> Facts {
        let mut facts = Facts::default();
        facts.record(FactQuery::Path(PATH.into()), Fact::Path(fact));
        facts
    }

    fn file(mode: &str) -> PathFact {
        PathFact::File {
            mode: mode.into(),
            owner: "app".into(),
            group: "app".into(),
            size: 3,
            sha256: sha256_hex(b"abc"),
        }
    }

    fn op(mode: Option<&str>, state: FileState) -> File {
        let attrs = Attrs::new(mode.map(|m| Mode::parse(m).unwrap()), None, None).unwrap();
        File::new(PATH, attrs, state).unwrap()
    }

    #[test]
    fn present_creates_an_empty_file_and_records_it() {
        let mut facts = facts_with(PathFact::Absent);
        let Outcome::Change(c) = op(Some("0600"), FileState::Present)
            .plan(&mut facts)
            .unwrap()
        else {
            panic!("a change")
        };
        assert_eq!(c.kind, ChangeKind::Create);
        assert_eq!(c.summary, "create empty with mode 600");
        assert_eq!(
            c.script,
            "if [ -e /etc/app/secret ]; then chmod 600 /etc/app/secret; else umask 0177; : >> /etc/app/secret; fi\n"
        );
        assert_eq!(
            facts.path(PATH),
            Some(&PathFact::File {
                mode: "600".into(),
                owner: "?".into(),
                group: "?".into(),
                size: 0,
                sha256: sha256_hex(b""),
            })
        );
        assert_eq!(facts.content(PATH), Some(Some(&b""[..])));
    }

    #[test]
    fn an_existing_file_with_the_mode_is_no_change_and_another_mode_is_fixed() {
        let mut facts = facts_with(file("600"));
        let Outcome::NoChange(n) = op(Some("600"), FileState::Present)
            .plan(&mut facts)
            .unwrap()
        else {
            panic!("no change")
        };
        assert_eq!(
            n.reason,
            "file `/etc/app/secret` already exists with mode 600"
        );
        let Outcome::Change(c) = op(Some("0640"), FileState::Present)
            .plan(&mut facts)
            .unwrap()
        else {
            panic!("a change")
        };
        assert_eq!(c.summary, "mode 600 -> 640");
        assert_eq!(c.script, "chmod 640 /etc/app/secret\n");
        assert_eq!(facts.path(PATH), Some(&file("640")));
    }

    #[test]
    fn touch_always_changes() {
        let mut facts = facts_with(file("600"));
        let Outcome::Change(c) = op(None, FileState::Touch).plan(&mut facts).unwrap() else {
            panic!("a change")
        };
        assert_eq!(
            (c.summary.as_str(), c.script.as_str()),
            ("touch", "touch -c /etc/app/secret\n")
        );
    }

    #[test]
    fn absent_removes_files_and_links_but_not_directories() {
        let mut facts = facts_with(PathFact::Link { target: "x".into() });
        let Outcome::Change(c) = op(None, FileState::Absent).plan(&mut facts).unwrap() else {
            panic!("a change")
        };
        assert_eq!(c.summary, "remove a symbolic link to `x`");
        assert_eq!(c.script, "rm -f /etc/app/secret\n");
        assert_eq!(facts.path(PATH), Some(&PathFact::Absent));
        let Outcome::NoChange(n) = op(None, FileState::Absent).plan(&mut facts).unwrap() else {
            panic!("no change")
        };
        assert_eq!(n.reason, "`/etc/app/secret` is already absent");
        let mut facts = facts_with(PathFact::Directory {
            mode: "755".into(),
            owner: "root".into(),
            group: "root".into(),
        });
        let err = op(None, FileState::Absent).plan(&mut facts).unwrap_err();
        assert!(err.contains("is a directory"), "{err}");
        let err = op(None, FileState::Present).plan(&mut facts).unwrap_err();
        assert_eq!(
            err,
            "`/etc/app/secret` is a directory, not a regular file; remove it first"
        );
    }

    #[test]
    fn states_are_checked() {
        let err = FileState::parse("exists").unwrap_err();
        assert!(
            err.contains("\"present\", \"absent\" or \"touch\""),
            "{err}"
        );
    }
}
