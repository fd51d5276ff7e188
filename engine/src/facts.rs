//! Facts: read-only questions to a host, asked all at once. Every operation of a host
//! declares the facts it needs; the engine sends them as **one** shell script, one round
//! trip per phase, and parses the answers into [`Facts`]. Planning then works on a
//! copy that each planned change updates ([`Facts::record`]), so an operation sees the
//! state the changes before it will leave, not the stale state before the run.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::transport::quote;

/// One question to a host.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "fact", content = "arg", rename_all = "snake_case")]
pub enum FactQuery {
    /// What is at a path (not following a final symlink): [`PathFact`].
    Path(String),
    /// The whole content of a regular file (for line edits and diffs): [`Fact::Content`].
    Content(String),
    /// The exit status of a read-only command (`unless` / `onlyif` guards).
    Status(String),
}

/// What is at a path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PathFact {
    /// Nothing.
    Absent,
    /// A regular file.
    File {
        /// Permission bits in octal, e.g. `644`.
        mode: String,
        /// Owner's user name.
        owner: String,
        /// Group name.
        group: String,
        /// Size in bytes.
        size: u64,
        /// SHA-256 of the content, hex.
        sha256: String,
    },
    /// A directory.
    Directory {
        /// Permission bits in octal.
        mode: String,
        /// Owner's user name.
        owner: String,
        /// Group name.
        group: String,
    },
    /// A symbolic link.
    Link {
        /// Where it points (`readlink`).
        target: String,
    },
    /// Anything else (socket, device, fifo).
    Other,
}

/// The answer to one [`FactQuery`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fact {
    /// Answer to [`FactQuery::Path`].
    Path(PathFact),
    /// Answer to [`FactQuery::Content`]: `None` when there is no regular file.
    Content(Option<Vec<u8>>),
    /// Answer to [`FactQuery::Status`].
    Status(i32),
}

/// The answers of one host for one phase, by question.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    answers: BTreeMap<FactQuery, Fact>,
}

/// Marks the start of one answer in the batch output, followed by the batch's nonce and
/// the answer's index: a file name or link target that contains the marker text cannot
/// guess the nonce.
const MARKER: &str = "@@toyc-fact ";

/// The questions of one host for one phase, sent as one script.
#[derive(Debug, Clone)]
pub struct FactBatch {
    queries: Vec<FactQuery>,
    nonce: String,
}

impl FactBatch {
    /// A batch of `queries` (duplicates are asked once).
    pub fn new(mut queries: Vec<FactQuery>) -> FactBatch {
        let mut seen = std::collections::BTreeSet::new();
        queries.retain(|q| seen.insert(q.clone()));
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        FactBatch {
            queries,
            nonce: format!("{:x}{:x}", nanos, std::process::id()),
        }
    }

    /// Whether there is nothing to ask (no round trip needed).
    pub fn is_empty(&self) -> bool {
        self.queries.is_empty()
    }

    /// Every query as one POSIX shell script whose output [`FactBatch::parse`] reads.
    pub fn script(&self) -> String {
        let mut script = String::new();
        let batched = self.batched_paths();
        for (index, query) in self.queries.iter().enumerate() {
            if matches!(query, FactQuery::Path(p) if batched.contains(&p.as_str())) {
                continue;
            }
            script.push_str(&format!("printf '\\n{MARKER}{} {index}\\n'\n", self.nonce));
            script.push_str(&command(query));
            script.push('\n');
        }
        if !batched.is_empty() {
            let index = self.queries.len();
            script.push_str(&format!("printf '\\n{MARKER}{} {index}\\n'\n", self.nonce));
            script.push_str(&paths_command(&batched));
            script.push('\n');
        }
        script
    }

    /// Path queries answered together by one `stat` and one `sha256sum` (a few processes
    /// per host instead of three per path: on small hosts, forks are the cost). Names
    /// with a tab, newline or backslash, which those tools print ambiguously, are asked
    /// one by one instead.
    fn batched_paths(&self) -> Vec<&str> {
        self.queries
            .iter()
            .filter_map(|q| match q {
                FactQuery::Path(p) if !p.contains(['\t', '\n', '\\']) => Some(p.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Parse the output of [`FactBatch::script`].
    pub fn parse(&self, output: &str) -> Result<Facts, String> {
        let prefix = format!("{MARKER}{} ", self.nonce);
        let mut sections: BTreeMap<usize, String> = BTreeMap::new();
        let mut current: Option<usize> = None;
        for line in output.split('\n') {
            if let Some(index) = line
                .strip_prefix(&prefix)
                .and_then(|n| n.trim().parse::<usize>().ok())
            {
                current = Some(index);
                sections.insert(index, String::new());
                continue;
            }
            if let Some(text) = current.and_then(|c| sections.get_mut(&c)) {
                text.push_str(line);
                text.push('\n');
            }
        }
        let mut facts = Facts::default();
        let batched = self.batched_paths();
        if !batched.is_empty() {
            let text = sections
                .get(&self.queries.len())
                .ok_or_else(|| "the host gave no answer for the path facts".to_owned())?;
            for (path, fact) in parse_paths(&batched, text)? {
                facts
                    .answers
                    .insert(FactQuery::Path(path.to_owned()), Fact::Path(fact));
            }
        }
        for (index, query) in self.queries.iter().enumerate() {
            if matches!(query, FactQuery::Path(p) if batched.contains(&p.as_str())) {
                continue;
            }
            let text = sections
                .get(&index)
                .ok_or_else(|| format!("the host gave no answer for fact {index} ({query:?})"))?;
            let text = text.strip_suffix('\n').unwrap_or(text);
            let fact = parse_one(query, text).map_err(|e| format!("fact {query:?}: {e}"))?;
            facts.answers.insert(query.clone(), fact);
        }
        Ok(facts)
    }
}

impl Facts {
    /// The answer to `query`, if it was asked.
    pub fn get(&self, query: &FactQuery) -> Option<&Fact> {
        self.answers.get(query)
    }

    /// What is at `path`, if asked.
    pub fn path(&self, path: &str) -> Option<&PathFact> {
        match self.answers.get(&FactQuery::Path(path.to_owned())) {
            Some(Fact::Path(p)) => Some(p),
            _ => None,
        }
    }

    /// The content of the file at `path`, if asked (`Some(None)`: no regular file).
    pub fn content(&self, path: &str) -> Option<Option<&[u8]>> {
        match self.answers.get(&FactQuery::Content(path.to_owned())) {
            Some(Fact::Content(c)) => Some(c.as_deref()),
            _ => None,
        }
    }

    /// The exit status of a guard command, if asked.
    pub fn status(&self, command: &str) -> Option<i32> {
        match self.answers.get(&FactQuery::Status(command.to_owned())) {
            Some(Fact::Status(s)) => Some(*s),
            _ => None,
        }
    }

    /// Record the state a planned change will leave, so later operations plan against it.
    pub fn record(&mut self, query: FactQuery, fact: Fact) {
        self.answers.insert(query, fact);
    }
}

/// The shell commands answering one query. Each prints one short line (or base64 text),
/// never fails the script, and reads nothing but the host's state.
fn command(query: &FactQuery) -> String {
    match query {
        FactQuery::Path(path) => {
            let p = quote(path);
            format!(
                "if [ -L {p} ]; then printf 'link %s\\n' \"$(readlink {p})\"; \
                 elif [ -f {p} ]; then stat -c 'file %a %U %G %s' {p} && sha256sum < {p} | cut -d' ' -f1; \
                 elif [ -d {p} ]; then stat -c 'directory %a %U %G' {p}; \
                 elif [ -e {p} ]; then echo other; else echo absent; fi"
            )
        }
        FactQuery::Content(path) => {
            let p = quote(path);
            format!("if [ -f {p} ] && [ ! -L {p} ]; then echo present; base64 < {p}; else echo absent; fi")
        }
        FactQuery::Status(command) => format!("( {command} ) </dev/null >/dev/null 2>&1; echo $?"),
    }
}

/// One `stat` for every path, one `sha256sum` for the regular files (listed by the
/// shell itself, not by a pipe to `xargs`), `readlink` only for symlinks. Missing paths simply produce no `stat` line.
fn paths_command(paths: &[&str]) -> String {
    let list: Vec<String> = paths.iter().map(|p| quote(p)).collect();
    let list = list.join(" ");
    format!(
        "stat -c '%F\t%a\t%U\t%G\t%s\t%n' -- {list} 2>/dev/null; echo '--sha256'; \
         set --; for p in {list}; do [ -f \"$p\" ] && [ ! -L \"$p\" ] && set -- \"$@\" \"$p\"; done; [ $# -eq 0 ] || sha256sum -- \"$@\"; \
         echo '--links'; for p in {list}; do [ -L \"$p\" ] && printf '%s\\t%s\\n' \"$p\" \"$(readlink -- \"$p\")\"; done; true"
    )
}

/// Read [`paths_command`]'s answer into a fact per path (absent when not listed).
fn parse_paths<'p>(paths: &[&'p str], text: &str) -> Result<Vec<(&'p str, PathFact)>, String> {
    let (stats, rest) = text.split_once("--sha256\n").unwrap_or((text, ""));
    let (hashes, links) = rest.split_once("--links\n").unwrap_or((rest, ""));
    let mut found: std::collections::HashMap<&str, PathFact> = std::collections::HashMap::new();
    for line in stats.lines().filter(|l| !l.is_empty()) {
        let fields: Vec<&str> = line.splitn(6, '\t').collect();
        let [kind, mode, owner, group, size, name] = fields.as_slice() else {
            return Err(format!("unexpected stat line {line:?}"));
        };
        let (mode, owner, group) = ((*mode).to_owned(), (*owner).to_owned(), (*group).to_owned());
        let fact = match *kind {
            "regular file" | "regular empty file" => PathFact::File {
                mode,
                owner,
                group,
                size: size.parse().map_err(|_| format!("bad size in {line:?}"))?,
                sha256: String::new(),
            },
            "directory" => PathFact::Directory { mode, owner, group },
            "symbolic link" => PathFact::Link {
                target: String::new(),
            },
            _ => PathFact::Other,
        };
        found.insert(name, fact);
    }
    for line in hashes.lines().filter(|l| !l.is_empty()) {
        let (hash, name) = line
            .split_once("  ")
            .ok_or_else(|| format!("unexpected sha256sum line {line:?}"))?;
        if let Some(PathFact::File { sha256, .. }) = found.get_mut(name) {
            *sha256 = hash.to_owned();
        }
    }
    for line in links.lines().filter(|l| !l.is_empty()) {
        if let Some((name, target)) = line.split_once('\t') {
            found.insert(
                name,
                PathFact::Link {
                    target: target.to_owned(),
                },
            );
        }
    }
    Ok(paths
        .iter()
        .map(|p| (*p, found.remove(p).unwrap_or(PathFact::Absent)))
        .collect())
}

fn parse_one(query: &FactQuery, text: &str) -> Result<Fact, String> {
    match query {
        FactQuery::Path(_) => parse_path(text).map(Fact::Path),
        FactQuery::Content(_) => {
            let mut lines = text.lines();
            match lines.next() {
                Some("absent") => Ok(Fact::Content(None)),
                Some("present") => {
                    let encoded: String = lines.collect();
                    decode_base64(&encoded).map(|bytes| Fact::Content(Some(bytes)))
                }
                other => Err(format!("unexpected answer {other:?}")),
            }
        }
        FactQuery::Status(_) => text
            .trim()
            .parse()
            .map(Fact::Status)
            .map_err(|_| format!("not an exit status: {text:?}")),
    }
}

fn parse_path(text: &str) -> Result<PathFact, String> {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default();
    let words: Vec<&str> = first.split(' ').collect();
    match words.as_slice() {
        ["absent"] => Ok(PathFact::Absent),
        ["other"] => Ok(PathFact::Other),
        ["link", ..] => Ok(PathFact::Link {
            target: first["link ".len()..].to_owned(),
        }),
        ["directory", mode, owner, group] => Ok(PathFact::Directory {
            mode: (*mode).to_owned(),
            owner: (*owner).to_owned(),
            group: (*group).to_owned(),
        }),
        ["file", mode, owner, group, size] => Ok(PathFact::File {
            mode: (*mode).to_owned(),
            owner: (*owner).to_owned(),
            group: (*group).to_owned(),
            size: size.parse().map_err(|_| format!("bad size {size:?}"))?,
            sha256: lines.next().unwrap_or_default().trim().to_owned(),
        }),
        _ => Err(format!("unexpected answer {first:?}")),
    }
}

/// Standard base64 as coreutils `base64` prints it (wrapped at 76 columns).
fn decode_base64(text: &str) -> Result<Vec<u8>, String> {
    use base64::Engine;
    let joined: String = text.split_ascii_whitespace().collect();
    base64::engine::general_purpose::STANDARD
        .decode(joined)
        .map_err(|e| format!("invalid base64: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::{ExecRequest, LocalTransport, Transport};

    fn ask(queries: &[FactQuery]) -> Facts {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let batch = FactBatch::new(queries.to_vec());
        let output = runtime
            .block_on(
                LocalTransport::new("localhost").exec(&ExecRequest::new(batch.script()), None),
            )
            .expect("one round trip");
        batch.parse(&output.stdout_text()).expect("parses")
    }

    #[test]
    fn every_kind_of_path_is_answered_in_one_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        std::fs::write(d.join("f"), "hello\n").expect("write");
        std::fs::create_dir(d.join("sub")).expect("mkdir");
        std::os::unix::fs::symlink("f", d.join("l")).expect("symlink");
        let p = |name: &str| d.join(name).to_string_lossy().into_owned();
        let queries = vec![
            FactQuery::Path(p("f")),
            FactQuery::Path(p("sub")),
            FactQuery::Path(p("l")),
            FactQuery::Path(p("missing")),
            FactQuery::Content(p("f")),
            FactQuery::Content(p("missing")),
            FactQuery::Status("test -d /".into()),
            FactQuery::Status("false".into()),
            FactQuery::Path(p("name with ' quote")),
        ];
        let facts = ask(&queries);
        match facts.path(&p("f")) {
            Some(PathFact::File { size, sha256, .. }) => {
                assert_eq!(*size, 6);
                assert_eq!(
                    sha256,
                    "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            facts.path(&p("sub")),
            Some(PathFact::Directory { .. })
        ));
        assert_eq!(
            facts.path(&p("l")),
            Some(&PathFact::Link { target: "f".into() })
        );
        assert_eq!(facts.path(&p("missing")), Some(&PathFact::Absent));
        assert_eq!(facts.content(&p("f")), Some(Some(&b"hello\n"[..])));
        assert_eq!(facts.content(&p("missing")), Some(None));
        assert_eq!(facts.status("test -d /"), Some(0));
        assert_eq!(facts.status("false"), Some(1));
        assert_eq!(facts.path(&p("name with ' quote")), Some(&PathFact::Absent));
    }

    #[test]
    fn awkward_names_are_asked_one_by_one_and_still_answered() {
        let dir = tempfile::tempdir().expect("tempdir");
        let odd = dir.path().join("new\nline\tand\\slash");
        std::fs::write(&odd, "x").expect("write");
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "x").expect("write");
        let (odd, plain) = (
            odd.to_string_lossy().into_owned(),
            plain.to_string_lossy().into_owned(),
        );
        let facts = ask(&[FactQuery::Path(odd.clone()), FactQuery::Path(plain.clone())]);
        for path in [&odd, &plain] {
            match facts.path(path) {
                Some(PathFact::File {
                    size: 1, sha256, ..
                }) => {
                    assert_eq!(
                        sha256,
                        "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"
                    )
                }
                other => panic!("{path:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn binary_content_survives_the_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bin");
        let bytes: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        std::fs::write(&path, &bytes).expect("write");
        let path = path.to_string_lossy().into_owned();
        let facts = ask(&[FactQuery::Content(path.clone())]);
        assert_eq!(facts.content(&path), Some(Some(&bytes[..])));
    }

    #[test]
    fn a_link_target_that_mimics_a_marker_does_not_confuse_the_parse() {
        let dir = tempfile::tempdir().expect("tempdir");
        let link = dir.path().join("l");
        std::os::unix::fs::symlink("x\n@@toyc-fact 1\nabsent", &link).expect("symlink");
        let link = link.to_string_lossy().into_owned();
        let queries = vec![
            FactQuery::Path(link.clone()),
            FactQuery::Status("true".into()),
        ];
        let facts = ask(&queries);
        assert_eq!(facts.status("true"), Some(0));
        assert!(matches!(facts.path(&link), Some(PathFact::Link { .. })));
    }
}
