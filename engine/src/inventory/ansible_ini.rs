//! Ansible's INI inventory, read as Ansible reads it:
//!
//! ```ini
//! bastion ansible_host=203.0.113.5     # ungrouped hosts come first
//!
//! [web]
//! web[01:03] ansible_user=deploy
//!
//! [prod:children]
//! web
//!
//! [prod:vars]
//! ntp="10.0.0.1"
//! ```
//!
//! Host lines are split like a shell (quotes group, `#` starts a comment); values are read
//! as Python literals (`py_literal`). A group is defined by `[g]` or `[g:children]`;
//! `[g:vars]` alone does not define it, and `children` must name defined groups.

use serde_json::{Map, Value};

use super::model::{At, Issue, Model, Style};
use super::{ansible_vars, host_pattern, py_literal, shlex, suggest};

/// What the lines of a section are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `[g]` or `[g:hosts]`: host lines.
    Hosts,
    /// `[g:vars]`: `key=value` lines.
    Vars,
    /// `[g:children]`: group names.
    Children,
}

const KINDS: [&str; 3] = ["hosts", "vars", "children"];

/// A group name used before we know whether it will be defined.
struct Pending {
    name: String,
    at: At,
    message: String,
}

/// The reader's state while going through the lines.
struct Reader {
    model: Model,
    group: String,
    kind: Kind,
    /// Groups defined by `[g]` or `[g:children]` (`all` and `ungrouped` always are).
    defined: Vec<String>,
    pending: Vec<Pending>,
    /// Each host's lines so far: (line, group).
    lines: std::collections::HashMap<String, Vec<(usize, String)>>,
}

/// A variable's value as written, for messages.
fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Reads an Ansible INI inventory.
pub(super) fn read(text: &str) -> Result<Model, Issue> {
    let mut model = Model::new(Style::Ansible);
    model.group_mut("ungrouped");
    let mut reader = Reader {
        model,
        // Hosts before any section are ungrouped.
        group: "ungrouped".into(),
        kind: Kind::Hosts,
        defined: vec!["all".into(), "ungrouped".into()],
        pending: Vec::new(),
        lines: std::collections::HashMap::new(),
    };
    for (index, line) in text.lines().enumerate() {
        reader.line(index + 1, line)?;
    }
    reader.finish()
}

/// The 1-based column of byte `offset` in `line`.
fn column(line: &str, offset: usize) -> usize {
    line.get(..offset)
        .map_or(1, |before| before.chars().count() + 1)
}

impl Reader {
    fn line(&mut self, number: usize, line: &str) -> Result<(), Issue> {
        let content = line.trim();
        if content.is_empty() || content.starts_with(['#', ';']) {
            return Ok(());
        }
        let at = At::Line(number, column(line, line.len() - line.trim_start().len()));
        if content.starts_with('[') {
            return self.section(content, at);
        }
        match self.kind {
            Kind::Hosts => self.host_line(number, line),
            Kind::Vars => self.vars_line(number, line),
            Kind::Children => self.child_line(content, at),
        }
    }

    /// `[name]`, `[name:vars]`, `[name:children]`, a comment may follow.
    fn section(&mut self, content: &str, at: At) -> Result<(), Issue> {
        let invalid = || {
            Issue::new(
                at.clone(),
                format!(
                    "invalid section `{content}`: write `[group]`, `[group:vars]` or \
                     `[group:children]`, without spaces"
                ),
            )
        };
        let close = content.find(']').ok_or_else(invalid)?;
        let after = content[close + 1..].trim_start();
        if !(after.is_empty() || after.starts_with(['#', ';'])) {
            return Err(invalid());
        }
        let inner = &content[1..close];
        let (name, kind) = inner.split_once(':').unwrap_or((inner, "hosts"));
        if name.is_empty() || name.contains(char::is_whitespace) || kind.contains(':') {
            return Err(invalid());
        }
        self.kind = match kind {
            "hosts" => Kind::Hosts,
            "vars" => Kind::Vars,
            "children" => Kind::Children,
            other => {
                let hint = suggest::did_you_mean(other, KINDS);
                return Err(Issue::new(
                    at,
                    format!(
                        "unknown section type `{other}` in `[{inner}]` \
                         (valid: vars, children){hint}"
                    ),
                ));
            }
        };
        self.group = name.to_owned();
        self.declare(name, kind, at);
        Ok(())
    }

    /// Notes a section header for group `name`: Ansible defines the group at its first
    /// header, but `[name:vars]` must be matched by a `[name]` or `[name:children]` somewhere.
    fn declare(&mut self, name: &str, kind: &str, at: At) {
        if name != "all" {
            self.model.group_mut(name);
        }
        if kind == "vars" {
            self.pending.push(Pending {
                name: name.to_owned(),
                at,
                message: format!(
                    "section `[{name}:vars]` is for group `{name}`, which is not defined \
                     (add a `[{name}]` section, or fix the name)"
                ),
            });
        } else if !self.defined.iter().any(|d| d == name) {
            self.defined.push(name.to_owned());
        }
    }

    /// `pattern [key=value ...]`.
    fn host_line(&mut self, number: usize, line: &str) -> Result<(), Issue> {
        let words =
            shlex::split(line).map_err(|(col, why)| Issue::new(At::Line(number, col), why))?;
        let Some((pattern, assignments)) = words.split_first() else {
            return Ok(()); // Only a comment.
        };
        let expanded = host_pattern::expand(&pattern.text)
            .map_err(|why| Issue::new(At::Line(number, pattern.column), why))?;
        let mut vars = Map::new();
        if let Some(port) = expanded.port {
            vars.insert("ansible_port".into(), Value::from(port));
        }
        for word in assignments {
            let at = At::Line(number, word.column);
            let Some((key, value)) = word.text.split_once('=').filter(|(k, _)| !k.is_empty())
            else {
                return Err(Issue::new(
                    at,
                    format!(
                        "expected `key=value` after host `{}`, got `{}`",
                        pattern.text, word.text
                    ),
                ));
            };
            let value = py_literal::value(value);
            ansible_vars::check(key, &value).map_err(|why| Issue::new(at, why))?;
            vars.insert(key.to_owned(), value);
        }
        for host in &expanded.names {
            super::model::check_address("host", host)
                .map_err(|why| Issue::new(At::Line(number, pattern.column), why))?;
            self.repeat_check(host, number, pattern.column, &vars)?;
            self.model.host_mut(host).layer.vars.extend(vars.clone());
            if self.group != "all" {
                self.model.add_member(&self.group, host);
            }
        }
        Ok(())
    }

    /// A host on a second line: fine in another group (that is how a host joins two),
    /// but not twice in one group, and not setting a variable to another value than an
    /// earlier line did, which Ansible lets the last line win silently.
    fn repeat_check(
        &mut self,
        host: &str,
        number: usize,
        column: usize,
        vars: &Map<String, Value>,
    ) -> Result<(), Issue> {
        let at = At::Line(number, column);
        let earlier = self.lines.entry(host.to_owned()).or_default();
        if let Some((line, _)) = earlier.iter().find(|(_, group)| *group == self.group) {
            return Err(Issue::new(
                at,
                format!(
                    "host `{host}` is listed twice in `[{}]` (first on line {line}); remove one",
                    self.group
                ),
            ));
        }
        earlier.push((number, self.group.clone()));
        if let Some(def) = self.model.host_position(host).map(|i| &self.model.hosts[i]) {
            for (key, value) in vars {
                if let Some(before) = def.layer.vars.get(key).filter(|b| *b != value) {
                    return Err(Issue::new(
                        at,
                        format!(
                            "host `{host}` sets `{key}` to `{}` here and to `{}` on line {}; \
                             give a host's variables once (or in `[group:vars]`)",
                            value_text(value),
                            value_text(before),
                            earlier[0].0
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// `key=value` in `[group:vars]`.
    fn vars_line(&mut self, number: usize, line: &str) -> Result<(), Issue> {
        let start = line.len() - line.trim_start().len();
        let content = line.trim();
        let Some((key, value)) = content
            .split_once('=')
            .map(|(k, v)| (k.trim(), v.trim()))
            .filter(|(k, _)| !k.is_empty())
        else {
            return Err(Issue::new(
                At::Line(number, column(line, start)),
                format!(
                    "expected `key=value` in `[{}:vars]`, got `{content}`",
                    self.group
                ),
            ));
        };
        let value_offset = line.find('=').map_or(start, |eq| {
            eq + 1 + (line[eq + 1..].len() - line[eq + 1..].trim_start().len())
        });
        let value = py_literal::value(value);
        ansible_vars::check(key, &value)
            .map_err(|why| Issue::new(At::Line(number, column(line, value_offset)), why))?;
        let layer = if self.group == "all" {
            &mut self.model.base
        } else {
            &mut self.model.group_mut(&self.group).layer
        };
        layer.vars.insert(key.to_owned(), value);
        Ok(())
    }

    /// One group name in `[group:children]`.
    fn child_line(&mut self, content: &str, at: At) -> Result<(), Issue> {
        let name = content
            .split(['#', ';'])
            .next()
            .unwrap_or_default()
            .trim_end();
        if name.is_empty() || name.contains(char::is_whitespace) || name.contains([':', ']']) {
            return Err(Issue::new(
                at,
                format!(
                    "expected one group name in `[{}:children]`, got `{content}`",
                    self.group
                ),
            ));
        }
        if self.group == "all" {
            // Every group is a child of `all`; the name must still be defined.
            self.pending.push(Pending {
                name: name.to_owned(),
                at,
                message: format!(
                    "unknown group `{name}` in the children of group `all` \
                     (define it, or fix the name)"
                ),
            });
        } else {
            self.model.add_child(&self.group, name, at);
        }
        Ok(())
    }

    /// Checks the names used before they were defined, and settles `ungrouped`.
    fn finish(mut self) -> Result<Model, Issue> {
        if let Some(missing) = self
            .pending
            .iter()
            .find(|p| !self.defined.contains(&p.name))
        {
            let hint =
                suggest::did_you_mean(&missing.name, self.defined.iter().map(String::as_str));
            return Err(Issue::new(
                missing.at.clone(),
                format!("{}{hint}", missing.message),
            ));
        }
        // A group only named in `[g:vars]` is an error above, so every group left is defined;
        // children of groups that were never defined at all are the builder's to report.
        self.model.reconcile_ungrouped();
        Ok(self.model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::Path;

    fn model(text: &str) -> Model {
        read(text).unwrap()
    }

    fn error(text: &str) -> String {
        read(text)
            .unwrap_err()
            .into_error(text, Path::new("hosts.ini"))
            .to_string()
    }

    fn names(m: &Model) -> Vec<&str> {
        m.hosts.iter().map(|h| h.name.as_str()).collect()
    }

    fn group<'m>(m: &'m Model, name: &str) -> &'m crate::inventory::model::GroupDef {
        m.groups.iter().find(|g| g.name == name).unwrap()
    }

    #[test]
    fn ungrouped_hosts_sections_vars_and_children() {
        let m = model(
            "\
bastion ansible_host=203.0.113.5
; a comment
[web]
web1 ansible_port=2222 # primary
web2

[db]
db1

[prod:children]
web
db

[prod:vars]
ntp = \"10.0.0.1\"
retries=3

[all:vars]
ansible_user=deploy
",
        );
        assert_eq!(names(&m), ["bastion", "web1", "web2", "db1"]);
        let groups: Vec<&str> = m.groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(groups, ["ungrouped", "web", "db", "prod"]);
        assert_eq!(group(&m, "ungrouped").hosts, ["bastion"]);
        assert_eq!(group(&m, "web").hosts, ["web1", "web2"]);
        let children: Vec<&str> = group(&m, "prod")
            .children
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(children, ["web", "db"]);
        assert_eq!(
            Value::Object(group(&m, "prod").layer.vars.clone()),
            json!({"ntp": "10.0.0.1", "retries": 3})
        );
        assert_eq!(m.base.vars["ansible_user"], json!("deploy"));
        assert_eq!(m.hosts[0].layer.vars["ansible_host"], json!("203.0.113.5"));
        assert_eq!(m.hosts[1].layer.vars["ansible_port"], json!(2222));
    }

    #[test]
    fn host_values_are_unquoted_by_the_shell_split_then_read_as_literals() {
        let m = model("h a=1 b='x y' c=\"22\" d='\"22\"' e=True f=yes g=1.5 h=[1,2]\n");
        assert_eq!(
            Value::Object(m.hosts[0].layer.vars.clone()),
            // As in Ansible, `c="22"` is the number 22 on a host line: the shell split
            // removes the quotes before the value is read.
            json!({"a": 1, "b": "x y", "c": 22, "d": "22", "e": true, "f": "yes", "g": 1.5, "h": [1, 2]})
        );
    }

    #[test]
    fn var_lines_keep_quotes_until_read_as_literals() {
        let m = model("[g]\nh\n[g:vars]\na=\"22\"\nb = two words\nc='x' # note\nd=\n");
        assert_eq!(
            Value::Object(group(&m, "g").layer.vars.clone()),
            json!({"a": "22", "b": "two words", "c": "x", "d": ""})
        );
    }

    #[test]
    fn ranges_and_ports_in_host_patterns() {
        let m = model("[web]\nweb[01:03]:2200 role=web\ndb-[a:b]\n");
        assert_eq!(names(&m), ["web01", "web02", "web03", "db-a", "db-b"]);
        assert_eq!(m.hosts[2].layer.vars["ansible_port"], json!(2200));
        assert_eq!(m.hosts[2].layer.vars["role"], json!("web"));
        // An explicit ansible_port beats the one in the pattern.
        let m = model("web1:2200 ansible_port=2300\n");
        assert_eq!(m.hosts[0].layer.vars["ansible_port"], json!(2300));
    }

    #[test]
    fn a_host_in_several_groups_merges_its_vars_and_leaves_ungrouped() {
        let m = model("h a=1\n[g1]\nh b=2\n[g2]\nh a=1\n");
        assert_eq!(
            Value::Object(m.hosts[0].layer.vars.clone()),
            json!({"a": 1, "b": 2})
        );
        assert!(group(&m, "ungrouped").hosts.is_empty());
    }

    #[test]
    fn a_host_twice_in_a_group_or_with_two_values_of_a_variable_is_an_error() {
        let err = read("[web]\nweb1\nweb2\nweb1 ansible_host=10.0.0.9\n").unwrap_err();
        assert_eq!(err.at, At::Line(4, 1));
        assert!(
            err.message
                .contains("listed twice in `[web]` (first on line 2)"),
            "{}",
            err.message
        );
        let err =
            read("web1 ansible_host=10.0.0.1\n[db]\nweb1 ansible_host=10.0.0.2\n").unwrap_err();
        assert_eq!(err.at, At::Line(3, 1));
        assert!(
            err.message
                .contains("sets `ansible_host` to `10.0.0.2` here and to `10.0.0.1` on line 1"),
            "{}",
            err.message
        );
    }

    #[test]
    fn a_host_or_address_starting_with_a_dash_is_an_error() {
        let err = read("[web]\n-oProxyCommand=x\n").unwrap_err();
        assert_eq!(err.at, At::Line(2, 1));
        assert!(err.message.contains("starts with `-`"), "{}", err.message);
        let err = read("web1 ansible_host=-oProxyCommand=x\n").unwrap_err();
        assert_eq!(err.at, At::Line(1, 6));
        assert!(
            err.message
                .contains("`ansible_host` `-oProxyCommand=x` starts with `-`"),
            "{}",
            err.message
        );
    }

    #[test]
    fn the_all_section_adds_hosts_to_no_group() {
        let m = model("[all]\nh\n[all:children]\nweb\n[web]\nw\n");
        assert_eq!(names(&m), ["h", "w"]);
        assert_eq!(group(&m, "ungrouped").hosts, ["h"]);
        assert!(!m.groups.iter().any(|g| g.name == "all"));
    }

    #[test]
    fn a_group_defined_after_being_named_in_children_or_vars_is_fine() {
        let m = model("[prod:children]\nweb\n[web:vars]\nx=1\n[web]\nw\n");
        assert_eq!(group(&m, "web").layer.vars["x"], json!(1));
        let groups: Vec<&str> = m.groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(groups, ["ungrouped", "prod", "web"]);
    }

    #[test]
    fn vars_for_an_undefined_group_are_an_error() {
        assert_eq!(
            error("[webs]\nw\n\n[web:vars]\nx=1\n"),
            "hosts.ini:4:1: section `[web:vars]` is for group `web`, which is not defined \
             (add a `[web]` section, or fix the name); did you mean `webs`?"
        );
    }

    #[test]
    fn children_of_all_must_be_defined() {
        assert_eq!(
            error("[all:children]\n  webs\n[web]\n"),
            "hosts.ini:2:3: unknown group `webs` in the children of group `all` \
             (define it, or fix the name); did you mean `web`?"
        );
    }

    #[test]
    fn malformed_lines_are_errors_at_line_and_column() {
        assert_eq!(
            error("[web]\nweb1 ansible_host\n"),
            "hosts.ini:2:6: expected `key=value` after host `web1`, got `ansible_host`"
        );
        assert_eq!(
            error("[web]\nweb1 =x\n"),
            "hosts.ini:2:6: expected `key=value` after host `web1`, got `=x`"
        );
        assert_eq!(
            error("[web]\nweb1 msg='unclosed\n"),
            "hosts.ini:2:10: the quote `'` is not closed"
        );
        assert_eq!(
            error("\n  [web:vars]\n  novalue\n"),
            "hosts.ini:3:3: expected `key=value` in `[web:vars]`, got `novalue`"
        );
        assert_eq!(
            error("[web children]\n"),
            "hosts.ini:1:1: invalid section `[web children]`: write `[group]`, \
             `[group:vars]` or `[group:children]`, without spaces"
        );
        assert_eq!(
            error("[web:child]\n"),
            "hosts.ini:1:1: unknown section type `child` in `[web:child]` (valid: vars, \
             children); did you mean `children`?"
        );
        assert_eq!(
            error("[p:children]\nweb db\n"),
            "hosts.ini:2:1: expected one group name in `[p:children]`, got `web db`"
        );
        assert_eq!(
            error("web[3:1]\n"),
            "hosts.ini:1:1: host range `[3:1]`: the beginning must not come after the end"
        );
    }

    #[test]
    fn bad_connection_values_point_at_them() {
        assert_eq!(
            error("[web]\nweb1 ansible_port=ssh\n"),
            "hosts.ini:2:6: `ansible_port` must be a number 1-65535, not `ssh`"
        );
        assert_eq!(
            error("[web:vars]\nansible_become =  maybe\n[web]\n"),
            "hosts.ini:2:19: `ansible_become` must be a boolean (true/false, yes/no), not `maybe`"
        );
    }

    #[test]
    fn comments_after_names_are_allowed() {
        let m = model("[web] # front\nw\n[p:children]\nweb # the web tier\n");
        assert_eq!(group(&m, "p").children[0].name, "web");
    }
}
