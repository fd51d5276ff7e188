//! The human output of a task-list run: one log line per thing that happens, as the
//! older deployer printed them,
//!
//! ```text
//! 2026-12-01T07:40:06.123Z [INFO] [upload] [web1] [web] started
//! 2026-12-01T07:40:06.611Z [ERROR] [wait_port] [web2] [web] failed after 30.00s: port 8080 ...
//! ```
//!
//! `time [LEVEL] [component] [host] [service] message`, UTC, `*` for a field that does
//! not apply. A failure in a stage that continues on failure is a WARN, not an ERROR:
//! it does not fail the run (a Graphite metric that could not be sent, say).
//! The progress line, the per-host table and the summary come from the
//! [`HumanSink`] it wraps, so a task-list run ends like every other toyc run.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::events::{seconds, Event, EventSink, HumanSink, Level, Printer, TaskStatus};

/// Log lines on stderr for task events; everything else to the wrapped sink.
pub struct TaskLogSink {
    inner: HumanSink,
    verbose: bool,
    /// Stages whose failures only warn, from their `StageStart`.
    continuing: Mutex<BTreeSet<String>>,
}

impl TaskLogSink {
    /// Wrap `inner` (made with its table); `verbose` also logs every task's start.
    pub fn new(inner: HumanSink, verbose: bool) -> TaskLogSink {
        TaskLogSink {
            inner,
            verbose,
            continuing: Mutex::new(BTreeSet::new()),
        }
    }

    fn continues(&self, stage: &str) -> bool {
        self.continuing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(stage)
    }
}

impl EventSink for TaskLogSink {
    fn emit(&self, event: &Event) {
        match event {
            Event::TaskStart {
                command,
                host,
                service,
                ..
            } if self.verbose => line(
                self.inner.printer(),
                Level::Info,
                command,
                Some(host),
                service,
                "started",
            ),
            Event::TaskStart { .. } => {}
            Event::TaskEnd {
                stage,
                index,
                command,
                host,
                service,
                status,
                error,
                elapsed_ms,
            } => {
                let (level, text) = match status {
                    TaskStatus::Ok => (Level::Info, format!("done in {}", seconds(*elapsed_ms))),
                    TaskStatus::Failed => (
                        if self.continues(stage) {
                            Level::Warn
                        } else {
                            Level::Error
                        },
                        format!(
                            "task {index} of stage `{stage}` failed after {}: {}",
                            seconds(*elapsed_ms),
                            error.as_deref().unwrap_or("no reason given")
                        ),
                    ),
                    TaskStatus::Skipped => (
                        Level::Warn,
                        format!(
                            "task {index} of stage `{stage}` not started: {}",
                            error
                                .as_deref()
                                .map_or("skipped", |e| e.trim_start_matches("not started: "))
                        ),
                    ),
                };
                line(
                    self.inner.printer(),
                    level,
                    command,
                    Some(host),
                    service,
                    &text,
                );
            }
            Event::Log {
                level,
                component,
                host,
                service,
                text,
            } => line(
                self.inner.printer(),
                *level,
                component,
                host.as_ref(),
                service,
                text,
            ),
            Event::Message { level, .. } if *level == Level::Print => self.inner.emit(event),
            Event::Message { host, level, text } => line(
                self.inner.printer(),
                *level,
                "toyc",
                host.as_ref(),
                &None,
                text,
            ),
            Event::StageStart {
                stage,
                hosts,
                continues_on_failure,
            } => {
                let mut continuing = self.continuing.lock().unwrap_or_else(|p| p.into_inner());
                // Two stages may share a name: the one starting now decides.
                if *continues_on_failure {
                    continuing.insert(stage.clone());
                } else {
                    continuing.remove(stage);
                }
                drop(continuing);
                line(
                    self.inner.printer(),
                    Level::Info,
                    "stage",
                    None,
                    &None,
                    &format!("stage `{stage}` starts on {} host(s)", hosts.len()),
                );
            }
            Event::StageEnd {
                stage,
                ok,
                failed,
                skipped,
                aborted,
            } => {
                let continues = self.continues(stage) && !*aborted;
                let level = if *aborted || (*failed > 0 && !continues) {
                    Level::Error
                } else if *failed > 0 {
                    Level::Warn
                } else {
                    Level::Info
                };
                let let_pass = if continues && *failed > 0 {
                    " and let pass (the stage continues on failure)"
                } else {
                    ""
                };
                let end = if *aborted {
                    "; aborted: later tasks and stages do not start"
                } else {
                    ""
                };
                line(
                    self.inner.printer(),
                    level,
                    "stage",
                    None,
                    &None,
                    &format!(
                        "stage `{stage}`: {ok} ok, {failed} failed{let_pass}, {skipped} not started{end}"
                    ),
                );
            }
            other => self.inner.emit(other),
        }
    }
}

/// Print one log line on stderr, above the progress line.
fn line(
    printer: &Printer,
    level: Level,
    component: &str,
    host: Option<&String>,
    service: &Option<String>,
    text: &str,
) {
    let text = format!(
        "{} [{}] [{component}] [{}] [{}] {text}",
        utc_now(),
        level_word(level),
        host.map_or("*", String::as_str),
        service.as_deref().unwrap_or("*"),
    );
    printer.err_line(&text);
}

fn level_word(level: Level) -> &'static str {
    match level {
        Level::Print | Level::Info => "INFO",
        Level::Warn => "WARN",
        Level::Error => "ERROR",
    }
}

/// Now as `2026-12-01T07:40:06.123Z`.
fn utc_now() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    utc(now.as_secs(), now.subsec_millis())
}

/// Seconds since the epoch as an ISO 8601 UTC time with milliseconds.
fn utc(secs: u64, millis: u32) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rest = secs % 86_400;
    // Howard Hinnant's days_from_civil, inverted: exact for the proleptic Gregorian
    // calendar, no time zone database needed for UTC.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times_match_the_calendar() {
        assert_eq!(utc(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(utc(1_796_110_806, 123), "2026-12-01T07:40:06.123Z");
    }
}
