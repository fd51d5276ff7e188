//! toyc's interactive console: Rhai statements against live hosts, one line at a time.
//!
//! # Theory of operation
//!
//! One engine (the sandbox's, with the stdlib and [`api`]'s fleet functions) and one
//! [`rhai::Scope`] live for the whole session, so variables and functions persist across
//! lines. `hosts(PATTERN).exec(CMD)` runs on every selected host at once over connections
//! the [`fleet::Fleet`] keeps open; `on(PATTERN, || ...)` calls a closure once per host
//! with that host as the one `host::` functions and operations act on. Operations only
//! join the host's pending plan: it is planned and shown after the line, and applied by
//! `.apply` after a confirmation. Lines starting with `.` are meta-commands, never script.
//!
//! Ctrl-C while a line runs cancels it through the session's run context (commands in
//! flight are killed on their hosts), then the cancellation is reset for the next line.
#![deny(missing_docs)]

pub mod api;
pub mod fleet;
pub mod input;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use nu_ansi_term::{Color, Style};
use reedline::{
    default_emacs_keybindings, ColumnarMenu, DefaultHinter, Emacs, ExternalPrinter,
    FileBackedHistory, KeyCode, KeyModifiers, MenuBuilder, Reedline, ReedlineEvent, ReedlineMenu,
    Signal,
};
use rhai::{Dynamic, Scope, AST};
use toyc_engine::events::{HumanSink, Printer};
use toyc_engine::sandbox::Sandbox;

use crate::api::{Hosts, Results};
use crate::fleet::{Fleet, FleetConfig, FleetError};
use crate::input::{ReplCompleter, ReplPrompt, RhaiHighlighter, RhaiValidator, Words};

/// Lines of history kept in the history file.
const HISTORY_LINES: usize = 10_000;

/// Why the console could not start or went away.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplError {
    /// The inventory or the limit was refused.
    #[error(transparent)]
    Fleet(#[from] FleetError),
    /// The terminal could not be read or written.
    #[error("the terminal failed: {0}")]
    Terminal(#[from] std::io::Error),
}

/// Renders the manual of a module or function for `.doc NAME`, or says why not.
pub type DocRenderer = Box<dyn Fn(&str) -> Result<String, String>>;

/// What a session starts with.
pub struct ReplConfig {
    /// Hosts, limit, connections.
    pub fleet: FleetConfig,
    /// The history file (`None`: history only for this session).
    pub history: Option<PathBuf>,
    /// Renders `.doc NAME` (a module, or `module::function`); the same text as `toyc doc`.
    pub doc: DocRenderer,
}

/// The help `.help` prints: the fleet functions first, then the meta-commands.
pub const HELP: &str = r#"Act on many hosts:
  hosts("web").exec("uptime")          run a command on every host of a pattern at once;
                                       prints one row per host
  let r = hosts("web").exec("df -h /") keep the results: r.failed(), r.ok() (hosts again),
  r["web1"].stdout                     r.rows(), r[HOST] -> #{host, status, code, stdout, stderr}
  r.failed().exec("journalctl -n 20")  hosts(...) values have .exec, .on, .names(), .len()
  hosts("web").exec("apt-get update", #{ sudo: true, timeout: 600 })
  on("web", || host::facts().distribution)
                                       call a closure once per host: `host::*` acts on
                                       that host, its value is that host's row
  on("web", || files::line("/etc/motd", "hello"))
                                       operations join each host's pending plan: shown
                                       after the line, applied only by `.apply`
Patterns: host or group names, globs (web*), !exclude, &intersect, comma-separated.
Variables and functions (fn f(x) { ... }) persist across lines; an open block continues
on the next line. Ctrl-C cancels the running command on every host; Ctrl-D exits.

Commands:
  .help              this text
  .hosts             the selected hosts, their addresses, groups and connections
  .doc [NAME]        the manual of a module (files, host, shell, template) or function
  .limit [PATTERN]   show or narrow the hosts the session works on (`.limit all` widens)
  .sudo on|off       run commands and changes through sudo
  .pending           plan and show the pending operations
  .apply             apply the pending operations after a confirmation
  .discard           drop the pending operations
  .quit              leave (or Ctrl-D)"#;

/// Run the console until `.quit` or Ctrl-D. Errors in lines never end it.
pub fn run(config: ReplConfig, runtime: &tokio::runtime::Handle) -> Result<(), ReplError> {
    let root = config.fleet.root.clone();
    let fleet = Arc::new(Fleet::new(config.fleet, runtime.clone())?);
    let mut session = Session::new(&fleet, &root, config.doc);
    let printer = ExternalPrinter::<String>::default();
    let mut editor = session.editor(config.history, printer.clone());
    start_background_connect(&fleet, &printer, runtime);
    let busy = Arc::new(AtomicBool::new(false));
    watch_interrupts(&busy, &fleet, runtime);
    println!(
        "toyc console: {} hosts. `.help` for help, Ctrl-D to leave.",
        fleet.select(None)?.len()
    );
    loop {
        let prompt = session.prompt();
        let line = match editor.read_line(&prompt) {
            Ok(Signal::Success(line)) => line,
            Ok(Signal::CtrlD) => break,
            Ok(_) => continue,
            Err(e) => return Err(ReplError::Terminal(e)),
        };
        busy.store(true, Ordering::SeqCst);
        let keep_going = session.handle(&line);
        busy.store(false, Ordering::SeqCst);
        fleet.run().cancel.reset();
        if !keep_going {
            break;
        }
    }
    if fleet.pending_count() > 0 {
        println!(
            "left {} pending operations unapplied",
            fleet.pending_count()
        );
    }
    fleet.close();
    Ok(())
}

/// Connect every selected host in the background as the session starts, so the first
/// line does not wait; say above the prompt which hosts could not be reached.
fn start_background_connect(
    fleet: &Arc<Fleet>,
    printer: &ExternalPrinter<String>,
    runtime: &tokio::runtime::Handle,
) {
    let Ok(hosts) = fleet.select(None) else {
        return;
    };
    let fleet = Arc::clone(fleet);
    let sender = printer.sender();
    runtime.spawn(async move {
        let failures = fleet.connect(&hosts).await;
        let message = if failures.is_empty() {
            format!("connected to {} hosts", hosts.len())
        } else {
            let mut text = format!(
                "connected to {} of {} hosts; unreachable:",
                hosts.len() - failures.len(),
                hosts.len()
            );
            for (host, error) in failures {
                text.push_str(&format!("\n  {host}: {error}"));
            }
            text
        };
        // A closed printer means the session already ended.
        let _ = sender.send(message);
    });
}

/// Ctrl-C reaches the process as SIGINT only while a line runs (the line editor reads
/// it as a key otherwise): then it cancels the line, and never ends the session.
fn watch_interrupts(busy: &Arc<AtomicBool>, fleet: &Arc<Fleet>, runtime: &tokio::runtime::Handle) {
    let busy = Arc::clone(busy);
    let cancel = fleet.run().cancel.clone();
    runtime.spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            if busy.load(Ordering::SeqCst) {
                eprintln!("^C cancelling: killing the running commands on every host");
                cancel.cancel();
            }
        }
    });
}

/// The state one session carries from line to line.
struct Session {
    fleet: Arc<Fleet>,
    sandbox: Sandbox,
    engine: rhai::Engine,
    scope: Scope<'static>,
    functions: AST,
    words: Arc<Mutex<Words>>,
    doc: DocRenderer,
}

impl Session {
    fn new(fleet: &Arc<Fleet>, root: &Path, doc: DocRenderer) -> Session {
        // The session's run carries the limits (one engine serves the whole session:
        // its clock must not run out), the cancellation and the secrets.
        let mut sandbox = fleet.run().sandbox(root);
        toyc_stdlib::register(&mut sandbox);
        let mut engine = sandbox.engine(None, |text| println!("{text}"));
        api::register(&mut engine, fleet);
        let session = Session {
            fleet: Arc::clone(fleet),
            sandbox,
            engine,
            scope: fleet.closure_variables().scope(),
            functions: AST::empty(),
            words: Arc::new(Mutex::new(Words::default())),
            doc,
        };
        session.refresh_words();
        session
    }

    fn editor(&self, history: Option<PathBuf>, printer: ExternalPrinter<String>) -> Reedline {
        let mut keybindings = default_emacs_keybindings();
        keybindings.add_binding(
            KeyModifiers::NONE,
            KeyCode::Tab,
            ReedlineEvent::UntilFound(vec![
                ReedlineEvent::Menu("completion_menu".to_owned()),
                ReedlineEvent::MenuNext,
            ]),
        );
        let menu = ColumnarMenu::default().with_name("completion_menu");
        let mut editor = Reedline::create()
            // Parsing needs no functions: calls are resolved when a line runs.
            .with_validator(Box::new(RhaiValidator {
                engine: self.sandbox.engine(None, |_| {}),
            }))
            .with_highlighter(Box::new(RhaiHighlighter))
            .with_completer(Box::new(ReplCompleter {
                words: Arc::clone(&self.words),
            }))
            .with_menu(ReedlineMenu::EngineCompleter(Box::new(
                input::CompletionMenu(menu),
            )))
            .with_quick_completions(true)
            .with_partial_completions(true)
            .with_hinter(Box::new(
                DefaultHinter::default().with_style(Style::new().fg(Color::DarkGray)),
            ))
            .with_edit_mode(Box::new(Emacs::new(keybindings)))
            .with_external_printer(printer);
        let history = history.and_then(|path| {
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            match FileBackedHistory::with_file(HISTORY_LINES, path.clone()) {
                Ok(history) => Some(history),
                Err(e) => {
                    eprintln!(
                        "warning: history file `{}` unusable ({e}); history lasts this session only",
                        path.display()
                    );
                    None
                }
            }
        });
        if let Some(history) = history {
            editor = editor.with_history(Box::new(history));
        }
        editor
    }

    fn prompt(&self) -> ReplPrompt {
        let mut text = String::from("toyc");
        if let Some(limit) = self.fleet.limit() {
            text.push(' ');
            text.push_str(&limit);
        }
        let pending = self.fleet.pending_count();
        if pending > 0 {
            text.push_str(&format!(" [{pending} pending]"));
        }
        if self.fleet.sudo() {
            text.push('#');
        }
        ReplPrompt {
            text,
            indicator: "> ",
        }
    }

    /// What Tab offers: refreshed after every line.
    fn refresh_words(&self) {
        let mut functions = Vec::new();
        let mut module_functions = Vec::new();
        for signature in self.engine.gen_fn_signatures(false) {
            let name = signature.split('(').next().unwrap_or_default().trim();
            if name.starts_with("get$") || name.starts_with("set$") || name.starts_with("index$") {
                continue;
            }
            if name.contains("::") {
                module_functions.push(name.to_owned());
            } else if !name.is_empty() {
                functions.push(name.to_owned());
            }
        }
        for f in self.functions.iter_functions() {
            functions.push(f.name.to_owned());
        }
        let modules = toyc_stdlib::modules()
            .into_iter()
            .map(|(name, _)| name.to_owned())
            .collect();
        let inventory = self.fleet.inventory();
        let targets = inventory
            .hosts()
            .iter()
            .map(|h| h.name.clone())
            .chain(inventory.groups().iter().map(|g| g.name.clone()))
            .chain(std::iter::once("localhost".to_owned()))
            .collect();
        let variables = self
            .scope
            .iter()
            .map(|(name, _, _)| name.to_owned())
            .collect();
        *self.words.lock().unwrap_or_else(|p| p.into_inner()) = Words {
            functions,
            modules,
            module_functions,
            targets,
            variables,
        };
    }

    /// One submitted input; `false` to end the session.
    fn handle(&mut self, line: &str) -> bool {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            return true;
        }
        if trimmed.starts_with('.') {
            return self.meta(trimmed);
        }
        self.eval(line);
        if self.fleet.take_new_pending() {
            self.show_pending();
        }
        self.refresh_words();
        true
    }

    fn eval(&mut self, line: &str) {
        let source = Path::new("repl");
        let ast = match self.engine.compile_with_scope(&self.scope, line) {
            Ok(ast) => ast,
            Err(e) => {
                let error = toyc_engine::script_error::ScriptError::from_parse(&e, source, line);
                eprintln!("error: {error}");
                return;
            }
        };
        // Every function defined so far, and this line's statements.
        let mut program = self.functions.merge(&ast);
        let result = self
            .engine
            .eval_ast_with_scope::<Dynamic>(&mut self.scope, &program);
        program.clear_statements();
        self.functions = program;
        match result {
            Ok(value) => show_value(&value),
            Err(e) => {
                let error = self.sandbox.describe(&e, source).to_string();
                eprintln!("error: {error}");
                if error.contains("this function needs a host") {
                    eprintln!(
                        "hint: in the console, call it for hosts: on(\"web\", || host::exec(\"uptime\"))"
                    );
                }
            }
        }
    }

    fn show_pending(&self) -> usize {
        match self.fleet.show_pending() {
            Ok(0) => {
                println!(
                    "nothing to change ({} operations pending)",
                    self.fleet.pending_count()
                );
                0
            }
            Ok(changes) => {
                println!(
                    "{changes} changes pending: `.apply` makes them, `.pending` shows them again, `.discard` drops them"
                );
                changes
            }
            Err(e) => {
                eprintln!("error: planning failed:\n{e}");
                0
            }
        }
    }

    /// A meta-command; `false` to end the session.
    fn meta(&mut self, line: &str) -> bool {
        let (command, arg) = match line.split_once(char::is_whitespace) {
            Some((c, a)) => (c, a.trim()),
            None => (line, ""),
        };
        match command {
            ".help" => println!("{HELP}"),
            ".quit" | ".exit" => return false,
            ".hosts" => self.list_hosts(),
            // The console's own functions are documented in its help.
            ".doc" if matches!(arg, "hosts" | "on" | "exec") => println!("{HELP}"),
            ".doc" => match (self.doc)(arg) {
                Ok(text) => println!("{}", text.trim_end()),
                Err(e) => eprintln!("error: {e}"),
            },
            ".limit" if arg.is_empty() => println!(
                "limit: {}",
                self.fleet.limit().unwrap_or_else(|| "all".to_owned())
            ),
            ".limit" => match self.fleet.set_limit(Some(arg)) {
                Ok(n) => println!("limit: {arg} ({n} hosts)"),
                Err(e) => eprintln!("error: {e}"),
            },
            ".sudo" => match arg {
                "on" => self.fleet.set_sudo(true),
                "off" => self.fleet.set_sudo(false),
                "" => println!("sudo: {}", if self.fleet.sudo() { "on" } else { "off" }),
                other => eprintln!("error: `.sudo {other}`: say `.sudo on` or `.sudo off`"),
            },
            ".pending" => {
                if self.fleet.pending_count() == 0 {
                    println!("nothing pending");
                } else {
                    self.show_pending();
                }
            }
            ".apply" => self.apply(),
            ".discard" => println!(
                "dropped {} pending operations",
                self.fleet.discard_pending()
            ),
            other => eprintln!("error: unknown command `{other}`; `.help` lists the commands"),
        }
        true
    }

    fn list_hosts(&self) {
        let hosts = match self.fleet.select(None) {
            Ok(hosts) => hosts,
            Err(e) => {
                eprintln!("error: {e}");
                return;
            }
        };
        let width = hosts.iter().map(|h| h.name.len()).max().unwrap_or(0);
        for host in &hosts {
            let state = if self.fleet.is_connected(&host.name) {
                "connected"
            } else {
                "not connected"
            };
            println!(
                "{:width$}  {:<15}  {:<13}  {}",
                host.name,
                host.address,
                state,
                host.groups.join(",")
            );
        }
    }

    fn apply(&mut self) {
        if self.fleet.pending_count() == 0 {
            println!("nothing pending");
            return;
        }
        let changes = self.show_pending();
        if changes == 0 {
            self.fleet.discard_pending();
            return;
        }
        if !confirm(&format!("apply {changes} changes? [y/N] ")) {
            println!("not applied; still pending");
            return;
        }
        let (done, failed, problems) = self.fleet.apply_pending();
        for problem in &problems {
            eprintln!("error: {problem}");
        }
        println!("applied {done} changes, {failed} failed");
    }
}

/// Ask a yes/no question on the terminal; anything but `y`/`yes` (or Ctrl-C) is no.
fn confirm(question: &str) -> bool {
    let mut editor = Reedline::create();
    let prompt = ReplPrompt {
        text: question.trim_end().to_owned(),
        indicator: " ",
    };
    matches!(
        editor.read_line(&prompt),
        Ok(Signal::Success(answer)) if matches!(answer.trim(), "y" | "Y" | "yes")
    )
}

/// A line's value: fleet results as their table, other values as Rhai shows them.
fn show_value(value: &Dynamic) {
    if value.is_unit() {
        return;
    }
    if let Some(results) = value.read_lock::<Results>() {
        println!("{}", results.render());
    } else if let Some(hosts) = value.read_lock::<Hosts>() {
        println!("hosts({})", hosts.names().join(", "));
    } else if value.is_string() {
        println!("{value}");
    } else {
        println!("{value:?}");
    }
}

/// A human sink for a session over `hosts`: changes and failures on stderr.
pub fn event_sink(host_width: usize, printer: Printer) -> Arc<HumanSink> {
    Arc::new(HumanSink::new(false, false, host_width, printer))
}
