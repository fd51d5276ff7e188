//! `{% import ... %}` and `{% from ... import ... %}` without context, as Jinja2 has them
//! by default: the imported template's top-level code and its macros see none of the
//! importing template's variables (the host's, the magic ones), only their arguments,
//! the module's own names and the environment's functions.
//!
//! minijinja evaluates an import inside the importing template's context, and a macro
//! looks its free names up in the render's root variables. So the root variables are a
//! [`Root`] object that can hide them, and the template rewrite (`undefined.rs`) wraps
//! such an import in `{% do __toyc_hide(1) %}...{% do __toyc_hide(-1) %}` and each call of
//! a macro it brought (`m.show(x)`, `show(x)`) in `__toyc_call_hidden(m.show, x)`, which
//! hides them for the call. What stays visible unlike Jinja2: the importing template's own
//! top-level `set` variables to the imported template's top-level code, and the root
//! variables to a macro called from a `{% call %}` block or through another name.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use minijinja::value::{Enumerator, Object, ObjectRepr, Value};
use minijinja::{Error, State};

/// The root variable that answers with the [`Root`] itself, hidden or not.
const ROOT_KEY: &str = "__toyc_root";
/// The function the rewritten import calls around itself.
pub(crate) const HIDE: &str = "__toyc_hide";
/// The global the rewritten macro calls go through.
pub(crate) const CALL_HIDDEN: &str = "__toyc_call_hidden";

/// A render's variables, which context-less imports and their macros do not see.
#[derive(Debug)]
pub(crate) struct Root {
    vars: Value,
    /// How many context-less imports or macro calls are under way.
    hidden: AtomicUsize,
}

impl Root {
    /// The root variables of a render: the map `vars`.
    pub(crate) fn value(vars: Value) -> Value {
        Value::from_object(Root {
            vars,
            hidden: AtomicUsize::new(0),
        })
    }

    fn hidden(&self) -> bool {
        self.hidden.load(Ordering::Relaxed) > 0
    }

    fn shift(&self, by: i64) {
        if by > 0 {
            self.hidden.fetch_add(1, Ordering::Relaxed);
        } else {
            let _ = self
                .hidden
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        }
    }
}

impl Object for Root {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        if key.as_str() == Some(ROOT_KEY) {
            return Some(Value::from_dyn_object(self.clone()));
        }
        if self.hidden() {
            return None;
        }
        self.vars.get_item(key).ok().filter(|v| !v.is_undefined())
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        if self.hidden() {
            return Enumerator::Empty;
        }
        match self.vars.try_iter() {
            Ok(keys) => Enumerator::Values(keys.collect()),
            Err(_) => Enumerator::Empty,
        }
    }
}

/// The render's [`Root`], when it has one (a context-less include has none).
fn root(state: &State) -> Option<Value> {
    state.lookup(ROOT_KEY)
}

fn with_root(state: &State, by: i64) {
    if let Some(root) = root(state) {
        if let Some(root) = root.downcast_object_ref::<Root>() {
            root.shift(by);
        }
    }
}

/// `__toyc_hide(1)` hides the root variables, `__toyc_hide(-1)` shows them again.
pub(crate) fn hide(state: &State, by: i64) -> Value {
    with_root(state, by);
    Value::from(())
}

/// `__toyc_call_hidden(macro, args...)`: the call, with the root variables hidden.
#[derive(Debug)]
pub(crate) struct CallHidden;

impl Object for CallHidden {
    fn call(self: &Arc<Self>, state: &mut State<'_, '_>, args: &[Value]) -> Result<Value, Error> {
        let Some((callee, args)) = args.split_first() else {
            return Err(Error::new(
                minijinja::ErrorKind::MissingArgument,
                "nothing to call",
            ));
        };
        with_root(state, 1);
        let result = callee.call(state, args);
        with_root(state, -1);
        result
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::template::Templates;

    // What `ansible.builtin.template` wrote (ansible-core 2.19.14, Jinja2 3.1.6).
    #[test]
    fn a_plain_import_sees_no_variables_and_one_with_context_does() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("m.j2"),
            "{% macro show(p) %}{{ p }}:{{ x | default('UNDEF') }}{% endmacro %}\n\
             {% set mod = x | default('UNDEF') %}\n",
        )
        .expect("write");
        let vars = json!({"x": 1}).as_object().cloned().expect("object");
        let out = Templates::new(dir.path())
            .render_str(
                "{% import 'm.j2' as m %}{{ m.show('a') }} {{ m.mod }}|\
                 {% import 'm.j2' as c with context %}{{ c.show('b') }} {{ c.mod }}|\
                 {% from 'm.j2' import show %}{{ show('c') }}|\
                 {% from 'm.j2' import show as s with context %}{{ s('d') }}|{{ x }}",
                "t.j2",
                &vars,
            )
            .expect("renders");
        assert_eq!(out, "a:UNDEF UNDEF|b:1 1|c:UNDEF|d:1|1");
    }
}
