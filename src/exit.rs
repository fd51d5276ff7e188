//! Every exit code toyc uses, in one place: `--help` and the README print this table.

/// How a toyc process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Everything succeeded on every selected host.
    Success = 0,
    /// A command, task or script failed on at least one host.
    Failed = 1,
    /// `--check` found changes to make (nothing was changed); `role --status`: a host is
    /// behind or never applied.
    ChangesPending = 2,
    /// At least one host could not be reached (and none failed otherwise).
    Unreachable = 3,
    /// The command line was wrong: unknown flag, missing argument, changes to apply
    /// without a terminal to ask on and without `-y`.
    Usage = 64,
    /// An input was wrong: inventory, script, vars file, limit pattern.
    Input = 65,
    /// Interrupted by Ctrl-C (128 + SIGINT).
    Interrupted = 130,
}

impl ExitCode {
    /// The process exit status.
    pub fn code(self) -> i32 {
        self as i32
    }

    /// The code for a run with these host totals.
    pub fn of(failed: usize, unreachable: usize) -> ExitCode {
        if failed > 0 {
            ExitCode::Failed
        } else if unreachable > 0 {
            ExitCode::Unreachable
        } else {
            ExitCode::Success
        }
    }
}

/// The exit status table shown by `toyc --help`.
pub const EXIT_STATUS_HELP: &str = "\
Exit status:
  0    success on every selected host
  1    a command, task or script failed on at least one host
  2    --check found changes to make (role --status: a host is behind or never applied)
  3    at least one host was unreachable (and none failed)
  64   usage error (unknown flag, missing argument, changes to make without a terminal and without -y)
  65   bad input (inventory, script, vars file, limit pattern, deploy config, invalid task list)
  130  interrupted (Ctrl-C)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_outrank_unreachable_hosts() {
        assert_eq!(ExitCode::of(0, 0), ExitCode::Success);
        assert_eq!(ExitCode::of(0, 2), ExitCode::Unreachable);
        assert_eq!(ExitCode::of(1, 2), ExitCode::Failed);
    }

    #[test]
    fn the_help_table_lists_every_code() {
        for code in [0, 1, 2, 3, 64, 65, 130] {
            assert!(
                EXIT_STATUS_HELP.contains(&format!("\n  {code} ")),
                "{code} is documented"
            );
        }
    }
}
