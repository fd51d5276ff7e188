//! Where toyc keeps state that outlives a run (console history, caches): one rule for
//! every part of toyc, so they all land in the same directory.

use std::ffi::OsString;
use std::path::PathBuf;

/// Why the state directory cannot be found.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// Neither `TOYC_STATE_DIR`, `XDG_STATE_HOME` nor `HOME` is set to an absolute path.
    #[error(
        "unable to find toyc's state directory: set `TOYC_STATE_DIR` (or `XDG_STATE_HOME`, or `HOME`) to an absolute path"
    )]
    NoHome,
}

/// toyc's state directory: `$TOYC_STATE_DIR`, else `$XDG_STATE_HOME/toyc`, else
/// `~/.local/state/toyc`. The directory may not exist yet: callers create what they
/// need when they first write (the role repo cache, the console's history).
pub fn state_dir() -> Result<PathBuf, StateError> {
    state_dir_from(|name| std::env::var_os(name)).ok_or(StateError::NoHome)
}

/// [`state_dir`] with the environment passed in (for tests).
fn state_dir_from(var: impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    // Empty and relative values count as unset, as the XDG base directory spec asks.
    let absolute = |name: &str| {
        var(name)
            .map(PathBuf::from)
            .filter(|path| path.is_absolute())
    };
    if let Some(dir) = absolute("TOYC_STATE_DIR") {
        return Some(dir);
    }
    if let Some(dir) = absolute("XDG_STATE_HOME") {
        return Some(dir.join("toyc"));
    }
    absolute("HOME").map(|home| home.join(".local/state/toyc"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(vars: &[(&str, &str)]) -> Option<PathBuf> {
        state_dir_from(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        })
    }

    #[test]
    fn toyc_state_dir_wins_then_xdg_then_home() {
        let all = [
            ("TOYC_STATE_DIR", "/s"),
            ("XDG_STATE_HOME", "/x"),
            ("HOME", "/h"),
        ];
        assert_eq!(with(&all), Some(PathBuf::from("/s")));
        assert_eq!(with(&all[1..]), Some(PathBuf::from("/x/toyc")));
        assert_eq!(with(&all[2..]), Some(PathBuf::from("/h/.local/state/toyc")));
        assert_eq!(with(&[]), None);
    }

    #[test]
    fn empty_and_relative_values_count_as_unset() {
        let vars = [
            ("TOYC_STATE_DIR", ""),
            ("XDG_STATE_HOME", "relative"),
            ("HOME", "/h"),
        ];
        assert_eq!(with(&vars), Some(PathBuf::from("/h/.local/state/toyc")));
    }
}
