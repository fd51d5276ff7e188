//! The daemon's HTTP side: the webhook endpoints (open, but only signed deliveries get
//! anywhere), the JSON API and the status page (a token unless bound to loopback).
//!
//! A webhook is answered from the store alone: the signature is checked on the raw body,
//! the push read, the delivery and its job committed in one transaction, then the 2xx.
//! No git or SSH work happens before the answer.
//!
//! | route | what |
//! |---|---|
//! | `POST /hooks/{github,gitea,forgejo,gitlab}` | a delivery |
//! | `GET /api/jobs` | the newest jobs |
//! | `GET /api/jobs/ID` | one job with its event log |
//! | `GET /api/jobs/ID/events?after=N` | a job's events after `N` (the live log) |
//! | `POST /api/jobs/ID/retry` | queue a deliberate full re-run |
//! | `POST /api/jobs/ID/cancel` | cancel a queued or running job |
//! | `GET /api/roles`, `/api/hosts`, `/api/deliveries` | repos and roles, hosts, deliveries |
//! | `POST /api/workflows` `{"what": PATH or NAME, "name": ...}` | queue a workflow run |
//! | `GET /api/workflows`, `/api/workflows/NAME` | every run's status, one run's |
//! | `POST /api/workflows/NAME/resume`, `.../cancel` | resume from the failed step, cancel |
//! | `GET /` | the status page |

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;
use toyc_store::{Accepted, JobId, NewDelivery, NewJob, StoreError};

use crate::job::RoleRun;
use crate::webhook::{self, Delivery, Headers, Provider};
use crate::worker::Workers;
use crate::workflows::{self, StartError};

/// What the handlers share.
pub struct App {
    /// The daemon's workers (configuration, store, running jobs).
    pub workers: Arc<Workers>,
    /// The token the API and page ask for; `None` when bound to loopback without one.
    pub token: Option<String>,
}

/// Every route, with the body limit on the webhook routes and the token check on the
/// others.
pub fn router(app: Arc<App>) -> Router {
    let limit = app.workers.daemon.config.body_limit;
    let hooks = Router::new()
        .route("/hooks/{provider}", post(hook))
        .layer(DefaultBodyLimit::max(limit));
    let api = Router::new()
        .route("/", get(page))
        .route("/api/jobs", get(jobs))
        .route("/api/jobs/{id}", get(job))
        .route("/api/jobs/{id}/events", get(events))
        .route("/api/jobs/{id}/retry", post(retry))
        .route("/api/jobs/{id}/cancel", post(cancel))
        .route("/api/roles", get(roles))
        .route("/api/hosts", get(hosts))
        .route("/api/deliveries", get(deliveries))
        .route("/api/workflows", get(workflow_list).post(workflow_start))
        .route("/api/workflows/{name}", get(workflow_status))
        .route("/api/workflows/{name}/resume", post(workflow_resume))
        .route("/api/workflows/{name}/cancel", post(workflow_cancel))
        .layer(middleware::from_fn_with_state(Arc::clone(&app), authorize));
    hooks.merge(api).with_state(app)
}

/// An answer: a status and a JSON body.
fn answer(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

fn refuse(status: StatusCode, why: &str) -> Response {
    answer(status, json!({ "error": why }))
}

fn store_failed(error: &StoreError) -> Response {
    tracing::error!(error = %error, "the store failed");
    refuse(
        StatusCode::SERVICE_UNAVAILABLE,
        "the store failed; try again",
    )
}

struct HeaderView<'a>(&'a HeaderMap);

impl Headers for HeaderView<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|v| v.to_str().ok())
    }
}

#[tracing::instrument(skip_all, fields(provider = %provider))]
async fn hook(
    State(app): State<Arc<App>>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(provider) = Provider::from_path(&provider) else {
        return refuse(
            StatusCode::NOT_FOUND,
            "no such hook: use /hooks/github, /hooks/gitea or /hooks/gitlab",
        );
    };
    let daemon = &app.workers.daemon;
    let headers = HeaderView(&headers);
    // Which repos' secrets sign this body: checked before anything is parsed.
    let signed_for: BTreeSet<&str> = daemon
        .repos
        .values()
        .filter(|repo| webhook::verify(provider, &headers, &body, &repo.secret))
        .map(|repo| repo.name.as_str())
        .collect();
    if signed_for.is_empty() {
        tracing::warn!("refused: signature missing or wrong");
        return refuse(StatusCode::UNAUTHORIZED, "signature missing or wrong");
    }
    let event = webhook::event(provider, &headers);
    let delivery = match webhook::parse(provider, &event, &body) {
        Ok(delivery) => delivery,
        Err(why) => return refuse(StatusCode::BAD_REQUEST, &why),
    };
    let id = webhook::delivery_id(provider, &headers, &body);
    let record = |repo: &str, ignored: Option<String>| NewDelivery {
        id: id.clone(),
        provider: provider.name().into(),
        repo: repo.into(),
        event: event.clone(),
        ignored,
    };
    let push = match delivery {
        Delivery::Ping => return answer(StatusCode::OK, json!({"pong": true})),
        Delivery::Other(event) => {
            let repo = signed_for.iter().next().copied().unwrap_or_default();
            let why = format!("event `{event}` is not tracked");
            return accepted(&app, record(repo, Some(why)), None).await;
        }
        Delivery::Push(push) => push,
    };
    let Some(repo) = daemon.repos.get(&push.repo) else {
        return refuse(
            StatusCode::NOT_FOUND,
            &format!("repo `{}` is not configured", push.repo),
        );
    };
    if !signed_for.contains(repo.name.as_str()) {
        return refuse(StatusCode::UNAUTHORIZED, "signature missing or wrong");
    }
    let ignored = match push.branch() {
        _ if push.deleted() => Some("the push deletes its ref".to_owned()),
        Some(branch) if branch == repo.config.branch => None,
        Some(branch) => Some(format!("branch `{branch}` is not tracked")),
        None => Some(format!("`{}` is not a branch", push.git_ref)),
    };
    let job = ignored.is_none().then(|| NewJob {
        key: repo.role.clone(),
        payload: RoleRun::of_push(
            &repo.name,
            &repo.role,
            &push.before,
            &push.after,
            push.forced,
        )
        .to_value(),
    });
    accepted(&app, record(&repo.name, ignored), job).await
}

async fn accepted(app: &App, delivery: NewDelivery, job: Option<NewJob>) -> Response {
    let id = delivery.id.clone();
    match app.workers.store.accept(delivery, job).await {
        Ok(Accepted::Queued { job }) => {
            tracing::info!(delivery = %id, job, "queued");
            answer(StatusCode::ACCEPTED, json!({"queued": job}))
        }
        Ok(Accepted::Duplicate { job }) => {
            tracing::info!(delivery = %id, "duplicate delivery");
            answer(StatusCode::OK, json!({"duplicate": true, "job": job}))
        }
        Ok(Accepted::Ignored) => answer(StatusCode::OK, json!({"ignored": true})),
        Err(e) => store_failed(&e),
    }
}

/// The token check of every route but the webhooks'.
async fn authorize(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let Some(token) = &app.token else {
        return next.run(request).await;
    };
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let query = request
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|pair| pair.strip_prefix("token=")));
    let given = bearer.or(query).unwrap_or("");
    if bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
        next.run(request).await
    } else {
        refuse(
            StatusCode::UNAUTHORIZED,
            "a token is needed: `Authorization: Bearer TOKEN` or `?token=TOKEN`",
        )
    }
}

#[derive(Deserialize)]
struct Limit {
    limit: Option<usize>,
}

async fn jobs(State(app): State<Arc<App>>, Query(q): Query<Limit>) -> Response {
    match app.workers.store.jobs(q.limit.unwrap_or(100)).await {
        Ok(jobs) => answer(StatusCode::OK, json!(jobs)),
        Err(e) => store_failed(&e),
    }
}

async fn job(State(app): State<Arc<App>>, Path(id): Path<JobId>) -> Response {
    let store = &app.workers.store;
    match (store.job(id).await, store.events(id, 0).await) {
        (Ok(Some(job)), Ok(events)) => {
            answer(StatusCode::OK, json!({"job": job, "events": events}))
        }
        (Ok(None), _) => refuse(StatusCode::NOT_FOUND, &format!("no job #{id}")),
        (Err(e), _) | (_, Err(e)) => store_failed(&e),
    }
}

#[derive(Deserialize)]
struct After {
    after: Option<i64>,
}

async fn events(
    State(app): State<Arc<App>>,
    Path(id): Path<JobId>,
    Query(q): Query<After>,
) -> Response {
    match app.workers.store.events(id, q.after.unwrap_or(0)).await {
        Ok(events) => answer(StatusCode::OK, json!(events)),
        Err(e) => store_failed(&e),
    }
}

async fn retry(State(app): State<Arc<App>>, Path(id): Path<JobId>) -> Response {
    let store = &app.workers.store;
    let job = match store.job(id).await {
        Ok(Some(job)) => job,
        Ok(None) => return refuse(StatusCode::NOT_FOUND, &format!("no job #{id}")),
        Err(e) => return store_failed(&e),
    };
    let Some(run) = RoleRun::from_value(&job.payload) else {
        return refuse(StatusCode::CONFLICT, "the job is not a role run");
    };
    let new = NewJob {
        key: job.key,
        payload: run.retry().to_value(),
    };
    match store.enqueue(new).await {
        Ok(new) => {
            tracing::info!(job = id, retry = new, "retry queued");
            answer(StatusCode::ACCEPTED, json!({"queued": new, "retry_of": id}))
        }
        Err(e) => store_failed(&e),
    }
}

async fn cancel(State(app): State<Arc<App>>, Path(id): Path<JobId>) -> Response {
    match app.workers.store.cancel(id).await {
        Ok(state) => {
            app.workers.cancel_here(id);
            tracing::info!(job = id, state = ?state, "cancel asked");
            answer(StatusCode::OK, json!({"job": id, "state": state}))
        }
        Err(StoreError::NoSuchJob(_)) => refuse(StatusCode::NOT_FOUND, &format!("no job #{id}")),
        Err(e) => store_failed(&e),
    }
}

async fn roles(State(app): State<Arc<App>>) -> Response {
    let repos: Vec<Value> = app
        .workers
        .daemon
        .repos
        .values()
        .map(|repo| {
            json!({
                "repo": repo.name,
                "role": repo.role,
                "branch": repo.config.branch,
                "hosts": repo.config.hosts.clone().unwrap_or_else(|| repo.role.clone()),
            })
        })
        .collect();
    answer(StatusCode::OK, json!(repos))
}

async fn hosts(State(app): State<Arc<App>>) -> Response {
    match app.workers.store.hosts().await {
        Ok(hosts) => answer(StatusCode::OK, json!(hosts)),
        Err(e) => store_failed(&e),
    }
}

async fn deliveries(State(app): State<Arc<App>>, Query(q): Query<Limit>) -> Response {
    match app.workers.store.deliveries(q.limit.unwrap_or(100)).await {
        Ok(list) => answer(StatusCode::OK, json!(list)),
        Err(e) => store_failed(&e),
    }
}

/// The status page: static HTML whose script polls the API (the token it was opened
/// with travels along), so it shows the queue, running and recent jobs, per-host
/// results and a running job's live log.
async fn page() -> Html<&'static str> {
    Html(include_str!("status.html"))
}

fn workflow_refused(error: &StartError) -> Response {
    let status = match error {
        StartError::Invalid(_) => StatusCode::BAD_REQUEST,
        StartError::Busy(_) => StatusCode::CONFLICT,
        StartError::NotFound(_) => StatusCode::NOT_FOUND,
        StartError::Store(e) => return store_failed(e),
    };
    refuse(status, &error.to_string())
}

#[derive(Deserialize)]
struct StartRequest {
    what: String,
    #[serde(default)]
    name: Option<String>,
}

async fn workflow_start(
    State(app): State<Arc<App>>,
    Json(request): Json<StartRequest>,
) -> Response {
    match workflows::start(&app.workers, &request.what, request.name.as_deref(), None).await {
        Ok((job, name)) => answer(StatusCode::ACCEPTED, json!({"job": job, "name": name})),
        Err(e) => workflow_refused(&e),
    }
}

async fn workflow_list(State(app): State<Arc<App>>) -> Response {
    let mut statuses = Vec::new();
    let jobs = match workflows::all(&app.workers).await {
        Ok(jobs) => jobs,
        Err(e) => return workflow_refused(&e),
    };
    for job in jobs {
        let name = job.key.trim_start_matches(workflows::KEY_PREFIX).to_owned();
        match workflows::status(&app.workers, &name).await {
            Ok(status) => statuses.push(status),
            Err(e) => return workflow_refused(&e),
        }
    }
    answer(StatusCode::OK, json!(statuses))
}

async fn workflow_status(State(app): State<Arc<App>>, Path(name): Path<String>) -> Response {
    match workflows::status(&app.workers, &name).await {
        Ok(status) => {
            let line = status.line();
            let mut value = json!(status);
            value["line"] = json!(line);
            answer(StatusCode::OK, value)
        }
        Err(e) => workflow_refused(&e),
    }
}

async fn workflow_resume(State(app): State<Arc<App>>, Path(name): Path<String>) -> Response {
    match workflows::resume(&app.workers, &name, None).await {
        Ok((job, name)) => answer(StatusCode::ACCEPTED, json!({"job": job, "name": name})),
        Err(e) => workflow_refused(&e),
    }
}

async fn workflow_cancel(State(app): State<Arc<App>>, Path(name): Path<String>) -> Response {
    match workflows::cancel(&app.workers, &name).await {
        Ok(state) => answer(StatusCode::OK, json!({"name": name, "state": state})),
        Err(e) => workflow_refused(&e),
    }
}
