//! A group that exists, with a gid if one is asked (`groupadd` / `groupmod`), or does
//! not (`groupdel`).

use toyc_engine::facts::{Fact, FactQuery, Facts, GroupFact};
use toyc_engine::plan::{ChangeKind, Operation, Outcome};
use toyc_engine::transport::quote;

use super::user::account_name;

/// `users::group`: the group `name` exists (with `gid`; a new one from the system range
/// with `system`), or, when not `present`, does not.
#[derive(Debug, Clone)]
pub struct Group {
    name: String,
    gid: Option<u32>,
    system: bool,
    present: bool,
}

const OP: &str = "users::group";

impl Group {
    /// The group `name` (checked like `groupadd` checks it).
    pub fn new(name: &str, gid: Option<u32>, system: bool, present: bool) -> Result<Group, String> {
        account_name("group", name)?;
        Ok(Group {
            name: name.to_owned(),
            gid,
            system,
            present,
        })
    }

    fn change(&self, kind: ChangeKind, summary: String, script: String) -> Outcome {
        super::change(OP, &self.name, kind, summary, script)
    }

    fn no_change(&self, reason: String) -> Outcome {
        super::no_change(OP, &self.name, reason)
    }
}

impl Operation for Group {
    fn name(&self) -> &str {
        OP
    }

    fn target(&self) -> &str {
        &self.name
    }

    fn facts(&self) -> Vec<FactQuery> {
        vec![FactQuery::Group(self.name.clone())]
    }

    fn plan(&self, facts: &mut Facts) -> Result<Outcome, String> {
        let name = &self.name;
        let current = facts
            .group(name)
            .ok_or_else(|| format!("the fact `Group({name})` was not gathered"))?
            .cloned();
        let record = |facts: &mut Facts, group: Option<GroupFact>| {
            facts.record(FactQuery::Group(name.clone()), Fact::Group(group));
        };
        let with_gid = self
            .gid
            .map(|g| format!(" with gid {g}"))
            .unwrap_or_default();
        match (current, self.present) {
            (None, false) => Ok(self.no_change(format!("group `{name}` is already absent"))),
            (Some(group), false) => {
                record(facts, None);
                let gid = group.gid.map(|g| format!(" (gid {g})")).unwrap_or_default();
                // `userdel` may have removed a user's own group earlier in the same run.
                Ok(self.change(
                    ChangeKind::Remove,
                    format!("remove group{gid}"),
                    format!(
                        "if getent group {n} >/dev/null; then groupdel {n}; fi\n",
                        n = quote(name)
                    ),
                ))
            }
            (None, true) => {
                record(facts, Some(GroupFact { gid: self.gid }));
                let mut flags = String::new();
                if self.system {
                    flags.push_str("-r ");
                }
                if let Some(gid) = self.gid {
                    flags.push_str(&format!("-g {gid} "));
                }
                Ok(self.change(
                    ChangeKind::Create,
                    format!("create{with_gid}"),
                    format!("groupadd {flags}{}\n", quote(name)),
                ))
            }
            (Some(group), true) => match self.gid {
                Some(gid) if group.gid != Some(gid) => {
                    let was = group
                        .gid
                        .map_or(super::UNKNOWN.to_owned(), |g| g.to_string());
                    record(facts, Some(GroupFact { gid: Some(gid) }));
                    Ok(self.change(
                        ChangeKind::Modify,
                        format!("gid {was} -> {gid}"),
                        format!("groupmod -g {gid} {}\n", quote(name)),
                    ))
                }
                _ => Ok(self.no_change(format!("group `{name}` already exists{with_gid}"))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(gid: Option<u32>) -> Facts {
        let mut facts = Facts::default();
        facts.record(
            FactQuery::Group("app".into()),
            Fact::Group(gid.map(|g| GroupFact { gid: Some(g) })),
        );
        facts
    }

    fn plan(group: &Group, facts: &mut Facts) -> (ChangeKind, String, String) {
        match group.plan(facts).unwrap() {
            Outcome::Change(c) => (c.kind, c.summary, c.script),
            other => panic!("expected a change: {other:?}"),
        }
    }

    #[test]
    fn a_new_group_is_created_then_no_change() {
        let group = Group::new("app", Some(1500), true, true).unwrap();
        let mut f = facts(None);
        assert_eq!(
            plan(&group, &mut f),
            (
                ChangeKind::Create,
                "create with gid 1500".into(),
                "groupadd -r -g 1500 app\n".into()
            )
        );
        let Outcome::NoChange(n) = group.plan(&mut f).unwrap() else {
            panic!("no change")
        };
        assert_eq!(n.reason, "group `app` already exists with gid 1500");
    }

    #[test]
    fn a_different_gid_is_modified_and_absent_removes() {
        let group = Group::new("app", Some(1500), false, true).unwrap();
        assert_eq!(
            plan(&group, &mut facts(Some(1000))),
            (
                ChangeKind::Modify,
                "gid 1000 -> 1500".into(),
                "groupmod -g 1500 app\n".into()
            )
        );
        let without_gid = Group::new("app", None, false, true).unwrap();
        assert!(matches!(
            without_gid.plan(&mut facts(Some(1000))).unwrap(),
            Outcome::NoChange(_)
        ));
        let absent = Group::new("app", None, false, false).unwrap();
        let mut f = facts(Some(1000));
        assert_eq!(plan(&absent, &mut f).0, ChangeKind::Remove);
        assert_eq!(f.group("app"), Some(None));
        assert!(matches!(absent.plan(&mut f).unwrap(), Outcome::NoChange(_)));
    }
}
