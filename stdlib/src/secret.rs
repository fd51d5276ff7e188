//! Marking values secret: from then on they are masked in everything toyc prints.

use rhai::plugin::*;

/// Secret values: masked as `********` in every output (events, command output, diffs,
/// logs, error messages), at any verbosity and in `--json`.
#[export_module]
pub mod secret_api {
    /// Mark `value` secret and return it unchanged, to use as usual.
    ///
    /// Values from `--secrets-file` are secret already.
    ///
    /// # Example
    /// ```rhai
    /// let token = secret("s3cr3t-t0ken");
    /// host::exec(`curl -fsS -H 'Authorization: Bearer ${token}' https://example.invalid/ping`, #{ check: false });
    /// ```
    pub fn secret(ctx: NativeCallContext, value: &str) -> String {
        // Every engine of a run carries its secrets; one without (a bare engine in a
        // unit test) has nothing to mask.
        if let Some(secrets) = toyc_engine::sandbox::tag_secrets(&ctx) {
            secrets.register(value);
        }
        value.to_owned()
    }
}
