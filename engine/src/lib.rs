//! toyc's engine: *in what order* things happen.
//!
//! # Theory of operation
//!
//! 1. **load**: the [`inventory`] is read and narrowed with a limit pattern; scripts are
//!    compiled in the [`sandbox`] (errors point at `file:line:col`, see [`script_error`]).
//! 2. **connect**: one [`transport`] per host, opened in parallel (one OpenSSH master per
//!    SSH host, a plain process spawner for `localhost`).
//! 3. **run**: each host's script runs on its own blocking thread with a [`context::HostContext`]
//!    that the stdlib's functions reach through the engine tag.
//! 4. **report**: every step becomes an [`events::Event`], printed for people on stderr or as
//!    JSON Lines on stdout.
//!
//! A deploy's [`tasklist`] takes another road after load: a generator returns stages of
//! tasks, every task is validated before any host is touched, then the stages run
//! under the same [`scheduler`] with one event per task.
//!
//! A [`role`] is a git repo synced by [`gitsync`] into toyc's cache: the engine chooses
//! its hosts, layers its attributes under their vars, and keeps on each host a record of
//! the commit it applied; its runbook then runs like any script.
//!
//! The engine knows no particular operation: those live in `toyc-stdlib`.
#![deny(missing_docs)]

pub mod apply;
pub mod cancel;
pub mod context;
pub mod events;
pub mod facts;
pub mod gitsync;
pub mod host_lock;
pub mod inventory;
pub mod memory;
pub mod plan;
pub mod progress;
pub mod role;
pub mod rollout;
pub mod run;
pub mod run_dir;
pub mod runbook;
pub mod runner;
pub mod sandbox;
pub mod scheduler;
pub mod script_error;
pub mod secrets;
pub mod state_dir;
pub mod tasklist;
pub mod terminal_text;
pub mod transport;
