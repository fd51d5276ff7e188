//! toyc's resident memory, watched from a thread of its own.
//!
//! Scripts are stopped by size, not by a per-value check: Rhai's own size limits walk the
//! whole value after every change to it (so building an array of n items costs n² steps),
//! and counting operations says nothing about how much one operation allocated (a map
//! growing by 8 MB strings passes gigabytes between two looks at 65 536 operations).
//! A watcher reads `/proc/self/statm` every [`SAMPLE_EVERY`]; touching memory runs at a
//! few GB/s at most, so a script is seen at most some tens of megabytes past its limit,
//! and every operation compares that sample with its limit for the price of an atomic load.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;
use std::time::Duration;

/// Time between two readings of the process's resident memory.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(5);

/// The last reading, in bytes (0 before the first one).
static RESIDENT: AtomicU64 = AtomicU64::new(0);
/// Resident bytes past which the watcher ends the whole process (0: never).
static HARD_LIMIT: AtomicU64 = AtomicU64::new(0);
static WATCHER: Once = Once::new();

/// Start watching (once per process) for scripts limited to `max_memory` bytes.
///
/// A script past its limit is stopped at its next operation. One operation can run long
/// (padding an array to a billion items), so when memory goes on to pass twice the
/// largest limit asked for and 256 MiB more (room for one operation doubling a value
/// just under the limit), the watcher ends the process with a message and exit status 1:
/// nothing else still stands between it and the kernel's OOM killer, which would end it
/// with no message at all.
pub fn watch(max_memory: u64) {
    let hard = max_memory
        .saturating_mul(2)
        .saturating_add(256 * 1024 * 1024);
    HARD_LIMIT.fetch_max(hard, Ordering::Relaxed);
    WATCHER.call_once(|| {
        let spawned = std::thread::Builder::new()
            .name("toyc-memory".into())
            .spawn(watcher);
        if let Err(e) = spawned {
            tracing::warn!(
                "cannot start the memory watcher, scripts run without a memory limit: {e}"
            );
        }
    });
}

/// The watcher's latest reading of toyc's resident memory, in bytes (0 before the first).
pub fn resident() -> u64 {
    RESIDENT.load(Ordering::Relaxed)
}

fn watcher() {
    loop {
        let Some(bytes) = resident_bytes() else {
            // No /proc: nothing to watch.
            return;
        };
        RESIDENT.store(bytes, Ordering::Relaxed);
        let hard = HARD_LIMIT.load(Ordering::Relaxed);
        if hard > 0 && bytes > hard {
            eprintln!(
                "error: toyc's memory passed {} MiB, twice `--max-memory` and more, so toyc stopped (one script operation building a huge value?)",
                hard / (1024 * 1024)
            );
            std::process::exit(1);
        }
        std::thread::sleep(SAMPLE_EVERY);
    }
}

/// Resident memory of this process, from /proc (Linux); `None` where unavailable.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}
