//! `toyc supervise`: with `-c DIR`, run the supervisor until SIGTERM or Ctrl-C (see
//! [`toyc_supervise::serve`]); with a verb, ask the running one over its socket and
//! print its answer (a table, or its JSON with `--json`).

use std::io::Write;

use anyhow::anyhow;
use toyc_supervise::control::{request, Request, Response};
use toyc_supervise::program::{Status, Verb};
use toyc_supervise::Options;

use super::args::{SuperviseAction, SuperviseArgs};
use super::daemon::stop_signal;
use super::{Failure, Outcome};
use crate::exit::ExitCode;

/// The top-level entry point for `toyc supervise`.
pub async fn supervise(args: SuperviseArgs) -> Outcome {
    let state_dir = toyc_engine::state_dir::state_dir().map_err(Failure::input)?;
    let socket = args
        .socket
        .clone()
        .unwrap_or_else(|| toyc_supervise::default_socket(&state_dir));
    let Some(action) = args.action else {
        let config_dir = args.config.ok_or_else(|| {
            Failure::input(anyhow!(
                "no config directory: run `toyc supervise -c DIR` (or ask a running one: `toyc supervise status`)"
            ))
        })?;
        let options = Options {
            config_dir,
            state_dir,
            store: args.store,
            socket: Some(socket),
        };
        let ready = |socket: &std::path::Path| {
            // The one line a service manager's log or a test waits for.
            eprintln!("toyc supervise: listening on {}", socket.display());
        };
        toyc_supervise::serve(options, ready, stop_signal())
            .await
            .map_err(Failure::input)?;
        return Ok(ExitCode::Success);
    };
    let (request_, follow) = match action {
        SuperviseAction::Status { name } => (Request::Status { name }, false),
        SuperviseAction::Start { name } => (control(Verb::Start, name), false),
        SuperviseAction::Stop { name } => (control(Verb::Stop, name), false),
        SuperviseAction::Restart { name } => (control(Verb::Restart, name), false),
        SuperviseAction::Deploy { name } => (control(Verb::Deploy, name), false),
        SuperviseAction::Logs {
            name,
            follow,
            lines,
        } => (
            Request::Logs {
                name,
                follow,
                lines,
            },
            follow,
        ),
    };
    let json = args.json;
    let each = |response: &Response| {
        let mut out = std::io::stdout().lock();
        if json {
            let _ = writeln!(
                out,
                "{}",
                serde_json::to_string(response).unwrap_or_default()
            );
        } else if let Some(log) = &response.log {
            let _ = out.write_all(log.as_bytes());
        }
        let _ = out.flush();
    };
    let response = request(&socket, &request_, each)
        .await
        .map_err(|e| Failure::from(anyhow!(e)))?;
    if !response.ok {
        return Err(anyhow!(response
            .error
            .unwrap_or_else(|| "the supervisor refused".into()))
        .into());
    }
    if json {
        println!("{}", serde_json::to_string(&response).unwrap_or_default());
    } else if let Some(message) = &response.message {
        println!("{message}");
    } else if matches!(request_, Request::Status { .. }) {
        print_status(&response);
    }
    let _ = follow;
    Ok(ExitCode::Success)
}

fn control(verb: Verb, name: String) -> Request {
    Request::Control { verb, name }
}

/// A duration as `3d4h`, `2h5m`, `4m10s`, `12s`, `0.4s`.
fn human(ms: i64) -> String {
    let ms = ms.max(0);
    let s = ms / 1000;
    match s {
        0..10 => format!("{:.1}s", ms as f64 / 1000.0),
        10..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        3600..86400 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86400, s % 86400 / 3600),
    }
}

fn short(commit: &str) -> &str {
    commit.get(..7).unwrap_or(commit)
}

fn print_status(response: &Response) {
    let now = toyc_supervise::now_ms();
    let rows: Vec<[String; 8]> = response
        .programs
        .iter()
        .map(|p: &Status| {
            let state = match (&p.state[..], p.next_start_ms, &p.activity) {
                ("backoff", Some(at), _) => format!("backoff (next try in {})", human(at - now)),
                (state, _, Some(activity)) => format!("{state}, {activity}"),
                (state, _, None) => state.to_owned(),
            };
            let last = p.last_deploy.as_ref().map_or("-".to_owned(), |d| {
                let commit = d.get("commit").and_then(|c| c.as_str()).unwrap_or("?");
                let outcome = d.get("outcome").and_then(|c| c.as_str()).unwrap_or("?");
                let ago = d
                    .get("at_ms")
                    .and_then(|a| a.as_i64())
                    .map_or(String::new(), |at| format!(" {} ago", human(now - at)));
                format!("{} {outcome}{ago}", short(commit))
            });
            [
                p.name.clone(),
                state,
                p.pid.map_or("-".into(), |pid| pid.to_string()),
                p.started_ms.map_or("-".into(), |at| human(now - at)),
                p.restarts.to_string(),
                p.deployed
                    .as_deref()
                    .map_or("-".into(), |c| short(c).to_owned()),
                last,
                p.next_poll_ms
                    .map_or("polling".into(), |at| format!("in {}", human(at - now))),
            ]
        })
        .collect();
    let header = [
        "name",
        "state",
        "pid",
        "uptime",
        "restarts",
        "commit",
        "last deploy",
        "next poll",
    ];
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let text: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", text.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
    for p in &response.programs {
        if let Some(error) = &p.error {
            println!("{}: {error}", p.name);
        }
        if !p.bad_commits.is_empty() {
            let bad: Vec<&str> = p.bad_commits.iter().map(|c| short(c)).collect();
            println!(
                "{}: bad commits (never deployed): {}",
                p.name,
                bad.join(", ")
            );
        }
    }
    for error in &response.config_errors {
        println!("skipped: {error}");
    }
}
