//! Running the real `toyc` binary in a temporary directory and checking what it did.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// One invocation of the binary, built up step by step.
pub struct Toyc {
    dir: tempfile::TempDir,
    args: Vec<String>,
    env: Vec<(String, String)>,
    address_space: Option<u64>,
}

/// What an invocation left behind.
pub struct Ran {
    /// Exit status.
    pub code: i32,
    /// Standard output as text.
    pub stdout: String,
    /// Standard error as text.
    pub stderr: String,
}

impl Toyc {
    /// A fresh temporary working directory, no arguments yet.
    pub fn new() -> Toyc {
        Toyc {
            dir: tempfile::tempdir().expect("temporary directory"),
            args: Vec::new(),
            env: Vec::new(),
            address_space: None,
        }
    }

    /// The working directory the binary runs in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Write a file (relative to the working directory), creating parent directories.
    pub fn file(self, name: &str, content: &str) -> Toyc {
        let path = self.dir.path().join(name);
        std::fs::create_dir_all(path.parent().expect("file has a parent")).expect("mkdir");
        std::fs::write(&path, content).expect("write test file");
        self
    }

    /// Append arguments.
    pub fn args<I, S>(mut self, args: I) -> Toyc
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Set an environment variable for the binary.
    #[allow(dead_code)]
    pub fn env(mut self, key: &str, value: &str) -> Toyc {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Cap the binary's address space at `bytes` (through `prlimit`), so a test of a
    /// memory limit that fails ends in a failed allocation, not in the machine's OOM killer.
    #[allow(dead_code)]
    pub fn address_space(mut self, bytes: u64) -> Toyc {
        self.address_space = Some(bytes);
        self
    }

    /// Run it and wait.
    pub fn run(&self) -> Ran {
        self.run_with(&[])
    }

    /// The binary with the arguments so far and `extra`, in the working directory, with
    /// stdin closed and no inventory or limit from the environment.
    fn command(&self, extra: &[&str]) -> Command {
        let mut command = match self.address_space {
            Some(bytes) => {
                let mut prlimit = Command::new("prlimit");
                prlimit.arg(format!("--as={bytes}")).arg("--").arg(binary());
                prlimit
            }
            None => Command::new(binary()),
        };
        command
            .args(&self.args)
            .args(extra)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env_remove("TOYC_INVENTORY")
            .env_remove("TOYC_LIMIT")
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        command
    }

    /// Start it with `extra` arguments, stdout and stderr piped, without waiting.
    #[allow(dead_code)]
    pub fn spawn(&self, extra: &[&str]) -> std::process::Child {
        self.command(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the toyc binary starts")
    }

    /// Wait for a child from [`Toyc::spawn`].
    #[allow(dead_code)]
    pub fn wait(child: std::process::Child) -> Ran {
        let output = child.wait_with_output().expect("toyc finishes");
        Ran {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Run it with `extra` arguments after the ones set so far, and wait.
    pub fn run_with(&self, extra: &[&str]) -> Ran {
        let output: Output = self.command(extra).output().expect("the toyc binary runs");
        Ran {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Ran {
    /// Assert the exit status, showing the output when it differs.
    pub fn code(&self, expected: i32) -> &Ran {
        assert_eq!(
            self.code, expected,
            "exit status\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Assert stderr contains `text`.
    pub fn stderr_has(&self, text: &str) -> &Ran {
        assert!(
            self.stderr.contains(text),
            "stderr lacks {text:?}:\n{}",
            self.stderr
        );
        self
    }

    /// Assert stdout contains `text`.
    pub fn stdout_has(&self, text: &str) -> &Ran {
        assert!(
            self.stdout.contains(text),
            "stdout lacks {text:?}:\n{}",
            self.stdout
        );
        self
    }

    /// SSH commands toyc sent to host `name`, from its debug log (run with
    /// `RUST_LOG=toyc_engine=debug`): `... round trip host=NAME`, with colour codes
    /// around `host=`, as bench/ counts them.
    #[allow(dead_code)]
    pub fn round_trips(&self, name: &str) -> usize {
        self.stderr
            .lines()
            .filter(|l| l.contains("round trip") && l.trim_end().ends_with(&format!("m{name}")))
            .count()
    }

    /// Every stdout line parsed as JSON.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }
}

/// The binary cargo built for this test run.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_toyc"))
}

/// The repository root, for scripts/ and friends.
#[allow(dead_code)]
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
