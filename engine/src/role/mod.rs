//! Roles: a role is a git repo named after it, holding `runbook.rhai` (or the older
//! `runbook.yml`, see [`runbook_yml`]), `files/`, `templates/`, `attributes.yml` and Rhai
//! modules under `lib/`. This module is the role itself: its name, its repo, its cached
//! checkout in toyc's state directory (synced by [`crate::gitsync`]) and the script that
//! checkout runs. The checkout is the script's sandbox root: files, templates, imports and
//! attributes resolve only inside it.
//!
//! The rest of what `toyc role` does lives beside it: [`attributes`] (layering, with
//! origins), [`hosts`] (which hosts a role runs on), [`record`] (the applied-commit record
//! each host keeps) and [`status`] (those records read back against the remote).

pub mod attributes;
pub mod hosts;
pub mod record;
pub mod runbook_yml;
pub mod status;

use std::path::{Path, PathBuf};

use crate::context::confined_path;
use crate::gitsync::{self, short, SyncError, SyncOptions, Synced};
use attributes::Attributes;
use runbook_yml::Runbook;

/// Why a role could not be found, synced or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RoleError {
    /// The role name would not make a plain file or directory name.
    #[error(
        "role name `{role}` must be letters, digits, `-`, `_` or `.` (and not start with `.`)"
    )]
    Name {
        /// The name given.
        role: String,
    },
    /// Neither a repo URL nor a base for one was given.
    #[error("where is role `{role}`? pass `--repo URL`, or `--repos-base URL` (or set TOYC_REPOS_BASE) for `URL/{role}.git`")]
    NoRepo {
        /// The role.
        role: String,
    },
    /// The repo could not be cloned or updated.
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// The checkout holds no runbook at its top.
    #[error("role `{role}` (commit {}) has neither `runbook.rhai` nor `runbook.yml` at the top of its repo", short(commit))]
    NoRunbook {
        /// The role.
        role: String,
        /// The commit checked out.
        commit: String,
    },
    /// A file of the role leads outside its checkout (a symlink, say).
    #[error("{0}")]
    Confined(String),
    /// The role's `runbook.yml` is malformed.
    #[error(transparent)]
    RunbookYml(#[from] runbook_yml::RunbookYmlError),
    /// The role's `attributes.yml` is malformed or not a map.
    #[error("role `{role}`: attributes.yml: {message}")]
    Attributes {
        /// The role.
        role: String,
        /// What is wrong.
        message: String,
    },
    /// A file of the role, or of toyc's cache, could not be read.
    #[error("unable to read `{}`", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file in toyc's cache could not be written.
    #[error("unable to write `{}`", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// A role: its name, its repo, and where toyc caches its checkout.
#[derive(Debug, Clone)]
pub struct Role {
    /// The role's name (checked plain: it names files and directories).
    pub name: String,
    /// The repo's URL, as given (it may hold a token: show [`Role::display_url`]).
    pub url: String,
    /// The cached checkout, under `roles/` of toyc's state directory.
    pub cache: PathBuf,
}

impl Role {
    /// Role `name` from `repo`, or `name.git` under `repos_base`, cached under `state_dir`.
    pub fn new(
        name: &str,
        repo: Option<&str>,
        repos_base: Option<&str>,
        state_dir: &Path,
    ) -> Result<Role, RoleError> {
        check_name(name)?;
        let url = match (repo, repos_base) {
            (Some(url), _) => url.to_owned(),
            (None, Some(base)) => format!("{}/{name}.git", base.trim_end_matches('/')),
            (None, None) => {
                return Err(RoleError::NoRepo {
                    role: name.to_owned(),
                })
            }
        };
        let cache = gitsync::cache_path(&state_dir.join("roles"), name, &url);
        Ok(Role {
            name: name.to_owned(),
            url,
            cache,
        })
    }

    /// The repo's URL without any password or token.
    pub fn display_url(&self) -> String {
        gitsync::display_url(&self.url)
    }

    /// Clone or update the cache. Blocks (git2 does): call it off the async threads.
    pub fn sync(&self, options: &SyncOptions) -> Result<Synced, RoleError> {
        Ok(gitsync::sync(&self.url, &self.cache, options)?)
    }

    /// The synced checkout's script and attributes; a `runbook.yml` is translated into a
    /// `runbook.rhai` beside the cache.
    pub fn open(&self, synced: &Synced) -> Result<Checkout, RoleError> {
        Checkout::open(self, synced)
    }

    /// The commit the last successful apply from this machine applied, if any: what a
    /// run's header compares against (not what the cache held: `--status` and
    /// `--show-attributes` sync the cache too).
    pub fn applied_here(&self) -> Option<String> {
        std::fs::read_to_string(beside(&self.cache, "applied"))
            .ok()
            .map(|c| c.trim().to_owned())
    }

    /// Remember (atomically) that every host of a run applied `commit`.
    pub fn note_applied(&self, commit: &str) -> Result<(), RoleError> {
        let path = beside(&self.cache, "applied");
        let tmp = beside(&path, "tmp");
        std::fs::write(&tmp, format!("{commit}\n"))
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|source| RoleError::Write { path, source })
    }

    /// How many files differ between `old` (nothing: every file) and `new` in the cache;
    /// `None` when history was rewritten under `old`.
    pub fn files_changed(&self, old: Option<&str>, new: &str) -> Option<usize> {
        gitsync::files_between(&self.cache, old, new)
    }
}

/// A synced role's checkout: the script to run, the role's attributes, and its
/// `runbook.yml` when it has one.
#[derive(Debug)]
pub struct Checkout {
    /// The script to run: `runbook.rhai`, or the translation of `runbook.yml` beside the cache.
    pub script: PathBuf,
    /// The role's own attribute layers (under the inventory's vars).
    pub attributes: Attributes,
    /// The parsed `runbook.yml`, for `--explain`.
    pub runbook_yml: Option<Runbook>,
    /// What the user should know about the checkout (a `runbook.yml` that is ignored).
    pub warnings: Vec<String>,
}

impl Checkout {
    fn open(role: &Role, synced: &Synced) -> Result<Checkout, RoleError> {
        let checkout = &role.cache;
        let confined = |name: &str| confined_path(checkout, name).map_err(RoleError::Confined);
        let mut attributes = Attributes::default();
        let mut warnings = Vec::new();
        let (script, runbook_yml) = if checkout.join("runbook.rhai").exists() {
            if checkout.join("runbook.yml").exists() {
                warnings.push(format!(
                    "role `{}` has both runbook.rhai and runbook.yml: runbook.rhai runs and \
                     runbook.yml is ignored (delete one of them)",
                    role.name
                ));
            }
            (confined("runbook.rhai")?, None)
        } else if checkout.join("runbook.yml").exists() {
            let path = confined("runbook.yml")?;
            let text = read(&path)?;
            let runbook = Runbook::parse(&text, &path)?;
            // Beside the checkout, not in it: the cache stays exactly the remote's tree.
            let script = beside(checkout, "runbook.rhai");
            let translated = runbook.to_rhai_from(&role.name, Some(&path));
            std::fs::write(&script, translated).map_err(|source| RoleError::Write {
                path: script.clone(),
                source,
            })?;
            attributes.push("runbook.yml", runbook.attributes.clone());
            (script, Some(runbook))
        } else {
            return Err(RoleError::NoRunbook {
                role: role.name.clone(),
                commit: synced.new.clone(),
            });
        };
        if checkout.join("attributes.yml").exists() {
            let path = confined("attributes.yml")?;
            attributes.push_yaml("attributes.yml", &read(&path)?, &role.name)?;
        }
        Ok(Checkout {
            script,
            attributes,
            runbook_yml,
            warnings,
        })
    }
}

fn read(path: &Path) -> Result<String, RoleError> {
    std::fs::read_to_string(path).map_err(|source| RoleError::Read {
        path: path.to_owned(),
        source,
    })
}

/// `path` with `.suffix` appended (not replacing an extension: role names may hold dots).
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

/// Role names become directory and file names: keep them plain.
fn check_name(role: &str) -> Result<(), RoleError> {
    let plain = !role.is_empty()
        && !role.starts_with('.')
        && role
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if plain {
        Ok(())
    } else {
        Err(RoleError::Name {
            role: role.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_plain() {
        for bad in ["", ".hidden", "a/b", "../x", "web role"] {
            assert!(
                matches!(check_name(bad), Err(RoleError::Name { .. })),
                "{bad:?}"
            );
        }
        for good in ["web", "web-1", "db_main", "v1.2"] {
            assert!(check_name(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn the_repo_is_given_or_named_after_the_role_under_the_base() {
        let state = Path::new("/state");
        let given = Role::new(
            "web",
            Some("file:///r/x.git"),
            Some("ssh://h/roles/"),
            state,
        )
        .expect("role");
        assert_eq!(given.url, "file:///r/x.git");
        let based = Role::new("web", None, Some("ssh://h/roles/"), state).expect("role");
        assert_eq!(based.url, "ssh://h/roles/web.git");
        assert!(based.cache.starts_with("/state/roles"));
        let err = Role::new("web", None, None, state).expect_err("no repo");
        assert!(err.to_string().contains("`--repo URL`"), "{err}");
    }

    #[test]
    fn the_applied_commit_is_remembered_beside_the_cache() {
        let dir = tempfile::tempdir().expect("tempdir");
        let role = Role::new("web.v2", Some("file:///r"), None, dir.path()).expect("role");
        std::fs::create_dir_all(role.cache.parent().expect("parent")).expect("mkdir");
        assert_eq!(role.applied_here(), None);
        role.note_applied("abc123").expect("noted");
        assert_eq!(role.applied_here().as_deref(), Some("abc123"));
        // Beside, not replacing the role name's "extension".
        let name = role
            .cache
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        assert!(role
            .cache
            .with_file_name(format!("{name}.applied"))
            .is_file());
    }
}
