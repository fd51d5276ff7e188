//! The rest of the `ansible.builtin` filters and tests that roles use, and Jinja2's own
//! that minijinja lacks (`center`, `callable`, ...). Each follows the Python function
//! it replaces (`ansible/plugins/filter/core.py`, `mathstuff.py`, `urlsplit.py`,
//! `plugins/test/core.py`, `files.py`, `mathstuff.py` of ansible-core 2.19); the corpus
//! in `tests/templates/` compares their output with Ansible's byte for byte.

use std::path::{Component, Path, PathBuf};

use minijinja::value::{Kwargs, Rest, Value, ValueKind};
use minijinja::{Environment, Error};

use super::filters::{invalid, regex, text};
use super::percent;
use super::pyfmt::{self, to_data, undefined_error};
use super::pyrandom::{PyRandom, Seed};
use super::to_jinja;

/// Ansible filters toyc does not have: naming one says so plainly, not "unknown filter".
pub(crate) const UNSUPPORTED_FILTERS: &[&str] = &[
    "vault",
    "unvault",
    "ipaddr",
    "ipv4",
    "ipv6",
    "json_query",
    "from_yaml_all",
    "urlsplit",
    "win_basename",
    "win_dirname",
    "win_splitdrive",
    "path_join",
    "realpath",
    "fileglob",
];

/// Every filter a template can use (minijinja's, `filters.rs`' and these), for the
/// closest name in an unknown filter's error.
pub(crate) const KNOWN_FILTERS: &[&str] = &[
    "abs",
    "attr",
    "b64decode",
    "b64encode",
    "basename",
    "batch",
    "bool",
    "capitalize",
    "center",
    "checksum",
    "combinations",
    "combine",
    "comment",
    "count",
    "d",
    "default",
    "dict2items",
    "dictsort",
    "difference",
    "dirname",
    "e",
    "escape",
    "expanduser",
    "extract",
    "filesizeformat",
    "first",
    "flatten",
    "float",
    "forceescape",
    "format",
    "from_json",
    "from_yaml",
    "groupby",
    "hash",
    "human_readable",
    "human_to_bytes",
    "indent",
    "int",
    "intersect",
    "items",
    "items2dict",
    "join",
    "last",
    "length",
    "lines",
    "list",
    "log",
    "lower",
    "mandatory",
    "map",
    "max",
    "md5",
    "min",
    "password_hash",
    "permutations",
    "pow",
    "pprint",
    "product",
    "quote",
    "random",
    "regex_escape",
    "regex_findall",
    "regex_replace",
    "regex_search",
    "reject",
    "rejectattr",
    "relpath",
    "replace",
    "reverse",
    "root",
    "round",
    "safe",
    "select",
    "selectattr",
    "sha1",
    "shuffle",
    "slice",
    "sort",
    "split",
    "splitext",
    "strftime",
    "string",
    "striptags",
    "subelements",
    "sum",
    "symmetric_difference",
    "ternary",
    "title",
    "to_datetime",
    "to_json",
    "to_nice_json",
    "to_nice_yaml",
    "to_uuid",
    "to_yaml",
    "tojson",
    "trim",
    "truncate",
    "type_debug",
    "union",
    "unique",
    "upper",
    "urlencode",
    "urlize",
    "wordcount",
    "wordwrap",
    "xmlattr",
    "zip",
    "zip_longest",
];

/// Every test a template can use, for the closest name in an unknown test's error.
pub(crate) const KNOWN_TESTS: &[&str] = &[
    "abs",
    "all",
    "any",
    "boolean",
    "contains",
    "defined",
    "directory",
    "divisibleby",
    "endingwith",
    "eq",
    "equalto",
    "escaped",
    "even",
    "exists",
    "falsy",
    "file",
    "filter",
    "float",
    "ge",
    "gt",
    "in",
    "integer",
    "iterable",
    "le",
    "link",
    "lower",
    "lt",
    "mapping",
    "match",
    "nan",
    "ne",
    "none",
    "number",
    "odd",
    "regex",
    "sameas",
    "search",
    "sequence",
    "startingwith",
    "string",
    "subset",
    "superset",
    "test",
    "true",
    "false",
    "truthy",
    "undefined",
    "upper",
    "version",
    "version_compare",
];

/// Ansible tests toyc does not have.
pub(crate) const UNSUPPORTED_TESTS: &[&str] = &[
    "failed",
    "succeeded",
    "success",
    "changed",
    "skipped",
    "finished",
    "started",
    "reachable",
    "unreachable",
    "mount",
    "same_file",
    "vault_encrypted",
    "vaulted_file",
    "ansible_url",
    "uri",
    "url",
    "urn",
    "callable",
];

/// Add the filters and tests to `env`.
pub(crate) fn register(env: &mut Environment<'_>) {
    env.add_filter(percent::PERCENT, percent::percent);
    env.add_filter("format", format);
    env.add_filter("center", center);
    env.add_filter("ternary", ternary);
    env.add_filter("combine", combine);
    env.add_filter("dict2items", dict2items);
    env.add_filter("items2dict", items2dict);
    env.add_filter("flatten", flatten);
    env.add_filter("regex_findall", regex_findall);
    env.add_filter("regex_escape", regex_escape);
    env.add_filter("to_uuid", to_uuid);
    env.add_filter("splitext", splitext);
    env.add_filter("relpath", relpath);
    env.add_filter("expanduser", expanduser);
    env.add_filter("checksum", sha1);
    env.add_filter("sha1", sha1);
    env.add_filter("md5", md5);
    env.add_filter("human_readable", human_readable);
    env.add_filter("human_to_bytes", human_to_bytes);
    env.add_filter("type_debug", type_debug);
    env.add_filter("comment", comment);
    env.add_filter("from_json", from_json);
    env.add_filter("from_yaml", from_yaml);
    env.add_filter("extract", extract);
    env.add_filter("subelements", subelements);
    env.add_filter("strftime", strftime);
    env.add_filter("union", union);
    env.add_filter("intersect", intersect);
    env.add_filter("difference", difference);
    env.add_filter("symmetric_difference", symmetric_difference);
    env.add_filter("zip", zip);
    env.add_filter("zip_longest", zip_longest);
    env.add_filter("product", product);
    env.add_filter("permutations", permutations);
    env.add_filter("combinations", combinations);
    env.add_filter("random", random);
    env.add_filter("shuffle", shuffle);
    env.add_filter("log", log);
    env.add_filter("pow", pow);
    env.add_filter("root", root);
    env.add_filter("forceescape", forceescape);
    // markupsafe's entities (`&#34;`), not minijinja's (`&quot;`, `&#x2f;`).
    env.add_filter("escape", forceescape);
    env.add_filter("e", forceescape);
    env.add_filter("filesizeformat", filesizeformat);
    env.add_filter("truncate", truncate);
    env.add_filter("striptags", striptags);
    env.add_filter("wordcount", wordcount);
    env.add_filter("dictsort", dictsort);
    env.add_filter("urlencode", urlencode);
    // `pprint.pformat` of a value that fits its 80 columns, which is its repr.
    env.add_filter("pprint", |v: &Value| -> Result<String, Error> {
        Ok(pyfmt::repr(&to_data(v)?))
    });
    env.add_filter("wordwrap", super::wordwrap::wordwrap);
    env.add_filter("xmlattr", super::html::xmlattr);
    env.add_filter("urlize", super::html::urlize);
    env.add_filter("password_hash", super::password::password_hash);

    env.add_test("match", test_match);
    env.add_test("search", test_search);
    env.add_test("regex", test_regex);
    env.add_test("version", test_version);
    env.add_test("version_compare", test_version);
    env.add_test("subset", test_subset);
    env.add_test("superset", test_superset);
    env.add_test("contains", test_contains);
    env.add_test("any", test_any);
    env.add_test("all", test_all);
    env.add_test("truthy", test_truthy);
    env.add_test("falsy", test_falsy);
    env.add_test("file", |p: &Value| {
        Ok::<_, Error>(Path::new(&text(p)?).is_file())
    });
    env.add_test("directory", |p: &Value| {
        Ok::<_, Error>(Path::new(&text(p)?).is_dir())
    });
    env.add_test("link", |p: &Value| {
        Ok::<_, Error>(Path::new(&text(p)?).is_symlink())
    });
    env.add_test("exists", |p: &Value| {
        Ok::<_, Error>(Path::new(&text(p)?).symlink_metadata().is_ok())
    });
    env.add_test("abs", |p: &Value| Ok::<_, Error>(text(p)?.starts_with('/')));
    // Jinja2's: anything with a length and items, so strings and dicts too.
    env.add_test("sequence", |v: &Value| {
        Ok::<_, Error>(matches!(
            v.kind(),
            ValueKind::String | ValueKind::Seq | ValueKind::Map | ValueKind::Bytes
        ))
    });
    env.add_test("nan", |v: &Value| {
        Ok::<_, Error>(f64::try_from(v.clone()).is_ok_and(f64::is_nan))
    });
}

fn defined(value: &Value) -> Result<(), Error> {
    if value.is_undefined() {
        Err(undefined_error(value))
    } else {
        Ok(())
    }
}

fn items(value: &Value) -> Result<Vec<Value>, Error> {
    defined(value)?;
    Ok(value.try_iter()?.collect())
}

/// Jinja2's `format`: `value % args` (or `% kwargs`).
fn format(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<String, Error> {
    let format = text(value)?;
    let keys: Vec<&str> = kwargs.args().collect();
    if !keys.is_empty() {
        let pairs = keys
            .iter()
            .map(|k| Ok((Value::from(*k), kwargs.get::<Value>(k)?)))
            .collect::<Result<Vec<_>, Error>>()?;
        return percent::format_values(&format, &map_of(pairs));
    }
    percent::format_values(&format, &Value::from(args.0))
}

/// `center(width=80)`: Python's `str.center`.
fn center(value: &Value, width: Option<usize>, kwargs: Kwargs) -> Result<String, Error> {
    let width = kwargs.get::<Option<usize>>("width")?.or(width);
    kwargs.assert_all_used()?;
    let s = text(value)?;
    let width = width.unwrap_or(80);
    let len = s.chars().count();
    if len >= width {
        return Ok(s);
    }
    let marg = width - len;
    let left = marg / 2 + (marg & width & 1);
    Ok(format!(
        "{}{s}{}",
        " ".repeat(left),
        " ".repeat(marg - left)
    ))
}

/// `ternary(true_val, false_val, none_val=None)`.
fn ternary(
    value: &Value,
    true_val: Value,
    false_val: Value,
    none_val: Option<Value>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let none_val = kwargs.get::<Option<Value>>("none_val")?.or(none_val);
    kwargs.assert_all_used()?;
    defined(value)?;
    Ok(match none_val {
        Some(none_val) if value.is_none() => none_val,
        _ if value.is_true() => true_val,
        _ => false_val,
    })
}

type Data = serde_json::Value;

/// `combine(*dicts, recursive=False, list_merge='replace')`: Ansible's `merge_hash`.
fn combine(value: &Value, others: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let recursive = kwargs.get::<Option<bool>>("recursive")?.unwrap_or(false);
    let list_merge = kwargs
        .get::<Option<String>>("list_merge")?
        .unwrap_or_else(|| "replace".to_owned());
    kwargs.assert_all_used()?;
    let mut dicts = Vec::new();
    for term in std::iter::once(value).chain(others.iter()) {
        match to_data(term)? {
            Data::Array(items) => dicts.extend(items),
            other => dicts.push(other),
        }
    }
    let mut result = serde_json::Map::new();
    for dict in dicts {
        let Data::Object(dict) = dict else {
            return Err(invalid("combine: only dictionaries can be combined"));
        };
        merge(&mut result, dict, recursive, &list_merge)?;
    }
    Ok(to_jinja(&Data::Object(result)))
}

fn merge(
    into: &mut serde_json::Map<String, Data>,
    from: serde_json::Map<String, Data>,
    recursive: bool,
    list_merge: &str,
) -> Result<(), Error> {
    for (key, new) in from {
        let Some(old) = into.get_mut(&key) else {
            into.insert(key, new);
            continue;
        };
        match (old, new) {
            (Data::Object(old), Data::Object(new)) if recursive => {
                merge(old, new, recursive, list_merge)?
            }
            (Data::Array(old), Data::Array(new)) => match list_merge {
                "replace" => *old = new,
                "keep" => {}
                "append" => old.extend(new),
                "prepend" => {
                    let mut merged = new;
                    merged.append(old);
                    *old = merged;
                }
                "append_rp" => {
                    old.retain(|x| !new.contains(x));
                    old.extend(new);
                }
                "prepend_rp" => {
                    let mut merged = new.clone();
                    merged.extend(old.drain(..).filter(|x| !new.contains(x)));
                    *old = merged;
                }
                other => {
                    return Err(invalid(format!(
                        "combine: list_merge `{other}` is not one of replace, keep, append, prepend, append_rp, prepend_rp"
                    )))
                }
            },
            (old, new) => *old = new,
        }
    }
    Ok(())
}

fn names(kwargs: &Kwargs) -> Result<(String, String), Error> {
    let key = kwargs
        .get::<Option<String>>("key_name")?
        .unwrap_or_else(|| "key".to_owned());
    let value = kwargs
        .get::<Option<String>>("value_name")?
        .unwrap_or_else(|| "value".to_owned());
    kwargs.assert_all_used()?;
    Ok((key, value))
}

/// `dict2items(key_name='key', value_name='value')`.
fn dict2items(value: &Value, kwargs: Kwargs) -> Result<Value, Error> {
    let (key_name, value_name) = names(&kwargs)?;
    if value.kind() != ValueKind::Map {
        return Err(invalid(format!(
            "dict2items requires a dictionary, got {}",
            value.kind()
        )));
    }
    let mut out = Vec::new();
    for key in value.try_iter()? {
        let item = value.get_item(&key)?;
        out.push(map_of(vec![
            (Value::from(key_name.as_str()), key),
            (Value::from(value_name.as_str()), item),
        ]));
    }
    Ok(Value::from(out))
}

/// `items2dict(key_name='key', value_name='value')`.
fn items2dict(value: &Value, kwargs: Kwargs) -> Result<Value, Error> {
    let (key_name, value_name) = names(&kwargs)?;
    let mut out = Vec::new();
    for item in items(value)? {
        out.push((item.get_attr(&key_name)?, item.get_attr(&value_name)?));
    }
    Ok(map_of(out))
}

/// A map of `pairs`, in their order.
fn map_of(pairs: Vec<(Value, Value)>) -> Value {
    Value::from_pairs(pairs)
}

/// `flatten(levels=None, skip_nulls=True)`.
fn flatten(value: &Value, levels: Option<i64>, kwargs: Kwargs) -> Result<Value, Error> {
    let levels = kwargs.get::<Option<i64>>("levels")?.or(levels);
    let skip_nulls = kwargs.get::<Option<bool>>("skip_nulls")?.unwrap_or(true);
    kwargs.assert_all_used()?;
    fn walk(
        value: &Value,
        levels: Option<i64>,
        skip_nulls: bool,
        out: &mut Vec<Value>,
    ) -> Result<(), Error> {
        for item in value.try_iter()? {
            if skip_nulls && (item.is_none() || matches!(item.as_str(), Some("None" | "null"))) {
                continue;
            }
            if matches!(item.kind(), ValueKind::Seq) {
                match levels {
                    None => walk(&item, None, skip_nulls, out)?,
                    Some(l) if l >= 1 => walk(&item, Some(l - 1), skip_nulls, out)?,
                    Some(_) => out.push(item),
                }
            } else {
                out.push(item);
            }
        }
        Ok(())
    }
    defined(value)?;
    let mut out = Vec::new();
    walk(value, levels, skip_nulls, &mut out)?;
    Ok(Value::from(out))
}

/// `regex_findall(regex, multiline=False, ignorecase=False)`: `re.findall`.
fn regex_findall(value: &Value, pattern: String, kwargs: Kwargs) -> Result<Value, Error> {
    let ignorecase = kwargs.get::<Option<bool>>("ignorecase")?.unwrap_or(false);
    let multiline = kwargs.get::<Option<bool>>("multiline")?.unwrap_or(false);
    kwargs.assert_all_used()?;
    let re = regex(&pattern, ignorecase, multiline)?;
    let haystack = text(value)?;
    let groups = re.captures_len() - 1;
    let mut out = Vec::new();
    for caps in re.captures_iter(&haystack) {
        let group = |i: usize| Value::from(caps.get(i).map_or("", |m| m.as_str()));
        out.push(match groups {
            0 => group(0),
            1 => group(1),
            n => Value::from((1..=n).map(group).collect::<Vec<_>>()),
        });
    }
    Ok(Value::from(out))
}

/// `regex_escape`: Python's `re.escape`.
fn regex_escape(value: &Value, re_type: Option<String>) -> Result<String, Error> {
    let s = text(value)?;
    if let Some(kind) = re_type.filter(|t| t != "python") {
        if kind == "posix_basic" {
            let mut out = String::new();
            for c in s.chars() {
                if ".[]\\*^$".contains(c) {
                    out.push('\\');
                }
                out.push(c);
            }
            return Ok(out);
        }
        return Err(invalid(format!(
            "regex_escape: re_type `{kind}` is not supported (python, posix_basic)"
        )));
    }
    let mut out = String::new();
    for c in s.chars() {
        if "()[]{}?*+-|^$\\.&~# \t\n\r\u{b}\u{c}".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    Ok(out)
}

/// `to_uuid(namespace=...)`: `uuid.uuid5`, in Ansible's namespace by default.
fn to_uuid(value: &Value, namespace: Option<String>, kwargs: Kwargs) -> Result<String, Error> {
    let namespace = kwargs.get::<Option<String>>("namespace")?.or(namespace);
    kwargs.assert_all_used()?;
    let namespace = namespace.unwrap_or_else(|| "361E6D51-FAEC-444A-9079-341386DA8E2E".into());
    let hex: String = namespace
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .collect();
    if hex.len() != 32 {
        return Err(invalid(format!(
            "to_uuid: invalid value '{namespace}' for 'namespace'"
        )));
    }
    let mut data: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0))
        .collect();
    data.extend_from_slice(text(value)?.as_bytes());
    let digest = sha1_smol::Sha1::from(&data).digest().bytes();
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

/// `splitext`: `os.path.splitext`, as a pair.
fn splitext(value: &Value) -> Result<Value, Error> {
    let path = text(value)?;
    let base_start = path.rfind('/').map_or(0, |i| i + 1);
    let base = &path[base_start..];
    let dot = base
        .rfind('.')
        .filter(|&i| base[..i].chars().any(|c| c != '.'));
    Ok(match dot {
        Some(i) => Value::from(vec![
            Value::from(&path[..base_start + i]),
            Value::from(&base[i..]),
        ]),
        None => Value::from(vec![Value::from(path.as_str()), Value::from("")]),
    })
}

fn normalize(path: &Path) -> Vec<String> {
    let mut parts: Vec<String> = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::ParentDir => {
                if parts.last().is_some_and(|p| p != "..") {
                    parts.pop();
                } else if !path.is_absolute() {
                    parts.push("..".into());
                }
            }
            _ => {}
        }
    }
    parts
}

/// `relpath(start)`: `os.path.relpath`, relative paths taken from the current directory.
fn relpath(value: &Value, start: Option<String>, kwargs: Kwargs) -> Result<String, Error> {
    let start = kwargs.get::<Option<String>>("start")?.or(start);
    kwargs.assert_all_used()?;
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let absolute = |p: &str| {
        if p.starts_with('/') {
            PathBuf::from(p)
        } else {
            cwd.join(p)
        }
    };
    let path = normalize(&absolute(&text(value)?));
    let start = normalize(&absolute(&start.unwrap_or_else(|| ".".into())));
    let common = path.iter().zip(&start).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<&str> = vec![".."; start.len() - common];
    parts.extend(path[common..].iter().map(String::as_str));
    Ok(if parts.is_empty() {
        ".".to_owned()
    } else {
        parts.join("/")
    })
}

/// `expanduser`: `~` and `~/...` as the controller's home directory.
fn expanduser(value: &Value) -> Result<String, Error> {
    let path = text(value)?;
    let home = std::env::var("HOME").unwrap_or_default();
    Ok(match path.strip_prefix('~') {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => format!("{home}{rest}"),
        _ => path,
    })
}

fn sha1(value: &Value) -> Result<String, Error> {
    Ok(sha1_smol::Sha1::from(text(value)?).digest().to_string())
}

fn md5(value: &Value) -> Result<String, Error> {
    use ::md5::Digest;
    let digest = ::md5::Md5::digest(text(value)?.as_bytes());
    Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
}

const SIZE_RANGES: [(&str, f64); 9] = [
    ("Y", 1_208_925_819_614_629_174_706_176.0),
    ("Z", 1_180_591_620_717_411_303_424.0),
    ("E", 1_152_921_504_606_846_976.0),
    ("P", 1_125_899_906_842_624.0),
    ("T", 1_099_511_627_776.0),
    ("G", 1_073_741_824.0),
    ("M", 1_048_576.0),
    ("K", 1_024.0),
    ("B", 1.0),
];

/// `human_readable(isbits=False, unit=None)`: `bytes_to_human`, `'%.2f %s'`.
fn human_readable(
    value: &Value,
    isbits: Option<bool>,
    unit: Option<String>,
    kwargs: Kwargs,
) -> Result<String, Error> {
    let isbits = kwargs.get::<Option<bool>>("isbits")?.or(isbits);
    let unit = kwargs.get::<Option<String>>("unit")?.or(unit);
    kwargs.assert_all_used()?;
    let size = f64::try_from(value.clone()).or_else(|_| {
        text(value)?
            .trim()
            .parse::<f64>()
            .map_err(|_| invalid("human_readable: not a number"))
    })?;
    let base = if isbits.unwrap_or(false) {
        "bits"
    } else {
        "Bytes"
    };
    let (mut suffix, mut limit) = SIZE_RANGES[8];
    for (s, l) in SIZE_RANGES {
        let chosen = match &unit {
            None => size >= l,
            Some(u) => u.to_uppercase().starts_with(s),
        };
        (suffix, limit) = (s, l);
        if chosen {
            break;
        }
    }
    let suffix = if limit != 1.0 {
        format!("{suffix}{}", &base[..1])
    } else {
        base.to_owned()
    };
    Ok(format!("{:.2} {suffix}", size / limit))
}

/// `human_to_bytes(default_unit=None, isbits=False)`: `human_to_bytes`.
fn human_to_bytes(
    value: &Value,
    default_unit: Option<String>,
    isbits: Option<bool>,
    kwargs: Kwargs,
) -> Result<i64, Error> {
    let default_unit = kwargs
        .get::<Option<String>>("default_unit")?
        .or(default_unit);
    let isbits = kwargs.get::<Option<bool>>("isbits")?.or(isbits);
    kwargs.assert_all_used()?;
    let s = text(value)?;
    let re = regex::Regex::new(r"^\s*(\d*\.?\d*)\s*([A-Za-z]+)?\s*$")
        .map_err(|e| invalid(e.to_string()))?;
    let caps = re.captures(&s).ok_or_else(|| {
        invalid(format!(
            "human_to_bytes() can't interpret following string: {s}"
        ))
    })?;
    let number: f64 = caps[1].parse().map_err(|_| {
        invalid(format!(
            "human_to_bytes() can't interpret following number: {}",
            &caps[1]
        ))
    })?;
    let unit = caps
        .get(2)
        .map(|m| m.as_str().to_owned())
        .or(default_unit)
        .unwrap_or_default();
    let first = unit.chars().next().map(|c| c.to_ascii_uppercase());
    let Some(first) = first else {
        return Ok(number.round() as i64);
    };
    let (_, limit) = SIZE_RANGES
        .iter()
        .find(|(s, _)| s.starts_with(first))
        .ok_or_else(|| {
            invalid(format!(
                "human_to_bytes() failed to convert {s}: unknown unit"
            ))
        })?;
    let bits = isbits.unwrap_or(false);
    let suffix_ok = unit.len() == 1
        || (unit.len() == 2 && unit.ends_with(if bits { 'b' } else { 'B' }))
        || unit.eq_ignore_ascii_case(if bits { "bits" } else { "bytes" });
    if !suffix_ok {
        return Err(invalid(format!(
            "human_to_bytes() failed to convert {s}. Value is not a valid string ({})",
            if bits {
                "expecting bits"
            } else {
                "expecting bytes"
            }
        )));
    }
    Ok((number * limit).round() as i64)
}

/// `type_debug`: the Python type's name.
fn type_debug(value: &Value) -> Result<String, Error> {
    Ok(match value.kind() {
        ValueKind::Undefined => return Err(undefined_error(value)),
        ValueKind::None => "NoneType",
        ValueKind::Bool => "bool",
        ValueKind::Number if value.is_integer() => "int",
        ValueKind::Number => "float",
        ValueKind::String => "str",
        ValueKind::Bytes => "bytes",
        ValueKind::Seq | ValueKind::Iterable => "list",
        ValueKind::Map => "dict",
        _ => match super::datetime::temporal(value) {
            Some(super::datetime::Temporal::Moment(m)) => m.type_name(),
            Some(super::datetime::Temporal::Delta(_)) => "timedelta",
            None => "object",
        },
    }
    .to_owned())
}

/// `comment(style='plain', **kw)`.
fn comment(value: &Value, style: Option<String>, kwargs: Kwargs) -> Result<String, Error> {
    let style = style.unwrap_or_else(|| "plain".into());
    let (beginning, decoration, end) = match style.as_str() {
        "plain" => ("", "# ", ""),
        "erlang" => ("", "% ", ""),
        "c" => ("", "// ", ""),
        "cblock" => ("/*", " * ", " */"),
        "xml" => ("<!--", " - ", "-->"),
        other => {
            return Err(invalid(format!(
                "comment: invalid style '{other}' (plain, erlang, c, cblock, xml)"
            )))
        }
    };
    let get = |key: &str, default: &str| -> Result<String, Error> {
        Ok(kwargs
            .get::<Option<Value>>(key)?
            .map(|v| text(&v))
            .transpose()?
            .unwrap_or_else(|| default.to_owned()))
    };
    let prepostfix = get("decoration", decoration)?;
    let newline = get("newline", "\n")?;
    let beginning = get("beginning", beginning)?;
    let prefix = get("prefix", prepostfix.trim_end())?;
    let prefix_count: usize = kwargs.get::<Option<usize>>("prefix_count")?.unwrap_or(1);
    let decoration = get("decoration", decoration)?;
    let postfix = get("postfix", prepostfix.trim_end())?;
    let postfix_count: usize = kwargs.get::<Option<usize>>("postfix_count")?.unwrap_or(1);
    let end = get("end", end)?;
    kwargs.assert_all_used()?;
    let text = text(value)?;
    let mut out = String::new();
    if !beginning.is_empty() {
        out.push_str(&format!("{beginning}{newline}"));
    }
    if !prefix.is_empty() {
        let one = if prefix != newline {
            format!("{prefix}{newline}")
        } else {
            newline.clone()
        };
        out.push_str(&one.repeat(prefix_count));
    }
    let body = format!(
        "{decoration}{}",
        text.replace(&newline, &format!("{newline}{decoration}"))
    )
    .replace(
        &format!("{decoration}{newline}"),
        &format!("{}{newline}", decoration.trim_end()),
    );
    out.push_str(&body);
    for _ in 0..postfix_count {
        out.push_str(&newline);
        out.push_str(&postfix);
    }
    if !end.is_empty() {
        out.push_str(&format!("{newline}{end}"));
    }
    Ok(out)
}

fn from_json(value: &Value) -> Result<Value, Error> {
    let data: Data = serde_json::from_str(&text(value)?)
        .map_err(|e| invalid(format!("from_json: not JSON: {e}")))?;
    Ok(to_jinja(&data))
}

fn from_yaml(value: &Value) -> Result<Value, Error> {
    if value.kind() != ValueKind::String {
        return Ok(value.clone());
    }
    // YAML 1.1, as Ansible (PyYAML) reads it.
    let data: Data = toyc_engine::yaml11::from_str(&text(value)?)
        .map_err(|e| invalid(format!("from_yaml: not YAML: {e}")))?;
    Ok(to_jinja(&data))
}

/// `extract(container, morekeys=None)`.
fn extract(item: &Value, container: &Value, morekeys: Option<Value>) -> Result<Value, Error> {
    let mut keys = vec![item.clone()];
    match morekeys {
        None => {}
        Some(more) if more.kind() == ValueKind::Seq => keys.extend(more.try_iter()?),
        Some(more) => keys.push(more),
    }
    let mut value = container.clone();
    for key in keys {
        value = value.get_item(&key)?;
    }
    Ok(value)
}

/// `subelements(key, skip_missing=False)`: each item paired with each element of its list.
fn subelements(
    value: &Value,
    key: String,
    skip_missing: Option<bool>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let skip_missing = kwargs.get::<Option<bool>>("skip_missing")?.or(skip_missing);
    kwargs.assert_all_used()?;
    let elements = match value.kind() {
        ValueKind::Map => value
            .try_iter()?
            .map(|k| value.get_item(&k))
            .collect::<Result<Vec<_>, _>>()?,
        _ => items(value)?,
    };
    let mut out = Vec::new();
    for element in elements {
        let mut current = element.clone();
        let mut missing = false;
        for part in key.split('.') {
            let next = current.get_attr(part)?;
            if next.is_undefined() {
                if skip_missing.unwrap_or(false) {
                    missing = true;
                    break;
                }
                return Err(invalid(format!(
                    "subelements: could not find '{part}' key in iterated item"
                )));
            }
            current = next;
        }
        if missing {
            continue;
        }
        if current.kind() != ValueKind::Seq {
            return Err(invalid(format!(
                "subelements: the key '{key}' should point to a list"
            )));
        }
        for sub in current.try_iter()? {
            out.push(Value::from(vec![element.clone(), sub]));
        }
    }
    Ok(Value::from(out))
}

/// `strftime(format, second=None, utc=False)`: the given epoch second, or now, in local
/// time (or UTC).
fn strftime(
    value: &Value,
    second: Option<Value>,
    utc: Option<bool>,
    kwargs: Kwargs,
) -> Result<String, Error> {
    let second = kwargs.get::<Option<Value>>("second")?.or(second);
    let utc = kwargs.get::<Option<bool>>("utc")?.or(utc);
    kwargs.assert_all_used()?;
    use chrono::TimeZone;
    let format = text(value)?;
    let seconds = match second {
        Some(s) => f64::try_from(s.clone()).or_else(|_| {
            text(&s)?
                .trim()
                .parse::<f64>()
                .map_err(|_| invalid("strftime: `second` must be a number"))
        })?,
        None => chrono::Utc::now().timestamp_millis() as f64 / 1000.0,
    };
    let whole = seconds.floor() as i64;
    let nanos = ((seconds - seconds.floor()) * 1e9) as u32;
    let written = if utc.unwrap_or(false) {
        chrono::Utc
            .timestamp_opt(whole, nanos)
            .single()
            .map(|t| t.format(&format).to_string())
    } else {
        chrono::Local
            .timestamp_opt(whole, nanos)
            .single()
            .map(|t| t.format(&format).to_string())
    };
    written.ok_or_else(|| invalid(format!("strftime: {seconds} is out of range")))
}

fn unique(values: Vec<Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for v in values {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

fn union(a: &Value, b: &Value) -> Result<Value, Error> {
    let mut all = items(a)?;
    all.extend(items(b)?);
    Ok(Value::from(unique(all)))
}

fn intersect(a: &Value, b: &Value) -> Result<Value, Error> {
    let b = items(b)?;
    Ok(Value::from(unique(
        items(a)?.into_iter().filter(|x| b.contains(x)).collect(),
    )))
}

fn difference(a: &Value, b: &Value) -> Result<Value, Error> {
    let b = items(b)?;
    Ok(Value::from(unique(
        items(a)?.into_iter().filter(|x| !b.contains(x)).collect(),
    )))
}

fn symmetric_difference(a: &Value, b: &Value) -> Result<Value, Error> {
    let both: Vec<Value> = items(&intersect(a, b)?)?;
    let all = items(&union(a, b)?)?;
    Ok(Value::from(
        all.into_iter()
            .filter(|x| !both.contains(x))
            .collect::<Vec<_>>(),
    ))
}

/// `zip(*others)`: Python's `zip`; the tuples are lists.
fn zip(value: &Value, others: Rest<Value>) -> Result<Value, Error> {
    let mut lists = vec![items(value)?];
    for other in others.iter() {
        lists.push(items(other)?);
    }
    let len = lists.iter().map(Vec::len).min().unwrap_or(0);
    Ok(Value::from(
        (0..len)
            .map(|i| Value::from(lists.iter().map(|l| l[i].clone()).collect::<Vec<_>>()))
            .collect::<Vec<_>>(),
    ))
}

/// `zip_longest(*others, fillvalue=None)`.
fn zip_longest(value: &Value, others: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let fill = kwargs
        .get::<Option<Value>>("fillvalue")?
        .unwrap_or(Value::from(()));
    kwargs.assert_all_used()?;
    let mut lists = vec![items(value)?];
    for other in others.iter() {
        lists.push(items(other)?);
    }
    let len = lists.iter().map(Vec::len).max().unwrap_or(0);
    Ok(Value::from(
        (0..len)
            .map(|i| {
                Value::from(
                    lists
                        .iter()
                        .map(|l| l.get(i).cloned().unwrap_or_else(|| fill.clone()))
                        .collect::<Vec<_>>(),
                )
            })
            .collect::<Vec<_>>(),
    ))
}

/// `product(*others, repeat=1)`: `itertools.product`.
fn product(value: &Value, others: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let repeat = kwargs.get::<Option<usize>>("repeat")?.unwrap_or(1);
    kwargs.assert_all_used()?;
    let mut pools = vec![items(value)?];
    for other in others.iter() {
        pools.push(items(other)?);
    }
    let pools: Vec<Vec<Value>> = (0..repeat).flat_map(|_| pools.clone()).collect();
    let mut result: Vec<Vec<Value>> = vec![Vec::new()];
    for pool in &pools {
        result = result
            .into_iter()
            .flat_map(|prefix| {
                pool.iter().map(move |x| {
                    let mut next = prefix.clone();
                    next.push(x.clone());
                    next
                })
            })
            .collect();
    }
    Ok(Value::from(
        result.into_iter().map(Value::from).collect::<Vec<_>>(),
    ))
}

/// `permutations(r=None)`: `itertools.permutations`, in its order.
fn permutations(value: &Value, r: Option<usize>, kwargs: Kwargs) -> Result<Value, Error> {
    let r = kwargs.get::<Option<usize>>("r")?.or(r);
    kwargs.assert_all_used()?;
    let pool = items(value)?;
    let n = pool.len();
    let r = r.unwrap_or(n);
    let mut out = Vec::new();
    if r <= n {
        fn walk(pool: &[Value], r: usize, used: &mut Vec<usize>, out: &mut Vec<Value>) {
            if used.len() == r {
                out.push(Value::from(
                    used.iter().map(|&i| pool[i].clone()).collect::<Vec<_>>(),
                ));
                return;
            }
            for i in 0..pool.len() {
                if !used.contains(&i) {
                    used.push(i);
                    walk(pool, r, used, out);
                    used.pop();
                }
            }
        }
        walk(&pool, r, &mut Vec::new(), &mut out);
    }
    Ok(Value::from(out))
}

/// `combinations(r)`: `itertools.combinations`, in its order.
fn combinations(value: &Value, r: Option<usize>, kwargs: Kwargs) -> Result<Value, Error> {
    let r = kwargs
        .get::<Option<usize>>("r")?
        .or(r)
        .ok_or_else(|| invalid("combinations: `r` is required"))?;
    kwargs.assert_all_used()?;
    let pool = items(value)?;
    fn walk(pool: &[Value], r: usize, start: usize, chosen: &mut Vec<Value>, out: &mut Vec<Value>) {
        if chosen.len() == r {
            out.push(Value::from(chosen.clone()));
            return;
        }
        for i in start..pool.len() {
            chosen.push(pool[i].clone());
            walk(pool, r, i + 1, chosen, out);
            chosen.pop();
        }
    }
    let mut out = Vec::new();
    walk(&pool, r, 0, &mut Vec::new(), &mut out);
    Ok(Value::from(out))
}

fn seed_of(seed: &Value) -> Result<PyRandom, Error> {
    Ok(match seed.as_i64() {
        Some(i) if seed.is_integer() => PyRandom::new(Seed::Int(i)),
        _ => PyRandom::new(Seed::Text(&text(seed)?)),
    })
}

fn unseeded() -> PyRandom {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    PyRandom::new(Seed::Int(nanos ^ i64::from(std::process::id())))
}

/// `random(start=None, step=None, seed=None)`: a number below `value`, or an item of it;
/// with `seed`, the one Python's `Random(seed)` draws, as Ansible does.
fn random(
    value: &Value,
    start: Option<i64>,
    step: Option<i64>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let start = kwargs.get::<Option<i64>>("start")?.or(start);
    let step = kwargs.get::<Option<i64>>("step")?.or(step);
    let seed = kwargs
        .get::<Option<Value>>("seed")?
        .filter(|s| !s.is_none());
    kwargs.assert_all_used()?;
    let mut rng = match &seed {
        Some(seed) => seed_of(seed)?,
        None => unseeded(),
    };
    if value.is_integer() {
        let end = value.as_i64().unwrap_or(0);
        let start = start.filter(|&s| s != 0).unwrap_or(0);
        let step = step.filter(|&s| s != 0).unwrap_or(1);
        return rng
            .randrange(start, end, step)
            .map(Value::from)
            .ok_or_else(|| {
                invalid(format!(
                    "random: empty range for randrange({start}, {end}, {step})"
                ))
            });
    }
    let pool = items(value)?;
    if pool.is_empty() {
        return Err(invalid("random: cannot choose from an empty sequence"));
    }
    let i = rng.below(pool.len() as u64) as usize;
    Ok(pool[i].clone())
}

/// `shuffle(seed=None)`.
fn shuffle(value: &Value, kwargs: Kwargs) -> Result<Value, Error> {
    let seed = kwargs.get::<Option<Value>>("seed")?.filter(|s| s.is_true());
    kwargs.assert_all_used()?;
    let mut pool = items(value)?;
    let mut rng = match &seed {
        Some(seed) => seed_of(seed)?,
        None => unseeded(),
    };
    rng.shuffle(&mut pool);
    Ok(Value::from(pool))
}

fn number(value: &Value) -> Result<f64, Error> {
    defined(value)?;
    f64::try_from(value.clone())
}

fn log(value: &Value, base: Option<f64>) -> Result<f64, Error> {
    let x = number(value)?;
    Ok(match base {
        None => x.ln(),
        Some(10.0) => x.log10(),
        Some(b) => x.ln() / b.ln(),
    })
}

fn pow(value: &Value, exp: f64) -> Result<f64, Error> {
    Ok(number(value)?.powf(exp))
}

fn root(value: &Value, base: Option<f64>) -> Result<f64, Error> {
    let x = number(value)?;
    Ok(match base.unwrap_or(2.0) {
        2.0 => x.sqrt(),
        b => x.powf(1.0 / b),
    })
}

fn forceescape(value: &Value) -> Result<String, Error> {
    super::html::escape(value)
}

/// `truncate(length=255, killwords=False, end='...', leeway=5)`: Jinja2's `do_truncate`.
fn truncate(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<String, Error> {
    // Positional (length, killwords, end, leeway): more than a filter's typed arity.
    let arg = |i: usize, name: &str| -> Result<Option<Value>, Error> {
        Ok(kwargs
            .get::<Option<Value>>(name)?
            .or_else(|| args.get(i).cloned()))
    };
    let length = match arg(0, "length")? {
        Some(v) => v
            .as_usize()
            .ok_or_else(|| invalid("truncate: length must be a number"))?,
        None => 255,
    };
    let killwords = arg(1, "killwords")?.is_some_and(|v| v.is_true());
    let end = match arg(2, "end")? {
        Some(v) => text(&v)?,
        None => "...".to_owned(),
    };
    let leeway = match arg(3, "leeway")? {
        Some(v) => v
            .as_usize()
            .ok_or_else(|| invalid("truncate: leeway must be a number"))?,
        None => 5,
    };
    kwargs.assert_all_used()?;
    let s = text(value)?;
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= length + leeway {
        return Ok(s);
    }
    let head: String = chars[..length.saturating_sub(end.chars().count())]
        .iter()
        .collect();
    if killwords {
        return Ok(format!("{head}{end}"));
    }
    let kept = match head.rsplit_once(' ') {
        Some((before, _)) => before.to_owned(),
        None => head,
    };
    Ok(format!("{kept}{end}"))
}

/// `striptags`: Jinja2's `Markup.striptags`: tags and comments out, entities decoded,
/// whitespace collapsed.
fn striptags(value: &Value) -> Result<String, Error> {
    let s = text(value)?;
    let comments = regex::Regex::new(r"(?s)<!--.*?-->").map_err(|e| invalid(e.to_string()))?;
    let tags = regex::Regex::new(r"(?s)<.*?>").map_err(|e| invalid(e.to_string()))?;
    let s = comments.replace_all(&s, "");
    let s = tags.replace_all(&s, "");
    let s = s
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    Ok(s.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// `filesizeformat(binary=False)`: Jinja2's `do_filesizeformat`.
fn filesizeformat(value: &Value, binary: Option<bool>) -> Result<String, Error> {
    let bytes = number(value)?;
    let binary = binary.unwrap_or(false);
    let base: f64 = if binary { 1024.0 } else { 1000.0 };
    let prefixes = if binary {
        ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"]
    } else {
        ["kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
    };
    if bytes == 1.0 {
        return Ok("1 Byte".to_owned());
    }
    if bytes < base {
        return Ok(format!("{} Bytes", bytes.trunc() as i64));
    }
    let mut unit = base;
    for (i, prefix) in prefixes.iter().enumerate() {
        unit = base.powi(i as i32 + 2);
        if bytes < unit {
            return Ok(format!("{:.1} {prefix}", base * bytes / unit));
        }
    }
    Ok(format!("{:.1} {}", base * bytes / unit, prefixes[7]))
}

/// `dictsort(case_sensitive=False, by='key', reverse=False)`: Jinja2's `do_dictsort`,
/// its arguments also by position.
fn dictsort(
    value: &Value,
    case_sensitive: Option<bool>,
    by: Option<String>,
    reverse: Option<bool>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let case_sensitive = kwargs
        .get::<Option<bool>>("case_sensitive")?
        .or(case_sensitive)
        .unwrap_or(false);
    let by = kwargs.get::<Option<String>>("by")?.or(by);
    let reverse = kwargs
        .get::<Option<bool>>("reverse")?
        .or(reverse)
        .unwrap_or(false);
    kwargs.assert_all_used()?;
    let position = match by.as_deref() {
        None | Some("key") => 0,
        Some("value") => 1,
        Some(other) => {
            return Err(invalid(format!(
                "dictsort: you can only sort by either \"key\" or \"value\", not `{other}`"
            )))
        }
    };
    if value.kind() != ValueKind::Map {
        return Err(invalid("dictsort: the value must be a dictionary"));
    }
    let mut pairs = Vec::new();
    for key in value.try_iter()? {
        let item = value.get_item(&key)?;
        pairs.push((key, item));
    }
    let sort_key = |pair: &(Value, Value)| {
        let v = if position == 0 { &pair.0 } else { &pair.1 };
        match v.as_str() {
            Some(s) if !case_sensitive => Value::from(s.to_lowercase()),
            _ => v.clone(),
        }
    };
    pairs.sort_by_key(sort_key);
    if reverse {
        pairs.reverse();
    }
    Ok(Value::from(
        pairs
            .into_iter()
            .map(|(k, v)| Value::from(vec![k, v]))
            .collect::<Vec<_>>(),
    ))
}

/// Jinja2's `url_quote`: UTF-8, `%XX` for all but letters, digits, `_.-~` (and `/`
/// unless for a query string, where spaces are `+`).
fn url_quote(text: &str, for_qs: bool) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                out.push(char::from(b))
            }
            b'/' if !for_qs => out.push('/'),
            b' ' if for_qs => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `urlencode`: Jinja2's `do_urlencode`, a string quoted, a dict or pairs as a query.
fn urlencode(value: &Value) -> Result<String, Error> {
    defined(value)?;
    let pairs: Vec<(Value, Value)> = match value.kind() {
        ValueKind::String => return Ok(url_quote(value.as_str().unwrap_or_default(), false)),
        ValueKind::Map => value
            .try_iter()?
            .map(|k| Ok((k.clone(), value.get_item(&k)?)))
            .collect::<Result<_, Error>>()?,
        ValueKind::Seq => value
            .try_iter()?
            .map(|pair| {
                Ok((
                    pair.get_item(&Value::from(0))?,
                    pair.get_item(&Value::from(1))?,
                ))
            })
            .collect::<Result<_, Error>>()?,
        _ => return Ok(url_quote(&text(value)?, false)),
    };
    Ok(pairs
        .iter()
        .map(|(k, v)| {
            Ok(format!(
                "{}={}",
                url_quote(&text(k)?, true),
                url_quote(&text(v)?, true)
            ))
        })
        .collect::<Result<Vec<_>, Error>>()?
        .join("&"))
}

fn wordcount(value: &Value) -> Result<usize, Error> {
    let s = text(value)?;
    Ok(s.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .count())
}

fn regex_test(value: &Value, pattern: &str, kwargs: &Kwargs) -> Result<bool, Error> {
    let ignorecase = kwargs.get::<Option<bool>>("ignorecase")?.unwrap_or(false);
    let multiline = kwargs.get::<Option<bool>>("multiline")?.unwrap_or(false);
    kwargs.assert_all_used()?;
    Ok(regex(pattern, ignorecase, multiline)?.is_match(&text(value)?))
}

/// `match`: `re.match`, anchored at the start of the text (not of a line).
fn test_match(value: &Value, pattern: String, kwargs: Kwargs) -> Result<bool, Error> {
    regex_test(value, &format!(r"\A(?:{pattern})"), &kwargs)
}

/// `search`: `re.search`.
fn test_search(value: &Value, pattern: String, kwargs: Kwargs) -> Result<bool, Error> {
    regex_test(value, &pattern, &kwargs)
}

/// `regex(pattern, match_type='search')`.
fn test_regex(value: &Value, pattern: String, kwargs: Kwargs) -> Result<bool, Error> {
    match kwargs.get::<Option<String>>("match_type")?.as_deref() {
        Some("match") => test_match(value, pattern, kwargs),
        _ => test_search(value, pattern, kwargs),
    }
}

/// One part of a `LooseVersion`: numbers compare as numbers, and before words.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Part {
    Number(u64),
    Word(String),
}

fn loose(version: &str) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let flush = |current: &mut String, parts: &mut Vec<Part>| {
        if !current.is_empty() {
            let part = match current.parse() {
                Ok(n) => Part::Number(n),
                Err(_) => Part::Word(current.clone()),
            };
            parts.push(part);
            current.clear();
        }
    };
    for c in version.chars() {
        if c == '.' {
            flush(&mut current, &mut parts);
        } else if c.is_ascii_digit() != current.chars().all(|d| d.is_ascii_digit())
            && !current.is_empty()
        {
            flush(&mut current, &mut parts);
            current.push(c);
        } else {
            current.push(c);
        }
    }
    flush(&mut current, &mut parts);
    parts
}

/// `version(version, operator='eq', strict=False, version_type=None)`, loose versions
/// (`LooseVersion`), the default.
fn test_version(
    value: &Value,
    other: Value,
    operator: Option<String>,
    kwargs: Kwargs,
) -> Result<bool, Error> {
    let operator = kwargs.get::<Option<String>>("operator")?.or(operator);
    let _ = kwargs.get::<Option<bool>>("strict")?;
    let kind = kwargs.get::<Option<String>>("version_type")?;
    kwargs.assert_all_used()?;
    if let Some(kind) = kind.filter(|k| k != "loose") {
        return Err(invalid(format!(
            "version: version_type `{kind}` is not supported by toyc (only loose)"
        )));
    }
    let a = loose(&text(value)?);
    let b = loose(&text(&other)?);
    let ordering = a.cmp(&b);
    use std::cmp::Ordering::*;
    Ok(match operator.as_deref().unwrap_or("eq") {
        "==" | "=" | "eq" => ordering == Equal,
        "!=" | "<>" | "ne" => ordering != Equal,
        "<" | "lt" => ordering == Less,
        "<=" | "le" => ordering != Greater,
        ">" | "gt" => ordering == Greater,
        ">=" | "ge" => ordering != Less,
        other => {
            return Err(invalid(format!(
                "version: invalid operator `{other}` (==, !=, <, <=, >, >=, eq, ne, lt, le, gt, ge)"
            )))
        }
    })
}

fn test_subset(a: &Value, b: &Value) -> Result<bool, Error> {
    let b = items(b)?;
    Ok(items(a)?.iter().all(|x| b.contains(x)))
}

fn test_superset(a: &Value, b: &Value) -> Result<bool, Error> {
    test_subset(b, a)
}

fn test_contains(seq: &Value, item: &Value) -> Result<bool, Error> {
    defined(seq)?;
    Ok(match seq.kind() {
        ValueKind::String => seq
            .as_str()
            .is_some_and(|s| item.as_str().is_some_and(|i| s.contains(i))),
        _ => items(seq)?.contains(item),
    })
}

fn test_any(value: &Value) -> Result<bool, Error> {
    Ok(items(value)?.iter().any(Value::is_true))
}

fn test_all(value: &Value) -> Result<bool, Error> {
    Ok(items(value)?.iter().all(Value::is_true))
}

fn truthy(value: &Value, convert_bool: bool) -> Result<bool, Error> {
    defined(value)?;
    if convert_bool
        && matches!(
            value.kind(),
            ValueKind::String | ValueKind::Number | ValueKind::Bool
        )
    {
        let word = pyfmt_text(value)?.to_lowercase();
        if matches!(word.as_str(), "yes" | "on" | "1" | "true") {
            return Ok(true);
        }
        if matches!(word.as_str(), "no" | "off" | "0" | "false") {
            return Ok(false);
        }
    }
    Ok(value.is_true())
}

fn pyfmt_text(value: &Value) -> Result<String, Error> {
    Ok(match value.kind() {
        ValueKind::String => value.as_str().unwrap_or_default().to_owned(),
        _ => pyfmt::repr(&to_data(value)?),
    })
}

fn test_truthy(value: &Value, kwargs: Kwargs) -> Result<bool, Error> {
    let convert = kwargs.get::<Option<bool>>("convert_bool")?.unwrap_or(false);
    kwargs.assert_all_used()?;
    truthy(value, convert)
}

fn test_falsy(value: &Value, kwargs: Kwargs) -> Result<bool, Error> {
    let convert = kwargs.get::<Option<bool>>("convert_bool")?.unwrap_or(false);
    kwargs.assert_all_used()?;
    Ok(!truthy(value, convert)?)
}
