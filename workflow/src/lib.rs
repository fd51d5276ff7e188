//! toyc's workflows: provisioning as an ordered list of `module::task` steps over a
//! record (the clipboard), saved after every step, run in the daemon's queue.
#![deny(missing_docs)]

pub mod provider;
