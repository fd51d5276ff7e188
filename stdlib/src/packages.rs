//! Debian packages as idempotent desired states: the `packages` module scripts call.

use rhai::plugin::*;

use crate::ops::declare::{argument, Fail};
use crate::options::string_list;

/// Debian packages, on Debian-family hosts (Debian, Ubuntu and their derivatives).
///
/// Every package named by the host's operations is looked up in one `dpkg-query`, in
/// the host's one facts round trip; only the packages not yet in the desired state
/// are passed to `apt-get` (`DEBIAN_FRONTEND=noninteractive`, `-y`, no recommends,
/// changed configuration files kept). A host without `dpkg-query` fails planning with
/// a message saying so, before anything changed.
///
/// Installing needs root: log in as root, or run with `--sudo`.
#[export_module]
pub mod packages_api {
    use rhai::Map;

    use super::package_list;
    use crate::ops::declare::{argument, declare, located, Fail};
    use crate::ops::Packages;
    use crate::options::Options;

    /// Ensure packages are installed: a name or an array of names. No change when all
    /// are ("already installed: nginx 1.22.1-9").
    ///
    /// # Example
    /// ```rhai
    /// packages::installed("nginx");
    /// packages::installed(["curl", "ca-certificates"]);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn installed(ctx: NativeCallContext, names: Dynamic) -> Result<(), Fail> {
        installed_with(ctx, names, Map::new())
    }

    /// Ensure packages are installed, with option `update_cache` (`apt-get update`
    /// before installing; only runs when something is missing, so a converged host
    /// costs nothing).
    ///
    /// # Example
    /// ```rhai
    /// packages::installed(["nginx", "logrotate"], #{ update_cache: true });
    /// ```
    #[rhai_fn(name = "installed", return_raw)]
    pub fn installed_with(
        ctx: NativeCallContext,
        names: Dynamic,
        options: Map,
    ) -> Result<(), Fail> {
        const F: &str = "packages::installed";
        located(
            &ctx,
            (|| {
                let opts = Options::new(F, &options, &["update_cache"])?;
                let update_cache = opts.bool("update_cache")?.unwrap_or(false);
                let list = package_list(F, &names)?;
                let op = argument(F, Packages::installed(list, update_cache))?;
                declare(&ctx, op)
            })(),
        )
    }

    /// Ensure packages are not installed (`apt-get remove`): a name or an array.
    ///
    /// # Example
    /// ```rhai
    /// packages::removed("telnet");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn removed(ctx: NativeCallContext, names: Dynamic) -> Result<(), Fail> {
        removed_with(ctx, names, Map::new())
    }

    /// Ensure packages are not installed, with option `purge` (their configuration
    /// files go too).
    ///
    /// # Example
    /// ```rhai
    /// packages::removed(["telnet", "rsh-client"], #{ purge: true });
    /// ```
    #[rhai_fn(name = "removed", return_raw)]
    pub fn removed_with(ctx: NativeCallContext, names: Dynamic, options: Map) -> Result<(), Fail> {
        const F: &str = "packages::removed";
        located(
            &ctx,
            (|| {
                let opts = Options::new(F, &options, &["purge"])?;
                let purge = opts.bool("purge")?.unwrap_or(false);
                let list = package_list(F, &names)?;
                let op = argument(F, Packages::removed(list, purge))?;
                declare(&ctx, op)
            })(),
        )
    }
}

/// `names` as a list: one name, or an array of names.
pub(crate) fn package_list(function: &str, names: &Dynamic) -> Result<Vec<String>, Fail> {
    argument(
        function,
        string_list(names).map_err(|()| {
            format!(
                "the packages must be a name or an array of names, not {} `{names}`",
                names.type_name()
            )
        }),
    )
}
