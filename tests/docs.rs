//! The manual stays true: every ```rhai example in `toyc doc` and in the README compiles
//! in the same sandbox scripts run in, and every script under scripts/ compiles.

use std::path::Path;

use toyc_engine::sandbox::{Limits, Sandbox};

use crate::support::cli::{repo, Toyc};

fn rhai_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim()) {
            (None, "```rhai") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

fn sandbox() -> Sandbox {
    let mut sandbox = Sandbox::new(repo(), Limits::default());
    toyc_stdlib::register(&mut sandbox);
    sandbox
}

#[test]
fn every_doc_example_compiles() {
    let ran = Toyc::new().args(["doc", "--markdown"]).run();
    ran.code(0);
    let blocks = rhai_blocks(&ran.stdout);
    assert!(
        blocks.len() >= 14,
        "every host function has an example: {}",
        blocks.len()
    );
    let sandbox = sandbox();
    for block in blocks {
        if let Err(e) = sandbox.compile_text(&block, Path::new("doc example")) {
            panic!("{e}\nin:\n{block}");
        }
    }
}

#[test]
fn every_readme_example_and_script_compiles() {
    let sandbox = sandbox();
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let blocks = rhai_blocks(&readme);
    assert!(!blocks.is_empty());
    for block in blocks {
        if let Err(e) = sandbox.compile_text(&block, Path::new("README.md")) {
            panic!("{e}\nin:\n{block}");
        }
    }
    for entry in std::fs::read_dir(repo().join("scripts")).expect("scripts/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "rhai") {
            sandbox.compile(&path).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}
