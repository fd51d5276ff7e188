//! Shell commands as operations: the `shell` module scripts call.

use rhai::plugin::*;

/// Shell commands as operations: run when their guards say the work is not done yet.
///
/// `shell::run` is **not idempotent on its own**: without `creates`, `removes`, `unless`
/// or `onlyif` it runs on every apply. Like the `files` functions it does not act when
/// the script calls it; it joins the host's plan and runs when the plan is applied, in
/// order with the other operations. What the command changes is unknown in advance, so
/// operations after it plan against the state before the run (a `files::file` on a path
/// the command creates sees it absent when planning).
#[export_module]
pub mod shell_api {
    use rhai::Map;

    use crate::ops::declare::{argument, declare, located, option, Fail};
    use crate::ops::{absolute, Guards, Run};
    use crate::options::Options;

    /// Run a shell command on the host when the plan is applied, every time (not
    /// idempotent on its own: prefer the form with a guard).
    ///
    /// # Example
    /// ```rhai
    /// shell::run("systemctl daemon-reload");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn run(ctx: NativeCallContext, command: &str) -> Result<(), Fail> {
        run_with(ctx, command, Map::new())
    }

    /// Run a shell command when the plan is applied, unless a guard says it is done:
    ///
    /// - `creates`: a path; skip when it exists;
    /// - `removes`: a path; skip when it is absent;
    /// - `unless`: a command; skip when it succeeds;
    /// - `onlyif`: a command; skip unless it succeeds.
    ///
    /// `unless` and `onlyif` run while facts are gathered, before anything changes, so
    /// they must only read. Other options: `sudo` (through `sudo -n`), `cwd` (absolute
    /// directory) and `env` (map of variables). The command runs in its own `sh -c`;
    /// a non-zero exit fails the apply and stops the host's later changes.
    ///
    /// # Example
    /// ```rhai
    /// shell::run("mkdir -p /srv/app/var && date > /srv/app/var/marker",
    ///     #{ creates: "/srv/app/var/marker" });
    /// shell::run("useradd --system app", #{ unless: "id app", sudo: true });
    /// shell::run("make install", #{ cwd: "/usr/src/app", env: #{ PREFIX: "/opt/app" } });
    /// ```
    #[rhai_fn(name = "run", return_raw)]
    pub fn run_with(ctx: NativeCallContext, command: &str, options: Map) -> Result<(), Fail> {
        const F: &str = "shell::run";
        located(
            &ctx,
            (|| {
                let opts = Options::new(
                    F,
                    &options,
                    &[
                        "creates", "removes", "unless", "onlyif", "sudo", "cwd", "env",
                    ],
                )?;
                // Paths are checked here too, so the error names the option.
                let path = |key: &str| -> Result<Option<String>, Fail> {
                    opts.string(key)?
                        .map(|p| option(F, key, absolute(&p)))
                        .transpose()
                };
                let guards = Guards {
                    creates: path("creates")?,
                    removes: path("removes")?,
                    unless: opts.string("unless")?,
                    onlyif: opts.string("onlyif")?,
                };
                let sudo = opts.bool("sudo")?.unwrap_or(false);
                let cwd = path("cwd")?;
                let env = opts.string_map("env")?;
                let op = argument(F, Run::new(command, guards, sudo, cwd.as_deref(), env))?;
                declare(&ctx, op)
            })(),
        )
    }
}
