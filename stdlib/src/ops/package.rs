//! Debian packages that are installed (`apt-get install`) or not (`apt-get remove`):
//! only the ones not yet in the desired state are named in the command.

use toyc_engine::facts::{Fact, FactQuery, Facts, PackageFact};
use toyc_engine::plan::{ChangeKind, Operation, Outcome};
use toyc_engine::transport::quote;

/// Check a package name as Debian policy defines it (lower-case letters, digits, `+`,
/// `-`, `.`; at least two characters, starting with a letter or digit), optionally
/// with an architecture (`libc6:amd64`). No globs: `dpkg-query` would expand them.
pub fn package_name(name: &str) -> Result<(), String> {
    let (package, arch) = match name.split_once(':') {
        Some((package, arch)) => (package, Some(arch)),
        None => (name, None),
    };
    let valid = package.len() >= 2
        && package.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && package
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b))
        && arch.is_none_or(|a| {
            !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a Debian package name (lower-case letters, digits, `+`, `-`, `.`, \
             optionally `:ARCH`)",
            name.escape_debug()
        ))
    }
}

/// `packages::installed` / `packages::removed`: every package of `names` installed (or,
/// when not `present`, not installed).
#[derive(Debug, Clone)]
pub struct Packages {
    operation: &'static str,
    names: Vec<String>,
    target: String,
    present: bool,
    update_cache: bool,
    purge: bool,
}

impl Packages {
    /// Packages to install; with `update_cache`, `apt-get update` runs first (only when
    /// something is missing, so a converged host costs nothing).
    pub fn installed(names: Vec<String>, update_cache: bool) -> Result<Packages, String> {
        Packages::new("packages::installed", names, true, update_cache, false)
    }

    /// Packages to remove; with `purge`, their configuration files too.
    pub fn removed(names: Vec<String>, purge: bool) -> Result<Packages, String> {
        Packages::new("packages::removed", names, false, false, purge)
    }

    fn new(
        operation: &'static str,
        mut names: Vec<String>,
        present: bool,
        update_cache: bool,
        purge: bool,
    ) -> Result<Packages, String> {
        if names.is_empty() {
            return Err("no package named".into());
        }
        for name in &names {
            package_name(name)?;
        }
        // Keep the order given (it is the order shown), without repeats.
        let mut seen = std::collections::HashSet::new();
        names.retain(|n| seen.insert(n.clone()));
        Ok(Packages {
            operation,
            target: names.join(" "),
            names,
            present,
            update_cache,
            purge,
        })
    }
}

impl Operation for Packages {
    fn name(&self) -> &str {
        self.operation
    }

    fn target(&self) -> &str {
        &self.target
    }

    fn facts(&self) -> Vec<FactQuery> {
        self.names
            .iter()
            .map(|n| FactQuery::Package(n.clone()))
            .collect()
    }

    fn plan(&self, facts: &mut Facts) -> Result<Outcome, String> {
        let mut todo: Vec<&str> = Vec::new();
        let mut done: Vec<String> = Vec::new();
        for name in &self.names {
            match facts
                .package(name)
                .ok_or_else(|| format!("the fact `Package({name})` was not gathered"))?
            {
                PackageFact::NoDpkg => {
                    return Err(format!(
                        "this host has no `dpkg-query`: `{}` manages packages on Debian-family \
                         hosts (dpkg and apt-get) only; use `shell::run` with the host's own \
                         package manager",
                        self.operation
                    ))
                }
                PackageFact::Installed { version } if self.present => {
                    done.push(format!("{name} {version}"))
                }
                PackageFact::NotInstalled if !self.present => done.push(name.clone()),
                _ => todo.push(name),
            }
        }
        if todo.is_empty() {
            let state = if self.present {
                "installed"
            } else {
                "not installed"
            };
            let reason = format!("already {state}: {}", done.join(", "));
            return Ok(super::no_change(self.operation, &self.target, reason));
        }
        let after = if self.present {
            PackageFact::Installed {
                version: super::UNKNOWN.into(),
            }
        } else {
            PackageFact::NotInstalled
        };
        for name in &todo {
            facts.record(
                FactQuery::Package((*name).to_owned()),
                Fact::Package(after.clone()),
            );
        }
        let list: Vec<String> = todo.iter().map(|n| quote(n)).collect();
        let list = list.join(" ");
        // No prompts; dpkg keeps a configuration file the admin changed.
        let apt = "DEBIAN_FRONTEND=noninteractive apt-get -q -y -o Dpkg::Options::=--force-confold";
        let mut script = String::new();
        let (kind, summary) = if self.present {
            if self.update_cache {
                script.push_str(&format!("{apt} update\n"));
            }
            script.push_str(&format!("{apt} install --no-install-recommends {list}\n"));
            let then = if self.update_cache {
                " (after apt-get update)"
            } else {
                ""
            };
            (
                ChangeKind::Create,
                format!("install {}{then}", todo.join(", ")),
            )
        } else {
            let purge = if self.purge { " --purge" } else { "" };
            script.push_str(&format!("{apt} remove{purge} {list}\n"));
            let verb = if self.purge { "purge" } else { "remove" };
            (ChangeKind::Remove, format!("{verb} {}", todo.join(", ")))
        };
        Ok(super::change(
            self.operation,
            &self.target,
            kind,
            summary,
            script,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(entries: &[(&str, PackageFact)]) -> Facts {
        let mut facts = Facts::default();
        for (name, fact) in entries {
            facts.record(
                FactQuery::Package((*name).into()),
                Fact::Package(fact.clone()),
            );
        }
        facts
    }

    fn installed(version: &str) -> PackageFact {
        PackageFact::Installed {
            version: version.into(),
        }
    }

    #[test]
    fn only_missing_packages_are_installed_then_no_change() {
        let op = Packages::installed(vec!["dpkg".into(), "toyc-demo".into()], true).unwrap();
        let mut f = facts(&[
            ("dpkg", installed("1.21.22")),
            ("toyc-demo", PackageFact::NotInstalled),
        ]);
        let Outcome::Change(c) = op.plan(&mut f).unwrap() else {
            panic!("a change")
        };
        assert_eq!(c.kind, ChangeKind::Create);
        assert_eq!(c.summary, "install toyc-demo (after apt-get update)");
        let apt = "DEBIAN_FRONTEND=noninteractive apt-get -q -y -o Dpkg::Options::=--force-confold";
        assert_eq!(
            c.script,
            format!("{apt} update\n{apt} install --no-install-recommends toyc-demo\n")
        );
        let Outcome::NoChange(n) = op.plan(&mut f).unwrap() else {
            panic!("no change")
        };
        assert_eq!(n.reason, "already installed: dpkg 1.21.22, toyc-demo ?");
    }

    #[test]
    fn removal_names_only_installed_packages() {
        let op = Packages::removed(vec!["a1".into(), "b2".into()], true).unwrap();
        let mut f = facts(&[("a1", installed("1")), ("b2", PackageFact::NotInstalled)]);
        let Outcome::Change(c) = op.plan(&mut f).unwrap() else {
            panic!("a change")
        };
        assert_eq!(
            (c.kind, c.summary.as_str()),
            (ChangeKind::Remove, "purge a1")
        );
        assert!(c
            .script
            .ends_with("apt-get -q -y -o Dpkg::Options::=--force-confold remove --purge a1\n"));
        assert!(matches!(op.plan(&mut f).unwrap(), Outcome::NoChange(_)));
    }

    #[test]
    fn a_host_without_dpkg_is_an_error_that_says_so() {
        let op = Packages::installed(vec!["nginx".into()], false).unwrap();
        let err = op
            .plan(&mut facts(&[("nginx", PackageFact::NoDpkg)]))
            .unwrap_err();
        assert!(err.starts_with("this host has no `dpkg-query`"), "{err}");
    }

    #[test]
    fn names_follow_debian_policy() {
        for good in ["dpkg", "libc6:amd64", "g++", "python3.11", "0ad"] {
            assert!(package_name(good).is_ok(), "{good}");
        }
        for bad in ["", "a", "Nginx", "-y", "ngin*", "a b", "libc6:", "x;rm"] {
            assert!(package_name(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Packages::installed(vec![], false).unwrap_err(),
            "no package named"
        );
    }
}
