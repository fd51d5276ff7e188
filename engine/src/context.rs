//! What a script running for one host can reach: the host, its connection, where to
//! report, and the directory its local files must come from. The stdlib finds it through
//! the engine's tag ([`HostContext::of`]), so one `Engine` serves exactly one host.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rhai::{Dynamic, EvalAltResult, NativeCallContext};
use serde_json::{Map, Value};

use crate::events::{Event, Level};
use crate::inventory::Host;
use crate::plan::Operation;
use crate::run::RunContext;
use crate::runbook::Runbook;
use crate::transport::{ExecOutput, ExecRequest, PutOptions, Transport, TransportError};

/// Facts every host answers in one round trip (see [`HostContext::basic_facts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicFacts {
    /// Kernel name in lower case: `linux`, `darwin`, `freebsd`.
    pub os: String,
    /// The distribution's `ID` from `/etc/os-release` (`debian`, `ubuntu`), or `os`.
    pub distribution: String,
    /// The host's own name for itself.
    pub hostname: String,
    /// Machine architecture: `x86_64`, `aarch64`.
    pub arch: String,
}

/// Everything the stdlib needs to act on one host.
pub struct HostContext {
    /// The host, with `vars` merged (inventory, then `--var`).
    pub host: Host,
    /// The connection.
    pub transport: Arc<dyn Transport>,
    /// The runtime the transport's futures run on; scripts block on it from their thread.
    pub runtime: tokio::runtime::Handle,
    /// The run the script belongs to: where messages go, its secrets, its cancellation.
    pub run: RunContext,
    /// The script's own directory: local files may only be read below it.
    pub script_root: PathBuf,
    /// Default for commands without an explicit `sudo` option (`--sudo`, `ansible_become`).
    pub sudo: bool,
    /// Default timeout for commands without an explicit `timeout` option.
    pub timeout: Option<Duration>,
    /// The hosts of the run (this one included), for `groups`, `hostvars` and
    /// `ansible_play_hosts` in templates; empty where a context serves one host alone.
    pub play: Arc<Vec<Host>>,
    facts: Mutex<Option<BasicFacts>>,
    template_facts: Mutex<Option<Map<String, Value>>>,
    unreachable: AtomicBool,
    runbook: Mutex<Runbook>,
}

impl std::fmt::Debug for HostContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostContext")
            .field("host", &self.host.name)
            .finish()
    }
}

impl HostContext {
    /// A context for `host` reached through `transport`.
    pub fn new(
        host: Host,
        transport: Arc<dyn Transport>,
        runtime: tokio::runtime::Handle,
        run: RunContext,
        script_root: PathBuf,
    ) -> HostContext {
        HostContext {
            sudo: host.sudo,
            host,
            transport,
            runtime,
            run,
            script_root,
            timeout: None,
            play: Arc::default(),
            facts: Mutex::new(None),
            template_facts: Mutex::new(None),
            unreachable: AtomicBool::new(false),
            runbook: Mutex::new(Runbook::default()),
        }
    }

    /// The context of the host whose script made this call.
    pub fn of(ctx: &NativeCallContext) -> Result<Arc<HostContext>, Box<EvalAltResult>> {
        crate::sandbox::tag_state::<Arc<HostContext>>(ctx)
            .ok_or_else(|| "this function needs a host: run the script with `toyc run`".into())
    }

    /// This context as the state of an engine's tag (see [`crate::sandbox::Sandbox::tag`]).
    pub fn into_tag(self: Arc<Self>) -> Dynamic {
        Dynamic::from(self)
    }

    /// Run a command, blocking the script's thread until it ends.
    pub fn exec(&self, request: &ExecRequest) -> Result<ExecOutput, TransportError> {
        self.note(self.runtime.block_on(self.transport.exec(request, None)))
    }

    /// Write a file atomically on the host.
    pub fn put(
        &self,
        content: &[u8],
        dest: &str,
        options: &PutOptions,
    ) -> Result<ExecOutput, TransportError> {
        self.note(
            self.runtime
                .block_on(self.transport.put(content, dest, options)),
        )
    }

    /// Read a file from the host.
    pub fn get(&self, path: &str, sudo: bool) -> Result<ExecOutput, TransportError> {
        self.note(self.runtime.block_on(self.transport.get(path, sudo)))
    }

    /// Whether a path exists on the host.
    pub fn file_exists(&self, path: &str, sudo: bool) -> Result<bool, TransportError> {
        self.note(
            self.runtime
                .block_on(self.transport.file_exists(path, sudo)),
        )
    }

    /// Whether a transport call found the host unreachable: the script's failure is then
    /// the host's absence, which the run reports differently from a failed command.
    pub fn was_unreachable(&self) -> bool {
        self.unreachable.load(Ordering::Relaxed)
    }

    fn note<T>(&self, result: Result<T, TransportError>) -> Result<T, TransportError> {
        if let Err(e) = &result {
            if e.is_unreachable() {
                self.unreachable.store(true, Ordering::Relaxed);
            }
        }
        result
    }

    /// Report a message from the script.
    pub fn message(&self, level: Level, text: impl Into<String>) {
        self.run.events.emit(&Event::Message {
            host: Some(self.host.name.clone()),
            level,
            text: text.into(),
        });
    }

    /// OS, distribution, hostname and architecture, asked once in one round trip and
    /// then cached for the rest of the run.
    pub fn basic_facts(&self) -> Result<BasicFacts, TransportError> {
        let mut cached = self.facts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(facts) = cached.as_ref() {
            return Ok(facts.clone());
        }
        let script = "uname -s; uname -m; hostname 2>/dev/null || uname -n; \
                      (. /etc/os-release 2>/dev/null && echo \"$ID\") || echo";
        let output = self.exec(&ExecRequest::new(script))?;
        let text = output.stdout_text();
        let mut lines = text.lines().map(str::trim);
        let os = lines.next().unwrap_or_default().to_lowercase();
        let arch = lines.next().unwrap_or_default().to_owned();
        let hostname = lines.next().unwrap_or_default().to_owned();
        let distribution = lines
            .next()
            .filter(|d| !d.is_empty())
            .unwrap_or(&os)
            .to_owned();
        let facts = BasicFacts {
            os,
            distribution,
            hostname,
            arch,
        };
        *cached = Some(facts.clone());
        Ok(facts)
    }

    /// Ansible's facts (`ansible_distribution`, ...) for templates that use them, with
    /// toyc's basic facts in the same round trip: asked once, then cached. When the basic
    /// facts were already asked for by the script, this is a second round trip.
    pub fn template_facts(&self) -> Result<Map<String, Value>, TransportError> {
        let mut cached = self
            .template_facts
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(facts) = cached.as_ref() {
            return Ok(facts.clone());
        }
        let output = self.exec(&ExecRequest::new(crate::ansible_facts::SCRIPT))?;
        let (basic, facts) = crate::ansible_facts::parse(&output.stdout_text());
        let mut basic_cache = self.facts.lock().unwrap_or_else(|p| p.into_inner());
        if basic_cache.is_none() {
            *basic_cache = Some(basic);
        }
        *cached = Some(facts.clone());
        Ok(facts)
    }

    /// Resolve a path a script names to a file below its own directory, refusing `..`
    /// and symlinks that lead out: scripts come from repos other people push to.
    pub fn local_path(&self, relative: &str) -> Result<PathBuf, String> {
        confined_path(&self.script_root, relative)
    }

    /// Add an operation to this host's plan. Operations do not act when called: they are
    /// planned together after the script ran (facts in one round trip), then applied.
    pub fn add_operation(&self, operation: Arc<dyn Operation>) {
        self.with_runbook(|book| book.add(operation));
    }

    /// Shape this host's runbook (stages, handlers, notifications) as the script runs.
    pub fn with_runbook<T>(&self, change: impl FnOnce(&mut Runbook) -> T) -> T {
        change(&mut self.runbook.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// What the script declared, leaving nothing behind.
    pub fn take_runbook(&self) -> Runbook {
        self.with_runbook(std::mem::take)
    }

    /// The variables scripts see as `vars`.
    pub fn vars(&self) -> &Map<String, Value> {
        &self.host.vars
    }
}

/// `relative` resolved below `root`, or why not. The file must exist: the check compares
/// canonical paths, so symlinks are followed before deciding.
pub fn confined_path(root: &Path, relative: &str) -> Result<PathBuf, String> {
    let candidate = Path::new(relative);
    if candidate.is_absolute() {
        return Err(format!(
            "`{relative}` is an absolute path; scripts may only read files inside their own directory, give a path relative to it"
        ));
    }
    if let Some(refusal) = crate::gitsync::git_metadata_refusal(candidate) {
        return Err(refusal);
    }
    let root = root.canonicalize().map_err(|e| {
        format!(
            "unable to resolve the script directory `{}`: {e}",
            root.display()
        )
    })?;
    let resolved = root
        .join(candidate)
        .canonicalize()
        .map_err(|e| format!("unable to read `{relative}` (in `{}`): {e}", root.display()))?;
    if let Ok(inside) = resolved.strip_prefix(&root) {
        // Also through a symlink that leads into `.git`.
        match crate::gitsync::git_metadata_refusal(inside) {
            Some(refusal) => Err(refusal),
            None => Ok(resolved),
        }
    } else {
        Err(format!(
            "`{relative}` leads outside the script's directory `{}` (through `..` or a symlink); scripts may only read their own files",
            root.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confined_path_refuses_dotdot_absolute_and_symlinks_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("repo");
        std::fs::create_dir_all(root.join("files")).expect("mkdir");
        std::fs::write(root.join("files/ok.txt"), "ok").expect("write");
        std::fs::write(dir.path().join("secret"), "no").expect("write");
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("files/link"))
            .expect("symlink");

        assert!(confined_path(&root, "files/ok.txt").is_ok());
        let err = confined_path(&root, "../secret").expect_err("dotdot");
        assert!(err.contains("leads outside"), "{err}");
        let err = confined_path(&root, "files/link").expect_err("symlink");
        assert!(err.contains("leads outside"), "{err}");
        let err = confined_path(&root, "/etc/passwd").expect_err("absolute");
        assert!(err.contains("absolute path"), "{err}");
    }
}
