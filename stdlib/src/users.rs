//! User accounts and groups as idempotent desired states: the `users` module scripts call.

use rhai::plugin::*;

/// User accounts and groups: each call an idempotent desired state, changed with
/// `useradd`/`usermod`/`userdel` and `groupadd`/`groupmod`/`groupdel` naming exactly
/// the attributes that differ (`shell /bin/sh -> /bin/bash`).
///
/// Like the `files` functions these do not act when the script calls them: names and
/// options are checked at the call, then the operation joins the host's plan. Every
/// user and group of a host is looked up (`getent`, `id -Gn`) in the host's one facts
/// round trip. Operations plan against what the ones before them leave, so on a host
/// where nothing exists yet a group, a user in it and a directory owned by that user
/// plan and apply in one run:
///
/// ```rhai
/// users::group("app", #{ gid: 1500 });
/// users::user("app", #{ uid: 1500, group: "app", shell: "/bin/bash" });
/// files::directory("/srv/app", #{ owner: "app", group: "app" });
/// ```
///
/// Changing accounts needs root: log in as root, or run with `--sudo`.
#[export_module]
pub mod users_api {
    use rhai::Map;

    use crate::ops::declare::{argument, declare, located, option, present, Fail};
    use crate::ops::{Group, User, UserSpec, UserState};
    use crate::options::Options;

    /// Ensure a user account exists (created with a group of its own name, or joining
    /// the group of that name if there is one, and a home directory).
    ///
    /// # Example
    /// ```rhai
    /// users::user("deploy");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn user(ctx: NativeCallContext, name: &str) -> Result<(), Fail> {
        user_with(ctx, name, Map::new())
    }

    /// Ensure a user account exists with the attributes asked for, or with
    /// `state: "absent"` that it does not. Options:
    ///
    /// - `uid`: the numeric user id;
    /// - `group`: the primary group (must exist, or be declared earlier with
    ///   `users::group`). Without it a new user joins the group named after it, which
    ///   is created if missing; an existing user keeps its primary group;
    /// - `groups`: supplementary groups, an array (or `"a,b"`). As in Ansible, the list
    ///   is exact (the user leaves groups not listed; `[]` leaves them all) unless
    ///   `append: true`, which only adds. The primary group need not be listed;
    /// - `shell`, `home` (an existing home is not moved), `comment`;
    /// - `create_home` (default `true`) and `system` (an id from the system range):
    ///   only when the user is created;
    /// - `state`: `"present"` (the default) or `"absent"`; with `"absent"`,
    ///   `remove_home: true` deletes the home directory too.
    ///
    /// Only the attributes given are compared: no change when they all match
    /// ("user `app` already exists with uid 1500, shell /bin/bash"). A group that does
    /// not exist is an error when planning, before anything changed.
    ///
    /// # Example
    /// ```rhai
    /// users::group("app");
    /// users::user("app", #{ uid: 1500, group: "app", groups: ["adm"], shell: "/bin/bash",
    ///     home: "/srv/app", comment: "App service" });
    /// users::user("ci", #{ groups: ["docker"], append: true });
    /// users::user("olduser", #{ state: "absent", remove_home: true });
    /// ```
    #[rhai_fn(name = "user", return_raw)]
    pub fn user_with(ctx: NativeCallContext, name: &str, options: Map) -> Result<(), Fail> {
        const F: &str = "users::user";
        located(
            &ctx,
            (|| {
                let opts = Options::new(
                    F,
                    &options,
                    &[
                        "uid",
                        "group",
                        "groups",
                        "append",
                        "shell",
                        "home",
                        "create_home",
                        "system",
                        "comment",
                        "state",
                        "remove_home",
                    ],
                )?;
                let state = if present(F, &opts, "a user")? {
                    if opts.bool("remove_home")?.is_some() {
                        return option(
                            F,
                            "remove_home",
                            Err("applies only with `state: \"absent\"`".into()),
                        );
                    }
                    UserState::Present(UserSpec {
                        uid: opts.id("uid")?,
                        group: opts.string("group")?,
                        groups: opts.strings("groups")?,
                        append: opts.bool("append")?.unwrap_or(false),
                        shell: opts.string("shell")?,
                        home: opts.string("home")?,
                        create_home: opts.bool("create_home")?.unwrap_or(true),
                        system: opts.bool("system")?.unwrap_or(false),
                        comment: opts.string("comment")?,
                    })
                } else {
                    let extra = ["uid", "group", "groups", "append", "shell", "home"]
                        .into_iter()
                        .chain(["create_home", "system", "comment"])
                        .find(|k| options.contains_key(*k));
                    if let Some(key) = extra {
                        return option(
                            F,
                            key,
                            Err("does not apply with `state: \"absent\"`".into()),
                        );
                    }
                    UserState::Absent {
                        remove_home: opts.bool("remove_home")?.unwrap_or(false),
                    }
                };
                let op = argument(F, User::new(name, state))?;
                declare(&ctx, op)
            })(),
        )
    }

    /// Ensure a group exists.
    ///
    /// # Example
    /// ```rhai
    /// users::group("app");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn group(ctx: NativeCallContext, name: &str) -> Result<(), Fail> {
        group_with(ctx, name, Map::new())
    }

    /// Ensure a group exists with options `gid` (changed with `groupmod` if it
    /// differs) and `system` (a new group gets an id from the system range), or with
    /// `state: "absent"` that it does not.
    ///
    /// # Example
    /// ```rhai
    /// users::group("app", #{ gid: 1500 });
    /// users::group("metrics", #{ system: true });
    /// users::group("oldteam", #{ state: "absent" });
    /// ```
    #[rhai_fn(name = "group", return_raw)]
    pub fn group_with(ctx: NativeCallContext, name: &str, options: Map) -> Result<(), Fail> {
        const F: &str = "users::group";
        located(
            &ctx,
            (|| {
                let opts = Options::new(F, &options, &["gid", "system", "state"])?;
                let present = present(F, &opts, "a group")?;
                let gid = opts.id("gid")?;
                let system = opts.bool("system")?.unwrap_or(false);
                let op = argument(F, Group::new(name, gid, system, present))?;
                declare(&ctx, op)
            })(),
        )
    }
}
