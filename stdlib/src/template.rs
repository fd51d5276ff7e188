//! Jinja2 templates, rendered the way Ansible's `template` module renders them, so that
//! existing role templates produce the same bytes.
//!
//! Like Ansible: `trim_blocks` on, `lstrip_blocks` off, the template's trailing newlines
//! kept (an included template's dropped), `\r\n` read as `\n`; an undefined variable is
//! an error, except under `default` and `is defined` (also `x.y | default(...)` with `x`
//! undefined); values print as Python prints them (`True`, `['a', 1]`, nothing for
//! `None`); Ansible's filters (`to_nice_yaml`, `regex_replace`, `b64encode`, `quote`,
//! `mandatory`, ...) and Python's string and dict methods (`.items()`, `.upper()`,
//! `.split()`) are there.
//!
//! Templates are read only from one directory: `include`, `import` and `extends` name
//! files below it (first next to the including template, as Ansible looks), never
//! through `..`, an absolute path or a symlink leading out.
//!
//! Maps keep the order they were written in (Ansible's dicts do); a `#jinja2:` first
//! line overrides the whitespace settings and delimiters; `files::template` adds
//! Ansible's magic variables and, for templates that name them, its facts (`magic.rs`).
//!
//! Known differences from Ansible: `regex_*` take Rust regular expressions (no
//! backreferences or lookaround); tuples are lists; Ansible-only lookups, the tests of
//! task results, `omit` and a few filters (`vault`, `ipaddr`, ... see
//! `ansible::UNSUPPORTED_FILTERS`) are absent, and naming one says so; a date plus a
//! timedelta is an error (subtraction works, `datetime.rs`).

mod ansible;
mod datetime;
mod error;
mod filters;
#[cfg(test)]
mod fixture_tests;
mod html;
mod include;
mod magic;
mod methods;
mod password;
mod percent;
mod play;
mod pyfmt;
mod pyrandom;
mod scope;
mod undefined;
mod wordwrap;
mod yaml;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use minijinja::syntax::SyntaxConfig;
use minijinja::value::Value as JinjaValue;
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use rhai::plugin::*;
use serde_json::{Map, Value};
use toyc_engine::context::confined_path;
use toyc_engine::script_error::ScriptError;

pub use error::{Location, TemplateError};
pub use magic::{host_template_vars, Call, HostTemplateVars};
pub use play::PlayVars;
use undefined::OffsetMap;

/// A template's text as written, and how the rewritten text minijinja runs maps back.
struct Source {
    original: String,
    map: OffsetMap,
}

type Sources = Arc<Mutex<HashMap<String, Source>>>;

/// Templates loaded from one directory, rendered as Ansible renders them.
pub struct Templates {
    env: Environment<'static>,
    sources: Sources,
    /// The directory, to build the templates again for a `#jinja2:` header.
    root: PathBuf,
}

/// The settings of Ansible's `#jinja2:` first line (`#jinja2: trim_blocks: False`).
#[derive(Debug, Default)]
struct Header {
    trim_blocks: Option<bool>,
    lstrip_blocks: Option<bool>,
    keep_trailing_newline: Option<bool>,
    block: Option<(String, String)>,
    variable: Option<(String, String)>,
    comment: Option<(String, String)>,
}

impl Header {
    /// The header of `text` and how many bytes it takes (with its line break), if any.
    /// As Ansible: `key: value` pairs split at `,`, values Python literals.
    fn parse(text: &str) -> Option<(Header, usize)> {
        let rest = text.strip_prefix("#jinja2:")?;
        let (line, len) = match rest.find('\n') {
            Some(eol) => (&rest[..eol], "#jinja2:".len() + eol + 1),
            None => (rest, text.len()),
        };
        let mut header = Header::default();
        let mut strings: HashMap<String, String> = HashMap::new();
        for pair in line.split(',') {
            let Some((key, value)) = pair.split_once(':') else {
                continue;
            };
            let value = value.trim();
            let flag = match value {
                "True" => Some(true),
                "False" => Some(false),
                _ => None,
            };
            match key.trim() {
                "trim_blocks" => header.trim_blocks = flag,
                "lstrip_blocks" => header.lstrip_blocks = flag,
                "keep_trailing_newline" => header.keep_trailing_newline = flag,
                other => {
                    let unquoted = value
                        .strip_prefix(['\'', '"'])
                        .and_then(|v| v.strip_suffix(['\'', '"']))
                        .unwrap_or(value);
                    strings.insert(other.to_owned(), unquoted.to_owned());
                }
            }
        }
        let pair = |start: &str, end: &str, default: (&str, &str)| match (
            strings.get(start),
            strings.get(end),
        ) {
            (None, None) => None,
            (s, e) => Some((
                s.cloned().unwrap_or_else(|| default.0.to_owned()),
                e.cloned().unwrap_or_else(|| default.1.to_owned()),
            )),
        };
        header.block = pair("block_start_string", "block_end_string", ("{%", "%}"));
        header.variable = pair("variable_start_string", "variable_end_string", ("{{", "}}"));
        header.comment = pair("comment_start_string", "comment_end_string", ("{#", "#}"));
        Some((header, len))
    }
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates").finish_non_exhaustive()
    }
}

impl Templates {
    /// Templates below `root`; nothing is read until a template is rendered.
    pub fn new(root: &Path) -> Templates {
        Templates::build(root, &Header::default(), None)
    }

    /// Templates below `root` with a `#jinja2:` header's settings, the header line of
    /// template `top` left out (Ansible removes it from the template it renders).
    fn build(root: &Path, header: &Header, top: Option<String>) -> Templates {
        let mut env = Environment::new();
        // Ansible's `template` module: trim_blocks on, lstrip_blocks off. Jinja2 drops a
        // template's final newline and Ansible adds it back to the result only (see
        // `restore_trailing_newlines`), so an included template's final newline goes.
        let mut builder = SyntaxConfig::builder();
        builder
            .trim_blocks(header.trim_blocks.unwrap_or(true))
            .lstrip_blocks(header.lstrip_blocks.unwrap_or(false))
            .keep_trailing_newline(header.keep_trailing_newline.unwrap_or(false));
        if let Some((start, end)) = &header.block {
            builder.block_delimiters(start.clone(), end.clone());
        }
        if let Some((start, end)) = &header.variable {
            builder.variable_delimiters(start.clone(), end.clone());
        }
        if let Some((start, end)) = &header.comment {
            builder.comment_delimiters(start.clone(), end.clone());
        }
        // Building fails only for delimiters that clash; Jinja2 would fail too, later.
        if let Ok(syntax) = builder.build() {
            env.set_syntax(syntax);
        }
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // Debug mode makes minijinja name the undefined expression and give spans.
        env.set_debug(true);
        // Configuration files, not HTML: never escape (Ansible does not either).
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_formatter(pyfmt::format);
        env.set_unknown_method_callback(methods::call);
        env.add_function(undefined::LOOKUP, undefined::lookup);
        env.add_filter(include::INCLUDE_ALONE, include::include_alone);
        env.add_filter(datetime::MINUS, datetime::minus);
        env.add_function(scope::HIDE, scope::hide);
        env.add_global(
            scope::CALL_HIDDEN,
            JinjaValue::from_object(scope::CallHidden),
        );
        env.add_filter("to_datetime", datetime::to_datetime);
        env.add_function("now", datetime::now);
        filters::register(&mut env);
        ansible::register(&mut env);

        let root = root.to_owned();
        let kept_root = root.clone();
        let join_root = root.clone();
        env.set_path_join_callback(move |name, parent| join(&join_root, name, parent).into());
        let sources: Sources = Arc::default();
        let loader_sources = sources.clone();
        let syntax = env.syntax().clone();
        env.set_loader(move |name| {
            let Some(mut text) = read(&root, name)? else {
                return Ok(None);
            };
            if top.as_deref() == Some(name) {
                if let Some((_, len)) = Header::parse(&text) {
                    text.drain(..len);
                }
            }
            Ok(Some(prepare(&loader_sources, name, text, &syntax)))
        });
        Templates {
            env,
            sources,
            root: kept_root,
        }
    }

    /// Parse the template file `name` (and what it includes statically) without
    /// rendering it: its syntax errors, before any host is touched.
    pub fn check_file(&self, name: &str) -> Result<(), TemplateError> {
        self.load(name, &Map::new()).map(|_| ())
    }

    fn load(
        &self,
        name: &str,
        vars: &Map<String, Value>,
    ) -> Result<minijinja::Template<'_, '_>, TemplateError> {
        self.env.get_template(name).map_err(|e| match e.kind() {
            minijinja::ErrorKind::TemplateNotFound => TemplateError::Load {
                name: name.to_owned(),
                message: "no such file in the templates directory".to_owned(),
            },
            minijinja::ErrorKind::InvalidOperation if e.line().is_none() => TemplateError::Load {
                name: name.to_owned(),
                message: e.detail().unwrap_or_default().to_owned(),
            },
            _ => self.describe(&e, vars),
        })
    }

    /// Whether the template file `name` (or one it includes) names one of Ansible's
    /// facts, which are then gathered for it; a template that does not load names none.
    pub fn uses_facts(&self, name: &str) -> bool {
        let facts = toyc_engine::ansible_facts::FACT_NAMES;
        let Ok(template) = self.env.get_template(name) else {
            return false;
        };
        if template
            .undeclared_variables(false)
            .iter()
            .any(|v| facts.contains(&v.as_str()))
        {
            return true;
        }
        // Included and imported templates: their text, as loaded so far.
        let sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        sources
            .values()
            .any(|s| facts.iter().any(|f| s.original.contains(f)))
    }

    /// Render the template file `name` (a path below the templates directory).
    pub fn render_file(
        &self,
        name: &str,
        vars: &Map<String, Value>,
    ) -> Result<String, TemplateError> {
        self.render_file_in(name, vars, None)
    }

    /// Render the template file `name` for a host of a run (`files::template`).
    pub fn render_host_file(
        &self,
        name: &str,
        vars: &HostTemplateVars,
    ) -> Result<String, TemplateError> {
        self.render_file_in(name, &vars.vars, Some(&vars.play))
    }

    fn render_file_in(
        &self,
        name: &str,
        vars: &Map<String, Value>,
        play: Option<&PlayVars>,
    ) -> Result<String, TemplateError> {
        // A `#jinja2:` first line changes the syntax for this render: templates built
        // again with it.
        if let Ok(Some(text)) = read(&self.root, name) {
            if let Some((header, _)) = Header::parse(&text) {
                let with_header = Templates::build(&self.root, &header, Some(name.to_owned()));
                return with_header.render_prepared(name, vars, play);
            }
        }
        self.render_prepared(name, vars, play)
    }

    fn render_prepared(
        &self,
        name: &str,
        vars: &Map<String, Value>,
        play: Option<&PlayVars>,
    ) -> Result<String, TemplateError> {
        let template = self.load(name, vars)?;
        let output = template
            .render(context(vars, play))
            .map_err(|e| self.describe(&e, vars))?;
        Ok(self.restore_trailing_newlines(name, output))
    }

    /// Render template text `source`; `origin_name` names it in errors. Its `include`s
    /// are read from the templates directory.
    pub fn render_str(
        &self,
        source: &str,
        origin_name: &str,
        vars: &Map<String, Value>,
    ) -> Result<String, TemplateError> {
        let text = prepare(
            &self.sources,
            origin_name,
            source.to_owned(),
            self.env.syntax(),
        );
        let template = self
            .env
            .template_from_named_str(origin_name, &text)
            .map_err(|e| self.describe(&e, vars))?;
        let output = template
            .render(context(vars, None))
            .map_err(|e| self.describe(&e, vars))?;
        Ok(self.restore_trailing_newlines(origin_name, output))
    }

    /// Ansible's `preserve_trailing_newlines`: as many line breaks at the end of the
    /// output as at the end of the template, where rendering left fewer.
    fn restore_trailing_newlines(&self, name: &str, mut output: String) -> String {
        let sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        let trailing = |text: &str| text.len() - text.trim_end_matches('\n').len();
        if let Some(source) = sources.get(name) {
            let missing = trailing(&source.original).saturating_sub(trailing(&output));
            output.push_str(&"\n".repeat(missing));
        }
        output
    }

    fn describe(&self, error: &minijinja::Error, vars: &Map<String, Value>) -> TemplateError {
        let sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        TemplateError::from_minijinja(
            error,
            |name| {
                sources.get(name).map(|s| error::SourceInfo {
                    original: &s.original,
                    map: &s.map,
                })
            },
            vars,
        )
    }
}

/// Normalize line breaks as Jinja2 does (`newline_sequence='\n'`), remember the text for
/// error messages, and return it rewritten for Ansible's undefined semantics.
fn prepare(sources: &Sources, name: &str, text: String, syntax: &SyntaxConfig) -> String {
    let original = if text.contains('\r') {
        text.replace("\r\n", "\n").replace('\r', "\n")
    } else {
        text
    };
    let (rewritten, map) = undefined::rewrite(&original, name, syntax.clone());
    let mut sources = sources.lock().unwrap_or_else(|p| p.into_inner());
    sources.insert(name.to_owned(), Source { original, map });
    rewritten
}

/// A template file's text, `None` when there is no such file (so that minijinja reports
/// it missing, and `ignore missing` works), or an error when it lies outside `root`.
fn read(root: &Path, name: &str) -> Result<Option<String>, minijinja::Error> {
    let refuse =
        |message: String| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, message);
    if !Path::new(name).is_absolute() && std::fs::symlink_metadata(root.join(name)).is_err() {
        return Ok(None);
    }
    let path = confined_path(root, name).map_err(|e| refuse(format!("template `{name}`: {e}")))?;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| refuse(format!("unable to read template `{name}`: {e}")))?;
    Ok(Some(text))
}

/// Where `include name` from template `parent` points: next to `parent` when that file
/// exists (Ansible searches the including template's directory first), else `name`
/// from the root.
fn join(root: &Path, name: &str, parent: &str) -> String {
    let beside = match Path::new(parent).parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(name),
        _ => return name.to_owned(),
    };
    if root.join(&beside).exists() {
        beside.to_string_lossy().into_owned()
    } else {
        name.to_owned()
    }
}

/// The variables as minijinja values, hidden from context-less imports (`scope.rs`).
/// `vars` over a host's run-wide magic variables (`play`), which stay unread objects.
fn context(vars: &Map<String, Value>, play: Option<&PlayVars>) -> JinjaValue {
    let run_wide = play.map(PlayVars::values).into_iter().flatten();
    scope::Root::value(JinjaValue::from_pairs(
        run_wide.chain(vars.iter().map(|(k, v)| (k.as_str(), to_jinja(v)))),
    ))
}

/// A JSON value as a minijinja value (maps keep their order).
pub(crate) fn to_jinja(value: &Value) -> JinjaValue {
    match value {
        Value::Null => JinjaValue::from(()),
        Value::Bool(b) => JinjaValue::from(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => JinjaValue::from(i),
            (_, Some(u)) => JinjaValue::from(u),
            _ => JinjaValue::from(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => JinjaValue::from(s.as_str()),
        Value::Array(items) => items.iter().map(to_jinja).collect(),
        Value::Object(_) if toyc_engine::yaml11::timestamp_text(value).is_some() => {
            let text = toyc_engine::yaml11::timestamp_text(value).unwrap_or_default();
            datetime::Moment::from_yaml(text)
                .map_or_else(|| JinjaValue::from(text), datetime::Moment::value)
        }
        Value::Object(map) => {
            JinjaValue::from_pairs(map.iter().map(|(k, v)| (k.as_str(), to_jinja(v))))
        }
    }
}

type Fail = Box<EvalAltResult>;

/// The directory templates are read from in a script: its own, or the current one.
/// A [`toyc_engine::sandbox::Check`]: the templates a script names by a literal path
/// (`files::template("app.j2", ...)` below `templates/`, `template::render_file(...)`
/// below the script's directory) are parsed when it compiles, so a syntax error in one is
/// bad input found before any host is touched, like one in the script.
pub fn check_named_templates(ast: &rhai::AST, root: &Path) -> Result<(), ScriptError> {
    use rhai::{ASTNode, Expr};
    let mut named = Vec::new();
    ast.walk(&mut |nodes| {
        let call = match nodes.last() {
            Some(ASTNode::Expr(Expr::FnCall(call, _))) => Some(call),
            Some(ASTNode::Stmt(rhai::Stmt::FnCall(call, _))) => Some(call),
            _ => None,
        };
        if let Some(call) = call {
            let dir = match (call.namespace.to_string().as_str(), call.name.as_str()) {
                ("files", "template") => Some("templates"),
                ("template", "render_file") => Some(""),
                _ => None,
            };
            if let (Some(dir), Some(Expr::StringConstant(name, _))) = (dir, call.args.first()) {
                named.push((root.join(dir), name.to_string()));
            }
        }
        true
    });
    for (dir, name) in named {
        // Refusals and missing files are the call's to report, where it runs.
        if confined_path(&dir, &name).is_err() {
            continue;
        }
        if let Err(TemplateError::Syntax { message, at }) = Templates::new(&dir).check_file(&name) {
            return Err(ScriptError {
                message: format!("syntax error in template `{}`: {message}", at.template),
                file: dir.join(&at.template),
                line: at.line,
                column: at.column,
                source_line: at.source_line,
            });
        }
    }
    Ok(())
}

fn script_dir(ctx: &NativeCallContext) -> Result<PathBuf, Fail> {
    match toyc_engine::context::HostContext::of(ctx) {
        Ok(host) => Ok(host.script_root.clone()),
        Err(_) => std::env::current_dir()
            .map_err(|e| format!("unable to find the current directory: {e}").into()),
    }
}

fn vars_of(function: &str, vars: rhai::Map) -> Result<Map<String, Value>, Fail> {
    rhai::serde::from_dynamic(&rhai::Dynamic::from_map(vars)).map_err(|e| {
        format!("`{function}`: the variables cannot be used in a template: {e}").into()
    })
}

/// Jinja2 templates, rendered as Ansible's `template` module renders them.
#[export_module]
pub mod template_api {
    use rhai::Map;
    use toyc_engine::context::confined_path;

    use super::{script_dir, vars_of, Fail, Templates};

    /// Render Jinja2 template text with `vars` (a map) and return the result.
    ///
    /// Rendering follows Ansible's `template` module (trim_blocks, the trailing newline
    /// kept, `True` printed as `True`, Ansible's filters). An undefined variable is an
    /// error naming it; use `default` or `is defined` for optional ones. `include` and
    /// `import` read files from the script's directory.
    ///
    /// # Example
    /// ```rhai
    /// let text = template::render("port = {{ port | default(80) }}\n", #{ name: "web" });
    /// ```
    #[rhai_fn(return_raw)]
    pub fn render(ctx: NativeCallContext, text: &str, vars: Map) -> Result<String, Fail> {
        let vars = vars_of("template::render", vars)?;
        Templates::new(&script_dir(&ctx)?)
            .render_str(text, "<template>", &vars)
            .map_err(|e| e.to_string().into())
    }

    /// Render the template file `path`, relative to the script's directory (and not
    /// outside it), with `vars`; its `include`s are looked up next to it first.
    ///
    /// # Example
    /// ```rhai
    /// let ini = template::render_file("templates/app.ini.j2", #{ app_port: 8080, workers: 4 });
    /// host::put(ini, "/etc/app/app.ini");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn render_file(ctx: NativeCallContext, path: &str, vars: Map) -> Result<String, Fail> {
        let vars = vars_of("template::render_file", vars)?;
        let root = script_dir(&ctx)?;
        // What `HostContext::local_path` checks, also without a host: no `..`, absolute
        // path or symlink out of the directory, said before anything is read.
        confined_path(&root, path)?;
        Templates::new(&root)
            .render_file(path, &vars)
            .map_err(|e| e.to_string().into())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// Render `source` with the JSON object `vars`, panicking on errors.
    pub(crate) fn render(source: &str, vars: &Value) -> String {
        try_render(source, vars).unwrap_or_else(|e| panic!("{e}"))
    }

    pub(crate) fn try_render(source: &str, vars: &Value) -> Result<String, TemplateError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let vars = vars.as_object().cloned().unwrap_or_default();
        Templates::new(dir.path()).render_str(source, "t.j2", &vars)
    }

    fn error(source: &str, vars: &Value) -> String {
        try_render(source, vars).expect_err("fails").to_string()
    }

    #[test]
    fn an_undefined_variable_is_named_with_a_suggestion_and_a_caret() {
        let vars = json!({"app_port": 8080, "user": {"shell": "/bin/sh"}});
        assert_eq!(
            error("[main]\nport = {{ app_prot }}\n", &vars),
            "undefined variable `app_prot` in template `t.j2`, line 2; did you mean `app_port`?\n  \
             --> t.j2:2:11\n  |\n2 | port = {{ app_prot }}\n  |           ^^^^^^^^"
        );
        let err = error("{{ user.shel }}", &vars);
        assert!(err.starts_with("undefined variable `user.shel` in template `t.j2`, line 1; did you mean `user.shell`?"), "{err}");
    }

    // See: issue 11: an unknown filter or test names itself and its place, with the
    // closest known name, and an Ansible one toyc lacks says so.
    #[test]
    fn unknown_filters_and_tests_name_the_closest_or_say_toyc_lacks_them() {
        let vars = json!({"x": "a"});
        let err = error("line\n{{ x | to_nice_jsn }}", &vars);
        assert!(
            err.starts_with("syntax error in template `t.j2`, line 2: unknown filter `to_nice_jsn`; did you mean `to_nice_json`?"),
            "{err}"
        );
        assert!(err.contains("t.j2:2:"), "{err}");
        let err = error("{{ x | vault('secret') }}", &vars);
        assert!(
            err.contains("the Ansible filter `vault` is not supported by toyc"),
            "{err}"
        );
        let err = error("{{ x is versoin('1') }}", &vars);
        assert!(
            err.contains("unknown test `versoin`; did you mean `version`?"),
            "{err}"
        );
        let err = error("{{ x is failed }}", &vars);
        assert!(
            err.contains("the Ansible test `failed` is not supported by toyc"),
            "{err}"
        );
    }

    #[test]
    fn a_jinja2_header_overrides_the_whitespace_settings() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("t.j2"),
            "#jinja2: trim_blocks: False, lstrip_blocks: True\n  {% if true %}\nx\n  {% endif %}\n",
        )
        .expect("write");
        let out = Templates::new(dir.path())
            .render_file("t.j2", &Map::new())
            .expect("renders");
        // Jinja2 with trim_blocks off, lstrip_blocks on, the header line removed (what
        // `ansible localhost -m template` writes for it).
        assert_eq!(out, "\nx\n");
    }

    #[test]
    fn undefined_is_an_error_except_under_default_and_defined() {
        let vars = json!({"d": {"a": 1}});
        for source in [
            "{{ nosuch }}",
            "{% for x in nosuch %}{% endfor %}",
            "{% if nosuch %}{% endif %}",
            "{{ nosuch | upper }}",
            "{{ 'a' ~ nosuch }}",
            "{{ nosuch.y }}",
            "{{ d.b }}",
        ] {
            let err = error(source, &vars);
            assert!(err.starts_with("undefined variable `"), "{source}: {err}");
        }
        assert_eq!(
            render(
                "{{ nosuch | default('a') }}{{ nosuch.y | default('b') }}{{ d.b.c | d('c') }}\
                 {{ nosuch['k'] | default('d') }}{{ nosuch is defined }}{{ d.b.c is undefined }}\
                 {{ 'x' if false }}{{ nosuch | default }}{{ d.a | default(2) }}",
                &vars
            ),
            "abcdFalseTrue1"
        );
    }

    #[test]
    fn mandatory_names_the_variable() {
        let vars = json!({});
        let err = error("{{ nosuch | mandatory }}", &vars);
        assert!(
            err.starts_with(
                "in template `t.j2`, line 1: mandatory variable `nosuch` is not defined"
            ),
            "{err}"
        );
        let err = error("{{ nosuch | mandatory('set nosuch') }}", &vars);
        assert!(
            err.starts_with("in template `t.j2`, line 1: set nosuch"),
            "{err}"
        );
        assert_eq!(render("{{ 1 | mandatory }}", &vars), "1");
    }

    #[test]
    fn whitespace_follows_ansible() {
        let vars = json!({"l": [1, 2]});
        // trim_blocks eats the newline after a block tag (`\r\n` too: it is read as `\n`);
        // lstrip_blocks is off; the final newline stays. Ansible 2.19 writes the same.
        assert_eq!(
            render(
                "{% for i in l %}\n  {% if i %}{{ i }}{% endif %}\n{% endfor %}\r\nend\n",
                &vars
            ),
            "  1  2end\n"
        );
    }

    #[test]
    fn includes_stay_inside_the_templates_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("repo");
        std::fs::create_dir_all(root.join("templates")).expect("mkdir");
        std::fs::write(dir.path().join("secret"), "no").expect("write");
        std::fs::write(root.join("templates/part.j2"), "part {{ x }}").expect("write");
        std::fs::write(root.join("templates/main.j2"), "{% include 'part.j2' %}.\n")
            .expect("write");
        std::fs::write(root.join("templates/bad.j2"), "a\n{{ nosuch }}").expect("write");
        std::fs::write(root.join("templates/outer.j2"), "{% include 'bad.j2' %}").expect("write");
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("link")).expect("symlink");
        let templates = Templates::new(&root);
        let vars = json!({"x": 1}).as_object().cloned().expect("object");

        // Found beside the including template, as Ansible looks.
        assert_eq!(
            templates
                .render_file("templates/main.j2", &vars)
                .expect("renders"),
            "part 1.\n"
        );
        for (source, why) in [
            ("{% include '../secret' %}", "leads outside"),
            ("{% include 'link' %}", "leads outside"),
            ("{% include '/etc/passwd' %}", "absolute path"),
            (
                "{% include 'missing.j2' %}",
                "non-existing template 'missing.j2'",
            ),
        ] {
            let err = templates
                .render_str(source, "s.j2", &vars)
                .expect_err(source)
                .to_string();
            assert!(err.contains(why), "{source}: {err}");
        }
        let err = templates
            .render_file("../secret", &vars)
            .expect_err("outside")
            .to_string();
        assert!(
            err.starts_with("unable to load template `../secret`"),
            "{err}"
        );
        // An error inside an included template points into that template.
        let err = templates
            .render_file("templates/outer.j2", &vars)
            .expect_err("undefined")
            .to_string();
        assert!(err.contains("--> templates/bad.j2:2:4"), "{err}");
    }

    #[test]
    fn rhai_functions_render_text_and_files() {
        let mut engine = rhai::Engine::new();
        engine.register_static_module("template", rhai::exported_module!(template_api).into());
        let text: String = engine
            .eval(r#"template::render("{{ a }} {{ b | default('x') }}\n", #{ a: [1, true] })"#)
            .expect("renders");
        assert_eq!(text, "[1, True] x\n");
        // Without a host, paths are relative to the current directory: the crate's.
        let text: String = engine
            .eval(
                r#"template::render_file("tests/fixtures/template/app.service.j2",
                    #{ app_name: "a", app_host: "h", app_user: "u", root: "/r", app_port: 1 })"#,
            )
            .expect("renders");
        assert!(text.starts_with("[Unit]\nDescription=a on h\n"), "{text}");
        let err = engine
            .eval::<String>(r#"template::render_file("../Cargo.toml", #{})"#)
            .expect_err("outside");
        assert!(err.to_string().contains("leads outside"), "{err}");
    }
}
