//! Per-program log files: each line of the program's stdout and stderr, and the
//! supervisor's own notes about it, with a UTC timestamp and its stream
//! (`2026-12-04T11:40:27.123Z out| ...`), rotated by size (`NAME.log.1` is the newest
//! rotated one).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::Logs;

/// A program's log, shared by its stream pumps and its supervisor.
#[derive(Debug, Clone)]
pub struct Log {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    file: Option<File>,
    size: u64,
    spec: Logs,
}

impl Log {
    /// The log at `path` (appended to; created with its directory when missing).
    pub fn open(path: &Path, spec: Logs) -> std::io::Result<Log> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(Log {
            inner: Arc::new(Mutex::new(Inner {
                path: path.to_owned(),
                file: Some(file),
                size,
                spec,
            })),
        })
    }

    /// The file's path.
    pub fn path(&self) -> PathBuf {
        self.lock().path.clone()
    }

    /// Appends one line from `stream` (`out`, `err` or `toyc`). A log that cannot be
    /// written (a full disk) loses the line rather than stop the program.
    pub fn line(&self, stream: &str, text: &str) {
        let line = format!(
            "{} {stream}| {}\n",
            timestamp(SystemTime::now()),
            text.trim_end_matches(['\n', '\r'])
        );
        let mut inner = self.lock();
        if inner.size > 0 && inner.size + line.len() as u64 > inner.spec.max_bytes {
            inner.rotate();
        }
        if let Some(file) = inner.file.as_mut() {
            if file.write_all(line.as_bytes()).is_ok() {
                inner.size += line.len() as u64;
            }
        }
    }

    /// A note of the supervisor's about the program.
    pub fn note(&self, text: &str) {
        self.line("toyc", text);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A pump that panicked mid-write left at worst half a line.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Inner {
    fn rotate(&mut self) {
        self.file = None;
        let numbered = |n: u32| PathBuf::from(format!("{}.{n}", self.path.display()));
        if self.spec.keep == 0 {
            let _ = std::fs::remove_file(&self.path);
        } else {
            for n in (1..self.spec.keep).rev() {
                let _ = std::fs::rename(numbered(n), numbered(n + 1));
            }
            let _ = std::fs::rename(&self.path, numbered(1));
        }
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .ok();
        self.size = 0;
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, UTC.
pub fn timestamp(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_millis()
    )
}

/// Howard Hinnant's days-to-civil: the proleptic Gregorian date of a day since 1970.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_utc_dates() {
        let at = UNIX_EPOCH + Duration::from_millis(1_796_384_427_123);
        assert_eq!(timestamp(at), "2026-12-04T11:40:27.123Z");
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(timestamp(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn lines_are_stamped_and_rotated_by_size() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("logs/web.log");
        let log = Log::open(
            &path,
            Logs {
                max_bytes: 1024,
                keep: 2,
            },
        )
        .expect("open");
        for n in 0..100 {
            log.line("out", &format!("line {n:03} {}", "x".repeat(40)));
        }
        let current = std::fs::read_to_string(&path).expect("the log");
        assert!(current.len() <= 1024, "{}", current.len());
        assert!(current.contains(" out| line 099 "), "{current}");
        assert!(path.with_file_name("web.log.1").exists());
        assert!(path.with_file_name("web.log.2").exists());
        assert!(
            !path.with_file_name("web.log.3").exists(),
            "only `keep` are kept"
        );
        let first = current.lines().next().expect("a line");
        assert_eq!(first.as_bytes()[23], b'Z', "{first}");
    }
}
