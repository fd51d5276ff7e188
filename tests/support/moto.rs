//! A real EC2 API for the tests: `moto_server` (PyPI `moto[server]`, installed by
//! tests/run into `$TOYC_TEST_VENV`, default `~/.cache/toyc-tests/venv`) on a free
//! loopback port, one per test that asks, stopped when dropped or, by a watchdog, when
//! the test process ends. Its instances' addresses are fake: never connect to them.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running moto_server.
pub struct Moto {
    /// Its endpoint (`http://127.0.0.1:PORT`).
    pub endpoint: String,
    child: Child,
}

/// Where tests/run installs moto_server.
fn program() -> PathBuf {
    let venv = std::env::var_os("TOYC_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/toyc-tests/venv")
        });
    let installed = venv.join("bin/moto_server");
    if installed.exists() {
        installed
    } else {
        PathBuf::from("moto_server")
    }
}

impl Moto {
    /// Start one and wait until it answers.
    pub fn start() -> Moto {
        Moto::start_with(None)
    }

    /// One that checks signatures and IAM policies after its first `free` calls (moto's
    /// `INITIAL_NO_AUTH_ACTION_COUNT`), so a test can make a user and a key first.
    pub fn with_auth_after(free: u32) -> Moto {
        Moto::start_with(Some(free))
    }

    fn start_with(free: Option<u32>) -> Moto {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.local_addr().expect("address").port()
        };
        let watchdog = format!(
            "{} -H 127.0.0.1 -p {port} >/dev/null 2>&1 & n=$!; \
             while kill -0 {owner} 2>/dev/null && kill -0 $n 2>/dev/null; do sleep 1; done; \
             kill $n 2>/dev/null",
            program().display(),
            owner = std::process::id()
        );
        let mut command = Command::new("sh");
        command.args(["-c", &watchdog]);
        match free {
            Some(n) => command.env("INITIAL_NO_AUTH_ACTION_COUNT", n.to_string()),
            None => command.env_remove("INITIAL_NO_AUTH_ACTION_COUNT"),
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts (tests/run installs it)");
        let deadline = Instant::now() + Duration::from_secs(60);
        // Ready when its port accepts: an HTTP probe would use up one of the calls
        // `with_auth_after` leaves unchecked.
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server ({}) never listened on {port}",
                program().display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        Moto {
            endpoint: format!("http://127.0.0.1:{port}"),
            child,
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        // Ending the watchdog's shell leaves moto to the watchdog's loop: kill the group.
        let _ = Command::new("pkill")
            .args([
                "-f",
                &format!(
                    // Anchored: port 4123 must not match a sibling test's 41234.
                    "moto_server -H 127.0.0.1 -p {}$",
                    self.endpoint.rsplit(':').next().unwrap_or("")
                ),
            ])
            .status();
        let _ = self.child.wait();
    }
}
