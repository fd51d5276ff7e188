//! `~` in key and known_hosts paths means the user's home, as in a shell.

use std::path::PathBuf;

/// `path` with a leading `~` or `~/` replaced by `$HOME` (left as is when `HOME` is unset).
pub(super) fn expand(path: &str) -> PathBuf {
    expand_with(path, std::env::var_os("HOME").map(PathBuf::from))
}

/// `expand` with the home directory given, so it can be tested.
fn expand_with(path: &str, home: Option<PathBuf>) -> PathBuf {
    let Some(home) = home else {
        return PathBuf::from(path);
    };
    if path == "~" {
        home
    } else if let Some(rest) = path.strip_prefix("~/") {
        home.join(rest)
    } else {
        // `~user/...` needs a password database lookup: left to ssh.
        PathBuf::from(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leading_tilde_is_the_home_directory() {
        let home = Some(PathBuf::from("/home/ada"));
        assert_eq!(
            expand_with("~/.ssh/id_ed25519", home.clone()),
            PathBuf::from("/home/ada/.ssh/id_ed25519")
        );
        assert_eq!(expand_with("~", home.clone()), PathBuf::from("/home/ada"));
    }

    #[test]
    fn other_paths_are_kept() {
        let home = Some(PathBuf::from("/home/ada"));
        assert_eq!(
            expand_with("/etc/key", home.clone()),
            PathBuf::from("/etc/key")
        );
        assert_eq!(
            expand_with("~bob/key", home.clone()),
            PathBuf::from("~bob/key")
        );
        assert_eq!(expand_with("a/~/b", home), PathBuf::from("a/~/b"));
        assert_eq!(expand_with("~/k", None), PathBuf::from("~/k"));
    }

    #[test]
    fn expand_reads_home_from_the_environment() {
        let expected = std::env::var_os("HOME").map_or_else(
            || PathBuf::from("~/k"),
            |home| PathBuf::from(home).join("k"),
        );
        assert_eq!(expand("~/k"), expected);
    }
}
