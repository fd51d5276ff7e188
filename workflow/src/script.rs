//! Rhai workflow scripts: a `.rhai` file whose value is the record with its `steps`, so
//! a workflow can compute its record (names, sizes, tags) instead of spelling it out:
//!
//! ```rhai
//! let name = "web" + 7;
//! #{
//!     instance: #{ hostname: name, fqdn: `${name}.example.com`, provider: "docker", image: "debian-12" },
//!     steps: ["host::keygen", "provider::create", "provider::wait_running"],
//! }
//! ```

use std::path::Path;

use serde_json::{Map, Value};
use toyc_engine::limits::Limits;
use toyc_engine::sandbox::Sandbox;

/// Run the script at `path` in the sandbox of its directory; the map it ends with.
pub fn evaluate(path: &Path) -> Result<Map<String, Value>, String> {
    let root = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut sandbox = Sandbox::new(root, Limits::default());
    toyc_stdlib::register(&mut sandbox);
    let ast = sandbox.compile(path).map_err(|e| e.to_string())?;
    let engine = sandbox.engine(None, |line| tracing::info!(target: "workflow", "{line}"));
    let value: rhai::Dynamic = engine
        .eval_ast(&ast)
        .map_err(|e| sandbox.describe(&e, path).to_string())?;
    match rhai::serde::from_dynamic::<Value>(&value) {
        Ok(Value::Object(record)) => Ok(record),
        Ok(other) => Err(format!(
            "the script's value is {other}, not the workflow's record (a map with `steps`)"
        )),
        Err(e) => Err(e.to_string()),
    }
}
