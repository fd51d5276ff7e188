//! End-to-end tests of the real `toyc` binary against real hosts.
//!
//! One integration-test binary (see `[[test]]` in Cargo.toml) so the test hosts are
//! started once and shared; destructive tests get dedicated hosts.

mod apply;
mod chat;
mod cli;
mod daemon;
mod deploy;
mod docs;
mod hardening;
mod harness;
mod inputs;
mod repl;
mod roles;
mod runs;
mod sandbox;
mod ssh;
mod stages;
mod supervise;
mod support;
mod template_corpus;
mod users_packages;
mod workflows;
