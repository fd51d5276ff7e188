//! How new file content reaches a host, and how it is shown before it does: the step
//! script that writes its standard input atomically, and the unified diff.

use toyc_engine::transport::{atomic_write, quote, PutOptions};

use super::attrs::Mode;

/// Attributes the uploaded file gets. `mode` is the asked one, the file's current one,
/// or 644 for a new file, so the result does not depend on the umask; `None` when the
/// current mode is not known yet (an operation before this one created the file with
/// the umask's): then it is read from `dest` when the step runs. Ownership is either
/// asked for (a failure is an error) or kept if possible.
#[derive(Debug, Clone)]
pub(crate) struct Upload<'a> {
    pub dest: &'a str,
    pub mode: Option<Mode>,
    pub owner: Option<&'a str>,
    pub group: Option<&'a str>,
    /// The file's current owner and group, kept when no owner or group is asked for.
    pub keep: Option<(&'a str, &'a str)>,
    /// The content's SHA-256, checked on the host before the file is replaced: set for
    /// streamed content ([`Payload::File`](toyc_engine::plan::Payload::File)).
    pub sha256: Option<&'a str>,
}

/// Mode of a new file when none is asked for, as `host::put` and Ansible give it.
pub(crate) const NEW_FILE_MODE: Mode = Mode(0o644);

impl Upload<'_> {
    /// The step script: standard input written to `dest` atomically, by the engine's
    /// one writer (`toyc_engine::transport::atomic_write`, shared with `host::put`).
    pub(crate) fn script(&self) -> String {
        let options = PutOptions {
            mode: self.mode.map(|m| m.stat_form()),
            owner: self.owner.map(str::to_owned),
            group: self.group.map(str::to_owned),
            sudo: false,
            keep_owner: self.keep.is_some(),
            sha256: self.sha256.map(str::to_owned),
        };
        atomic_write(self.dest, None, &options)
    }
}

/// A step prelude for an edit of what the file held at planning (`old`, `None`: it was
/// absent): the step fails, writing nothing, when the file is no longer that. Another
/// run may have changed it since, and an edit planned on the old content would undo
/// that change unseen (applies take turns on a host, plans do not).
pub(crate) fn unchanged_since_planned(dest: &str, old: Option<&[u8]>) -> String {
    let d = quote(dest);
    let refuse = format!(
        "{{ echo {} >&2; exit 1; }}",
        quote(&format!(
            "toyc: `{dest}` changed after this run planned its edit (another run?); nothing written, run again"
        ))
    );
    match old {
        Some(old) => format!(
            "case $(sha256sum < {d}) in {}*) ;; *) {refuse};; esac\n",
            super::sha256_hex(old)
        ),
        None => format!("[ ! -e {d} ] || {refuse}\n"),
    }
}

/// A unified diff (3 lines of context) from `old` to `new` when both are UTF-8 text,
/// headed `--- dest (on host)` / `+++ dest (planned)`.
pub(crate) fn diff(dest: &str, old: &[u8], new: &[u8]) -> Option<String> {
    let old = std::str::from_utf8(old).ok()?;
    let new = std::str::from_utf8(new).ok()?;
    Some(
        similar::TextDiff::from_lines(old, new)
            .unified_diff()
            .context_radius(3)
            .header(&format!("{dest} (on host)"), &format!("{dest} (planned)"))
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::attrs::UNKNOWN;

    fn run(script: &str, stdin: &[u8]) -> std::process::Output {
        use std::io::Write;
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("set -e\n{script}"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        child.wait_with_output().unwrap()
    }

    #[test]
    fn upload_replaces_the_file_with_the_mode_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("it's here");
        std::fs::write(&dest, "old").unwrap();
        let dest_text = dest.to_str().unwrap();
        let upload = Upload {
            dest: dest_text,
            mode: Mode::parse("0640").ok(),
            owner: None,
            group: None,
            keep: Some((UNKNOWN, UNKNOWN)),
            sha256: None,
        };
        let out = run(&upload.script(), b"new\n");
        assert!(out.status.success(), "{out:?}");
        assert_eq!(std::fs::read(&dest).unwrap(), b"new\n");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dest).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o640);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn an_unknown_mode_is_read_from_the_file_when_the_step_runs() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f");
        std::fs::write(&dest, "old").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o604)).unwrap();
        let dest_text = dest.to_str().unwrap();
        let upload = Upload {
            dest: dest_text,
            mode: None,
            owner: None,
            group: None,
            keep: None,
            sha256: None,
        };
        let out = run(&upload.script(), b"new");
        assert!(out.status.success(), "{out:?}");
        let mode = std::fs::metadata(&dest).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o604);
    }

    #[test]
    fn a_failed_upload_removes_its_temporary_and_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f");
        std::fs::write(&dest, "old").unwrap();
        let dest_text = dest.to_str().unwrap();
        let upload = Upload {
            dest: dest_text,
            mode: Mode::parse("644").ok(),
            owner: Some("no-such-user-toyc"),
            group: None,
            keep: None,
            sha256: None,
        };
        let out = run(&upload.script(), b"new");
        assert!(!out.status.success());
        assert_eq!(std::fs::read(&dest).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn diff_has_the_headers_and_context() {
        let old = "a\nb\nc\nd\ne\nf\ng\nh\n";
        let new = "a\nb\nc\nd\nE\nf\ng\nh\n";
        let diff = diff("/etc/x", old.as_bytes(), new.as_bytes()).unwrap();
        assert_eq!(
            diff,
            "--- /etc/x (on host)\n+++ /etc/x (planned)\n@@ -2,7 +2,7 @@\n b\n c\n d\n-e\n+E\n f\n g\n h\n"
        );
        assert_eq!(super::diff("/x", b"\xff", b"a"), None);
    }
}
