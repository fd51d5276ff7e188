//! The config directory: one program per file. `*.json` in Huddle's format (accepted
//! unchanged, trailing commas and all) and `*.yml`/`*.yaml` in toyc's own, which is the
//! same document with more fields; a file whose name starts with `_` is skipped. A bad
//! file is reported at its file:line:col and skipped; the others run.
//!
//! ```yaml
//! repository: {remote path: https://git.example.com/app.git, local path: /srv/app,
//!              branch: main}        # also: remote (origin), executable (git)
//! timing: {minimum: 60, maximum: 600}              # seconds between polls
//! application:
//!   start: ./serve --port 8080      # through `sh -c`, in its own process group
//!   directory: /srv/app             # default: the local path
//!   env: {PORT: "8080"}
//!   user: www-data                  # only when the supervisor runs as root
//!   stop timeout: 10                # TERM, then KILL after this many seconds
//! verify: make test                 # in the staging checkout; non-zero: the commit is bad
//! health: {http: "http://127.0.0.1:8080/", timeout: 2, retries: 10, interval: 0.5}
//! restart: {initial: 0.25, maximum: 60, reset after: 30}
//! logs: {max bytes: 10000000, keep: 5}
//! ```
//!
//! Pull mode is a file with a `role` instead of a `repository` and `application`:
//! `role: {name: web, repo: https://git.example.com/web.git, branch: main}`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// A config file that could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}:{line}:{column}: {message}", file.display())]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong, and what to do.
    pub message: String,
}

/// One supervised program, from one file.
#[derive(Debug, Clone, PartialEq)]
pub struct Program {
    /// The file's name without its extension: names the program everywhere.
    pub name: String,
    /// The file it came from.
    pub file: PathBuf,
    /// A process from a repo, or a role applied to this machine.
    pub kind: Kind,
    /// The poll interval's bounds; each wait is uniformly random between them.
    pub timing: Timing,
    /// How restarts back off.
    pub restart: Restart,
    /// Log rotation.
    pub logs: Logs,
}

/// What a program is.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A process run from a git checkout.
    Process(Box<Process>),
    /// Pull mode: a role applied to this machine at each new commit.
    Role(RoleSpec),
}

/// The repo a program runs from.
#[derive(Debug, Clone, PartialEq)]
pub struct Repository {
    /// The remote's name in the checkout (`origin`).
    pub remote: String,
    /// Its URL or path.
    pub url: String,
    /// The checkout the program runs in.
    pub path: PathBuf,
    /// The branch followed.
    pub branch: String,
    /// The git executable.
    pub git: PathBuf,
}

/// A process program.
#[derive(Debug, Clone, PartialEq)]
pub struct Process {
    /// Its repo.
    pub repository: Repository,
    /// The command line, run by `sh -c`; `None`: the checkout is kept up to date and
    /// nothing runs.
    pub start: Option<String>,
    /// Its working directory (the checkout by default).
    pub directory: PathBuf,
    /// Its environment, over the supervisor's.
    pub env: BTreeMap<String, String>,
    /// The user it runs as.
    pub user: Option<String>,
    /// How long a stop waits after TERM before KILL.
    pub stop_timeout: Duration,
    /// The tests a new commit passes before it is deployed (`sh -c` in the staging
    /// checkout).
    pub verify: Option<String>,
    /// The check after a start that decides whether a deploy stays.
    pub health: Option<Health>,
}

/// A health check.
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    /// What is checked.
    pub check: Check,
    /// How long one try may take.
    pub timeout: Duration,
    /// Tries before it is failed.
    pub retries: u32,
    /// The wait between tries.
    pub interval: Duration,
}

/// What a health check asks.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// A command (`sh -c` in the checkout) exits 0.
    Command(String),
    /// `GET URL` answers 2xx or 3xx (plain `http://` only).
    Http(String),
    /// A TCP connection to `host:port` opens.
    Tcp(String),
}

/// Pull mode's role.
#[derive(Debug, Clone, PartialEq)]
pub struct RoleSpec {
    /// The role's name.
    pub name: String,
    /// Its repo's URL.
    pub url: String,
    /// The branch applied.
    pub branch: String,
    /// Vars given to the runbook.
    pub vars: serde_json::Map<String, serde_json::Value>,
}

/// The poll interval's bounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// Shortest wait.
    pub minimum: Duration,
    /// Longest wait.
    pub maximum: Duration,
}

/// Restart backoff.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Restart {
    /// The second restart's delay (the first is immediate); doubles each time.
    pub initial: Duration,
    /// The cap of the delay.
    pub maximum: Duration,
    /// An uptime after which the next exit restarts at once again.
    pub reset_after: Duration,
}

/// Log rotation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Logs {
    /// A log is rotated past this size.
    pub max_bytes: u64,
    /// Rotated logs kept (`NAME.log.1` ... `NAME.log.KEEP`).
    pub keep: u32,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            minimum: Duration::from_secs(60),
            maximum: Duration::from_secs(600),
        }
    }
}

impl Default for Restart {
    fn default() -> Restart {
        Restart {
            initial: Duration::from_millis(250),
            maximum: Duration::from_secs(60),
            reset_after: Duration::from_secs(30),
        }
    }
}

impl Default for Logs {
    fn default() -> Logs {
        Logs {
            max_bytes: 10_000_000,
            keep: 5,
        }
    }
}

impl Timing {
    /// A wait uniformly random in [minimum, maximum].
    pub fn next_wait(&self) -> Duration {
        let (low, high) = (self.minimum.as_secs_f64(), self.maximum.as_secs_f64());
        Duration::from_secs_f64(low + (high - low) * fastrand::f64())
    }
}

impl Program {
    /// The process spec, when it is one.
    pub fn process(&self) -> Option<&Process> {
        match &self.kind {
            Kind::Process(process) => Some(process),
            Kind::Role(_) => None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    repository: Option<RawRepository>,
    timing: Option<RawTiming>,
    application: Option<RawApplication>,
    verify: Option<String>,
    health: Option<RawHealth>,
    restart: Option<RawRestart>,
    logs: Option<RawLogs>,
    role: Option<RawRole>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRepository {
    remote: Option<String>,
    #[serde(rename = "remote path", alias = "remote_path", alias = "url")]
    remote_path: String,
    #[serde(rename = "local path", alias = "local_path", alias = "path")]
    local_path: PathBuf,
    branch: Option<String>,
    executable: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTiming {
    minimum: Option<f64>,
    maximum: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApplication {
    start: Option<String>,
    directory: Option<PathBuf>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    user: Option<String>,
    #[serde(rename = "stop timeout", alias = "stop_timeout")]
    stop_timeout: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    command: Option<String>,
    http: Option<String>,
    tcp: Option<String>,
    timeout: Option<f64>,
    retries: Option<u32>,
    interval: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRestart {
    initial: Option<f64>,
    maximum: Option<f64>,
    #[serde(rename = "reset after", alias = "reset_after")]
    reset_after: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLogs {
    #[serde(rename = "max bytes", alias = "max_bytes")]
    max_bytes: Option<u64>,
    keep: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRole {
    name: String,
    repo: String,
    branch: Option<String>,
    #[serde(default)]
    vars: serde_json::Map<String, serde_json::Value>,
}

/// The files of a config directory that hold programs, by name: `*.json`, `*.yml`,
/// `*.yaml`, not starting with `_` (nor `.`: editors' swap files).
pub fn config_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.starts_with('_') || name.starts_with('.') || !path.is_file() {
            continue;
        }
        if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("json" | "yml" | "yaml")
        ) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Reads one config file.
pub fn load(file: &Path) -> Result<Program, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|error| ConfigError {
        file: file.to_owned(),
        line: 1,
        column: 1,
        message: format!("unable to read it: {error}"),
    })?;
    parse(file, &text)
}

/// Parses one config file's text (its format from its extension).
pub fn parse(file: &Path, text: &str) -> Result<Program, ConfigError> {
    let at = |line: usize, column: usize, message: String| ConfigError {
        file: file.to_owned(),
        line,
        column,
        message,
    };
    let name = file
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
        .ok_or_else(|| {
            at(
                1,
                1,
                "a program's file name is its name: use letters, digits, `-`, `_` and `.`".into(),
            )
        })?
        .to_owned();
    let json = file.extension().and_then(|e| e.to_str()) == Some("json");
    let raw: RawConfig = if json {
        serde_json::from_str(&without_trailing_commas(text)).map_err(|e| {
            at(
                e.line().max(1),
                e.column().max(1),
                without_position(&e.to_string()),
            )
        })?
    } else {
        serde_yaml::from_str(text).map_err(|e| {
            let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
            at(line, column, without_position(&e.to_string()))
        })?
    };
    let (line_of, seconds) = (
        |key: &str| locate(text, key),
        |value: f64, key: &str| -> Result<Duration, ConfigError> {
            Duration::try_from_secs_f64(value).map_err(|_| {
                let (line, column) = locate(text, key);
                at(
                    line,
                    column,
                    format!("`{key}` must be a number of seconds, 0 or more (not {value})"),
                )
            })
        },
    );

    let mut timing = Timing::default();
    if let Some(raw) = &raw.timing {
        if let Some(minimum) = raw.minimum {
            timing.minimum = seconds(minimum, "minimum")?;
        }
        if let Some(maximum) = raw.maximum {
            timing.maximum = seconds(maximum, "maximum")?;
        }
        if timing.maximum < timing.minimum {
            let (line, column) = line_of("maximum");
            return Err(at(
                line,
                column,
                format!(
                    "timing: `maximum` ({}s) is below `minimum` ({}s)",
                    timing.maximum.as_secs_f64(),
                    timing.minimum.as_secs_f64()
                ),
            ));
        }
    }
    let mut restart = Restart::default();
    if let Some(raw) = &raw.restart {
        if let Some(initial) = raw.initial {
            restart.initial = seconds(initial, "initial")?;
        }
        if let Some(maximum) = raw.maximum {
            restart.maximum = seconds(maximum, "maximum")?;
        }
        if let Some(reset) = raw.reset_after {
            restart.reset_after = seconds(reset, "reset after")?;
        }
    }
    let mut logs = Logs::default();
    if let Some(raw) = &raw.logs {
        logs.max_bytes = raw.max_bytes.unwrap_or(logs.max_bytes).max(1024);
        logs.keep = raw.keep.unwrap_or(logs.keep);
    }

    let kind = match (raw.role, raw.repository) {
        (Some(_), Some(_)) => {
            let (line, column) = line_of("role");
            return Err(at(
                line,
                column,
                "a file is either a program (`repository`) or a role (`role`), not both: split it"
                    .into(),
            ));
        }
        (Some(role), None) => {
            if raw.application.is_some() || raw.verify.is_some() || raw.health.is_some() {
                let (line, column) = line_of("role");
                return Err(at(
                    line,
                    column,
                    "a role has no `application`, `verify` or `health`: its runbook says what to do"
                        .into(),
                ));
            }
            Kind::Role(RoleSpec {
                name: role.name,
                url: role.repo,
                branch: role.branch.unwrap_or_else(|| "master".into()),
                vars: role.vars,
            })
        }
        (None, None) => {
            return Err(at(
                1,
                1,
                "no `repository` (with `remote path` and `local path`), nor a `role`: add one"
                    .into(),
            ))
        }
        (None, Some(repo)) => {
            let repository = Repository {
                remote: repo.remote.unwrap_or_else(|| "origin".into()),
                url: repo.remote_path,
                path: repo.local_path,
                branch: repo.branch.unwrap_or_else(|| "master".into()),
                git: repo.executable.unwrap_or_else(|| PathBuf::from("git")),
            };
            if !repository.path.is_absolute() {
                let (line, column) = line_of("local path");
                return Err(at(
                    line,
                    column,
                    format!(
                        "`local path` must be absolute (not `{}`)",
                        repository.path.display()
                    ),
                ));
            }
            let app = raw.application;
            let directory = app
                .as_ref()
                .and_then(|a| a.directory.clone())
                .map_or_else(|| repository.path.clone(), |dir| repository.path.join(dir));
            let stop_timeout = match app.as_ref().and_then(|a| a.stop_timeout) {
                Some(value) => seconds(value, "stop timeout")?,
                None => Duration::from_secs(10),
            };
            let health = match raw.health {
                None => None,
                Some(h) => {
                    let check = match (h.command, h.http, h.tcp) {
                        (Some(command), None, None) => Check::Command(command),
                        (None, Some(url), None) if url.starts_with("http://") => Check::Http(url),
                        (None, Some(url), None) => {
                            let (line, column) = line_of("http");
                            return Err(at(
                                line,
                                column,
                                format!("health: `http` takes a plain http:// URL (not `{url}`)"),
                            ));
                        }
                        (None, None, Some(address)) => Check::Tcp(address),
                        _ => {
                            let (line, column) = line_of("health");
                            return Err(at(
                                line,
                                column,
                                "health: give exactly one of `command`, `http` and `tcp`".into(),
                            ));
                        }
                    };
                    Some(Health {
                        check,
                        timeout: seconds(h.timeout.unwrap_or(2.0), "timeout")?,
                        retries: h.retries.unwrap_or(10).max(1),
                        interval: seconds(h.interval.unwrap_or(1.0), "interval")?,
                    })
                }
            };
            let (start, env, user) = match app {
                Some(app) => (app.start, app.env, app.user),
                None => (None, BTreeMap::new(), None),
            };
            Kind::Process(Box::new(Process {
                repository,
                start,
                directory,
                env,
                user,
                stop_timeout,
                verify: raw.verify,
                health,
            }))
        }
    };
    Ok(Program {
        name,
        file: file.to_owned(),
        kind,
        timing,
        restart,
        logs,
    })
}

/// `text` with every comma that closes a JSON object or array (`,}` `,]`, blanks
/// between) made a blank: Huddle's own example has them. Blanking keeps every other
/// character where it was, so errors point at the file as written.
fn without_trailing_commas(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = bytes.to_vec();
    let (mut in_string, mut escaped) = (false, false);
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b',' => {
                let next = bytes[i + 1..]
                    .iter()
                    .find(|c| !c.is_ascii_whitespace())
                    .copied();
                if matches!(next, Some(b'}' | b']')) {
                    out[i] = b' ';
                }
            }
            _ => {}
        }
    }
    // Only ASCII commas became ASCII blanks: still the same valid UTF-8.
    String::from_utf8(out).unwrap_or_else(|_| text.to_owned())
}

/// A parser's message without its own ` at line L column C` (the error says where).
fn without_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

/// Where `key` first appears in `text` (1-based line and column), for errors found
/// after parsing; 1:1 when it does not.
fn locate(text: &str, key: &str) -> (usize, usize) {
    for (n, line) in text.lines().enumerate() {
        if let Some(column) = line.find(key) {
            return (n + 1, line[..column].chars().count() + 1);
        }
    }
    (1, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Huddle's example, exactly as its README has it.
    const HUDDLE: &str = r#"{
  "repository": {"remote": "origin", "remote path": "https://git.example.com/app.git",
                 "local path": "/srv/app", "branch": "develop", "executable": "/usr/bin/git"},
  "timing": {"minimum": 60, "maximum": 600},
  "application": {"start": "/srv/venv/bin/python -m app"},
}
"#;

    #[test]
    fn huddle_example_parses_unchanged() {
        let program = parse(Path::new("/etc/toyc/app.json"), HUDDLE).expect("it parses");
        assert_eq!(program.name, "app");
        let process = program.process().expect("a process");
        assert_eq!(process.repository.url, "https://git.example.com/app.git");
        assert_eq!(process.repository.path, Path::new("/srv/app"));
        assert_eq!(process.repository.branch, "develop");
        assert_eq!(process.repository.git, Path::new("/usr/bin/git"));
        assert_eq!(
            process.start.as_deref(),
            Some("/srv/venv/bin/python -m app")
        );
        assert_eq!(program.timing.minimum, Duration::from_secs(60));
        assert_eq!(program.timing.maximum, Duration::from_secs(600));
    }

    #[test]
    fn only_remote_and_local_path_are_required() {
        let text = r#"{"repository": {"remote path": "/r.git", "local path": "/srv/x",},}"#;
        let program = parse(Path::new("x.json"), text).expect("it parses");
        let process = program.process().expect("a process");
        assert_eq!(process.repository.remote, "origin");
        assert_eq!(process.repository.branch, "master");
        assert_eq!(program.timing, Timing::default());
        assert_eq!(process.start, None);
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let text = "{\n  \"repository\": {\"remote path\": \"/r.git\"},\n  \"timing\": {}\n}";
        let error = parse(Path::new("d/web.json"), text).expect_err("local path is missing");
        assert_eq!((error.line, error.column), (2, 41), "{error}");
        assert!(error
            .to_string()
            .starts_with("d/web.json:2:41: missing field `local path`"));

        let text = "repository:\n  remote path: /r.git\n  local path: /srv/x\ntimming: {}\n";
        let error = parse(Path::new("web.yml"), text).expect_err("a typo");
        assert_eq!(error.line, 4, "{error}");
        assert!(error.message.contains("unknown field `timming`"), "{error}");

        let text = "repository: {url: /r.git, path: /srv/x}\ntiming: {minimum: 9, maximum: 3}\n";
        let error = parse(Path::new("web.yml"), text).expect_err("max below min");
        assert_eq!((error.line, error.column), (2, 22), "{error}");
    }

    #[test]
    fn yaml_has_the_richer_fields() {
        let text = "
repository: {remote path: /r.git, local path: /srv/web, branch: main}
timing: {minimum: 1, maximum: 2}
application:
  start: ./serve
  directory: app
  env: {PORT: '8080'}
  stop timeout: 3
verify: ./test
health: {http: 'http://127.0.0.1:8080/', retries: 3, interval: 0.5}
restart: {initial: 0.1, maximum: 5, reset after: 2}
";
        let program = parse(Path::new("web.yaml"), text).expect("it parses");
        let process = program.process().expect("a process");
        assert_eq!(process.directory, Path::new("/srv/web/app"));
        assert_eq!(process.env.get("PORT").map(String::as_str), Some("8080"));
        assert_eq!(process.stop_timeout, Duration::from_secs(3));
        assert_eq!(process.verify.as_deref(), Some("./test"));
        let health = process.health.as_ref().expect("a health check");
        assert_eq!(health.check, Check::Http("http://127.0.0.1:8080/".into()));
        assert_eq!(health.retries, 3);
        assert_eq!(program.restart.maximum, Duration::from_secs(5));
    }

    #[test]
    fn a_role_file_is_pull_mode() {
        let text = "role: {name: web, repo: /roles/web.git}\ntiming: {minimum: 1, maximum: 1}\n";
        let program = parse(Path::new("web-role.yml"), text).expect("it parses");
        assert!(matches!(&program.kind, Kind::Role(r) if r.name == "web" && r.branch == "master"));
    }

    #[test]
    fn trailing_commas_inside_strings_are_kept() {
        assert_eq!(
            without_trailing_commas(r#"{"a": ",}", "b": [1,],}"#),
            r#"{"a": ",}", "b": [1 ] }"#
        );
    }

    #[test]
    fn the_example_directory_reads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/supervise");
        let files = config_files(&dir).expect("scripts/supervise");
        let names: Vec<String> = files
            .iter()
            .map(|file| load(file).unwrap_or_else(|e| panic!("{e}")).name)
            .collect();
        assert_eq!(names, ["app", "base", "web"]);
    }

    #[test]
    fn underscore_files_are_skipped() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        for name in [
            "a.json",
            "_off.json",
            "b.yml",
            ".swp.json",
            "notes.txt",
            "c.yaml",
        ] {
            std::fs::write(dir.path().join(name), "{}").expect("write");
        }
        let names: Vec<_> = config_files(dir.path())
            .expect("read the dir")
            .iter()
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect();
        assert_eq!(names, ["a.json", "b.yml", "c.yaml"]);
    }
}
