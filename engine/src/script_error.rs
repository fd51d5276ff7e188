//! Script errors for people: what failed, then `--> file:line:col`, the source line and a
//! caret under the spot, pointing into the user's script rather than toyc's internals.

use std::fmt;
use std::path::{Path, PathBuf};

use rhai::{EvalAltResult, ParseError, Position};

use crate::limits::{Limits, CANCEL_TOKEN, MEMORY_TOKEN, TIMEOUT_TOKEN};

/// The line of a generated script that names the file it was generated from (followed by
/// that file's path): errors in the script point into that file instead, at the line of
/// the nearest [`LINE_MARKER`] above them (a `runbook.yml` role's translation).
pub const SOURCE_MARKER: &str = "// toyc:source ";

/// A line of a generated script naming the line of its source the statements below it
/// come from (followed by the 1-based line number).
pub const LINE_MARKER: &str = "// toyc:line ";

/// A script failed to compile or to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptError {
    /// What went wrong, without position.
    pub message: String,
    /// The file the error is in.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// The offending source line, when it could be read.
    pub source_line: Option<String>,
}

impl std::error::Error for ScriptError {}

impl ScriptError {
    /// The script file could not be read.
    pub fn io(path: &Path, error: &std::io::Error) -> ScriptError {
        ScriptError {
            message: format!("unable to read script `{}`: {error}", path.display()),
            file: path.to_owned(),
            line: None,
            column: None,
            source_line: None,
        }
    }

    /// A compile error in `source`, read from `path`.
    pub fn from_parse(error: &ParseError, path: &Path, source: &str) -> ScriptError {
        Self::at(error.0.to_string(), path, error.1, Some(source))
    }

    /// A runtime error. Errors raised inside imported modules or functions defined there
    /// are reported at their own file and position.
    pub fn from_eval(error: &EvalAltResult, main: &Path, limits: &Limits) -> ScriptError {
        let mut file = main.to_owned();
        let mut error = error;
        let mut outer_pos = error.position();
        loop {
            match error {
                EvalAltResult::ErrorInFunctionCall(_, source, inner, pos) => {
                    if !source.is_empty() {
                        file = PathBuf::from(source);
                    }
                    if !pos.is_none() {
                        outer_pos = *pos;
                    }
                    error = inner;
                }
                EvalAltResult::ErrorInModule(path, inner, _) => {
                    if Path::new(path).is_absolute() {
                        file = PathBuf::from(path);
                    }
                    error = inner;
                }
                _ => break,
            }
        }
        let pos = if error.position().is_none() {
            outer_pos
        } else {
            error.position()
        };
        Self::at(message_of(error, limits), &file, pos, None)
    }

    fn at(message: String, path: &Path, pos: Position, source: Option<&str>) -> ScriptError {
        let line = pos.line();
        let text = match source {
            Some(s) => Some(s.to_owned()),
            None => line.and_then(|_| std::fs::read_to_string(path).ok()),
        };
        if let (Some(text), Some(n)) = (&text, line) {
            if let Some(error) = Self::in_source_of(&message, text, n) {
                return error;
            }
        }
        let source_line = line.and_then(|n| {
            text.as_deref()?
                .lines()
                .nth(n.saturating_sub(1))
                .map(str::to_owned)
        });
        ScriptError {
            message,
            file: path.to_owned(),
            line,
            column: pos.position(),
            source_line,
        }
    }
}

impl ScriptError {
    /// An error at line `n` of a generated script (`text`, marked with [`SOURCE_MARKER`]),
    /// placed at the line of its source the statement came from.
    fn in_source_of(message: &str, text: &str, n: usize) -> Option<ScriptError> {
        let mut lines = text.lines();
        let source = lines
            .by_ref()
            .take(3)
            .find_map(|l| l.strip_prefix(SOURCE_MARKER))?;
        let line = text
            .lines()
            .take(n)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .find_map(|l| l.strip_prefix(LINE_MARKER)?.trim().parse::<usize>().ok())?;
        let file = PathBuf::from(source);
        let source_line = std::fs::read_to_string(&file)
            .ok()
            .and_then(|t| t.lines().nth(line.saturating_sub(1)).map(str::to_owned));
        Some(ScriptError {
            message: message.to_owned(),
            file,
            line: Some(line),
            column: None,
            source_line,
        })
    }
}

/// The message of an error without Rhai's ` (line N, position M)` suffix, with toyc's
/// own words for its limits.
fn message_of(error: &EvalAltResult, limits: &Limits) -> String {
    match error {
        EvalAltResult::ErrorTerminated(token, _) => match token.clone().into_string().as_deref() {
            Ok(TIMEOUT_TOKEN) => format!(
                "script exceeded its time limit of {}s and was stopped (raise it with `--script-timeout`)",
                limits.timeout.as_secs_f64()
            ),
            Ok(CANCEL_TOKEN) => "script cancelled".to_owned(),
            Ok(MEMORY_TOKEN) => format!(
                "toyc's memory passed {} MiB while the script ran, so it was stopped (a map or array growing without end?)",
                limits.max_memory / (1024 * 1024)
            ),
            _ => "script terminated".to_owned(),
        },
        EvalAltResult::ErrorTooManyOperations(_) => format!(
            "script exceeded its limit of {} operations and was stopped (an endless loop?)",
            limits.max_operations
        ),
        EvalAltResult::ErrorStackOverflow(_) => format!(
            "function calls nested deeper than {} levels (endless recursion?)",
            limits.max_call_levels
        ),
        // Only a length that does not fit in memory at all (`pad` to 2^63): toyc sets
        // no size limit in Rhai (see `Limits::max_memory`).
        EvalAltResult::ErrorDataTooLarge(what, _) => {
            format!("{} is too large", what.to_lowercase())
        }
        EvalAltResult::ErrorTooManyModules(_) => {
            format!("script imports more than {} modules", limits.max_modules)
        }
        EvalAltResult::ErrorRuntime(value, _) if value.is_string() => value.to_string(),
        other => strip_position(&other.to_string()),
    }
}

fn strip_position(text: &str) -> String {
    match text.rfind(" (line ") {
        Some(i) if text.ends_with(')') => text[..i].to_owned(),
        _ => text.to_owned(),
    }
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.message)?;
        let file = self.file.display();
        match (self.line, self.column) {
            (Some(line), Some(col)) => write!(f, "  --> {file}:{line}:{col}")?,
            (Some(line), None) => write!(f, "  --> {file}:{line}")?,
            _ => write!(f, "  --> {file}")?,
        }
        if let (Some(line), Some(text)) = (self.line, &self.source_line) {
            let gutter = line.to_string().len();
            write!(f, "\n{:gutter$} |\n{line} | {text}", "")?;
            if let Some(col) = self.column {
                write!(f, "\n{:gutter$} | {:>col$}", "", "^")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::Sandbox;

    #[test]
    fn parse_errors_show_file_line_column_and_a_caret() {
        let sandbox = Sandbox::new(".", Limits::default());
        let err = sandbox
            .compile_text("let x = 1;\nlet y = x +;\n", Path::new("deploy.rhai"))
            .expect_err("syntax error");
        assert_eq!(err.line, Some(2));
        let text = err.to_string();
        assert!(text.contains("--> deploy.rhai:2:"), "{text}");
        assert!(text.contains("2 | let y = x +;"), "{text}");
        assert!(
            text.lines()
                .last()
                .is_some_and(|l| l.trim_end().ends_with('^')),
            "{text}"
        );
    }

    #[test]
    fn runtime_errors_point_at_the_failing_expression() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.rhai");
        std::fs::write(&path, "let a = 1;\nlet b = nope + 1;\n").expect("write");
        let sandbox = Sandbox::new(dir.path(), Limits::default());
        let ast = sandbox.compile(&path).expect("compiles");
        let err = sandbox
            .engine(None, |_| {})
            .run_ast(&ast)
            .expect_err("undefined variable");
        let err = sandbox.describe(&err, &path);
        assert_eq!((err.line, err.column), (Some(2), Some(9)));
        assert!(err.message.contains("nope"), "{}", err.message);
        assert_eq!(err.source_line.as_deref(), Some("let b = nope + 1;"));
    }
}
