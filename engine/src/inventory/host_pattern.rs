//! Ansible host patterns in inventories: `web[01:03]`, `db-[a:c]`, `node[0:10:2]`, and a
//! `:port` suffix (`web1:2222`).

/// A host range may not make more hosts than this: a typo like `[1:999999]` should fail
/// rather than fill the memory.
const MAX_HOSTS: usize = 65_536;

/// What a host pattern stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Expanded {
    /// The host names, in range order.
    pub(super) names: Vec<String>,
    /// The port given with `:port`, if any.
    pub(super) port: Option<u16>,
}

/// Expands `pattern`; the error says what is wrong with it.
pub(super) fn expand(pattern: &str) -> Result<Expanded, String> {
    let (name, port) = split_port(pattern)?;
    let mut names = Vec::new();
    expand_into(name, &mut names)?;
    Ok(Expanded { names, port })
}

/// `name:22` → (`name`, 22). Only one `:` outside brackets makes a port: more is IPv6.
fn split_port(pattern: &str) -> Result<(&str, Option<u16>), String> {
    let mut depth = 0usize;
    let mut colons = Vec::new();
    for (i, c) in pattern.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ':' if depth == 0 => colons.push(i),
            _ => {}
        }
    }
    let [colon] = colons[..] else {
        return Ok((pattern, None));
    };
    let (name, port) = (&pattern[..colon], &pattern[colon + 1..]);
    match port.parse::<u16>() {
        Ok(p) if p != 0 && port.bytes().all(|b| b.is_ascii_digit()) => Ok((name, Some(p))),
        _ => Err(format!(
            "the port `{port}` in `{pattern}` must be a number 1-65535"
        )),
    }
}

/// Appends the names `pattern` expands to, expanding its first range and recursing.
fn expand_into(pattern: &str, names: &mut Vec<String>) -> Result<(), String> {
    let Some((head, range, tail)) = first_range(pattern) else {
        names.push(pattern.to_owned());
        return Ok(());
    };
    for item in range_items(range).map_err(|why| format!("host range `[{range}]`: {why}"))? {
        expand_into(&format!("{head}{item}{tail}"), names)?;
        if names.len() > MAX_HOSTS {
            return Err(format!(
                "host pattern `{pattern}` makes more than {MAX_HOSTS} hosts"
            ));
        }
    }
    Ok(())
}

/// Splits `a[1:3]b` into (`a`, `1:3`, `b`); `None` without a `[...:...]`.
fn first_range(pattern: &str) -> Option<(&str, &str, &str)> {
    let open = pattern.find('[')?;
    let close = open + pattern[open..].find(']')?;
    let range = &pattern[open + 1..close];
    range
        .contains(':')
        .then(|| (&pattern[..open], range, &pattern[close + 1..]))
}

/// The items of `begin:end` or `begin:end:step`, numbers (zero-padded like `begin` when it
/// starts with 0) or single letters.
fn range_items(range: &str) -> Result<Vec<String>, String> {
    let parts: Vec<&str> = range.split(':').collect();
    let (begin, end, step) = match parts[..] {
        [begin, end] => (begin, end, "1"),
        [begin, end, step] => (begin, end, step),
        _ => return Err("write it as `begin:end` or `begin:end:step`".into()),
    };
    let begin = if begin.is_empty() { "0" } else { begin };
    if end.is_empty() {
        return Err("the end is missing".into());
    }
    let step: usize = match step.parse() {
        Ok(s) if s > 0 => s,
        _ => return Err(format!("the step `{step}` must be a number above 0")),
    };
    if is_letter(begin) || is_letter(end) {
        letters(begin, end, step)
    } else {
        numbers(begin, end, step)
    }
}

fn is_letter(s: &str) -> bool {
    s.len() == 1 && s.bytes().all(|b| b.is_ascii_alphabetic())
}

/// Python's `string.ascii_letters` order, as Ansible uses: `a`..`z` then `A`..`Z`.
fn letter_index(s: &str) -> Option<usize> {
    let b = *s.as_bytes().first()?;
    match b {
        b'a'..=b'z' => Some(usize::from(b - b'a')),
        b'A'..=b'Z' => Some(26 + usize::from(b - b'A')),
        _ => None,
    }
}

fn letters(begin: &str, end: &str, step: usize) -> Result<Vec<String>, String> {
    let (Some(b), Some(e)) = (
        letter_index(begin).filter(|_| is_letter(begin)),
        letter_index(end).filter(|_| is_letter(end)),
    ) else {
        return Err("use two numbers or two single letters".into());
    };
    if b > e {
        return Err("the beginning must not come after the end".into());
    }
    Ok((b..=e)
        .step_by(step)
        .map(|i| {
            let i = u8::try_from(i).unwrap_or(0);
            char::from(if i < 26 { b'a' + i } else { b'A' + i - 26 }).to_string()
        })
        .collect())
}

fn numbers(begin: &str, end: &str, step: usize) -> Result<Vec<String>, String> {
    let (Ok(b), Ok(e)) = (begin.parse::<usize>(), end.parse::<usize>()) else {
        return Err("use two numbers or two single letters".into());
    };
    if b > e {
        return Err("the beginning must not come after the end".into());
    }
    if e - b > MAX_HOSTS * step {
        return Err(format!("it makes more than {MAX_HOSTS} hosts"));
    }
    // `01:10` pads to the beginning's width, and then the end must be as wide.
    let width = if begin.len() > 1 && begin.starts_with('0') {
        if begin.len() != end.len() {
            return Err("a zero-padded range needs a beginning and end of equal width".into());
        }
        begin.len()
    } else {
        0
    };
    Ok((b..=e)
        .step_by(step)
        .map(|n| format!("{n:0width$}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(pattern: &str) -> Vec<String> {
        expand(pattern).unwrap().names
    }

    #[test]
    fn plain_names_are_themselves() {
        assert_eq!(
            expand("web1.example.com").unwrap(),
            Expanded {
                names: vec!["web1.example.com".into()],
                port: None
            }
        );
        assert_eq!(names("odd[name]"), ["odd[name]"]);
    }

    #[test]
    fn numeric_ranges_keep_zero_padding() {
        assert_eq!(names("web[01:03]"), ["web01", "web02", "web03"]);
        assert_eq!(names("web[8:10]"), ["web8", "web9", "web10"]);
        assert_eq!(names("n[:2]"), ["n0", "n1", "n2"]);
        assert_eq!(names("n[0:6:3].lan"), ["n0.lan", "n3.lan", "n6.lan"]);
    }

    #[test]
    fn letter_ranges() {
        assert_eq!(names("db-[a:c]"), ["db-a", "db-b", "db-c"]);
        assert_eq!(names("x[y:B]"), ["xy", "xz", "xA", "xB"]);
    }

    #[test]
    fn several_ranges_multiply() {
        assert_eq!(names("r[1:2]-[a:b]"), ["r1-a", "r1-b", "r2-a", "r2-b"]);
    }

    #[test]
    fn a_port_suffix_is_split_off() {
        assert_eq!(
            expand("web[1:2]:2222").unwrap(),
            Expanded {
                names: vec!["web1".into(), "web2".into()],
                port: Some(2222)
            }
        );
        // Several colons: an IPv6 address, not a port.
        assert_eq!(expand("fe80::1").unwrap().port, None);
    }

    #[test]
    fn bad_ranges_and_ports_say_what_is_wrong() {
        let err = |p: &str| expand(p).unwrap_err();
        assert_eq!(
            err("w[3:1]"),
            "host range `[3:1]`: the beginning must not come after the end"
        );
        assert_eq!(err("w[1:]"), "host range `[1:]`: the end is missing");
        assert_eq!(
            err("w[1:2:3:4]"),
            "host range `[1:2:3:4]`: write it as `begin:end` or `begin:end:step`"
        );
        assert_eq!(
            err("w[01:100]"),
            "host range `[01:100]`: a zero-padded range needs a beginning and end of equal width"
        );
        assert_eq!(
            err("w[a:3]"),
            "host range `[a:3]`: use two numbers or two single letters"
        );
        assert_eq!(
            err("w[1:3:0]"),
            "host range `[1:3:0]`: the step `0` must be a number above 0"
        );
        assert_eq!(
            err("w[0:9999999]"),
            "host range `[0:9999999]`: it makes more than 65536 hosts"
        );
        assert_eq!(
            err("web1:99999"),
            "the port `99999` in `web1:99999` must be a number 1-65535"
        );
        assert_eq!(
            err("web1:ssh"),
            "the port `ssh` in `web1:ssh` must be a number 1-65535"
        );
    }
}
