//! The live progress line on a terminal: which phase or stage, how many hosts are done
//! of how many, and which are still working. Lines printed meanwhile (changes, errors,
//! script output) go above it, through [`Progress::print_above`], so it never garbles them.
//!
//! Hidden when stderr is not a terminal or under `--json`: logs and pipes get plain lines.
//! A [`Progress`] belongs to one run (see [`crate::run::RunContext`]); a run in a service
//! has none shown ([`Progress::hidden`]).

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

struct Live {
    bar: ProgressBar,
    working: BTreeSet<String>,
    what: String,
}

/// A handle to the progress line of a run. Clones share the one line;
/// [`Progress::finish`] clears it.
#[derive(Clone, Default)]
pub struct Progress {
    shown: bool,
    /// The bar, while one is shown.
    live: Arc<Mutex<Option<Live>>>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("shown", &self.shown)
            .finish()
    }
}

impl Progress {
    /// Show progress if `wanted` and stderr is a terminal.
    pub fn new(wanted: bool) -> Progress {
        Progress {
            shown: wanted && std::io::stderr().is_terminal(),
            live: Arc::default(),
        }
    }

    /// No progress line: a run in a service, or a test.
    pub fn hidden() -> Progress {
        Progress::default()
    }

    /// A new phase (`gathering facts`, `stage deploy`) over `total` hosts.
    pub fn phase(&self, what: &str, total: usize) {
        self.phase_of(what, total, "hosts");
    }

    /// A new phase over `total` things counted as `unit` (`tasks` for a task list's
    /// stage); [`Progress::start`] and [`Progress::done`] then name one of them.
    pub fn phase_of(&self, what: &str, total: usize, unit: &str) {
        if !self.shown {
            return;
        }
        // The old line goes first: two bars drawing at once leave a stale line behind.
        let mut live = self.lock();
        if let Some(old) = live.take() {
            old.bar.finish_and_clear();
        }
        let bar = ProgressBar::new(total as u64);
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "{{spinner}} {{prefix}} {{pos}}/{{len}} {unit}  {{wide_msg}}"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_prefix(what.to_owned());
        bar.enable_steady_tick(Duration::from_millis(120));
        *live = Some(Live {
            bar,
            working: BTreeSet::new(),
            what: what.to_owned(),
        });
    }

    /// `host` started working in this phase.
    pub fn start(&self, host: &str) {
        self.update(|live| {
            live.working.insert(host.to_owned());
        });
    }

    /// `host` is done with this phase.
    pub fn done(&self, host: &str) {
        self.update(|live| {
            if live.working.remove(host) {
                live.bar.inc(1);
            }
        });
    }

    fn update(&self, change: impl FnOnce(&mut Live)) {
        if !self.shown {
            return;
        }
        if let Some(live) = self.lock().as_mut() {
            change(live);
            let mut names: Vec<&str> = live.working.iter().map(String::as_str).take(4).collect();
            if live.working.len() > 4 {
                names.push("…");
            }
            let message = if names.is_empty() {
                String::new()
            } else {
                format!("working: {}", names.join(", "))
            };
            live.bar.set_message(message);
            live.bar.set_prefix(live.what.clone());
        }
    }
}

impl Progress {
    /// Clear the line, before the final report.
    pub fn finish(&self) {
        if let Some(live) = self.lock().take() {
            live.bar.finish_and_clear();
        }
    }

    /// Print with `write` above the progress line (or plainly, when none is shown).
    pub fn print_above(&self, write: impl FnOnce()) {
        let live = self.lock();
        match live.as_ref() {
            Some(live) => live.bar.suspend(write),
            None => write(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Live>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }
}
