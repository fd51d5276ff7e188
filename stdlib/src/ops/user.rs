//! A user account that exists with the attributes asked for (`useradd` / `usermod`), or
//! does not (`userdel`). Only the attributes a script names are compared and changed.

use toyc_engine::facts::{Fact, FactQuery, Facts, GroupFact, UserFact};
use toyc_engine::plan::{ChangeKind, Operation, Outcome};
use toyc_engine::transport::quote;

/// Check a user or group name (`what`) as `useradd` and `groupadd` take it: letters,
/// digits, `.`, `_`, `-` (a trailing `$` for machine accounts), not starting with `-`,
/// not all digits (it would read as an id), at most 32 characters.
pub fn account_name(what: &str, name: &str) -> Result<(), String> {
    let body = name.strip_suffix('$').unwrap_or(name);
    let valid = !body.is_empty()
        && name.len() <= 32
        && !body.starts_with('-')
        && !body.bytes().all(|b| b.is_ascii_digit())
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a valid {what} name: use letters, digits, `.`, `_` and `-` \
             (not first), at most 32 characters, not only digits",
            name.escape_debug()
        ))
    }
}

/// What `users::user` asks of an existing or new account; `None` leaves that attribute
/// as it is (or to `useradd`'s default for a new account).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSpec {
    /// Numeric user id (`-u`).
    pub uid: Option<u32>,
    /// Primary group (`-g`). Unset for a new user: the group named after the user,
    /// joined if it exists, created (`-U`) otherwise.
    pub group: Option<String>,
    /// Supplementary groups (`-G`).
    pub groups: Option<Vec<String>>,
    /// With `groups`: add to them and leave other memberships alone (`usermod -a`),
    /// rather than make them the exact list (Ansible's `append`).
    pub append: bool,
    /// Login shell (`-s`).
    pub shell: Option<String>,
    /// Home directory (`-d`; an existing home is not moved).
    pub home: Option<String>,
    /// Create the home directory of a new user (`-m`, the default) or not (`-M`).
    pub create_home: bool,
    /// A new user is a system account (`-r`: uid from the system range, no aging).
    pub system: bool,
    /// The GECOS field (`-c`).
    pub comment: Option<String>,
}

impl Default for UserSpec {
    fn default() -> UserSpec {
        UserSpec {
            uid: None,
            group: None,
            groups: None,
            append: false,
            shell: None,
            home: None,
            create_home: true,
            system: false,
            comment: None,
        }
    }
}

/// `users::user`: the account `name` exists as `spec` says, or (`Absent`) does not.
#[derive(Debug, Clone)]
pub struct User {
    name: String,
    state: UserState,
}

/// What `users::user` ensures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserState {
    /// The account exists with these attributes.
    Present(UserSpec),
    /// There is no such account; `remove_home` also deletes its home and mail spool
    /// (`userdel -r`).
    Absent {
        /// `userdel -r`.
        remove_home: bool,
    },
}

const OP: &str = "users::user";

impl User {
    /// The account `name` in `state`; names, shell and home are checked here.
    pub fn new(name: &str, mut state: UserState) -> Result<User, String> {
        account_name("user", name)?;
        if let UserState::Present(spec) = &mut state {
            if let Some(group) = &spec.group {
                account_name("group", group)?;
            }
            if let Some(groups) = &mut spec.groups {
                for group in groups.iter() {
                    account_name("group", group)?;
                }
                groups.sort();
                groups.dedup();
            }
            for (what, path) in [("shell", &spec.shell), ("home", &spec.home)] {
                if let Some(path) = path {
                    if !path.starts_with('/') || path.contains(['\n', ':', '\0']) {
                        return Err(format!(
                            "the {what} `{}` must be an absolute path without `:`",
                            path.escape_debug()
                        ));
                    }
                }
            }
            if let Some(comment) = &spec.comment {
                if comment.contains(['\n', ':', '\0']) {
                    return Err("the comment must be one line without `:`".into());
                }
            }
            if spec.append && spec.groups.is_none() {
                return Err("`append` needs `groups`: the groups to add the user to".into());
            }
        }
        Ok(User {
            name: name.to_owned(),
            state,
        })
    }

    fn change(&self, kind: ChangeKind, summary: String, script: String) -> Outcome {
        super::change(OP, &self.name, kind, summary, script)
    }

    fn no_change(&self, reason: String) -> Outcome {
        super::no_change(OP, &self.name, reason)
    }

    /// The groups the account needs to exist: its primary group (the one named after it
    /// when none is asked: it decides between `-g` and `-U`) and its supplementary ones.
    fn needed_groups(spec: &UserSpec, name: &str) -> Vec<String> {
        let primary = spec.group.clone().unwrap_or_else(|| name.to_owned());
        std::iter::once(primary)
            .chain(spec.groups.iter().flatten().cloned())
            .collect()
    }

    fn plan_present(&self, spec: &UserSpec, facts: &mut Facts) -> Result<Outcome, String> {
        let name = &self.name;
        let group_exists = |facts: &Facts, group: &str| -> Result<bool, String> {
            facts
                .group(group)
                .map(|g| g.is_some())
                .ok_or_else(|| format!("the fact `Group({group})` was not gathered"))
        };
        for group in spec.group.iter().chain(spec.groups.iter().flatten()) {
            if !group_exists(facts, group)? {
                return Err(format!(
                    "group `{group}` does not exist on the host; declare it with \
                     `users::group(\"{group}\")` before this user"
                ));
            }
        }
        let current = facts
            .user(name)
            .ok_or_else(|| format!("the fact `User({name})` was not gathered"))?
            .cloned();
        let Some(current) = current else {
            return self.plan_create(spec, facts, group_exists(facts, name)?);
        };
        let mut flags: Vec<String> = Vec::new();
        let mut differences: Vec<String> = Vec::new();
        let mut after = current.clone();
        let show = |v: Option<&str>| v.unwrap_or(super::UNKNOWN).to_owned();
        if let Some(uid) = spec.uid {
            if current.uid != Some(uid) {
                let was = current
                    .uid
                    .map_or(super::UNKNOWN.to_owned(), |u| u.to_string());
                differences.push(format!("uid {was} -> {uid}"));
                flags.push(format!("-u {uid}"));
                after.uid = Some(uid);
            }
        }
        if let Some(group) = &spec.group {
            if current.group.as_ref() != Some(group) {
                differences.push(format!(
                    "group {} -> {group}",
                    show(current.group.as_deref())
                ));
                flags.push(format!("-g {}", quote(group)));
                after.group = Some(group.clone());
            }
        }
        if let Some(wanted) = &spec.groups {
            let primary = after.group.clone();
            let wanted: Vec<String> = wanted
                .iter()
                .filter(|g| Some(*g) != primary.as_ref())
                .cloned()
                .collect();
            let have_list = current.groups.clone().unwrap_or_default();
            let added: Vec<&String> = wanted.iter().filter(|g| !have_list.contains(g)).collect();
            let removed: Vec<&String> = if spec.append {
                Vec::new()
            } else {
                have_list.iter().filter(|g| !wanted.contains(g)).collect()
            };
            if !added.is_empty() || !removed.is_empty() {
                let mut parts: Vec<String> = added.iter().map(|g| format!("+{g}")).collect();
                parts.extend(removed.iter().map(|g| format!("-{g}")));
                differences.push(format!("groups {}", parts.join(" ")));
                if spec.append {
                    let added: Vec<&str> = added.iter().map(|g| g.as_str()).collect();
                    flags.push(format!("-a -G {}", quote(&added.join(","))));
                    let mut all = have_list.clone();
                    all.extend(added.iter().map(|g| (*g).to_owned()));
                    all.sort();
                    after.groups = Some(all);
                } else {
                    flags.push(format!("-G {}", quote_list(&wanted)));
                    after.groups = Some(wanted.clone());
                }
            }
        }
        for (what, flag, want, have, slot) in [
            ("shell", "-s", &spec.shell, &current.shell, &mut after.shell),
            ("home", "-d", &spec.home, &current.home, &mut after.home),
            (
                "comment",
                "-c",
                &spec.comment,
                &current.comment,
                &mut after.comment,
            ),
        ] {
            if let Some(want) = want {
                if have.as_ref() != Some(want) {
                    differences.push(format!("{what} {} -> {want}", show(have.as_deref())));
                    flags.push(format!("{flag} {}", quote(want)));
                    *slot = Some(want.clone());
                }
            }
        }
        if differences.is_empty() {
            return Ok(self.no_change(format!("user `{name}` already exists{}", describe(spec))));
        }
        record_user(facts, name, Some(after));
        Ok(self.change(
            ChangeKind::Modify,
            differences.join(", "),
            format!("usermod {} {}\n", flags.join(" "), quote(name)),
        ))
    }

    fn plan_create(
        &self,
        spec: &UserSpec,
        facts: &mut Facts,
        own_group_exists: bool,
    ) -> Result<Outcome, String> {
        let name = &self.name;
        let mut flags: Vec<String> = Vec::new();
        if spec.system {
            flags.push("-r".into());
        }
        if let Some(uid) = spec.uid {
            flags.push(format!("-u {uid}"));
        }
        // Explicit either way, so the result does not depend on USERGROUPS_ENAB in
        // /etc/login.defs: join the group named after the user, or create it.
        let primary = spec.group.clone().unwrap_or_else(|| name.clone());
        let creates_group = spec.group.is_none() && !own_group_exists;
        if creates_group {
            flags.push("-U".into());
        } else {
            flags.push(format!("-g {}", quote(&primary)));
        }
        let groups: Vec<String> = spec
            .groups
            .iter()
            .flatten()
            .filter(|g| **g != primary)
            .cloned()
            .collect();
        if !groups.is_empty() {
            flags.push(format!("-G {}", quote_list(&groups)));
        }
        for (flag, value) in [
            ("-s", &spec.shell),
            ("-d", &spec.home),
            ("-c", &spec.comment),
        ] {
            if let Some(value) = value {
                flags.push(format!("{flag} {}", quote(value)));
            }
        }
        flags.push(if spec.create_home { "-m" } else { "-M" }.into());
        if creates_group {
            facts.record(
                FactQuery::Group(name.clone()),
                Fact::Group(Some(GroupFact { gid: None })),
            );
        }
        record_user(
            facts,
            name,
            Some(UserFact {
                uid: spec.uid,
                group: Some(primary),
                groups: Some(groups),
                comment: Some(spec.comment.clone().unwrap_or_default()),
                home: spec.home.clone(),
                shell: spec.shell.clone(),
            }),
        );
        let mut summary = format!("create{}", describe(spec));
        if creates_group {
            summary.push_str(&format!(" (and group {name})"));
        }
        Ok(self.change(
            ChangeKind::Create,
            summary,
            format!("useradd {} {}\n", flags.join(" "), quote(name)),
        ))
    }
}

/// Groups as one `-G` argument.
fn quote_list(groups: &[String]) -> String {
    quote(&groups.join(","))
}

fn record_user(facts: &mut Facts, name: &str, user: Option<UserFact>) {
    facts.record(FactQuery::User(name.to_owned()), Fact::User(user));
}

/// What was asked, for people: ` with uid 1500, shell /bin/bash, groups adm,staff`.
fn describe(spec: &UserSpec) -> String {
    let mut parts = Vec::new();
    if let Some(uid) = spec.uid {
        parts.push(format!("uid {uid}"));
    }
    if let Some(group) = &spec.group {
        parts.push(format!("group {group}"));
    }
    if let Some(groups) = &spec.groups {
        let list = if groups.is_empty() {
            "none".to_owned()
        } else {
            groups.join(",")
        };
        let word = if spec.append { "in groups" } else { "groups" };
        parts.push(format!("{word} {list}"));
    }
    for (what, value) in [
        ("shell", &spec.shell),
        ("home", &spec.home),
        ("comment", &spec.comment),
    ] {
        if let Some(value) = value {
            parts.push(format!("{what} {value}"));
        }
    }
    super::with_parts(&parts)
}

impl Operation for User {
    fn name(&self) -> &str {
        OP
    }

    fn target(&self) -> &str {
        &self.name
    }

    fn facts(&self) -> Vec<FactQuery> {
        let mut queries = vec![FactQuery::User(self.name.clone())];
        if let UserState::Present(spec) = &self.state {
            queries.extend(
                User::needed_groups(spec, &self.name)
                    .into_iter()
                    .map(FactQuery::Group),
            );
        }
        queries
    }

    fn plan(&self, facts: &mut Facts) -> Result<Outcome, String> {
        match &self.state {
            UserState::Present(spec) => self.plan_present(spec, facts),
            UserState::Absent { remove_home } => {
                let name = &self.name;
                let current = facts
                    .user(name)
                    .ok_or_else(|| format!("the fact `User({name})` was not gathered"))?;
                let Some(current) = current else {
                    return Ok(self.no_change(format!("user `{name}` is already absent")));
                };
                let uid = current
                    .uid
                    .map(|u| format!(" (uid {u})"))
                    .unwrap_or_default();
                record_user(facts, name, None);
                let flag = if *remove_home { "-r " } else { "" };
                let what = if *remove_home { " and its home" } else { "" };
                Ok(self.change(
                    ChangeKind::Remove,
                    format!("remove user{uid}{what}"),
                    format!("userdel {flag}{}\n", quote(name)),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use toyc_engine::plan::Change;

    fn existing() -> UserFact {
        UserFact {
            uid: Some(1500),
            group: Some("app".into()),
            groups: Some(vec!["adm".into(), "staff".into()]),
            comment: Some(String::new()),
            home: Some("/home/app".into()),
            shell: Some("/bin/sh".into()),
        }
    }

    fn facts(user: Option<UserFact>, groups: &[&str]) -> Facts {
        let mut facts = Facts::default();
        record_user(&mut facts, "app", user);
        for group in ["app", "adm", "staff", "sudo", "users"] {
            let exists = groups.contains(&group);
            facts.record(
                FactQuery::Group(group.into()),
                Fact::Group(exists.then_some(GroupFact { gid: Some(1) })),
            );
        }
        facts
    }

    fn present(spec: UserSpec) -> User {
        User::new("app", UserState::Present(spec)).unwrap()
    }

    fn change(outcome: Outcome) -> Change {
        match outcome {
            Outcome::Change(c) => c,
            other => panic!("expected a change: {other:?}"),
        }
    }

    #[test]
    fn a_new_user_gets_exactly_the_flags_asked_and_its_own_group() {
        let spec = UserSpec {
            uid: Some(1500),
            groups: Some(vec!["staff".into(), "adm".into()]),
            shell: Some("/bin/bash".into()),
            ..UserSpec::default()
        };
        let mut f = facts(None, &["adm", "staff"]);
        let c = change(present(spec.clone()).plan(&mut f).unwrap());
        assert_eq!(c.kind, ChangeKind::Create);
        assert_eq!(
            c.script,
            "useradd -u 1500 -U -G adm,staff -s /bin/bash -m app\n"
        );
        assert_eq!(
            c.summary,
            "create with uid 1500, groups adm,staff, shell /bin/bash (and group app)"
        );
        assert_eq!(f.group("app"), Some(Some(&GroupFact { gid: None })));
        // Planned again on the state it leaves: nothing more to do.
        let Outcome::NoChange(n) = present(spec).plan(&mut f).unwrap() else {
            panic!("no change")
        };
        assert_eq!(
            n.reason,
            "user `app` already exists with uid 1500, groups adm,staff, shell /bin/bash"
        );
    }

    #[test]
    fn an_existing_group_of_the_same_name_is_joined() {
        let mut f = facts(None, &["app"]);
        let c = change(present(UserSpec::default()).plan(&mut f).unwrap());
        assert_eq!(c.script, "useradd -g app -m app\n");
    }

    #[test]
    fn only_the_attributes_that_differ_are_changed() {
        let spec = UserSpec {
            uid: Some(1500),
            shell: Some("/bin/bash".into()),
            ..UserSpec::default()
        };
        let mut f = facts(Some(existing()), &["app", "adm", "staff"]);
        let c = change(present(spec).plan(&mut f).unwrap());
        assert_eq!(
            (c.kind, c.summary.as_str(), c.script.as_str()),
            (
                ChangeKind::Modify,
                "shell /bin/sh -> /bin/bash",
                "usermod -s /bin/bash app\n"
            )
        );
        assert_eq!(
            f.user("app").flatten().and_then(|u| u.shell.as_deref()),
            Some("/bin/bash")
        );
    }

    #[test]
    fn groups_are_the_exact_list_unless_appended() {
        let all = ["app", "adm", "staff", "sudo"];
        let exact = UserSpec {
            groups: Some(vec!["sudo".into(), "adm".into()]),
            ..UserSpec::default()
        };
        let c = change(
            present(exact)
                .plan(&mut facts(Some(existing()), &all))
                .unwrap(),
        );
        assert_eq!(c.summary, "groups +sudo -staff");
        assert_eq!(c.script, "usermod -G adm,sudo app\n");

        let append = UserSpec {
            groups: Some(vec!["sudo".into(), "adm".into()]),
            append: true,
            ..UserSpec::default()
        };
        let mut f = facts(Some(existing()), &all);
        let c = change(present(append.clone()).plan(&mut f).unwrap());
        assert_eq!(
            (c.summary.as_str(), c.script.as_str()),
            ("groups +sudo", "usermod -a -G sudo app\n")
        );
        assert!(matches!(
            present(append).plan(&mut f).unwrap(),
            Outcome::NoChange(_)
        ));

        let none = UserSpec {
            groups: Some(vec![]),
            ..UserSpec::default()
        };
        let c = change(
            present(none)
                .plan(&mut facts(Some(existing()), &all))
                .unwrap(),
        );
        assert_eq!(
            (c.summary.as_str(), c.script.as_str()),
            ("groups -adm -staff", "usermod -G '' app\n")
        );
    }

    #[test]
    fn the_primary_group_in_groups_is_not_a_difference() {
        let spec = UserSpec {
            groups: Some(vec!["app".into(), "adm".into(), "staff".into()]),
            ..UserSpec::default()
        };
        assert!(matches!(
            present(spec)
                .plan(&mut facts(Some(existing()), &["app", "adm", "staff"]))
                .unwrap(),
            Outcome::NoChange(_)
        ));
    }

    #[test]
    fn a_missing_group_is_an_error_naming_it() {
        let spec = UserSpec {
            groups: Some(vec!["sudo".into()]),
            ..UserSpec::default()
        };
        let err = present(spec).plan(&mut facts(None, &["app"])).unwrap_err();
        assert_eq!(
            err,
            "group `sudo` does not exist on the host; declare it with `users::group(\"sudo\")` before this user"
        );
    }

    #[test]
    fn absent_removes_once() {
        let user = User::new("app", UserState::Absent { remove_home: true }).unwrap();
        let mut f = facts(Some(existing()), &[]);
        let c = change(user.plan(&mut f).unwrap());
        assert_eq!(
            (c.kind, c.summary.as_str(), c.script.as_str()),
            (
                ChangeKind::Remove,
                "remove user (uid 1500) and its home",
                "userdel -r app\n"
            )
        );
        let Outcome::NoChange(n) = user.plan(&mut f).unwrap() else {
            panic!("no change")
        };
        assert_eq!(n.reason, "user `app` is already absent");
    }

    #[test]
    fn bad_names_and_paths_are_refused() {
        for bad in ["", "-rf", "1000", "a b", "a:b", "x\n", &"a".repeat(33)] {
            assert!(
                User::new(bad, UserState::Absent { remove_home: false }).is_err(),
                "{bad:?}"
            );
        }
        assert!(account_name("user", "build$").is_ok());
        assert!(account_name("user", "www-data").is_ok());
        let spec = UserSpec {
            shell: Some("bash".into()),
            ..UserSpec::default()
        };
        assert_eq!(
            User::new("app", UserState::Present(spec)).unwrap_err(),
            "the shell `bash` must be an absolute path without `:`"
        );
        let spec = UserSpec {
            append: true,
            ..UserSpec::default()
        };
        assert!(User::new("app", UserState::Present(spec)).is_err());
    }
}
