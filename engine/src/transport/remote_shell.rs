//! The POSIX shell text toyc sends to hosts: quoting, the wrapper that applies a
//! request's environment, directory and sudo, and the atomic-write script.

use std::borrow::Cow;

use super::{ExecRequest, PutOptions};

/// The shell function that prints the current step's payload inside an apply script,
/// without starting a process for text. A step whose script names it gets `/dev/null`
/// on standard input; other steps read the payload from standard input.
pub const PAYLOAD_FUNCTION: &str = "toyc_payload";

/// Marks the first stderr line of an SSH command: the remote shell's pid, which is also
/// its process group (sshd makes each session's shell a session leader), so a timed-out
/// command can be killed on the host with everything it started.
pub(crate) const PID_MARKER: &str = "toyc-pid ";

/// Quote `text` as one word for a POSIX shell.
pub fn quote(text: &str) -> String {
    if !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
    {
        return text.to_owned();
    }
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Whether `key` can name an environment variable in a POSIX shell: letters, digits and
/// `_`, not starting with a digit. Every variable toyc sets on a host is checked with
/// this, because a key lands unquoted in `export KEY=...`: `A=1;touch x;B` would run.
pub fn is_env_name(key: &str) -> bool {
    !key.is_empty()
        && !key.starts_with(|c: char| c.is_ascii_digit())
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// An environment variable name that [`is_env_name`] refused.
#[derive(Debug)]
pub(crate) struct BadEnvName(pub String);

impl BadEnvName {
    /// The transport error for host `host`.
    pub(crate) fn on(self, host: &str) -> super::TransportError {
        super::TransportError::BadEnvName {
            host: host.to_owned(),
            key: self.0,
        }
    }
}

/// The script that runs `request` under `sh -c`: environment, directory, then the command
/// itself (through `sudo -n` when asked). With `report_pid`, the shell first prints its
/// pid on stderr for [`PID_MARKER`]. The prelude ends with a newline so that a syntax
/// error in the user's command cannot stop it from running. Every transport builds its
/// command here, so this is where environment names are checked.
///
/// The script is a command line, which every user of the host can read (`ps -eo args`),
/// so environment values are not in it: they arrive first on standard input (see
/// [`stdin_of`]) and [`ENV_READER`] takes them from there.
pub(crate) fn wrap(request: &ExecRequest, report_pid: bool) -> Result<String, BadEnvName> {
    if let Some((key, _)) = request.env.iter().find(|(key, _)| !is_env_name(key)) {
        return Err(BadEnvName(key.clone()));
    }
    let mut script = String::new();
    if report_pid {
        script.push_str("printf '");
        script.push_str(PID_MARKER);
        script.push_str("%s\\n' $$ >&2\n");
    }
    if let Some(cwd) = &request.cwd {
        script.push_str(&format!("cd -- {} || exit 125\n", quote(cwd)));
    }
    let command = if request.env.is_empty() {
        request.command.clone()
    } else {
        format!("{ENV_READER}\n{}", request.command)
    };
    if request.sudo {
        // sudo resets the environment: the variables are read by the shell it starts.
        script.push_str(&format!("exec sudo -n -- sh -c {}", quote(&command)));
    } else {
        script.push_str(&command);
    }
    Ok(script)
}

/// What the command of `request` reads on standard input: the environment block for
/// [`ENV_READER`] (when there are variables), then the request's own input. `None` (the
/// command gets `/dev/null`) when there is neither.
/// Borrowed when there is no environment block: a copy of a big upload per host adds up.
pub(crate) fn stdin_of(request: &ExecRequest) -> Option<Cow<'_, [u8]>> {
    if request.env.is_empty() {
        return request.stdin.as_deref().map(Cow::Borrowed);
    }
    let mut bytes = env_block(&request.env).into_bytes();
    bytes.extend_from_slice(request.stdin.as_deref().unwrap_or_default());
    Some(Cow::Owned(bytes))
}

/// Shell that reads an [`env_block`] from standard input and exports its variables.
/// `read` takes one byte at a time from a pipe, so whatever follows the block stays
/// unread for the command.
pub const ENV_READER: &str = "IFS= read -r toyc_n; toyc_s=; \
while [ \"$toyc_n\" -gt 0 ] 2>/dev/null; do IFS= read -r toyc_l; toyc_s=\"$toyc_s$toyc_l\n\"; toyc_n=$((toyc_n-1)); done; \
eval \"$toyc_s\"; unset toyc_n toyc_s toyc_l";

/// `env` as [`ENV_READER`] reads it: the number of lines, then one `export` per variable
/// (a value with newlines spans lines; quoting keeps it whole).
pub fn env_block(env: &[(String, String)]) -> String {
    let exports: String = env
        .iter()
        .map(|(key, value)| format!("export {key}={}\n", quote(value)))
        .collect();
    format!("{}\n{exports}", exports.matches('\n').count())
}

/// `command` under `sh -c` through `sudo -n`, with `env` set, as a step of a script the
/// host reads on standard input. sudo resets the environment and its arguments are
/// public (`ps`), so the variables are piped to the shell it starts (`printf` is a
/// builtin: no command line shows them either).
pub fn sudo_with_env(env: &[(String, String)], command: &str) -> String {
    if env.is_empty() {
        return format!("exec sudo -n -- sh -c {}", quote(command));
    }
    format!(
        "printf %s {} | exec sudo -n -- sh -c {}",
        quote(&env_block(env)),
        quote(&format!("{ENV_READER}\nexec </dev/null\n{command}"))
    )
}

/// Kill a remote process group found through [`PID_MARKER`]: TERM now, KILL two seconds
/// later from a detached subshell, so the caller waits for one round trip only. No `--`
/// before the negative pid: dash's builtin `kill` refuses it.
pub(crate) fn kill_group(pid: u32, sudo: bool) -> String {
    let sudo = if sudo { "sudo -n " } else { "" };
    format!(
        "{sudo}kill -TERM -{pid} 2>/dev/null; (sleep 2; {sudo}kill -KILL -{pid}) </dev/null >/dev/null 2>&1 & true"
    )
}

/// A shell script that copies its stdin to `dest` atomically: the one way toyc writes
/// files (`host::put`, and every file operation's change).
///
/// The temporary file lives next to `dest` (so `mv` is a rename on the same filesystem),
/// is named after the writing shell's pid (unique among running processes, and keeps
/// plans deterministic), is created with `set -C` (never follows a planted symlink) and
/// is removed if the script fails or is interrupted. `dest` is replaced only after the
/// content arrived (all `len` bytes, when given: a dropped connection looks like an early
/// end of input to `cat`) and the mode and owner are set. Without a mode, the file keeps
/// its current one (0644 when new); with `keep_owner` and no owner or group asked, it keeps
/// its current owner and group where the writer may give them (as Ansible's atomic move).
///
/// Without `len` (a step of an [`ApplyScript`](crate::plan::ApplyScript)), the content is
/// what [`PAYLOAD_FUNCTION`] prints when the step defines it, else stdin. Processes are
/// the cost of a step on a small host, so the temporary is created with the asked mode
/// where a umask can give it (no `chmod`), and `mv` is the one process a new file costs.
pub fn atomic_write(dest: &str, len: Option<usize>, options: &PutOptions) -> String {
    let (dir, name) = match dest.rsplit_once('/') {
        Some(("", name)) => ("", name),
        Some((dir, name)) => (dir, name),
        None => (".", dest),
    };
    let d = quote(dest);
    // Creation mode 0666 minus the umask: exact for any mode without execute or special
    // bits (a default ACL on the directory would override it, as for any new file).
    let creation_umask = options
        .mode
        .as_deref()
        .and_then(|m| u32::from_str_radix(m, 8).ok())
        .filter(|m| m & !0o666 == 0)
        .map(|m| format!("{:04o}", !m & 0o777));
    let source = match len {
        Some(_) => "cat".to_owned(),
        None => format!(
            "if command -v {PAYLOAD_FUNCTION} >/dev/null; then {PAYLOAD_FUNCTION}; else cat; fi"
        ),
    };
    let mut script = format!(
        "umask {}\ntmp={}$$\ntrap 'rm -f \"$tmp\"' EXIT\ntrap 'exit 1' HUP INT TERM PIPE\n\
         set -C\n{{ {source}; }} > \"$tmp\" || exit 1\nset +C\n",
        creation_umask.as_deref().unwrap_or("077"),
        quote(&format!("{dir}/.{name}.toyc-"))
    );
    if let Some(len) = len {
        script.push_str(&format!(
            "[ \"$(wc -c < \"$tmp\")\" -eq {len} ] || {{ echo 'toyc: upload cut short, destination left as it was' >&2; exit 1; }}\n"
        ));
    }
    if let Some(sha256) = &options.sha256 {
        script.push_str(&format!(
            "case $(sha256sum < \"$tmp\") in {}*) ;; *) echo 'toyc: upload cut short or changed since it was planned, destination left as it was' >&2; exit 1;; esac\n",
            quote(sha256)
        ));
    }
    match (&options.mode, &creation_umask) {
        (Some(_), Some(_)) => {}
        (Some(mode), None) => script.push_str(&format!("chmod {} \"$tmp\" || exit 1\n", quote(mode))),
        // Not the 0600 the umask gave the temporary file.
        (None, _) => script.push_str(&format!(
            "if [ -e {d} ]; then chmod --reference={d} \"$tmp\" 2>/dev/null || chmod 0644 \"$tmp\"; else chmod 0644 \"$tmp\"; fi\n"
        )),
    }
    match (&options.owner, &options.group) {
        (None, None) if options.keep_owner => {
            // Only root can give a file away: an unprivileged writer keeps its own. No
            // `chown` process when both files are the writer's already (`test -O/-G`).
            script.push_str(&format!(
                "[ ! -e {d} ] || {{ [ -O {d} ] && [ -G {d} ] && [ -G \"$tmp\" ]; }} || chown --reference={d} \"$tmp\" 2>/dev/null || :\n"
            ));
        }
        (owner, group) => {
            if let Some(owner) = owner {
                script.push_str(&format!("chown {} \"$tmp\" || exit 1\n", quote(owner)));
            }
            if let Some(group) = group {
                script.push_str(&format!("chgrp {} \"$tmp\" || exit 1\n", quote(group)));
            }
        }
    }
    script.push_str(&format!("mv -f \"$tmp\" {d} || exit 1\ntrap - EXIT\n"));
    script
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_leaves_plain_words_and_escapes_the_rest() {
        assert_eq!(quote("abc/def-1.txt"), "abc/def-1.txt");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn quoted_text_round_trips_through_sh() {
        let nasty = "a 'b' \"c\" $HOME `x` \\ ; | & * \n end";
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s {}", quote(nasty)))
            .output()
            .expect("sh runs");
        assert_eq!(String::from_utf8_lossy(&out.stdout), nasty);
    }

    #[test]
    fn wrap_puts_env_and_cwd_before_the_command() {
        let mut request = ExecRequest::new("echo $A");
        request.env = vec![("A".into(), "x y".into())];
        request.cwd = Some("/tmp".into());
        assert_eq!(
            wrap(&request, false).expect("valid names"),
            format!("cd -- /tmp || exit 125\n{ENV_READER}\necho $A")
        );
        assert_eq!(
            stdin_of(&request).as_deref(),
            Some(&b"1\nexport A='x y'\n"[..])
        );
        request.sudo = true;
        let script = wrap(&request, true).expect("valid names");
        assert!(
            script.starts_with(
                "printf 'toyc-pid %s\\n' $$ >&2\ncd -- /tmp || exit 125\nexec sudo -n -- sh -c "
            ),
            "{script}"
        );
        assert!(!script.contains("x y"), "{script}");
    }

    #[test]
    fn wrap_refuses_an_env_name_that_is_not_one() {
        for key in ["A=1;touch x;B", "", "1A", "A B", "A-B"] {
            let mut request = ExecRequest::new("true");
            request.env = vec![(key.into(), "x".into())];
            for sudo in [false, true] {
                request.sudo = sudo;
                assert!(wrap(&request, false).is_err(), "{key:?} refused");
            }
        }
    }

    /// Run `script` under `sh -c` with `stdin` fed to it.
    fn run_sh(script: &str, stdin: &[u8]) -> std::process::Output {
        use std::io::Write;
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("sh runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin)
            .expect("write stdin");
        child.wait_with_output().expect("wait")
    }

    #[test]
    fn atomic_write_script_replaces_the_file_and_sets_the_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("out.txt");
        std::fs::write(&dest, "old").expect("write");
        let script = atomic_write(
            dest.to_str().expect("utf-8 path"),
            Some(11),
            &PutOptions {
                mode: Some("0640".into()),
                ..PutOptions::default()
            },
        );
        assert!(run_sh(&script, b"new content").status.success());
        assert_eq!(std::fs::read_to_string(&dest).expect("read"), "new content");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dest).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).expect("ls").collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn keep_owner_keeps_another_users_file_theirs() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("f");
        std::fs::write(&dest, "old").expect("write");
        let options = PutOptions {
            mode: Some("644".into()),
            keep_owner: true,
            ..PutOptions::default()
        };
        let script = atomic_write(dest.to_str().expect("utf-8"), None, &options);
        let mine = std::fs::metadata(dir.path()).expect("stat").uid();
        // Only root can hand a file to someone else; otherwise the writer's own file stays its own.
        let other = if mine == 0 { 65534 } else { mine };
        std::os::unix::fs::chown(&dest, Some(other), Some(other)).expect("chown");
        assert!(run_sh(&script, b"new").status.success());
        let meta = std::fs::metadata(&dest).expect("stat");
        assert_eq!(std::fs::read(&dest).expect("read"), b"new");
        assert_eq!((meta.uid(), meta.gid()), (other, other));
        assert_eq!(meta.mode() & 0o7777, 0o644);
    }

    #[test]
    fn a_short_upload_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("f");
        std::fs::write(&dest, "old").expect("write");
        let script = atomic_write(
            dest.to_str().expect("utf-8"),
            Some(1000),
            &PutOptions::default(),
        );
        // Half the bytes, then end of input: what a dropped connection looks like.
        let out = run_sh(&script, &[b'x'; 500]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("upload cut short"));
        assert_eq!(std::fs::read_to_string(&dest).expect("read"), "old");
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("ls").count(),
            1,
            "temporary removed"
        );
    }
}
