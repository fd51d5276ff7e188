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
    /// A user account (`getent passwd`, its groups from `id -Gn`): [`Fact::User`].
    User(String),
    /// A group (`getent group`): [`Fact::Group`].
    Group(String),
    /// Whether a Debian package is installed: [`Fact::Package`]. Every package of a batch
    /// is asked in one `dpkg-query`.
    Package(String),
}

/// A user account as the host's name service knows it. Values are `None` when not
/// known: a planned change that creates the user records only what it sets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserFact {
    /// Numeric user id.
    pub uid: Option<u32>,
    /// The primary group's name (its number when the group has no name).
    pub group: Option<String>,
    /// Supplementary groups, sorted, without the primary group.
    pub groups: Option<Vec<String>>,
    /// The GECOS field (`comment`).
    pub comment: Option<String>,
    /// Home directory.
    pub home: Option<String>,
    /// Login shell.
    pub shell: Option<String>,
}

/// A group as the host's name service knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupFact {
    /// Numeric group id; `None` when a planned change creates the group without one.
    pub gid: Option<u32>,
}

/// A Debian package on a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PackageFact {
    /// Installed (dpkg status `installed`, or only its triggers pending).
    Installed {
        /// The installed version, as dpkg prints it (`?` when a planned change installs it).
        version: String,
    },
    /// Not installed (unknown to dpkg, removed, or only half there).
    NotInstalled,
    /// The host has no `dpkg-query`: it is not of the Debian family.
    NoDpkg,
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
    /// Answer to [`FactQuery::User`]: `None` when there is no such user.
    User(Option<UserFact>),
    /// Answer to [`FactQuery::Group`]: `None` when there is no such group.
    Group(Option<GroupFact>),
    /// Answer to [`FactQuery::Package`].
    Package(PackageFact),
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
            if self.is_batched(query, &batched) {
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
        let packages = self.packages();
        if !packages.is_empty() {
            let index = self.queries.len() + 1;
            script.push_str(&format!("printf '\\n{MARKER}{} {index}\\n'\n", self.nonce));
            script.push_str(&packages_command(&packages));
            script.push('\n');
        }
        script
    }

    /// Package queries, all answered by one `dpkg-query` (its start-up reads the whole
    /// status database: once per host, not once per package).
    fn packages(&self) -> Vec<&str> {
        self.queries
            .iter()
            .filter_map(|q| match q {
                FactQuery::Package(name) => Some(name.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Whether `query` is answered in a shared section rather than its own.
    fn is_batched(&self, query: &FactQuery, paths: &[&str]) -> bool {
        match query {
            FactQuery::Path(p) => paths.contains(&p.as_str()),
            FactQuery::Package(_) => true,
            _ => false,
        }
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
        let packages = self.packages();
        if !packages.is_empty() {
            let text = sections
                .get(&(self.queries.len() + 1))
                .ok_or_else(|| "the host gave no answer for the package facts".to_owned())?;
            for (name, fact) in parse_packages(&packages, text)? {
                facts
                    .answers
                    .insert(FactQuery::Package(name.to_owned()), Fact::Package(fact));
            }
        }
        for (index, query) in self.queries.iter().enumerate() {
            if self.is_batched(query, &batched) {
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

    /// The user `name`, if asked (`Some(None)`: no such user).
    pub fn user(&self, name: &str) -> Option<Option<&UserFact>> {
        match self.answers.get(&FactQuery::User(name.to_owned())) {
            Some(Fact::User(u)) => Some(u.as_ref()),
            _ => None,
        }
    }

    /// The group `name`, if asked (`Some(None)`: no such group).
    pub fn group(&self, name: &str) -> Option<Option<&GroupFact>> {
        match self.answers.get(&FactQuery::Group(name.to_owned())) {
            Some(Fact::Group(g)) => Some(g.as_ref()),
            _ => None,
        }
    }

    /// The package `name`, if asked.
    pub fn package(&self, name: &str) -> Option<&PackageFact> {
        match self.answers.get(&FactQuery::Package(name.to_owned())) {
            Some(Fact::Package(p)) => Some(p),
            _ => None,
        }
    }

    /// Record the state a planned change will leave, so later operations plan against it.
    pub fn record(&mut self, query: FactQuery, fact: Fact) {
        self.answers.insert(query, fact);
    }

    /// Forget the answer to `query`: a planned change leaves a state toyc does not hold
    /// (a streamed file's content), so a later operation needing it cannot plan.
    pub fn forget(&mut self, query: &FactQuery) {
        self.answers.remove(query);
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
        // `id -Gn` lists the primary group first, then the supplementary ones.
        FactQuery::User(name) => {
            let n = quote(name);
            format!(
                "if getent passwd {n}; then id -Gn {n} 2>/dev/null || true; else echo absent; fi"
            )
        }
        FactQuery::Group(name) => format!("getent group {} || echo absent", quote(name)),
        FactQuery::Package(name) => packages_command(&[name]),
    }
}

/// One `dpkg-query` for every package; a name dpkg never heard of is simply not listed.
/// Without `dpkg-query` the answer says so, and every package's fact is
/// [`PackageFact::NoDpkg`].
fn packages_command(names: &[&str]) -> String {
    let list: Vec<String> = names.iter().map(|n| quote(n)).collect();
    let format = quote("${binary:Package}\t${Package}\t${db:Status-Abbrev}\t${Version}\n");
    format!(
        "if command -v dpkg-query >/dev/null 2>&1; then dpkg-query -W -f {format} {} 2>/dev/null; true; \
         else echo '--no-dpkg'; fi",
        list.join(" ")
    )
}

/// Read [`packages_command`]'s answer. A package is matched by its plain name or its
/// architecture-qualified one (`libc6:amd64`), and counts as installed when any
/// matching line says so.
fn parse_packages<'n>(
    names: &[&'n str],
    text: &str,
) -> Result<Vec<(&'n str, PackageFact)>, String> {
    if text.lines().any(|l| l == "--no-dpkg") {
        return Ok(names.iter().map(|n| (*n, PackageFact::NoDpkg)).collect());
    }
    let mut installed: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let fields: Vec<&str> = line.splitn(4, '\t').collect();
        let [qualified, plain, status, version] = fields.as_slice() else {
            return Err(format!("unexpected dpkg-query line {line:?}"));
        };
        // The second letter of `db:Status-Abbrev` is the state: `i` installed, `t`/`W`
        // installed with triggers pending; the rest (`n`, `c`, `U`, `H`, `F`) is not there.
        if matches!(status.as_bytes().get(1), Some(b'i' | b't' | b'W')) {
            installed.insert(qualified, version);
            installed.insert(plain, version);
        }
    }
    Ok(names
        .iter()
        .map(|n| {
            let fact = match installed.get(n) {
                Some(version) => PackageFact::Installed {
                    version: (*version).to_owned(),
                },
                None => PackageFact::NotInstalled,
            };
            (*n, fact)
        })
        .collect())
}

/// One `stat` for every path, one `sha256sum` for the regular files (listed by the
/// shell itself, not by a pipe to `xargs`), `readlink` only for symlinks. Missing paths
/// simply produce no `stat` line.
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
        FactQuery::User(_) => parse_user(text).map(Fact::User),
        FactQuery::Group(_) => parse_group(text).map(Fact::Group),
        FactQuery::Package(name) => {
            let mut parsed = parse_packages(&[name.as_str()], text)?;
            Ok(Fact::Package(
                parsed
                    .pop()
                    .map(|(_, f)| f)
                    .unwrap_or(PackageFact::NotInstalled),
            ))
        }
    }
}

/// `getent passwd` line (`name:x:uid:gid:gecos:home:shell`), then `id -Gn`'s.
fn parse_user(text: &str) -> Result<Option<UserFact>, String> {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default();
    if first == "absent" {
        return Ok(None);
    }
    let fields: Vec<&str> = first.split(':').collect();
    let [_, _, uid, gid, gecos, home, shell] = fields.as_slice() else {
        return Err(format!("unexpected passwd entry {first:?}"));
    };
    let uid = uid.parse().map_err(|_| format!("bad uid in {first:?}"))?;
    let mut names = lines.next().unwrap_or_default().split_whitespace();
    let group = names.next().unwrap_or(gid).to_owned();
    let mut groups: Vec<String> = names.filter(|g| *g != group).map(str::to_owned).collect();
    groups.sort();
    groups.dedup();
    Ok(Some(UserFact {
        uid: Some(uid),
        group: Some(group),
        groups: Some(groups),
        comment: Some((*gecos).to_owned()),
        home: Some((*home).to_owned()),
        shell: Some((*shell).to_owned()),
    }))
}

/// `getent group` line (`name:x:gid:members`).
fn parse_group(text: &str) -> Result<Option<GroupFact>, String> {
    let line = text.lines().next().unwrap_or_default();
    if line == "absent" {
        return Ok(None);
    }
    let gid = line
        .split(':')
        .nth(2)
        .and_then(|g| g.parse().ok())
        .ok_or_else(|| format!("unexpected group entry {line:?}"))?;
    Ok(Some(GroupFact { gid: Some(gid) }))
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
    fn users_and_groups_are_looked_up_by_name() {
        let facts = ask(&[
            FactQuery::User("root".into()),
            FactQuery::User("toyc-no-such-user".into()),
            FactQuery::Group("root".into()),
            FactQuery::Group("toyc-no-such-group".into()),
        ]);
        let root = facts.user("root").flatten().expect("root exists");
        assert_eq!(root.uid, Some(0));
        assert_eq!(root.group.as_deref(), Some("root"));
        assert_eq!(root.home.as_deref(), Some("/root"));
        assert!(!root
            .groups
            .as_ref()
            .expect("groups")
            .contains(&"root".to_owned()));
        assert_eq!(facts.user("toyc-no-such-user"), Some(None));
        assert_eq!(facts.group("root"), Some(Some(&GroupFact { gid: Some(0) })));
        assert_eq!(facts.group("toyc-no-such-group"), Some(None));
    }

    #[test]
    fn a_passwd_entry_and_its_groups_parse() {
        let user = parse_user("app:x:1500:1500:App User:/srv/app:/bin/bash\napp adm staff adm\n")
            .expect("parses")
            .expect("present");
        assert_eq!(user.uid, Some(1500));
        assert_eq!(user.group.as_deref(), Some("app"));
        assert_eq!(
            user.groups,
            Some(vec!["adm".to_owned(), "staff".to_owned()])
        );
        assert_eq!(user.comment.as_deref(), Some("App User"));
        assert_eq!(user.shell.as_deref(), Some("/bin/bash"));
        assert_eq!(parse_user("absent\n").expect("parses"), None);
        assert!(parse_user("garbage\n").is_err());
    }

    #[test]
    fn package_states_come_from_the_status_letters() {
        let text = "dpkg\tdpkg\tii \t1.21.22\n\
                    libc6:amd64\tlibc6\tii \t2.36-9\n\
                    gone\tgone\trc \t1.0\n\
                    pending\tpending\tit \t2.0\n";
        let facts = parse_packages(
            &["dpkg", "libc6", "libc6:amd64", "gone", "pending", "never"],
            text,
        )
        .expect("parses");
        let installed = |v: &str| PackageFact::Installed { version: v.into() };
        assert_eq!(
            facts.into_iter().map(|(_, f)| f).collect::<Vec<_>>(),
            [
                installed("1.21.22"),
                installed("2.36-9"),
                installed("2.36-9"),
                PackageFact::NotInstalled,
                installed("2.0"),
                PackageFact::NotInstalled,
            ]
        );
        assert_eq!(
            parse_packages(&["dpkg"], "--no-dpkg\n").expect("parses"),
            [("dpkg", PackageFact::NoDpkg)]
        );
    }

    #[test]
    fn all_packages_of_a_batch_share_one_dpkg_query() {
        let batch = FactBatch::new(vec![
            FactQuery::Package("dpkg".into()),
            FactQuery::Status("true".into()),
            FactQuery::Package("toyc-no-such-package".into()),
        ]);
        assert_eq!(batch.script().matches("dpkg-query -W").count(), 1);
        let facts = ask(&[
            FactQuery::Package("dpkg".into()),
            FactQuery::Status("true".into()),
            FactQuery::Package("toyc-no-such-package".into()),
        ]);
        let has_dpkg = std::process::Command::new("sh")
            .args(["-c", "command -v dpkg-query"])
            .output()
            .is_ok_and(|o| o.status.success());
        if has_dpkg {
            assert!(matches!(
                facts.package("dpkg"),
                Some(PackageFact::Installed { .. })
            ));
            assert_eq!(
                facts.package("toyc-no-such-package"),
                Some(&PackageFact::NotInstalled)
            );
        } else {
            assert_eq!(facts.package("dpkg"), Some(&PackageFact::NoDpkg));
        }
        assert_eq!(facts.status("true"), Some(0));
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
