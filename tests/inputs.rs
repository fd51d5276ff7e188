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
fn run_on(pool: &HostPool, i: usize, script: &str, extra_inventory: &str) -> Ran {
    let inventory = pool.inventory_of("root", &[i]) + extra_inventory;
    Toyc::new()
        .file("inv.yml", &inventory)
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
        "",
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
        "",
    )
    .code(0)
    .stdout_has("hi there");
}
