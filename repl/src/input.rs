//! The line editor's helpers: when a line is complete, how it is coloured, what Tab
//! offers, and the prompt.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};

use nu_ansi_term::{Color, Style};
use reedline::{
    ColumnarMenu, Completer, Editor, Highlighter, Menu, MenuEvent, Painter, Prompt, PromptEditMode,
    PromptHistorySearch, PromptHistorySearchStatus, Span, StyledText, Suggestion, ValidationResult,
    Validator,
};
use rhai::{Engine, ParseErrorType};

/// The console's commands, apart from script input.
pub const META_COMMANDS: &[&str] = &[
    ".help", ".hosts", ".doc", ".limit", ".sudo", ".pending", ".apply", ".discard", ".quit",
];

const KEYWORDS: &[&str] = &[
    "let", "const", "fn", "if", "else", "for", "in", "while", "loop", "do", "until", "return",
    "break", "continue", "throw", "try", "catch", "switch", "import", "export", "as", "true",
    "false", "private", "this", "global",
];

/// Submit a line unless Rhai finds it incomplete (an open block, call or string):
/// then Enter starts a new line of the same input. Meta-commands are always complete.
pub struct RhaiValidator {
    /// An engine with the console's functions, used only to parse.
    pub engine: Engine,
}

impl Validator for RhaiValidator {
    fn validate(&self, line: &str) -> ValidationResult {
        if line.trim_start().starts_with('.') {
            return ValidationResult::Complete;
        }
        match self.engine.compile(line) {
            Err(e) if matches!(*e.0, ParseErrorType::UnexpectedEOF) => ValidationResult::Incomplete,
            // Rhai reports an open block as a missing `}` (not as an unexpected end):
            // an error placed past the last character means more input could finish it.
            Err(e) if past_the_end(line, e.1) => ValidationResult::Incomplete,
            _ => ValidationResult::Complete,
        }
    }
}

/// Whether `position` lies after the last non-blank character of `input`.
fn past_the_end(input: &str, position: rhai::Position) -> bool {
    let (Some(line), Some(column)) = (position.line(), position.position()) else {
        // No position: the error is the end of input itself.
        return true;
    };
    let lines: Vec<&str> = input.trim_end().lines().collect();
    match line.cmp(&lines.len()) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => column > lines.last().map(|l| l.chars().count()).unwrap_or(0),
    }
}

/// Keywords, strings, numbers, comments and meta-commands in their own colours.
pub struct RhaiHighlighter;

impl Highlighter for RhaiHighlighter {
    fn highlight(&self, line: &str, _cursor: usize) -> StyledText {
        let mut styled = StyledText::new();
        if line.trim_start().starts_with('.') {
            styled.push((Style::new().fg(Color::Cyan), line.to_owned()));
            return styled;
        }
        let chars: Vec<(usize, char)> = line.char_indices().collect();
        let text = |from: usize, to: usize| line[from..to].to_owned();
        let end_of = |i: usize| chars.get(i).map(|(b, _)| *b).unwrap_or(line.len());
        let mut i = 0;
        while i < chars.len() {
            let (start, c) = chars[i];
            let mut j = i + 1;
            let style = if c == '/' && chars.get(i + 1).map(|(_, c)| *c) == Some('/') {
                j = chars.len();
                Style::new().fg(Color::DarkGray)
            } else if c == '"' || c == '`' || c == '\'' {
                while j < chars.len() && chars[j].1 != c {
                    j += if chars[j].1 == '\\' { 2 } else { 1 };
                }
                j = (j + 1).min(chars.len());
                Style::new().fg(Color::Green)
            } else if c.is_ascii_digit() {
                while j < chars.len()
                    && (chars[j].1.is_ascii_alphanumeric()
                        || chars[j].1 == '.'
                        || chars[j].1 == '_')
                {
                    j += 1;
                }
                Style::new().fg(Color::Yellow)
            } else if c.is_alphabetic() || c == '_' {
                while j < chars.len() && (chars[j].1.is_alphanumeric() || chars[j].1 == '_') {
                    j += 1;
                }
                let word = &line[start..end_of(j)];
                if KEYWORDS.contains(&word) {
                    Style::new().fg(Color::Purple).bold()
                } else if line[end_of(j)..].starts_with("::") {
                    Style::new().fg(Color::Blue)
                } else {
                    Style::new()
                }
            } else {
                Style::new()
            };
            styled.push((style, text(start, end_of(j.min(chars.len())))));
            i = j;
        }
        styled
    }
}

/// What Tab can offer, refreshed after every line (variables change, `.limit` too).
#[derive(Debug, Default, Clone)]
pub struct Words {
    /// Functions callable without a prefix.
    pub functions: Vec<String>,
    /// Module names, and their functions as `module::name`.
    pub modules: Vec<String>,
    /// Functions of modules, `module::name`.
    pub module_functions: Vec<String>,
    /// Host and group names.
    pub targets: Vec<String>,
    /// Variables in the session's scope.
    pub variables: Vec<String>,
}

/// Completion of functions, modules, variables, host and group names (inside a string),
/// and meta-commands.
pub struct ReplCompleter {
    /// The words to offer.
    pub words: Arc<Mutex<Words>>,
}

impl Completer for ReplCompleter {
    fn complete(&mut self, line: &str, pos: usize) -> Vec<Suggestion> {
        let before = &line[..pos.min(line.len())];
        let words = self.words.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let suggest = |start: usize, candidates: Vec<String>, append_whitespace: bool| {
            let prefix = &before[start..];
            let mut found: Vec<String> = candidates
                .into_iter()
                .filter(|c| c.starts_with(prefix) && c.as_str() != prefix)
                .collect();
            found.sort();
            found.dedup();
            found
                .into_iter()
                .map(|value| Suggestion {
                    value,
                    span: Span::new(start, pos),
                    append_whitespace,
                    ..Suggestion::default()
                })
                .collect::<Vec<_>>()
        };
        let trimmed = before.trim_start();
        if trimmed.starts_with('.') {
            let offset = before.len() - trimmed.len();
            return match trimmed.split_once(' ') {
                None => suggest(
                    offset,
                    META_COMMANDS.iter().map(|s| (*s).to_owned()).collect(),
                    true,
                ),
                // `.limit web` and `.doc files` take a host pattern or a module.
                Some((command, arg)) => {
                    let start = before.len() - arg.len();
                    let start = start + arg.rfind([',', '!', '&', ' ']).map(|i| i + 1).unwrap_or(0);
                    match command {
                        ".limit" => suggest(start, words.targets.clone(), false),
                        ".doc" => suggest(
                            start,
                            [words.modules.clone(), words.module_functions.clone()].concat(),
                            false,
                        ),
                        ".sudo" => suggest(start, vec!["on".into(), "off".into()], false),
                        _ => Vec::new(),
                    }
                }
            };
        }
        // Inside a string literal: a host pattern (`hosts("we<Tab>`), one term of it.
        if before.matches('"').count() % 2 == 1 {
            let open = before.rfind('"').map(|i| i + 1).unwrap_or(0);
            let start = before[open..]
                .rfind([',', '!', '&', ':'])
                .map(|i| open + i + 1)
                .unwrap_or(open);
            return suggest(start, words.targets.clone(), false);
        }
        let start = before
            .char_indices()
            .rev()
            .find(|(_, c)| !(c.is_alphanumeric() || *c == '_' || *c == ':'))
            .map(|(i, c)| i + c.len_utf8())
            .unwrap_or(0);
        let word = &before[start..];
        if word.is_empty() {
            return Vec::new();
        }
        let candidates = if word.contains("::") {
            words.module_functions.clone()
        } else {
            [
                words.variables.clone(),
                words.functions.clone(),
                words.modules.iter().map(|m| format!("{m}::")).collect(),
                KEYWORDS.iter().map(|k| (*k).to_owned()).collect(),
            ]
            .concat()
        };
        suggest(start, candidates, false)
    }
}

/// The Tab menu: reedline's columnar menu, closed as soon as it has nothing to offer.
/// Left open and empty it shows "NO RECORDS FOUND" and takes the next Enter only to
/// close itself, so the line the user meant to run does not run.
pub struct CompletionMenu(pub ColumnarMenu);

impl CompletionMenu {
    fn close_if_empty(&mut self) {
        if self.0.is_active() && self.0.get_values().is_empty() {
            self.0.menu_event(MenuEvent::Deactivate);
        }
    }
}

// `settings` keeps its default: reedline reaches a menu's settings only through `name`
// and `indicator`, which are delegated (its settings type is not public).
impl Menu for CompletionMenu {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn indicator(&self) -> &str {
        self.0.indicator()
    }
    fn is_active(&self) -> bool {
        self.0.is_active()
    }
    fn menu_event(&mut self, event: MenuEvent) {
        self.0.menu_event(event);
    }
    fn can_quick_complete(&self) -> bool {
        self.0.can_quick_complete()
    }
    fn can_partially_complete(
        &mut self,
        values_updated: bool,
        editor: &mut Editor,
        completer: &mut dyn Completer,
    ) -> bool {
        self.0
            .can_partially_complete(values_updated, editor, completer)
    }
    fn update_values(&mut self, editor: &mut Editor, completer: &mut dyn Completer) {
        self.0.update_values(editor, completer);
        self.close_if_empty();
    }
    fn update_working_details(
        &mut self,
        editor: &mut Editor,
        completer: &mut dyn Completer,
        painter: &Painter,
    ) {
        self.0.update_working_details(editor, completer, painter);
        self.close_if_empty();
    }
    fn replace_in_buffer(&self, editor: &mut Editor) {
        self.0.replace_in_buffer(editor);
    }
    fn menu_required_lines(&self, terminal_columns: u16) -> u16 {
        self.0.menu_required_lines(terminal_columns)
    }
    fn menu_string(&self, available_lines: u16, use_ansi_coloring: bool) -> String {
        self.0.menu_string(available_lines, use_ansi_coloring)
    }
    fn min_rows(&self) -> u16 {
        self.0.min_rows()
    }
    fn get_values(&self) -> &[Suggestion] {
        self.0.get_values()
    }
    fn set_cursor_pos(&mut self, pos: (u16, u16)) {
        self.0.set_cursor_pos(pos);
    }
}

/// `toyc web> ` with the session's limit, `toyc# ` under `.sudo on`, and a pending count.
pub struct ReplPrompt {
    /// What the left side says.
    pub text: String,
    /// What follows it: `> `.
    pub indicator: &'static str,
}

impl Prompt for ReplPrompt {
    fn render_prompt_left(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.text)
    }
    fn render_prompt_right(&self) -> Cow<'_, str> {
        Cow::Borrowed("")
    }
    fn render_prompt_indicator(&self, _mode: PromptEditMode) -> Cow<'_, str> {
        Cow::Borrowed(self.indicator)
    }
    fn render_prompt_multiline_indicator(&self) -> Cow<'_, str> {
        Cow::Borrowed("... ")
    }
    fn render_prompt_history_search_indicator(&self, search: PromptHistorySearch) -> Cow<'_, str> {
        let prefix = match search.status {
            PromptHistorySearchStatus::Passing => "",
            PromptHistorySearchStatus::Failing => "failing ",
        };
        Cow::Owned(format!("({prefix}search: {}) ", search.term))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completer() -> ReplCompleter {
        ReplCompleter {
            words: Arc::new(Mutex::new(Words {
                functions: vec!["hosts".into(), "on".into(), "print".into()],
                modules: vec!["files".into(), "host".into()],
                module_functions: vec!["files::line".into(), "files::link".into()],
                targets: vec!["web1".into(), "web2".into(), "db1".into(), "web".into()],
                variables: vec!["result".into()],
            })),
        }
    }

    fn values(line: &str) -> Vec<String> {
        completer()
            .complete(line, line.len())
            .into_iter()
            .map(|s| s.value)
            .collect()
    }

    #[test]
    fn host_names_complete_inside_a_pattern_string() {
        assert_eq!(values("hosts(\"db"), ["db1"]);
        assert_eq!(values("hosts(\"web1,!we"), ["web", "web1", "web2"]);
        assert_eq!(values(".limit d"), ["db1"]);
    }

    #[test]
    fn identifiers_complete_to_variables_functions_and_modules() {
        assert_eq!(values("res"), ["result"]);
        assert_eq!(values("let x = ho"), ["host::", "hosts"]);
        assert_eq!(values("files::li"), ["files::line", "files::link"]);
        assert_eq!(values(".pe"), [".pending"]);
    }

    #[test]
    fn an_open_block_is_incomplete_and_a_meta_command_complete() {
        let validator = RhaiValidator {
            engine: Engine::new_raw(),
        };
        assert!(matches!(
            validator.validate("fn f(x) {"),
            ValidationResult::Incomplete
        ));
        assert!(matches!(
            validator.validate("let x = ["),
            ValidationResult::Incomplete
        ));
        assert!(matches!(
            validator.validate("hosts(\"web\").exec(\"uptime\""),
            ValidationResult::Incomplete
        ));
        assert!(matches!(
            validator.validate("1 +* 2"),
            ValidationResult::Complete
        ));
        assert!(matches!(
            validator.validate("let x = 1;"),
            ValidationResult::Complete
        ));
        assert!(matches!(
            validator.validate(".help"),
            ValidationResult::Complete
        ));
        assert!(matches!(
            validator.validate("fn f(x) {\n x + 1\n}"),
            ValidationResult::Complete
        ));
    }
}
