//! A throwaway PostgreSQL server for the tests: one per test process, started on first
//! use by `tests/support/postgres.sh`, stopped by that script's watchdog when the test
//! process ends. Each test takes its own database with [`database`].
//!
//! Shared by the root end-to-end tests (`mod support`) and the store's tests (which
//! include this file with `#[path]`), so it needs nothing but std.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// The running server.
pub struct Server {
    /// The URL of its `postgres` database, ending in `/postgres`.
    url: String,
    /// Its directory (its socket is `.s.PGSQL.5432` in there).
    pub dir: PathBuf,
    /// The directory of PostgreSQL's programs (`createdb`, `psql`, ...).
    pub bin: PathBuf,
}

impl Server {
    /// The URL of the database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        let base = self
            .url
            .strip_suffix("/postgres")
            .expect("postgres.sh prints the URL of the `postgres` database");
        format!("{base}/{name}")
    }
}

/// The directory holding `tests/support/postgres.sh`: the workspace's root, found
/// upwards from the crate whose test this is.
fn script() -> PathBuf {
    let mut dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    loop {
        let script = dir.join("tests/support/postgres.sh");
        if script.is_file() {
            return script;
        }
        dir = dir
            .parent()
            .expect("the workspace root, with tests/support/postgres.sh, is above every crate");
    }
}

/// The test process's server, started on the first call.
pub fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        // Under /tmp (world-traversable: as root the server runs as `postgres`), and
        // short: a Unix socket's path has a limit of about 100 bytes.
        let dir = PathBuf::from(format!(
            "/tmp/toyc-pg-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        ));
        let output = Command::new(script())
            .arg(&dir)
            .arg(std::process::id().to_string())
            .output()
            .expect("tests/support/postgres.sh runs");
        assert!(
            output.status.success(),
            "could not start PostgreSQL for the tests (tests/support/postgres.sh): {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8(output.stdout).expect("postgres.sh prints text");
        let mut lines = stdout.lines();
        let url = lines.next().expect("postgres.sh prints a URL").to_string();
        let bin = PathBuf::from(lines.next().expect("postgres.sh prints the bin directory"));
        Server { url, dir, bin }
    })
}

/// A new, empty database on the test process's server: its URL.
pub fn database() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let server = server();
    let name = format!("test_{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let status = Command::new(server.bin.join("createdb"))
        .args(["-h"])
        .arg(&server.dir)
        .args(["-p", "5432", "-U", "postgres", &name])
        .status()
        .expect("createdb runs");
    assert!(status.success(), "createdb {name} failed");
    server.url(&name)
}
