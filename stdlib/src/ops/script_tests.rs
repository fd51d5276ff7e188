//! `files::*` and `shell::run` called from a Rhai script, as `toyc run` runs one: they
//! add operations to the host's plan in call order, act on nothing, and turn mistakes
//! into script errors at the call.

use std::path::Path;
use std::sync::Arc;

use serde_json::json;
use toyc_engine::context::HostContext;
use toyc_engine::facts::{Fact, FactQuery, Facts, PathFact};
use toyc_engine::inventory::Host;
use toyc_engine::plan::{Operation, Outcome};
use toyc_engine::run::RunContext;
use toyc_engine::sandbox::Limits;
use toyc_engine::transport::{LocalTransport, SshOptions};

/// Run `source` for a local host whose script lives in `root`; the operations it
/// declared, or the script error as `toyc` prints it.
fn run(root: &Path, source: &str) -> Result<Vec<Arc<dyn Operation>>, String> {
    let vars = json!({ "app_name": "toyapp", "port": 80 });
    run_with_vars(root, source, &vars, &[])
}

/// [`run`] for a host with `vars` (a JSON object) and `extra` string variables.
fn run_with_vars(
    root: &Path,
    source: &str,
    vars: &serde_json::Value,
    extra: &[(&str, &str)],
) -> Result<Vec<Arc<dyn Operation>>, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut host = Host::localhost();
    host.vars = vars.as_object().unwrap().clone();
    for (key, value) in extra {
        host.vars.insert((*key).into(), json!(value));
    }
    let run = RunContext::new(SshOptions::new("/tmp".into()), Limits::default());
    let context = Arc::new(HostContext::new(
        host,
        Arc::new(LocalTransport::new("localhost")),
        runtime.handle().clone(),
        run.clone(),
        root.to_owned(),
    ));
    let mut sandbox = run.sandbox(root);
    crate::register(&mut sandbox);
    let path = root.join("site.rhai");
    let ast = sandbox
        .compile_text(source, &path)
        .map_err(|e| e.to_string())?;
    let engine = sandbox.engine(Some(Arc::clone(&context).into_tag()), |_| {});
    engine
        .run_ast(&ast)
        .map_err(|e| sandbox.describe(&e, &path).to_string())?;
    Ok(context.take_runbook().operations().cloned().collect())
}

fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("files")).unwrap();
    std::fs::create_dir_all(dir.path().join("templates")).unwrap();
    std::fs::write(dir.path().join("files/app.conf"), "port = 1\n").unwrap();
    std::fs::write(
        dir.path().join("templates/app.ini.j2"),
        "name = {{ app_name }}\n{% if port > 100 %}\nhigh\n{% endif %}\nport = {{ port }}\n",
    )
    .unwrap();
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("files/escape")).unwrap();
    std::fs::write(dir.path().join("templates/bad.j2"), "{{ nope }}\n").unwrap();
    dir
}

/// The bytes a content-writing operation would upload to a host where `dest` is absent.
fn uploaded(op: &Arc<dyn Operation>) -> String {
    let mut facts = Facts::default();
    facts.record(
        FactQuery::Path(op.target().to_owned()),
        Fact::Path(PathFact::Absent),
    );
    match op.plan(&mut facts).unwrap() {
        Outcome::Change(c) => {
            String::from_utf8(c.payload.unwrap().bytes().unwrap().to_vec()).unwrap()
        }
        Outcome::NoChange(n) => panic!("{}", n.reason),
    }
}

#[test]
fn calls_become_operations_in_order_and_act_on_nothing() {
    let repo = repo();
    let target = repo.path().join("host");
    let t = target.display();
    let ops = run(
        repo.path(),
        &format!(
            r#"
            files::directory("{t}/etc/app", #{{ mode: "0755" }});
            files::copy("app.conf", "{t}/etc/app/app.conf", #{{ mode: 644, force: false }});
            files::template("app.ini.j2", "{t}/etc/app/app.ini", #{{ vars: #{{ port: 8080 }} }});
            files::content("{t}/etc/app/env", "A=1\n");
            files::line("{t}/etc/app/app.conf", "max_conn = 100");
            files::file("{t}/etc/app/secret", #{{ mode: "600", state: "present" }});
            files::link("app.conf", "{t}/etc/app/current.conf");
            let result = shell::run("date > {t}/marker", #{{ creates: "{t}/marker" }});
            if result != () {{ throw "operations return nothing"; }}
            "#
        ),
    )
    .unwrap();
    let names: Vec<(&str, String)> = ops
        .iter()
        .map(|op| (op.name(), op.target().replace(&t.to_string(), "")))
        .collect();
    assert_eq!(
        names,
        [
            ("files::directory", "/etc/app".to_owned()),
            ("files::copy", "/etc/app/app.conf".into()),
            ("files::template", "/etc/app/app.ini".into()),
            ("files::content", "/etc/app/env".into()),
            ("files::line", "/etc/app/app.conf".into()),
            ("files::file", "/etc/app/secret".into()),
            ("files::link", "/etc/app/current.conf".into()),
            ("shell::run", "date > /marker".into()),
        ]
    );
    assert!(!target.exists(), "nothing acts while the script runs");
    assert_eq!(uploaded(&ops[1]), "port = 1\n");
    assert_eq!(
        uploaded(&ops[2]),
        "name = toyapp\nhigh\nport = 8080\n",
        "option vars win over host vars; the newline after a block tag goes"
    );
}

/// Each `(source, expected)` fails at its call (line 2 of the script), saying `expected`.
fn fails_at_the_call(root: &Path, cases: &[(&str, &str)]) {
    for (source, expected) in cases {
        let script = format!("let a = 1;\n  {source}\n");
        let err = run(root, &script)
            .err()
            .unwrap_or_else(|| panic!("{source} must fail"));
        assert!(err.contains(expected), "{source}:\n{err}");
        assert!(err.contains("site.rhai:2:"), "the call's position: {err}");
    }
}

#[test]
fn mistakes_are_script_errors_at_the_call_naming_what_is_wrong() {
    let repo = repo();
    let cases = [
        (
            r#"files::directory("/srv", #{ mdoe: "0755" });"#,
            "`files::directory` has no option `mdoe` (options: mode, owner, group, state); did you mean `mode`?",
        ),
        (
            r#"files::file("/srv/x", #{ mode: "999" });"#,
            "option `mode` of `files::file`: `999` is not a mode",
        ),
        (
            r#"files::file("/srv/x", #{ state: "gone" });"#,
            "option `state` of `files::file`: `gone` is not a state of a file",
        ),
        (
            r#"files::content("srv/x", "a");"#,
            "`files::content`: `srv/x` is not an absolute path",
        ),
        (
            r#"files::copy("missing.conf", "/srv/x");"#,
            "`files::copy`: unable to read `files/missing.conf`",
        ),
        (
            r#"files::copy("escape", "/srv/x");"#,
            "leads outside the script's directory",
        ),
        (
            r#"files::template("app.ini.j2", "/srv/x", #{ vars: 3 });"#,
            "option `vars` of `files::template`: must be a map, not i64",
        ),
        (
            r#"files::template("bad.j2", "/srv/x");"#,
            "`files::template`: undefined variable `nope` in template `bad.j2`, line 1",
        ),
        (
            r#"files::line("/srv/x", "a", #{ regexp: "(" });"#,
            "option `regexp` of `files::line`:",
        ),
        (
            r#"files::directory("/", #{ state: "absent" });"#,
            "`files::directory`: refusing to remove `/`",
        ),
        (
            r#"files::file("/srv/x", #{ owner: "a b" });"#,
            "option `owner` of `files::file`: `a b` is not a valid owner name",
        ),
        (
            r#"shell::run("true", #{ creates: "marker" });"#,
            "option `creates` of `shell::run`: `marker` is not an absolute path",
        ),
        (
            r#"shell::run("true", #{ unles: "x" });"#,
            "`shell::run` has no option `unles`",
        ),
    ];
    fails_at_the_call(repo.path(), &cases);
}

/// The ```rhai blocks of the `///` docs in `source`.
fn doc_examples(source: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in source.lines() {
        let Some(doc) = line.trim_start().strip_prefix("///") else {
            continue;
        };
        let doc = doc.strip_prefix(' ').unwrap_or(doc);
        match (&mut current, doc.trim()) {
            (None, "```rhai") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(doc);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn every_doc_example_runs_and_declares_operations() {
    // The workload has the files and templates the examples name; its variables are
    // the host's, as an inventory would give them.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/workload");
    let vars: serde_json::Value =
        serde_yaml::from_slice(&std::fs::read(root.join("vars.yml")).unwrap()).unwrap();
    let examples: Vec<String> = [include_str!("../files.rs"), include_str!("../shell.rs")]
        .iter()
        .flat_map(|source| doc_examples(source))
        .collect();
    assert_eq!(examples.len(), 15, "one per function and overload");
    for example in examples {
        // `toyc run` gives scripts `host`; the examples use its name.
        let source = format!("let host = #{{ name: \"h1\" }};\n{example}");
        let ops = run_with_vars(
            &root,
            &source,
            &vars,
            &[("app_host", "h1"), ("root", "/srv")],
        )
        .unwrap_or_else(|e| panic!("{e}\nin:\n{example}"));
        assert!(!ops.is_empty(), "{example}");
    }
}

#[test]
fn users_and_packages_declare_operations_and_check_their_arguments_at_the_call() {
    let repo = repo();
    let ops = run(
        repo.path(),
        r#"
        users::group("app", #{ gid: 1500 });
        users::user("app", #{ uid: 1500, group: "app", groups: "adm, staff", shell: "/bin/bash" });
        users::user("old", #{ state: "absent", remove_home: true });
        packages::installed("curl");
        packages::installed(["toyc-demo", "dpkg", "curl"], #{ update_cache: true });
        packages::removed("telnet", #{ purge: true });
        "#,
    )
    .unwrap();
    let names: Vec<(&str, &str)> = ops.iter().map(|op| (op.name(), op.target())).collect();
    assert_eq!(
        names,
        [
            ("users::group", "app"),
            ("users::user", "app"),
            ("users::user", "old"),
            ("packages::installed", "curl"),
            ("packages::installed", "toyc-demo dpkg curl"),
            ("packages::removed", "telnet"),
        ]
    );
    assert_eq!(
        ops[1].facts(),
        [
            FactQuery::User("app".into()),
            FactQuery::Group("app".into()),
            FactQuery::Group("adm".into()),
            FactQuery::Group("staff".into()),
        ]
    );

    let cases = [
        (
            r#"users::user("app", #{ shel: "/bin/sh" });"#,
            "`users::user` has no option `shel`",
        ),
        (
            r#"users::user("app", #{ uid: -1 });"#,
            "option `uid` of `users::user` must be a number from 0 to 4294967295",
        ),
        (
            r#"users::user("a b");"#,
            "`users::user`: `a b` is not a valid user name",
        ),
        (
            r#"users::user("app", #{ groups: [1] });"#,
            "option `groups` of `users::user` must be an array of strings",
        ),
        (
            r#"users::user("app", #{ state: "absent", shell: "/bin/sh" });"#,
            "option `shell` of `users::user`: does not apply with `state: \"absent\"`",
        ),
        (
            r#"users::user("app", #{ state: "gone" });"#,
            "`gone` is not a state of a user",
        ),
        (
            r#"users::user("app", #{ home: "srv/app" });"#,
            "the home `srv/app` must be an absolute path",
        ),
        (
            r#"users::group("app", #{ gidd: 3 });"#,
            "did you mean `gid`?",
        ),
        (
            r#"packages::installed("Nginx");"#,
            "`packages::installed`: `Nginx` is not a Debian package name",
        ),
        (
            r#"packages::installed([]);"#,
            "`packages::installed`: no package named",
        ),
        (
            r#"packages::installed(3);"#,
            "`packages::installed`: the packages must be a name or an array of names",
        ),
        (
            r#"packages::removed("x1", #{ update_cache: true });"#,
            "`packages::removed` has no option `update_cache`",
        ),
    ];
    fails_at_the_call(repo.path(), &cases);
}

#[test]
fn every_users_and_packages_doc_example_declares_operations() {
    let repo = repo();
    let examples: Vec<String> = [include_str!("../users.rs"), include_str!("../packages.rs")]
        .iter()
        .flat_map(|source| doc_examples(source))
        .collect();
    assert_eq!(
        examples.len(),
        9,
        "one per function and overload, one per module"
    );
    for example in examples {
        let ops = run(repo.path(), &example).unwrap_or_else(|e| panic!("{e}\nin:\n{example}"));
        assert!(!ops.is_empty(), "{example}");
    }
}
