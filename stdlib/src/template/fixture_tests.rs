//! Byte-for-byte comparisons with Ansible. Each `NAME.j2` in
//! `stdlib/tests/fixtures/template/` was rendered by Ansible's own template module into
//! `NAME.expected`, with ansible-core 2.19.14 and Jinja2 3.1.6, by that directory's
//! `regenerate.sh`, which runs for each template:
//!
//! ```sh
//! ANSIBLE_JINJA2_EXTENSIONS=jinja2.ext.loopcontrols \
//!   ansible localhost -c local -m template -a "src=$PWD/NAME.j2 dest=$PWD/NAME.expected" \
//!   -e @vars.yml -e @fixture_vars.yml -e app_host=h1 -e root=/tmp/toybench/h1
//! ```
//!
//! `app.ini.j2`, `app.service.j2` and `vars.yml` are the peer benchmark workload's
//! (`bench/peers/workload/`); `fixture_vars.yml` and the other templates pin behaviour:
//! trailing newlines, trim_blocks, loops, macros and includes, `default`, the filters.
//! loopcontrols is Jinja2's extension for `break`/`continue`, which toyc always allows.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::Templates;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/template")
}

/// The variables `regenerate.sh` gives Ansible.
fn vars() -> Map<String, Value> {
    let mut vars = Map::new();
    for file in ["vars.yml", "fixture_vars.yml"] {
        let text = std::fs::read_to_string(fixtures().join(file)).expect("read vars");
        let value: Value = serde_yaml::from_str(&text).expect("vars are YAML");
        vars.extend(value.as_object().expect("a map").clone());
    }
    vars.insert("app_host".into(), "h1".into());
    vars.insert("root".into(), "/tmp/toybench/h1".into());
    vars
}

fn assert_renders_as_ansible(name: &str) {
    let templates = Templates::new(&fixtures());
    let rendered = templates
        .render_file(&format!("{name}.j2"), &vars())
        .unwrap_or_else(|e| panic!("{e}"));
    let expected = std::fs::read_to_string(fixtures().join(format!("{name}.expected")))
        .expect("expected output");
    assert!(
        rendered == expected,
        "{name}.j2 renders differently from Ansible\n--- toyc\n{rendered}\n--- ansible\n{expected}"
    );
}

#[test]
fn the_benchmark_templates_render_byte_for_byte_as_with_ansible() {
    assert_renders_as_ansible("app.ini");
    assert_renders_as_ansible("app.service");
}

#[test]
fn trailing_newlines_are_kept_as_ansible_keeps_them() {
    assert_renders_as_ansible("trailing_newline");
}

#[test]
fn whitespace_control_matches_ansible() {
    assert_renders_as_ansible("whitespace");
}

#[test]
fn loops_match_ansible() {
    assert_renders_as_ansible("loop");
}

#[test]
fn macros_imports_and_includes_match_ansible() {
    assert_renders_as_ansible("macros");
}

#[test]
fn defaults_match_ansible() {
    assert_renders_as_ansible("defaults");
}

#[test]
fn filters_match_ansible() {
    assert_renders_as_ansible("filters");
}
