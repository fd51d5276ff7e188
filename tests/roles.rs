//! `toyc role`: real git repos (bare, served over file:// and over ssh by a container
//! host), the example role of scripts/roles/web, and the container hosts it is applied to.
//!
//! Each test owns its hosts of the shared pool (role records live in the login user's
//! state directory on a host, so two tests applying role `web` to the same host would
//! see each other's records): h1..h5 the ssh push test, h6..h7 the file:// test, h8..h9
//! the runbook.yml test; h10 serves git over ssh and runs `--local`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::cli::{binary, repo, Toyc};
use crate::support::hosts::{self, HostPool};

/// The pool index of the host that serves bare repos over ssh (h10).
const GIT_SERVER: usize = 9;

/// `git` in `dir` with a fixed identity and no user or system config.
pub(crate) fn git(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "toyc test")
        .env("GIT_AUTHOR_EMAIL", "test@toyc")
        .env("GIT_COMMITTER_NAME", "toyc test")
        .env("GIT_COMMITTER_EMAIL", "test@toyc")
        .envs(env.iter().copied())
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A working repo at `dir` holding a copy of `source`, committed on `main`.
fn work_repo(source: &Path, dir: &Path) -> PathBuf {
    copy_dir(source, dir);
    git(dir, &["init", "-q", "-b", "main"], &[]);
    git(dir, &["add", "-A"], &[]);
    git(dir, &["commit", "-qm", "the role"], &[]);
    dir.to_owned()
}

/// `cp -r from to`.
fn copy_dir(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-r")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(status.success());
}

/// A working repo `scratch/name` made from `source`, and a bare clone of it beside it,
/// served over file://; returns the working repo and the bare repo's URL.
pub(crate) fn file_repo(source: &Path, scratch: &Path, name: &str) -> (PathBuf, String) {
    let work = work_repo(source, &scratch.join(name));
    let bare = scratch.join(format!("{name}.git"));
    git(
        scratch,
        &["clone", "-q", "--bare", name, bare.to_str().expect("utf-8")],
        &[],
    );
    (work, format!("file://{}", bare.display()))
}

/// `git push` over ssh as root to the pool's host `i`, as an operator would.
fn push_over_ssh(pool: &HostPool, work: &Path, url: &str) {
    let ssh = format!(
        "ssh -F /dev/null -i {} -o UserKnownHostsFile={} -o GlobalKnownHostsFile=/dev/null \
         -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes -o IdentityAgent=none -o BatchMode=yes",
        pool.identity().display(),
        pool.known_hosts().display()
    );
    git(
        work,
        &["push", "-q", url, "main"],
        &[("GIT_SSH_COMMAND", ssh.as_str())],
    );
}

/// A bare repo at `path` on the git server, served over ssh; returns its URL.
fn bare_on_server(pool: &HostPool, path: &str) -> String {
    let made = pool.docker_exec(
        GIT_SERVER,
        &format!("rm -rf {path} && git init -q --bare -b main {path}"),
    );
    assert!(made.status.success(), "{made:?}");
    format!("ssh://root@{}{path}", pool.hosts()[GIT_SERVER].address)
}

/// A shell command's stdout on host `i`, run as root through docker.
fn on_host(pool: &HostPool, i: usize, cmd: &str) -> String {
    let out = pool.docker_exec(i, cmd);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The commit host `i` recorded for `role`, if any.
fn applied_commit(pool: &HostPool, i: usize, role: &str) -> Option<String> {
    let text = on_host(
        pool,
        i,
        &format!("cat /root/.local/state/toyc/roles/{role}.json 2>/dev/null"),
    );
    let record: serde_json::Value = serde_json::from_str(&text).ok()?;
    assert_eq!(record["role"], role);
    assert!(record["applied_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    record["commit"].as_str().map(str::to_owned)
}

/// An inventory of pool hosts `indices` (as root) in group `group`, with `group_vars`
/// (YAML flow map) and `extra` lines appended under `groups:`.
fn inventory(
    pool: &HostPool,
    indices: &[usize],
    group: &str,
    group_vars: &str,
    extra: &str,
) -> String {
    let mut yaml = format!(
        "ssh: {{user: root, identity: {}, known_hosts: {}}}\nhosts:\n",
        pool.identity().display(),
        pool.known_hosts().display()
    );
    let names: Vec<String> = indices.iter().map(|i| format!("h{}", i + 1)).collect();
    for (&i, name) in indices.iter().zip(&names) {
        yaml.push_str(&format!(
            "  {name}: {{address: {}}}\n",
            pool.hosts()[i].address
        ));
    }
    yaml.push_str(&format!(
        "groups:\n  {group}: {{hosts: [{}], vars: {group_vars}}}\n{extra}",
        names.join(", ")
    ));
    yaml
}

/// A `toyc role` invocation with its own state directory and git credentials.
fn toyc_role(pool: &HostPool, inventory: &str) -> Toyc {
    let toyc = Toyc::new().file("inv.yml", inventory);
    let state = toyc.dir().join("state");
    toyc.env("TOYC_STATE_DIR", state.to_str().expect("utf-8"))
        .env(
            "TOYC_GIT_IDENTITY",
            pool.identity().to_str().expect("utf-8"),
        )
        .env(
            "TOYC_GIT_KNOWN_HOSTS",
            pool.known_hosts().to_str().expect("utf-8"),
        )
        .env("SSH_AUTH_SOCK", "")
}

#[test]
fn a_commit_pushed_over_ssh_reaches_five_hosts_and_their_applied_commits_advance() {
    let Some(pool) = hosts::shared() else {
        return;
    };
    let targets = [0, 1, 2, 3, 4];
    let scratch = tempfile::tempdir().expect("tempdir");
    let work = work_repo(
        &repo().join("scripts/roles/web"),
        &scratch.path().join("web"),
    );
    let url = bare_on_server(pool, "/srv/git/ssh-five/web.git");
    push_over_ssh(pool, &work, &url);
    let first = git(&work, &["rev-parse", "HEAD"], &[]);

    let root = "/tmp/toyc-roles/ssh-five";
    let inv = inventory(
        pool,
        &targets,
        "web",
        &format!("{{web_root: {root}/www, conf_dir: {root}/conf, listen_port: 8080}}"),
        "  canary: {hosts: [h5], vars: {max_body_size: 10m}}\n",
    );
    let toyc = toyc_role(pool, &inv);
    let role = |extra: &[&str]| {
        let mut args = vec!["role", "web", "-i", "inv.yml", "--repo", url.as_str()];
        args.extend_from_slice(extra);
        toyc.run_with(&args)
    };

    // `--status` fails while a host is behind or never applied (issue 15, item 12).
    role(&["--status"]).code(2).stdout_has("never applied");
    let cold = role(&["-y"]);
    cold.code(0)
        .stderr_has(&format!(
            "role web → {}:\n  h1, h2, h3, h4, h5: never applied, 7 files to change\n",
            &first[..7]
        ))
        .stderr_has("5 ok, 0 failed, 0 unreachable");
    role(&["--status"]).code(0);
    for &i in &targets {
        assert_eq!(
            applied_commit(pool, i, "web").as_deref(),
            Some(first.as_str())
        );
        let conf = on_host(pool, i, &format!("cat {root}/conf/example.org.conf"));
        assert!(conf.contains("listen 8080;"), "{conf}");
        // The canary group overrides the role's default, for its host only.
        let body = if i == 4 { "10m" } else { "1m" };
        assert!(
            conf.contains(&format!("client_max_body_size {body};")),
            "h{}: {conf}",
            i + 1
        );
    }

    // One commit: a new home page.
    std::fs::write(
        work.join("files/index.html"),
        "<!doctype html>\n<p>Version two.</p>\n",
    )
    .expect("write");
    git(&work, &["commit", "-qam", "a new home page"], &[]);
    push_over_ssh(pool, &work, &url);
    let second = git(&work, &["rev-parse", "HEAD"], &[]);

    let status = role(&["--status"]);
    status.code(2);
    assert_eq!(
        status.stdout.matches("behind by 1 commit").count(),
        5,
        "{}",
        status.stdout
    );

    // One host first: the header of the next full run tells the hosts' own story,
    // not what this machine applied last (issue 15, item 12).
    role(&["-l", "h4", "-y"]).code(0);
    let warm = role(&["-y", "--json"]);
    warm.code(0).stderr_has(&format!(
        "role web → {}:\n  h1, h2, h3, h5: 1 commit behind (at {}), 1 file to change\n  h4: up to date\n",
        &second[..7],
        &first[..7]
    ));
    let changes: Vec<(String, String)> = warm
        .json_lines()
        .into_iter()
        .filter(|e| e["type"] == "change")
        .map(|e| {
            (
                e["data"]["host"].as_str().unwrap_or_default().to_owned(),
                e["data"]["target"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = targets
        .iter()
        .filter(|&&i| i != 3)
        .map(|i| {
            (
                format!("h{}", i + 1),
                format!("{root}/www/htdocs/index.html"),
            )
        })
        .collect();
    assert_eq!(
        changes, expected,
        "exactly the pushed change, on every host still behind"
    );
    for &i in &targets {
        assert_eq!(
            applied_commit(pool, i, "web").as_deref(),
            Some(second.as_str())
        );
        assert_eq!(
            on_host(pool, i, &format!("cat {root}/www/htdocs/index.html")),
            "<!doctype html>\n<p>Version two.</p>"
        );
    }
    let status = role(&["--status"]);
    status.code(0);
    assert_eq!(
        status.stdout.matches("up to date").count(),
        5,
        "{}",
        status.stdout
    );
}

#[test]
fn the_example_role_over_file_url_layers_attributes_and_resets_its_cache() {
    let Some(pool) = hosts::shared() else {
        return;
    };
    let scratch = tempfile::tempdir().expect("tempdir");
    let (work, url) = file_repo(&repo().join("scripts/roles/web"), scratch.path(), "web");
    let root = "/tmp/toyc-roles/file";
    let inv = inventory(
        pool,
        &[5, 6],
        "web",
        &format!("{{web_root: {root}/www, conf_dir: {root}/conf, listen_port: 8080}}"),
        "  canary: {hosts: [h7], vars: {max_body_size: 10m}}\n",
    )
    .replace(
        &format!("h7: {{address: {}}}", pool.hosts()[6].address),
        &format!(
            "h7: {{address: {}, vars: {{server_name: beta.example.org}}}}",
            pool.hosts()[6].address
        ),
    );
    let toyc = toyc_role(pool, &inv);
    let role = |extra: &[&str]| {
        let mut args = vec!["role", "web", "-i", "inv.yml", "--repo", url.as_str()];
        args.extend_from_slice(extra);
        toyc.run_with(&args)
    };

    let shown = role(&["--show-attributes", "h7", "--var", "upstream_name=blue"]);
    shown.code(0);
    for line in [
        r#"backends      = [{"host":"127.0.0.1","port":8080}]    # attributes.yml"#,
        "listen_port   = 8080    # group web",
        r#"max_body_size = "10m"    # group canary"#,
        r#"server_name   = "beta.example.org"    # host h7"#,
        r#"upstream_name = "blue"    # --var/--vars-file"#,
    ] {
        assert!(
            shown.stdout.lines().any(|l| l == line),
            "no {line:?} in\n{}",
            shown.stdout
        );
    }

    role(&["-y", "--var", "upstream_name=blue"]).code(0);
    let conf = on_host(pool, 6, &format!("cat {root}/conf/beta.example.org.conf"));
    assert!(
        conf.contains("server_name beta.example.org;")
            && conf.contains("client_max_body_size 10m;")
            && conf.contains("proxy_pass http://blue;"),
        "{conf}"
    );
    let commit = git(&work, &["rev-parse", "HEAD"], &[]);
    assert_eq!(
        applied_commit(pool, 5, "web").as_deref(),
        Some(commit.as_str())
    );

    // The cache is toyc's: edits there are undone, with a note, and nothing changes.
    let cache = std::fs::read_dir(toyc.dir().join("state/roles"))
        .expect("the cache exists")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.is_dir())
        .expect("a cache directory");
    std::fs::write(cache.join("files/index.html"), "tampered\n").expect("write");
    let again = role(&["-y", "--var", "upstream_name=blue", "--json"]);
    again.code(0).stderr_has("note: local changes in the cache");
    assert!(
        !again.json_lines().iter().any(|e| e["type"] == "change"),
        "{}",
        again.stdout
    );
}

#[test]
fn a_runbook_yml_role_runs_unchanged_and_its_explanation_makes_the_same_files() {
    let Some(pool) = hosts::shared() else {
        return;
    };
    let scratch = tempfile::tempdir().expect("tempdir");
    let source = scratch.path().join("source");
    let dir = "/tmp/toyc-roles/legacy";
    std::fs::create_dir_all(source.join("files")).expect("mkdir");
    std::fs::create_dir_all(source.join("templates")).expect("mkdir");
    std::fs::write(
        source.join("runbook.yml"),
        format!(
            "attributes:\n  greeting: hello\n  port: 80\ntasks:\n\
             \x20 - name: site root\n    shell: {{command: mkdir -p {dir}/conf, creates: {dir}/conf}}\n\
             \x20 - name: pages\n    files:\n      - {{src: index.html, dest: {dir}/index.html, mode: 0640}}\n\
             \x20 - name: config\n    templates:\n      - {{src: app.conf.j2, dest: {dir}/conf/app.conf, mode: \"0600\"}}\n"
        ),
    )
    .expect("write");
    std::fs::write(source.join("files/index.html"), "<p>legacy</p>\n").expect("write");
    std::fs::write(
        source.join("templates/app.conf.j2"),
        "greeting = {{ greeting }}\nport = {{ port }}\n",
    )
    .expect("write");
    let (_, yml_url) = file_repo(&source, scratch.path(), "yml");
    // The inventory's group vars win over runbook.yml's attributes.
    let inv = inventory(pool, &[7, 8], "legacy", "{port: 8081}", "");
    let toyc = toyc_role(pool, &inv);

    toyc.run_with(&[
        "role", "legacy", "-i", "inv.yml", "--repo", &yml_url, "-l", "h8", "-y",
    ])
    .code(0);
    let explained = toyc.run_with(&["role", "legacy", "--repo", &yml_url, "--explain"]);
    explained
        .code(0)
        .stdout_has("files::template(\"app.conf.j2\"");

    // The same role, as a runbook.rhai repo made of what --explain printed.
    let rhai_source = scratch.path().join("rhai-source");
    std::fs::create_dir_all(&rhai_source).expect("mkdir");
    for sub in ["files", "templates"] {
        copy_dir(&source.join(sub), &rhai_source.join(sub));
    }
    std::fs::write(rhai_source.join("runbook.rhai"), &explained.stdout).expect("write");
    let (_, rhai_url) = file_repo(&rhai_source, scratch.path(), "rhai");
    // Its hosts from a role → hosts file this time.
    std::fs::write(toyc.dir().join("roles.yml"), "legacy: [h9]\nweb: [h1]\n").expect("write");
    toyc.run_with(&[
        "role",
        "legacy",
        "-i",
        "inv.yml",
        "--repo",
        &rhai_url,
        "--hosts-file",
        "roles.yml",
        "-y",
    ])
    .code(0)
    .stderr_has("1 ok, 0 failed");

    let listing = format!(
        "cd {dir} && for f in index.html conf/app.conf; do stat -c '%a %U' $f; sha256sum $f; done; cat conf/app.conf"
    );
    let yml_files = on_host(pool, 7, &listing);
    assert!(
        yml_files.contains("greeting = hello\nport = 8081"),
        "{yml_files}"
    );
    assert!(yml_files.starts_with("640 root"), "{yml_files}");
    assert_eq!(on_host(pool, 8, &listing), yml_files);
    assert!(applied_commit(pool, 7, "legacy").is_some());
}

#[test]
fn files_and_templates_leading_out_of_the_repo_are_refused() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let source = scratch.path().join("source");
    std::fs::create_dir_all(source.join("files")).expect("mkdir");
    std::fs::create_dir_all(source.join("templates")).expect("mkdir");
    std::os::unix::fs::symlink("/etc/passwd", source.join("files/passwd")).expect("symlink");
    std::fs::write(source.join("templates/site.j2"), "inside\n").expect("write");
    let cases = [
        (
            "template",
            "files::template(\"../../../../../../../../../../etc/hostname\", \"/tmp/never\", #{});",
        ),
        ("symlink", "files::copy(\"passwd\", \"/tmp/never\", #{});"),
    ];
    for (name, runbook) in cases {
        std::fs::write(source.join("runbook.rhai"), runbook).expect("write");
        let dir = scratch.path().join(name);
        work_repo(&source, &dir);
        let toyc = Toyc::new();
        let state = toyc.dir().join("state");
        let ran = toyc
            .env("TOYC_STATE_DIR", state.to_str().expect("utf-8"))
            .run_with(&[
                "role",
                name,
                "--local",
                "--repo",
                &format!("file://{}", dir.display()),
                "-y",
            ]);
        ran.code(1)
            .stderr_has("leads outside the script's directory");
        assert!(!Path::new("/tmp/never").exists());
    }
}

#[test]
fn the_git_directory_of_a_role_checkout_is_unreadable_to_its_scripts() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let source = scratch.path().join("source");
    std::fs::create_dir_all(source.join("templates")).expect("mkdir");
    std::fs::write(source.join("templates/site.j2"), "inside\n").expect("write");
    let cases = [
        (
            "render",
            r#"print(template::render_file(".git/config", #{}));"#,
        ),
        ("copy", r#"files::copy("../.git/HEAD", "/tmp/never-git");"#),
        (
            "template",
            r#"files::template("../.git/config", "/tmp/never-git", #{});"#,
        ),
        ("import", r#"import ".git/hooks/x" as x;"#),
    ];
    for (name, runbook) in cases {
        std::fs::write(source.join("runbook.rhai"), runbook).expect("write");
        let dir = scratch.path().join(name);
        work_repo(&source, &dir);
        let toyc = Toyc::new();
        let state = toyc.dir().join("state");
        let ran = toyc
            .env("TOYC_STATE_DIR", state.to_str().expect("utf-8"))
            .run_with(&[
                "role",
                name,
                "--local",
                "--repo",
                &format!("file://{}", dir.display()),
                "-y",
            ]);
        ran.code(1).stderr_has("is inside `.git`");
        assert!(!ran.stdout.contains("[core]"), "{}", ran.stdout);
        assert!(!Path::new("/tmp/never-git").exists());
    }
}

#[test]
fn toyc_role_local_applies_the_role_on_the_host_it_runs_on() {
    let Some(pool) = hosts::shared() else {
        return;
    };
    let scratch = tempfile::tempdir().expect("tempdir");
    let work = work_repo(
        &repo().join("scripts/roles/web"),
        &scratch.path().join("web"),
    );
    let path = "/srv/git/local/web.git";
    push_over_ssh(pool, &work, &bare_on_server(pool, path));
    let container = &pool.hosts()[GIT_SERVER].container;
    let copied = Command::new("docker")
        .arg("cp")
        .arg(binary())
        .arg(format!("{container}:/usr/local/bin/toyc"))
        .status()
        .expect("docker cp");
    assert!(copied.success());

    let root = "/tmp/toyc-roles/local";
    let out = pool.docker_exec(
        GIT_SERVER,
        &format!(
            "cd /tmp && TOYC_STATE_DIR={root}/state toyc role web --local --repo file://{path} \
             --var web_root={root}/www --var conf_dir={root}/conf -y"
        ),
    );
    assert!(
        out.status.success(),
        "toyc on the host:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        on_host(
            pool,
            GIT_SERVER,
            &format!("cat {root}/www/htdocs/robots.txt")
        ),
        "User-agent: *\nDisallow: /private/"
    );
    assert!(on_host(
        pool,
        GIT_SERVER,
        &format!("cat {root}/conf/example.org.conf")
    )
    .contains("listen 80;"));
    let commit = git(&work, &["rev-parse", "HEAD"], &[]);
    assert_eq!(
        applied_commit(pool, GIT_SERVER, "web").as_deref(),
        Some(commit.as_str())
    );
}

#[test]
fn a_wrong_ssh_key_for_the_git_remote_fails_within_the_timeout_naming_the_remote() {
    let Some(pool) = hosts::shared() else {
        return;
    };
    let scratch = tempfile::tempdir().expect("tempdir");
    let key = scratch.path().join("wrong_key");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen");
    assert!(made.success());
    let url = format!(
        "ssh://root@{}/srv/git/nowhere.git",
        pool.hosts()[GIT_SERVER].address
    );
    let toyc = toyc_role(pool, "hosts: {}\n");
    let timeout = 10;
    let started = Instant::now();
    let ran = toyc.run_with(&[
        "role",
        "web",
        "--local",
        "--repo",
        &url,
        "--git-identity",
        key.to_str().expect("utf-8"),
        "--git-timeout",
        &timeout.to_string(),
    ]);
    let took = started.elapsed();
    ran.code(1)
        .stderr_has(&format!("unable to fetch `{url}`"))
        .stderr_has("authentication failed (tried key");
    assert!(took < Duration::from_secs(timeout), "took {took:?}");

    // A remote that accepts the connection and then says nothing: the timeout ends it.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = silent.local_addr().expect("address").port();
    let hung = format!("ssh://git@127.0.0.1:{port}/web.git");
    let started = Instant::now();
    let ran = toyc.run_with(&[
        "role",
        "web",
        "--local",
        "--repo",
        &hung,
        "--git-timeout",
        "2",
    ]);
    let took = started.elapsed();
    ran.code(1)
        .stderr_has(&format!("fetching `{hung}` took longer than 2 s"));
    assert!(took < Duration::from_secs(4), "took {took:?}");
    drop(silent);

    // A remote whose host key is not known is refused, naming it.
    let empty = scratch.path().join("known_hosts");
    std::fs::write(&empty, "").expect("write");
    let ran = toyc.run_with(&[
        "role",
        "web",
        "--local",
        "--repo",
        &url,
        "--git-known-hosts",
        empty.to_str().expect("utf-8"),
    ]);
    ran.code(1).stderr_has(&format!(
        "the host key of `{}` is not in",
        pool.hosts()[GIT_SERVER].address
    ));
}

/// A git smart-HTTP server over TLS on loopback (tests/roles/https_git.py), killed on drop.
struct HttpsGit {
    child: std::process::Child,
    port: u16,
}

impl HttpsGit {
    fn start(project_root: &Path, cert: &Path, key: &Path, credentials: &str) -> HttpsGit {
        use std::io::BufRead;
        let mut child = Command::new("python3")
            .arg(repo().join("tests/roles/https_git.py"))
            .arg(project_root)
            .arg(cert)
            .arg(key)
            .arg(credentials)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("the server prints its port");
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("port: {line:?}"));
        HttpsGit { child, port }
    }
}

impl Drop for HttpsGit {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn an_https_remote_with_a_token_in_the_url_is_fetched_and_the_token_is_never_shown() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let (_, _) = file_repo(&repo().join("scripts/roles/web"), scratch.path(), "web");
    let (cert, key) = (
        scratch.path().join("cert.pem"),
        scratch.path().join("key.pem"),
    );
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(made.status.success(), "{made:?}");
    let server = HttpsGit::start(scratch.path(), &cert, &key, "deploy:s3cr3t-token");
    let url = |token: &str| format!("https://deploy:{token}@127.0.0.1:{}/web.git", server.port);
    let out = scratch.path().join("out");
    let toyc = Toyc::new();
    let dir = |name: &str| toyc.dir().join(name).to_str().expect("utf-8").to_owned();
    let (state, host_state) = (dir("state"), dir("host-state"));
    let toyc = toyc
        .env("TOYC_STATE_DIR", &state)
        .env("XDG_STATE_HOME", &host_state)
        .env("SSL_CERT_FILE", cert.to_str().expect("utf-8"));
    let role = |token: &str| {
        toyc.run_with(&[
            "role",
            "web",
            "--local",
            "--repo",
            &url(token),
            "--var",
            &format!("web_root={}/www", out.display()),
            "--var",
            &format!("conf_dir={}/conf", out.display()),
            "-y",
        ])
    };

    let ran = role("s3cr3t-token");
    ran.code(0);
    assert!(out.join("conf/example.org.conf").is_file());
    // A second sync fetches into the existing cache (reflogs, FETCH_HEAD).
    role("s3cr3t-token").code(0);
    let record = std::fs::read_to_string(Path::new(&host_state).join("toyc/roles/web.json"))
        .expect("the local record");
    let config = std::fs::read_dir(Path::new(&state).join("roles"))
        .expect("the cache")
        .filter_map(Result::ok)
        .map(|e| e.path().join(".git/config"))
        .find(|p| p.is_file())
        .map(|p| std::fs::read_to_string(p).expect("config"))
        .expect("a cached repo");
    for text in [&ran.stderr, &ran.stdout, &record, &config] {
        assert!(!text.contains("s3cr3t"), "the token leaked:\n{text}");
    }
    // Not in any file of the cache either: the checkout is the role's sandbox.
    let grep = Command::new("grep")
        .args(["-rl", "s3cr3t"])
        .arg(&state)
        .output()
        .expect("grep runs");
    assert_eq!(
        String::from_utf8_lossy(&grep.stdout),
        "",
        "files in the cache hold the token"
    );

    let refused = role("wrong-token");
    refused
        .code(1)
        .stderr_has(&format!(
            "unable to fetch `https://deploy@127.0.0.1:{}/web.git`: authentication failed",
            server.port
        ))
        .stderr_has("check the user and token in the URL");
    assert!(
        !refused.stderr.contains("wrong-token"),
        "{}",
        refused.stderr
    );
}

#[test]
fn a_role_takes_the_script_limits_of_toyc_run() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let source = scratch.path().join("source");
    std::fs::create_dir(&source).expect("mkdir");
    std::fs::write(
        source.join("runbook.rhai"),
        "let i = 0;\nwhile true { i += 1; }\n",
    )
    .expect("write the runbook");
    let (_, url) = file_repo(&source, scratch.path(), "looping");
    let toyc = Toyc::new();
    let state = toyc.dir().join("state");
    toyc.env("TOYC_STATE_DIR", state.to_str().expect("utf-8"))
        .args(["role", "looping", "--local", "--repo", url.as_str()])
        .args(["--max-operations", "10"])
        .run()
        .code(1)
        .stderr_has("limit of 10 operations");
}

// See: issue 15, item 13. A role with both formats says which one runs; an error in a
// `runbook.yml` task points at its line of the YAML, not at the translation in the cache.
#[test]
fn a_runbook_yml_error_points_at_the_yaml_and_a_shadowed_one_is_warned_about() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let source = scratch.path().join("source");
    std::fs::create_dir_all(source.join("files")).expect("mkdir");
    std::fs::write(
        source.join("runbook.yml"),
        "# the legacy role\ntasks:\n  - name: fine\n    shell: \"true\"\n\n  - name: broken\n    files:\n      - {src: missing.txt, dest: /tmp/toyc-never/missing.txt}\n",
    )
    .expect("write");
    let dir = work_repo(&source, &scratch.path().join("yml"));
    let toyc = Toyc::new();
    let state = toyc.dir().join("state");
    let toyc = toyc.env("TOYC_STATE_DIR", state.to_str().expect("utf-8"));
    let url = format!("file://{}", dir.display());
    let ran = toyc.run_with(&["role", "legacy", "--local", "--repo", &url, "-y"]);
    ran.code(1)
        .stderr_has("runbook.yml:6")
        .stderr_has("- name: broken");
    assert!(!ran.stderr.contains("runbook.rhai"), "{}", ran.stderr);

    std::fs::write(dir.join("runbook.rhai"), "print(\"rhai runs\");\n").expect("write");
    git(&dir, &["add", "-A"], &[]);
    git(&dir, &["commit", "-qm", "both"], &[]);
    toyc.run_with(&["role", "legacy", "--local", "--repo", &url, "-y"])
        .code(0)
        .stderr_has("warning: role `legacy` has both runbook.rhai and runbook.yml")
        .stdout_has("rhai runs");
}

// See: issue 15, item 19. `roles: {ROLE: {...}}` in the inventory's vars (at the
// inventory, group or host level) applies only when that role runs, over the plain vars,
// and `--show-attributes` names where each override came from.
#[test]
fn role_overrides_in_the_inventory_apply_to_their_role_only() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let source = scratch.path().join("source");
    std::fs::create_dir_all(&source).expect("mkdir");
    std::fs::write(
        source.join("runbook.rhai"),
        "print(`greeting=${vars.greeting} port=${vars.port}`);\n",
    )
    .expect("write");
    std::fs::write(source.join("attributes.yml"), "port: 80\n").expect("write");
    let dir = work_repo(&source, &scratch.path().join("repo"));
    let url = format!("file://{}", dir.display());
    let toyc = Toyc::new();
    let state = toyc.dir().join("state");
    let toyc = toyc
        .env("TOYC_STATE_DIR", state.to_str().expect("utf-8"))
        .file(
            "inv.yml",
            "vars:\n  greeting: plain\n  roles: {greeter: {greeting: overridden}}\n\
             hosts:\n  h1: {address: 10.0.0.1}\n\
             groups:\n  web: {hosts: [h1], vars: {roles: {greeter: {port: 8080}}}}\n",
        );
    let run = |role: &str| {
        toyc.run_with(&[
            "role", role, "--local", "-i", "inv.yml", "--repo", &url, "-y",
        ])
    };
    run("greeter")
        .code(0)
        .stdout_has("greeting=overridden port=80");
    run("other").code(0).stdout_has("greeting=plain port=80");
    let shown = toyc.run_with(&[
        "role",
        "greeter",
        "-i",
        "inv.yml",
        "--repo",
        &url,
        "--show-attributes",
        "h1",
    ]);
    shown
        .code(0)
        .stdout_has("# roles.greeter of group web")
        .stdout_has("# roles.greeter of inventory vars");
    assert!(
        shown
            .stdout
            .lines()
            .any(|l| l.starts_with("port") && l.contains("8080")),
        "{}",
        shown.stdout
    );
}
