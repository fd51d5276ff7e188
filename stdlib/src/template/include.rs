//! `{% include NAME without context %}` as Jinja2 renders it: the included template sees
//! none of the including template's variables (not the host's, not its loop variables),
//! only the environment's functions. minijinja reads `with`/`without context` and ignores
//! it (an include always shares the context), so the template rewrite (`undefined.rs`)
//! turns such an include into `{% filter __toyc_include_alone(NAME, IGNORE_MISSING) %}
//! {% endfilter %}`, a block tag like the include (the same whitespace), and this filter
//! renders the template on its own, with no variables.
//!
//! `{% include %}` and `{% include ... with context %}` stay minijinja's, which share the
//! context as Jinja2 does; so does `{% import ... with context %}` (a plain import is
//! `scope.rs`'s).

use std::cell::Cell;

use minijinja::value::Value;
use minijinja::{Error, ErrorKind, State};

/// The filter the rewritten include calls.
pub(crate) const INCLUDE_ALONE: &str = "__toyc_include_alone";

/// How deep context-less includes may nest: each is a render of its own, which
/// minijinja's recursion limit does not see.
const MAX_DEPTH: usize = 32;

thread_local! {
    /// Context-less includes being rendered on this thread, which a render never leaves:
    /// the nesting of the call stack, not state of a run.
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// Render `name` (or the first of a list of names that exists) with no variables.
pub(crate) fn include_alone(
    state: &State,
    _body: &Value,
    name: &Value,
    ignore_missing: bool,
) -> Result<String, Error> {
    let choices: Vec<Value> = match name.as_str() {
        Some(_) => vec![name.clone()],
        None => name.try_iter()?.collect(),
    };
    for choice in &choices {
        let Some(choice) = choice.as_str() else {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                "template name was not a string",
            ));
        };
        let template = match state.get_template(choice) {
            Ok(template) => template,
            Err(e) if e.kind() == ErrorKind::TemplateNotFound => continue,
            Err(e) => return Err(e),
        };
        let depth = DEPTH.with(|d| d.get());
        if depth >= MAX_DEPTH {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("`{choice}` is included without context more than {MAX_DEPTH} levels deep"),
            ));
        }
        DEPTH.with(|d| d.set(depth + 1));
        let rendered = template.render(Value::from(
            std::collections::BTreeMap::<String, Value>::new(),
        ));
        DEPTH.with(|d| d.set(depth));
        return rendered;
    }
    if ignore_missing {
        return Ok(String::new());
    }
    Err(Error::new(
        ErrorKind::TemplateNotFound,
        match choices.as_slice() {
            [one] => format!("tried to include non-existing template {one:?}"),
            _ => {
                format!("tried to include one of multiple templates, none of which existed {name}")
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::template::Templates;

    // What `ansible.builtin.template` wrote (ansible-core 2.19.14, Jinja2 3.1.6).
    #[test]
    fn an_include_without_context_sees_no_variables() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("part.j2"),
            "[{{ x | default('none') }} {{ l | default('none') }} {{ range(2) | list }}]\n",
        )
        .expect("write");
        let vars = json!({"x": 1}).as_object().cloned().expect("object");
        let out = Templates::new(dir.path())
            .render_str(
                "{% for l in [2] %}{% include 'part.j2' %}\n\
                 {%- include 'part.j2' without context -%}\n\
                 {% include ['nope.j2', 'part.j2'] with context %}\n\
                 {% include 'nope.j2' ignore missing without context %}{% endfor %}",
                "t.j2",
                &vars,
            )
            .expect("renders");
        assert_eq!(out, "[1 2 [0, 1]][none none [0, 1]][1 2 [0, 1]]");
    }
}
