//! Every sandbox limit stops a hostile or broken script with a clear error, through the
//! real binary (one test per limit).

use crate::support::cli::Toyc;

fn run_script(script: &str, extra: &[&str]) -> crate::support::cli::Ran {
    Toyc::new()
        .file("s.rhai", script)
        .args(["run", "s.rhai"])
        .args(extra)
        .run()
}

#[test]
fn an_endless_loop_is_stopped_by_the_wall_clock() {
    let started = std::time::Instant::now();
    run_script("loop { }", &["--script-timeout", "1"])
        .code(1)
        .stderr_has("script exceeded its time limit of 1s")
        .stderr_has("--> s.rhai:1:");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[test]
fn an_endless_loop_is_stopped_by_the_operation_limit() {
    run_script(
        "let i = 0;\nwhile true { i += 1; }",
        &["--max-operations", "100000"],
    )
    .code(1)
    .stderr_has("limit of 100000 operations")
    .stderr_has("s.rhai:2:");
}

#[test]
fn a_huge_string_is_stopped() {
    run_script("let s = \"x\";\nloop { s += s; }", &["--max-memory", "100"])
        .code(1)
        .stderr_has("memory passed 100 MiB while the script ran")
        .stderr_has("s.rhai:2:");
}

#[test]
fn a_huge_array_is_stopped() {
    run_script("let a = [1];\nloop { a += a; }", &["--max-memory", "100"])
        .code(1)
        .stderr_has("memory passed 100 MiB while the script ran");
}

#[test]
fn a_huge_map_is_stopped() {
    let started = std::time::Instant::now();
    run_script(
        "let m = #{};\nlet i = 0;\nloop { m[`key number ${i}`] = `value ${i}`; i += 1; }",
        &["--max-memory", "100"],
    )
    .code(1)
    .stderr_has("memory passed 100 MiB while the script ran");
    assert!(started.elapsed() < std::time::Duration::from_secs(120));
}

#[test]
fn one_operation_growing_past_the_memory_limit_ends_toyc_cleanly() {
    // One call copying a 1 MB blob 100 000 times, no operation boundary to stop at: the
    // watcher ends the process.
    Toyc::new()
        .file(
            "s.rhai",
            "let b = blob(1_000_000, 0x78);\nlet a = [];\na.pad(100_000, b);\n",
        )
        .address_space(12 << 30)
        .args(["run", "s.rhai", "--max-memory", "100"])
        .run()
        .code(1)
        .stderr_has("memory passed 456 MiB, twice `--max-memory` and more");
}

#[test]
fn a_map_of_large_values_is_stopped_at_the_memory_limit() {
    // Each entry is a fresh 8 MB string, a few operations apiece: counting operations
    // alone lets it pass gigabytes. The address-space cap makes a failure an abort
    // (exit 134), not a visit from the machine's OOM killer.
    Toyc::new()
        .file(
            "s.rhai",
            "let s = \"\";\ns.pad(8 * 1024 * 1024, \"x\");\nlet m = #{};\nlet i = 0;\nloop { m[`k${i}`] = s + i; i += 1; }\n",
        )
        .address_space(2 << 30)
        .args(["run", "s.rhai", "--max-memory", "200"])
        .run()
        .code(1)
        .stderr_has("memory passed 200 MiB while the script ran")
        // The file always; its line only when the check fired on an operation Rhai gives
        // a position (not the map's indexer, `eval/indexing.rs`: `Position::NONE`).
        .stderr_has("--> s.rhai");
}

#[test]
fn endless_recursion_is_stopped() {
    run_script("fn down(n) { down(n + 1) }\ndown(0);", &[])
        .code(1)
        .stderr_has("nested deeper than 64 levels");
}

#[test]
fn deeply_nested_expressions_are_refused_at_compile_time() {
    let script = format!("let x = {}1{};", "(".repeat(200), ")".repeat(200));
    run_script(&script, &[]).code(65).stderr_has("s.rhai:1:");
}

#[test]
fn eval_is_disabled() {
    run_script("let x = eval(\"40 + 2\");", &[])
        .code(65)
        .stderr_has("s.rhai:1:");
}

#[test]
fn imports_cannot_leave_the_script_directory() {
    run_script("import \"../../etc/passwd\" as p;", &[])
        .code(1)
        .stderr_has("leads outside the script's directory");
    run_script("import \"/etc/passwd\" as p;", &[])
        .code(1)
        .stderr_has("absolute path");
}

#[test]
fn imports_inside_the_script_directory_work_and_their_errors_point_into_them() {
    Toyc::new()
        .file(
            "lib/greet.rhai",
            "fn hello(name) { `hello ${name}` }\nfn broken() { undefined_thing }\n",
        )
        .file(
            "main.rhai",
            "import \"lib/greet\" as g;\nprint(g::hello(\"you\"));\n",
        )
        .args(["run", "main.rhai"])
        .run()
        .code(0)
        .stdout_has("hello you");
    Toyc::new()
        .file("lib/greet.rhai", "fn broken() { undefined_thing }\n")
        .file("main.rhai", "import \"lib/greet\" as g;\ng::broken();\n")
        .args(["run", "main.rhai"])
        .run()
        .code(1)
        .stderr_has("greet.rhai:1:")
        .stderr_has("undefined_thing");
}

#[test]
fn a_syntax_error_shows_file_line_column_and_a_caret() {
    let ran = run_script("let a = 1;\nlet b = a +;\n", &[]);
    ran.code(65)
        .stderr_has("--> s.rhai:2:")
        .stderr_has("2 | let b = a +;");
    assert!(
        ran.stderr.lines().any(|l| l.trim_end().ends_with('^')),
        "{}",
        ran.stderr
    );
}

#[test]
fn a_syntax_error_in_an_imported_module_is_bad_input_like_one_in_the_script() {
    Toyc::new()
        .file("lib/inner.rhai", "fn ok() { 1 }\nfn broken() { let = ; }\n")
        .file(
            "lib/greet.rhai",
            "import \"inner\" as inner;\nfn hello() { inner::ok() }\n",
        )
        .file(
            "main.rhai",
            "import \"lib/greet\" as g;\nprint(g::hello());\n",
        )
        .args(["run", "main.rhai"])
        .run()
        .code(65)
        .stderr_has("inner.rhai:2:")
        .stderr_has("2 | fn broken() { let = ; }");
}

#[test]
fn a_byte_order_mark_at_the_start_of_a_script_or_module_is_accepted() {
    Toyc::new()
        .file("lib/greet.rhai", "\u{feff}fn hello() { \"hi\" }\n")
        .file(
            "main.rhai",
            "\u{feff}import \"lib/greet\" as g;\nprint(g::hello());\n",
        )
        .args(["run", "main.rhai"])
        .run()
        .code(0)
        .stdout_has("hi");
}

#[test]
fn a_syntax_error_in_a_template_the_script_names_is_bad_input_like_one_in_the_script() {
    for script in [
        "files::template(\"app.conf.j2\", \"/tmp/toyc-never-written.conf\");\n",
        "let text = template::render_file(\"templates/app.conf.j2\", #{});\n",
    ] {
        Toyc::new()
            .file(
                "templates/app.conf.j2",
                "port = 80\n{% if tls %}\nssl = on\n",
            )
            .file("s.rhai", script)
            .args(["run", "s.rhai"])
            .run()
            .code(65)
            .stderr_has("app.conf.j2`: unexpected end of input")
            .stderr_has("app.conf.j2:3:");
    }
}

#[test]
fn one_call_asking_for_more_than_the_memory_limit_is_refused() {
    // Allocated in one piece, these would abort toyc ("memory allocation failed").
    for (script, what) in [
        (
            "let b = blob(1_000_000_000_000);",
            "`blob` of 1000000000000 bytes",
        ),
        (
            "let a = [];\na.pad(1_000_000_000_000, 0);",
            "`pad` to 1000000000000 items",
        ),
        (
            "let b = blob();\nb.pad(1_000_000_000_000, 0);",
            "`pad` to 1000000000000 bytes",
        ),
    ] {
        run_script(script, &["--max-memory", "100"])
            .code(1)
            .stderr_has(what)
            .stderr_has("more than the 100 MiB toyc may use");
    }
}
