//! toyc's standard library: *what scripts can ask for*. One Rust module per Rhai module;
//! the doc comments here are the user manual (`toyc doc MODULE` prints them).
//!
//! | module | what it is for |
//! |---|---|
//! | [`host`] | commands, files and facts of the host the script runs for |
//!
//! ```
//! let mut sandbox = toyc_engine::sandbox::Sandbox::new(".", Default::default());
//! toyc_stdlib::register(&mut sandbox);
//! ```
#![deny(missing_docs)]

pub mod host;
pub mod ops;
mod options;

use rhai::exported_module;
use toyc_engine::sandbox::Sandbox;

/// Every stdlib module, by the name scripts use.
pub fn modules() -> Vec<(&'static str, rhai::Shared<rhai::Module>)> {
    vec![("host", exported_module!(host::host_api).into())]
}

/// Add every stdlib module to `sandbox`.
pub fn register(sandbox: &mut Sandbox) {
    for (name, module) in modules() {
        sandbox.add_module(name, module);
    }
}
