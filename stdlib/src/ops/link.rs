//! A symbolic link pointing where it should.

use toyc_engine::facts::{FactQuery, Facts, PathFact};
use toyc_engine::plan::{Change, ChangeKind, NoChange, Operation, Outcome};
use toyc_engine::transport::quote;

use super::{absolute, path_fact, record_not_file, what_is};

/// `files::link`: a symbolic link at `path` whose target is `target` (as `ln -s` writes
/// it: a relative target stays relative to the link's directory).
#[derive(Debug, Clone)]
pub struct Link {
    points_to: String,
    path: String,
}

impl Link {
    /// A link at `path` (absolute) to `target` (any non-empty text).
    pub fn new(target: &str, path: &str) -> Result<Link, String> {
        let path = absolute(path)?;
        if path == "/" {
            return Err("`/` cannot be a link".into());
        }
        if target.is_empty() || target.contains(['\0', '\n']) {
            return Err(format!(
                "`{}` is not a link target: give a non-empty path on one line",
                target.escape_debug()
            ));
        }
        Ok(Link {
            points_to: target.to_owned(),
            path,
        })
    }

    /// A temporary link next to `path`, then `mv -T` over it: readers see the old link
    /// or the new one, never none (`ln -sfn` unlinks first).
    fn script(&self) -> String {
        let (dir, name) = self.path.rsplit_once('/').unwrap_or(("", &self.path));
        format!(
            "tmp={}$$\ntrap 'rm -f \"$tmp\"' EXIT\ntrap 'exit 1' HUP INT TERM\n\
             ln -s {} \"$tmp\"\nmv -Tf \"$tmp\" {}\ntrap - EXIT\n",
            quote(&format!("{dir}/.{name}.toyc-")),
            quote(&self.points_to),
            quote(&self.path),
        )
    }
}

impl Operation for Link {
    fn name(&self) -> &str {
        "files::link"
    }

    fn target(&self) -> &str {
        &self.path
    }

    fn facts(&self) -> Vec<FactQuery> {
        vec![FactQuery::Path(self.path.clone())]
    }

    fn plan(&self, facts: &mut Facts) -> Result<Outcome, String> {
        let path = &self.path;
        let (kind, summary) = match path_fact(facts, path)? {
            PathFact::Link { target } if *target == self.points_to => {
                return Ok(Outcome::NoChange(NoChange {
                    operation: "files::link".into(),
                    target: path.clone(),
                    reason: format!("`{path}` already links to `{target}`"),
                }));
            }
            PathFact::Link { target } => (
                ChangeKind::Modify,
                format!("link `{target}` -> `{}`", self.points_to),
            ),
            PathFact::Absent => (ChangeKind::Create, format!("link to `{}`", self.points_to)),
            other => {
                return Err(format!(
                    "`{path}` is {}, not a link; remove it first",
                    what_is(other)
                ))
            }
        };
        record_not_file(
            facts,
            path,
            PathFact::Link {
                target: self.points_to.clone(),
            },
        );
        Ok(Outcome::Change(Change {
            operation: "files::link".into(),
            target: path.clone(),
            kind,
            summary,
            diff: None,
            script: self.script(),
            payload: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use toyc_engine::facts::Fact;

    fn plan(fact: PathFact) -> (Result<Outcome, String>, Facts) {
        let mut facts = Facts::default();
        facts.record(FactQuery::Path("/etc/app/current".into()), Fact::Path(fact));
        let outcome = Link::new("releases/2", "/etc/app/current")
            .unwrap()
            .plan(&mut facts);
        (outcome, facts)
    }

    #[test]
    fn a_link_is_created_or_repointed_and_recorded() {
        let (outcome, facts) = plan(PathFact::Absent);
        let Ok(Outcome::Change(c)) = outcome else {
            panic!("a change")
        };
        assert_eq!(
            (c.kind, c.summary.as_str()),
            (ChangeKind::Create, "link to `releases/2`")
        );
        assert_eq!(
            c.script,
            "tmp=/etc/app/.current.toyc-$$\ntrap 'rm -f \"$tmp\"' EXIT\ntrap 'exit 1' HUP INT TERM\nln -s releases/2 \"$tmp\"\nmv -Tf \"$tmp\" /etc/app/current\ntrap - EXIT\n"
        );
        assert_eq!(
            facts.path("/etc/app/current"),
            Some(&PathFact::Link {
                target: "releases/2".into()
            })
        );
        let (outcome, _) = plan(PathFact::Link {
            target: "releases/1".into(),
        });
        let Ok(Outcome::Change(c)) = outcome else {
            panic!("a change")
        };
        assert_eq!(c.summary, "link `releases/1` -> `releases/2`");
    }

    #[test]
    fn the_right_link_is_no_change_and_a_file_is_an_error() {
        let (outcome, _) = plan(PathFact::Link {
            target: "releases/2".into(),
        });
        let Ok(Outcome::NoChange(n)) = outcome else {
            panic!("no change")
        };
        assert_eq!(n.reason, "`/etc/app/current` already links to `releases/2`");
        let (outcome, _) = plan(PathFact::Other);
        assert!(outcome.unwrap_err().contains("not a link; remove it first"));
        assert!(Link::new("", "/x").is_err());
        assert!(Link::new("x", "y").is_err());
    }
}
