//! toyc's state directory on the controller: one place for everything toyc keeps between
//! runs (the role repo cache now; the state store, history and the REPL's history later).
//!
//! `$TOYC_STATE_DIR` when set, else `$XDG_STATE_HOME/toyc`, else `~/.local/state/toyc`.

use std::path::PathBuf;

/// Why the state directory cannot be found.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// Neither `TOYC_STATE_DIR`, `XDG_STATE_HOME` nor `HOME` is set.
    #[error(
        "unable to find toyc's state directory: set `TOYC_STATE_DIR` (or `XDG_STATE_HOME`, or `HOME`)"
    )]
    NoHome,
}

/// The state directory (not created here: each user of it creates what it needs).
pub fn state_dir() -> Result<PathBuf, StateError> {
    let set = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = set("TOYC_STATE_DIR") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = set("XDG_STATE_HOME") {
        return Ok(PathBuf::from(dir).join("toyc"));
    }
    set("HOME")
        .map(|home| PathBuf::from(home).join(".local/state/toyc"))
        .ok_or(StateError::NoHome)
}
