//! Undefined values as Ansible treats them, which no minijinja setting gives: strict (an
//! undefined variable printed, looped over, tested for truth or filtered is an error), yet
//! `x.y | default('d')` and `x.y is defined` work when `x` or `x.y` is missing. Strict
//! minijinja fails on the lookup `.y` before `default` is reached; its `Chainable` mode
//! allows the lookup but also prints undefined values as nothing, hiding typos.
//!
//! So templates run strict, and their source is rewritten before minijinja compiles it:
//! a chain of lookups that is the operand of `default`/`d` or of the `defined`/`undefined`
//! tests becomes a call that walks the chain and yields undefined at the first gap:
//! `x.y[k] | default(1)` becomes `__toyc_lookup((x), "y", (k)) | default(1)`. Likewise
//! `a if c` without `else`, which Ansible prints as nothing, gets `else none` (printed
//! as nothing too), as strict minijinja would otherwise reject its undefined result.
//! The rewrite keeps every line break, so line numbers stay those of the file; an
//! [`OffsetMap`] takes columns back to the original text for error messages.

use minijinja::machinery::ast::{BinOpKind, CallArg, Expr, Stmt};
use std::collections::HashSet;

use minijinja::machinery::{parse, Span};
use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Rest, Value};
use minijinja::Error;

/// The function the rewritten chains call.
pub(crate) const LOOKUP: &str = "__toyc_lookup";

/// `root`, then each key of `path` in turn, stopping at the first missing one with an
/// undefined value (which `default` replaces and `is defined` reports).
pub(crate) fn lookup(root: &Value, path: Rest<Value>) -> Result<Value, Error> {
    let mut current = root.clone();
    for key in path.iter() {
        if current.is_undefined() {
            break;
        }
        current = match key.as_str() {
            Some(name) => current.get_attr(name)?,
            None => current.get_item(key)?,
        };
    }
    Ok(current)
}

/// One replaced stretch of the source.
#[derive(Debug, Clone)]
struct Edit {
    start: usize,
    end: usize,
    text: String,
}

/// Where each byte of a rewritten template came from.
#[derive(Debug, Clone, Default)]
pub(crate) struct OffsetMap {
    /// `(offset in the rewrite, offset in the original)` at the start and end of each edit.
    points: Vec<(usize, usize, usize, usize)>,
}

impl OffsetMap {
    /// The offset in the original text of `offset` in the rewritten one; inside a
    /// replaced stretch, the start of what it replaced.
    pub(crate) fn original(&self, offset: usize) -> usize {
        let mut shift: isize = 0;
        for &(new_start, new_end, old_start, old_end) in &self.points {
            if offset < new_start {
                break;
            }
            if offset < new_end {
                return old_start;
            }
            shift = old_end as isize - new_end as isize;
        }
        offset.saturating_add_signed(shift)
    }
}

/// `source` with Ansible's undefined semantics spelled out, and how to map offsets back.
/// A template that does not parse is returned as it is, for minijinja to report.
pub(crate) fn rewrite(source: &str, name: &str, syntax: SyntaxConfig) -> (String, OffsetMap) {
    let (start, end) = syntax.block_delimiters();
    let block = (start.to_owned(), end.to_owned());
    let Ok(ast) = parse(source, name, syntax) else {
        return (source.to_owned(), OffsetMap::default());
    };
    let mut rewriter = Rewriter {
        source,
        edits: Vec::new(),
        block,
        hidden_modules: HashSet::new(),
        hidden_macros: HashSet::new(),
    };
    rewriter.stmt(&ast);
    let mut edits = rewriter.edits;
    edits.sort_by_key(|e| (e.start, e.end));
    let mut out = String::with_capacity(source.len());
    let mut map = OffsetMap::default();
    let mut copied = 0;
    for edit in edits {
        if edit.start < copied {
            continue; // overlapping edits are not produced; skip rather than corrupt
        }
        out.push_str(&source[copied..edit.start]);
        let new_start = out.len();
        out.push_str(&edit.text);
        map.points
            .push((new_start, out.len(), edit.start, edit.end));
        copied = edit.end;
    }
    out.push_str(&source[copied..]);
    (out, map)
}

struct Rewriter<'s> {
    source: &'s str,
    edits: Vec<Edit>,
    /// The block delimiters, for the tags a rewrite adds.
    block: (String, String),
    /// Names of modules imported without context (`import X as m`), whose macros'
    /// calls hide the template's variables (see `scope.rs`).
    hidden_modules: HashSet<String>,
    /// Macros imported without context by name (`from X import show`).
    hidden_macros: HashSet<String>,
}

impl Rewriter<'_> {
    fn text(&self, expr: &Expr) -> &str {
        let span = expr.span();
        self.source
            .get(span.start_offset as usize..span.end_offset as usize)
            .unwrap_or_default()
    }

    /// Replace the lookup chain `expr` by a call of [`LOOKUP`].
    fn chain(&mut self, expr: &Expr) {
        let mut keys = Vec::new();
        let mut root = expr;
        let mut first_lookup = expr.span().start_offset as usize;
        loop {
            match root {
                Expr::GetAttr(a) => {
                    keys.push(format!("{:?}", a.name));
                    first_lookup = a.expr.span().end_offset as usize;
                    root = &a.expr;
                }
                Expr::GetItem(i) => {
                    keys.push(format!("({})", self.text(&i.subscript_expr)));
                    first_lookup = i.expr.span().end_offset as usize;
                    root = &i.expr;
                }
                _ => break,
            }
        }
        keys.reverse();
        // A lookup's own span starts at its `.` or `[`; the chain starts with its root,
        // and with the parentheses around it: `(users | first).name`.
        let mut start = root.span().start_offset as usize;
        let root_end = root.span().end_offset as usize;
        let dot = self
            .source
            .get(first_lookup..)
            .and_then(|rest| rest.find(['.', '[']))
            .map_or(root_end, |i| first_lookup + i);
        let closing = self
            .source
            .get(root_end..dot)
            .map_or(0, |gap| gap.matches(')').count());
        for _ in 0..closing {
            let before = self.source.get(..start).unwrap_or_default();
            match before.trim_end().strip_suffix('(') {
                Some(open) => start = open.len(),
                None => return,
            }
        }
        let end = expr.span().end_offset as usize;
        let (Some(original), Some(root_text)) =
            (self.source.get(start..end), self.source.get(start..dot))
        else {
            return;
        };
        // Keep the line breaks so that every later line keeps its number.
        let after_root = original.get(root_text.len()..).unwrap_or_default();
        let breaks = "\n".repeat(after_root.matches('\n').count());
        let text = format!("{LOOKUP}(({root_text}), {}{breaks})", keys.join(", "));
        self.edits.push(Edit { start, end, text });
    }

    /// `left % right` becomes `left | __toyc_percent(right)` (see `percent.rs`) and
    /// `left - right` becomes `left | __toyc_minus(right)` (see `datetime.rs`), with
    /// `left` in parentheses unless it is already or is a single term, as the filter
    /// binds tighter than any operator.
    fn operator(&mut self, left: &Expr, right: &Expr, op: char, filter: &str) {
        let left_end = left.span().end_offset as usize;
        let right_start = right.span().start_offset as usize;
        let Some(between) = self.source.get(left_end..right_start) else {
            return;
        };
        let Some(at) = between.find(op) else {
            return;
        };
        let simple = matches!(
            left,
            Expr::Var(_) | Expr::Const(_) | Expr::GetAttr(_) | Expr::GetItem(_) | Expr::Call(_)
        );
        if !simple && !between[..at].contains(')') {
            let left_start = start_of(left);
            self.edits.push(Edit {
                start: left_start,
                end: left_start,
                text: "(".to_owned(),
            });
            self.edits.push(Edit {
                start: left_end,
                end: left_end,
                text: ")".to_owned(),
            });
        }
        let at = left_end + at;
        self.edits.push(Edit {
            start: at,
            end: at + 1,
            text: format!("| {filter}("),
        });
        let right_end = right.span().end_offset as usize;
        self.edits.push(Edit {
            start: right_end,
            end: right_end,
            text: ")".to_owned(),
        });
    }

    /// `include NAME ... without context` (the statement at `stmt`, its name at `name`)
    /// becomes `filter __toyc_include_alone(NAME, IGNORE) %}{% endfilter` (see
    /// `include.rs`); other includes stay.
    fn include(&mut self, name: Span, stmt: Option<Span>, ignore_missing: bool) {
        let Some(stmt) = stmt else { return };
        let (start, name_start) = (stmt.start_offset as usize, name.start_offset as usize);
        let (name_end, end) = (name.end_offset as usize, stmt.end_offset as usize);
        let Some(after) = self.source.get(name_end..end) else {
            return;
        };
        if !after.split_whitespace().any(|word| word == "without") {
            return;
        }
        let breaks = "\n".repeat(after.matches('\n').count());
        let (open, close) = &self.block;
        self.edits.push(Edit {
            start,
            end: name_start,
            text: format!("filter {}((", super::include::INCLUDE_ALONE),
        });
        self.edits.push(Edit {
            start: name_end,
            end,
            text: format!("), {ignore_missing}) {close}{open} endfilter{breaks}"),
        });
    }

    /// An import statement at `stmt` without `with context` gets the template's variables
    /// hidden around it: `do __toyc_hide(1) %}{% import ... %}{% do __toyc_hide(-1)`.
    /// Whether it was one.
    fn import_without_context(&mut self, stmt: Span) -> bool {
        let (start, end) = (stmt.start_offset as usize, stmt.end_offset as usize);
        let Some(text) = self.source.get(start..end) else {
            return false;
        };
        let words: Vec<&str> = text.split_whitespace().collect();
        if words.ends_with(&["with", "context"]) {
            return false;
        }
        let (open, close) = &self.block;
        let hide = super::scope::HIDE;
        self.edits.push(Edit {
            start,
            end: start,
            text: format!("do {hide}(1) {close}{open} "),
        });
        self.edits.push(Edit {
            start: end,
            end,
            text: format!(" {close}{open} do {hide}(-1)"),
        });
        true
    }

    /// A call of a macro imported without context, `m.show(x)` or `show(x)`, becomes
    /// `__toyc_call_hidden(m.show, x)`.
    fn hidden_call(&mut self, callee: &Expr, has_args: bool) {
        let hidden = match callee {
            Expr::Var(v) => self.hidden_macros.contains(v.id),
            Expr::GetAttr(a) => {
                matches!(&a.expr, Expr::Var(v) if self.hidden_modules.contains(v.id))
            }
            _ => false,
        };
        if !hidden {
            return;
        }
        let callee_end = callee.span().end_offset as usize;
        let Some(paren) = self
            .source
            .get(callee_end..)
            .and_then(|rest| rest.find('('))
        else {
            return;
        };
        let start = start_of(callee);
        self.edits.push(Edit {
            start,
            end: start,
            text: format!("{}(", super::scope::CALL_HIDDEN),
        });
        let paren = callee_end + paren;
        self.edits.push(Edit {
            start: paren,
            end: paren + 1,
            text: if has_args { ", " } else { "" }.to_owned(),
        });
    }

    fn stmts(&mut self, stmts: &[Stmt]) {
        for stmt in stmts {
            self.stmt(stmt);
        }
    }

    fn stmt(&mut self, stmt: &Stmt) {
        match stmt {
            Stmt::Template(t) => self.stmts(&t.children),
            Stmt::EmitExpr(e) => self.expr(&e.expr),
            Stmt::EmitRaw(_) | Stmt::Continue(_) | Stmt::Break(_) => {}
            Stmt::ForLoop(f) => {
                self.expr(&f.iter);
                if let Some(filter) = &f.filter_expr {
                    self.expr(filter);
                }
                self.stmts(&f.body);
                self.stmts(&f.else_body);
            }
            Stmt::IfCond(i) => {
                self.expr(&i.expr);
                self.stmts(&i.true_body);
                self.stmts(&i.false_body);
            }
            Stmt::WithBlock(w) => {
                for (_, value) in &w.assignments {
                    self.expr(value);
                }
                self.stmts(&w.body);
            }
            Stmt::Set(s) => self.expr(&s.expr),
            Stmt::SetBlock(s) => {
                if let Some(filter) = &s.filter {
                    self.expr(filter);
                }
                self.stmts(&s.body);
            }
            Stmt::AutoEscape(a) => self.stmts(&a.body),
            Stmt::FilterBlock(f) => {
                self.expr(&f.filter);
                self.stmts(&f.body);
            }
            Stmt::Block(b) => self.stmts(&b.body),
            Stmt::Import(i) => {
                self.expr(&i.expr);
                if self.import_without_context(i.span()) {
                    if let Expr::Var(v) = &i.name {
                        self.hidden_modules.insert(v.id.to_owned());
                    }
                }
            }
            Stmt::FromImport(i) => {
                self.expr(&i.expr);
                if self.import_without_context(i.span()) {
                    for (name, alias) in &i.names {
                        if let Expr::Var(v) = alias.as_ref().unwrap_or(name) {
                            self.hidden_macros.insert(v.id.to_owned());
                        }
                    }
                }
            }
            Stmt::Extends(e) => self.expr(&e.name),
            Stmt::Include(i) => {
                self.expr(&i.name);
                self.include(i.name.span(), stmt_span(stmt), i.ignore_missing);
            }
            Stmt::Macro(m) => {
                for default in &m.defaults {
                    self.expr(default);
                }
                self.stmts(&m.body);
            }
            Stmt::CallBlock(c) => {
                self.expr(&c.call.expr);
                self.args(&c.call.args);
                self.stmts(&c.macro_decl.body);
            }
            Stmt::Do(d) => {
                self.expr(&d.call.expr);
                self.args(&d.call.args);
            }
        }
    }

    fn args(&mut self, args: &[CallArg]) {
        for arg in args {
            match arg {
                CallArg::Pos(e)
                | CallArg::Kwarg(_, e)
                | CallArg::PosSplat(e)
                | CallArg::KwargSplat(e) => self.expr(e),
            }
        }
    }

    fn expr(&mut self, expr: &Expr) {
        let is_chain = |e: &Expr| matches!(e, Expr::GetAttr(_) | Expr::GetItem(_));
        match expr {
            Expr::Var(_) | Expr::Const(_) => {}
            Expr::Filter(f) => {
                match &f.expr {
                    Some(operand) if matches!(f.name, "default" | "d") && is_chain(operand) => {
                        self.chain(operand)
                    }
                    Some(operand) => self.expr(operand),
                    None => {}
                }
                self.args(&f.args);
            }
            Expr::Test(t) => {
                if matches!(t.name, "defined" | "undefined") && is_chain(&t.expr) {
                    self.chain(&t.expr);
                } else {
                    self.expr(&t.expr);
                }
                self.args(&t.args);
            }
            Expr::IfExpr(i) => {
                self.expr(&i.test_expr);
                self.expr(&i.true_expr);
                match &i.false_expr {
                    Some(e) => self.expr(e),
                    None => {
                        let at = i.test_expr.span().end_offset as usize;
                        self.edits.push(Edit {
                            start: at,
                            end: at,
                            text: " else none".to_owned(),
                        });
                    }
                }
            }
            Expr::Slice(s) => {
                self.expr(&s.expr);
                for part in [&s.start, &s.stop, &s.step].into_iter().flatten() {
                    self.expr(part);
                }
            }
            Expr::UnaryOp(u) => self.expr(&u.expr),
            Expr::BinOp(b) => {
                self.expr(&b.left);
                self.expr(&b.right);
                match b.op {
                    BinOpKind::Rem => {
                        self.operator(&b.left, &b.right, '%', super::percent::PERCENT)
                    }
                    BinOpKind::Sub => self.operator(&b.left, &b.right, '-', super::datetime::MINUS),
                    _ => {}
                }
            }
            Expr::Compare(c) => {
                self.expr(&c.expr);
                for op in &c.ops {
                    self.expr(&op.expr);
                }
            }
            Expr::GetAttr(a) => self.expr(&a.expr),
            Expr::GetItem(i) => {
                self.expr(&i.expr);
                self.expr(&i.subscript_expr);
            }
            Expr::Call(c) => {
                self.hidden_call(&c.expr, !c.args.is_empty());
                self.expr(&c.expr);
                self.args(&c.args);
            }
            Expr::List(l) => l.items.iter().for_each(|e| self.expr(e)),
            Expr::Tuple(t) => t.items.iter().for_each(|e| self.expr(e)),
            Expr::Map(m) => m.keys.iter().chain(&m.values).for_each(|e| self.expr(e)),
        }
    }
}

/// Where `expr` starts in the source: a filter's, test's or operator's span starts at
/// its name or operator, not at its operand.
fn start_of(expr: &Expr) -> usize {
    let own = expr.span().start_offset as usize;
    let inner = match expr {
        Expr::Filter(f) => f.expr.as_ref().map(start_of),
        Expr::Test(t) => Some(start_of(&t.expr)),
        Expr::BinOp(b) => Some(start_of(&b.left)),
        Expr::GetAttr(a) => Some(start_of(&a.expr)),
        Expr::GetItem(i) => Some(start_of(&i.expr)),
        Expr::Call(c) => Some(start_of(&c.expr)),
        Expr::Slice(s) => Some(start_of(&s.expr)),
        Expr::IfExpr(i) => Some(start_of(&i.true_expr)),
        _ => None,
    };
    inner.map_or(own, |i| i.min(own))
}

/// The span of an include statement (from its keyword to its last word).
fn stmt_span(stmt: &Stmt) -> Option<Span> {
    match stmt {
        Stmt::Include(i) => Some(i.span()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(source: &str) -> String {
        rewrite(source, "t", SyntaxConfig::default()).0
    }

    #[test]
    fn chains_under_default_and_defined_become_lookups() {
        assert_eq!(
            rewritten("{{ x.y[k].z | default('d') }}"),
            "{{ __toyc_lookup((x), \"y\", (k), \"z\") | default('d') }}"
        );
        assert_eq!(
            rewritten("{% if a.b is not defined %}{% endif %}"),
            "{% if __toyc_lookup((a), \"b\") is not defined %}{% endif %}"
        );
        // Plain names and other filters stay as they are.
        assert_eq!(
            rewritten("{{ x | default(1) }}{{ x.y | upper }}"),
            "{{ x | default(1) }}{{ x.y | upper }}"
        );
    }

    #[test]
    fn an_if_without_else_gets_else_none_and_offsets_map_back() {
        let source = "{{ 'é' if c }} {{ x.y | d }} {{ bad }}";
        let (text, map) = rewrite(source, "t", SyntaxConfig::default());
        assert_eq!(
            text,
            "{{ 'é' if c else none }} {{ __toyc_lookup((x), \"y\") | d }} {{ bad }}"
        );
        let bad = text.find("bad").expect("bad");
        assert_eq!(map.original(bad), source.find("bad").expect("bad"));
    }

    #[test]
    fn minus_includes_and_imports_without_context_are_rewritten() {
        assert_eq!(
            rewritten("{{ a | f - b }}{{ 1 - 2 - 3 }}"),
            "{{ (a | f) | __toyc_minus( b) }}{{ (1 | __toyc_minus( 2)) | __toyc_minus( 3) }}"
        );
        assert_eq!(
            rewritten("{%- include 'p.j2' ignore missing without context -%}"),
            "{%- filter __toyc_include_alone(('p.j2'), true) %}{% endfilter -%}"
        );
        assert_eq!(
            rewritten("{% import 'm.j2' as m %}{{ m.f(1) }}{% import 'm.j2' as c with context %}{{ c.f() }}"),
            "{% do __toyc_hide(1) %}{% import 'm.j2' as m %}{% do __toyc_hide(-1) %}\
             {{ __toyc_call_hidden(m.f, 1) }}{% import 'm.j2' as c with context %}{{ c.f() }}"
        );
    }

    #[test]
    fn line_breaks_inside_a_chain_are_kept() {
        let text = rewritten("{{ x\n.y | default(1) }}\n{{ z }}");
        assert_eq!(text.matches('\n').count(), 2, "{text}");
    }
}
