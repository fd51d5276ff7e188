//! Files on the host as idempotent desired states: the `files` module scripts call.

use rhai::plugin::*;

/// Files on the host: directories, files, exact content, copies, templates, single lines
/// and links, each an idempotent desired state.
///
/// These functions do not act when the script calls them: they check their arguments
/// (a bad mode, a relative path, an unknown option or a missing local file is an error at
/// the call) and add an operation to the host's plan. After the script ran, toyc asks
/// the host for every fact the plan needs in one round trip, shows what would change
/// (`no change` with a reason otherwise), and applies all changes in one more.
///
/// Paths on the host are absolute. Modes are 3 or 4 octal digits as a string (`"0644"`);
/// owners and groups are names. Content is written atomically: a temporary file next to
/// the destination, then a rename.
#[export_module]
pub mod files_api {
    use rhai::Map;
    use toyc_engine::context::HostContext;

    use crate::ops::declare::{argument, attrs, declare, located, option, Fail};
    use crate::ops::{Content, Directory, File, FileState, Line, LineState, Link};
    use crate::options::Options;

    /// Ensure a directory exists (`mkdir -p`, parents included).
    ///
    /// # Example
    /// ```rhai
    /// files::directory("/srv/app");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn directory(ctx: NativeCallContext, path: &str) -> Result<(), Fail> {
        directory_with(ctx, path, Map::new())
    }

    /// Ensure a directory exists with options `mode` (`"0755"`), `owner`, `group`, or
    /// with `state: "absent"` that nothing is at `path` (`rm -rf`; `/` is refused).
    ///
    /// No change when the directory exists with the mode and owner asked for.
    ///
    /// # Example
    /// ```rhai
    /// files::directory("/srv/app/releases", #{ mode: "0750", owner: "app", group: "app" });
    /// files::directory("/srv/app/tmp", #{ state: "absent" });
    /// ```
    #[rhai_fn(name = "directory", return_raw)]
    pub fn directory_with(ctx: NativeCallContext, path: &str, options: Map) -> Result<(), Fail> {
        const F: &str = "files::directory";
        located(
            &ctx,
            (|| {
                let opts = Options::new(F, &options, &["mode", "owner", "group", "state"])?;
                let present = match opts.string("state")?.as_deref() {
                    None | Some("present") => true,
                    Some("absent") => false,
                    Some(other) => {
                        return option(
                            F,
                            "state",
                            Err(format!(
                            "`{other}` is not a state of a directory: use \"present\" or \"absent\""
                        )),
                        )
                    }
                };
                let op = argument(F, Directory::new(path, attrs(F, &opts)?, present))?;
                declare(&ctx, op)
            })(),
        )
    }

    /// Ensure a regular file exists (created empty if missing; its content is not looked at).
    ///
    /// # Example
    /// ```rhai
    /// files::file("/var/log/app.log");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn file(ctx: NativeCallContext, path: &str) -> Result<(), Fail> {
        file_with(ctx, path, Map::new())
    }

    /// Ensure a regular file exists with options `mode`, `owner`, `group`, and `state`:
    /// `"present"` (the default), `"absent"` (removed; a directory is an error) or
    /// `"touch"` (present, and its times set to now: a change on every run).
    ///
    /// No change when the file exists with the mode and owner asked for
    /// ("file /etc/app/secret already exists with mode 600").
    ///
    /// # Example
    /// ```rhai
    /// files::file("/etc/app/secret", #{ mode: "0600", owner: "app" });
    /// files::file("/etc/app/old.conf", #{ state: "absent" });
    /// ```
    #[rhai_fn(name = "file", return_raw)]
    pub fn file_with(ctx: NativeCallContext, path: &str, options: Map) -> Result<(), Fail> {
        const F: &str = "files::file";
        located(
            &ctx,
            (|| {
                let opts = Options::new(F, &options, &["mode", "owner", "group", "state"])?;
                let state = match opts.string("state")? {
                    Some(state) => option(F, "state", FileState::parse(&state))?,
                    None => FileState::Present,
                };
                let op = argument(F, File::new(path, attrs(F, &opts)?, state))?;
                declare(&ctx, op)
            })(),
        )
    }

    /// Ensure a file holds exactly `text`.
    ///
    /// # Example
    /// ```rhai
    /// files::content("/etc/motd", `Welcome to ${host.name}\n`);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn content(ctx: NativeCallContext, dest: &str, text: &str) -> Result<(), Fail> {
        content_with(ctx, dest, text, Map::new())
    }

    /// Ensure a file holds exactly `text`, with options `mode`, `owner`, `group`.
    ///
    /// Compared by sha256: no change when content, mode and owner already match. A new
    /// file gets mode 644 unless `mode` says otherwise; an existing one keeps its mode.
    ///
    /// # Example
    /// ```rhai
    /// files::content("/etc/app/env", "MODE=production\n", #{ mode: "0640", group: "app" });
    /// ```
    #[rhai_fn(name = "content", return_raw)]
    pub fn content_with(
        ctx: NativeCallContext,
        dest: &str,
        text: &str,
        options: Map,
    ) -> Result<(), Fail> {
        const F: &str = "files::content";
        located(
            &ctx,
            (|| {
                let opts = Options::new(F, &options, &["mode", "owner", "group"])?;
                let bytes = text.as_bytes().to_vec();
                let op = argument(F, Content::new(F, dest, bytes, attrs(F, &opts)?, true))?;
                declare(&ctx, op)
            })(),
        )
    }

    /// Copy a file from the script's `files/` directory to the host.
    ///
    /// # Example
    /// ```rhai
    /// files::copy("motd", "/etc/motd");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn copy(ctx: NativeCallContext, src: &str, dest: &str) -> Result<(), Fail> {
        copy_with(ctx, src, dest, Map::new())
    }

    /// Copy `files/<src>` (next to the script; read when the script calls this, so a
    /// missing file is an error at the call) to `dest`, with options `mode`, `owner`,
    /// `group` and `force` (default `true`; `false` only creates a missing `dest` and
    /// then never touches it, to seed a file other operations edit).
    ///
    /// # Example
    /// ```rhai
    /// files::copy("app.conf", "/etc/app/app.conf", #{ mode: "0644", force: false });
    /// ```
    #[rhai_fn(name = "copy", return_raw)]
    pub fn copy_with(
        ctx: NativeCallContext,
        src: &str,
        dest: &str,
        options: Map,
    ) -> Result<(), Fail> {
        const F: &str = "files::copy";
        located(
            &ctx,
            (|| {
                let opts = Options::new(F, &options, &["mode", "owner", "group", "force"])?;
                let attrs = attrs(F, &opts)?;
                let force = opts.bool("force")?.unwrap_or(true);
                let host = HostContext::of(&ctx)?;
                let local = argument(F, host.local_path(&format!("files/{src}")))?;
                // Big files are hashed here and streamed at apply time, never held.
                let shown = format!("files/{src}");
                let op = argument(F, Content::from_file(F, dest, &local, &shown, attrs, force))?;
                declare(&ctx, op)
            })(),
        )
    }

    /// Render `templates/<src>` (Jinja2 syntax) with the host's variables to `dest`.
    ///
    /// # Example
    /// ```rhai
    /// files::template("app.ini.j2", "/etc/app/app.ini");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn template(ctx: NativeCallContext, src: &str, dest: &str) -> Result<(), Fail> {
        template_with(ctx, src, dest, Map::new())
    }

    /// Render `templates/<src>` to `dest`, with options `mode`, `owner`, `group` and
    /// `vars` (a map added to, and winning over, the host's variables).
    ///
    /// The template is rendered when the script calls this: an undefined variable or a
    /// syntax error is an error at the call. As Ansible does, the trailing newline is
    /// kept and the newline after a block tag (`{% ... %}`) is removed.
    ///
    /// # Example
    /// ```rhai
    /// files::template("app.service.j2", "/etc/systemd/system/app.service",
    ///     #{ mode: "0644", vars: #{ app_port: 8080 } });
    /// ```
    #[rhai_fn(name = "template", return_raw)]
    pub fn template_with(
        ctx: NativeCallContext,
        src: &str,
        dest: &str,
        options: Map,
    ) -> Result<(), Fail> {
        const F: &str = "files::template";
        located(
            &ctx,
            (|| {
                let opts = Options::new(F, &options, &["mode", "owner", "group", "vars"])?;
                let attrs = attrs(F, &opts)?;
                let host = HostContext::of(&ctx)?;
                // Rendered now, so template errors point at this call as well as into the template.
                let root = argument(F, host.local_path("templates"))?;
                let templates = crate::template::Templates::new(&root);
                let call = crate::template::Call {
                    src,
                    fullpath: &root.join(src),
                    dest,
                    root: &host.script_root,
                };
                // Ansible's order: magic variables, facts, then the host's variables.
                let facts = if templates.uses_facts(src) {
                    Some(host.template_facts().map_err(|e| {
                        format!("`{F}`: unable to gather the facts template `{src}` uses: {e}")
                    })?)
                } else {
                    None
                };
                let mut vars = crate::template::host_template_vars(
                    &host.host,
                    &host.play,
                    &call,
                    facts.as_ref(),
                );
                if let Some(extra) = options.get("vars").filter(|v| !v.is_unit()) {
                    match rhai::serde::from_dynamic::<serde_json::Value>(extra) {
                        Ok(serde_json::Value::Object(extra)) => vars.vars.extend(extra),
                        _ => {
                            return option(
                                F,
                                "vars",
                                Err(format!("must be a map, not {}", extra.type_name())),
                            )
                        }
                    }
                }
                let text = templates
                    .render_host_file(src, &vars)
                    .map_err(|e| format!("`{F}`: {e}"))?;
                let op = argument(F, Content::new(F, dest, text.into_bytes(), attrs, true))?;
                declare(&ctx, op)
            })(),
        )
    }

    /// Ensure a file contains `line` (appended at the end if missing).
    ///
    /// # Example
    /// ```rhai
    /// files::line("/etc/app/app.conf", "max_conn = 100");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn line(ctx: NativeCallContext, path: &str, line: &str) -> Result<(), Fail> {
        line_with(ctx, path, line, Map::new())
    }

    /// Ensure one line of a file, like Ansible's `lineinfile`, with options `regexp`
    /// (the last line matching it is replaced by `line`; Rust regex syntax, searched
    /// anywhere in the line), `state` (`"present"`, or `"absent"` to remove every line
    /// equal to `line` or matching `regexp`) and `create` (default `false`: a missing
    /// file is an error).
    ///
    /// The file keeps its mode and owner. It may be created by an operation before this
    /// one in the same script (`files::copy` with `force: false`, say).
    ///
    /// # Example
    /// ```rhai
    /// files::line("/etc/ssh/sshd_config", "PermitRootLogin no", #{ regexp: "^#?PermitRootLogin" });
    /// files::line("/etc/hosts", "10.0.0.9 old", #{ state: "absent" });
    /// ```
    #[rhai_fn(name = "line", return_raw)]
    pub fn line_with(
        ctx: NativeCallContext,
        path: &str,
        line: &str,
        options: Map,
    ) -> Result<(), Fail> {
        const F: &str = "files::line";
        located(
            &ctx,
            (|| {
                let opts = Options::new(F, &options, &["regexp", "state", "create"])?;
                let state = match opts.string("state")? {
                    Some(state) => option(F, "state", LineState::parse(&state))?,
                    None => LineState::Present,
                };
                let regexp = opts.string("regexp")?;
                if let Some(re) = &regexp {
                    option(
                        F,
                        "regexp",
                        regex::bytes::Regex::new(re).map_err(|e| e.to_string()),
                    )?;
                }
                let create = opts.bool("create")?.unwrap_or(false);
                let op = argument(F, Line::new(path, line, regexp.as_deref(), state, create))?;
                declare(&ctx, op)
            })(),
        )
    }

    /// Ensure `path` is a symbolic link to `target` (replaced atomically if it points
    /// elsewhere; a file or directory in the way is an error).
    ///
    /// # Example
    /// ```rhai
    /// files::link("/srv/app/releases/42", "/srv/app/current");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn link(ctx: NativeCallContext, target: &str, path: &str) -> Result<(), Fail> {
        located(
            &ctx,
            (|| {
                let op = argument("files::link", Link::new(target, path))?;
                declare(&ctx, op)
            })(),
        )
    }
}
