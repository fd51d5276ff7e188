//! Stages, handlers and notifications: how a runbook groups its operations and runs
//! some only when others changed something.

use rhai::plugin::*;
use rhai::{FnPtr, Map};
use toyc_engine::context::HostContext;
use toyc_engine::scheduler::{FailurePolicy, StageOptions};

use crate::ops::declare::{located, option, Fail};
use crate::options::Options;

/// Stages and handlers: the shape of a runbook's run.
///
/// A **stage** is a block of operations that every host runs before any host starts
/// the next stage, with its own limits and failure policy. Operations outside any
/// `stage` block form unnamed stages in script order (a script without stages is one
/// stage). A **handler** is a block of operations that runs on a host only when an
/// operation that `notify`-ed it changed something, once, at the end of that
/// operation's stage; it still runs when a later operation of the stage failed on the
/// host (Ansible's `--force-handlers`, always on), so a changed config is never left
/// without its restart.
#[export_module]
pub mod flow_api {
    use rhai::{FnPtr, Map};
    use toyc_engine::context::HostContext;

    use super::{block, parse_options};
    use crate::ops::declare::{located, Fail};

    /// Run the operations declared in `body` as stage `name`, with default options
    /// (as many hosts at once as `--forks`, a failed host drops out and the others go on).
    ///
    /// # Example
    /// ```rhai
    /// stage("config", || {
    ///     files::content("/etc/motd", "managed by toyc\n", #{ mode: "0644" });
    /// });
    /// ```
    #[rhai_fn(return_raw)]
    pub fn stage(ctx: NativeCallContext, name: &str, body: FnPtr) -> Result<(), Fail> {
        stage_with(ctx, name, Map::new(), body)
    }

    /// Run the operations declared in `body` as stage `name`. Every host finishes the
    /// stage before any host starts the next one. Options:
    ///
    /// - `concurrency`: hosts working on this stage at once (default: `--forks`);
    /// - `on_failure`: `"isolate"` (default: drop the failed host from the rest of the
    ///   run, go on with the others), `"abort"` (start no new host, let running ones
    ///   finish, fail the run and skip later stages) or `"continue"` (the failure is
    ///   reported as a warning and the host goes on);
    /// - `max_fail_percent`: with `"isolate"`, abort once more than this percentage of
    ///   the stage's hosts failed;
    /// - `timeout`: seconds a host may spend on the stage (its commands are killed on
    ///   the host when it expires);
    /// - `retries`, `retry_delay`: try a failed host's stage again, from the change
    ///   that failed, this many times, waiting `retry_delay` seconds (default 1) between.
    ///
    /// # Example
    /// ```rhai
    /// stage("rolling restart", #{ concurrency: 2, on_failure: "isolate", max_fail_percent: 25 }, || {
    ///     shell::run("systemctl restart app", #{ sudo: true });
    /// });
    /// ```
    #[rhai_fn(name = "stage", return_raw)]
    pub fn stage_with(
        ctx: NativeCallContext,
        name: &str,
        options: Map,
        body: FnPtr,
    ) -> Result<(), Fail> {
        let stage_options = located(&ctx, parse_options(&options))?;
        block(&ctx, body, |book| book.begin_stage(name, stage_options))
    }

    /// Define handler `name`: the operations declared in `body` run on a host only when
    /// an operation that notified it changed something there, once at the end of that
    /// stage. A handler may be defined before or after the operations that notify it.
    ///
    /// # Example
    /// ```rhai
    /// handler("restart app", || {
    ///     shell::run("systemctl restart app", #{ sudo: true });
    /// });
    /// files::content("/etc/app.conf", "workers = 4\n");
    /// notify("restart app");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn handler(ctx: NativeCallContext, name: &str, body: FnPtr) -> Result<(), Fail> {
        block(&ctx, body, |book| book.begin_handler(name))
    }

    /// Make the operation declared just before notify handler `name` when it changes
    /// something. Several handlers may be notified; each runs once per stage.
    ///
    /// # Example
    /// ```rhai
    /// handler("reload nginx", || { shell::run("nginx -s reload"); });
    /// files::content("/etc/nginx/conf.d/tokens.conf", "server_tokens off;\n");
    /// notify("reload nginx");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn notify(ctx: NativeCallContext, name: &str) -> Result<(), Fail> {
        let context = located(&ctx, HostContext::of(&ctx))?;
        located(
            &ctx,
            context
                .with_runbook(|book| book.notify_last(name))
                .map_err(Into::into),
        )
    }
}

/// Open a block with `begin`, run `body` in it, close it (also when `body` fails).
fn block(
    ctx: &NativeCallContext,
    body: FnPtr,
    begin: impl FnOnce(&mut toyc_engine::runbook::Runbook) -> Result<(), String>,
) -> Result<(), Fail> {
    let context = located(ctx, HostContext::of(ctx))?;
    located(ctx, context.with_runbook(begin).map_err(Into::into))?;
    let result = body.call_within_context::<Dynamic>(ctx, ());
    context.with_runbook(|book| book.end_block());
    result.map(drop)
}

fn parse_options(options: &Map) -> Result<StageOptions, Fail> {
    const F: &str = "stage";
    let opts = Options::new(
        F,
        options,
        &[
            "concurrency",
            "on_failure",
            "max_fail_percent",
            "timeout",
            "retries",
            "retry_delay",
        ],
    )?;
    let defaults = StageOptions::default();
    // As Ansible and pyinfra users expect of a runbook: a failed host drops out and the
    // others go on (task lists, planned in advance, abort by default instead).
    let on_failure = opts
        .string("on_failure")?
        .map(|p| option(F, "on_failure", FailurePolicy::parse(&p)))
        .transpose()?
        .unwrap_or(FailurePolicy::Isolate);
    let max_fail_percent = opts
        .count("max_fail_percent")?
        .map(|p| {
            option(
                F,
                "max_fail_percent",
                u8::try_from(p)
                    .ok()
                    .filter(|p| *p <= 100)
                    .ok_or_else(|| format!("{p} is not a percentage from 0 to 100")),
            )
        })
        .transpose()?;
    if max_fail_percent.is_some() && on_failure != FailurePolicy::Isolate {
        return Err(
            "option `max_fail_percent` of `stage` goes with `on_failure: \"isolate\"`".into(),
        );
    }
    let concurrency = opts
        .count("concurrency")?
        .map(|c| {
            option(
                F,
                "concurrency",
                usize::try_from(c)
                    .ok()
                    .filter(|c| *c > 0)
                    .ok_or_else(|| "must be at least 1".to_owned()),
            )
        })
        .transpose()?;
    Ok(StageOptions {
        concurrency,
        on_failure,
        max_fail_percent,
        timeout: opts.seconds("timeout")?,
        retries: u32::try_from(opts.count("retries")?.unwrap_or(0)).unwrap_or(u32::MAX),
        retry_delay: opts.seconds("retry_delay")?.unwrap_or(defaults.retry_delay),
        ..defaults
    })
}
