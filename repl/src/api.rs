//! The functions the console adds to the script language, to act on many hosts from one
//! line: `hosts(PATTERN)` and its `exec`, `on(PATTERN, || ...)`, and the results they
//! return, which print one row per host and can be kept in variables.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rhai::{Array, Dynamic, Engine, EvalAltResult, FnPtr, Map, NativeCallContext};
use toyc_engine::events::{seconds, status_word, HostStatus};
use toyc_engine::inventory::Host;
use toyc_engine::runner::elapsed_ms;
use toyc_engine::secrets::Secrets;
use toyc_engine::transport::ExecRequest;

use crate::fleet::{Fleet, Row};

type Fail = Box<EvalAltResult>;

/// A selection of hosts, as `hosts("web")` returns it.
///
/// ```rhai
/// let web = hosts("web");
/// web.exec("uptime");
/// ```
#[derive(Debug, Clone)]
pub struct Hosts {
    hosts: Vec<Host>,
}

impl Hosts {
    /// The hosts' names, in inventory order.
    pub fn names(&self) -> Vec<&str> {
        self.hosts.iter().map(|h| h.name.as_str()).collect()
    }
}

/// What a fleet call returned: one row per host, in inventory order.
///
/// ```rhai
/// let r = hosts("web").exec("uptime");
/// r.failed().exec("systemctl status nginx");
/// ```
#[derive(Debug, Clone)]
pub struct Results {
    rows: Vec<(Row, Dynamic)>,
    elapsed_ms: u64,
    /// The session's secrets, masked when the rows are shown.
    secrets: Secrets,
}

impl Results {
    /// One row per host: name, status, then the output, further lines indented.
    pub fn render(&self) -> String {
        let width = self
            .rows
            .iter()
            .map(|(r, _)| r.host.len())
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        for (row, value) in &self.rows {
            let status = match (row.status, row.code) {
                (HostStatus::Ok, _) => "ok".to_owned(),
                (HostStatus::Failed, Some(code)) => format!("exit {code}"),
                (status, _) => status_word(status).to_owned(),
            };
            let text = if !value.is_unit() {
                value.to_string()
            } else if let Some(error) = row.error.as_ref().filter(|_| row.code.is_none()) {
                error.clone()
            } else if row.stdout.trim().is_empty() {
                row.stderr.trim_end().to_owned()
            } else {
                row.stdout.trim_end().to_owned()
            };
            let mut lines = text.lines();
            let first = lines.next().unwrap_or_default();
            let _ = writeln!(out, "{:width$}  {status:<11}  {first}", row.host);
            for line in lines {
                let _ = writeln!(out, "{:width$}  {:<11}  {line}", "", "");
            }
        }
        let count = |s| self.rows.iter().filter(|(r, _)| r.status == s).count();
        let _ = write!(
            out,
            "{} ok, {} failed, {} unreachable in {}",
            count(HostStatus::Ok),
            count(HostStatus::Failed),
            count(HostStatus::Unreachable),
            seconds(self.elapsed_ms)
        );
        self.secrets.redact(&out).into_owned()
    }

    fn hosts_where(&self, fleet: &Fleet, keep: impl Fn(&Row) -> bool) -> Hosts {
        let names: Vec<&str> = self
            .rows
            .iter()
            .filter(|(r, _)| keep(r))
            .map(|(r, _)| r.host.as_str())
            .collect();
        Hosts {
            hosts: fleet
                .inventory()
                .hosts()
                .iter()
                .chain(fleet.inventory().host("localhost"))
                .filter(|h| names.contains(&h.name.as_str()))
                .cloned()
                .collect(),
        }
    }
}

fn row_map((row, value): &(Row, Dynamic)) -> Map {
    let mut map = Map::new();
    map.insert("host".into(), row.host.clone().into());
    map.insert("status".into(), status_word(row.status).into());
    map.insert("ok".into(), (row.status == HostStatus::Ok).into());
    map.insert(
        "code".into(),
        row.code
            .map(|c| Dynamic::from(i64::from(c)))
            .unwrap_or(Dynamic::UNIT),
    );
    map.insert("stdout".into(), row.stdout.clone().into());
    map.insert("stderr".into(), row.stderr.clone().into());
    map.insert(
        "error".into(),
        row.error
            .clone()
            .map(Dynamic::from)
            .unwrap_or(Dynamic::UNIT),
    );
    map.insert("value".into(), value.clone());
    map
}

/// `exec`'s options: `sudo`, `timeout` (seconds); anything else is refused by name.
fn exec_request(command: &str, options: &Map) -> Result<ExecRequest, Fail> {
    let mut request = ExecRequest::new(command);
    for (key, value) in options {
        match key.as_str() {
            "sudo" => {
                request.sudo = value.as_bool().map_err(|_| {
                    format!("option `sudo` of `exec` must be true or false, not `{value}`")
                })?;
            }
            "timeout" => {
                let secs = value
                    .as_float()
                    .or_else(|_| value.as_int().map(|i| i as f64))
                    .ok()
                    .and_then(|s| Duration::try_from_secs_f64(s).ok())
                    .ok_or_else(|| format!("option `timeout` of `exec` must be a positive number of seconds, not `{value}`"))?;
                request.timeout = Some(secs);
            }
            other => {
                return Err(
                    format!("`exec` has no option `{other}` (options: sudo, timeout)").into(),
                )
            }
        }
    }
    Ok(request)
}

fn exec(fleet: &Fleet, hosts: &Hosts, request: &ExecRequest) -> Result<Results, Fail> {
    let started = Instant::now();
    let rows = fleet.exec(&hosts.hosts, request);
    cancelled(fleet)?;
    Ok(Results {
        rows: rows.into_iter().map(|r| (r, Dynamic::UNIT)).collect(),
        elapsed_ms: elapsed_ms(started),
        secrets: fleet.run().secrets.clone(),
    })
}

/// Stop the line after Ctrl-C, instead of printing a table of cancelled hosts.
fn cancelled(fleet: &Fleet) -> Result<(), Fail> {
    if fleet.run().cancel.is_cancelled() {
        Err("cancelled: the command was killed on every host".into())
    } else {
        Ok(())
    }
}

/// Call `f` once per host of `hosts`, with that host as the one `host::` functions and
/// operations act on; operations join the host's pending plan.
fn on(fleet: &Fleet, ctx: &NativeCallContext, hosts: &Hosts, f: &FnPtr) -> Result<Results, Fail> {
    let started = Instant::now();
    let mut rows = Vec::new();
    for (host, context) in fleet.contexts(&hosts.hosts) {
        let host_started = Instant::now();
        let row = |status, error| Row {
            host: host.name.clone(),
            status,
            code: None,
            stdout: String::new(),
            stderr: String::new(),
            error,
            elapsed_ms: elapsed_ms(host_started),
        };
        let context = match context {
            Ok(context) => context,
            Err(e) => {
                rows.push((row(HostStatus::Unreachable, Some(e)), Dynamic::UNIT));
                continue;
            }
        };
        // The closure runs in this engine, but with the host's context as the tag the
        // stdlib looks for: the same mechanism `toyc run` uses, one host at a time.
        let mut global = ctx.global_runtime_state().clone();
        global.tag = fleet.tag(&context);
        let host_ctx = NativeCallContext::new_with_all_fields(
            ctx.engine(),
            ctx.fn_name(),
            ctx.call_source(),
            &global,
            ctx.call_position(),
        );
        fleet.closure_variables().set(Some(&host));
        let called = f.call_raw(&host_ctx, None, []);
        fleet.closure_variables().set(None);
        match called {
            Ok(value) => {
                fleet.adopt_operations(&context);
                rows.push((row(HostStatus::Ok, None), value));
            }
            Err(e) => {
                cancelled(fleet)?;
                let status = if context.was_unreachable() {
                    HostStatus::Unreachable
                } else {
                    HostStatus::Failed
                };
                // Half a host's operations would apply half an intent: drop them.
                drop(context.take_runbook());
                rows.push((row(status, Some(e.to_string())), Dynamic::UNIT));
            }
        }
    }
    Ok(Results {
        rows,
        elapsed_ms: elapsed_ms(started),
        secrets: fleet.run().secrets.clone(),
    })
}

fn select(fleet: &Fleet, pattern: Option<&str>) -> Result<Hosts, Fail> {
    let hosts = fleet.select(pattern).map_err(|e| e.to_string())?;
    Ok(Hosts { hosts })
}

/// Add `hosts`, `on` and their types to `engine`, acting on `fleet`.
pub fn register(engine: &mut Engine, fleet: &Arc<Fleet>) {
    engine.register_type_with_name::<Hosts>("Hosts");
    engine.register_type_with_name::<Results>("Results");

    let f = Arc::clone(fleet);
    engine.register_fn("hosts", move || select(&f, None));
    let f = Arc::clone(fleet);
    engine.register_fn("hosts", move |pattern: &str| select(&f, Some(pattern)));

    let f = Arc::clone(fleet);
    engine.register_fn("exec", move |hosts: &mut Hosts, command: &str| {
        exec(&f, hosts, &exec_request(command, &Map::new())?)
    });
    let f = Arc::clone(fleet);
    engine.register_fn(
        "exec",
        move |hosts: &mut Hosts, command: &str, options: Map| {
            exec(&f, hosts, &exec_request(command, &options)?)
        },
    );
    let f = Arc::clone(fleet);
    engine.register_fn(
        "on",
        move |ctx: NativeCallContext, pattern: &str, func: FnPtr| {
            let hosts = select(&f, Some(pattern))?;
            on(&f, &ctx, &hosts, &func)
        },
    );
    let f = Arc::clone(fleet);
    engine.register_fn(
        "on",
        move |ctx: NativeCallContext, hosts: &mut Hosts, func: FnPtr| on(&f, &ctx, hosts, &func),
    );
    engine.register_fn("names", |hosts: &mut Hosts| -> Array {
        hosts
            .names()
            .into_iter()
            .map(|n| Dynamic::from(n.to_owned()))
            .collect()
    });
    engine.register_fn("len", |hosts: &mut Hosts| hosts.hosts.len() as i64);
    engine.register_fn("to_string", |hosts: &mut Hosts| {
        format!("hosts({})", hosts.names().join(", "))
    });
    engine.register_fn("to_debug", |hosts: &mut Hosts| {
        format!("hosts({})", hosts.names().join(", "))
    });

    let f = Arc::clone(fleet);
    engine.register_fn("failed", move |r: &mut Results| {
        r.hosts_where(&f, |row| row.status != HostStatus::Ok)
    });
    let f = Arc::clone(fleet);
    engine.register_fn("ok", move |r: &mut Results| {
        r.hosts_where(&f, |row| row.status == HostStatus::Ok)
    });
    let f = Arc::clone(fleet);
    engine.register_fn("hosts", move |r: &mut Results| r.hosts_where(&f, |_| true));
    engine.register_fn("rows", |r: &mut Results| -> Array {
        r.rows.iter().map(|row| row_map(row).into()).collect()
    });
    engine.register_fn("len", |r: &mut Results| r.rows.len() as i64);
    engine.register_indexer_get(|r: &mut Results, host: &str| -> Result<Map, Fail> {
        r.rows
            .iter()
            .find(|(row, _)| row.host == host)
            .map(row_map)
            .ok_or_else(|| format!("no row for `{host}` in these results").into())
    });
    engine.register_fn("to_string", |r: &mut Results| r.render());
    engine.register_fn("to_debug", |r: &mut Results| r.render());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        host: &str,
        status: HostStatus,
        code: Option<i32>,
        stdout: &str,
        error: Option<&str>,
    ) -> (Row, Dynamic) {
        let row = Row {
            host: host.into(),
            status,
            code,
            stdout: stdout.into(),
            stderr: "boom\n".into(),
            error: error.map(Into::into),
            elapsed_ms: 10,
        };
        (row, Dynamic::UNIT)
    }

    #[test]
    fn results_render_one_row_per_host_with_further_lines_indented() {
        let results = Results {
            rows: vec![
                row(
                    "web1",
                    HostStatus::Ok,
                    Some(0),
                    "up 2 days\nload 0.1\n",
                    None,
                ),
                row(
                    "web22",
                    HostStatus::Failed,
                    Some(3),
                    "",
                    Some("exit status 3"),
                ),
                row(
                    "db1",
                    HostStatus::Unreachable,
                    None,
                    "",
                    Some("connection refused"),
                ),
            ],
            elapsed_ms: 1500,
            secrets: Secrets::new(),
        };
        let text = results.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "web1   ok           up 2 days");
        assert_eq!(lines[1], "                    load 0.1");
        // A failed command shows what it said on stderr when stdout is empty.
        assert_eq!(lines[2], "web22  exit 3       boom");
        assert_eq!(lines[3], "db1    unreachable  connection refused");
        assert_eq!(lines[4], "1 ok, 1 failed, 1 unreachable in 1.50s");
    }

    #[test]
    fn exec_options_are_checked_by_name() {
        let mut options = Map::new();
        options.insert("sudo".into(), true.into());
        options.insert("timeout".into(), Dynamic::from(5_i64));
        let request = exec_request("uptime", &options).expect("valid");
        assert!(request.sudo);
        assert_eq!(request.timeout, Some(Duration::from_secs(5)));
        options.insert("sudoo".into(), true.into());
        let err = exec_request("uptime", &options).expect_err("unknown option");
        assert!(err.to_string().contains("no option `sudoo`"), "{err}");
    }
}
