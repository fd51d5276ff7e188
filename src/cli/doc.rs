//! `toyc doc`: the stdlib's manual, rendered from the doc comments Rhai's metadata carries.

use anyhow::{anyhow, Context};
use serde_json::Value;
use toyc_engine::sandbox::{Limits, Sandbox};
use toyc_stdlib::commands::builtin::{Builtin, BUILTINS, TASKS_DOC};

use super::args::DocArgs;
use super::{Failure, Outcome};
use crate::exit::ExitCode;

/// The top-level entry point for `toyc doc`.
pub fn doc(args: &DocArgs) -> Outcome {
    print!("{}", manual(args.module.as_deref(), args.markdown)?);
    Ok(ExitCode::Success)
}

/// The manual of every module, of one (`files`), or of one function (`files::line`).
pub fn manual(name: Option<&str>, markdown: bool) -> Result<String, Failure> {
    let mut sandbox = Sandbox::new(".", Limits::default());
    toyc_stdlib::register(&mut sandbox);
    let engine = sandbox.engine(None, |_| {});
    let json = engine
        .gen_fn_metadata_to_json(false)
        .context("unable to read the stdlib's metadata")?;
    let metadata: Value =
        serde_json::from_str(&json).context("unable to parse the stdlib's metadata")?;
    let mut modules = metadata
        .get("modules")
        .and_then(Value::as_object)
        .cloned()
        .ok_or_else(|| anyhow!("the stdlib's metadata lists no modules"))?;
    // Functions called without a module prefix (`secret`, `stage`, `handler`, `notify`)
    // are listed as the module `global`.
    if let Some(globals) = metadata
        .get("functions")
        .filter(|f| f.as_array().is_some_and(|a| !a.is_empty()))
    {
        modules.insert(
            "global".into(),
            serde_json::json!({
                "doc": "Functions scripts call without a module prefix: secrets, what a push changed, stages, handlers, and generators' helpers.",
                "functions": globals,
            }),
        );
    }
    let (module, function) = match name.map(|n| n.split_once("::").unwrap_or((n, ""))) {
        // `toyc doc sleep`: a task command by its own name (`toyc doc shell` shows the
        // module `shell`, then the task command `shell`).
        Some((command, "")) if !modules.contains_key(command) && builtin(command).is_some() => {
            (Some(TASKS), Some(command))
        }
        Some((module, function)) => (Some(module), Some(function).filter(|f| !f.is_empty())),
        None => (None, None),
    };
    let names: Vec<&String> = match module {
        None => modules.keys().collect(),
        Some(TASKS) => Vec::new(),
        Some(wanted) => match modules.get_key_value(wanted) {
            Some((name, _)) => vec![name],
            None => {
                let known: Vec<&str> = modules.keys().map(String::as_str).chain([TASKS]).collect();
                return Err(Failure::input(anyhow!(
                    "no module `{wanted}` and no task command of that name; modules: {}",
                    known.join(", ")
                )));
            }
        },
    };
    let mut out = String::new();
    for name in names {
        render_module(&mut out, name, &modules[name.as_str()], markdown, function);
    }
    match (module, function) {
        (None, _) | (Some(TASKS), _) => render_tasks(&mut out, markdown, function),
        (Some(both), None) if builtin(both).is_some() => {
            render_tasks(&mut out, markdown, Some(both))
        }
        _ => {}
    }
    if let (Some(function), true) = (function, out.is_empty()) {
        return Err(Failure::input(anyhow!(
            "no function `{function}` in module `{}`; `toyc doc {}` lists them",
            module.unwrap_or_default(),
            module.unwrap_or_default()
        )));
    }
    Ok(out)
}

/// `manual` for the console's `.doc NAME`: the text, or the error as one line.
pub fn manual_text(name: &str) -> Result<String, String> {
    let name = Some(name.trim()).filter(|n| !n.is_empty());
    manual(name, false).map_err(|f| f.error.to_string())
}

/// The pseudo-module of task-list commands (`toyc doc tasks`), after the script modules.
const TASKS: &str = "tasks";

fn builtin(name: &str) -> Option<Builtin> {
    BUILTINS.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

/// The built-in task commands: what a task is, then each command with its arguments and
/// an example task; or only the command `only`.
fn render_tasks(out: &mut String, markdown: bool, only: Option<&str>) {
    if only.is_none() {
        if markdown {
            out.push_str(&format!("## `{TASKS}`\n\n{TASKS_DOC}\n\n"));
        } else {
            out.push_str(&format!(
                "{TASKS}\n{}\n{TASKS_DOC}\n\n",
                "=".repeat(TASKS.len())
            ));
        }
    }
    for (name, command) in BUILTINS {
        if only.is_some_and(|o| o != *name) {
            continue;
        }
        let doc = command.doc();
        if markdown {
            out.push_str(&format!("### `{name}`\n\n{}\n\n", doc.summary));
            for (argument, what) in doc.arguments {
                out.push_str(&format!("- `{argument}`: {what}\n"));
            }
            out.push_str(&format!("\n```rhai\n{}\n```\n\n", doc.example));
        } else {
            let width = doc
                .arguments
                .iter()
                .map(|(a, _)| a.len())
                .max()
                .unwrap_or(0);
            let mut text = format!("{}\n\nArguments:\n", doc.summary);
            for (argument, what) in doc.arguments {
                text.push_str(&format!("  {argument:width$}  {what}\n"));
            }
            text.push_str(&format!("\nExample:\n  {}", doc.example));
            out.push_str(&format!("{name}\n{}\n\n", indent(&text)));
        }
    }
}

fn render_module(out: &mut String, name: &str, module: &Value, markdown: bool, only: Option<&str>) {
    let doc = module
        .get("doc")
        .and_then(Value::as_str)
        .map(strip_comment_markers)
        .unwrap_or_default();
    if only.is_some() {
        // One function: no module header.
    } else if markdown {
        out.push_str(&format!("## `{name}`\n\n{doc}\n\n"));
    } else {
        out.push_str(&format!("{name}\n{}\n{doc}\n\n", "=".repeat(name.len())));
    }
    let mut functions: Vec<&Value> = module
        .get("functions")
        .and_then(Value::as_array)
        .map(|f| f.iter().collect())
        .unwrap_or_default();
    functions.sort_by_key(|f| {
        f.get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    });
    let prefix = if name == "global" {
        String::new()
    } else {
        format!("{name}::")
    };
    for function in functions {
        let function_name = function.get("name").and_then(Value::as_str);
        if only.is_some() && function_name != only {
            continue;
        }
        let signature = rhai_types(
            function
                .get("signature")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        );
        let comments: Vec<&str> = function
            .get("docComments")
            .and_then(Value::as_array)
            .map(|c| c.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let text = strip_comment_markers(&comments.join("\n"));
        if markdown {
            out.push_str(&format!("### `{prefix}{signature}`\n\n{text}\n\n"));
        } else {
            out.push_str(&format!("{prefix}{signature}\n{}\n\n", indent(&text)));
        }
    }
}

/// Rust types in a signature as script writers know them: `&str` is a string, a
/// fallible `Result<T, Fail>` just returns `T`, `()` returns nothing.
fn rhai_types(signature: &str) -> String {
    let mut text = signature.replace(' ', "");
    if let Some(start) = text.find("->Result<") {
        if let Some(inner) = text[start + 9..].strip_suffix(",Fail>") {
            text = format!("{}->{inner}", &text[..start]);
        }
    }
    text.replace("&str", "string")
        .replace("String", "string")
        .replace("Map", "map")
        .replace("Blob", "blob")
        .replace("->()", "")
        .replace(':', ": ")
        .replace(',', ", ")
        .replace("->", " -> ")
}

/// Doc comments arrive with their `///` or `//!` markers.
fn strip_comment_markers(text: &str) -> String {
    text.lines()
        .map(|l| {
            let l = l.trim_start();
            let l = l
                .strip_prefix("///")
                .or_else(|| l.strip_prefix("//!"))
                .unwrap_or(l);
            l.strip_prefix(' ').unwrap_or(l)
        })
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_owned()
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.is_empty() {
                String::new()
            } else {
                format!("    {l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}
