//! The `linode` provider: Linode's REST API v4 (`/v4/linode/instances`). The token is
//! read from a file; the instance's label is its name (`find` by label, so a resumed
//! run does not create twice). The generated host key and the authorized key travel in
//! the metadata service's user data (cloud-init), the authorized key also as
//! `authorized_keys`; a random root password is set because the API requires one, and
//! never shown.
//!
//! No Linode account is reachable here: the tests run against a small in-tree fake of
//! the four calls used (unit tests below), so they check the requests toyc sends and
//! how it reads answers and errors, not Linode itself.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{Instance, InstanceSpec, Provider, ProviderError};

/// `workflows: linode:` in daemon.yml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinodeSettings {
    /// The API's base URL.
    #[serde(default = "default_endpoint")]
    pub endpoint: String,
    /// A file holding the personal access token.
    pub token_file: std::path::PathBuf,
    /// The region new instances go to (`eu-central`).
    pub region: String,
    /// The type when the record gives no `size`.
    #[serde(default = "default_type")]
    pub default_type: String,
}

fn default_endpoint() -> String {
    "https://api.linode.com".into()
}
fn default_type() -> String {
    "g6-nanode-1".into()
}

/// Linode through its REST API.
pub struct Linode {
    settings: LinodeSettings,
    token: String,
    http: reqwest::Client,
}

fn api(message: impl Into<String>) -> ProviderError {
    ProviderError::Api {
        provider: "linode",
        message: message.into(),
    }
}

impl Linode {
    /// A client with these settings (the token read from its file now).
    pub fn new(settings: LinodeSettings) -> Result<Linode, ProviderError> {
        let token = std::fs::read_to_string(&settings.token_file)
            .map_err(|e| {
                api(format!(
                    "unable to read the token `{}`: {e}",
                    settings.token_file.display()
                ))
            })?
            .trim()
            .to_owned();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| api(e.to_string()))?;
        Ok(Linode {
            settings,
            token,
            http,
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        filter: Option<Value>,
    ) -> Result<Value, ProviderError> {
        let url = format!("{}/v4{path}", self.settings.endpoint.trim_end_matches('/'));
        let mut request = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(filter) = filter {
            request = request.header("X-Filter", filter.to_string());
        }
        let response = request
            .send()
            .await
            .map_err(|e| ProviderError::Unreachable {
                provider: "linode",
                message: e.to_string().replace(&self.token, "********"),
            })?;
        let status = response.status();
        let value: Value = response.json().await.unwrap_or(Value::Null);
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(ProviderError::NotFound {
                provider: "linode",
                id: path.to_owned(),
            });
        }
        if !status.is_success() {
            let reasons: Vec<String> = value["errors"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["reason"].as_str().map(str::to_owned))
                .collect();
            return Err(api(format!("{status}: {}", reasons.join("; "))));
        }
        Ok(value)
    }

    fn instance(value: &Value) -> Instance {
        Instance {
            id: value["id"]
                .as_i64()
                .map_or(String::new(), |id| id.to_string()),
            name: value["label"].as_str().unwrap_or("").to_owned(),
            state: value["status"].as_str().unwrap_or("unknown").to_owned(),
            address: value["ipv4"]
                .as_array()
                .and_then(|a| a.first())
                .and_then(Value::as_str)
                .map(str::to_owned),
        }
    }
}

/// A root password nobody needs (the API requires one): 24 random bytes, base64.
fn random_password() -> Result<String, ProviderError> {
    let mut bytes = [0u8; 24];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").map_err(|e| api(e.to_string()))?,
        &mut bytes,
    )
    .map_err(|e| api(e.to_string()))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

#[async_trait]
impl Provider for Linode {
    fn name(&self) -> &'static str {
        "linode"
    }

    async fn create(&self, spec: &InstanceSpec) -> Result<Instance, ProviderError> {
        if let Some(existing) = self.find(&spec.name).await? {
            return Ok(existing);
        }
        let mut body = json!({
            "label": spec.name,
            "region": self.settings.region,
            "type": spec.size.clone().unwrap_or_else(|| self.settings.default_type.clone()),
            "image": spec.image,
            "root_pass": random_password()?,
            "tags": spec.tags.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
        });
        if let Some(key) = &spec.ssh_public_key {
            body["authorized_keys"] = json!([key]);
        }
        if spec.host_key_file.is_some() || spec.ssh_public_key.is_some() {
            body["metadata"] = json!({ "user_data": super::ec2::user_data(spec)? });
        }
        let created = self
            .call(reqwest::Method::POST, "/linode/instances", Some(body), None)
            .await?;
        Ok(Linode::instance(&created))
    }

    async fn find(&self, name: &str) -> Result<Option<Instance>, ProviderError> {
        let found = self
            .call(
                reqwest::Method::GET,
                "/linode/instances",
                None,
                Some(json!({ "label": name })),
            )
            .await?;
        Ok(found["data"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|i| i["label"] == name)
            .map(Linode::instance))
    }

    async fn get(&self, id: &str) -> Result<Instance, ProviderError> {
        let value = self
            .call(
                reqwest::Method::GET,
                &format!("/linode/instances/{id}"),
                None,
                None,
            )
            .await?;
        Ok(Linode::instance(&value))
    }

    async fn wait_running(&self, id: &str, timeout: Duration) -> Result<Instance, ProviderError> {
        super::poll_running(self, id, timeout, Duration::from_millis(500)).await
    }

    async fn console_output(&self, _id: &str) -> Result<Option<String>, ProviderError> {
        // Linode's console is Lish, an interactive ssh session: no API to read it.
        Ok(None)
    }

    async fn destroy(&self, id: &str) -> Result<(), ProviderError> {
        match self
            .call(
                reqwest::Method::DELETE,
                &format!("/linode/instances/{id}"),
                None,
                None,
            )
            .await
        {
            Ok(_) | Err(ProviderError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    //! Against an in-tree fake of Linode's four instance calls (there is no Linode here).
    use super::*;
    use axum::extract::{Path, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::get;
    use axum::{Json, Router};
    use std::sync::{Arc, Mutex};

    #[derive(Default)]
    struct Fake {
        instances: Mutex<Vec<Value>>,
        bodies: Mutex<Vec<Value>>,
    }

    fn authorized(headers: &HeaderMap) -> bool {
        headers.get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer good-token")
    }

    fn denied() -> (StatusCode, Json<Value>) {
        (
            StatusCode::UNAUTHORIZED,
            Json(json!({"errors": [{"reason": "Invalid Token"}]})),
        )
    }

    async fn list(State(fake): State<Arc<Fake>>, headers: HeaderMap) -> (StatusCode, Json<Value>) {
        if !authorized(&headers) {
            return denied();
        }
        let filter: Value = headers
            .get("x-filter")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| serde_json::from_str(v).ok())
            .unwrap_or(Value::Null);
        let all = fake.instances.lock().expect("lock").clone();
        let data: Vec<Value> = all
            .into_iter()
            .filter(|i| filter["label"].is_null() || i["label"] == filter["label"])
            .collect();
        (StatusCode::OK, Json(json!({ "data": data })))
    }

    async fn create(
        State(fake): State<Arc<Fake>>,
        headers: HeaderMap,
        Json(body): Json<Value>,
    ) -> (StatusCode, Json<Value>) {
        if !authorized(&headers) {
            return denied();
        }
        fake.bodies.lock().expect("lock").push(body.clone());
        let mut instances = fake.instances.lock().expect("lock");
        let instance = json!({"id": 1000 + instances.len(), "label": body["label"], "status": "provisioning", "ipv4": ["203.0.113.9"]});
        instances.push(instance.clone());
        (StatusCode::OK, Json(instance))
    }

    async fn one(
        State(fake): State<Arc<Fake>>,
        headers: HeaderMap,
        Path(id): Path<i64>,
    ) -> (StatusCode, Json<Value>) {
        if !authorized(&headers) {
            return denied();
        }
        let mut instances = fake.instances.lock().expect("lock");
        match instances.iter_mut().find(|i| i["id"] == id) {
            Some(instance) => {
                // Each look brings it one state closer to running.
                instance["status"] = json!("running");
                (StatusCode::OK, Json(instance.clone()))
            }
            None => (
                StatusCode::NOT_FOUND,
                Json(json!({"errors": [{"reason": "Not found"}]})),
            ),
        }
    }

    async fn delete(
        State(fake): State<Arc<Fake>>,
        headers: HeaderMap,
        Path(id): Path<i64>,
    ) -> (StatusCode, Json<Value>) {
        if !authorized(&headers) {
            return denied();
        }
        fake.instances
            .lock()
            .expect("lock")
            .retain(|i| i["id"] != id);
        (StatusCode::OK, Json(json!({})))
    }

    async fn serve(fake: Arc<Fake>) -> String {
        let router = Router::new()
            .route("/v4/linode/instances", get(list).post(create))
            .route("/v4/linode/instances/{id}", get(one).delete(delete))
            .with_state(fake);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        format!("http://{address}")
    }

    fn client(endpoint: &str, token: &str, dir: &std::path::Path) -> Linode {
        let token_file = dir.join(format!("{token}.token"));
        std::fs::write(&token_file, token).expect("token");
        Linode::new(LinodeSettings {
            endpoint: endpoint.to_owned(),
            token_file,
            region: "eu-central".into(),
            default_type: default_type(),
        })
        .expect("client")
    }

    #[tokio::test]
    async fn an_instance_is_created_once_by_label_waited_for_and_destroyed() {
        let fake = Arc::new(Fake::default());
        let endpoint = serve(Arc::clone(&fake)).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let linode = client(&endpoint, "good-token", dir.path());
        let spec = InstanceSpec {
            name: "loki".into(),
            image: "linode/debian12".into(),
            size: None,
            ssh_public_key: Some("ssh-ed25519 AAAA ops".into()),
            tags: [("owner".to_owned(), "ops".to_owned())].into(),
            host_key_file: None,
        };
        let created = linode.create(&spec).await.expect("created");
        let again = linode.create(&spec).await.expect("found");
        assert_eq!(created.id, again.id, "a second create finds the first");
        assert_eq!(fake.bodies.lock().expect("lock").len(), 1);
        let body = fake.bodies.lock().expect("lock")[0].clone();
        assert_eq!(body["type"], "g6-nanode-1");
        assert_eq!(body["authorized_keys"], json!(["ssh-ed25519 AAAA ops"]));
        assert!(body["root_pass"].as_str().is_some_and(|p| p.len() >= 32));
        assert!(body["metadata"]["user_data"].is_string());
        let running = linode
            .wait_running(&created.id, Duration::from_secs(5))
            .await
            .expect("running");
        assert_eq!(
            (running.state.as_str(), running.address.as_deref()),
            ("running", Some("203.0.113.9"))
        );
        linode.destroy(&created.id).await.expect("destroyed");
        linode
            .destroy(&created.id)
            .await
            .expect("destroying what is gone is done");
        assert!(matches!(
            linode.get(&created.id).await,
            Err(ProviderError::NotFound { .. })
        ));
    }

    #[tokio::test]
    async fn a_wrong_token_is_refused_with_the_apis_reason_and_never_shown() {
        let endpoint = serve(Arc::new(Fake::default())).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let linode = client(&endpoint, "wrong-token", dir.path());
        let error = linode.find("loki").await.expect_err("refused").to_string();
        assert!(
            error.contains("401") && error.contains("Invalid Token"),
            "{error}"
        );
        assert!(!error.contains("wrong-token"), "{error}");
    }
}
