//! A directory that exists with a mode and owner (`mkdir -p`), or does not (`rm -rf`).

use toyc_engine::facts::{FactQuery, Facts, PathFact};
use toyc_engine::plan::{Change, ChangeKind, NoChange, Operation, Outcome};
use toyc_engine::transport::quote;

use super::attrs::Attrs;
use super::{absolute, current, path_fact, record_not_file, what_is, UNKNOWN};

/// `files::directory`: the directory at `path` exists with the attributes asked for, or,
/// when not `present`, nothing is at `path` at all.
#[derive(Debug, Clone)]
pub struct Directory {
    path: String,
    attrs: Attrs,
    present: bool,
}

impl Directory {
    /// A directory at `path` (absolute). Removing `/` is refused, whatever the caller.
    pub fn new(path: &str, attrs: Attrs, present: bool) -> Result<Directory, String> {
        let path = absolute(path)?;
        if !present && path == "/" {
            return Err("refusing to remove `/`".into());
        }
        Ok(Directory {
            path,
            attrs,
            present,
        })
    }

    fn outcome(&self, kind: ChangeKind, summary: String, script: String) -> Outcome {
        Outcome::Change(Change {
            operation: "files::directory".into(),
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
            operation: "files::directory".into(),
            target: self.path.clone(),
            reason,
        })
    }

    fn plan_present(&self, facts: &mut Facts, fact: &PathFact) -> Result<Outcome, String> {
        let path = &self.path;
        let quoted = quote(path);
        let outcome = match fact {
            PathFact::Absent => {
                // Only the directory itself: parents `mkdir -p` made stay, empty.
                let undo = format!("rmdir -- {quoted}");
                let script = match self.attrs.mode {
                    // One process: `mkdir -m` gives the new directory its mode. One that
                    // appeared since the facts were asked gets it from `chmod`.
                    Some(mode) => format!(
                        "if [ -d {quoted} ]; then chmod {m} {quoted}; else mkdir -p -m {m} {quoted}; fi\n{}",
                        self.attrs.ownership_for_new(&quoted, &undo),
                        m = mode.stat_form()
                    ),
                    None => format!("mkdir -p {quoted}\n{}", self.attrs.commands_for_new(&quoted, &undo)),
                };
                self.outcome(
                    ChangeKind::Create,
                    format!("create{}", self.attrs.describe()),
                    script,
                )
            }
            PathFact::Directory { .. } => {
                let now = current(fact).ok_or("a directory has attributes")?;
                let differences = self.attrs.differences(now);
                if differences.is_empty() {
                    return Ok(self.no_change(format!(
                        "directory `{path}` already exists{}",
                        self.attrs.describe()
                    )));
                }
                self.outcome(
                    ChangeKind::Modify,
                    differences.join(", "),
                    self.attrs.commands(&quoted),
                )
            }
            other => {
                return Err(format!(
                    "`{path}` is {}, not a directory; remove it first",
                    what_is(other)
                ))
            }
        };
        let (mode, owner, group) = self.attrs.after(current(fact));
        record_not_file(facts, path, PathFact::Directory { mode, owner, group });
        // `mkdir -p` also creates the parents: a later operation that asked about one
        // and heard "absent" must not plan to create it again.
        let mut parent = path.as_str();
        while let Some((up, _)) = parent.rsplit_once('/') {
            parent = up;
            if parent.is_empty() || facts.path(parent) != Some(&PathFact::Absent) {
                break;
            }
            let unknown = || UNKNOWN.to_owned();
            record_not_file(
                facts,
                parent,
                PathFact::Directory {
                    mode: unknown(),
                    owner: unknown(),
                    group: unknown(),
                },
            );
        }
        Ok(outcome)
    }
}

impl Operation for Directory {
    fn name(&self) -> &str {
        "files::directory"
    }

    fn target(&self) -> &str {
        &self.path
    }

    fn facts(&self) -> Vec<FactQuery> {
        vec![FactQuery::Path(self.path.clone())]
    }

    fn plan(&self, facts: &mut Facts) -> Result<Outcome, String> {
        let fact = path_fact(facts, &self.path)?.clone();
        if self.present {
            return self.plan_present(facts, &fact);
        }
        if fact == PathFact::Absent {
            return Ok(self.no_change(format!("`{}` is already absent", self.path)));
        }
        record_not_file(facts, &self.path, PathFact::Absent);
        Ok(self.outcome(
            ChangeKind::Remove,
            format!("remove {}", what_is(&fact)),
            format!("rm -rf {}\n", quote(&self.path)),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::Mode;
    use toyc_engine::facts::Fact;

    fn dir(mode: &str) -> PathFact {
        PathFact::Directory {
            mode: mode.into(),
            owner: "root".into(),
            group: "root".into(),
        }
    }

    fn facts(entries: &[(&str, PathFact)]) -> Facts {
        let mut facts = Facts::default();
        for (path, fact) in entries {
            facts.record(FactQuery::Path((*path).into()), Fact::Path(fact.clone()));
        }
        facts
    }

    fn op(path: &str, mode: Option<&str>, present: bool) -> Directory {
        let attrs = Attrs::new(mode.map(|m| Mode::parse(m).unwrap()), None, None).unwrap();
        Directory::new(path, attrs, present).unwrap()
    }

    #[test]
    fn a_missing_directory_is_created_with_its_parents_recorded() {
        let mut facts = facts(&[
            ("/srv/app/data", PathFact::Absent),
            ("/srv/app", PathFact::Absent),
            ("/srv", dir("755")),
        ]);
        let Outcome::Change(c) = op("/srv/app/data/", Some("0750"), true)
            .plan(&mut facts)
            .unwrap()
        else {
            panic!("a change")
        };
        assert_eq!(c.kind, ChangeKind::Create);
        assert_eq!(c.target, "/srv/app/data");
        assert_eq!(c.summary, "create with mode 750");
        assert_eq!(
            c.script,
            "if [ -d /srv/app/data ]; then chmod 750 /srv/app/data; else mkdir -p -m 750 /srv/app/data; fi\n"
        );
        assert_eq!(
            facts.path("/srv/app/data"),
            Some(&PathFact::Directory {
                mode: "750".into(),
                owner: "?".into(),
                group: "?".into()
            })
        );
        assert!(
            matches!(facts.path("/srv/app"), Some(PathFact::Directory { mode, .. }) if mode == "?")
        );
        assert_eq!(facts.path("/srv"), Some(&dir("755")), "known parents stay");
    }

    #[test]
    fn an_existing_directory_with_the_mode_is_no_change() {
        let mut f = facts(&[("/srv", dir("755"))]);
        let Outcome::NoChange(n) = op("/srv", Some("755"), true).plan(&mut f).unwrap() else {
            panic!("no change")
        };
        assert_eq!(n.reason, "directory `/srv` already exists with mode 755");
        let Outcome::Change(c) = op("/srv", Some("700"), true).plan(&mut f).unwrap() else {
            panic!("a change")
        };
        assert_eq!(
            (c.kind, c.summary.as_str()),
            (ChangeKind::Modify, "mode 755 -> 700")
        );
        assert_eq!(c.script, "chmod 700 /srv\n");
    }

    #[test]
    fn absent_removes_and_records_absence() {
        let mut f = facts(&[("/srv/old", dir("755"))]);
        let Outcome::Change(c) = op("/srv/old", None, false).plan(&mut f).unwrap() else {
            panic!("a change")
        };
        assert_eq!(
            (c.kind, c.script.as_str()),
            (ChangeKind::Remove, "rm -rf /srv/old\n")
        );
        assert_eq!(f.path("/srv/old"), Some(&PathFact::Absent));
        let Outcome::NoChange(n) = op("/srv/old", None, false).plan(&mut f).unwrap() else {
            panic!("no change")
        };
        assert_eq!(n.reason, "`/srv/old` is already absent");
    }

    #[test]
    fn root_and_relative_paths_are_refused_and_files_in_the_way_are_errors() {
        assert_eq!(
            Directory::new("/", Attrs::default(), false).unwrap_err(),
            "refusing to remove `/`"
        );
        assert_eq!(
            Directory::new("//", Attrs::default(), false).unwrap_err(),
            "refusing to remove `/`"
        );
        assert!(Directory::new("", Attrs::default(), false).is_err());
        let mut f = facts(&[(
            "/x",
            PathFact::Link {
                target: "/y".into(),
            },
        )]);
        assert_eq!(
            op("/x", None, true).plan(&mut f).unwrap_err(),
            "`/x` is a symbolic link to `/y`, not a directory; remove it first"
        );
    }
}
