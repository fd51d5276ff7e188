//! Talking to a running daemon's JSON API: `toyc jobs` and `toyc workflow`.

use anyhow::{anyhow, Context};
use serde_json::Value;

use super::args::DaemonConnection;
use super::Failure;

/// A daemon's API at `--url`, with the token from `--token-file`.
pub struct DaemonClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl DaemonClient {
    /// The client the connection flags ask for.
    pub fn new(connection: &DaemonConnection) -> Result<DaemonClient, Failure> {
        let token = match &connection.token_file {
            Some(file) => Some(
                std::fs::read_to_string(file)
                    .with_context(|| format!("unable to read the token file `{}`", file.display()))
                    .map_err(Failure::input)?
                    .trim()
                    .to_owned(),
            ),
            None => None,
        };
        Ok(DaemonClient {
            base: connection.url.trim_end_matches('/').to_owned(),
            token,
            http: reqwest::Client::new(),
        })
    }

    /// GET (`body: None`) or POST a path; the answer's JSON. A 4xx is bad input (exit
    /// 65), anything else that is not a 2xx a failure.
    pub async fn call(&self, path: &str, post: Option<Value>) -> Result<Value, Failure> {
        let url = format!("{}{path}", self.base);
        let mut request = match post {
            Some(body) => self.http.post(&url).json(&body),
            None => self.http.get(&url),
        };
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let base = &self.base;
        let response = request.send().await.with_context(|| {
            format!("unable to reach the daemon at {base}; is `toyc daemon` running there? (--url, TOYC_DAEMON_URL)")
        })?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .with_context(|| format!("the daemon at {base} answered {status} without JSON"))?;
        if status.is_success() {
            return Ok(body);
        }
        let why = body.get("error").and_then(Value::as_str).unwrap_or("");
        let failure = anyhow!("the daemon answered {status}: {why}");
        Err(if status.is_client_error() {
            Failure::input(failure)
        } else {
            Failure::from(failure)
        })
    }
}
