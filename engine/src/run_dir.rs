//! Each run's private directory (ssh control sockets, the generated ssh config): under
//! the state directory, named after the process, and swept when its owner is gone.
//!
//! A toyc killed with SIGKILL (or by the OOM killer) cannot remove its directory, so every
//! run first removes the directories whose owning process no longer exists.
//!
//! A control socket's path must fit in 108 bytes; the ssh crate puts
//! `/.ssh-connectionXXXXXX/master.<16 chars>` (48 bytes) under the directory, so the run
//! directory may be at most [`MAX_RUN_DIR`] bytes long. When the state directory is too
//! deep for that, runs use a short fallback (`$XDG_RUNTIME_DIR`, `$TMPDIR`, `/tmp`),
//! swept the same way.

use std::path::{Path, PathBuf};

use crate::state_dir::state_dir;

/// Longest run directory that leaves room for a control socket path (see the module doc):
/// the control sockets go straight into it.
pub const MAX_RUN_DIR: usize = crate::transport::MAX_CONTROL_DIR;

/// Every run directory's name starts with this, then the owner's pid and a dash.
const PREFIX: &str = "toyc-";

/// Longest name of a run directory: the prefix, a pid (at most 7 digits on Linux), a dash
/// and the 6 random characters `tempfile` adds.
const MAX_NAME: usize = PREFIX.len() + 7 + 1 + 6;

/// Create this run's directory (removed when dropped), after sweeping stale ones.
pub fn run_directory() -> std::io::Result<tempfile::TempDir> {
    let base = base_for(state_dir().ok().map(|dir| dir.join("run")).as_deref());
    std::fs::create_dir_all(&base)?;
    sweep(&base);
    tempfile::Builder::new()
        .prefix(&format!("{PREFIX}{}-", std::process::id()))
        .tempdir_in(base)
}

/// Where run directories go: `state/run` when a run directory there fits in
/// [`MAX_RUN_DIR`] bytes, else the first short, existing temporary directory.
fn base_for(state_run: Option<&Path>) -> PathBuf {
    let fits = |dir: &Path| dir.as_os_str().len() + 1 + MAX_NAME <= MAX_RUN_DIR;
    if let Some(dir) = state_run.filter(|dir| fits(dir)) {
        return dir.to_owned();
    }
    [
        std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from),
        Some(std::env::temp_dir()),
    ]
    .into_iter()
    .flatten()
    .find(|dir| fits(dir) && dir.is_dir())
    .unwrap_or_else(|| PathBuf::from("/tmp"))
}

/// Remove the run directories in `base` whose owner process is gone. Best effort: one
/// that cannot be removed (another user's, in a shared /tmp) stays.
fn sweep(base: &Path) {
    // Without /proc no owner can be checked; leave everything.
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = owner(&name.to_string_lossy()) else {
            continue;
        };
        if !Path::new("/proc").join(pid.to_string()).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The pid in a run directory's name `toyc-<pid>-<random>`.
fn owner(name: &str) -> Option<u32> {
    let (pid, random) = name.strip_prefix(PREFIX)?.split_once('-')?;
    (!random.is_empty()).then_some(())?;
    pid.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_is_read_from_the_name() {
        assert_eq!(owner("toyc-4242-a1B2c3"), Some(4242));
        assert_eq!(owner("toyc-a1B2c3"), None, "an older toyc's directory");
        assert_eq!(owner("toyc-4242-"), None);
        assert_eq!(owner("other-4242-a1B2c3"), None);
    }

    #[test]
    fn a_state_directory_too_deep_for_a_socket_path_falls_back_to_a_short_one() {
        let short = Path::new("/home/ops/.local/state/toyc/run");
        assert_eq!(base_for(Some(short)), short);
        let deep = PathBuf::from(format!("/home/{}/.local/state/toyc/run", "x".repeat(40)));
        let base = base_for(Some(&deep));
        assert_ne!(base, deep);
        assert!(base.as_os_str().len() + 1 + MAX_NAME <= MAX_RUN_DIR || base == Path::new("/tmp"));
    }

    #[test]
    fn only_directories_of_gone_processes_are_swept() {
        let base = tempfile::tempdir().expect("tempdir");
        let alive = base
            .path()
            .join(format!("toyc-{}-aaaaaa", std::process::id()));
        // Pids stop below 2^22 on Linux.
        let gone = base.path().join("toyc-4194305-bbbbbb");
        let foreign = base.path().join("toyc-cccccc");
        for dir in [&alive, &gone, &foreign] {
            std::fs::create_dir(dir).expect("mkdir");
        }
        std::fs::write(gone.join("config"), "x").expect("write");
        sweep(base.path());
        assert!(alive.exists() && foreign.exists());
        assert!(!gone.exists());
    }
}
