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
        let runbook: Runbook = serde_yaml::from_str(text).map_err(|e| RunbookYmlError::Parse {
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
        Ok(runbook)
    }

    /// The equivalent `runbook.rhai`: attributes in a map under the host's vars, each task
    /// as the operation that does the same.
    pub fn to_rhai(&self, role: &str) -> String {
        let mut out = format!(
            "// The `{role}` role's runbook.yml as a toyc runbook (`toyc role {role} --explain`).\n"
        );
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
