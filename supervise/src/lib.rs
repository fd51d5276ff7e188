//! toyc's supervisor (`toyc supervise -c DIR`): keep programs running, and redeploy them
//! from git only when they pass.
//!
//! # Theory of operation
//!
//! 1. **One supervisor per state directory**: it takes an exclusive lock
//!    (`STATE/supervise/lock`, released by the kernel when the process dies, `kill -9`
//!    included), makes itself the child subreaper, opens the state store.
//! 2. **What a killed supervisor left is reaped, not adopted**: each program's record
//!    names the process group it ran; if that group still lives (same leader start time,
//!    or members left after the leader), it is stopped (TERM, then KILL) before the
//!    program starts again. Adopting it would leave a program whose output pipe went
//!    with the dead supervisor and which this one could not `wait` for; a restart is the
//!    honest state. So after a `kill -9` and a restart no program runs twice and none is
//!    orphaned, and bad commits stay bad (they are in the store).
//! 3. **The config directory** ([`config`]) is read at start, then on every change
//!    (inotify through `notify`, and a rescan every few seconds in case an event is
//!    missed): a new file starts its program, a changed one restarts it with its new
//!    config, a removed one stops it, the others are left alone. A bad file is reported
//!    (`file:line:col`) and skipped; a program whose file turned bad keeps running as it
//!    was.
//! 4. **Each program** is a task of its own ([`program`], [`pull`] for roles): its
//!    process, restarts with backoff ([`backoff`]) that never gives up, polls, verify,
//!    switch, health check, rollback.
//!    Optional Rhai hooks in the program's repo ([`hooks`]) verify, check health and
//!    run after a deploy, in the sandbox, through the engine.
//! 5. **Control** ([`control`]): a Unix socket for this user only.
//! 6. **Stop** (SIGTERM/Ctrl-C, the future given to [`serve`]): every program is stopped
//!    (its whole process group), the socket removed.
#![deny(missing_docs)]

pub mod backoff;
pub mod config;
pub mod control;
pub mod git;
pub mod health;
pub mod hooks;
pub mod logs;
pub mod process;
pub mod program;
pub mod pull;

use std::collections::BTreeMap;
use std::fs::File;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};
use tokio::sync::{mpsc, watch};
use toyc_store::ProgramStore;

use crate::config::Program;
use crate::program::{Handle, Shared};

/// How often the config directory is read again without inotify.
const RESCAN: Duration = Duration::from_secs(5);

/// How often it is read again with inotify, in case an event was missed.
const RESCAN_WATCHED: Duration = Duration::from_secs(30);

/// How long a burst of file events is let settle before the directory is read.
const SETTLE: Duration = Duration::from_millis(200);

/// How long the reaping of a killed supervisor's leftovers gives them after TERM.
const REAP_TIMEOUT: Duration = Duration::from_secs(10);

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Why the supervisor could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SuperviseError {
    /// Another supervisor holds this state directory.
    #[error("another `toyc supervise` runs with the state directory `{0}`: stop it first, or give this one another TOYC_STATE_DIR")]
    Locked(PathBuf),
    /// A file or directory of its own could not be made or opened.
    #[error("unable to {what} `{}`: {source}", path.display())]
    Io {
        /// What it was doing.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The config directory cannot be read.
    #[error("unable to read the config directory `{}`: {source}", path.display())]
    ConfigDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The state store cannot be opened.
    #[error(transparent)]
    Store(#[from] toyc_store::StoreError),
}

/// What `toyc supervise -c DIR` was given.
#[derive(Debug, Clone)]
pub struct Options {
    /// The config directory.
    pub config_dir: PathBuf,
    /// toyc's state directory.
    pub state_dir: PathBuf,
    /// The store's location (`postgres://...` or an SQLite file); default
    /// `STATE/toyc.sqlite`.
    pub store: Option<String>,
    /// The control socket; default [`default_socket`].
    pub socket: Option<PathBuf>,
}

/// The control socket of the supervisor of `state_dir`.
pub fn default_socket(state_dir: &Path) -> PathBuf {
    state_dir.join("supervise").join("control.sock")
}

/// The programs running now, and the config files that could not be read.
#[derive(Default)]
pub struct Registry {
    /// By name.
    pub programs: BTreeMap<String, Handle>,
    /// `file:line:col: why`, as last read.
    pub errors: Vec<String>,
    /// The config files as last read (name, size, modification time).
    fingerprint: Option<Vec<(PathBuf, u64, Option<std::time::SystemTime>)>>,
}

fn fingerprint(files: &[PathBuf]) -> Vec<(PathBuf, u64, Option<std::time::SystemTime>)> {
    files
        .iter()
        .map(|file| {
            let meta = std::fs::metadata(file).ok();
            (
                file.clone(),
                meta.as_ref().map_or(0, |m| m.len()),
                meta.and_then(|m| m.modified().ok()),
            )
        })
        .collect()
}

/// The top-level entry point for `toyc supervise -c DIR`: supervises until `shutdown`
/// completes, then stops every program. `ready` is called once the socket answers.
pub async fn serve(
    options: Options,
    ready: impl FnOnce(&Path),
    shutdown: impl Future<Output = ()>,
) -> Result<(), SuperviseError> {
    let dir = options.state_dir.join("supervise");
    let io = |what, path: &Path| {
        let path = path.to_owned();
        move |source| SuperviseError::Io { what, path, source }
    };
    std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
    let lock_path = dir.join("lock");
    let lock_file = File::create(&lock_path).map_err(io("create", &lock_path))?;
    let _lock = Flock::lock(lock_file, FlockArg::LockExclusiveNonblock)
        .map_err(|_| SuperviseError::Locked(options.state_dir.clone()))?;
    std::fs::metadata(&options.config_dir).map_err(|source| SuperviseError::ConfigDir {
        path: options.config_dir.clone(),
        source,
    })?;
    process::become_subreaper();
    let location = options.store.clone().unwrap_or_else(|| {
        options
            .state_dir
            .join("toyc.sqlite")
            .to_string_lossy()
            .into_owned()
    });
    let store: Arc<dyn ProgramStore> = Arc::from(toyc_store::open_programs(&location).await?);
    reap_left_overs(store.as_ref()).await;

    let shared = Arc::new(Shared {
        store: store.clone(),
        dir: dir.clone(),
        state_dir: options.state_dir.clone(),
        log_dir: dir.join("logs"),
    });
    let socket = options
        .socket
        .clone()
        .unwrap_or_else(|| default_socket(&options.state_dir));
    let listener = control::bind(&socket).map_err(io("listen on", &socket))?;
    let registry = Arc::new(tokio::sync::Mutex::new(Registry::default()));
    let (stopping_tx, stopping) = watch::channel(false);
    let server = tokio::spawn(control::serve(listener, registry.clone(), stopping));

    // The watcher's events only say "look again": the directory is read whole.
    let (changed_tx, mut changed) = mpsc::unbounded_channel::<()>();
    let watcher = watch_dir(&options.config_dir, changed_tx);
    rescan(&options.config_dir, &registry, &shared, store.as_ref()).await;
    ready(&socket);

    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(if watcher.is_some() {
        RESCAN_WATCHED
    } else {
        RESCAN
    });
    // Orphaned grandchildren are reaped when a child changes state, not on a timer: an
    // idle supervisor does nothing.
    let mut child_exits =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child()).ok();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(()) = changed.recv() => {
                tokio::time::sleep(SETTLE).await;
                while changed.try_recv().is_ok() {}
                rescan(&options.config_dir, &registry, &shared, store.as_ref()).await;
            }
            _ = tick.tick() => rescan(&options.config_dir, &registry, &shared, store.as_ref()).await,
            Some(()) = async {
                match child_exits.as_mut() {
                    Some(signal) => signal.recv().await,
                    None => std::future::pending().await,
                }
            } => process::reap_zombies(),
        }
    }

    let _ = stopping_tx.send(true);
    let programs = std::mem::take(&mut registry.lock().await.programs);
    let stops: Vec<_> = programs
        .into_values()
        .map(|handle| tokio::spawn(handle.shutdown()))
        .collect();
    for stop in stops {
        let _ = stop.await;
    }
    server.abort();
    let _ = std::fs::remove_file(&socket);
    Ok(())
}

/// Stops the process groups a killed supervisor left (see the crate's doc).
async fn reap_left_overs(store: &dyn ProgramStore) {
    let Ok(records) = store.programs().await else {
        return;
    };
    for mut record in records {
        let Some(pid) = record.pid.and_then(|p| i32::try_from(p).ok()) else {
            continue;
        };
        if process::reap_left_over(pid, record.pid_started, REAP_TIMEOUT).await {
            eprintln!(
                "toyc supervise: stopped process group {pid} of `{}`, left running by a supervisor that died",
                record.name
            );
        }
        record.pid = None;
        record.pid_started = None;
        let _ = store.save_program(&record).await;
    }
}

/// Watches `dir`; `None` (and a warning) when inotify is not available: the periodic
/// rescan still sees changes.
fn watch_dir(dir: &Path, changed: mpsc::UnboundedSender<()>) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Reading the files is an event too (inotify's open and close): only changes
        // count, or every read would ask for another.
        if event.is_ok_and(|e| !matches!(e.kind, notify::EventKind::Access(_))) {
            let _ = changed.send(());
        }
    });
    let mut watcher = match watcher {
        Ok(watcher) => watcher,
        Err(error) => {
            eprintln!(
                "toyc supervise: not watching `{}` ({error}); reading it every {}s",
                dir.display(),
                RESCAN.as_secs()
            );
            return None;
        }
    };
    if let Err(error) = watcher.watch(dir, notify::RecursiveMode::NonRecursive) {
        eprintln!(
            "toyc supervise: not watching `{}` ({error}); reading it every {}s",
            dir.display(),
            RESCAN.as_secs()
        );
        return None;
    }
    Some(watcher)
}

/// Reads the config directory and brings the running programs in line with it.
async fn rescan(
    dir: &Path,
    registry: &tokio::sync::Mutex<Registry>,
    shared: &Arc<Shared>,
    store: &dyn ProgramStore,
) {
    let listed = config::config_files(dir);
    // Nothing changed since the last look (names, sizes, times): nothing to parse.
    let print = listed.as_ref().ok().map(|files| fingerprint(files));
    {
        let mut registry = registry.lock().await;
        if print.is_some() && registry.fingerprint == print {
            return;
        }
        registry.fingerprint = print;
    }
    let files = match listed {
        Ok(files) => files,
        Err(error) => {
            let message = format!("{}: unable to read the directory: {error}", dir.display());
            let mut registry = registry.lock().await;
            if registry.errors != [message.clone()] {
                eprintln!("toyc supervise: {message}");
                registry.errors = vec![message];
            }
            return;
        }
    };
    let mut wanted: BTreeMap<String, Program> = BTreeMap::new();
    let mut errors = Vec::new();
    // A program whose file turned bad keeps running as it was.
    let mut keep = Vec::new();
    for file in files {
        match config::load(&file) {
            Ok(program) => {
                if let Some(first) = wanted.get(&program.name) {
                    errors.push(format!(
                        "{}:1:1: program `{}` is already defined by `{}`: rename one",
                        file.display(),
                        program.name,
                        first.file.display()
                    ));
                    continue;
                }
                wanted.insert(program.name.clone(), program);
            }
            Err(error) => {
                if let Some(name) = file.file_stem().and_then(|s| s.to_str()) {
                    keep.push(name.to_owned());
                }
                errors.push(error.to_string());
            }
        }
    }
    let mut registry = registry.lock().await;
    for error in &errors {
        if !registry.errors.contains(error) {
            eprintln!("toyc supervise: {error} (file skipped)");
        }
    }
    registry.errors = errors;
    let gone: Vec<String> = registry
        .programs
        .keys()
        .filter(|name| !wanted.contains_key(*name) && !keep.contains(name))
        .cloned()
        .collect();
    let changed: Vec<String> = registry
        .programs
        .iter()
        .filter(|(name, handle)| wanted.get(*name).is_some_and(|p| *p != handle.program))
        .map(|(name, _)| name.clone())
        .collect();
    for name in gone {
        if let Some(handle) = registry.programs.remove(&name) {
            eprintln!("toyc supervise: `{name}`'s file is gone: stopping it");
            handle.shutdown().await;
            let _ = store.forget_program(&name).await;
        }
    }
    for name in changed {
        if let Some(handle) = registry.programs.remove(&name) {
            eprintln!("toyc supervise: `{name}`'s file changed: restarting it with it");
            handle.shutdown().await;
        }
    }
    for (name, program) in wanted {
        if let std::collections::btree_map::Entry::Vacant(entry) = registry.programs.entry(name) {
            eprintln!(
                "toyc supervise: starting `{}` ({})",
                entry.key(),
                program.file.display()
            );
            entry.insert(Handle::spawn(program, shared.clone()));
        }
    }
}
