//! The older role format, `runbook.yml`, as the toy-config tool wrote it: an `attributes`
//! map and a `tasks` list, each task one of `shell`, `files` or `templates`. toyc runs it by
//! translating it into the equivalent `runbook.rhai` (what `--explain` prints), so both
//! formats go through the same sandbox, planner and output.
//!
//! ```yaml
//! attributes: {web_root: /srv/www}
//! tasks:
//!   - name: web root
//!     shell: mkdir -p /srv/www          # or {command: ..., creates|removes|unless|onlyif: ..., sudo: true}
//!   - name: pages
//!     files:                            # copied from the repo's files/
//!       - {src: index.html, dest: /srv/www/index.html, mode: "0644"}
//!   - name: config
//!     templates:                        # rendered from templates/ with the attributes
//!       - {src: site.conf.j2, dest: /etc/site.conf, owner: root}
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::script_error::{LINE_MARKER, SOURCE_MARKER};

/// Why a `runbook.yml` could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunbookYmlError {
    /// The YAML is malformed or holds an unknown key.
    #[error("{}{}: {message}", path.display(), at.map(|(line, column)| format!(":{line}:{column}")).unwrap_or_default())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The 1-based line and column, when known.
        at: Option<(usize, usize)>,
        /// What is wrong.
        message: String,
    },
    /// A task is not exactly one of `shell`, `files` or `templates`.
    #[error("{}: task {index} {}must have exactly one of `shell`, `files` or `templates`", path.display(), name.as_ref().map(|n| format!("(`{n}`) ")).unwrap_or_default())]
    TaskKind {
        /// The file.
        path: PathBuf,
        /// The task's 1-based position.
        index: usize,
        /// The task's name, if it has one.
        name: Option<String>,
    },
}

/// A parsed `runbook.yml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Runbook {
    /// Defaults for the role's attributes (under `attributes.yml` and the inventory).
    #[serde(default)]
    pub attributes: Map<String, Value>,
    #[serde(default)]
    tasks: Vec<Task>,
    /// The 1-based line each task starts on, when the list is written in block style.
    #[serde(skip)]
    task_lines: Vec<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Task {
    name: Option<String>,
    shell: Option<Shell>,
    files: Option<Vec<FileEntry>>,
    templates: Option<Vec<FileEntry>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Shell {
    Command(String),
    Full(ShellSpec),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShellSpec {
    command: String,
    creates: Option<String>,
    removes: Option<String>,
    unless: Option<String>,
    onlyif: Option<String>,
    sudo: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    src: String,
    dest: String,
    /// A string (`"0644"`) or a number written without quotes (`0644`).
    mode: Option<Value>,
    owner: Option<String>,
    group: Option<String>,
}

impl Runbook {
    /// Parse `text`, read from `path` (named in errors with line and column).
    pub fn parse(text: &str, path: &Path) -> Result<Runbook, RunbookYmlError> {
        let mut runbook: Runbook =
            serde_yaml::from_str(text).map_err(|e| RunbookYmlError::Parse {
                path: path.to_owned(),
                at: e.location().map(|at| (at.line(), at.column())),
                message: e.to_string(),
            })?;
        for (index, task) in runbook.tasks.iter().enumerate() {
            let kinds = [
                task.shell.is_some(),
                task.files.is_some(),
                task.templates.is_some(),
            ];
            if kinds.iter().filter(|k| **k).count() != 1 {
                return Err(RunbookYmlError::TaskKind {
                    path: path.to_owned(),
                    index: index + 1,
                    name: task.name.clone(),
                });
            }
        }
        runbook.task_lines = task_lines(text);
        if runbook.task_lines.len() != runbook.tasks.len() {
            runbook.task_lines.clear();
        }
        Ok(runbook)
    }

    /// The equivalent `runbook.rhai`: attributes in a map under the host's vars, each task
    /// as the operation that does the same.
    pub fn to_rhai(&self, role: &str) -> String {
        self.to_rhai_from(role, None)
    }

    /// [`Runbook::to_rhai`], marked (see [`crate::script_error::SOURCE_MARKER`]) so that an
    /// error in a task points at its line of `source`, the `runbook.yml` the user wrote,
    /// rather than at the translation nobody wrote.
    pub fn to_rhai_from(&self, role: &str, source: Option<&Path>) -> String {
        let mut out = format!(
            "// The `{role}` role's runbook.yml as a toyc runbook (`toyc role {role} --explain`).\n"
        );
        let source = source.filter(|_| !self.task_lines.is_empty());
        if let Some(source) = source {
            let _ = writeln!(out, "{SOURCE_MARKER}{}", source.display());
        }
        if self.attributes.is_empty() {
            out.push_str("let attributes = vars;\n");
        } else {
            out.push_str(
                "// runbook.yml's attributes, under what attributes.yml, the inventory and --var set.\n",
            );
            let _ = writeln!(
                out,
                "let attributes = {};\nattributes.mixin(vars);",
                rhai_literal(&Value::Object(self.attributes.clone()))
            );
        }
        for (index, task) in self.tasks.iter().enumerate() {
            let _ = writeln!(
                out,
                "\n// task {}{}",
                index + 1,
                task.name
                    .as_ref()
                    .map(|n| format!(": {}", one_line(n)))
                    .unwrap_or_default()
            );
            if let (Some(_), Some(line)) = (source, self.task_lines.get(index)) {
                let _ = writeln!(out, "{LINE_MARKER}{line}");
            }
            if let Some(shell) = &task.shell {
                let (command, options) = match shell {
                    Shell::Command(command) => (command, Map::new()),
                    Shell::Full(spec) => {
                        let mut options = Map::new();
                        for (key, value) in [
                            ("creates", &spec.creates),
                            ("removes", &spec.removes),
                            ("unless", &spec.unless),
                            ("onlyif", &spec.onlyif),
                        ] {
                            if let Some(value) = value {
                                options.insert(key.into(), Value::String(value.clone()));
                            }
                        }
                        if let Some(sudo) = spec.sudo {
                            options.insert("sudo".into(), Value::Bool(sudo));
                        }
                        (&spec.command, options)
                    }
                };
                let _ = writeln!(
                    out,
                    "shell::run({}, {});",
                    rhai_literal(&Value::String(command.clone())),
                    rhai_literal(&Value::Object(options))
                );
            }
            for entry in task.files.iter().flatten() {
                let _ = writeln!(
                    out,
                    "files::copy({}, {}, {});",
                    rhai_literal(&Value::String(entry.src.clone())),
                    rhai_literal(&Value::String(entry.dest.clone())),
                    file_options(entry, None)
                );
            }
            for entry in task.templates.iter().flatten() {
                let _ = writeln!(
                    out,
                    "files::template({}, {}, {});",
                    rhai_literal(&Value::String(entry.src.clone())),
                    rhai_literal(&Value::String(entry.dest.clone())),
                    file_options(entry, Some("attributes"))
                );
            }
        }
        out
    }
}

/// The 1-based line of each item of the top-level `tasks:` list written in block style
/// (`- ...` lines, at the indentation of the first one); empty for a flow-style list.
fn task_lines(text: &str) -> Vec<usize> {
    let mut lines = Vec::new();
    let mut in_tasks = false;
    let mut indent = None;
    for (number, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let depth = line.len() - trimmed.len();
        if depth == 0 && !trimmed.starts_with('-') {
            in_tasks = trimmed.starts_with("tasks:") && trimmed["tasks:".len()..].trim().is_empty();
            continue;
        }
        let item = trimmed == "-" || trimmed.starts_with("- ");
        if in_tasks && item && indent.is_none_or(|i| i == depth) {
            indent = Some(depth);
            lines.push(number + 1);
        }
    }
    lines
}

/// `#{ mode: .., owner: .., group: .. }`, with `vars: <variable>` for templates.
fn file_options(entry: &FileEntry, vars: Option<&str>) -> String {
    let mut parts = Vec::new();
    if let Some(mode) = &entry.mode {
        let mode = match mode {
            Value::String(s) => s.clone(),
            // `mode: 0644` without quotes: the digits as written.
            other => format!("{:0>4}", other.to_string()),
        };
        parts.push(format!("mode: {}", rhai_literal(&Value::String(mode))));
    }
    for (key, value) in [("owner", &entry.owner), ("group", &entry.group)] {
        if let Some(value) = value {
            parts.push(format!(
                "{key}: {}",
                rhai_literal(&Value::String(value.clone()))
            ));
        }
    }
    if let Some(vars) = vars {
        parts.push(format!("vars: {vars}"));
    }
    if parts.is_empty() {
        "#{}".into()
    } else {
        format!("#{{ {} }}", parts.join(", "))
    }
}

/// A task name fit for a `//` comment.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// `value` as Rhai source: strings escaped, maps as `#{"key": value}`, null as `()`.
fn rhai_literal(value: &Value) -> String {
    match value {
        Value::Null => "()".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => {
            let text = n.to_string();
            // Rhai reads `1e5` only with a decimal point.
            if text.contains(['e', 'E']) && !text.contains('.') {
                format!("{}", n.as_f64().unwrap_or(f64::NAN))
            } else {
                text
            }
        }
        Value::String(s) => rhai_string(s),
        Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(rhai_literal)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Object(map) if map.is_empty() => "#{}".into(),
        Value::Object(map) => format!(
            "#{{ {} }}",
            map.iter()
                .map(|(k, v)| format!("{}: {}", rhai_string(k), rhai_literal(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A double-quoted Rhai string; `${` is only special in back-ticked strings.
fn rhai_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_kind_becomes_its_operation() {
        let text = "attributes: {port: 8080, name: \"a \\\"b\\\"\"}\ntasks:\n  - name: dir\n    shell: {command: mkdir -p /srv, creates: /srv}\n  - files: [{src: a.txt, dest: /srv/a.txt, mode: 0644}]\n  - templates: [{src: t.j2, dest: /srv/t}]\n";
        let runbook = Runbook::parse(text, Path::new("runbook.yml")).expect("parses");
        let rhai = runbook.to_rhai("web");
        assert!(
            rhai.contains(r#"let attributes = #{ "name": "a \"b\"", "port": 8080 };"#)
                || rhai.contains(r#"let attributes = #{ "port": 8080, "name": "a \"b\"" };"#),
            "{rhai}"
        );
        assert!(
            rhai.contains(r#"shell::run("mkdir -p /srv", #{ "creates": "/srv" });"#),
            "{rhai}"
        );
        assert!(
            rhai.contains(r#"files::copy("a.txt", "/srv/a.txt", #{ mode: "0644" });"#),
            "{rhai}"
        );
        assert!(
            rhai.contains(r#"files::template("t.j2", "/srv/t", #{ vars: attributes });"#),
            "{rhai}"
        );
    }

    #[test]
    fn each_task_is_marked_with_its_yaml_line() {
        let text = "# web\ntasks:\n  - name: one\n    shell: ls\n\n  -\n    files: [{src: a, dest: /a}]\nattributes: {x: [1, 2]}\n";
        let runbook = Runbook::parse(text, Path::new("runbook.yml")).expect("parses");
        assert_eq!(runbook.task_lines, vec![3, 6]);
        let rhai = runbook.to_rhai_from("web", Some(Path::new("/c/runbook.yml")));
        assert!(rhai.contains("// toyc:source /c/runbook.yml\n"), "{rhai}");
        assert!(rhai.contains("// toyc:line 3\nshell::run"), "{rhai}");
        assert!(rhai.contains("// toyc:line 6\nfiles::copy"), "{rhai}");
        let flow = Runbook::parse("tasks: [{shell: ls}]\n", Path::new("r.yml")).expect("parses");
        assert!(flow.task_lines.is_empty());
    }

    #[test]
    fn mistakes_name_the_file_line_and_task() {
        let err = Runbook::parse("tasks:\n  - shel: ls\n", Path::new("r/runbook.yml"))
            .expect_err("unknown key")
            .to_string();
        assert!(err.starts_with("r/runbook.yml:2:"), "{err}");
        assert!(err.contains("unknown field `shel`"), "{err}");
        let err = Runbook::parse(
            "tasks:\n  - {name: both, shell: ls, files: []}\n",
            Path::new("runbook.yml"),
        )
        .expect_err("two kinds")
        .to_string();
        assert!(
            err.contains("task 1 (`both`) must have exactly one"),
            "{err}"
        );
    }
}
