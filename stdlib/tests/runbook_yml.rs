//! A `runbook.yml` translated by the engine (`toyc_engine::role::runbook_yml`) compiles
//! against the stdlib's modules: the engine knows no operation, so the check lives here.

use std::path::Path;

use toyc_engine::role::runbook_yml::Runbook;
use toyc_engine::sandbox::Sandbox;

#[test]
fn every_task_kind_translates_into_a_runbook_the_stdlib_compiles() {
    let text = "attributes: {port: 8080}\ntasks:\n  - name: dir\n    shell: {command: mkdir -p /srv, creates: /srv, sudo: true}\n  - shell: echo plain\n  - files: [{src: a.txt, dest: /srv/a.txt, mode: 0644, owner: root}]\n  - templates: [{src: t.j2, dest: /srv/t, group: www}]\n";
    let rhai = Runbook::parse(text, Path::new("runbook.yml"))
        .expect("parses")
        .to_rhai("web");
    let mut sandbox = Sandbox::new(".", Default::default());
    toyc_stdlib::register(&mut sandbox);
    sandbox
        .compile_text(&rhai, Path::new("runbook.rhai"))
        .expect("the explained runbook compiles");
}
