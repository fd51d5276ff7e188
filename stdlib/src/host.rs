//! The host the script runs for: run commands, move files, ask basic facts.
//!
//! Every function acts on the current host (`host.name` in the script). Commands run
//! through `sh -c`; a command that exits non-zero stops the script with an error naming
//! the host and the command, unless the call passes `check: false`.
//!
//! These functions act **while the script runs**, before changes are shown and confirmed,
//! and under `--check` too: use them to ask the host things. To change a host, use
//! operations (`files::*`, `shell::run`): they are planned, shown, confirmed, applied.

use rhai::plugin::*;
use rhai::Map;
use toyc_engine::context::HostContext;
use toyc_engine::transport::{atomic_write, ExecOutput, ExecRequest, PutOptions, TransportError};

use crate::options::Options;

type Fail = Box<EvalAltResult>;

fn failed(error: TransportError) -> Fail {
    error.to_string().into()
}

/// Point an error at the script's call: Rhai leaves errors from module functions
/// without a position, and a message without `file:line:col` helps nobody.
fn located<T>(ctx: &NativeCallContext, result: Result<T, Fail>) -> Result<T, Fail> {
    result.map_err(|mut error| {
        if error.position().is_none() {
            error.set_position(ctx.call_position());
        }
        error
    })
}

/// Without one final newline (`\n` or `\r\n`).
fn chomp(mut text: String) -> String {
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    text
}

/// The options of an upload, checked.
fn put_options(host: &HostContext, options: &Map) -> Result<PutOptions, Fail> {
    let opts = Options::new("host::put", options, &["mode", "owner", "group", "sudo"])?;
    let owner = opts.string("owner")?;
    let group = opts.string("group")?;
    for (key, value) in [("owner", &owner), ("group", &group)] {
        if let Some(name) = value {
            crate::ops::declare::option("host::put", key, crate::ops::owner_name(key, name))?;
        }
    }
    Ok(PutOptions {
        mode: opts.string("mode")?,
        owner,
        group,
        sudo: opts.bool("sudo")?.unwrap_or(host.sudo),
        // Rewriting an existing file keeps its owner unless one is asked for.
        keep_owner: true,
        sha256: None,
    })
}

/// What every upload does with the result of its one atomic write.
fn written(host: &HostContext, dest: &str, output: ExecOutput) -> Result<(), Fail> {
    if output.status != 0 {
        return Err(format!(
            "unable to write `{dest}` on `{}`: {}",
            host.host.name,
            output.stderr_text().trim()
        )
        .into());
    }
    Ok(())
}

/// The one path every upload of bytes takes: options checked, then one atomic write.
fn write_file(
    ctx: &NativeCallContext,
    content: &[u8],
    dest: &str,
    options: &Map,
) -> Result<(), Fail> {
    let host = HostContext::of(ctx)?;
    let put = put_options(&host, options)?;
    let output = host.put(content, dest, &put).map_err(failed)?;
    written(&host, dest, output)
}

/// An upload of a local file, streamed from disk (never whole in memory).
fn upload_file(
    ctx: &NativeCallContext,
    local: &std::path::Path,
    dest: &str,
    options: &Map,
) -> Result<(), Fail> {
    let host = HostContext::of(ctx)?;
    let put = put_options(&host, options)?;
    let len = std::fs::File::open(local)
        .and_then(|f| f.metadata())
        .map_err(|e| format!("unable to read `{}`: {e}", local.display()))?
        .len();
    let request = ExecRequest {
        command: atomic_write(dest, Some(usize::try_from(len).unwrap_or(usize::MAX)), &put),
        stdin_files: vec![(local.to_owned(), len)],
        sudo: put.sudo,
        ..ExecRequest::default()
    };
    let output = host.exec(&request).map_err(failed)?;
    written(&host, dest, output)
}

/// The host the script runs for: run commands, move files, ask basic facts.
///
/// Every function acts on the current host (`host.name`). A command that exits non-zero
/// stops the script with an error naming the host and the command, unless the call
/// passes `check: false`.
///
/// These functions act **while the script runs**, before changes are shown and
/// confirmed, and under `--check` too: use them to ask the host things. To change a
/// host, use operations (`files::*`, `shell::run`): they are planned, shown, confirmed,
/// then applied.
#[export_module]
pub mod host_api {
    use rhai::{Blob, Map};
    use toyc_engine::context::HostContext;
    use toyc_engine::events::Level;
    use toyc_engine::transport::{describe_failure, ExecRequest};

    use super::{chomp, failed, located, upload_file, write_file, Fail};
    use crate::options::Options;

    /// Run a shell command on the host and return `#{ code, stdout, stderr }`.
    ///
    /// It runs at once, also under `--check`: for changes, use `shell::run`.
    ///
    /// `stdout` and `stderr` lose their final newline, as with the shell's `$(...)`.
    /// A non-zero exit stops the script with an error naming the host and command.
    ///
    /// # Example
    /// ```rhai
    /// let uptime = host::exec("uptime").stdout;
    /// print(uptime);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn exec(ctx: NativeCallContext, command: &str) -> Result<Map, Fail> {
        exec_with(ctx, command, Map::new())
    }

    /// Run a shell command with options and return `#{ code, stdout, stderr }`.
    ///
    /// Options: `sudo` (bool, through `sudo -n`), `timeout` (seconds; the command is killed
    /// on the host when it expires), `env` (map of variables), `cwd` (directory),
    /// `stdin` (text fed to the command), `check` (default `true`: a non-zero exit is an
    /// error; `false` returns the code instead).
    ///
    /// # Example
    /// ```rhai
    /// let r = host::exec("grep -q nginx /etc/passwd", #{ check: false });
    /// if r.code != 0 { print("no nginx user yet"); }
    /// host::exec("apt-get update", #{ sudo: true, timeout: 300, env: #{ DEBIAN_FRONTEND: "noninteractive" } });
    /// ```
    #[rhai_fn(name = "exec", return_raw)]
    pub fn exec_with(ctx: NativeCallContext, command: &str, options: Map) -> Result<Map, Fail> {
        located(
            &ctx,
            (|| {
                let host = HostContext::of(&ctx)?;
                let opts = Options::new(
                    "host::exec",
                    &options,
                    &["sudo", "timeout", "env", "cwd", "stdin", "check"],
                )?;
                let request = ExecRequest {
                    command: command.to_owned(),
                    stdin: opts.string("stdin")?.map(String::into_bytes),
                    env: opts.string_map("env")?,
                    cwd: opts.string("cwd")?,
                    sudo: opts.bool("sudo")?.unwrap_or(host.sudo),
                    timeout: opts.seconds("timeout")?.or(host.timeout),
                    hold_stdin: false,
                    stdin_files: Vec::new(),
                };
                let output = host.exec(&request).map_err(failed)?;
                if output.status != 0 && opts.bool("check")?.unwrap_or(true) {
                    return Err(format!(
                        "on `{}`: {}",
                        host.host.name,
                        // Masked before `describe_failure` cuts the command short: a
                        // secret cut in half would no longer be recognised later.
                        describe_failure(&host.run.secrets.redact(command), &output)
                    )
                    .into());
                }
                let mut result = Map::new();
                result.insert("code".into(), i64::from(output.status).into());
                result.insert("stdout".into(), chomp(output.stdout_text()).into());
                result.insert("stderr".into(), chomp(output.stderr_text()).into());
                Ok(result)
            })(),
        )
    }

    /// Write text to a file on the host, atomically (a temporary file, then a rename).
    ///
    /// # Example
    /// ```rhai
    /// host::put("hello\n", "/tmp/hello.txt");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn put(ctx: NativeCallContext, content: &str, dest: &str) -> Result<(), Fail> {
        located(
            &ctx,
            write_file(&ctx, content.as_bytes(), dest, &Map::new()),
        )
    }

    /// Write text to a file on the host, atomically, with options `mode` (e.g. `"0644"`),
    /// `owner`, `group` and `sudo`.
    ///
    /// # Example
    /// ```rhai
    /// host::put("key = value\n", "/etc/app.conf", #{ mode: "0640", owner: "root", sudo: true });
    /// ```
    #[rhai_fn(name = "put", return_raw)]
    pub fn put_with(
        ctx: NativeCallContext,
        content: &str,
        dest: &str,
        options: Map,
    ) -> Result<(), Fail> {
        located(&ctx, write_file(&ctx, content.as_bytes(), dest, &options))
    }

    /// Write bytes to a file on the host, atomically, with the same options as text.
    ///
    /// # Example
    /// ```rhai
    /// let bytes = blob(4, 0x41);
    /// host::put(bytes, "/tmp/four-a", #{ mode: "0600" });
    /// ```
    #[rhai_fn(name = "put", return_raw)]
    pub fn put_blob(
        ctx: NativeCallContext,
        content: Blob,
        dest: &str,
        options: Map,
    ) -> Result<(), Fail> {
        located(&ctx, write_file(&ctx, &content, dest, &options))
    }

    /// Copy a file from the script's own directory to the host, atomically.
    ///
    /// The local path is relative to the script and may not lead outside its directory.
    ///
    /// # Example
    /// ```rhai
    /// host::upload("files/motd", "/etc/motd", #{ mode: "0644", sudo: true });
    /// ```
    #[rhai_fn(return_raw)]
    pub fn upload(
        ctx: NativeCallContext,
        local: &str,
        dest: &str,
        options: Map,
    ) -> Result<(), Fail> {
        located(
            &ctx,
            (|| {
                let host = HostContext::of(&ctx)?;
                let path = host.local_path(local)?;
                upload_file(&ctx, &path, dest, &options)
            })(),
        )
    }

    /// Read a text file from the host. A missing or unreadable file is an error.
    ///
    /// # Example
    /// ```rhai
    /// let release = host::get("/etc/os-release");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn get(ctx: NativeCallContext, path: &str) -> Result<String, Fail> {
        located(
            &ctx,
            (|| {
                let host = HostContext::of(&ctx)?;
                let output = host.get(path, host.sudo).map_err(failed)?;
                if output.status != 0 {
                    return Err(format!(
                        "unable to read `{path}` on `{}`: {}",
                        host.host.name,
                        output.stderr_text().trim()
                    )
                    .into());
                }
                String::from_utf8(output.stdout).map_err(|_| {
                    format!("`{path}` on `{}` is not UTF-8 text", host.host.name).into()
                })
            })(),
        )
    }

    /// Whether a path exists on the host (a file, directory or anything else).
    ///
    /// # Example
    /// ```rhai
    /// if !host::file_exists("/etc/nginx") { print("nginx is not installed"); }
    /// ```
    #[rhai_fn(return_raw)]
    pub fn file_exists(ctx: NativeCallContext, path: &str) -> Result<bool, Fail> {
        located(
            &ctx,
            (|| {
                let host = HostContext::of(&ctx)?;
                host.file_exists(path, host.sudo).map_err(failed)
            })(),
        )
    }

    /// Basic facts, asked in one round trip and cached for the run:
    /// `#{ os, distribution, hostname, arch }`.
    ///
    /// # Example
    /// ```rhai
    /// let f = host::facts();
    /// print(`${f.hostname} runs ${f.distribution} on ${f.arch}`);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn facts(ctx: NativeCallContext) -> Result<Map, Fail> {
        located(
            &ctx,
            (|| {
                let host = HostContext::of(&ctx)?;
                let facts = host.basic_facts().map_err(failed)?;
                let mut map = Map::new();
                map.insert("os".into(), facts.os.into());
                map.insert("distribution".into(), facts.distribution.into());
                map.insert("hostname".into(), facts.hostname.into());
                map.insert("arch".into(), facts.arch.into());
                Ok(map)
            })(),
        )
    }

    /// The kernel name in lower case (`linux`), from the cached facts.
    ///
    /// # Example
    /// ```rhai
    /// if host::os() != "linux" { throw "this runbook supports Linux only"; }
    /// ```
    #[rhai_fn(return_raw)]
    pub fn os(ctx: NativeCallContext) -> Result<String, Fail> {
        located(
            &ctx,
            (|| Ok(HostContext::of(&ctx)?.basic_facts().map_err(failed)?.os))(),
        )
    }

    /// The host's own name for itself, from the cached facts.
    ///
    /// # Example
    /// ```rhai
    /// print(`${host.name} calls itself ${host::hostname()}`);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn hostname(ctx: NativeCallContext) -> Result<String, Fail> {
        located(
            &ctx,
            (|| {
                Ok(HostContext::of(&ctx)?
                    .basic_facts()
                    .map_err(failed)?
                    .hostname)
            })(),
        )
    }

    /// The machine architecture (`x86_64`, `aarch64`), from the cached facts.
    ///
    /// # Example
    /// ```rhai
    /// let pkg = if host::arch() == "aarch64" { "app-arm64.tar.gz" } else { "app-amd64.tar.gz" };
    /// ```
    #[rhai_fn(return_raw)]
    pub fn arch(ctx: NativeCallContext) -> Result<String, Fail> {
        located(
            &ctx,
            (|| Ok(HostContext::of(&ctx)?.basic_facts().map_err(failed)?.arch))(),
        )
    }

    /// Report a message for this host (shown with `-v`, always in `--json`).
    ///
    /// # Example
    /// ```rhai
    /// host::log("configuring the firewall");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn log(ctx: NativeCallContext, message: &str) -> Result<(), Fail> {
        located(
            &ctx,
            (|| {
                HostContext::of(&ctx)?.message(Level::Info, message);
                Ok(())
            })(),
        )
    }

    /// Report a warning for this host (always shown).
    ///
    /// # Example
    /// ```rhai
    /// host::warn("disk is 90% full");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn warn(ctx: NativeCallContext, message: &str) -> Result<(), Fail> {
        located(
            &ctx,
            (|| {
                HostContext::of(&ctx)?.message(Level::Warn, message);
                Ok(())
            })(),
        )
    }
}
