//! `toyc jobs`: a running daemon's jobs over its JSON API (see `toyc_daemon::http`).

use std::fmt::Write as _;

use serde_json::{json, Value};

use super::args::{JobsAction, JobsArgs};
use super::daemon_client::DaemonClient;
use super::Outcome;
use crate::exit::ExitCode;

/// The top-level entry point for `toyc jobs`.
pub async fn jobs(args: JobsArgs) -> Outcome {
    let client = DaemonClient::new(&args.connection)?;
    let (path, post) = match &args.action {
        JobsAction::List { limit } => (format!("/api/jobs?limit={limit}"), None),
        JobsAction::Show { id } => (format!("/api/jobs/{id}"), None),
        JobsAction::Retry { id } => (format!("/api/jobs/{id}/retry"), Some(json!({}))),
        JobsAction::Cancel { id } => (format!("/api/jobs/{id}/cancel"), Some(json!({}))),
    };
    let body = client.call(&path, post).await?;
    if args.json {
        println!("{body}");
        return Ok(ExitCode::Success);
    }
    print!(
        "{}",
        match &args.action {
            JobsAction::List { .. } => list(&body),
            JobsAction::Show { .. } => show(&body),
            JobsAction::Retry { id } => format!("job #{id} queued again as #{}\n", body["queued"]),
            JobsAction::Cancel { id } => format!("job #{id}: {}\n", text(&body["state"])),
        }
    );
    Ok(ExitCode::Success)
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn short(value: &Value) -> String {
    text(value).chars().take(7).collect()
}

/// One line per job.
fn list(jobs: &Value) -> String {
    let mut out = format!(
        "{:<6} {:<16} {:<10} {:<8} {:<8} hosts\n",
        "job", "role", "state", "commit", "attempts"
    );
    for job in jobs.as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "{:<6} {:<16} {:<10} {:<8} {:<8} {}",
            format!("#{}", job["id"]),
            text(&job["key"]),
            text(&job["state"]),
            short(&job["payload"]["commit"]),
            job["attempts"],
            summary(&job["result"]["summary"]),
        );
    }
    out
}

fn summary(s: &Value) -> String {
    if s.is_null() {
        return String::new();
    }
    format!(
        "{} ok, {} changed, {} failed, {} unreachable",
        s["ok"], s["changed"], s["failed"], s["unreachable"]
    )
}

/// A job: its state, each host's result, its log.
fn show(body: &Value) -> String {
    let job = &body["job"];
    let mut out = format!(
        "job #{} ({}): {}, commit {}, attempt {}\n",
        job["id"],
        text(&job["key"]),
        text(&job["state"]),
        short(&job["payload"]["commit"]),
        job["attempts"]
    );
    if let Some(into) = job["merged_into"].as_i64() {
        let _ = writeln!(out, "merged into job #{into}, which runs its push");
    }
    if let Some(error) = job["result"]["error"].as_str() {
        let _ = writeln!(out, "error: {error}");
    }
    for host in job["result"]["hosts"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  {:<16} {:<12} {} changed {}",
            text(&host["host"]),
            text(&host["status"]),
            host["changed"],
            text(&host["error"])
        );
    }
    out.push_str("log:\n");
    for event in body["events"].as_array().into_iter().flatten() {
        if let Some(line) = log_line(&event["event"]) {
            let _ = writeln!(out, "  {line}");
        }
    }
    out
}

/// An event of a job's log as a line for people; `None` for bookkeeping events.
fn log_line(event: &Value) -> Option<String> {
    let data = &event["data"];
    let host = text(&data["host"]);
    match event["type"].as_str()? {
        "daemon" => data["message"].as_str().map(str::to_owned),
        "message" => Some(format!("{host}: {}", text(&data["text"]))),
        "output" => Some(format!("{host}: {}", text(&data["line"]))),
        "change" => Some(format!("{host}: {}", text(&data["summary"]))),
        "host_end" => Some(format!(
            "{host}: {} {}",
            text(&data["status"]),
            text(&data["error"])
        )),
        _ => None,
    }
}
