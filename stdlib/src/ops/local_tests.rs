//! The operations against real files through the local transport, the way a run uses
//! them: facts in one round trip, every operation planned in order on one `Facts`, all
//! changes in one apply script; then planned again from fresh facts: nothing to do.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use toyc_engine::facts::{Fact, FactBatch, FactQuery, Facts, PathFact};
use toyc_engine::plan::{ApplyScript, Change, Operation, Outcome};
use toyc_engine::transport::{ExecRequest, LocalTransport, Transport};

use super::*;

pub(super) type Ops = Vec<Arc<dyn Operation>>;

fn exec(script: &str) -> String {
    exec_request(&ExecRequest::new(script))
}

fn exec_request(request: &ExecRequest) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let output = runtime
        .block_on(LocalTransport::new("localhost").exec(request, None))
        .unwrap();
    assert_eq!(output.status, 0, "{}", output.stderr_text());
    output.stdout_text()
}

/// Every fact `ops` ask (plus `extra`), in one round trip.
pub(super) fn gather(ops: &Ops, extra: &[FactQuery]) -> Facts {
    let mut queries: Vec<FactQuery> = ops.iter().flat_map(|op| op.facts()).collect();
    queries.extend_from_slice(extra);
    let batch = FactBatch::new(queries);
    batch.parse(&exec(&batch.script())).unwrap()
}

/// Plan every operation in order on one `Facts`.
pub(super) fn plan(ops: &Ops, facts: &mut Facts) -> Vec<Outcome> {
    ops.iter()
        .map(|op| {
            op.plan(facts)
                .unwrap_or_else(|e| panic!("{} {}: {e}", op.name(), op.target()))
        })
        .collect()
}

pub(super) fn changes(outcomes: &[Outcome]) -> Vec<&Change> {
    outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Change(c) => Some(c),
            Outcome::NoChange(_) => None,
        })
        .collect()
}

/// Send `changes` as one apply script (under umask 022, so modes that nothing sets are
/// the usual ones) and check that every step succeeded.
pub(super) fn apply(changes: &[&Change]) {
    let mut script = ApplyScript::new(changes);
    let request = script.request();
    let results = script.parse(&exec_request(&ExecRequest {
        command: format!("umask 022\n{}", request.command),
        ..request
    }));
    assert_eq!(results.len(), changes.len(), "{results:?}");
    for (result, change) in results.iter().zip(changes) {
        assert_eq!(
            result.status, 0,
            "{} {}: {}\n{}",
            change.operation, change.target, result.output, change.script
        );
    }
}

/// Whether a fact recorded while planning says what the host says after the apply;
/// values toyc could not know in advance ([`UNKNOWN`]) match anything.
fn agrees(recorded: &Fact, actual: &Fact) -> bool {
    let same = |r: &String, a: &String| r == UNKNOWN || r == a;
    match (recorded, actual) {
        (
            Fact::Path(PathFact::File {
                mode,
                owner,
                group,
                size,
                sha256,
            }),
            Fact::Path(PathFact::File {
                mode: m,
                owner: o,
                group: g,
                size: sz,
                sha256: sh,
            }),
        ) => same(mode, m) && same(owner, o) && same(group, g) && size == sz && sha256 == sh,
        (
            Fact::Path(PathFact::Directory { mode, owner, group }),
            Fact::Path(PathFact::Directory {
                mode: m,
                owner: o,
                group: g,
            }),
        ) => same(mode, m) && same(owner, o) && same(group, g),
        _ => recorded == actual,
    }
}

/// Plan cold, apply, check the recorded facts are what the host now says, and plan
/// again: every operation must find nothing to do. Returns the cold outcomes.
pub(super) fn converge(ops: &Ops) -> Vec<Outcome> {
    let mut planned = gather(ops, &[]);
    let cold = plan(ops, &mut planned);
    apply(&changes(&cold));
    let fresh = gather(ops, &[]);
    for op in ops.iter().filter(|op| op.name() != "shell::run") {
        for query in op.facts() {
            let (recorded, actual) = (planned.get(&query).unwrap(), fresh.get(&query).unwrap());
            assert!(
                agrees(recorded, actual),
                "{query:?}: recorded {recorded:?}, on the host {actual:?}"
            );
        }
    }
    let mut fresh = fresh;
    for (op, outcome) in ops.iter().zip(plan(ops, &mut fresh)) {
        if let Outcome::Change(c) = outcome {
            panic!(
                "{} {} is not idempotent: {}",
                op.name(),
                op.target(),
                c.summary
            );
        }
    }
    cold
}

pub(super) fn mode_of(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

/// The user and group the tests run as (so `chown` works without root).
fn me() -> (String, String) {
    let ids = exec("id -un; id -gn");
    let mut lines = ids.lines().map(str::to_owned);
    (lines.next().unwrap(), lines.next().unwrap())
}

fn attrs(mode: &str) -> Attrs {
    Attrs::new(Some(Mode::parse(mode).unwrap()), None, None).unwrap()
}

fn s(path: &Path) -> String {
    path.to_str().unwrap().to_owned()
}

#[test]
fn every_operation_converges_on_a_real_directory() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let p = |rel: &str| s(&root.join(rel));
    std::fs::create_dir(root.join("old")).unwrap();
    std::fs::write(root.join("old/junk"), "x").unwrap();
    std::fs::write(root.join("stale"), "x").unwrap();
    std::fs::write(root.join("hosts"), "127.0.0.1 localhost\n10.0.0.9 old\n").unwrap();
    let (user, group) = me();
    let owned = Attrs::new(Some(Mode::parse("0640").unwrap()), Some(user), Some(group)).unwrap();
    let ops: Ops = vec![
        Arc::new(Directory::new(&p("srv/app/data"), attrs("0750"), true).unwrap()),
        Arc::new(Directory::new(&p("old"), Attrs::default(), false).unwrap()),
        Arc::new(File::new(&p("srv/app/secret"), owned.clone(), FileState::Present).unwrap()),
        Arc::new(File::new(&p("stale"), Attrs::default(), FileState::Absent).unwrap()),
        Arc::new(
            Content::new(
                "files::content",
                &p("srv/app/env"),
                b"A=1\n".to_vec(),
                owned,
                true,
            )
            .unwrap(),
        ),
        Arc::new(
            Content::new(
                "files::copy",
                &p("srv/app/app.conf"),
                b"[main]\nport = 80\n".to_vec(),
                Attrs::default(),
                false,
            )
            .unwrap(),
        ),
        Arc::new(
            Line::new(
                &p("srv/app/app.conf"),
                "port = 8080",
                Some("^port ="),
                LineState::Present,
                false,
            )
            .unwrap(),
        ),
        Arc::new(
            Line::new(
                &p("srv/app/app.conf"),
                "workers = 4",
                None,
                LineState::Present,
                false,
            )
            .unwrap(),
        ),
        Arc::new(Line::new(&p("hosts"), "10.0.0.9 old", None, LineState::Absent, false).unwrap()),
        Arc::new(
            Line::new(
                &p("srv/app/new.conf"),
                "x = 1",
                None,
                LineState::Present,
                true,
            )
            .unwrap(),
        ),
        Arc::new(Link::new("data", &p("srv/app/current")).unwrap()),
        Arc::new(
            Run::new(
                &format!("echo ran >> {}", p("srv/app/ran")),
                Guards {
                    creates: Some(p("srv/app/ran")),
                    ..Guards::default()
                },
                false,
                None,
                Vec::new(),
            )
            .unwrap(),
        ),
        Arc::new(
            Run::new(
                &format!("echo $WHO > {}", p("srv/app/who")),
                Guards {
                    unless: Some(format!("grep -q tester {}", p("srv/app/who"))),
                    ..Guards::default()
                },
                false,
                Some(&p("srv")),
                vec![("WHO".into(), "tester".into())],
            )
            .unwrap(),
        ),
    ];
    let cold = converge(&ops);
    assert_eq!(
        changes(&cold).len(),
        ops.len(),
        "everything changes on a cold host"
    );

    let app = root.join("srv/app");
    assert_eq!(mode_of(&app.join("data")), 0o750);
    assert!(!root.join("old").exists() && !root.join("stale").exists());
    assert_eq!(std::fs::read(app.join("secret")).unwrap(), b"");
    assert_eq!(mode_of(&app.join("secret")), 0o640);
    assert_eq!(std::fs::read(app.join("env")).unwrap(), b"A=1\n");
    assert_eq!(mode_of(&app.join("env")), 0o640);
    assert_eq!(
        std::fs::read_to_string(app.join("app.conf")).unwrap(),
        "[main]\nport = 8080\nworkers = 4\n"
    );
    assert_eq!(mode_of(&app.join("app.conf")), 0o644);
    assert_eq!(
        std::fs::read_to_string(root.join("hosts")).unwrap(),
        "127.0.0.1 localhost\n"
    );
    assert_eq!(
        std::fs::read_to_string(app.join("new.conf")).unwrap(),
        "x = 1\n"
    );
    assert_eq!(
        std::fs::read_link(app.join("current")).unwrap(),
        Path::new("data")
    );
    assert_eq!(std::fs::read_to_string(app.join("ran")).unwrap(), "ran\n");
    assert_eq!(
        std::fs::read_to_string(app.join("who")).unwrap(),
        "tester\n"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&app)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".toyc-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn changed_desires_are_planned_against_the_applied_state() {
    let dir = tempfile::tempdir().unwrap();
    let p = |rel: &str| s(&dir.path().join(rel));
    let first: Ops = vec![
        Arc::new(
            Content::new(
                "files::content",
                &p("f"),
                b"one\ntwo\n".to_vec(),
                attrs("600"),
                true,
            )
            .unwrap(),
        ),
        Arc::new(Link::new("f", &p("l")).unwrap()),
    ];
    converge(&first);
    let second: Ops = vec![
        Arc::new(
            Content::new(
                "files::content",
                &p("f"),
                b"one\n2\n".to_vec(),
                Attrs::default(),
                true,
            )
            .unwrap(),
        ),
        Arc::new(File::new(&p("f"), attrs("0644"), FileState::Present).unwrap()),
        Arc::new(Link::new("g", &p("l")).unwrap()),
    ];
    // A runner showing diffs asks the content of the files changing in a second trip,
    // then plans again.
    let mut facts = gather(&second, &[]);
    let outcomes = plan(&second, &mut facts);
    let wanted: Vec<FactQuery> = changes(&outcomes)
        .into_iter()
        .filter_map(diff_query)
        .collect();
    assert_eq!(wanted, [FactQuery::Content(p("f"))]);
    let mut facts = gather(&second, &wanted);
    let outcomes = plan(&second, &mut facts);
    let planned = changes(&outcomes);
    assert_eq!(planned.len(), 3);
    assert!(
        planned[0].script.starts_with("umask 0177\n"),
        "keeps the mode"
    );
    assert_eq!(
        planned[0].diff.as_deref(),
        Some(
            format!(
                "--- {f} (on host)\n+++ {f} (planned)\n@@ -1,2 +1,2 @@\n one\n-two\n+2\n",
                f = p("f")
            )
            .as_str()
        )
    );
    assert_eq!(planned[1].summary, "mode 600 -> 644");
    apply(&planned);
    assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"one\n2\n");
    assert_eq!(mode_of(&dir.path().join("f")), 0o644);
    assert_eq!(
        std::fs::read_link(dir.path().join("l")).unwrap(),
        Path::new("g")
    );
    converge(&second);
}

#[test]
fn a_guarded_command_that_fails_stops_the_apply() {
    let dir = tempfile::tempdir().unwrap();
    let p = |rel: &str| s(&dir.path().join(rel));
    let ops: Ops = vec![
        Arc::new(Run::new("exit 3", Guards::default(), false, None, Vec::new()).unwrap()),
        Arc::new(File::new(&p("after"), Attrs::default(), FileState::Present).unwrap()),
    ];
    let mut facts = gather(&ops, &[]);
    let outcomes = plan(&ops, &mut facts);
    let planned = changes(&outcomes);
    let mut script = ApplyScript::new(&planned);
    let request = script.request();
    let results = script.parse(&exec_request(&request));
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].status, 3);
    assert!(!dir.path().join("after").exists());
}

#[test]
fn files_an_earlier_operation_creates_are_edited_in_the_same_run() {
    let dir = tempfile::tempdir().unwrap();
    let p = |rel: &str| s(&dir.path().join(rel));
    let ops: Ops = vec![
        Arc::new(File::new(&p("a"), Attrs::default(), FileState::Present).unwrap()),
        Arc::new(Line::new(&p("a"), "x = 1", None, LineState::Present, false).unwrap()),
        Arc::new(File::new(&p("b"), Attrs::default(), FileState::Present).unwrap()),
        Arc::new(
            Content::new(
                "files::content",
                &p("b"),
                b"b\n".to_vec(),
                Attrs::default(),
                true,
            )
            .unwrap(),
        ),
        Arc::new(Directory::new(&p("d/e"), Attrs::default(), true).unwrap()),
        Arc::new(Directory::new(&p("d"), attrs("0700"), true).unwrap()),
    ];
    let cold = converge(&ops);
    assert_eq!(changes(&cold).len(), ops.len());
    assert_eq!(std::fs::read(dir.path().join("a")).unwrap(), b"x = 1\n");
    assert_eq!(std::fs::read(dir.path().join("b")).unwrap(), b"b\n");
    assert_eq!(
        mode_of(&dir.path().join("a")),
        0o644,
        "the umask's mode, kept"
    );
    assert_eq!(mode_of(&dir.path().join("d")), 0o700);
}
