//! The limits of one script evaluation, and the tokens a stopped script ends with: what
//! the sandbox enforces and what a script error reports, in a module of their own so
//! neither depends on the other.

use std::time::Duration;

/// The token a progress callback returns when the wall clock ran out.
pub const TIMEOUT_TOKEN: &str = "toyc:timeout";
/// The token a progress callback returns when the run was cancelled (Ctrl-C).
pub const CANCEL_TOKEN: &str = "toyc:cancelled";
/// The token a progress callback returns when toyc's memory passed [`Limits::max_memory`].
pub const MEMORY_TOKEN: &str = "toyc:memory";

/// Resource limits of one script evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Rhai operations (roughly: expression evaluations) before the script is stopped.
    pub max_operations: u64,
    /// Nested function calls (recursion depth).
    pub max_call_levels: usize,
    /// Nesting of expressions at the top level and inside functions.
    pub max_expr_depth: usize,
    /// Nesting of expressions inside function bodies.
    pub max_fn_expr_depth: usize,
    /// Modules one script may import, directly or not.
    pub max_modules: usize,
    /// Wall-clock time for a whole evaluation, commands it waits on included.
    pub timeout: Duration,
    /// Resident memory of the whole toyc process, in bytes, past which scripts are stopped
    /// (see [`crate::memory`]). It stands in for Rhai's limits on the size of one string,
    /// array or map: those measure the whole value after every change to it, which makes
    /// building an array with `push` quadratic, and miss a map growing through
    /// `m[key] = value` anyway.
    pub max_memory: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_operations: 1_000_000_000,
            max_call_levels: 64,
            max_expr_depth: 64,
            max_fn_expr_depth: 64,
            max_modules: 100,
            timeout: Duration::from_secs(3600),
            max_memory: 4 * 1024 * 1024 * 1024,
        }
    }
}
