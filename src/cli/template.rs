//! `toyc template`: render a template for one host here, exactly as `files::template`
//! would in a run on that host, and print it, or diff it against the host's file.
//!
//! The same variables as a run (`toyc_stdlib::template::host_template_vars`): Ansible's
//! magic variables for the host in the play of the inventory's selected hosts, the facts
//! only when the template names one (then the host is asked for them in one round trip,
//! as a run does), the host's variables with `--vars-file`/`--var` over them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, Context};
use toyc_engine::inventory::Host;
use toyc_engine::run::RunContext;
use toyc_engine::sandbox::Limits;
use toyc_engine::transport::{quote, ExecRequest, Transport};
use toyc_stdlib::template::{host_template_vars, Call, Templates};

use super::args::TemplateArgs;
use super::run::extra_vars;
use super::targets::{select_hosts, ssh_options};
use super::{Failure, Outcome, Process};
use crate::exit::ExitCode;

/// The exit status `--diff` gives a host file that is missing: the command's own.
const MISSING: i32 = 3;

/// The top-level entry point for `toyc template`.
pub async fn template(args: TemplateArgs, process: &Process) -> Outcome {
    let (root, name) = templates_dir(&args.template)?;
    // A role's directory holds `templates/`; a lone template's directory stands for it.
    let script_root = match root.parent() {
        Some(parent) if root.file_name().is_some_and(|n| n == "templates") => parent.to_owned(),
        _ => root.clone(),
    };
    let templates = Templates::new(&root);
    templates
        .check_file(&name)
        .map_err(|e| Failure::input(anyhow!("{e}")))?;

    // The play: the selected hosts, each with `--var`s over its own, as a run has them.
    let extra = extra_vars(&args.variables, &process.secrets)?;
    let play: Arc<Vec<Host>> = Arc::new(
        select_hosts(&args.targets)?
            .into_iter()
            .map(|mut h| {
                h.vars.extend(extra.clone());
                h
            })
            .collect(),
    );
    let host = play
        .iter()
        .find(|h| h.name == args.host)
        .cloned()
        .ok_or_else(|| {
            Failure::input(anyhow!(
                "host `{}` is not in the inventory (or not selected by `--limit`): \
                 name one of {}",
                args.host,
                play.iter()
                    .map(|h| format!("`{}`", h.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
    let mut host = host;
    host.sudo |= args.targets.sudo;

    let run = RunContext::new(ssh_options(&args.targets)?, Limits::default())
        .with_cancel(process.cancel.clone())
        .with_secrets(process.secrets.clone())
        .with_command("template");
    let at = Place {
        root: &root,
        name: &name,
        script_root: &script_root,
    };
    let outcome = render_and_show(&args, &run, &templates, &at, &host, &play).await;
    run.session.close().await;
    outcome
}

/// Where the template is: its templates directory, its name there, the role's directory.
struct Place<'a> {
    root: &'a Path,
    name: &'a str,
    script_root: &'a Path,
}

async fn render_and_show(
    args: &TemplateArgs,
    run: &RunContext,
    templates: &Templates,
    at: &Place<'_>,
    host: &Host,
    play: &Arc<Vec<Host>>,
) -> Outcome {
    let name = at.name;
    let mut transport = None;
    let facts = if templates.uses_facts(name) {
        let output = exec(
            run,
            host,
            &mut transport,
            toyc_engine::ansible_facts::SCRIPT,
        )
        .await?;
        if output.status != 0 {
            return Err(anyhow!(
                "unable to gather the facts template `{name}` uses on `{}`: exit status {}: {}",
                host.name,
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )
            .into());
        }
        Some(toyc_engine::ansible_facts::facts_from_output(
            &output.stdout_text(),
        ))
    } else {
        None
    };
    let dest = args.diff.clone().unwrap_or_default();
    let fullpath = at.root.join(name);
    let call = Call {
        src: name,
        fullpath: &fullpath,
        dest: &dest,
        root: at.script_root,
    };
    let vars = host_template_vars(host, play, &call, facts.as_ref());
    let text = templates
        .render_host_file(name, &vars)
        .map_err(|e| Failure::input(anyhow!("{e}")))?;

    let mut stdout = std::io::stdout().lock();
    let Some(dest) = &args.diff else {
        // A closed pipe (`| head`) is not an error worth reporting.
        let _ = stdout.write_all(run.secrets.redact(&text).as_bytes());
        return Ok(ExitCode::Success);
    };
    let read = format!(
        "if [ -e {d} ]; then cat -- {d}; else exit {MISSING}; fi",
        d = quote(dest)
    );
    let output = exec(run, host, &mut transport, &read).await?;
    let current = match output.status {
        0 => output.stdout,
        MISSING => Vec::new(),
        status => {
            return Err(anyhow!(
                "unable to read `{dest}` on `{}`: exit status {status}: {}",
                host.name,
                String::from_utf8_lossy(&output.stderr).trim()
            )
            .into())
        }
    };
    if current == text.as_bytes() {
        return Ok(ExitCode::Success);
    }
    let Ok(current) = std::str::from_utf8(&current) else {
        let _ = writeln!(
            stdout,
            "`{dest}` on `{}` is not UTF-8 text: it differs from the template",
            host.name
        );
        return Ok(ExitCode::ChangesPending);
    };
    let on_host = if output.status == MISSING {
        format!("{dest} (missing on {})", host.name)
    } else {
        format!("{dest} (on {})", host.name)
    };
    let diff = similar::TextDiff::from_lines(current, text.as_str())
        .unified_diff()
        .context_radius(3)
        .header(&on_host, &format!("{dest} (rendered)"))
        .to_string();
    let _ = stdout.write_all(run.secrets.redact(&diff).as_bytes());
    Ok(ExitCode::ChangesPending)
}

/// Run `command` on `host`, connecting the first time; a host that cannot be reached
/// exits with the unreachable status.
async fn exec(
    run: &RunContext,
    host: &Host,
    transport: &mut Option<std::sync::Arc<dyn Transport>>,
    command: &str,
) -> Result<toyc_engine::transport::ExecOutput, Failure> {
    let unreachable = |e: String| Failure {
        code: ExitCode::Unreachable,
        error: anyhow!("host `{}` is unreachable: {e}", host.name),
    };
    let connected = match transport {
        Some(t) => std::sync::Arc::clone(t),
        None => {
            let t = run
                .session
                .connect(host)
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            *transport = Some(std::sync::Arc::clone(&t));
            t
        }
    };
    let request = ExecRequest {
        sudo: host.sudo,
        ..ExecRequest::new(command)
    };
    connected.exec(&request, None).await.map_err(|e| {
        if e.is_unreachable() {
            unreachable(e.to_string())
        } else {
            Failure::from(anyhow!("on `{}`: {e}", host.name))
        }
    })
}

/// The templates directory a template file is read from and its name below it: the
/// nearest `templates` directory above it (a role's, so that includes resolve as in a
/// run), else its own directory.
fn templates_dir(template: &Path) -> Result<(PathBuf, String), Failure> {
    let file = template
        .canonicalize()
        .with_context(|| format!("template `{}`", template.display()))
        .map_err(Failure::input)?;
    let mut dir = file.parent();
    while let Some(d) = dir {
        if d.file_name().is_some_and(|n| n == "templates") {
            break;
        }
        dir = d.parent();
    }
    let root = match dir {
        Some(d) => d.to_path_buf(),
        None => file.parent().map(Path::to_path_buf).ok_or_else(|| {
            Failure::input(anyhow!("template `{}` is not a file", file.display()))
        })?,
    };
    let name = file
        .strip_prefix(&root)
        .map_err(|_| {
            Failure::input(anyhow!(
                "template `{}` is outside `{}`",
                file.display(),
                root.display()
            ))
        })?
        .to_string_lossy()
        .into_owned();
    Ok((root, name))
}
