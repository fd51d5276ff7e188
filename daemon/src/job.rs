//! What the daemon queues: a role run for the pushes of one repo (the store keeps it as
//! JSON under the role's name), how pushes queued for the same role merge, and which
//! files a run is for, computed with git from the pushes' commit ranges.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::webhook::is_zero;

/// A role run, as queued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleRun {
    /// The repo's full name.
    pub repo: String,
    /// The role.
    pub role: String,
    /// The commit to apply: the newest push's.
    pub commit: String,
    /// Every push merged into this run, oldest first: `(before, after)`.
    pub pushes: Vec<(String, String)>,
    /// Apply every file, not only what changed (a force push, a retry, a first run).
    pub full: bool,
    /// Why the run is full, for its header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_because: Option<String>,
}

impl RoleRun {
    /// The run of one push.
    pub fn of_push(repo: &str, role: &str, before: &str, after: &str, forced: bool) -> RoleRun {
        RoleRun {
            repo: repo.to_owned(),
            role: role.to_owned(),
            commit: after.to_owned(),
            pushes: vec![(before.to_owned(), after.to_owned())],
            full: forced,
            full_because: forced.then(|| "a force push".to_owned()),
        }
    }

    /// A deliberate re-run of `self`: the same commit, every file.
    pub fn retry(&self) -> RoleRun {
        RoleRun {
            full: true,
            full_because: Some("a retry".into()),
            ..self.clone()
        }
    }

    /// The payload as the store keeps it.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// A stored payload; `None` when it is not a role run.
    pub fn from_value(value: &Value) -> Option<RoleRun> {
        serde_json::from_value(value.clone()).ok()
    }
}

/// Merges a push into a queued run of the same role: the newest commit, every push's
/// range (so the run applies the union of their changed files), full when either is.
///
/// A push that continues the last one (its `before` is the last `after`) extends that
/// range instead of adding one, so a burst of pushes keeps the payload small: the files
/// of `a..c` are those of `a..b` and `b..c`, except a file changed and changed back,
/// which the hosts (at `a`) already have.
pub fn merge(queued: &Value, new: &Value) -> Value {
    let (Some(mut queued), Some(new)) = (RoleRun::from_value(queued), RoleRun::from_value(new))
    else {
        return new.clone();
    };
    queued.commit = new.commit;
    for (before, after) in new.pushes {
        match queued.pushes.last_mut() {
            Some(last) if last.1 == before => last.1 = after,
            _ => queued.pushes.push((before, after)),
        }
    }
    if new.full && !queued.full {
        queued.full = true;
        queued.full_because = new.full_because;
    }
    queued.to_value()
}

/// The files a run is for.
#[derive(Debug, Clone, PartialEq)]
pub enum Changes {
    /// Every file (with the reason).
    Full(String),
    /// These files, relative to the repo's top, sorted.
    Files(Vec<String>),
}

/// The union of the files each push changed, from git in the synced `checkout`: a push
/// whose `before` is unknown, all zeros, or not an ancestor of its `after` (history
/// rewritten) makes the run full.
pub fn changed_files(checkout: &Path, run: &RoleRun) -> Changes {
    if run.full {
        return Changes::Full(run.full_because.clone().unwrap_or("asked".into()));
    }
    let Ok(repo) = git2::Repository::open(checkout) else {
        return Changes::Full("the checkout cannot be read".into());
    };
    let mut files = BTreeSet::new();
    for (before, after) in &run.pushes {
        if is_zero(before) {
            return Changes::Full("a new branch".into());
        }
        match range_files(&repo, before, after) {
            Ok(changed) => files.extend(changed),
            Err(why) => return Changes::Full(why),
        }
    }
    Changes::Files(files.into_iter().collect())
}

fn range_files(repo: &git2::Repository, before: &str, after: &str) -> Result<Vec<String>, String> {
    let short = |c: &str| c.chars().take(7).collect::<String>();
    let oid = |c: &str| {
        git2::Oid::from_str(c)
            .ok()
            .and_then(|oid| repo.find_commit(oid).ok())
    };
    let old = oid(before).ok_or(format!("commit {} is unknown here", short(before)))?;
    let new = oid(after).ok_or(format!("commit {} is unknown here", short(after)))?;
    let descends = old.id() == new.id()
        || repo
            .graph_descendant_of(new.id(), old.id())
            .unwrap_or(false);
    if !descends {
        return Err(format!(
            "history was rewritten ({} is not an ancestor of {})",
            short(before),
            short(after)
        ));
    }
    let (old_tree, new_tree) = match (old.tree(), new.tree()) {
        (Ok(old), Ok(new)) => (old, new),
        (Err(e), _) | (_, Err(e)) => return Err(e.message().to_owned()),
    };
    let diff = repo
        .diff_tree_to_tree(Some(&old_tree), Some(&new_tree), None)
        .map_err(|e| e.message().to_owned())?;
    let mut files = Vec::new();
    for delta in diff.deltas() {
        for file in [delta.old_file(), delta.new_file()] {
            if let Some(path) = file.path().and_then(Path::to_str) {
                files.push(path.to_owned());
            }
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_pushes_keep_every_range_and_the_newest_commit() {
        let first = RoleRun::of_push("o/web", "web", "a", "b", false).to_value();
        let second = RoleRun::of_push("o/web", "web", "b", "c", false).to_value();
        let merged = RoleRun::from_value(&merge(&first, &second)).expect("a role run");
        assert_eq!(merged.commit, "c");
        assert_eq!(
            merged.pushes,
            vec![("a".into(), "c".into())],
            "b..c continues a..b"
        );
        let apart = RoleRun::of_push("o/web", "web", "x", "y", false).to_value();
        let merged = RoleRun::from_value(&merge(&first, &apart)).expect("a role run");
        assert_eq!(
            merged.pushes,
            vec![("a".into(), "b".into()), ("x".into(), "y".into())],
            "a push that does not continue the last keeps its own range"
        );
        assert!(!merged.full);
        let forced = RoleRun::of_push("o/web", "web", "x", "d", true).to_value();
        let merged = RoleRun::from_value(&merge(&merge(&first, &forced), &second)).expect("run");
        assert!(merged.full, "a force push anywhere makes the run full");
        assert_eq!(merged.commit, "c");
    }
}
