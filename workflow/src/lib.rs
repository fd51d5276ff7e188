//! toyc's workflows: provisioning as an ordered list of `module::task` steps over a
//! record (the clipboard), saved after every step.
//!
//! A workflow file ([`definition`]) holds the record (`instance:` and whatever its steps
//! read) and `steps:`. Steps are built in ([`steps`]: `provider`, `host`, `role`) or
//! `modules/NAME.rhai` beside the file ([`modules`]). [`runner::run`] checks that every
//! step exists, then runs them in order from a given step, handing each the clipboard
//! the previous one returned and telling a [`runner::Progress`] of each start and end,
//! so the daemon saves the clipboard after every step and people can ask where a run is.
//! Instances come from [`provider`]s behind one interface.
#![deny(missing_docs)]

pub mod context;
pub mod definition;
pub mod dns;
pub mod modules;
pub mod provider;
pub mod runner;
pub mod script;
pub mod steps;

pub use context::{StepContext, WorkflowSettings};
pub use definition::{Step, Workflow};
