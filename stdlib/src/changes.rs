//! What a push changed: `changed(pattern)` for runbooks run incrementally (the daemon
//! sets `vars.changed_files` to the files a push changed; a full run leaves it unset).

use rhai::plugin::*;
use toyc_engine::context::HostContext;

/// Incremental runs: which of the role's files the run is for.
#[export_module]
pub mod changes_api {
    /// Whether a file matching `pattern` (a glob relative to the role's repo:
    /// `templates/**`, `files/nginx.conf`, `*.rhai`) changed in the push this run is
    /// for. Always `true` in a full run (`toyc run`, `toyc role`, a force push, a first
    /// run): only a run that knows what changed can skip work.
    ///
    /// # Example
    /// ```rhai
    /// if changed("templates/motd.j2") {
    ///     files::template("/etc/motd", "templates/motd.j2", #{});
    /// }
    /// ```
    #[rhai_fn(return_raw)]
    pub fn changed(ctx: NativeCallContext, pattern: &str) -> Result<bool, Box<EvalAltResult>> {
        let glob = glob::Pattern::new(pattern)
            .map_err(|e| format!("changed(\"{pattern}\"): not a glob pattern: {e}"))?;
        let Ok(host) = HostContext::of(&ctx) else {
            return Ok(true);
        };
        Ok(match host.host.vars.get("changed_files") {
            Some(serde_json::Value::Array(files)) => files
                .iter()
                .filter_map(|f| f.as_str())
                .any(|f| glob.matches(f)),
            _ => true,
        })
    }
}
