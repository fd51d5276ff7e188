//! A workflow file: the record that describes the host (the clipboard's first state)
//! and the steps, `module::task`, in order.
//!
//! ```yaml
//! instance:
//!   hostname: loki
//!   fqdn: loki.example.com
//!   provider: docker
//!   image: debian-12
//! steps:
//!   - provider::create
//!   - provider::wait_running
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Why a workflow file cannot be used: the file, and for a syntax or type error its
/// line and column.
pub use toyc_engine::yaml_file::FileError as DefinitionError;

/// One step: `module::task`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// The module (`provider`, `host`, or `modules/NAME.rhai`).
    pub module: String,
    /// The task in it.
    pub task: String,
}

impl Step {
    /// Parse `module::task`.
    pub fn parse(text: &str) -> Option<Step> {
        let (module, task) = text.trim().split_once("::")?;
        let plain = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        (plain(module) && plain(task)).then(|| Step {
            module: module.to_owned(),
            task: task.to_owned(),
        })
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}::{}", self.module, self.task)
    }
}

/// A workflow, loaded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workflow {
    /// Its name: the run's name (`status loki`); the record's `instance.hostname` unless
    /// given.
    pub name: String,
    /// The file it came from.
    pub path: PathBuf,
    /// The directory its `modules/` are in (the file's directory).
    pub base: PathBuf,
    /// The record: the clipboard before the first step.
    pub record: Map<String, Value>,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

impl Workflow {
    /// Load a workflow file (YAML, or a Rhai script whose value is the record with its
    /// `steps`); `name` overrides the record's `instance.hostname`.
    pub fn load(path: &Path, name: Option<&str>) -> Result<Workflow, DefinitionError> {
        let text = toyc_engine::yaml_file::read(path)?;
        if path.extension().is_some_and(|e| e == "rhai") {
            let record =
                crate::script::evaluate(path).map_err(|message| DefinitionError::Invalid {
                    path: path.to_owned(),
                    message,
                })?;
            return Workflow::from_record(record, path, name);
        }
        Workflow::parse(&text, path, name)
    }

    /// [`Workflow::load`] of YAML `text` as if read from `path`.
    pub fn parse(text: &str, path: &Path, name: Option<&str>) -> Result<Workflow, DefinitionError> {
        let record: Map<String, Value> = toyc_engine::yaml_file::parse(path, text)?;
        Workflow::from_record(record, path, name)
    }

    /// The workflow a record with its `steps` describes.
    fn from_record(
        mut record: Map<String, Value>,
        path: &Path,
        name: Option<&str>,
    ) -> Result<Workflow, DefinitionError> {
        let invalid = |message: String| DefinitionError::Invalid {
            path: path.to_owned(),
            message,
        };
        let steps = match record.remove("steps") {
            Some(Value::Array(steps)) if !steps.is_empty() => steps,
            _ => {
                return Err(invalid(
                    "no `steps:`: list the workflow's steps as `module::task`".into(),
                ))
            }
        };
        let steps = steps
            .iter()
            .enumerate()
            .map(|(i, step)| {
                step.as_str().and_then(Step::parse).ok_or_else(|| {
                    invalid(format!("step {} is `{step}`, not `module::task`", i + 1))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let name = match name {
            Some(name) => name.to_owned(),
            None => record
                .get("instance")
                .and_then(|i| i.get("hostname"))
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| {
                    invalid("no name: set `instance.hostname`, or pass `--name`".into())
                })?,
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(invalid(format!(
                "the workflow's name `{name}` must be letters, digits, `-`, `_` or `.`"
            )));
        }
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_owned();
        Ok(Workflow {
            name,
            path: path.to_owned(),
            base,
            record,
            steps,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_module_task_and_the_name_comes_from_the_record() {
        let text = "instance:\n  hostname: loki\nsteps:\n  - provider::create\n  - dns::register\n";
        let workflow = Workflow::parse(text, Path::new("w/loki.yml"), None).expect("parses");
        assert_eq!(workflow.name, "loki");
        assert_eq!(workflow.steps[1].to_string(), "dns::register");
        assert_eq!(workflow.base, Path::new("w"));
        assert!(!workflow.record.contains_key("steps"));
        let bad = "instance: {hostname: x}\nsteps: [provider::create, oops]\n";
        let error = Workflow::parse(bad, Path::new("x.yml"), None).expect_err("bad step");
        assert!(
            error.to_string().contains("step 2 is `\"oops\"`"),
            "{error}"
        );
        let error =
            Workflow::parse("steps: [a::b]\n", Path::new("x.yml"), None).expect_err("no name");
        assert!(error.to_string().contains("--name"), "{error}");
        let error = Workflow::parse("steps: [a::b\n", Path::new("x.yml"), None).expect_err("yaml");
        assert!(error.to_string().starts_with("x.yml:"), "{error}");
    }

    #[test]
    fn a_rhai_workflow_script_computes_its_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("web.rhai");
        std::fs::write(
            &path,
            "let name = \"web\" + 7;\n#{ instance: #{ hostname: name, size: 512 }, steps: [\"provider::create\", `host::${\"keygen\"}`] }\n",
        )
        .expect("write");
        let workflow = Workflow::load(&path, None).expect("loads");
        assert_eq!(workflow.name, "web7");
        assert_eq!(workflow.record["instance"]["size"], 512);
        assert_eq!(workflow.steps[1].to_string(), "host::keygen");
        std::fs::write(&path, "42").expect("write");
        let error = Workflow::load(&path, None)
            .expect_err("not a map")
            .to_string();
        assert!(error.contains("not the workflow's record"), "{error}");
    }
}
