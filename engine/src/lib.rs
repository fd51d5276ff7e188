//! toyc's engine: *in what order* things happen.
//!
//! # Theory of operation
//!
//! Every front end (the CLI, the console, and the services to come) describes its work
//! as a [`run::Job`] (a runbook on hosts, once or until converged; a task list), makes a
//! [`run::RunContext`] (id, events, cancellation, secrets, progress, script limits, and a
//! [`run::Session`] of connections), and calls [`run::run`] with the stdlib as the
//! [`run::Library`] and a [`run::Gate`] that decides whether shown changes are made. A
//! runbook job then goes:
//!
//! 1. **load**: the script is compiled in the run's [`sandbox`] (errors point at
//!    `file:line:col`, see [`script_error`]); hosts come from the [`inventory`] (or a
//!    [`role`]'s choice) with their vars layered.
//! 2. **connect**: the run's session opens one [`transport`] per host on first use (one
//!    OpenSSH master per SSH host) and every later phase reuses it.
//! 3. **prepare** ([`rollout::prepare`]): each host's script runs on a blocking thread with
//!    a [`context::HostContext`] that the stdlib reaches through the engine's tag; its
//!    operations form a [`runbook::Runbook`]; the facts of all of them come back in one
//!    round trip ([`facts`]) and each operation becomes a change or a reasoned no-change
//!    ([`plan`], [`apply`]).
//! 4. **show**: every change is an [`events::Event`]; `check` stops here.
//! 5. **gate**: the front end's [`run::Gate`] says yes or no.
//! 6. **execute** ([`rollout::execute`]): stage by stage under the [`scheduler`], a host's
//!    changes of a stage in one remote script, handlers at the end of their stage.
//! 7. **converge**: back to 3 for `toyc up`, until nothing is left to change.
//! 8. **report**: `host_end` per host (with a [`events::FailureKind`] when it failed) and a
//!    `summary`; the [`run::Report`] goes back to the front end, which picks the exit code.
//!
//! A [`tasklist`] job validates every task before any host is touched, asks the gate,
//! then runs its stages under the same scheduler with one event per task; an operation
//! used as a task goes through [`run::apply_runbook`], the road of step 3 to 6 for one
//! host.
//!
//! A [`role`] is a git repo synced by [`gitsync`] into toyc's cache: the engine chooses
//! its hosts, layers its attributes under their vars, and keeps on each host a record of
//! the commit it applied; its runbook then runs as a runbook job.
//!
//! The engine knows no particular operation: those live in `toyc-stdlib`.
#![deny(missing_docs)]

pub mod ansible_facts;
pub mod apply;
pub mod cancel;
pub mod context;
pub mod events;
pub mod facts;
pub mod forks;
pub mod gitsync;
pub mod host_lock;
pub mod inventory;
pub mod limits;
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
pub mod yaml11;
pub mod yaml_file;
