//! Reading a task's arguments: each key checked against the ones its command knows (a
//! typo in a hand-edited plan is an error, not a silent default), each value's type
//! checked with a message that names the argument and what it must be.

use serde_json::Value;
use toyc_engine::tasklist::Task;

/// Arguments every task may have: `service` (for logs), `sudo`, `description`.
pub(crate) const COMMON: &[&str] = &["service", "sudo", "description"];

/// A task's arguments, checked for unknown keys.
pub(crate) struct Args<'a> {
    task: &'a Task,
}

impl<'a> Args<'a> {
    /// Check `task`'s arguments against `known` (and [`COMMON`]).
    pub(crate) fn new(task: &'a Task, known: &[&str]) -> Result<Args<'a>, String> {
        for key in task.args.keys() {
            if !known.contains(&key.as_str()) && !COMMON.contains(&key.as_str()) {
                let close = known
                    .iter()
                    .chain(COMMON)
                    .filter(|k| strsim::jaro_winkler(k, key) > 0.8)
                    .map(|k| format!("; did you mean `{k}`?"))
                    .next()
                    .unwrap_or_default();
                let all: Vec<&str> = known.iter().chain(COMMON).copied().collect();
                return Err(format!(
                    "`{}` has no argument `{key}` (arguments: {}){close}",
                    task.command,
                    all.join(", ")
                ));
            }
        }
        let args = Args { task };
        if let Some(v) = args.get("service") {
            if !v.is_string() {
                return Err(args.wrong("service", "a string", v));
            }
        }
        args.bool("sudo")?;
        Ok(args)
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.task.args.get(key).filter(|v| !v.is_null())
    }

    fn wrong(&self, key: &str, wanted: &str, got: &Value) -> String {
        let got = match got {
            Value::String(s) => format!("the string `{s}`"),
            Value::Number(n) => format!("the number `{n}`"),
            Value::Bool(b) => format!("`{b}`"),
            Value::Array(_) => "a list".into(),
            Value::Object(_) => "a map".into(),
            Value::Null => "null".into(),
        };
        format!(
            "argument `{key}` of `{}` must be {wanted}, not {got}",
            self.task.command
        )
    }

    /// An optional string.
    pub(crate) fn string(&self, key: &str) -> Result<Option<String>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(self.wrong(key, "a string", other)),
        }
    }

    /// A string the command cannot do without.
    pub(crate) fn required(&self, key: &str) -> Result<String, String> {
        match self.string(key)? {
            Some(s) if !s.is_empty() => Ok(s),
            _ => Err(format!(
                "`{}` needs argument `{key}` (a string)",
                self.task.command
            )),
        }
    }

    /// A required absolute path on the host.
    pub(crate) fn path(&self, key: &str) -> Result<String, String> {
        crate::ops::absolute(&self.required(key)?).map_err(|e| format!("argument `{key}`: {e}"))
    }

    /// An optional boolean.
    pub(crate) fn bool(&self, key: &str) -> Result<Option<bool>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.wrong(key, "true or false", other)),
        }
    }

    /// An optional non-negative number.
    pub(crate) fn number(&self, key: &str) -> Result<Option<f64>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_f64() {
                Some(f) if f.is_finite() && f >= 0.0 => Ok(Some(f)),
                _ => Err(self.wrong(key, "a number of at least 0", &Value::Number(n.clone()))),
            },
            Some(other) => Err(self.wrong(key, "a number", other)),
        }
    }

    /// A required TCP port.
    pub(crate) fn port(&self, key: &str) -> Result<u16, String> {
        match self.get(key) {
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p > 0)
                .ok_or_else(|| {
                    self.wrong(key, "a port from 1 to 65535", &Value::Number(n.clone()))
                }),
            Some(other) => Err(self.wrong(key, "a port from 1 to 65535", other)),
            None => Err(format!(
                "`{}` needs argument `{key}` (a port from 1 to 65535)",
                self.task.command
            )),
        }
    }
}
