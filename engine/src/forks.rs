//! How many hosts a run works on at once when `--forks` is not given: as many as the
//! controller's open-file limit, process limit and memory allow, not a constant. A host
//! waiting on the network costs the controller little (issue 17, item 4): its OpenSSH
//! master (a process, about 1.5 MiB), and while a command runs a mux client (another
//! process) and the pipes to it. A fixed 100 serialised a fleet of 480 hosts 80 ms away
//! into five waves of round trips.

/// File descriptors toyc holds per host in flight: the pipes to the mux client of a
/// running command (stdin, stdout, stderr) and to the master while it starts, with room.
pub const FDS_PER_HOST: u64 = 8;
/// File descriptors kept for everything else (the runtime, logs, the script's files).
pub const FDS_RESERVED: u64 = 64;
/// Processes per host in flight: its master and one mux client.
pub const PROCESSES_PER_HOST: u64 = 2;
/// Controller memory per host in flight, in bytes: the master's ~1.4 MiB, a mux
/// client's share and toyc's own plans, rounded up.
pub const MEMORY_PER_HOST: u64 = 4 * 1024 * 1024;
/// Never more than this many at once, whatever the limits say: beyond it the
/// controller's CPU (key exchanges) is the bottleneck, not waiting.
pub const MAX_FORKS: usize = 2000;
/// What is used when no limit can be read.
pub const FALLBACK_FORKS: usize = 100;

/// The controller's limits that bound the hosts in flight; `None` where unknown or
/// unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capacity {
    /// The soft limit on open files (`ulimit -n`).
    pub open_files: Option<u64>,
    /// The soft limit on processes of this user (`ulimit -u`).
    pub processes: Option<u64>,
    /// Memory available for new work (`MemAvailable` in /proc/meminfo), in bytes.
    pub memory: Option<u64>,
}

impl Capacity {
    /// This machine's, read now.
    pub fn of_this_machine() -> Capacity {
        Capacity {
            open_files: soft_limit("Max open files"),
            processes: soft_limit("Max processes"),
            memory: available_memory(),
        }
    }

    /// The hosts to work on at once: what the tightest limit allows, using at most
    /// half of the processes and of the memory (the hosts' own sshd and other work
    /// share the machine), from 1 to [`MAX_FORKS`]; [`FALLBACK_FORKS`] when no limit is
    /// known.
    pub fn forks(&self) -> usize {
        let bounds = [
            self.open_files
                .map(|n| n.saturating_sub(FDS_RESERVED) / FDS_PER_HOST),
            self.processes.map(|n| n / 2 / PROCESSES_PER_HOST),
            self.memory.map(|m| m / 2 / MEMORY_PER_HOST),
        ];
        match bounds.into_iter().flatten().min() {
            None => FALLBACK_FORKS,
            Some(n) => usize::try_from(n).unwrap_or(MAX_FORKS).clamp(1, MAX_FORKS),
        }
    }
}

/// The default of `--forks` on this machine.
pub fn default_forks() -> usize {
    Capacity::of_this_machine().forks()
}

/// The soft limit called `name` in /proc/self/limits (`Max open files`), if finite:
/// read from there rather than through `getrlimit`, which would need `unsafe`.
fn soft_limit(name: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    soft_limit_in(&text, name)
}

fn soft_limit_in(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    line[name.len()..].split_whitespace().next()?.parse().ok()
}

fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1024 * 1024 * 1024;

    #[test]
    fn the_tightest_limit_decides_and_unknown_limits_fall_back_to_100() {
        // The usual desktop default of 1024 open files: (1024 - 64) / 8.
        let desktop = Capacity {
            open_files: Some(1024),
            processes: Some(63_000),
            memory: Some(16 * GIB),
        };
        assert_eq!(desktop.forks(), 120);
        // A raised open-file limit: memory decides, half of 2 GiB at 4 MiB a host.
        let small = Capacity {
            open_files: Some(65_536),
            processes: None,
            memory: Some(2 * GIB),
        };
        assert_eq!(small.forks(), 256);
        // Plenty of everything: capped.
        let big = Capacity {
            open_files: Some(1 << 20),
            processes: None,
            memory: Some(256 * GIB),
        };
        assert_eq!(big.forks(), MAX_FORKS);
        // A process limit of 400: 100 hosts (half the processes, two per host).
        let few = Capacity {
            processes: Some(400),
            ..big
        };
        assert_eq!(few.forks(), 100);
        // Nothing known.
        assert_eq!(Capacity::default().forks(), FALLBACK_FORKS);
        // Starved: still one.
        let starved = Capacity {
            open_files: Some(10),
            ..Capacity::default()
        };
        assert_eq!(starved.forks(), 1);
    }

    #[test]
    fn limits_are_read_from_proc_self_limits_and_unlimited_is_none() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max processes             unlimited            unlimited            processes \n\
                    Max open files            20000                20000                files     \n";
        assert_eq!(soft_limit_in(text, "Max open files"), Some(20_000));
        assert_eq!(soft_limit_in(text, "Max processes"), None);
    }

    #[test]
    fn this_machine_has_a_usable_default() {
        let forks = default_forks();
        assert!((1..=MAX_FORKS).contains(&forks), "{forks}");
    }
}
