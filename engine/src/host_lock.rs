//! Applies take turns on a host: each apply script holds an `flock` on the host for as
//! long as it runs, so two runs (from one controller or two) never interleave their
//! changes to the same host. The lock is taken inside the apply script itself: no round
//! trip, and one `flock` process when nobody else holds it.

use std::time::Duration;

use crate::transport::quote;

/// How long an apply waits for another run's lock before it fails, unless
/// `TOYC_LOCK_TIMEOUT` (seconds) says otherwise.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(300);

/// Marks the lines the lock prelude prints (`waiting` and `timeout`, with the holder).
const LOCK_MARKER: &str = "@@toyc-lock ";

/// Who takes the lock and how long it waits for it.
#[derive(Debug, Clone)]
pub struct HostLock {
    /// Who holds it, for the message of a run that waits: "run 1234 from controller `ci-3`".
    pub holder: String,
    /// How long to wait for it.
    pub wait: Duration,
}

impl HostLock {
    /// This toyc process as the holder, waiting `TOYC_LOCK_TIMEOUT` seconds (else
    /// [`DEFAULT_LOCK_WAIT`]).
    pub fn for_this_run() -> HostLock {
        let controller = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "unknown".to_owned());
        let user = std::env::var("USER").unwrap_or_else(|_| "unknown".to_owned());
        let wait = std::env::var("TOYC_LOCK_TIMEOUT")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map_or(DEFAULT_LOCK_WAIT, Duration::from_secs);
        HostLock {
            holder: format!(
                "run {} from controller `{controller}` (user `{user}`)",
                std::process::id()
            ),
            wait,
        }
    }

    /// Shell that takes the lock, for the start of an apply script whose marker lines
    /// carry `nonce`; `stop` is how the script ends when the wait times out.
    ///
    /// The lock file is the effective user's (`${XDG_STATE_HOME:-~/.local/state}/toyc`,
    /// where the roles' records are): under sudo that is root's, shared by every run that
    /// changes the host as root, and no other user can plant or replace it. The kernel
    /// releases an `flock` when its holder dies, however it dies. A host without `flock`
    /// (util-linux, busybox) applies unlocked. The holder is written next to the lock for
    /// whoever waits; fd 9 must be closed for the steps (a daemon a step starts would
    /// otherwise hold the lock for good). The holder writes its name just after it takes
    /// the lock: a waiter that finds no name yet looks once more a second later.
    pub(crate) fn script(&self, nonce: &str, stop: &str) -> String {
        let secs = self.wait.as_secs().max(1);
        format!(
            "if command -v flock >/dev/null 2>&1; then\n\
             toyc_d=${{XDG_STATE_HOME:-$HOME/.local/state}}/toyc\n\
             [ -d \"$toyc_d\" ] || mkdir -p \"$toyc_d\" 2>/dev/null\n\
             if {{ command exec 9>>\"$toyc_d/apply.lock\"; }} 2>/dev/null; then\n\
             if ! flock -n 9; then\n\
             toyc_h=; {{ IFS= read -r toyc_h <\"$toyc_d/apply.holder\"; }} 2>/dev/null\n\
             [ -n \"$toyc_h\" ] || {{ sleep 1; IFS= read -r toyc_h <\"$toyc_d/apply.holder\"; }} 2>/dev/null\n\
             printf '{LOCK_MARKER}{nonce} waiting %s\\n' \"${{toyc_h:-another run}}\"\n\
             flock -w {secs} 9 || {{ printf '{LOCK_MARKER}{nonce} timeout %s\\n' \"${{toyc_h:-another run}}\"; {stop}; }}\n\
             fi\n\
             printf '%s\\n' {holder} >\"$toyc_d/apply.holder\"\n\
             fi\n\
             fi\n",
            holder = quote(&self.holder),
        )
    }
}

/// What a line of an apply script's output says about the lock, if anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockNews {
    /// Another run holds it; the script waits.
    Waiting(String),
    /// The wait timed out; nothing was changed.
    TimedOut(String),
}

/// The lock news in `line`, printed by a script with `nonce`.
pub(crate) fn news(line: &str, nonce: &str) -> Option<LockNews> {
    let rest = line.strip_prefix(LOCK_MARKER)?.strip_prefix(nonce)?;
    let rest = rest.strip_prefix(' ')?;
    if let Some(holder) = rest.strip_prefix("waiting ") {
        Some(LockNews::Waiting(holder.to_owned()))
    } else {
        rest.strip_prefix("timeout ")
            .map(|holder| LockNews::TimedOut(holder.to_owned()))
    }
}
