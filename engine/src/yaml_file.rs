//! A YAML file of settings (the daemon's config, a workflow) read into a typed value,
//! and why it could not be: every error names the file, and a syntax or type error
//! its line and column.

use std::path::{Path, PathBuf};

/// Why a settings file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// The file could not be read.
    #[error("unable to read `{}`: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Malformed YAML, or an unknown or mistyped key.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// Well-formed but unusable.
    #[error("{}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
}

/// The text of the file at `path`.
pub fn read(path: &Path) -> Result<String, FileError> {
    std::fs::read_to_string(path).map_err(|source| FileError::Read {
        path: path.to_owned(),
        source,
    })
}

/// `text`, read from `path`, as a `T`.
pub fn parse<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, FileError> {
    serde_yaml::from_str(text).map_err(|e| {
        let (line, column) = e.location().map_or((1, 1), |at| (at.line(), at.column()));
        FileError::Syntax {
            path: path.to_owned(),
            line,
            column,
            message: message_of(&e),
        }
    })
}

/// The error's message without serde_yaml's own ` at line L column C` (toyc prints
/// `file:L:C:` in front).
pub(crate) fn message_of(err: &serde_yaml::Error) -> String {
    let text = err.to_string();
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(start) = rest.find(" at line ") {
        out.push_str(&rest[..start]);
        let tail = &rest[start + " at line ".len()..];
        rest = skip_line_column(tail).unwrap_or_else(|| {
            out.push_str(" at line ");
            tail
        });
    }
    out.push_str(rest);
    out
}

/// After ` at line `: skips `L column C`, returning what follows, or `None` if not that.
fn skip_line_column(tail: &str) -> Option<&str> {
    let tail = tail.trim_start_matches(|c: char| c.is_ascii_digit());
    let tail = tail.strip_prefix(" column ")?;
    Some(tail.trim_start_matches(|c: char| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Settings {
        port: u16,
    }

    #[test]
    fn a_type_error_names_the_file_line_and_column_once() {
        let err = parse::<Settings>(Path::new("d.yml"), "\nport: many\n").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("d.yml:2:7: "), "{text}");
        assert!(!text.contains("at line"), "{text}");
    }
}
