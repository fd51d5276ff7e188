//! Template errors for people: what failed, in which template and line, then the source
//! line with a caret under the spot, as [`toyc_engine::script_error::ScriptError`] shows
//! script errors. An undefined variable is named, with the closest provided name.

use std::fmt;
use std::sync::LazyLock;

use minijinja::ErrorKind;
use regex::Regex;
use serde_json::{Map, Value};

use super::undefined::OffsetMap;

/// Where in a template something went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The template's name: its path below the templates directory, or the name given to
    /// [`Templates::render_str`](super::Templates::render_str).
    pub template: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// How many characters the caret underlines.
    pub width: usize,
    /// The template's source line, when known.
    pub source_line: Option<String>,
}

/// A template could not be loaded or rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// The template used a variable (or a key of one) that nobody defined; `default`
    /// or `is defined` are how a template allows for that.
    #[error(
        "undefined variable `{name}` {}{}\n{at}",
        in_template(at),
        suggest(suggestion)
    )]
    Undefined {
        /// The undefined expression as written: `app_prot`, `user.shell`.
        name: String,
        /// The closest defined name, when one is close.
        suggestion: Option<String>,
        /// Where it was used.
        at: Box<Location>,
    },
    /// The template is not valid Jinja2.
    #[error("syntax error {}: {message}\n{at}", in_template(at))]
    Syntax {
        /// What the parser expected.
        message: String,
        /// Where.
        at: Box<Location>,
    },
    /// Rendering failed: a filter's or a type error, `mandatory` on an undefined variable,
    /// or an `include`/`import` that could not be loaded.
    #[error("{}: {message}\n{at}", in_template(at))]
    Render {
        /// What failed.
        message: String,
        /// Where.
        at: Box<Location>,
    },
    /// The template file itself could not be loaded: missing, outside the templates
    /// directory, or not UTF-8 text.
    #[error("unable to load template `{name}`: {message}")]
    Load {
        /// The name asked for.
        name: String,
        /// Why not.
        message: String,
    },
}

fn in_template(at: &Location) -> String {
    match at.line {
        Some(line) => format!("in template `{}`, line {line}", at.template),
        None => format!("in template `{}`", at.template),
    }
}

fn suggest(suggestion: &Option<String>) -> String {
    suggestion
        .as_ref()
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default()
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = &self.template;
        match (self.line, self.column) {
            (Some(line), Some(col)) => write!(f, "  --> {name}:{line}:{col}")?,
            (Some(line), None) => write!(f, "  --> {name}:{line}")?,
            _ => write!(f, "  --> {name}")?,
        }
        if let (Some(line), Some(text)) = (self.line, &self.source_line) {
            let gutter = line.to_string().len();
            write!(f, "\n{:gutter$} |\n{line} | {text}", "")?;
            if let Some(col) = self.column {
                let pad = col.saturating_sub(1);
                write!(
                    f,
                    "\n{:gutter$} | {:pad$}{}",
                    "",
                    "",
                    "^".repeat(self.width.max(1))
                )?;
            }
        }
        Ok(())
    }
}

/// What [`TemplateError`] needs to know about a template's source.
pub(crate) struct SourceInfo<'a> {
    /// The text as the user wrote it.
    pub original: &'a str,
    /// From the rewritten text minijinja ran back to `original`.
    pub map: &'a OffsetMap,
}

impl TemplateError {
    /// Describe a minijinja error. `source_of` finds a template's original text by name;
    /// `vars` are the provided variables, for suggestions.
    pub(crate) fn from_minijinja<'a>(
        error: &minijinja::Error,
        source_of: impl Fn(&str) -> Option<SourceInfo<'a>>,
        vars: &Map<String, Value>,
    ) -> TemplateError {
        // Errors inside an included template arrive wrapped; the inner one has the spot.
        let mut error = error;
        while let Some(inner) =
            std::error::Error::source(error).and_then(|e| e.downcast_ref::<minijinja::Error>())
        {
            error = inner;
        }
        let template = error.name().unwrap_or("<template>").to_owned();
        let info = source_of(&template);
        let at = Box::new(locate(error, template, info.as_ref()));
        let detail = error.detail().unwrap_or_default();
        match error.kind() {
            ErrorKind::UndefinedError => {
                static NAMED: LazyLock<Result<Regex, regex::Error>> =
                    LazyLock::new(|| Regex::new(r"`([^`]+)` is undefined"));
                let named = NAMED.as_ref().ok().and_then(|re| re.captures(detail));
                if let Some(name) = named.and_then(|c| c.get(1)) {
                    let name = name.as_str().to_owned();
                    let spot = spot_text(error, info.as_ref()).unwrap_or_default();
                    if spot.starts_with("mandatory") {
                        return TemplateError::Render {
                            message: format!("mandatory variable `{name}` is not defined"),
                            at,
                        };
                    }
                    let suggestion = closest(&name, vars);
                    return TemplateError::Undefined {
                        name,
                        suggestion,
                        at,
                    };
                }
                let message = if detail.is_empty() {
                    "undefined value"
                } else {
                    detail
                };
                TemplateError::Render {
                    message: message.to_owned(),
                    at,
                }
            }
            ErrorKind::UnknownFilter | ErrorKind::UnknownTest => {
                let filter = error.kind() == ErrorKind::UnknownFilter;
                TemplateError::Syntax {
                    message: unknown_name(filter, detail),
                    at,
                }
            }
            ErrorKind::SyntaxError => TemplateError::Syntax {
                message: detail.to_owned(),
                at,
            },
            // Loader refusals and filters' own errors say it all.
            ErrorKind::InvalidOperation if !detail.is_empty() => TemplateError::Render {
                message: detail.to_owned(),
                at,
            },
            kind if detail.is_empty() => TemplateError::Render {
                message: kind.to_string(),
                at,
            },
            kind => TemplateError::Render {
                message: format!("{kind}: {detail}"),
                at,
            },
        }
    }
}

/// "unknown filter `x`; did you mean `y`?", or that an Ansible filter or test is not
/// supported by toyc, from minijinja's "filter x is unknown".
fn unknown_name(filter: bool, detail: &str) -> String {
    use super::ansible::{KNOWN_FILTERS, KNOWN_TESTS, UNSUPPORTED_FILTERS, UNSUPPORTED_TESTS};
    let what = if filter { "filter" } else { "test" };
    let name = detail
        .strip_prefix(what)
        .and_then(|rest| rest.trim().strip_suffix("is unknown"))
        .map(str::trim)
        .unwrap_or(detail)
        .trim_start_matches("ansible.builtin.");
    let (known, unsupported) = if filter {
        (KNOWN_FILTERS, UNSUPPORTED_FILTERS)
    } else {
        (KNOWN_TESTS, UNSUPPORTED_TESTS)
    };
    if unsupported.contains(&name) {
        return format!(
            "the Ansible {what} `{name}` is not supported by toyc; the README's template section lists what is"
        );
    }
    let closest = known
        .iter()
        .map(|k| (strsim::jaro_winkler(name, k), *k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| format!("; did you mean `{k}`?"))
        .unwrap_or_default();
    format!("unknown {what} `{name}`{closest}")
}

/// The original text of the spot the error points at, when minijinja gave a span.
fn spot_text(error: &minijinja::Error, info: Option<&SourceInfo>) -> Option<String> {
    let info = info?;
    let range = error.range()?;
    let (start, end) = (info.map.original(range.start), info.map.original(range.end));
    info.original.get(start..end).map(str::to_owned)
}

fn locate(error: &minijinja::Error, template: String, info: Option<&SourceInfo>) -> Location {
    let mut at = Location {
        template,
        line: error.line(),
        column: None,
        width: 1,
        source_line: None,
    };
    let Some(info) = info else {
        return at;
    };
    if let Some(range) = error.range() {
        let start = info.map.original(range.start).min(info.original.len());
        let end = info
            .map
            .original(range.end)
            .clamp(start, info.original.len());
        let before = info.original.get(..start).unwrap_or_default();
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        at.line = Some(before.matches('\n').count() + 1);
        at.column = Some(before[line_start..].chars().count() + 1);
        let spot = info.original.get(start..end).unwrap_or_default();
        at.width = spot.split('\n').next().unwrap_or_default().chars().count();
    }
    if let Some(line) = at.line {
        at.source_line = info
            .original
            .lines()
            .nth(line.saturating_sub(1))
            .map(str::to_owned);
    }
    at
}

/// The provided name closest to `name`, for "did you mean". For `user.shel` the keys of
/// `user` are the candidates.
fn closest(name: &str, vars: &Map<String, Value>) -> Option<String> {
    let parts: Vec<&str> = name.split('.').collect();
    let (last, parents) = parts.split_last()?;
    let mut scope = vars;
    for part in parents {
        scope = scope.get(*part)?.as_object()?;
    }
    let prefix: String = parents.iter().map(|p| format!("{p}.")).collect();
    scope
        .keys()
        .map(|k| (strsim::jaro_winkler(k, last), k))
        .filter(|(score, k)| *score > 0.8 && k != last)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| format!("{prefix}{k}"))
}
