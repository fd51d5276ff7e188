//! How Rhai functions declare operations: check every argument while the script runs
//! (so a mistake is an error at the call, with its position), then add the operation to
//! the host's plan. Nothing here touches the host.

use std::sync::Arc;

use rhai::{EvalAltResult, NativeCallContext};
use toyc_engine::context::HostContext;
use toyc_engine::plan::Operation;

use super::attrs::{owner_name, Attrs, Mode};
use crate::options::Options;

pub(crate) type Fail = Box<EvalAltResult>;

/// Point an error at the script's call: Rhai leaves errors from module functions
/// without a position, and a message without `file:line:col` helps nobody.
pub(crate) fn located<T>(ctx: &NativeCallContext, result: Result<T, Fail>) -> Result<T, Fail> {
    result.map_err(|mut error| {
        if error.position().is_none() {
            error.set_position(ctx.call_position());
        }
        error
    })
}

/// An argument's problem as a script error: "`files::file`: `etc/x` is not an absolute path".
pub(crate) fn argument<T>(function: &str, result: Result<T, String>) -> Result<T, Fail> {
    result.map_err(|e| format!("`{function}`: {e}").into())
}

/// An option's problem as a script error that names the option.
pub(crate) fn option<T>(function: &str, key: &str, result: Result<T, String>) -> Result<T, Fail> {
    result.map_err(|e| format!("option `{key}` of `{function}`: {e}").into())
}

/// `mode`, `owner` and `group` from options that know those keys.
pub(crate) fn attrs(function: &str, opts: &Options) -> Result<Attrs, Fail> {
    let mode = opts
        .string("mode")?
        .map(|m| option(function, "mode", Mode::parse(&m)))
        .transpose()?;
    let owner = opts.string("owner")?;
    let group = opts.string("group")?;
    for (key, value) in [("owner", &owner), ("group", &group)] {
        if let Some(name) = value {
            option(function, key, owner_name(key, name))?;
        }
    }
    Ok(Attrs { mode, owner, group })
}

/// Option `state` as `"present"` (the default: `true`) or `"absent"` (`false`) of a
/// `what` (`"a user"`).
pub(crate) fn present(function: &str, opts: &Options, what: &str) -> Result<bool, Fail> {
    match opts.string("state")?.as_deref() {
        None | Some("present") => Ok(true),
        Some("absent") => Ok(false),
        Some(other) => option(
            function,
            "state",
            Err(format!(
                "`{other}` is not a state of {what}: use \"present\" or \"absent\""
            )),
        ),
    }
}

/// Add `operation` to the plan of the host the script runs for.
pub(crate) fn declare(
    ctx: &NativeCallContext,
    operation: impl Operation + 'static,
) -> Result<(), Fail> {
    HostContext::of(ctx)?.add_operation(Arc::new(operation));
    Ok(())
}
