//! The `ec2` provider: instances through EC2's Query API at an explicit endpoint, signed
//! with Signature Version 4. The endpoint, region and key id come from daemon.yml, the
//! secret key from a file; nothing is read from the environment or from the instance
//! metadata service (an SDK's default chain would probe 169.254.169.254).
//!
//! A name is the instance's `Name` tag: `create` of a name that has a live instance
//! returns it. The generated host key and the authorized key travel in the user data
//! (cloud-init's `ssh_keys` and `ssh_authorized_keys`).

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{Instance, InstanceSpec, Provider, ProviderError};

/// The Query API version spoken.
const VERSION: &str = "2016-11-15";

/// `workflows: ec2:` in daemon.yml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ec2Settings {
    /// The API endpoint (`https://ec2.eu-west-1.amazonaws.com`).
    pub endpoint: String,
    /// The region (`eu-west-1`).
    pub region: String,
    /// The access key id.
    pub access_key_id: String,
    /// A file holding the secret access key.
    pub secret_access_key_file: std::path::PathBuf,
    /// The instance type when the record gives no `size`.
    #[serde(default = "default_type")]
    pub default_type: String,
}

fn default_type() -> String {
    "t3.micro".into()
}

/// EC2 through its Query API.
pub struct Ec2 {
    settings: Ec2Settings,
    secret: String,
    http: reqwest::Client,
}

fn api(message: impl Into<String>) -> ProviderError {
    ProviderError::Api {
        provider: "ec2",
        message: message.into(),
    }
}

impl Ec2 {
    /// A client with these settings (the secret read from its file now).
    pub fn new(settings: Ec2Settings) -> Result<Ec2, ProviderError> {
        let secret = std::fs::read_to_string(&settings.secret_access_key_file)
            .map_err(|e| {
                api(format!(
                    "unable to read the secret key `{}`: {e}",
                    settings.secret_access_key_file.display()
                ))
            })?
            .trim()
            .to_owned();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| api(e.to_string()))?;
        Ok(Ec2 {
            settings,
            secret,
            http,
        })
    }

    /// Call `action` with `params`; the response's XML.
    async fn call(
        &self,
        action: &str,
        params: &[(String, String)],
    ) -> Result<String, ProviderError> {
        let mut form = vec![
            ("Action".to_owned(), action.to_owned()),
            ("Version".to_owned(), VERSION.to_owned()),
        ];
        form.extend(params.iter().cloned());
        let body = form
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let url = reqwest::Url::parse(&self.settings.endpoint)
            .map_err(|e| api(format!("endpoint `{}`: {e}", self.settings.endpoint)))?;
        let host = match (url.host_str(), url.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            _ => {
                return Err(api(format!(
                    "endpoint `{}` has no host",
                    self.settings.endpoint
                )))
            }
        };
        let now = chrono::Utc::now();
        let headers = sign(
            &self.settings.region,
            &self.settings.access_key_id,
            &self.secret,
            &host,
            &body,
            &now.format("%Y%m%dT%H%M%SZ").to_string(),
        );
        let mut request = self.http.post(url).body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = request
            .send()
            .await
            .map_err(|e| ProviderError::Unreachable {
                provider: "ec2",
                message: e.to_string(),
            })?;
        let status = response.status();
        let text = response.text().await.map_err(|e| api(e.to_string()))?;
        if !status.is_success() {
            let code = tag(&text, "Code").unwrap_or_default();
            let message = tag(&text, "Message").unwrap_or_else(|| text.chars().take(200).collect());
            return Err(api(format!("{action}: {status} {code}: {message}")));
        }
        Ok(text)
    }

    /// The instances the XML of a DescribeInstances or RunInstances answer lists.
    fn instances(xml: &str) -> Result<Vec<Instance>, ProviderError> {
        let doc =
            roxmltree::Document::parse(xml).map_err(|e| api(format!("unreadable answer: {e}")))?;
        let mut found = Vec::new();
        for item in doc.descendants().filter(|n| n.has_tag_name("instancesSet")) {
            for instance in item.children().filter(|n| n.has_tag_name("item")) {
                let child = |name: &str| {
                    instance
                        .children()
                        .find(|n| n.has_tag_name(name))
                        .and_then(|n| n.text())
                        .map(str::to_owned)
                };
                let state = instance
                    .children()
                    .find(|n| n.has_tag_name("instanceState"))
                    .and_then(|s| s.children().find(|n| n.has_tag_name("name")))
                    .and_then(|n| n.text())
                    .unwrap_or("unknown")
                    .to_owned();
                let name = instance
                    .descendants()
                    .filter(|n| n.has_tag_name("item"))
                    .find(|t| {
                        t.children()
                            .any(|k| k.has_tag_name("key") && k.text() == Some("Name"))
                    })
                    .and_then(|t| t.children().find(|v| v.has_tag_name("value")))
                    .and_then(|v| v.text())
                    .unwrap_or("")
                    .to_owned();
                found.push(Instance {
                    id: child("instanceId").unwrap_or_default(),
                    name,
                    state,
                    address: child("ipAddress").or_else(|| child("privateIpAddress")),
                });
            }
        }
        Ok(found)
    }

    /// The images the account can launch (their ids), for choosing one.
    pub async fn images(&self) -> Result<Vec<String>, ProviderError> {
        let xml = self.call("DescribeImages", &[]).await?;
        let doc = roxmltree::Document::parse(&xml).map_err(|e| api(e.to_string()))?;
        Ok(doc
            .descendants()
            .filter(|n| n.has_tag_name("imageId"))
            .filter_map(|n| n.text().map(str::to_owned))
            .collect())
    }
}

/// cloud-init user data (base64) installing the authorized key and the generated host
/// key; Linode's metadata service takes the same.
pub(crate) fn user_data(spec: &InstanceSpec) -> Result<String, ProviderError> {
    let mut text = String::from("#cloud-config\n");
    if let Some(key) = &spec.ssh_public_key {
        text.push_str(&format!("ssh_authorized_keys:\n  - {}\n", json_string(key)));
    }
    if let Some(file) = &spec.host_key_file {
        let private = std::fs::read_to_string(file)
            .map_err(|e| api(format!("unable to read `{}`: {e}", file.display())))?;
        let public = std::fs::read_to_string(file.with_extension("pub"))
            .map_err(|e| api(format!("unable to read the public key: {e}")))?;
        text.push_str(&format!(
            "ssh_deletekeys: true\nssh_keys:\n  ed25519_private: {}\n  ed25519_public: {}\n",
            json_string(&private),
            json_string(public.trim())
        ));
    }
    Ok(base64::engine::general_purpose::STANDARD.encode(text))
}

/// A YAML double-quoted scalar (JSON's string syntax is one).
fn json_string(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

#[async_trait]
impl Provider for Ec2 {
    fn name(&self) -> &'static str {
        "ec2"
    }

    async fn create(&self, spec: &InstanceSpec) -> Result<Instance, ProviderError> {
        if let Some(existing) = self.find(&spec.name).await? {
            return Ok(existing);
        }
        let mut params = vec![
            ("ImageId".to_owned(), spec.image.clone()),
            (
                "InstanceType".to_owned(),
                spec.size
                    .clone()
                    .unwrap_or_else(|| self.settings.default_type.clone()),
            ),
            ("MinCount".to_owned(), "1".to_owned()),
            ("MaxCount".to_owned(), "1".to_owned()),
            ("UserData".to_owned(), user_data(spec)?),
            (
                "TagSpecification.1.ResourceType".to_owned(),
                "instance".to_owned(),
            ),
            ("TagSpecification.1.Tag.1.Key".to_owned(), "Name".to_owned()),
            (
                "TagSpecification.1.Tag.1.Value".to_owned(),
                spec.name.clone(),
            ),
        ];
        for (i, (key, value)) in spec.tags.iter().enumerate() {
            params.push((format!("TagSpecification.1.Tag.{}.Key", i + 2), key.clone()));
            params.push((
                format!("TagSpecification.1.Tag.{}.Value", i + 2),
                value.clone(),
            ));
        }
        let xml = self.call("RunInstances", &params).await?;
        let mut created = Ec2::instances(&xml)?;
        let mut instance = created
            .pop()
            .ok_or_else(|| api("RunInstances answered without an instance"))?;
        instance.name = spec.name.clone();
        Ok(instance)
    }

    async fn find(&self, name: &str) -> Result<Option<Instance>, ProviderError> {
        let params = [
            ("Filter.1.Name", "tag:Name"),
            ("Filter.1.Value.1", name),
            ("Filter.2.Name", "instance-state-name"),
            ("Filter.2.Value.1", "pending"),
            ("Filter.2.Value.2", "running"),
            ("Filter.2.Value.3", "stopping"),
            ("Filter.2.Value.4", "stopped"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let xml = self.call("DescribeInstances", &params).await?;
        Ok(Ec2::instances(&xml)?.into_iter().next())
    }

    async fn get(&self, id: &str) -> Result<Instance, ProviderError> {
        let xml = self
            .call(
                "DescribeInstances",
                &[("InstanceId.1".to_owned(), id.to_owned())],
            )
            .await?;
        Ec2::instances(&xml)?
            .into_iter()
            .next()
            .ok_or_else(|| ProviderError::NotFound {
                provider: "ec2",
                id: id.to_owned(),
            })
    }

    async fn wait_running(&self, id: &str, timeout: Duration) -> Result<Instance, ProviderError> {
        super::poll_running(self, id, timeout, Duration::from_millis(2000)).await
    }

    async fn console_output(&self, id: &str) -> Result<Option<String>, ProviderError> {
        let xml = self
            .call(
                "GetConsoleOutput",
                &[("InstanceId".to_owned(), id.to_owned())],
            )
            .await?;
        let Some(encoded) = tag(&xml, "output") else {
            return Ok(None);
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|e| api(format!("the console output is not base64: {e}")))?;
        Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
    }

    async fn destroy(&self, id: &str) -> Result<(), ProviderError> {
        match self
            .call(
                "TerminateInstances",
                &[("InstanceId.1".to_owned(), id.to_owned())],
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(ProviderError::Api { message, .. })
                if message.contains("InvalidInstanceID.NotFound") =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

/// The text of the first element named `name`.
fn tag(xml: &str, name: &str) -> Option<String> {
    let doc = roxmltree::Document::parse(xml).ok()?;
    doc.descendants()
        .find(|n| n.has_tag_name(name))
        .and_then(|n| n.text())
        .map(str::to_owned)
}

/// RFC 3986 percent-encoding, as SigV4 wants it (unreserved characters kept).
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The headers of a Signature Version 4 signed POST of `body` to `host` at `amz_date`
/// (`YYYYMMDDTHHMMSSZ`).
fn sign(
    region: &str,
    key_id: &str,
    secret: &str,
    host: &str,
    body: &str,
    amz_date: &str,
) -> Vec<(&'static str, String)> {
    let content_type = "application/x-www-form-urlencoded; charset=utf-8";
    let date = &amz_date[..8];
    let scope = format!("{date}/{region}/ec2/aws4_request");
    let signed_headers = "content-type;host;x-amz-date";
    let canonical = format!(
        "POST\n/\n\ncontent-type:{content_type}\nhost:{host}\nx-amz-date:{amz_date}\n\n{signed_headers}\n{}",
        hex(&Sha256::digest(body.as_bytes()))
    );
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let key = hmac(format!("AWS4{secret}").as_bytes(), date);
    let key = hmac(&key, region);
    let key = hmac(&key, "ec2");
    let key = hmac(&key, "aws4_request");
    let signature = hex(&hmac(&key, &to_sign));
    vec![
        ("content-type", content_type.to_owned()),
        ("x-amz-date", amz_date.to_owned()),
        (
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={key_id}/{scope}, SignedHeaders={signed_headers}, Signature={signature}"
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's own worked example of deriving a signing key (Signature Version 4
    /// documentation, "Examples of how to derive a signing key").
    #[test]
    fn the_signing_key_derivation_matches_aws_published_example() {
        let key = hmac(b"AWS4wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215");
        let key = hmac(&key, "us-east-1");
        let key = hmac(&key, "iam");
        let key = hmac(&key, "aws4_request");
        assert_eq!(
            hex(&key),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }

    #[test]
    fn a_signature_names_its_scope_and_encoding_keeps_unreserved_characters() {
        let headers = sign(
            "eu-west-1",
            "AKID",
            "s3cret",
            "127.0.0.1:5000",
            "Action=X",
            "20261204T120000Z",
        );
        let auth = &headers
            .iter()
            .find(|(n, _)| *n == "authorization")
            .expect("signed")
            .1;
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKID/20261204/eu-west-1/ec2/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature="));
        assert!(!auth.contains("s3cret"));
        assert_eq!(encode("a b/c~d=e"), "a%20b%2Fc~d%3De");
    }
}
