//! Hostile or mistaken input is refused before it reaches a host's shell: environment
//! variable names, owners, paths that only look harmless. Each test attacks a real host
//! and checks what the host was left with.
//!
//! See: issue 16 (security), items 5, 8 and 10.

use crate::support::cli::{Ran, Toyc};
use crate::support::hosts::{self, HostPool};

fn on_host(pool: &HostPool, i: usize, cmd: &str) -> String {
    let out = pool.docker_exec(i, cmd);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Run `script` on host `i` of the shared pool as root, applying without asking.
fn run_on(pool: &HostPool, i: usize, script: &str) -> Ran {
    Toyc::new()
        .file("inv.yml", &pool.inventory_of("root", &[i]))
        .file("s.rhai", script)
        .run_with(&["run", "s.rhai", "-i", "inv.yml", "-y"])
}

#[test]
fn an_env_key_cannot_inject_shell_commands_into_host_exec() {
    let Some(pool) = hosts::shared() else { return };
    let i = 3;
    let name = pool.hosts()[i].name.clone();
    pool.docker_exec(i, "rm -f /root/pwned /root/pwned2");
    // Straight from the script, and from inventory vars (which other people edit).
    let ran = run_on(
        pool,
        i,
        r#"host::exec("echo ok", #{ env: #{ "A=1;cd;touch pwned;B": "x" } });"#,
    );
    ran.code(1)
        .stderr_has("`A=1;cd;touch pwned;B` is not a valid environment variable name");
    let vars = pool.inventory_of("root", &[i]).replace(
        &format!("  {name}: {{address: {}}}", pool.hosts()[i].address),
        &format!(
            "  {name}: {{address: {}, vars: {{env: {{\"A=1;cd;touch pwned2;B\": x}}}}}}",
            pool.hosts()[i].address
        ),
    );
    let ran = Toyc::new()
        .file("inv.yml", &vars)
        .file(
            "s.rhai",
            r#"host::exec("echo ok", #{ sudo: true, env: vars.env });"#,
        )
        .run_with(&["run", "s.rhai", "-i", "inv.yml", "-y"]);
    ran.code(1)
        .stderr_has("`A=1;cd;touch pwned2;B` is not a valid environment variable name");
    assert_eq!(
        on_host(pool, i, "ls /root/pwned /root/pwned2 2>/dev/null"),
        "",
        "nothing ran on the host"
    );
    // A valid name still reaches the command.
    run_on(
        pool,
        i,
        r#"print(host::exec("echo $GREETING", #{ env: #{ GREETING: "hi there" } }).stdout);"#,
    )
    .code(0)
    .stdout_has("hi there");
}

#[test]
fn an_owner_that_is_an_option_never_reaches_chown() {
    let Some(pool) = hosts::shared() else { return };
    let i = 3;
    let dir = "/tmp/toyc-owner";
    pool.docker_exec(i, &format!("rm -rf {dir} && mkdir -p {dir}"));
    // `chown --reference=/etc/shadow f` would give `f` the owner of /etc/shadow.
    for (script, refused) in [
        (
            format!(r#"files::file("{dir}/f", #{{ owner: "--reference=/etc/shadow" }});"#),
            "option `owner` of `files::file`: `--reference=/etc/shadow` is not a valid owner name",
        ),
        (
            format!(r#"files::directory("{dir}/d", #{{ group: "--reference=/etc/shadow" }});"#),
            "option `group` of `files::directory`: `--reference=/etc/shadow` is not a valid group name",
        ),
        (
            format!(r#"host::put("x", "{dir}/p", #{{ owner: "--reference=/etc/shadow" }});"#),
            "option `owner` of `host::put`: `--reference=/etc/shadow` is not a valid owner name",
        ),
    ] {
        run_on(pool, i, &script).code(1).stderr_has(refused);
    }
    assert_eq!(
        on_host(pool, i, &format!("ls -A {dir}")),
        "",
        "nothing created"
    );

    // An owner that does not exist fails the step and leaves nothing new behind.
    for script in [
        format!(r#"files::file("{dir}/f", #{{ owner: "nosuchuser" }});"#),
        format!(r#"files::file("{dir}/f", #{{ owner: "nosuchuser", mode: "0600" }});"#),
        format!(r#"files::directory("{dir}/d", #{{ group: "nosuchgroup" }});"#),
        format!(r#"files::directory("{dir}/d", #{{ group: "nosuchgroup", mode: "0700" }});"#),
    ] {
        run_on(pool, i, &script).code(1).stderr_has("invalid");
        assert_eq!(
            on_host(pool, i, &format!("ls -A {dir}")),
            "",
            "a failed chown leaves nothing behind: {script}"
        );
    }
    // Numeric ids and names are owners.
    run_on(
        pool,
        i,
        &format!(r#"files::file("{dir}/f", #{{ owner: "65534", group: "nogroup" }});"#),
    )
    .code(0);
    assert_eq!(
        on_host(pool, i, &format!("stat -c %u:%G {dir}/f")),
        "65534:nogroup"
    );
}

#[test]
fn a_path_that_only_looks_harmless_is_normalised_before_the_root_check() {
    let Some(pool) = hosts::shared() else { return };
    let i = 3;
    for path in ["/.", "//", "/./.", "/tmp/.."] {
        // --check: were a path to slip through, the plan shows its removal, nothing runs.
        let ran = Toyc::new()
            .file("inv.yml", &pool.inventory_of("root", &[i]))
            .file(
                "s.rhai",
                &format!(r#"files::directory("{path}", #{{ state: "absent" }});"#),
            )
            .run_with(&["run", "s.rhai", "-i", "inv.yml", "--check"]);
        ran.code(1);
        let refused = ran.stderr.contains("refusing to remove `/`")
            || ran.stderr.contains("has a `..` component");
        assert!(refused, "{path} refused:\n{}", ran.stderr);
    }
    // The normal form is what is acted on: `//tmp/./x/` is `/tmp/x`.
    pool.docker_exec(i, "rm -rf /tmp/toyc-norm && mkdir /tmp/toyc-norm");
    run_on(
        pool,
        i,
        r#"files::directory("//tmp/./toyc-norm/", #{ state: "absent" });"#,
    )
    .code(0)
    .stderr_has("/tmp/toyc-norm");
    assert_eq!(
        on_host(pool, i, "ls -d /tmp/toyc-norm 2>&1 | grep -c 'No such'"),
        "1"
    );
}

#[test]
fn inventory_mistakes_stop_the_run_naming_file_and_line() {
    // See: issue 16, item 12. Each one used to reach a host (or DNS, or ssh's options).
    let marker = std::env::temp_dir().join(format!("toyc-proxy-{}", std::process::id()));
    let proxy = format!("-oProxyCommand=touch {}", marker.display());
    for (file, text, at, says) in [
        (
            "inv.yml",
            "hosts:\n  web1: {address: 127.0.0.1}\ngroups:\n  web: {hosts: [web1, wbe2]}\n"
                .to_owned(),
            "inv.yml:4:23: ",
            "group `web` lists host `wbe2`, which is not defined",
        ),
        (
            "hosts.ini",
            "[web]\nweb1 ansible_host=10.0.0.1\n[db]\nweb1 ansible_host=10.0.0.2\n".to_owned(),
            "hosts.ini:4:1: ",
            "host `web1` sets `ansible_host` to `10.0.0.2` here and to `10.0.0.1` on line 2",
        ),
        (
            "hosts.ini",
            "[web]\nweb1\nweb2\nweb1\n".to_owned(),
            "hosts.ini:4:1: ",
            "host `web1` is listed twice in `[web]` (first on line 2)",
        ),
        (
            "inv.yml",
            format!("hosts:\n  web1: {{address: \"{proxy}\"}}\n"),
            "inv.yml:2:",
            "starts with `-`, which ssh would read as an option",
        ),
        (
            "hosts.ini",
            format!("web1 ansible_host=\"{proxy}\"\n"),
            "hosts.ini:1:6: ",
            "starts with `-`",
        ),
        (
            "hosts.yml",
            format!("all:\n  hosts:\n    web1: {{ansible_host: \"{proxy}\"}}\n"),
            "hosts.yml:3:",
            "starts with `-`",
        ),
    ] {
        Toyc::new()
            .file(file, &text)
            .run_with(&["exec", "-i", file, "--", "true"])
            .code(65)
            .stderr_has(at)
            .stderr_has(says);
    }
    assert!(!marker.exists(), "ssh ran the proxy command");
}
