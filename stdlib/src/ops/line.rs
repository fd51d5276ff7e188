//! One line of a file, present or absent, the rest untouched: Ansible's `lineinfile`.

use regex::bytes::Regex;
use toyc_engine::facts::{FactQuery, Facts, PathFact};
use toyc_engine::plan::{Change, ChangeKind, NoChange, Operation, Outcome};

use super::upload::{diff, unchanged_since_planned, Upload, NEW_FILE_MODE};
use super::{absolute, path_fact, record_file, what_is, Mode, UNKNOWN};

/// What `files::line` ensures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineState {
    /// The line is in the file.
    Present,
    /// No line equal to it (or matching the regexp) is in the file.
    Absent,
}

impl LineState {
    /// Parse `present` or `absent`.
    pub fn parse(text: &str) -> Result<LineState, String> {
        match text {
            "present" => Ok(LineState::Present),
            "absent" => Ok(LineState::Absent),
            _ => Err(format!(
                "`{text}` is not a state of a line: use \"present\" or \"absent\""
            )),
        }
    }
}

/// `files::line`: `line` present in (or absent from) the file at `path`.
///
/// Present without `regexp`: nothing to do if the exact line is there, else it is
/// appended. With `regexp`: the last matching line is replaced by `line`; if none
/// matches, `line` is appended unless it is already there. Absent: every line equal to
/// `line` (or matching `regexp`) is removed. Lines compare without their `\n` or `\r\n`.
#[derive(Debug, Clone)]
pub struct Line {
    path: String,
    line: String,
    regexp: Option<Regex>,
    state: LineState,
    create: bool,
}

/// One line of the file without its terminator, and the terminator (`\n`, `\r\n`, or
/// nothing on a last line without one).
fn split(text: &[u8]) -> Vec<(&[u8], &[u8])> {
    text.split_inclusive(|b| *b == b'\n')
        .map(|line| {
            let bare = line.len()
                - line
                    .iter()
                    .rev()
                    .take_while(|b| **b == b'\n' || **b == b'\r')
                    .count();
            line.split_at(bare)
        })
        .collect()
}

fn shown(line: &[u8]) -> String {
    String::from_utf8_lossy(line).into_owned()
}

impl Line {
    /// `line` in the file at `path` (absolute). `regexp` uses Rust's `regex` syntax and
    /// searches anywhere in a line (anchor it with `^`/`$`). With `create`, a missing file
    /// is created (mode 644) rather than being an error.
    pub fn new(
        path: &str,
        line: &str,
        regexp: Option<&str>,
        state: LineState,
        create: bool,
    ) -> Result<Line, String> {
        let path = absolute(path)?;
        if line.contains('\n') {
            return Err(format!(
                "the line `{}` contains a newline; give one line",
                line.escape_debug()
            ));
        }
        let regexp = regexp
            .map(|r| Regex::new(r).map_err(|e| format!("`{r}` is not a valid regexp: {e}")))
            .transpose()?;
        Ok(Line {
            path,
            line: line.to_owned(),
            regexp,
            state,
            create,
        })
    }

    fn matches(&self, bare: &[u8]) -> bool {
        match &self.regexp {
            Some(re) => re.is_match(bare),
            None => bare == self.line.as_bytes(),
        }
    }

    fn what(&self) -> String {
        match &self.regexp {
            Some(re) => format!("matching `{re}`"),
            None => format!("equal to `{}`", self.line),
        }
    }

    fn no_change(&self, reason: String) -> Outcome {
        Outcome::NoChange(NoChange {
            operation: "files::line".into(),
            target: self.path.clone(),
            reason,
        })
    }

    /// The new content and a summary, or why none is needed.
    fn edit(&self, old: &[u8]) -> Result<(Vec<u8>, String), String> {
        let lines = split(old);
        let path = &self.path;
        let mut new = Vec::with_capacity(old.len() + self.line.len() + 1);
        if self.state == LineState::Absent {
            let mut removed = Vec::new();
            for (n, (bare, end)) in lines.iter().enumerate() {
                if self.matches(bare) {
                    removed.push(n + 1);
                } else {
                    new.extend_from_slice(bare);
                    new.extend_from_slice(end);
                }
            }
            return match removed.as_slice() {
                [] => Err(format!("`{path}` has no line {}", self.what())),
                [n] => Ok((new, format!("remove line {n}: `{}`", shown(lines[n - 1].0)))),
                many => Ok((new, format!("remove {} lines {}", many.len(), self.what()))),
            };
        }
        let last = lines.iter().rposition(|(bare, _)| self.matches(bare));
        match last {
            Some(index) => {
                let (bare, end) = lines[index];
                if bare == self.line.as_bytes() {
                    return Err(format!(
                        "line {} of `{path}` is already `{}`",
                        index + 1,
                        self.line
                    ));
                }
                for (n, (b, e)) in lines.iter().enumerate() {
                    if n == index {
                        new.extend_from_slice(self.line.as_bytes());
                        new.extend_from_slice(if end.is_empty() { b"\n" } else { end });
                    } else {
                        new.extend_from_slice(b);
                        new.extend_from_slice(e);
                    }
                }
                Ok((
                    new,
                    format!("line {}: `{}` -> `{}`", index + 1, shown(bare), self.line),
                ))
            }
            None if lines.iter().any(|(bare, _)| *bare == self.line.as_bytes()) => Err(format!(
                "`{path}` already has the line `{}` (and no line matching the regexp)",
                self.line
            )),
            None => {
                new.extend_from_slice(old);
                if !old.is_empty() && !old.ends_with(b"\n") {
                    new.push(b'\n');
                }
                new.extend_from_slice(self.line.as_bytes());
                new.push(b'\n');
                Ok((new, format!("append `{}`", self.line)))
            }
        }
    }
}

impl Operation for Line {
    fn name(&self) -> &str {
        "files::line"
    }

    fn target(&self) -> &str {
        &self.path
    }

    /// The path (mode and owner to keep) and the content to edit.
    fn facts(&self) -> Vec<FactQuery> {
        vec![
            FactQuery::Path(self.path.clone()),
            FactQuery::Content(self.path.clone()),
        ]
    }

    fn plan(&self, facts: &mut Facts) -> Result<Outcome, String> {
        let path = &self.path;
        let fact = path_fact(facts, path)?.clone();
        let content = facts
            .content(path)
            .ok_or_else(|| {
                format!(
                    "the content of `{path}` is not known: a file over 1 MiB copied before this \
                     edit is streamed, not held; edit the local file instead"
                )
            })?
            .map(<[u8]>::to_vec);
        // The file keeps its mode: known from the facts, or (after an operation that
        // created it with the umask's) read when the step runs.
        let (old, mode, keep) = match (&fact, content) {
            (
                PathFact::File {
                    mode, owner, group, ..
                },
                Some(old),
            ) => (old, mode.clone(), Some((owner.clone(), group.clone()))),
            (PathFact::Absent, _) if self.state == LineState::Absent => {
                return Ok(self.no_change(format!("`{path}` does not exist")));
            }
            (PathFact::Absent, _) if self.create => (Vec::new(), NEW_FILE_MODE.stat_form(), None),
            (PathFact::Absent, _) => {
                return Err(format!(
                    "`{path}` does not exist; create it first or pass `create: true`"
                ))
            }
            (PathFact::File { .. }, None) => {
                return Err(format!("`{path}` changed while its facts were gathered"))
            }
            (other, _) => {
                return Err(format!(
                    "`{path}` is {}, not a regular file",
                    what_is(other)
                ))
            }
        };
        let (new, summary) = match self.edit(&old) {
            Ok(edit) => edit,
            Err(reason) => return Ok(self.no_change(reason)),
        };
        let upload = Upload {
            dest: path,
            mode: Mode::from_stat(&mode),
            owner: None,
            group: None,
            keep: keep.as_ref().map(|(o, g)| (o.as_str(), g.as_str())),
            sha256: None,
        };
        let change = Change {
            operation: "files::line".into(),
            target: path.clone(),
            kind: if keep.is_some() {
                ChangeKind::Modify
            } else {
                ChangeKind::Create
            },
            summary,
            diff: diff(path, &old, &new),
            script: format!(
                "{}{}",
                unchanged_since_planned(path, keep.is_some().then_some(&old[..])),
                upload.script()
            ),
            payload: Some(new.as_slice().into()),
        };
        let (owner, group) = keep.unwrap_or_else(|| (UNKNOWN.into(), UNKNOWN.into()));
        record_file(facts, path, (mode, owner, group), &new);
        Ok(Outcome::Change(change))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::sha256_hex;
    use toyc_engine::facts::Fact;

    const PATH: &str = "/etc/app/app.conf";

    fn facts_with(content: Option<&str>) -> Facts {
        let mut facts = Facts::default();
        let fact = match content {
            Some(text) => PathFact::File {
                mode: "640".into(),
                owner: "app".into(),
                group: "adm".into(),
                size: text.len() as u64,
                sha256: sha256_hex(text.as_bytes()),
            },
            None => PathFact::Absent,
        };
        facts.record(FactQuery::Path(PATH.into()), Fact::Path(fact));
        facts.record(
            FactQuery::Content(PATH.into()),
            Fact::Content(content.map(|t| t.as_bytes().to_vec())),
        );
        facts
    }

    fn plan(content: Option<&str>, op: &Line) -> (Outcome, Facts) {
        let mut facts = facts_with(content);
        let outcome = op.plan(&mut facts).unwrap();
        (outcome, facts)
    }

    fn present(line: &str, regexp: Option<&str>) -> Line {
        Line::new(PATH, line, regexp, LineState::Present, false).unwrap()
    }

    fn new_content(outcome: &Outcome) -> String {
        match outcome {
            Outcome::Change(c) => {
                String::from_utf8(c.payload.clone().unwrap().bytes().unwrap().to_vec()).unwrap()
            }
            Outcome::NoChange(n) => panic!("expected a change: {}", n.reason),
        }
    }

    fn reason(outcome: &Outcome) -> &str {
        match outcome {
            Outcome::NoChange(n) => &n.reason,
            Outcome::Change(c) => panic!("expected no change: {}", c.summary),
        }
    }

    #[test]
    fn a_missing_line_is_appended_and_the_new_content_recorded() {
        let (outcome, facts) = plan(Some("a = 1\nb = 2"), &present("max_conn = 100", None));
        assert_eq!(new_content(&outcome), "a = 1\nb = 2\nmax_conn = 100\n");
        let Outcome::Change(c) = &outcome else {
            unreachable!()
        };
        assert_eq!(c.summary, "append `max_conn = 100`");
        assert_eq!(c.kind, ChangeKind::Modify);
        // The edit is refused if the file is no longer what it was planned on.
        let guard = format!(
            "case $(sha256sum < /etc/app/app.conf) in {}*)",
            crate::ops::sha256_hex(b"a = 1\nb = 2")
        );
        assert!(c.script.starts_with(&guard), "{}", c.script);
        assert!(c.script.contains("esac\numask 0137\n"), "{}", c.script);
        assert!(
            c.script
                .contains("chown --reference=/etc/app/app.conf \"$tmp\" 2>/dev/null || :"),
            "{}",
            c.script
        );
        assert_eq!(
            c.diff.as_deref(),
            Some("--- /etc/app/app.conf (on host)\n+++ /etc/app/app.conf (planned)\n@@ -1,2 +1,3 @@\n a = 1\n-b = 2\n\\ No newline at end of file\n+b = 2\n+max_conn = 100\n")
        );
        let new = b"a = 1\nb = 2\nmax_conn = 100\n";
        assert_eq!(facts.content(PATH), Some(Some(&new[..])));
        assert_eq!(
            facts.path(PATH),
            Some(&PathFact::File {
                mode: "640".into(),
                owner: "app".into(),
                group: "adm".into(),
                size: new.len() as u64,
                sha256: sha256_hex(new),
            })
        );
    }

    #[test]
    fn a_present_line_is_no_change() {
        let (outcome, _) = plan(
            Some("max_conn = 100\r\nx\n"),
            &present("max_conn = 100", None),
        );
        assert_eq!(
            reason(&outcome),
            "line 1 of `/etc/app/app.conf` is already `max_conn = 100`"
        );
    }

    #[test]
    fn regexp_replaces_the_last_match_keeping_its_line_ending() {
        let op = present("port = 9090", Some("^port ="));
        let (outcome, _) = plan(Some("port = 1\nport = 2\r\nx\n"), &op);
        assert_eq!(new_content(&outcome), "port = 1\nport = 9090\r\nx\n");
        let Outcome::Change(c) = &outcome else {
            unreachable!()
        };
        assert_eq!(c.summary, "line 2: `port = 2` -> `port = 9090`");
        let (outcome, _) = plan(Some("x\nport = 9090\n"), &op);
        assert_eq!(
            reason(&outcome),
            "line 2 of `/etc/app/app.conf` is already `port = 9090`"
        );
        let (outcome, _) = plan(Some("x\n"), &op);
        assert_eq!(new_content(&outcome), "x\nport = 9090\n");
        let op = present("listen = 1", Some("^port ="));
        let (outcome, _) = plan(Some("listen = 1\n"), &op);
        assert_eq!(
            reason(&outcome),
            "`/etc/app/app.conf` already has the line `listen = 1` (and no line matching the regexp)"
        );
    }

    #[test]
    fn absent_removes_every_matching_line() {
        let op = Line::new(PATH, "", Some("^#"), LineState::Absent, false).unwrap();
        let (outcome, _) = plan(Some("# a\nx\n# b\n"), &op);
        assert_eq!(new_content(&outcome), "x\n");
        let Outcome::Change(c) = &outcome else {
            unreachable!()
        };
        assert_eq!(c.summary, "remove 2 lines matching `^#`");
        let op = Line::new(PATH, "x", None, LineState::Absent, false).unwrap();
        let (outcome, _) = plan(Some("y\n"), &op);
        assert_eq!(
            reason(&outcome),
            "`/etc/app/app.conf` has no line equal to `x`"
        );
        let (outcome, _) = plan(None, &op);
        assert_eq!(reason(&outcome), "`/etc/app/app.conf` does not exist");
    }

    #[test]
    fn a_missing_file_is_an_error_unless_created() {
        let mut facts = facts_with(None);
        let err = present("x", None).plan(&mut facts).unwrap_err();
        assert_eq!(
            err,
            "`/etc/app/app.conf` does not exist; create it first or pass `create: true`"
        );
        let op = Line::new(PATH, "x", None, LineState::Present, true).unwrap();
        let (outcome, facts) = plan(None, &op);
        assert_eq!(new_content(&outcome), "x\n");
        let Outcome::Change(c) = &outcome else {
            unreachable!()
        };
        assert_eq!(c.kind, ChangeKind::Create);
        assert!(matches!(facts.path(PATH), Some(PathFact::File { mode, .. }) if mode == "644"));
    }

    #[test]
    fn a_file_an_earlier_operation_created_keeps_the_mode_it_will_have() {
        let mut facts = Facts::default();
        facts.record(FactQuery::Path(PATH.into()), Fact::Path(PathFact::Absent));
        facts.record(FactQuery::Content(PATH.into()), Fact::Content(None));
        let touch = crate::ops::File::new(PATH, Default::default(), crate::ops::FileState::Present);
        touch.unwrap().plan(&mut facts).unwrap();
        let outcome = present("x", None).plan(&mut facts).unwrap();
        let Outcome::Change(c) = &outcome else {
            panic!("a change")
        };
        assert_eq!(c.kind, ChangeKind::Modify);
        assert!(
            c.script.contains(
                "chmod --reference=/etc/app/app.conf \"$tmp\" 2>/dev/null || chmod 0644 \"$tmp\""
            ),
            "{}",
            c.script
        );
        assert!(
            c.script.contains("chown --reference=/etc/app/app.conf"),
            "owner unknown at planning: read from the file when the step runs"
        );
        assert!(matches!(facts.path(PATH), Some(PathFact::File { mode, .. }) if mode == UNKNOWN));
    }

    #[test]
    fn bad_arguments_are_refused() {
        let err = Line::new(PATH, "a\nb", None, LineState::Present, false).unwrap_err();
        assert!(err.contains("contains a newline"), "{err}");
        let err = Line::new(PATH, "a", Some("("), LineState::Present, false).unwrap_err();
        assert!(err.starts_with("`(` is not a valid regexp"), "{err}");
    }
}
