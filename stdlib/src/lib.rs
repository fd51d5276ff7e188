//! toyc's standard library: *what scripts can ask for*. One Rust module per Rhai module;
//! the doc comments here are the user manual (`toyc doc MODULE` prints them).
//!
//! | module | what it is for |
//! |---|---|
//! | [`host`] | commands, files and facts of the host the script runs for |
//! | [`secret`] | `secret(value)`: values masked in every output |
//! | [`changes`] | `changed(pattern)`: whether a push changed matching files (incremental runs) |
//! | [`template`] | Jinja2 templates rendered as Ansible renders them |
//! | [`files`] | idempotent files: directories, files, content, copies, templates, lines, links |
//! | [`flow`] | `stage`, `handler`, `notify`: stages with limits and failure policies, handlers run when notified |
//! | [`shell`] | shell commands as operations, guarded by `creates`, `removes`, `unless`, `onlyif` |
//! | [`users`] | user accounts and groups: `useradd`/`usermod`/`userdel` with what differs |
//! | [`packages`] | Debian packages installed or removed through `apt-get` |
//! | [`commands`] | the commands of task lists: built-ins, operations by name, `commands/NAME.rhai` |
//! | [`generator`] | generators: `generate(config)` with `packages()`, `remote_versions()`, `graphite_stage()` |
//!
//! ```
//! let mut sandbox = toyc_engine::sandbox::Sandbox::new(".", Default::default());
//! toyc_stdlib::register(&mut sandbox);
//! ```
#![deny(missing_docs)]

pub mod changes;
pub mod commands;
pub mod files;
pub mod flow;
pub mod generator;
pub mod host;
pub mod ops;
mod options;
pub mod packages;
pub mod secret;
pub mod shell;
pub mod template;
pub mod users;

use std::path::Path;
use std::sync::Arc;

use rhai::exported_module;
use toyc_engine::inventory::Host;
use toyc_engine::run::RunContext;
use toyc_engine::sandbox::Sandbox;
use toyc_engine::tasklist::{CommandSet, TaskList};

use commands::builtin::LocalRoots;
use commands::Commands;

/// The stdlib as the engine's [`toyc_engine::run::Library`]: what every front end hands
/// to [`toyc_engine::run::run`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Library;

impl toyc_engine::run::Library for Library {
    fn register(&self, sandbox: &mut Sandbox) {
        register(sandbox);
    }

    /// Built-ins, operations, and `commands/NAME.rhai` from the list's `root` (relative to
    /// `base`; `base` when absent); releases from its `releases`.
    fn commands(
        &self,
        list: &TaskList,
        base: &Path,
        hosts: &[Host],
        run: &RunContext,
    ) -> Arc<dyn CommandSet> {
        let root = match &list.root {
            Some(root) => base.join(root),
            None => base.to_owned(),
        };
        let releases = list.releases.as_ref().map(|r| base.join(r));
        Arc::new(Commands::new(LocalRoots { root, releases }, hosts, run))
    }
}

/// Every stdlib module, by the name scripts use.
pub fn modules() -> Vec<(&'static str, rhai::Shared<rhai::Module>)> {
    vec![
        ("host", exported_module!(host::host_api).into()),
        ("template", exported_module!(template::template_api).into()),
        ("files", exported_module!(files::files_api).into()),
        ("shell", exported_module!(shell::shell_api).into()),
        ("users", exported_module!(users::users_api).into()),
        ("packages", exported_module!(packages::packages_api).into()),
    ]
}

/// Add every stdlib module to `sandbox`, and the functions scripts call without a
/// module prefix (`secret`, `changed`, `stage`, `handler`, `notify`, and the generators' `packages`,
/// `remote_versions`, `graphite_stage`).
pub fn register(sandbox: &mut Sandbox) {
    sandbox.add_check(std::sync::Arc::new(template::check_named_templates));
    sandbox.add_global(exported_module!(secret::secret_api).into());
    sandbox.add_global(exported_module!(changes::changes_api).into());
    sandbox.add_global(exported_module!(flow::flow_api).into());
    sandbox.add_global(exported_module!(generator::generator_api).into());
    for (name, module) in modules() {
        sandbox.add_module(name, module);
    }
}
