//! A shell command, run when its guards say so: the escape hatch for everything the
//! other operations cannot express. Without a guard it runs on every apply.

use toyc_engine::facts::{FactQuery, Facts, PathFact};
use toyc_engine::plan::{Change, ChangeKind, NoChange, Operation, Outcome};
use toyc_engine::transport::{is_env_name, quote, sudo_with_env};

use super::{absolute, path_fact};

/// When a command needs to run; every guard given must agree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Guards {
    /// Skip when this path exists (the command creates it).
    pub creates: Option<String>,
    /// Skip when this path is absent (the command removes it).
    pub removes: Option<String>,
    /// Skip when this command succeeds (it is run while facts are gathered: keep it read-only).
    pub unless: Option<String>,
    /// Skip unless this command succeeds (read-only too).
    pub onlyif: Option<String>,
}

/// `shell::run`: `command` under `sh -c` on the host, as a change of kind
/// [`ChangeKind::Run`].
#[derive(Debug, Clone)]
pub struct Run {
    command: String,
    guards: Guards,
    sudo: bool,
    cwd: Option<String>,
    env: Vec<(String, String)>,
}

impl Run {
    /// A command with its guards (paths absolute, commands non-empty). With `sudo` it
    /// runs through `sudo -n` (never prompting); `cwd` and `env` apply to it alone.
    pub fn new(
        command: &str,
        mut guards: Guards,
        sudo: bool,
        cwd: Option<&str>,
        env: Vec<(String, String)>,
    ) -> Result<Run, String> {
        if command.trim().is_empty() {
            return Err("the command is empty".into());
        }
        for path in [&mut guards.creates, &mut guards.removes]
            .into_iter()
            .flatten()
        {
            *path = absolute(path)?;
        }
        for (name, guard) in [("unless", &guards.unless), ("onlyif", &guards.onlyif)] {
            if guard.as_deref().is_some_and(|g| g.trim().is_empty()) {
                return Err(format!("the `{name}` command is empty"));
            }
        }
        for (key, _) in &env {
            if !is_env_name(key) {
                return Err(format!("`{key}` is not a valid environment variable name"));
            }
        }
        Ok(Run {
            command: command.to_owned(),
            guards,
            sudo,
            cwd: cwd.map(absolute).transpose()?,
            env,
        })
    }

    /// Why the command need not run, if a guard says so.
    fn skip(&self, facts: &Facts) -> Result<Option<String>, String> {
        let status = |command: &str| {
            facts
                .status(command)
                .ok_or_else(|| format!("the fact `Status({command})` was not gathered"))
        };
        if let Some(path) = &self.guards.creates {
            let fact = path_fact(facts, path)?;
            if *fact != PathFact::Absent {
                return Ok(Some(format!("`{path}` exists (creates)")));
            }
        }
        if let Some(path) = &self.guards.removes {
            if *path_fact(facts, path)? == PathFact::Absent {
                return Ok(Some(format!("`{path}` is absent (removes)")));
            }
        }
        if let Some(command) = &self.guards.unless {
            if status(command)? == 0 {
                return Ok(Some(format!("`{command}` succeeded (unless)")));
            }
        }
        if let Some(command) = &self.guards.onlyif {
            let code = status(command)?;
            if code != 0 {
                return Ok(Some(format!(
                    "`{command}` failed with status {code} (onlyif)"
                )));
            }
        }
        Ok(None)
    }

    fn script(&self) -> String {
        let mut script = String::new();
        if let Some(cwd) = &self.cwd {
            script.push_str(&format!("cd {}\n", quote(cwd)));
        }
        if self.sudo {
            script.push_str(&sudo_with_env(&self.env, &self.command));
            script.push('\n');
        } else {
            for (key, value) in &self.env {
                script.push_str(&format!("export {key}={}\n", quote(value)));
            }
            // Its own shell, so `set -e` does not change how the user's command behaves.
            script.push_str(&format!("sh -c {}\n", quote(&self.command)));
        }
        script
    }
}

impl Operation for Run {
    fn name(&self) -> &str {
        "shell::run"
    }

    fn target(&self) -> &str {
        &self.command
    }

    fn facts(&self) -> Vec<FactQuery> {
        let g = &self.guards;
        let paths = [&g.creates, &g.removes].into_iter().flatten();
        let commands = [&g.unless, &g.onlyif].into_iter().flatten();
        paths
            .map(|p| FactQuery::Path(p.clone()))
            .chain(commands.map(|c| FactQuery::Status(c.clone())))
            .collect()
    }

    /// What the command does is unknown, so nothing is recorded: later operations plan
    /// against the state before it (see the module docs of `shell`).
    fn plan(&self, facts: &mut Facts) -> Result<Outcome, String> {
        if let Some(reason) = self.skip(facts)? {
            return Ok(Outcome::NoChange(NoChange {
                operation: "shell::run".into(),
                target: self.command.clone(),
                reason,
            }));
        }
        let g = &self.guards;
        let mut why: Vec<String> = Vec::new();
        if let Some(path) = &g.creates {
            why.push(format!("`{path}` is absent"));
        }
        if let Some(path) = &g.removes {
            why.push(format!("`{path}` exists"));
        }
        if let Some(command) = &g.unless {
            why.push(format!("`{command}` failed"));
        }
        if let Some(command) = &g.onlyif {
            why.push(format!("`{command}` succeeded"));
        }
        let summary = if why.is_empty() {
            "run (no guard: runs every time)".to_owned()
        } else {
            format!("run: {}", why.join(", "))
        };
        Ok(Outcome::Change(Change {
            operation: "shell::run".into(),
            target: self.command.clone(),
            kind: ChangeKind::Run,
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

    fn facts(entries: &[(FactQuery, Fact)]) -> Facts {
        let mut facts = Facts::default();
        for (q, f) in entries {
            facts.record(q.clone(), f.clone());
        }
        facts
    }

    fn guarded(guards: Guards) -> Run {
        Run::new("make install", guards, false, None, Vec::new()).unwrap()
    }

    #[test]
    fn without_guards_it_always_runs() {
        let op = guarded(Guards::default());
        assert!(op.facts().is_empty());
        let Outcome::Change(c) = op.plan(&mut Facts::default()).unwrap() else {
            panic!("a change")
        };
        assert_eq!(c.kind, ChangeKind::Run);
        assert_eq!(c.summary, "run (no guard: runs every time)");
        assert_eq!(c.script, "sh -c 'make install'\n");
    }

    #[test]
    fn creates_and_removes_look_at_paths() {
        let op = guarded(Guards {
            creates: Some("/opt/app/bin/".into()),
            ..Guards::default()
        });
        assert_eq!(op.facts(), [FactQuery::Path("/opt/app/bin".into())]);
        let present = (
            FactQuery::Path("/opt/app/bin".into()),
            Fact::Path(PathFact::Other),
        );
        let Outcome::NoChange(n) = op.plan(&mut facts(std::slice::from_ref(&present))).unwrap()
        else {
            panic!("no change")
        };
        assert_eq!(n.reason, "`/opt/app/bin` exists (creates)");
        let absent = (present.0.clone(), Fact::Path(PathFact::Absent));
        let Outcome::Change(c) = op.plan(&mut facts(std::slice::from_ref(&absent))).unwrap() else {
            panic!("a change")
        };
        assert_eq!(c.summary, "run: `/opt/app/bin` is absent");

        let op = guarded(Guards {
            removes: Some("/opt/app/bin".into()),
            ..Guards::default()
        });
        let Outcome::NoChange(n) = op.plan(&mut facts(&[absent])).unwrap() else {
            panic!("no change")
        };
        assert_eq!(n.reason, "`/opt/app/bin` is absent (removes)");
    }

    #[test]
    fn unless_and_onlyif_look_at_statuses() {
        let op = guarded(Guards {
            unless: Some("test -x /opt/app".into()),
            onlyif: Some("test -d /src".into()),
            ..Guards::default()
        });
        let unless = |s| {
            (
                FactQuery::Status("test -x /opt/app".into()),
                Fact::Status(s),
            )
        };
        let onlyif = |s| (FactQuery::Status("test -d /src".into()), Fact::Status(s));
        let Outcome::NoChange(n) = op.plan(&mut facts(&[unless(0), onlyif(0)])).unwrap() else {
            panic!("no change")
        };
        assert_eq!(n.reason, "`test -x /opt/app` succeeded (unless)");
        let Outcome::NoChange(n) = op.plan(&mut facts(&[unless(1), onlyif(2)])).unwrap() else {
            panic!("no change")
        };
        assert_eq!(n.reason, "`test -d /src` failed with status 2 (onlyif)");
        let Outcome::Change(c) = op.plan(&mut facts(&[unless(1), onlyif(0)])).unwrap() else {
            panic!("a change")
        };
        assert_eq!(
            c.summary,
            "run: `test -x /opt/app` failed, `test -d /src` succeeded"
        );
        let err = op.plan(&mut Facts::default()).unwrap_err();
        assert!(err.contains("was not gathered"), "{err}");
    }

    #[test]
    fn sudo_cwd_and_env_shape_the_script() {
        let env = vec![("A".to_owned(), "x y".to_owned())];
        let op = Run::new(
            "echo $A",
            Guards::default(),
            true,
            Some("/srv"),
            env.clone(),
        )
        .unwrap();
        let Outcome::Change(c) = op.plan(&mut Facts::default()).unwrap() else {
            panic!("a change")
        };
        // The value is piped to the shell sudo starts: sudo's arguments are public.
        assert!(
            c.script.starts_with(
                "cd /srv\nprintf %s '1\nexport A='\\''x y'\\''\n' | exec sudo -n -- sh -c "
            ),
            "{}",
            c.script
        );
        assert!(c.script.ends_with("echo $A'\n"), "{}", c.script);
        let op = Run::new("echo $A", Guards::default(), false, None, env).unwrap();
        let Outcome::Change(c) = op.plan(&mut Facts::default()).unwrap() else {
            panic!("a change")
        };
        assert_eq!(c.script, "export A='x y'\nsh -c 'echo $A'\n");
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert_eq!(
            Run::new(" ", Guards::default(), false, None, Vec::new()).unwrap_err(),
            "the command is empty"
        );
        let err = Run::new(
            "x",
            Guards {
                creates: Some("rel/path".into()),
                ..Guards::default()
            },
            false,
            None,
            Vec::new(),
        )
        .unwrap_err();
        assert!(err.contains("not an absolute path"), "{err}");
        let err = Run::new(
            "x",
            Guards::default(),
            false,
            None,
            vec![("1A".into(), "v".into())],
        )
        .unwrap_err();
        assert_eq!(err, "`1A` is not a valid environment variable name");
    }
}
