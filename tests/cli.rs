//! The command line itself: exit codes, help, output formats, against localhost and
//! against an address nobody listens on.

use serde::Deserialize;

use crate::support::cli::{repo, Toyc};

#[test]
fn usage_errors_exit_64_and_help_exits_0() {
    Toyc::new()
        .args(["exec", "--no-such-flag", "--", "true"])
        .run()
        .code(64);
    Toyc::new()
        .args(["exec"])
        .run()
        .code(64)
        .stderr_has("COMMAND");
    let help = Toyc::new().args(["--help"]).run();
    help.code(0)
        .stdout_has("Exit status:")
        .stdout_has("64   usage error");
    for sub in ["run", "exec", "doc"] {
        Toyc::new()
            .args([sub, "--help"])
            .run()
            .code(0)
            .stdout_has("Examples:");
    }
}

#[test]
fn hello_runs_on_localhost_with_no_setup() {
    let ran = Toyc::new()
        .args([
            "run",
            repo().join("scripts/hello.rhai").to_str().expect("utf-8"),
        ])
        .run();
    ran.code(0).stdout_has("[localhost] localhost: ");
    let written = ran
        .stdout
        .lines()
        .find_map(|l| {
            l.split_once("wrote ")
                .map(|(_, rest)| rest.split(':').next().unwrap_or_default().to_owned())
        })
        .expect("the script says which file it wrote");
    let content = std::fs::read_to_string(&written).expect("the file exists");
    assert!(content.starts_with("hello from toyc, "), "{content}");
    std::fs::remove_dir_all(std::path::Path::new(&written).parent().expect("dir"))
        .expect("cleanup");
}

#[test]
fn exec_groups_output_and_exits_1_when_a_command_fails() {
    Toyc::new()
        .args(["exec", "--", "echo out; echo err >&2; exit 3"])
        .run()
        .code(1)
        .stdout_has("--- localhost (failed: exit status 3")
        .stdout_has("out")
        .stderr_has("err")
        .stderr_has("0 ok, 1 failed, 0 unreachable");
    Toyc::new()
        .args(["exec", "--", "true"])
        .run()
        .code(0)
        .stderr_has("1 ok, 0 failed, 0 unreachable");
}

#[test]
fn exec_stream_prefixes_each_line_with_its_host() {
    Toyc::new()
        .args(["exec", "--stream", "--", "echo one; echo two"])
        .run()
        .code(0)
        .stdout_has("localhost | one\nlocalhost | two\n");
}

#[test]
fn exec_timeout_fails_the_host() {
    let started = std::time::Instant::now();
    Toyc::new()
        .args(["exec", "--timeout", "0.5", "--", "sleep 30"])
        .run()
        .code(1)
        .stdout_has("command timed out after 0.5s on `localhost`");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[test]
fn an_unreachable_host_exits_3_within_the_connect_timeout() {
    let toyc = Toyc::new().file(
        "inv.yml",
        "hosts:\n  nowhere: {address: 127.0.0.1, ssh: {port: 1}}\n",
    );
    let started = std::time::Instant::now();
    toyc.args([
        "exec",
        "-i",
        "inv.yml",
        "--connect-timeout",
        "3",
        "--",
        "true",
    ])
    .run()
    .code(3)
    .stdout_has("--- nowhere (unreachable: unable to connect to `nowhere`")
    .stderr_has("0 ok, 0 failed, 1 unreachable");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[test]
fn doc_prints_every_host_function_with_an_example() {
    let ran = Toyc::new().args(["doc", "host"]).run();
    ran.code(0);
    for f in [
        "exec",
        "put",
        "get",
        "file_exists",
        "facts",
        "os",
        "hostname",
        "arch",
        "log",
    ] {
        assert!(
            ran.stdout.contains(&format!("host::{f}(")),
            "host::{f} is documented"
        );
    }
    Toyc::new()
        .args(["doc", "nope"])
        .run()
        .code(65)
        .stderr_has("no module `nope` and no task command of that name; modules: ");
}

#[test]
fn doc_documents_every_built_in_task_command_with_its_arguments() {
    let commands: &[(&str, &[&str])] = &[
        ("shell", &["cmd", "cwd"]),
        ("upload", &["src", "dest", "mode"]),
        ("unpack", &["archive", "dest", "strip_components"]),
        ("symlink", &["target", "link"]),
        ("wait_port", &["port", "address", "wait"]),
        ("sleep", &["seconds"]),
        ("service_restart", &["unit", "service"]),
        (
            "send_graphite",
            &["metric", "value", "carbon_host", "carbon_port"],
        ),
        ("file_exists", &["path"]),
    ];
    let all = Toyc::new().args(["doc", "tasks"]).run();
    all.code(0).stdout_has("`command` and `host` are required");
    for (command, arguments) in commands {
        let one = Toyc::new().args(["doc", command]).run();
        one.code(0).stdout_has(&format!("command: \"{command}\""));
        for argument in *arguments {
            assert!(
                one.stdout.contains(&format!("  {argument} ")),
                "`toyc doc {command}` explains `{argument}`:\n{}",
                one.stdout
            );
        }
        assert!(
            all.stdout.contains(&format!("\n{command}\n")),
            "{command} in `toyc doc tasks`"
        );
    }
    // The whole manual has them too.
    Toyc::new()
        .args(["doc"])
        .run()
        .code(0)
        .stdout_has("\nwait_port\n");
}

/// Mirrors of the `--json` envelope: any field added or renamed fails this test, so the
/// format documented in `toyc_engine::events` cannot drift silently.
#[derive(Debug, Deserialize)]
#[serde(
    tag = "type",
    content = "data",
    rename_all = "snake_case",
    deny_unknown_fields
)]
#[allow(dead_code)]
enum Event {
    RunStart {
        command: String,
        hosts: Vec<String>,
    },
    Output {
        host: String,
        stream: String,
        line: String,
    },
    Message {
        host: Option<String>,
        level: String,
        text: String,
    },
    StageStart {
        stage: String,
        hosts: Vec<String>,
        continues_on_failure: bool,
    },
    StageEnd {
        stage: String,
        ok: usize,
        failed: usize,
        skipped: usize,
        aborted: bool,
    },
    TaskStart {
        stage: String,
        index: usize,
        command: String,
        host: String,
        service: Option<String>,
    },
    TaskEnd {
        stage: String,
        index: usize,
        command: String,
        host: String,
        service: Option<String>,
        status: String,
        error: Option<String>,
        elapsed_ms: u64,
    },
    Log {
        level: String,
        component: String,
        host: Option<String>,
        service: Option<String>,
        text: String,
    },
    HostEnd(HostEnd),
    Summary(Summary),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct HostEnd {
    host: String,
    status: String,
    kind: Option<String>,
    exit_code: Option<i32>,
    error: Option<String>,
    changed: usize,
    elapsed_ms: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Summary {
    ok: usize,
    failed: usize,
    unreachable: usize,
    skipped: usize,
    changed: usize,
    elapsed_ms: u64,
}

/// Every stdout line of `ran` read through the mirror (which fails on unknown fields).
fn events_of(ran: &crate::support::cli::Ran) -> Vec<Event> {
    ran.json_lines()
        .into_iter()
        .map(|v| serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}")))
        .collect()
}

#[test]
fn json_events_follow_the_documented_schema() {
    let ran = Toyc::new()
        .args(["exec", "--json", "--", "echo hi; exit 2"])
        .run();
    ran.code(1);
    let events = events_of(&ran);
    assert!(
        matches!(&events[0], Event::RunStart { command, hosts } if command == "exec" && hosts == &["localhost"])
    );
    assert!(
        matches!(&events[1], Event::Output { line, stream, .. } if line == "hi" && stream == "stdout")
    );
    assert!(
        matches!(&events[2], Event::HostEnd(h) if h.status == "failed" && h.exit_code == Some(2))
    );
    assert!(matches!(&events[3], Event::Summary(s) if s.failed == 1 && s.ok == 0));
    let ran = Toyc::new()
        .file("s.rhai", "print(\"hi\"); host::log(\"note\");")
        .args(["run", "s.rhai", "--json"])
        .run();
    ran.code(0);
    let kinds: Vec<String> = ran
        .json_lines()
        .into_iter()
        .map(|v| {
            serde_json::from_value::<Event>(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}"));
            v["type"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    assert_eq!(
        kinds,
        ["run_start", "message", "message", "host_end", "summary"]
    );

    // A task list on localhost: a task that logs, one that fails, one never started.
    let plan = r#"{"name": "schema", "stages": [{"name": "s", "concurrency": 1, "tasks": [
        {"command": "note", "host": "localhost", "service": "web"},
        {"command": "shell", "host": "localhost", "cmd": "exit 3"},
        {"command": "sleep", "host": "localhost", "seconds": 0}]}]}"#;
    let ran = Toyc::new()
        .file("plan.json", plan)
        .file(
            "commands/note.rhai",
            "fn initialize(args) {}\nfn execute(ctx) { ctx.log(`hello from ${ctx.host}`); 0 }",
        )
        .args(["apply", "plan.json", "--json"])
        .run();
    ran.code(1);
    let events = events_of(&ran);
    assert!(events.iter().any(|e| matches!(e, Event::Log { component, service, text, .. }
        if component == "note" && service.as_deref() == Some("web") && text == "hello from localhost")));
    let ends: Vec<(usize, &str)> = events
        .iter()
        .filter_map(|e| match e {
            Event::TaskEnd { index, status, .. } => Some((*index, status.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(ends, [(1, "ok"), (2, "failed"), (3, "skipped")]);
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::TaskStart { index: 2, command, .. } if command == "shell")));
}

#[test]
fn ctrl_c_stops_a_script_blocked_in_a_command_and_kills_that_command() {
    let toyc = Toyc::new().file(
        "s.rhai",
        "host::exec(\"sleep 33.5\");\nprint(\"not reached\");",
    );
    let child = std::process::Command::new(crate::support::cli::binary())
        .args(["run", "s.rhai"])
        .current_dir(toyc.dir())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("toyc starts");
    std::thread::sleep(std::time::Duration::from_millis(800));
    let started = std::time::Instant::now();
    assert!(std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs")
        .success());
    let output = child.wait_with_output().expect("toyc exits");
    assert_eq!(output.status.code(), Some(130));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert!(!String::from_utf8_lossy(&output.stdout).contains("not reached"));
    let left = std::process::Command::new("pgrep")
        .args(["-f", "slee[p] 33.5"])
        .output()
        .expect("pgrep runs");
    assert_eq!(
        String::from_utf8_lossy(&left.stdout).trim(),
        "",
        "the command was killed"
    );
}

#[test]
fn a_mistyped_limit_is_an_input_error_with_a_suggestion() {
    Toyc::new()
        .file(
            "inv.yml",
            "hosts:\n  web1: {}\n  web2: {}\ngroups:\n  web: {hosts: [web1, web2]}\n",
        )
        .run_with(&["exec", "-i", "inv.yml", "-l", "wbe1", "--", "true"])
        .code(65)
        .stderr_has("did you mean `web1`?");
    Toyc::new()
        .file("inv.yml", "hosts:\n  web1: {adress: 10.0.0.1}\n")
        .run_with(&["exec", "-i", "inv.yml", "--", "true"])
        .code(65)
        .stderr_has("inv.yml:2:")
        .stderr_has("did you mean `address`?");
}

#[test]
fn a_secret_never_appears_in_any_output() {
    const PW: &str = "hunter2-zq81-secret";
    const DB: &str = "db-pass-Xy7-secret";
    let toyc = Toyc::new()
        .file("secrets.yml", &format!("db_password: {DB}\n"))
        .file(
            "s.rhai",
            &format!(
                "let pw = secret(\"{PW}\");\n\
                 print(`the password is ${{pw}}`);\n\
                 host::log(`logged ${{pw}} and ${{vars.db_password}}`);\n\
                 files::content(`${{vars.dir}}/app.cfg`, `password = ${{vars.db_password}}\\n`);\n\
                 host::exec(`echo ${{pw}}; echo ${{vars.db_password}} >&2; exit 3`);\n"
            ),
        );
    let dir = toyc.dir().display().to_string();
    let base = ["run", "s.rhai", "--secrets-file", "secrets.yml", "--var"];
    let dir_var = format!("dir={dir}");
    for extra in [
        &["-vvv"][..],
        &["--json", "-vvv"][..],
        &["--check", "--diff", "-vvv"][..],
    ] {
        let mut args: Vec<&str> = base.to_vec();
        args.push(&dir_var);
        args.extend_from_slice(extra);
        let ran = toyc.run_with(&args);
        // The command fails: its stdout, stderr and the error all carry the secrets.
        ran.code(1);
        for secret in [PW, DB] {
            assert!(
                !ran.stdout.contains(secret),
                "{extra:?} leaked {secret} on stdout:\n{}",
                ran.stdout
            );
            assert!(
                !ran.stderr.contains(secret),
                "{extra:?} leaked {secret} on stderr:\n{}",
                ran.stderr
            );
        }
        assert!(
            ran.stdout.contains("********") || ran.stderr.contains("********"),
            "masked text is still shown: {}{}",
            ran.stdout,
            ran.stderr
        );
    }
    // Diffs of planned content mask it too (no failing command this time).
    let toyc = toyc.file(
        "t.rhai",
        "files::content(`${vars.dir}/app.cfg`, `password = ${vars.db_password}\\n`);\n",
    );
    let ran = toyc.run_with(&[
        "run",
        "t.rhai",
        "--secrets-file",
        "secrets.yml",
        "--var",
        &dir_var,
        "--check",
        "--diff",
    ]);
    ran.code(2).stderr_has("+password = ********");
    assert!(!ran.stderr.contains(DB), "{}", ran.stderr);

    // Through a template: in its diff at -vvv, and when the template fails after the
    // line that renders the secret.
    let toyc = toyc
        .file("templates/app.j2", "password = {{ db_password }}\n")
        .file(
            "templates/broken.j2",
            "password = {{ db_password }}\n{{ db_password | nosuchfilter }}\n",
        )
        .file(
            "u.rhai",
            "files::template(\"app.j2\", `${vars.dir}/app.cfg`, #{ mode: \"0600\" });\n",
        )
        .file(
            "v.rhai",
            "files::template(\"broken.j2\", `${vars.dir}/broken.cfg`);\n",
        );
    for (script, code) in [("u.rhai", 2), ("v.rhai", 65)] {
        let ran = toyc.run_with(&[
            "run",
            script,
            "--secrets-file",
            "secrets.yml",
            "--var",
            &dir_var,
            "--check",
            "--diff",
            "-vvv",
        ]);
        assert!(
            [code, 1].contains(&ran.code),
            "{script}: exit {}\n{}",
            ran.code,
            ran.stderr
        );
        assert!(
            !ran.stderr.contains(DB) && !ran.stdout.contains(DB),
            "{script} leaked the secret:\n{}{}",
            ran.stdout,
            ran.stderr
        );
        if code == 2 {
            ran.stderr_has("+password = ********");
        } else {
            ran.stderr_has("nosuchfilter");
        }
    }
}

/// Whether `program` runs here (zsh, fish and groff are optional on a test machine).
fn have(program: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn completions_for_bash_zsh_and_fish_and_a_man_page_are_generated_from_the_cli() {
    let toyc = Toyc::new();
    for shell in ["bash", "zsh", "fish"] {
        let ran = toyc.run_with(&["completions", shell]);
        ran.code(0);
        for subcommand in ["apply", "completions", "man", "run", "role"] {
            assert!(
                ran.stdout.contains(subcommand),
                "{shell} completes `{subcommand}`"
            );
        }
        std::fs::write(toyc.dir().join(format!("toyc.{shell}")), &ran.stdout).expect("write");
    }
    // bash parses the script, and completing `toyc ap` offers `apply`.
    let bash = std::process::Command::new("bash")
        .current_dir(toyc.dir())
        .args([
            "-c",
            "set -e; bash -n toyc.bash; source toyc.bash; COMP_WORDS=(toyc ap); COMP_CWORD=1; \
             _toyc toyc ap toyc; echo \"${COMPREPLY[@]}\"",
        ])
        .output()
        .expect("bash runs");
    let words = String::from_utf8_lossy(&bash.stdout);
    assert!(
        bash.status.success() && words.split_whitespace().any(|w| w == "apply"),
        "{words}{}",
        String::from_utf8_lossy(&bash.stderr)
    );
    for shell in ["zsh", "fish"] {
        if have(shell) {
            let check = std::process::Command::new(shell)
                .current_dir(toyc.dir())
                .args(["-n", &format!("toyc.{shell}")])
                .output()
                .expect("the shell runs");
            assert!(
                check.status.success(),
                "{shell} -n: {}",
                String::from_utf8_lossy(&check.stderr)
            );
        }
    }
    toyc.run_with(&["completions", "powershell-2000"])
        .code(64)
        .stderr_has("possible values");

    let man = toyc.run_with(&["man"]);
    man.code(0).stdout_has(".TH toyc 1");
    for subcommand in ["toyc\\-apply", "toyc\\-completions", "toyc\\-man"] {
        assert!(
            man.stdout.contains(subcommand),
            "the man page lists {subcommand}"
        );
    }
    std::fs::write(toyc.dir().join("toyc.1"), &man.stdout).expect("write");
    // The pages toyc(1) refers to exist.
    let run = toyc.run_with(&["man", "run"]);
    run.code(0)
        .stdout_has(".TH toyc-run 1")
        .stdout_has("\\-\\-inventory");
    std::fs::write(toyc.dir().join("toyc-run.1"), &run.stdout).expect("write");
    toyc.run_with(&["man", "nope"])
        .code(65)
        .stderr_has("`nope` is not a toyc subcommand");
    if have("groff") {
        for page in ["toyc.1", "toyc-run.1"] {
            // -P-bcou: plain text, no overstriking for bold and underline.
            let rendered = std::process::Command::new("groff")
                .current_dir(toyc.dir())
                .args(["-man", "-Tutf8", "-ww", "-P-bcou", page])
                .output()
                .expect("groff runs");
            let text = String::from_utf8_lossy(&rendered.stdout);
            assert!(
                rendered.status.success() && text.contains("SYNOPSIS"),
                "{text}"
            );
            assert!(
                rendered.stderr.is_empty(),
                "groff warns on {page}: {}",
                String::from_utf8_lossy(&rendered.stderr)
            );
        }
    }
}

/// A command's `-h` as its headings, each with the long flags listed under it.
fn flag_groups(command: &str) -> std::collections::BTreeMap<String, Vec<String>> {
    let help = Toyc::new().args([command, "-h"]).run();
    help.code(0);
    let flag = regex::Regex::new(r"^  (?:-\w, |    )(--[\w-]+)").expect("regex");
    let mut groups = std::collections::BTreeMap::<String, Vec<String>>::new();
    let mut heading = String::new();
    for line in help.stdout.lines() {
        if let Some(name) = line.strip_suffix(':').filter(|_| !line.starts_with(' ')) {
            name.clone_into(&mut heading);
        } else if let Some(found) = flag.captures(line) {
            groups
                .entry(heading.clone())
                .or_default()
                .push(found[1].to_owned());
        }
    }
    groups
}

#[test]
fn up_takes_no_deploy_flags() {
    let help = Toyc::new().args(["up", "--help"]).run();
    help.code(0);
    for flag in ["--config", "--set", "--component", "--directory"] {
        assert!(
            !help.stdout.contains(flag),
            "`toyc up --help` lists {flag}:\n{}",
            help.stdout
        );
    }
    Toyc::new()
        .args(["up", "site.rhai", "--config", "prod.yml"])
        .run()
        .code(64)
        .stderr_has("--config");
}

#[test]
fn every_command_lists_the_same_flag_group_where_it_applies() {
    // Which groups each command takes: a group is one set of flags, shared whole.
    let expected: &[(&str, &[&str])] = &[
        ("Targets", &["run", "up", "role", "plan", "apply"]),
        ("Output", &["run", "up", "role", "plan", "apply"]),
        ("Changes", &["run", "up", "role"]),
        ("Script limits", &["run", "up", "role", "plan", "apply"]),
        ("Variables", &["run", "up", "role"]),
        ("Deploy", &["run", "plan"]),
    ];
    let commands = ["run", "up", "role", "plan", "apply"];
    let helps: Vec<_> = commands.iter().map(|c| (*c, flag_groups(c))).collect();
    for (group, takers) in expected {
        let mut seen: Option<(&str, &Vec<String>)> = None;
        for (command, groups) in &helps {
            match (groups.get(*group), takers.contains(command)) {
                (None, false) => {}
                (None, true) => panic!("`toyc {command} -h` has no {group} group: {groups:?}"),
                (Some(flags), false) => {
                    panic!("`toyc {command} -h` has a {group} group it does not apply: {flags:?}")
                }
                (Some(flags), true) => match seen {
                    None => seen = Some((command, flags)),
                    Some((first, theirs)) => assert_eq!(
                        flags, theirs,
                        "the {group} flags of `toyc {command}` differ from `toyc {first}`'s"
                    ),
                },
            }
        }
    }
    assert_eq!(
        flag_groups("role")["Script limits"],
        ["--script-timeout", "--max-operations", "--max-memory"]
    );
}

// See: issue 15, item 14. Without a terminal to ask on, a run that would change a host
// needs `-y`: a flag missing from the command line is a usage error (64), not bad input.
#[test]
fn changes_without_a_terminal_and_without_yes_exit_64() {
    let toyc = Toyc::new();
    let target = toyc.dir().join("made.txt");
    let toyc = toyc.file(
        "s.rhai",
        &format!("files::content(\"{}\", \"x\\n\");\n", target.display()),
    );
    toyc.run_with(&["run", "s.rhai"])
        .code(64)
        .stderr_has("pass `-y`");
    assert!(!target.exists(), "nothing was changed");
    toyc.run_with(&["run", "s.rhai", "-y"]).code(0);
    assert!(target.exists(), "`-y` applies it");
}

// See: issue 15, item 11. `toyc up` numbers its passes (for people and in `--json`), and
// a host still not converged after the last pass is not "ok" in the table.
#[test]
fn up_numbers_its_passes_and_a_host_that_did_not_converge_is_not_ok() {
    let toyc = Toyc::new();
    let dir = toyc.dir().join("app");
    let script = format!(
        "files::directory(\"{d}\");\n\
         if host::file_exists(\"{d}/one\") {{ files::content(\"{d}/two\", \"2\\n\"); }}\n\
         files::content(\"{d}/one\", \"1\\n\");\n",
        d = dir.display()
    );
    let toyc = toyc.file("s.rhai", &script);
    let ran = toyc.run_with(&["up", "s.rhai", "-y", "--json", "--max-cycles", "1"]);
    ran.code(1);
    let lines = ran.json_lines();
    let passes: Vec<_> = lines
        .iter()
        .filter(|l| l["type"] == "pass")
        .map(|l| (l["data"]["pass"].clone(), l["data"]["max_cycles"].clone()))
        .collect();
    assert_eq!(
        passes,
        vec![(1.into(), 1.into()), (2.into(), 1.into())],
        "{}",
        ran.stdout
    );
    let end = lines
        .iter()
        .find(|l| l["type"] == "host_end")
        .expect("a host_end");
    assert_eq!(end["data"]["status"], "failed", "{end}");
    assert_eq!(end["data"]["kind"], "not_converged", "{end}");
    let summary = lines.last().expect("a summary");
    assert_eq!(summary["data"]["passes"], 2, "{summary}");

    std::fs::remove_dir_all(&dir).expect("start over");
    let human = toyc.run_with(&["up", "s.rhai", "-y", "--max-cycles", "1"]);
    human
        .code(1)
        .stderr_has("--> pass 1 on 1 host(s)")
        .stderr_has("--> pass 2 on 1 host(s) (only looking")
        .stderr_has("not converged: 1 change(s) still pending")
        .stderr_has("0 ok, 1 failed");
    toyc.run_with(&["up", "s.rhai", "-y"])
        .code(0)
        .stderr_has("1 ok, 0 failed")
        .stderr_has("(2 passes)");
}

// See: issue 15, item 22. A large run's table lists the hosts that changed or did not
// succeed and one line for the rest; `--full-table` (and `--json`) keep every host.
#[test]
fn a_large_run_lists_only_the_hosts_that_matter() {
    let toyc = Toyc::new();
    let target = toyc.dir().join("changed-on-l03");
    let mut inventory = String::from("hosts:\n");
    for i in 1..=24 {
        inventory.push_str(&format!("  l{i:02}: {{transport: local}}\n"));
    }
    let toyc = toyc.file("inv.yml", &inventory).file(
        "s.rhai",
        &format!(
            "if host.name == \"l03\" {{ files::content(\"{}\", \"x\\n\"); }}\n\
             if host.name == \"l07\" {{ throw \"l07 is broken\"; }}\n",
            target.display()
        ),
    );
    let ran = toyc.run_with(&["run", "s.rhai", "-i", "inv.yml", "-y"]);
    ran.code(1)
        .stderr_has("22 hosts ok, unchanged (`--full-table` lists every host)");
    // A table row: the host, then its result.
    let rows = |stderr: &str, host: &str| {
        stderr
            .lines()
            .filter(|l| {
                let mut words = l.split_whitespace();
                words.next() == Some(host)
                    && matches!(
                        words.next(),
                        Some("ok" | "failed" | "unreachable" | "skipped")
                    )
            })
            .count()
    };
    assert_eq!(rows(&ran.stderr, "l03"), 1, "{}", ran.stderr);
    assert_eq!(rows(&ran.stderr, "l07"), 1, "{}", ran.stderr);
    assert_eq!(rows(&ran.stderr, "l05"), 0, "{}", ran.stderr);

    let full = toyc.run_with(&["run", "s.rhai", "-i", "inv.yml", "-y", "--full-table"]);
    assert_eq!(rows(&full.stderr, "l05"), 1, "{}", full.stderr);
    assert!(
        !full.stderr.contains("hosts ok, unchanged"),
        "{}",
        full.stderr
    );
    let json = toyc.run_with(&["run", "s.rhai", "-i", "inv.yml", "-y", "--json"]);
    let ends = json
        .json_lines()
        .iter()
        .filter(|l| l["type"] == "host_end")
        .count();
    assert_eq!(ends, 24);
}

/// `toyc ARGS` in `dir` in a pseudo-terminal (stdin, stdout and stderr), what it shows
/// collected by a thread, escape sequences removed.
fn in_a_terminal(
    dir: &std::path::Path,
    args: &[&str],
) -> (
    std::sync::Arc<std::sync::Mutex<String>>,
    Box<dyn portable_pty::Child + Send + Sync>,
) {
    use portable_pty::{native_pty_system, CommandBuilder, PtySize};
    use std::io::Read;
    let pty = native_pty_system()
        .openpty(PtySize {
            rows: 50,
            cols: 200,
            pixel_width: 0,
            pixel_height: 0,
        })
        .expect("a pseudo-terminal");
    let mut command = CommandBuilder::new(crate::support::cli::binary());
    command.args(args);
    command.cwd(dir);
    command.env("TERM", "xterm-256color");
    command.env_remove("TOYC_INVENTORY");
    command.env_remove("TOYC_LIMIT");
    let child = pty.slave.spawn_command(command).expect("toyc starts");
    drop(pty.slave);
    let mut reader = pty.master.try_clone_reader().expect("pty reader");
    let screen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let shown = std::sync::Arc::clone(&screen);
    std::thread::spawn(move || {
        let _master = pty.master;
        let escapes = regex::Regex::new(r"\x1b\[[0-9;?]*[A-Za-z]").expect("regex");
        let mut buffer = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buffer) {
            if n == 0 {
                break;
            }
            let text = String::from_utf8_lossy(&buffer[..n]).into_owned();
            let clean = escapes.replace_all(&text, "");
            shown.lock().expect("screen").push_str(&clean);
        }
    });
    (screen, child)
}

// See: issue 15, item 10. On a terminal, `toyc exec` prints a host's block as soon as
// that host is done, under a live line of the hosts still running.
#[test]
fn exec_shows_each_host_when_it_is_done_with_a_live_line_of_the_rest() {
    let toyc = Toyc::new().file(
        "inv.yml",
        "hosts:\n  quick: {transport: local}\n  slow: {transport: local}\n",
    );
    let lock = toyc.dir().join("lock");
    let command = format!(
        "if mkdir {} 2>/dev/null; then echo first-done; else sleep 4; echo second-done; fi",
        lock.display()
    );
    let (screen, mut child) = in_a_terminal(toyc.dir(), &["exec", "-i", "inv.yml", "--", &command]);
    let started = std::time::Instant::now();
    let mut seen_early = false;
    while started.elapsed() < std::time::Duration::from_secs(3) {
        let text = screen.lock().expect("screen").clone();
        if text.contains("first-done") && text.contains("working: ") {
            seen_early = !text.contains("second-done");
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let status = child.wait().expect("toyc ends");
    let text = screen.lock().expect("screen").clone();
    assert!(
        seen_early,
        "the first host's block and the live line came before the slow host was done:\n{text}"
    );
    assert!(status.success(), "{text}");
    assert!(text.contains("second-done"), "{text}");
    assert!(text.contains("2 ok, 0 failed"), "{text}");
}
