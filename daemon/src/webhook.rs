//! Webhook deliveries from GitHub, Gitea/Forgejo and GitLab: the signature checked on the
//! raw body in constant time before anything is parsed, then the push read out of it.
//!
//! - GitHub signs the body with HMAC-SHA256: `X-Hub-Signature-256: sha256=HEX`.
//! - Gitea and Forgejo sign it the same way, as bare hex: `X-Gitea-Signature: HEX`
//!   (Forgejo also sends `X-Forgejo-Signature`).
//! - GitLab sends the secret itself: `X-Gitlab-Token: SECRET`.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The git hosts whose deliveries are understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// GitHub (and GitHub Enterprise).
    GitHub,
    /// Gitea and Forgejo.
    Gitea,
    /// GitLab.
    GitLab,
}

impl Provider {
    /// The provider of the endpoint `/hooks/NAME`.
    pub fn from_path(name: &str) -> Option<Provider> {
        match name {
            "github" => Some(Provider::GitHub),
            "gitea" | "forgejo" => Some(Provider::Gitea),
            "gitlab" => Some(Provider::GitLab),
            _ => None,
        }
    }

    /// Its name in the store.
    pub fn name(self) -> &'static str {
        match self {
            Provider::GitHub => "github",
            Provider::Gitea => "gitea",
            Provider::GitLab => "gitlab",
        }
    }
}

/// The headers a delivery is judged by (lower-case names).
pub trait Headers {
    /// A header's value, if present and text.
    fn get(&self, name: &str) -> Option<&str>;
}

/// Whether `body` was signed with `secret` as `provider` signs it. Constant time in the
/// secret and the signature.
pub fn verify(provider: Provider, headers: &dyn Headers, body: &[u8], secret: &str) -> bool {
    match provider {
        Provider::GitHub => headers
            .get("x-hub-signature-256")
            .and_then(|s| s.strip_prefix("sha256="))
            .is_some_and(|hex| hmac_matches(secret, body, hex)),
        Provider::Gitea => headers
            .get("x-gitea-signature")
            .or_else(|| headers.get("x-forgejo-signature"))
            .is_some_and(|hex| hmac_matches(secret, body, hex)),
        Provider::GitLab => headers.get("x-gitlab-token").is_some_and(|token| {
            // Compare digests, so the time taken says nothing about the length either.
            let a = Sha256::digest(token.as_bytes());
            let b = Sha256::digest(secret.as_bytes());
            bool::from(a.ct_eq(&b))
        }),
    }
}

/// Whether `hex` is the HMAC-SHA256 of `body` under `secret`.
fn hmac_matches(secret: &str, body: &[u8], hex: &str) -> bool {
    let Ok(signature) = hex::decode(hex.trim()) else {
        return false;
    };
    if signature.len() != 32 {
        return false;
    }
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&signature).is_ok()
}

/// The delivery's id: the git host's own, else a digest of the body (a re-sent body is a
/// duplicate then, which is what a sender without ids means by re-sending).
pub fn delivery_id(provider: Provider, headers: &dyn Headers, body: &[u8]) -> String {
    let own = match provider {
        Provider::GitHub => headers.get("x-github-delivery"),
        Provider::Gitea => headers
            .get("x-gitea-delivery")
            .or_else(|| headers.get("x-forgejo-delivery")),
        Provider::GitLab => headers
            .get("idempotency-key")
            .or_else(|| headers.get("x-gitlab-event-uuid")),
    };
    match own.map(str::trim).filter(|id| !id.is_empty()) {
        Some(id) => format!("{}:{id}", provider.name()),
        None => format!(
            "{}:sha256:{}",
            provider.name(),
            hex::encode(Sha256::digest(body))
        ),
    }
}

/// The event a delivery says it is, in the provider's words (`push`, `ping`, `Push Hook`).
pub fn event(provider: Provider, headers: &dyn Headers) -> String {
    let name = match provider {
        Provider::GitHub => headers.get("x-github-event"),
        Provider::Gitea => headers
            .get("x-gitea-event")
            .or_else(|| headers.get("x-forgejo-event")),
        Provider::GitLab => headers.get("x-gitlab-event"),
    };
    name.unwrap_or("").trim().to_owned()
}

/// What a verified delivery is about.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// The git host checking the hook works.
    Ping,
    /// A push to a branch or tag.
    Push(Push),
    /// Any other event: acknowledged and recorded as ignored.
    Other(String),
}

/// A push, as the payload tells it.
#[derive(Debug, Clone, PartialEq)]
pub struct Push {
    /// The repository's full name.
    pub repo: String,
    /// The ref pushed (`refs/heads/main`).
    pub git_ref: String,
    /// The commit before (all zeros for a new branch).
    pub before: String,
    /// The commit after (all zeros for a deleted branch).
    pub after: String,
    /// The git host says history was rewritten.
    pub forced: bool,
}

impl Push {
    /// The branch pushed, if a branch was.
    pub fn branch(&self) -> Option<&str> {
        self.git_ref.strip_prefix("refs/heads/")
    }

    /// Whether the push deleted its ref.
    pub fn deleted(&self) -> bool {
        is_zero(&self.after)
    }
}

/// Whether a commit id is the all-zeros "no commit".
pub fn is_zero(commit: &str) -> bool {
    commit.is_empty() || commit.bytes().all(|b| b == b'0')
}

/// Read a verified body. `Err` says what is malformed.
pub fn parse(provider: Provider, event: &str, body: &[u8]) -> Result<Delivery, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let is_push = match provider {
        Provider::GitHub | Provider::Gitea => event == "push",
        Provider::GitLab => event == "Push Hook",
    };
    if event == "ping" || (provider == Provider::GitLab && event == "System Hook") {
        return Ok(Delivery::Ping);
    }
    if !is_push {
        return Ok(Delivery::Other(event.to_owned()));
    }
    let text = |pointer: &str| value.pointer(pointer).and_then(Value::as_str);
    let repo = match provider {
        Provider::GitLab => text("/project/path_with_namespace"),
        _ => text("/repository/full_name"),
    }
    .ok_or("the push names no repository")?;
    let field = |name: &str| {
        text(&format!("/{name}"))
            .map(str::to_owned)
            .ok_or(format!("the push has no `{name}`"))
    };
    Ok(Delivery::Push(Push {
        repo: repo.to_owned(),
        git_ref: field("ref")?,
        before: field("before")?,
        after: field("after")?,
        forced: value.get("forced").and_then(Value::as_bool) == Some(true),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    impl Headers for HashMap<&str, String> {
        fn get(&self, name: &str) -> Option<&str> {
            HashMap::get(self, name).map(String::as_str)
        }
    }

    fn signed(secret: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key");
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    #[test]
    fn each_provider_signature_is_checked_and_a_wrong_one_refused() {
        let body = br#"{"ref":"refs/heads/main"}"#;
        let good = signed("s3cret", body);
        let github = HashMap::from([("x-hub-signature-256", format!("sha256={good}"))]);
        assert!(verify(Provider::GitHub, &github, body, "s3cret"));
        assert!(!verify(Provider::GitHub, &github, body, "other"));
        assert!(!verify(Provider::GitHub, &github, b"{}", "s3cret"));
        let bare = HashMap::from([("x-hub-signature-256", good.clone())]);
        assert!(
            !verify(Provider::GitHub, &bare, body, "s3cret"),
            "needs sha256="
        );
        let gitea = HashMap::from([("x-gitea-signature", good)]);
        assert!(verify(Provider::Gitea, &gitea, body, "s3cret"));
        let gitlab = HashMap::from([("x-gitlab-token", "s3cret".to_owned())]);
        assert!(verify(Provider::GitLab, &gitlab, body, "s3cret"));
        assert!(!verify(Provider::GitLab, &gitlab, body, "s3cre"));
        assert!(!verify(Provider::GitLab, &HashMap::new(), body, "s3cret"));
        let short = HashMap::from([("x-gitea-signature", "abcd".to_owned())]);
        assert!(!verify(Provider::Gitea, &short, body, "s3cret"));
    }

    #[test]
    fn pushes_are_read_from_each_provider_and_other_events_are_named() {
        let github = br#"{"ref":"refs/heads/main","before":"a","after":"b","forced":true,
            "repository":{"full_name":"o/web"}}"#;
        let Ok(Delivery::Push(push)) = parse(Provider::GitHub, "push", github) else {
            panic!("a push")
        };
        assert_eq!(push.branch(), Some("main"));
        assert!(push.forced);
        let gitlab = br#"{"ref":"refs/heads/dev","before":"a","after":"0000",
            "project":{"path_with_namespace":"g/db"}}"#;
        let Ok(Delivery::Push(push)) = parse(Provider::GitLab, "Push Hook", gitlab) else {
            panic!("a push")
        };
        assert_eq!(push.repo, "g/db");
        assert!(push.deleted());
        assert_eq!(
            parse(Provider::GitHub, "issues", b"{}"),
            Ok(Delivery::Other("issues".into()))
        );
        assert!(parse(Provider::GitHub, "push", b"{not json").is_err());
    }
}
