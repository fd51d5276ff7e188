//! `toyc repl` driven in a real pseudo-terminal against the container hosts, the way an
//! operator types: rows per host, Tab completion, a multi-line function, Ctrl-C during a
//! long command (killed on the hosts too), and `.apply` of a pending change after `y`.

use std::io::{Read, Write};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{native_pty_system, Child, CommandBuilder, PtySize};

use crate::support::cli::binary;
use crate::support::hosts::{self, HostPool};

/// How long one expected piece of output may take (connections included).
const PATIENCE: Duration = Duration::from_secs(30);

/// What the terminal has shown so far, escape sequences removed, and a signal for
/// whoever waits on it.
#[derive(Default)]
struct Screen {
    text: Mutex<String>,
    grew: Condvar,
}

/// A `toyc repl` in a pseudo-terminal. A reader thread answers the line editor's
/// cursor-position queries (as a terminal would) and collects the output.
struct Console {
    writer: Arc<Mutex<Box<dyn Write + Send>>>,
    screen: Arc<Screen>,
    seen: usize,
    child: Box<dyn Child + Send + Sync>,
    _state: tempfile::TempDir,
}

impl Console {
    fn start(dir: &std::path::Path, args: &[&str]) -> Console {
        let pty = native_pty_system()
            .openpty(PtySize {
                rows: 50,
                cols: 200,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("a pseudo-terminal");
        let state = tempfile::tempdir().expect("state directory");
        let mut command = CommandBuilder::new(binary());
        command.arg("repl");
        command.args(args);
        command.cwd(dir);
        command.env("TOYC_STATE_DIR", state.path());
        command.env("TERM", "xterm-256color");
        command.env_remove("TOYC_INVENTORY");
        command.env_remove("TOYC_LIMIT");
        let child = pty.slave.spawn_command(command).expect("toyc repl starts");
        drop(pty.slave);
        let writer = Arc::new(Mutex::new(pty.master.take_writer().expect("pty writer")));
        let mut reader = pty.master.try_clone_reader().expect("pty reader");
        let screen = Arc::new(Screen::default());
        let (answer, shown) = (Arc::clone(&writer), Arc::clone(&screen));
        // The master must outlive the child's use of the terminal: keep it in the thread.
        let master = pty.master;
        std::thread::spawn(move || {
            let _master = master;
            let escapes =
                regex::Regex::new(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\x1b[78=>]|\r")
                    .expect("regex");
            let mut raw = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                raw.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&raw).into_owned();
                // Keep a possibly cut escape sequence for the next read.
                let cut = text.rfind('\x1b').filter(|&i| text.len() - i < 16);
                let (whole, rest) = match cut {
                    Some(i) if !escapes.is_match(&text[i..]) => text.split_at(i),
                    _ => (text.as_str(), ""),
                };
                for _ in 0..whole.matches("\x1b[6n").count() {
                    let mut w = answer.lock().expect("writer");
                    let _ = w.write_all(b"\x1b[1;1R");
                    let _ = w.flush();
                }
                // A cleared line (the live progress line, redrawn and cleared) ends a
                // line here, so what is printed after it starts a line of its own.
                let lines = whole.replace("\x1b[2K", "\n");
                let clean = escapes.replace_all(&lines, "");
                shown.text.lock().expect("screen").push_str(&clean);
                shown.grew.notify_all();
                raw = rest.as_bytes().to_vec();
            }
        });
        let mut console = Console {
            writer,
            screen,
            seen: 0,
            child,
            _state: state,
        };
        console.settle();
        console
    }

    /// Type `text` (no Enter).
    fn send(&mut self, text: &str) {
        let mut w = self.writer.lock().expect("writer");
        w.write_all(text.as_bytes()).expect("type into the console");
        w.flush().expect("flush");
    }

    /// Type `line` and Enter.
    fn line(&mut self, line: &str) {
        self.send(line);
        self.send("\r");
    }

    /// Wait until `wanted` appears after what earlier expectations consumed; return the
    /// output up to and including it.
    fn expect(&mut self, wanted: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        let mut text = self.screen.text.lock().expect("screen");
        loop {
            if let Some(at) = text[self.seen..].find(wanted) {
                let end = self.seen + at + wanted.len();
                let got = text[self.seen..end].to_owned();
                self.seen = end;
                return got;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "the console never showed {wanted:?}; it showed:\n{}",
                &text[self.seen..]
            );
            text = self.screen.grew.wait_timeout(text, left).expect("screen").0;
        }
    }

    /// Wait until `wanted` was shown at any time since the start.
    fn shown(&mut self, wanted: &str) {
        let seen = std::mem::take(&mut self.seen);
        self.expect(wanted);
        self.seen = self.seen.max(seen);
    }

    /// Type `line`, Enter, and return everything shown until it finished.
    fn run(&mut self, line: &str) -> String {
        self.line(line);
        // The line editor's last paint of the line, then Enter's newline.
        self.expect(&format!("{line}\n"));
        self.settle()
    }

    /// Everything shown until the console waits at a prompt again: the last line shown
    /// is a prompt and nothing more came for a moment. (Typing ahead is no help: the
    /// line editor drops what it read past an Enter.)
    fn settle(&mut self) -> String {
        let prompt = regex::Regex::new(r"(^|\n)toyc[^\n]*> $").expect("regex");
        let deadline = Instant::now() + PATIENCE;
        let mut text = self.screen.text.lock().expect("screen");
        let mut stable_since = (text.len(), Instant::now());
        loop {
            if text.len() != stable_since.0 {
                stable_since = (text.len(), Instant::now());
            }
            let quiet = stable_since.1.elapsed() >= Duration::from_millis(300);
            if quiet && prompt.is_match(&text) {
                let got = text[self.seen..].to_owned();
                self.seen = text.len();
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "the console never came back to its prompt; it showed:\n{}",
                &text[self.seen..]
            );
            text = self
                .screen
                .grew
                .wait_timeout(text, Duration::from_millis(50))
                .expect("screen")
                .0;
        }
    }

    /// Ctrl-D, then the exit status and the state directory (history).
    fn quit(mut self) -> (u32, tempfile::TempDir) {
        self.send("\x04");
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("child status") {
                let state =
                    std::mem::replace(&mut self._state, tempfile::tempdir().expect("tempdir"));
                return (status.exit_code(), state);
            }
            assert!(
                Instant::now() < deadline,
                "the console did not exit on Ctrl-D"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// An inventory of three pool hosts with names to complete: `web-one`, `web-two` (group
/// `web`) and `db-one`.
fn inventory(pool: &HostPool, dir: &std::path::Path) {
    let h = pool.hosts();
    let yaml = format!(
        "ssh: {{user: root, identity: {}, known_hosts: {}}}\n\
         hosts:\n  web-one: {{address: {}}}\n  web-two: {{address: {}}}\n  db-one: {{address: {}}}\n\
         groups:\n  web: {{hosts: [web-one, web-two]}}\n",
        pool.identity().display(),
        pool.known_hosts().display(),
        h[0].address,
        h[1].address,
        h[2].address,
    );
    std::fs::write(dir.join("inv.yml"), yaml).expect("write inventory");
}

/// A console over [`inventory`], in a fresh working directory.
fn console(pool: &HostPool) -> (tempfile::TempDir, Console) {
    let dir = tempfile::tempdir().expect("tempdir");
    inventory(pool, dir.path());
    let console = Console::start(dir.path(), &["-i", "inv.yml"]);
    (dir, console)
}

/// A row of the results table: host, status, first line of output.
fn has_row(output: &str, host: &str, status: &str, text: &str) -> bool {
    output.lines().any(|l| {
        let words: Vec<&str> = l.split_whitespace().collect();
        words.len() >= 3 && words[0] == host && words[1] == status && words[2..].join(" ") == text
    })
}

#[test]
fn a_command_on_a_group_prints_one_row_per_host_and_the_results_can_be_kept() {
    let Some(pool) = hosts::shared() else {
        return;
    };
    let (_dir, mut console) = console(pool);
    let out = console.run(r#"hosts("web").exec("hostname")"#);
    assert!(has_row(&out, "web-one", "ok", "h1"), "{out}");
    assert!(has_row(&out, "web-two", "ok", "h2"), "{out}");
    assert!(!out.contains("db-one"), "{out}");
    assert!(out.contains("2 ok, 0 failed, 0 unreachable"), "{out}");

    // Kept in a variable, asked later; a failing host is a row, not the end of the line.
    console.run(r#"let r = hosts().exec("test $(hostname) != h2")"#);
    let out = console.run("r.failed()");
    assert!(out.contains("hosts(web-two)"), "{out}");
    let out = console.run(r#"r["web-two"].code"#);
    assert!(out.lines().any(|l| l.trim() == "1"), "{out}");
    // An error never ends the session.
    let out = console.run(r#"hosts("nosuchhost")"#);
    assert!(
        out.contains("error:") && out.contains("nosuchhost"),
        "{out}"
    );
    let out = console.run("40 + 2");
    assert!(out.lines().any(|l| l.trim() == "42"), "{out}");

    let (code, state) = console.quit();
    assert_eq!(code, 0);
    let history = std::fs::read_to_string(state.path().join("repl_history")).expect("history file");
    assert!(history.contains("r.failed()"), "{history}");
}

#[test]
fn tab_completes_a_host_name() {
    let Some(pool) = hosts::shared() else {
        return;
    };
    let (_dir, mut console) = console(pool);
    console.send(r#"hosts("db"#);
    console.send("\t");
    console.expect("db-one");
    let out = console.run(r#"").exec("hostname")"#);
    assert!(has_row(&out, "db-one", "ok", "h3"), "{out}");
    // `.limit` completes too, and narrows the session.
    console.send(".limit web-t");
    console.send("\t");
    console.expect("web-two");
    let out = console.run("");
    assert!(out.contains("limit: web-two (1 hosts)"), "{out}");
    let out = console.run(r#"hosts().exec("hostname")"#);
    assert!(has_row(&out, "web-two", "ok", "h2"), "{out}");
    assert!(out.contains("1 ok, 0 failed"), "{out}");
}

#[test]
fn a_multi_line_function_is_entered_and_called() {
    let Some(pool) = hosts::shared() else {
        return;
    };
    let (_dir, mut console) = console(pool);
    console.line("fn up(pattern) {");
    console.expect("... ");
    console.line(r#"  let r = hosts(pattern).exec("true");"#);
    console.line("  `${r.ok().len()} of ${r.len()} up`");
    console.run("}");
    let out = console.run(r#"up("web")"#);
    assert!(out.contains("2 of 2 up"), "{out}");
    let out = console.run(r#"up("all")"#);
    assert!(out.contains("3 of 3 up"), "{out}");
}

/// Whether host `i` runs a process whose command line matches `pattern` (a regex
/// written so it does not match the pgrep's own shell).
fn runs(pool: &HostPool, i: usize, pattern: &str) -> bool {
    pool.ssh(i, "root", &format!("pgrep -f '{pattern}'"))
        .status
        .success()
}

#[test]
fn ctrl_c_cancels_a_long_sleep_on_every_host_and_the_session_goes_on() {
    let Some(pool) = hosts::shared() else {
        return;
    };
    let (_dir, mut console) = console(pool);
    // A duration no other test uses, so pgrep finds only this one.
    let pattern = "sleep 30[.]0617";
    console.line(r#"hosts("web").exec("sleep 30.0617")"#);
    let started = Instant::now();
    while !(runs(pool, 0, pattern) && runs(pool, 1, pattern)) {
        assert!(
            started.elapsed() < PATIENCE,
            "the sleep never started on both hosts"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    console.send("\x03");
    console.expect("cancelled");
    let out = console.settle();
    assert!(
        !out.contains("ok, "),
        "no table of a cancelled command: {out}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "cancelled only after {:?}",
        started.elapsed()
    );
    let gone = Instant::now();
    while runs(pool, 0, pattern) || runs(pool, 1, pattern) {
        assert!(
            gone.elapsed() < Duration::from_secs(5),
            "the sleep still runs on a host after Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The session goes on, and commands run again (the cancellation was reset).
    let out = console.run(r#"hosts("web").exec("hostname")"#);
    assert!(out.contains("2 ok, 0 failed"), "{out}");
    assert_eq!(console.quit().0, 0);
}

#[test]
fn a_pending_operation_is_shown_and_applied_only_after_confirming() {
    let Some(pool) = hosts::shared() else {
        return;
    };
    let path = format!("/tmp/toyc-repl-{}.conf", std::process::id());
    let exists = |i: usize| pool.docker_exec(i, &format!("cat {path}")).status.success();
    let (_dir, mut console) = console(pool);
    let out = console.run(&format!(
        r#"on("web", || files::content("{path}", "from the console\n"))"#
    ));
    assert!(out.contains(&format!("files::content {path}")), "{out}");
    assert!(out.contains("2 changes pending"), "{out}");
    assert!(!exists(0) && !exists(1), "planned only, not applied");

    let out = console.run(".pending");
    assert!(out.contains("web-one") && out.contains("web-two"), "{out}");
    assert!(!out.contains("db-one"), "{out}");

    // Saying no keeps the plan; saying yes applies it.
    console.line(".apply");
    console.expect("[y/N]");
    console.line("n");
    console.expect("not applied; still pending");
    assert!(!exists(0));
    console.line(".apply");
    console.expect("[y/N]");
    console.line("y");
    console.expect("applied 2 changes, 0 failed");
    for i in [0, 1] {
        let cat = pool.docker_exec(i, &format!("cat {path}"));
        assert_eq!(String::from_utf8_lossy(&cat.stdout), "from the console\n");
    }
    assert!(!exists(2), "db-one was not selected");
    let out = console.run(".pending");
    assert!(out.contains("nothing pending"), "{out}");
    for i in [0, 1] {
        pool.docker_exec(i, &format!("rm -f {path}"));
    }
}

#[test]
fn meta_commands_stay_apart_from_script_input() {
    let Some(pool) = hosts::shared() else {
        return;
    };
    let (_dir, mut console) = console(pool);
    // The background connection report comes above the prompt, which is drawn again.
    console.shown("connected to 3 hosts");
    console.settle();
    let help = console.run(".help");
    let fleet = help
        .find(r#"hosts("web").exec("uptime")"#)
        .expect("fleet API in help");
    let commands = help.find(".apply").expect("meta-commands in help");
    assert!(
        fleet < commands,
        "the function-level API comes first:\n{help}"
    );
    let out = console.run(".hosts");
    for (name, i) in [("web-one", 0), ("web-two", 1), ("db-one", 2)] {
        let address = &pool.hosts()[i].address;
        assert!(
            out.lines().any(|l| l.starts_with(name)
                && l.contains(address.as_str())
                && l.contains("connected")
                && !l.contains("not connected")),
            "{out}"
        );
    }
    let out = console.run(".doc files::line");
    assert!(out.contains("files::line("), "{out}");
    assert!(
        !out.contains("files::copy("),
        "only the function asked for: {out}"
    );
    let out = console.run(".doc nosuch");
    assert!(out.contains("no module `nosuch`"), "{out}");
    let out = console.run(".frobnicate");
    assert!(out.contains("unknown command `.frobnicate`"), "{out}");
    // `.sudo on` reaches the hosts' commands (root logs in, so sudo -n just works).
    console.run(".sudo on");
    let out = console.run(r#"hosts("db-one").exec("echo $SUDO_USER")"#);
    assert!(has_row(&out, "db-one", "ok", "root"), "{out}");
    console.run(".sudo off");
    // A host function outside `on(...)` says how to use it in the console.
    let out = console.run(r#"host::exec("true")"#);
    assert!(out.contains("on(\"web\""), "{out}");
    let out = console.run(r#"on("db-one", || host::facts().hostname)"#);
    assert!(has_row(&out, "db-one", "ok", "h3"), "{out}");
}

#[test]
fn without_a_terminal_the_console_says_what_to_do_instead() {
    let ran = crate::support::cli::Toyc::new().args(["repl"]).run();
    ran.code(65).stderr_has("`toyc repl` needs a terminal");
}

#[test]
fn tab_with_nothing_to_offer_opens_no_menu_and_the_first_enter_runs_the_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut console = Console::start(dir.path(), &[]);
    // `2` completes to nothing.
    console.send("40 + 2");
    console.send("\t");
    console.expect("40 + 2");
    std::thread::sleep(Duration::from_millis(500));
    let shown = console.screen.text.lock().expect("screen").clone();
    assert!(!shown.contains("NO RECORDS FOUND"), "{shown}");
    console.send("\r");
    let out = console.settle();
    assert!(
        out.lines().any(|l| l.trim() == "42"),
        "one Enter runs the line: {out}"
    );
    // A completion that exists still completes.
    console.run("let answer = 7");
    console.send("ans");
    console.send("\t");
    console.expect("answer");
    console.send("\r");
    let out = console.settle();
    assert!(out.lines().any(|l| l.trim() == "7"), "{out}");
    let (code, _) = console.quit();
    assert_eq!(code, 0);
}

#[test]
fn the_console_applies_handlers_and_stages_as_a_script_does() {
    let Some(pool) = hosts::shared() else {
        return;
    };
    let dir = format!("/tmp/toyc-repl-handler-{}", std::process::id());
    let (_dir, mut console) = console(pool);
    // A stage, an operation that notifies a handler, all declared at the prompt.
    let out = console.run(&format!(
        r#"on("web", || {{ handler("restart", || shell::run("echo restarted >> {dir}/restarts")); stage("conf", #{{ concurrency: 1 }}, || {{ files::directory("{dir}"); files::content("{dir}/app.conf", "v1\n"); notify("restart"); }}); }})"#
    ));
    assert!(out.contains("(handler `restart`, when notified)"), "{out}");
    console.line(".apply");
    console.expect("[y/N]");
    console.line("y");
    console.expect("applied");
    for i in [0, 1] {
        let restarts = pool.docker_exec(i, &format!("cat {dir}/restarts"));
        assert_eq!(
            String::from_utf8_lossy(&restarts.stdout),
            "restarted\n",
            "the handler ran once on host {i}"
        );
        pool.docker_exec(i, &format!("rm -rf {dir}"));
    }
    assert_eq!(console.quit().0, 0);
}

// See: issue 15, items 16 and 18. Inside `on(PATTERN, || ...)` a closure has `host` and
// `vars` as a script does; a long `exec` shows the live line of the hosts still running.
#[test]
fn on_closures_see_host_and_vars_and_a_long_exec_shows_the_hosts_still_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("inv.yml"),
        "hosts:\n  l1: {transport: local, vars: {app: one}}\n  l2: {transport: local, vars: {app: two}}\n",
    )
    .expect("write inventory");
    let mut console = Console::start(dir.path(), &["-i", "inv.yml"]);
    let out = console.run(r#"on("l*", || print(`${host.name} runs ${vars.app}`))"#);
    assert!(out.contains("l1 runs one"), "{out}");
    assert!(out.contains("l2 runs two"), "{out}");
    // Outside `on`, they are the session's own.
    let out = console.run(r#"let vars = "mine"; vars"#);
    assert!(out.lines().any(|l| l.trim() == "mine"), "{out}");

    console.line(r#"hosts("l*").exec("sleep 2")"#);
    console.expect("working: l1, l2");
    let out = console.settle();
    assert!(has_row(&out, "l1", "ok", "") || out.contains("l1"), "{out}");
    let (code, _) = console.quit();
    assert_eq!(code, 0);
}
