//! `users::*` and `packages::*` against real hosts: accounts and packages converge on a
//! cold host in one run, the second run changes nothing (one round trip per host), a
//! changed attribute is exactly one `~` change, `state: "absent"` removes; a package
//! from a local apt repository is installed once; a host without dpkg fails clearly.

use crate::support::cli::{Ran, Toyc};
use crate::support::hosts;

/// Dedicated hosts: these tests add users and packages, which other tests must not see.
fn toyc_for(pool: &hosts::HostPool) -> Toyc {
    Toyc::new()
        .file("inv.yml", &pool.inventory_yaml("root"))
        .env("RUST_LOG", "toyc_engine=debug")
}

/// The planned-change lines of a run's output (`h1 ~ users::user app: ...`).
fn change_lines(ran: &Ran) -> Vec<&str> {
    ran.stderr
        .lines()
        .filter(|l| [" + ", " ~ ", " - ", " ! "].iter().any(|s| l.contains(s)))
        .filter(|l| l.contains("users::") || l.contains("packages::") || l.contains("files::"))
        .collect()
}

/// `toyc run SCRIPT -i inv.yml EXTRA...` in `toyc`'s directory.
fn run_in(toyc: &Toyc, script: &str, extra: &[&str]) -> Ran {
    let mut args = vec!["run", script, "-i", "inv.yml"];
    args.extend_from_slice(extra);
    toyc.run_with(&args)
}

fn host_says(pool: &hosts::HostPool, cmd: &str) -> String {
    let out = pool.docker_exec(0, cmd);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

const ACCOUNTS: &str = r#"
users::group("toycapp", #{ gid: 2501 });
users::group("toycextra");
users::user("toycapp", #{ uid: 2501, group: "toycapp", groups: ["toycextra", "adm"],
    shell: "SHELL", comment: "toyc test" });
// The owner does not exist before this run: planning must not need it.
files::directory("/srv/toycapp", #{ owner: "toycapp", group: "toycapp", mode: "0750" });
"#;

#[test]
fn users_and_groups_converge_change_one_attribute_and_are_removed() {
    let Some(pool) = hosts::dedicated(1) else {
        return;
    };
    let name = pool.hosts()[0].name.clone();
    let toyc = toyc_for(&pool)
        .file("accounts.rhai", &ACCOUNTS.replace("SHELL", "/bin/sh"))
        .file("bash.rhai", &ACCOUNTS.replace("SHELL", "/bin/bash"))
        .file(
            "gone.rhai",
            r#"
            users::user("toycapp", #{ state: "absent", remove_home: true });
            users::group("toycextra", #{ state: "absent" });
            users::group("toycapp", #{ state: "absent" });
            "#,
        );
    let run = |script: &str, extra: &[&str]| run_in(&toyc, script, extra);

    // Cold: everything is planned, against the state the earlier operations leave.
    let check = run("accounts.rhai", &["--check"]);
    check.code(2);
    let planned = change_lines(&check);
    assert_eq!(planned.len(), 4, "{}", check.stderr);
    assert!(
        planned.iter().all(|l| l.contains(" + ")),
        "{}",
        check.stderr
    );
    assert_eq!(
        host_says(&pool, "getent passwd toycapp || echo none"),
        "none"
    );

    let cold = run("accounts.rhai", &["-y", "--json"]);
    cold.code(0);
    let summary = cold.json_lines().into_iter().last().expect("summary");
    assert_eq!(summary["data"]["changed"], 4, "{}", cold.stdout);
    assert_eq!(
        cold.round_trips(&name),
        2,
        "facts, then changes: {}",
        cold.stderr
    );
    assert_eq!(
        host_says(&pool, "getent passwd toycapp"),
        "toycapp:x:2501:2501:toyc test:/home/toycapp:/bin/sh"
    );
    assert_eq!(
        host_says(&pool, "getent group toycapp | cut -d: -f3"),
        "2501"
    );
    assert_eq!(host_says(&pool, "id -Gn toycapp"), "toycapp adm toycextra");
    assert_eq!(
        host_says(&pool, "stat -c '%U %G %a' /srv/toycapp"),
        "toycapp toycapp 750"
    );
    assert_eq!(
        host_says(&pool, "test -d /home/toycapp && echo home"),
        "home"
    );

    // Warm: nothing to do, one round trip, and --check agrees.
    let warm = run("accounts.rhai", &["-y", "-v"]);
    warm.code(0);
    assert!(change_lines(&warm).is_empty(), "{}", warm.stderr);
    assert_eq!(warm.round_trips(&name), 1, "facts only: {}", warm.stderr);
    warm.stderr_has("user `toycapp` already exists with uid 2501, group toycapp");
    run("accounts.rhai", &["--check"]).code(0);

    // One attribute differs: exactly one `~` change, naming it.
    let check = run("bash.rhai", &["--check"]);
    check.code(2);
    let planned = change_lines(&check);
    assert_eq!(planned.len(), 1, "{}", check.stderr);
    assert!(
        planned[0].contains(" ~ ") && planned[0].contains("shell /bin/sh -> /bin/bash"),
        "{}",
        check.stderr
    );
    run("bash.rhai", &["-y"]).code(0);
    assert_eq!(
        host_says(&pool, "getent passwd toycapp | cut -d: -f7"),
        "/bin/bash"
    );
    assert_eq!(host_says(&pool, "id -Gn toycapp"), "toycapp adm toycextra");
    run("bash.rhai", &["--check"]).code(0);

    // Supplementary groups are exact unless appended.
    let groups = toyc_for(&pool)
        .file(
            "exact.rhai",
            r#"users::user("toycapp", #{ groups: ["toycextra"] });"#,
        )
        .file(
            "append.rhai",
            r#"users::user("toycapp", #{ groups: ["adm"], append: true });"#,
        );
    let exact = run_in(&groups, "exact.rhai", &["-y"]);
    exact.code(0);
    assert_eq!(host_says(&pool, "id -Gn toycapp"), "toycapp toycextra");
    let append = run_in(&groups, "append.rhai", &["-y"]);
    append.code(0);
    assert_eq!(host_says(&pool, "id -Gn toycapp"), "toycapp adm toycextra");
    run_in(&groups, "append.rhai", &["--check"]).code(0);

    // Absent removes, once.
    let gone = run("gone.rhai", &["-y", "--json"]);
    gone.code(0);
    let summary = gone.json_lines().into_iter().last().expect("summary");
    assert_eq!(summary["data"]["changed"], 3, "{}", gone.stdout);
    assert_eq!(
        host_says(
            &pool,
            "getent passwd toycapp; getent group toycapp toycextra; test -e /home/toycapp && echo home; true"
        ),
        ""
    );
    run("gone.rhai", &["--check"]).code(0);
}

#[test]
fn a_user_in_a_group_that_does_not_exist_fails_planning_naming_the_group() {
    let Some(pool) = hosts::shared() else {
        return;
    };
    let toyc = Toyc::new()
        .file("inv.yml", &pool.inventory_yaml("root"))
        .file(
            "bad.rhai",
            r#"users::user("toycnobody", #{ groups: ["toyc-no-such-group"] });"#,
        );
    let ran = toyc.run_with(&["run", "bad.rhai", "-i", "inv.yml", "-l", "h1", "--check"]);
    assert_ne!(ran.code, 0, "{}", ran.stderr);
    ran.stderr_has("group `toyc-no-such-group` does not exist on the host");
}

/// Build `toyc-demo` 1.0 with dpkg-deb on the host and serve it from a local apt
/// repository (the hosts have no internet: every other source is put aside).
const LOCAL_REPO: &str = r#"set -e
d=/tmp/toyc-demo-build
mkdir -p $d/DEBIAN $d/usr/share/toyc-demo /srv/repo
cat > $d/DEBIAN/control <<EOF
Package: toyc-demo
Version: 1.0
Architecture: all
Maintainer: toyc tests <toyc@example.invalid>
Description: a package toyc's tests install
EOF
echo hello > $d/usr/share/toyc-demo/hello
dpkg-deb --root-owner-group --build $d /srv/repo/toyc-demo_1.0_all.deb >/dev/null
cd /srv/repo
{
  cat $d/DEBIAN/control
  echo "Filename: ./toyc-demo_1.0_all.deb"
  echo "Size: $(stat -c %s toyc-demo_1.0_all.deb)"
  echo "SHA256: $(sha256sum toyc-demo_1.0_all.deb | cut -d' ' -f1)"
  echo
} > Packages
mkdir -p /etc/apt/aside
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*; do [ -f "$f" ] && mv "$f" /etc/apt/aside/ || true; done
echo 'deb [trusted=yes] file:/srv/repo ./' > /etc/apt/sources.list.d/toyc-test.list
"#;

#[test]
fn a_package_from_a_local_repository_is_installed_once_and_a_non_debian_host_fails_clearly() {
    let Some(pool) = hosts::dedicated(1) else {
        return;
    };
    let name = pool.hosts()[0].name.clone();
    let setup = pool.docker_exec(0, LOCAL_REPO);
    assert!(
        setup.status.success(),
        "{}",
        String::from_utf8_lossy(&setup.stderr)
    );
    let toyc = toyc_for(&pool).file(
        "pkgs.rhai",
        r#"
        packages::installed(["toyc-demo"], #{ update_cache: true });
        packages::installed("dpkg");
        "#,
    );
    let run = |extra: &[&str]| run_in(&toyc, "pkgs.rhai", extra);

    let check = run(&["--check", "-v"]);
    check.code(2);
    let planned = change_lines(&check);
    assert_eq!(
        planned.len(),
        1,
        "only the missing package: {}",
        check.stderr
    );
    assert!(
        planned[0].contains(" + ") && planned[0].contains("install toyc-demo"),
        "{}",
        check.stderr
    );
    check.stderr_has("already installed: dpkg ");

    let cold = run(&["-y"]);
    cold.code(0);
    assert_eq!(cold.round_trips(&name), 2, "{}", cold.stderr);
    assert_eq!(
        host_says(
            &pool,
            "dpkg-query -W -f '${Version} ${db:Status-Abbrev}' toyc-demo"
        ),
        "1.0 ii"
    );
    assert_eq!(host_says(&pool, "cat /usr/share/toyc-demo/hello"), "hello");

    let warm = run(&["-y", "-v"]);
    warm.code(0);
    assert!(change_lines(&warm).is_empty(), "{}", warm.stderr);
    assert_eq!(
        warm.round_trips(&name),
        1,
        "one dpkg-query: {}",
        warm.stderr
    );
    warm.stderr_has("already installed: toyc-demo 1.0");
    run(&["--check"]).code(0);

    // Removed again, then a host without dpkg: planning fails, naming host and cause.
    let removal = toyc_for(&pool).file("rm.rhai", r#"packages::removed("toyc-demo");"#);
    run_in(&removal, "rm.rhai", &["-y"]).code(0);
    assert_eq!(
        host_says(&pool, "test -e /usr/share/toyc-demo/hello || echo removed"),
        "removed"
    );
    run_in(&removal, "rm.rhai", &["--check"]).code(0);
    let hide = pool.docker_exec(0, "mv /usr/bin/dpkg-query /usr/bin/dpkg-query.hidden");
    assert!(hide.status.success());
    let failed = run(&["--check"]);
    assert_ne!(failed.code, 0, "{}", failed.stderr);
    assert_ne!(failed.code, 2, "{}", failed.stderr);
    let line = failed
        .stderr
        .lines()
        .find(|l| l.contains("no `dpkg-query`"))
        .unwrap_or_else(|| panic!("the cause is shown: {}", failed.stderr));
    assert!(
        line.contains(&name) && line.contains("packages::installed"),
        "names the host and the operation: {line}"
    );
}
