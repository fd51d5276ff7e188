//! Ansible roles' templates render unchanged, byte for byte (issue 11).
//!
//! `tests/templates/` is a corpus of role templates; `expected/` holds what Ansible's own
//! `template` module wrote for them (`tests/templates/regenerate.sh`, ansible-core
//! 2.19.14), so this test needs no Ansible. toyc renders every template for a real host,
//! with the same inventory (Ansible's YAML format) and variables files, and the files it
//! writes there must be the same bytes. `tests/templates/README.md` lists what it covers.

use std::path::Path;

use crate::support::cli::{repo, Toyc};
use crate::support::hosts;

/// The corpus's Ansible inventory with `h1` reachable: its address added as Ansible's
/// `ansible_host` (the first `h1:` is the one that holds its host variables).
fn reachable_inventory(text: &str, address: &str) -> String {
    text.replacen(
        "        h1:\n",
        &format!("        h1:\n          ansible_host: {address}\n"),
        1,
    )
}

fn ssh_config(pool: &hosts::HostPool) -> String {
    format!(
        "Host *\n  User root\n  IdentityFile {}\n  UserKnownHostsFile {}\n",
        pool.identity().display(),
        pool.known_hosts().display()
    )
}

fn copy_dir(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .args(["-r"])
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(status.success(), "cp -r {}", from.display());
}

// See: issue 11, "Ansible roles' templates render unchanged, byte for byte".
#[test]
fn every_corpus_template_renders_on_a_host_byte_for_byte_as_ansible_wrote_it() {
    let Some(pool) = hosts::shared() else { return };
    let h1 = &pool.hosts()[0];
    assert_eq!(
        h1.name, "h1",
        "the corpus's inventory names the first host h1"
    );
    let corpus = repo().join("tests/templates");
    let mut names: Vec<String> = std::fs::read_dir(corpus.join("expected"))
        .expect("tests/templates/expected")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(
        names.len() >= 80,
        "the corpus has {} templates",
        names.len()
    );

    let out = format!("/tmp/template-corpus-{}", std::process::id());
    let mut script = format!("files::directory(\"{out}\");\n");
    for n in &names {
        script.push_str(&format!("files::template(\"{n}.j2\", \"{out}/{n}\");\n"));
    }
    let inventory = std::fs::read_to_string(corpus.join("inventory.yml")).expect("inventory");
    let toyc = Toyc::new()
        .file("site.rhai", &script)
        .file(
            "inventory.yml",
            &reachable_inventory(&inventory, &h1.address),
        )
        .file("ssh_config", &ssh_config(pool));
    copy_dir(&corpus.join("templates"), toyc.dir());
    for file in ["vars.yml", "facts.yml"] {
        std::fs::copy(corpus.join(file), toyc.dir().join(file)).expect("copy vars");
    }
    let ran = toyc.run_with(&[
        "run",
        "site.rhai",
        "-i",
        "inventory.yml",
        "--ssh-config",
        "ssh_config",
        "--limit",
        "h1",
        "--vars-file",
        "vars.yml",
        "--vars-file",
        "facts.yml",
        "-y",
    ]);
    ran.code(0);

    let mut differ = Vec::new();
    for name in &names {
        let expected = std::fs::read(corpus.join("expected").join(name)).expect("expected");
        let written = pool.docker_exec(0, &format!("cat {out}/{name}"));
        assert!(written.status.success(), "{name} was not written");
        if written.stdout != expected {
            differ.push(format!(
                "--- {name}: toyc\n{}\n--- {name}: ansible\n{}",
                String::from_utf8_lossy(&written.stdout),
                String::from_utf8_lossy(&expected)
            ));
        }
    }
    pool.docker_exec(0, &format!("rm -rf {out}"));
    assert!(
        differ.is_empty(),
        "{} of {} templates differ from Ansible's output:\n{}",
        differ.len(),
        names.len(),
        differ.join("\n")
    );
}

// See: issue 11: facts are gathered only when a template names them, in one round trip.
#[test]
fn a_template_naming_ansible_facts_gets_the_hosts_own_in_one_round_trip() {
    let Some(pool) = hosts::shared() else { return };
    let h1 = &pool.hosts()[0];
    let out = format!("/tmp/template-facts-{}", std::process::id());
    let toyc = Toyc::new()
        .file(
            "templates/facts.j2",
            "{{ ansible_hostname }}|{{ ansible_distribution }}|{{ ansible_os_family }}|\
             {{ ansible_default_ipv4.address }}|{{ ansible_processor_vcpus > 0 }}|\
             {{ ansible_facts.distribution_major_version | int > 10 }}|{{ inventory_hostname }}\n",
        )
        .file("templates/plain.j2", "{{ inventory_hostname }}\n")
        .file(
            "plain.rhai",
            &format!(
                "files::directory(\"{out}\");\nfiles::template(\"plain.j2\", \"{out}/plain\");\n"
            ),
        )
        .file(
            "facts.rhai",
            &format!(
                "files::directory(\"{out}\");\n\
                 files::template(\"plain.j2\", \"{out}/plain\");\n\
                 files::template(\"facts.j2\", \"{out}/facts\");\n\
                 files::template(\"facts.j2\", \"{out}/again\");\n"
            ),
        )
        .file(
            "inv.yml",
            &format!("hosts:\n  h1: {{address: {}}}\n", h1.address),
        )
        .file("ssh_config", &ssh_config(pool))
        .env("RUST_LOG", "toyc_engine=debug");
    let run = |script: &str| {
        let ran = toyc.run_with(&[
            "run",
            script,
            "-i",
            "inv.yml",
            "--ssh-config",
            "ssh_config",
            "-y",
        ]);
        ran.code(0);
        ran.round_trips("h1")
    };
    let without_facts = run("plain.rhai");
    let with_facts = run("facts.rhai");
    let written = pool.docker_exec(0, &format!("cat {out}/facts {out}/plain"));
    pool.docker_exec(0, &format!("rm -rf {out}"));
    assert_eq!(
        String::from_utf8_lossy(&written.stdout),
        format!("h1|Debian|Debian|{}|True|True|h1\nh1\n", h1.address)
    );
    // Two templates naming facts cost one round trip more than none: gathered once.
    assert_eq!(
        with_facts,
        without_facts + 1,
        "round trips without facts {without_facts}, with {with_facts}"
    );
}

// See: issue 11: `toyc template` renders for a host here what `files::template` writes
// there, asks the host for facts only when the template names one, and diffs.
#[test]
fn toyc_template_prints_what_a_run_writes_and_diffs_it_against_the_host() {
    let Some(pool) = hosts::shared() else { return };
    let h1 = &pool.hosts()[0];
    let out = format!("/tmp/template-cli-{}", std::process::id());
    let dest = format!("{out}/app.conf");
    let toyc = Toyc::new()
        .file(
            "role/templates/app.conf.j2",
            "# {{ ansible_managed }}\n{% include '_head.j2' %}\n\n\
             host={{ inventory_hostname }} os={{ ansible_distribution }} \
             ip={{ ansible_default_ipv4.address }}\n\
             {% for k, v in settings.items() %}{{ k }}={{ v }}\n{% endfor %}\
             port={{ port }} groups={{ group_names | join(',') }}\n",
        )
        .file("role/templates/_head.j2", "[{{ app | upper }}]\n")
        .file(
            "role/templates/plain.j2",
            "{{ inventory_hostname }} {{ port }}\n",
        )
        .file(
            "role/site.rhai",
            &format!(
                "files::directory(\"{out}\");\nfiles::template(\"app.conf.j2\", \"{dest}\");\n"
            ),
        )
        .file(
            "inv.yml",
            &format!(
                "groups:\n  web:\n    hosts:\n      h1: {{address: {}}}\n    vars:\n      \
                 settings: {{zeta: 1, alpha: two, mid: '0755'}}\n",
                h1.address
            ),
        )
        .file("vars.yml", "app: shop\nport: 80\n")
        .file("ssh_config", &ssh_config(pool))
        .env("RUST_LOG", "toyc_engine=debug");
    let common = [
        "-i",
        "inv.yml",
        "--ssh-config",
        "ssh_config",
        "--vars-file",
        "vars.yml",
        "--var",
        "port=8080",
    ];
    let template = |name: &str, extra: &[&str]| {
        let path = format!("role/templates/{name}");
        let mut args = vec!["template", path.as_str(), "--host", "h1"];
        args.extend(common);
        args.extend(extra);
        toyc.run_with(&args)
    };

    // No facts named: rendered without connecting.
    let plain = template("plain.j2", &[]);
    plain.code(0);
    assert_eq!(plain.stdout, "h1 8080\n");
    assert_eq!(plain.round_trips("h1"), 0, "{}", plain.stderr);

    // Facts named: asked of the host in one round trip.
    let printed = template("app.conf.j2", &[]);
    printed.code(0);
    assert_eq!(printed.round_trips("h1"), 1, "{}", printed.stderr);
    let expected = format!(
        "# Ansible managed\n[SHOP]\nhost=h1 os=Debian ip={}\nzeta=1\nalpha=two\nmid=0755\n\
         port=8080 groups=web\n",
        h1.address
    );
    assert_eq!(printed.stdout, expected);

    // Missing on the host: every line is new; exit 2 as `--check` does.
    let missing = template("app.conf.j2", &["--diff", &dest]);
    missing.code(2);
    missing.stdout_has(&format!("--- {dest} (missing on h1)"));
    missing.stdout_has(&format!("+++ {dest} (rendered)"));
    missing.stdout_has("+port=8080 groups=web\n");

    // What a run writes there is what `toyc template` printed: no difference.
    let mut run_args = vec!["run", "role/site.rhai", "-y"];
    run_args.extend(common);
    toyc.run_with(&run_args).code(0);
    let written = pool.docker_exec(0, &format!("cat {dest}"));
    assert_eq!(String::from_utf8_lossy(&written.stdout), expected);
    let same = template("app.conf.j2", &["--diff", &dest]);
    same.code(0);
    assert_eq!(same.stdout, "");

    // Changed on the host: a unified diff of the changed line only.
    pool.docker_exec(0, &format!("sed -i 's/port=8080/port=81/' {dest}"));
    let changed = template("app.conf.j2", &["--diff", &dest]);
    pool.docker_exec(0, &format!("rm -rf {out}"));
    changed.code(2);
    changed.stdout_has("-port=81 groups=web\n+port=8080 groups=web\n");
    assert!(
        !changed.stdout.contains("+zeta=1"),
        "only the changed line differs:\n{}",
        changed.stdout
    );
}
