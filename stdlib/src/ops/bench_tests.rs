//! The bench workload (`testdata/workload`, a copy of the peers' one with their
//! `site.yml`): its 12 tasks as operations, against a temporary root on the local
//! transport. Cold: 12 changes; warm: none; the files equal what Ansible leaves.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use toyc_engine::plan::Operation;

use super::local_tests::{apply, changes, converge, gather, plan, Ops};
use super::*;

fn workload_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/workload")
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(workload_dir().join(rel)).unwrap()
}

fn mode(text: &str) -> Attrs {
    Attrs::new(Some(Mode::parse(text).unwrap()), None, None).unwrap()
}

/// The tasks of `site.yml` for a host named `host` whose files live under `root`;
/// templates see `render_root` as `root` (the peers rendered `/tmp/toybench/h1`).
fn workload(root: &str, render_root: &str, host: &str) -> Ops {
    let app = format!("{root}/etc/app");
    let vars: serde_json::Value = serde_yaml::from_slice(&read("vars.yml")).unwrap();
    let mut vars = vars.as_object().unwrap().clone();
    vars.insert("app_host".into(), host.into());
    vars.insert("root".into(), render_root.into());
    let copy = |name: &str, force: bool| -> Arc<dyn Operation> {
        let bytes = read(&format!("files/{name}"));
        Arc::new(
            Content::new(
                "files::copy",
                &format!("{app}/{name}"),
                bytes,
                mode("0644"),
                force,
            )
            .unwrap(),
        )
    };
    let template = |name: &str| -> Arc<dyn Operation> {
        let text = crate::template::Templates::new(&workload_dir().join("templates"))
            .render_file(&format!("{name}.j2"), &vars)
            .unwrap();
        Arc::new(
            Content::new(
                "files::template",
                &format!("{app}/{name}"),
                text.into_bytes(),
                mode("0644"),
                true,
            )
            .unwrap(),
        )
    };
    vec![
        Arc::new(Directory::new(&app, mode("0755"), true).unwrap()),
        copy("app.conf", false),
        copy("logging.ini", true),
        copy("motd", true),
        copy("users.csv", true),
        copy("banner.txt", true),
        template("app.ini"),
        template("app.service"),
        Arc::new(
            Line::new(
                &format!("{app}/app.conf"),
                "max_conn = 100",
                None,
                LineState::Present,
                false,
            )
            .unwrap(),
        ),
        Arc::new(File::new(&format!("{app}/secret"), mode("0600"), FileState::Present).unwrap()),
        Arc::new(
            Run::new(
                &format!("mkdir -p {root}/var && date > {root}/var/marker"),
                Guards {
                    creates: Some(format!("{root}/var/marker")),
                    ..Guards::default()
                },
                false,
                None,
                Vec::new(),
            )
            .unwrap(),
        ),
        Arc::new(Directory::new(&format!("{root}/var/log/app"), mode("0755"), true).unwrap()),
    ]
}

/// `tree_digest` of the peers' `bench.py`: every path under `root` in `os.walk` order
/// (directories sorted by path, entries by name) with its `st_mode` in Python's `oct()`,
/// then the content of regular files but `var/marker` (it holds a date).
fn tree_digest(root: &Path) -> String {
    fn walk(dir: &Path, dirs: &mut Vec<PathBuf>) {
        dirs.push(dir.to_owned());
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, dirs);
            }
        }
    }
    let mut dirs = Vec::new();
    walk(root, &mut dirs);
    dirs.sort_by(|a, b| a.to_str().unwrap().cmp(b.to_str().unwrap()));
    let mut hash = Sha256::new();
    for dir in dirs {
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        for name in names {
            let path = dir.join(&name);
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned();
            let meta = std::fs::metadata(&path).unwrap();
            hash.update(format!("{rel} 0o{:o}\n", meta.mode()));
            if meta.is_file() && rel != "var/marker" {
                hash.update(std::fs::read(&path).unwrap());
            }
        }
    }
    let hex: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    hex[..12].to_owned()
}

#[test]
fn the_bench_workload_is_twelve_changes_cold_and_none_warm() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("h1");
    let ops = workload(root.to_str().unwrap(), "/tmp/toybench/h1", "h1");
    assert_eq!(ops.len(), 12);
    let cold = converge(&ops);
    assert_eq!(changes(&cold).len(), 12, "{cold:#?}");

    let app = root.join("etc/app");
    for name in ["app.ini", "app.service"] {
        assert_eq!(
            std::fs::read_to_string(app.join(name)).unwrap(),
            String::from_utf8(read(&format!("expected/{name}"))).unwrap(),
            "{name} as Jinja2 renders it"
        );
    }
    let mut conf = read("files/app.conf");
    conf.extend_from_slice(b"max_conn = 100\n");
    assert_eq!(std::fs::read(app.join("app.conf")).unwrap(), conf);
    // The digest the peers' harness printed for Ansible, Mitogen and pyinfra.
    assert_eq!(tree_digest(&root), "7b857b383965");
}

#[test]
fn drift_on_a_warm_host_is_repaired_and_the_seed_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("h1");
    let ops = workload(root.to_str().unwrap(), "/tmp/toybench/h1", "h1");
    converge(&ops);
    let app = root.join("etc/app");
    std::fs::write(app.join("motd"), "hacked\n").unwrap();
    std::fs::write(app.join("app.conf"), "edited by hand\n").unwrap();
    std::process::Command::new("chmod")
        .args(["644", app.join("secret").to_str().unwrap()])
        .status()
        .unwrap();
    let mut facts = gather(&ops, &[]);
    let outcomes = plan(&ops, &mut facts);
    let planned: Vec<_> = changes(&outcomes)
        .iter()
        .map(|c| {
            (
                c.operation.as_str(),
                c.target.replace(root.to_str().unwrap(), ""),
            )
        })
        .collect();
    assert_eq!(
        planned,
        [
            ("files::copy", "/etc/app/motd".to_owned()),
            ("files::line", "/etc/app/app.conf".to_owned()),
            ("files::file", "/etc/app/secret".to_owned()),
        ]
    );
    apply(&changes(&outcomes));
    assert_eq!(
        std::fs::read_to_string(app.join("app.conf")).unwrap(),
        "edited by hand\nmax_conn = 100\n"
    );
    converge(&ops);
}
