//! `--limit` patterns: which hosts a run acts on.
//!
//! Terms are separated by `,` or `:` (not inside a glob's `[...]`). A term is a host or
//! group name (`all` is every host), a glob (`web*`, `h[1-3]`) or `~regex` matched against
//! host and group names; `!term` excludes and `&term` intersects. The result is the union
//! of the plain terms (every host if there are none), narrowed by each `&` term, less each
//! `!` term, in inventory order. Anything that matches nothing is an error: a misspelt
//! exclusion must not silently run on the host it meant to spare.

use std::collections::HashMap;

use regex::Regex;

use super::{suggest, Host, Inventory, InventoryError};

/// What a term does with the hosts it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Union,
    Intersect,
    Exclude,
}

/// A set of hosts: one flag per inventory host, and a last one for the implicit localhost.
type HostSet = Vec<bool>;

/// The inventory with its hosts indexed by name: groups list members by name.
struct Lookup<'i> {
    inventory: &'i Inventory,
    index: HashMap<&'i str, usize>,
}

impl<'i> Lookup<'i> {
    fn new(inventory: &'i Inventory) -> Lookup<'i> {
        let index = inventory
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (h.name.as_str(), i))
            .collect();
        Lookup { inventory, index }
    }

    /// An empty set.
    fn none(&self) -> HostSet {
        vec![false; self.inventory.hosts.len() + 1]
    }

    /// Adds the members of a group.
    fn add_group(&self, members: &[String], set: &mut HostSet) {
        for member in members {
            if let Some(&i) = self.index.get(member.as_str()) {
                set[i] = true;
            }
        }
    }
}

/// The hosts `limit` selects from `inventory`, in inventory order.
pub(super) fn select<'i>(
    inventory: &'i Inventory,
    limit: &str,
) -> Result<Vec<&'i Host>, InventoryError> {
    let terms = split_terms(limit);
    if terms.is_empty() {
        return Err(InventoryError::Limit(
            "the limit is empty: name hosts or groups, or leave the limit out for every host"
                .into(),
        ));
    }
    let selected = combine(&Lookup::new(inventory), &terms)?;
    let hosts: Vec<&Host> = inventory
        .hosts
        .iter()
        .chain([&inventory.implicit_localhost])
        .zip(&selected)
        .filter(|(_, s)| **s)
        .map(|(h, _)| h)
        .collect();
    if hosts.is_empty() {
        return Err(InventoryError::Limit(format!(
            "limit `{limit}` selects no hosts"
        )));
    }
    Ok(hosts)
}

/// (union of the plain terms, or every host) ∩ each `&` term − each `!` term.
fn combine(lookup: &Lookup, terms: &[&str]) -> Result<HostSet, InventoryError> {
    let mut union: Option<HostSet> = None;
    let mut narrowing = Vec::new();
    for term in terms {
        let (op, body) = parse_op(term)?;
        let matched = matches(lookup, body)?;
        if op == Op::Union {
            let set = union.get_or_insert_with(|| lookup.none());
            apply(set, &matched, |s, m| s || m);
        } else {
            narrowing.push((op, matched));
        }
    }
    let mut selected = union.unwrap_or_else(|| every_host(lookup.inventory));
    // Narrowing comes after the whole union: `!web1,web` still leaves web1 out.
    for (op, matched) in narrowing {
        if op == Op::Intersect {
            apply(&mut selected, &matched, |s, m| s && m);
        } else {
            apply(&mut selected, &matched, |s, m| s && !m);
        }
    }
    Ok(selected)
}

/// `set[i] = rule(set[i], matched[i])` for every host.
fn apply(set: &mut HostSet, matched: &HostSet, rule: impl Fn(bool, bool) -> bool) {
    for (s, m) in set.iter_mut().zip(matched) {
        *s = rule(*s, *m);
    }
}

/// Every inventory host (not the implicit localhost: it is not in `all`).
fn every_host(inventory: &Inventory) -> HostSet {
    let mut set = vec![true; inventory.hosts.len() + 1];
    set[inventory.hosts.len()] = false;
    set
}

/// Splits on `,` and `:` outside `[...]`, trimming and dropping empty terms.
fn split_terms(limit: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in limit.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ',' | ':' if depth == 0 => {
                terms.push(&limit[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&limit[start..]);
    terms
        .into_iter()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect()
}

/// `!x` → exclude x, `&x` → intersect with x, `x` → add x.
fn parse_op(term: &str) -> Result<(Op, &str), InventoryError> {
    let (op, body) = if let Some(body) = term.strip_prefix('!') {
        (Op::Exclude, body)
    } else if let Some(body) = term.strip_prefix('&') {
        (Op::Intersect, body)
    } else {
        (Op::Union, term)
    };
    let body = body.trim();
    if body.is_empty() {
        return Err(InventoryError::Limit(format!(
            "`{term}` in the limit names nothing: write a host or group after it"
        )));
    }
    Ok((op, body))
}

/// The hosts one term (without its operator) matches.
fn matches(lookup: &Lookup, body: &str) -> Result<HostSet, InventoryError> {
    if let Some(regex) = body.strip_prefix('~') {
        let regex = Regex::new(&format!("^(?:{regex})")).map_err(|err| {
            InventoryError::Limit(format!("invalid regex `{body}` in the limit: {err}"))
        })?;
        return by_pattern(lookup, body, |name| regex.is_match(name));
    }
    if body.contains(['*', '?', '[']) {
        let glob = glob::Pattern::new(body).map_err(|err| {
            InventoryError::Limit(format!(
                "invalid pattern `{body}` in the limit: {}",
                err.msg
            ))
        })?;
        return by_pattern(lookup, body, |name| glob.matches(name));
    }
    by_name(lookup, body)
}

/// The hosts whose name, or whose group's name, `is_match`; an error if there are none.
fn by_pattern(
    lookup: &Lookup,
    pattern: &str,
    is_match: impl Fn(&str) -> bool,
) -> Result<HostSet, InventoryError> {
    let inventory = lookup.inventory;
    let mut set = lookup.none();
    let mut any = false;
    for (i, host) in inventory.hosts.iter().enumerate() {
        if is_match(&host.name) {
            set[i] = true;
            any = true;
        }
    }
    for group in inventory.groups.iter().filter(|g| is_match(&g.name)) {
        any = true;
        lookup.add_group(&group.hosts, &mut set);
    }
    if !any {
        return Err(InventoryError::Limit(format!(
            "pattern `{pattern}` matches no host or group"
        )));
    }
    Ok(set)
}

/// The host and/or group called `name` (`localhost` is there even if not defined).
fn by_name(lookup: &Lookup, name: &str) -> Result<HostSet, InventoryError> {
    let inventory = lookup.inventory;
    let mut set = lookup.none();
    let mut any = false;
    if let Some(&i) = lookup.index.get(name) {
        set[i] = true;
        any = true;
    }
    if let Some(group) = inventory.group(name) {
        lookup.add_group(&group.hosts, &mut set);
        any = true;
    }
    if !any && name == "localhost" {
        set[inventory.hosts.len()] = true;
        any = true;
    }
    if !any {
        let names = inventory
            .hosts
            .iter()
            .map(|h| h.name.as_str())
            .chain(inventory.groups.iter().map(|g| g.name.as_str()));
        let hint = suggest::did_you_mean(name, names);
        return Err(InventoryError::Limit(format!(
            "unknown host or group `{name}`{hint}"
        )));
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// web1-3 in `web`, db1-2 in `db`, both in `prod`; `stage1` in `staging`.
    fn inventory() -> Inventory {
        Inventory::parse(
            "hosts: {web1: , web2: , web3: , db1: , db2: , stage1: }
groups:
  web: {hosts: [web1, web2, web3]}
  db: {hosts: [db1, db2]}
  prod: {children: [web, db]}
  staging: {hosts: [stage1, web3]}
",
            Path::new("inventory.yml"),
        )
        .unwrap()
    }

    fn names(limit: &str) -> Vec<String> {
        let inv = inventory();
        inv.select(Some(limit))
            .unwrap()
            .into_iter()
            .map(|h| h.name.clone())
            .collect()
    }

    fn error(limit: &str) -> String {
        inventory().select(Some(limit)).unwrap_err().to_string()
    }

    #[test]
    fn no_limit_selects_every_host() {
        let inv = inventory();
        let all: Vec<&str> = inv
            .select(None)
            .unwrap()
            .iter()
            .map(|h| h.name.as_str())
            .collect();
        assert_eq!(all, ["web1", "web2", "web3", "db1", "db2", "stage1"]);
    }

    #[test]
    fn names_of_hosts_and_groups() {
        assert_eq!(names("db1"), ["db1"]);
        assert_eq!(names("db"), ["db1", "db2"]);
        assert_eq!(names("prod"), ["web1", "web2", "web3", "db1", "db2"]);
        assert_eq!(names("all").len(), 6);
    }

    #[test]
    fn union_is_in_inventory_order_each_host_once() {
        assert_eq!(names("db2,web1,web"), ["web1", "web2", "web3", "db2"]);
        assert_eq!(names("staging:db1"), ["web3", "db1", "stage1"]);
    }

    #[test]
    fn globs_match_host_and_group_names() {
        assert_eq!(names("web*"), ["web1", "web2", "web3"]);
        assert_eq!(names("web[1-2]"), ["web1", "web2"]);
        assert_eq!(names("stag*"), ["web3", "stage1"]);
        assert_eq!(names("db?"), ["db1", "db2"]);
        // A `:` inside a character class does not split.
        assert_eq!(names("web[1:2]"), ["web1", "web2"]);
    }

    #[test]
    fn regexes_match_from_the_start() {
        assert_eq!(names("~(web|db)1"), ["web1", "db1"]);
        assert_eq!(names("~.eb1"), ["web1"]);
        assert_eq!(error("~eb1"), "pattern `~eb1` matches no host or group");
    }

    #[test]
    fn exclusion_and_intersection() {
        assert_eq!(names("prod:!web"), ["db1", "db2"]);
        assert_eq!(names("!web"), ["db1", "db2", "stage1"]);
        assert_eq!(names("web:&staging"), ["web3"]);
        assert_eq!(names("all,&prod,!db2,!web2"), ["web1", "web3", "db1"]);
        // Order does not matter: exclusions apply last.
        assert_eq!(names("!web1,web"), ["web2", "web3"]);
    }

    #[test]
    fn localhost_is_always_selectable_by_name_but_not_in_all() {
        assert_eq!(names("localhost"), ["localhost"]);
        assert_eq!(names("db1,localhost"), ["db1", "localhost"]);
        assert!(!names("all").contains(&"localhost".to_string()));
        assert_eq!(error("local*"), "pattern `local*` matches no host or group");
    }

    #[test]
    fn unknown_names_suggest_close_ones() {
        assert_eq!(
            error("wbe1"),
            "unknown host or group `wbe1`; did you mean `web1`?"
        );
        assert_eq!(
            error("web,!dbb"),
            "unknown host or group `dbb`; did you mean `db`, `db1` or `db2`?"
        );
        assert_eq!(error("zzz"), "unknown host or group `zzz`");
    }

    #[test]
    fn empty_results_and_empty_terms_are_errors() {
        assert_eq!(error("web1:&db"), "limit `web1:&db` selects no hosts");
        assert_eq!(error("xyz*"), "pattern `xyz*` matches no host or group");
        assert_eq!(
            error(" , "),
            "the limit is empty: name hosts or groups, or leave the limit out for every host"
        );
        assert_eq!(
            error("web,!"),
            "`!` in the limit names nothing: write a host or group after it"
        );
        assert!(error("web[").starts_with("invalid pattern `web[` in the limit: "));
        assert!(error("~(").starts_with("invalid regex `~(` in the limit: "));
    }

    #[test]
    fn terms_split_on_commas_and_colons_outside_brackets() {
        assert_eq!(split_terms("a, b:c,,[1:2]d"), ["a", "b", "c", "[1:2]d"]);
        assert_eq!(split_terms(""), Vec::<&str>::new());
    }
}
