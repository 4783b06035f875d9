//! Generic HTTP actions (`webhook.<name>`): SOAR playbooks, EDR or firewall APIs (a firewall
//! block is `webhook.firewall`).
//!
//! The request is the configured method and URL with the configured headers. Its JSON body is the
//! step's rendered parameters plus `execution_key`, `investigation_id`, `step_key`, `action`,
//! `target` and `tenant_id` (these win over parameters of the same name). It carries
//! `Idempotency-Key: <execution key>` and, when the webhook has a `secret`,
//! `X-Aluskort-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes>`.
//!
//! The receiver must deduplicate on `Idempotency-Key`: a retry after a lost answer, or a
//! redelivered execution, sends the same key and body again, and [`Executor::already_applied`]
//! answers `false` (ALUSKORT cannot ask an arbitrary endpoint what it did).

use aluskort_config::WebhookTarget;
use aluskort_http::Http;
use async_trait::async_trait;
use hmac::{Hmac, Mac};
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Method, Url};
use serde_json::{Value, json};
use sha2::Sha256;
use tracing::info;

use super::{action_error, answer_of};
use crate::action::{ActionError, ActionOutcome, ActionRequest, Executor};

pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
pub const SIGNATURE_HEADER: &str = "x-aluskort-signature";

/// `sha256=<hex HMAC-SHA256 of body under secret>`. (HMAC takes a key of any length; the error is
/// the `KeyInit` signature's, never produced.)
pub fn signature(secret: &[u8], body: &[u8]) -> Result<String, hmac::digest::InvalidLength> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret)?;
    mac.update(body);
    Ok(format!("sha256={}", hex::encode(mac.finalize().into_bytes())))
}

/// One configured webhook.
pub struct WebhookExecutor {
    name: String,
    url: Url,
    method: Method,
    /// Configured headers, values marked sensitive (they may hold credentials).
    headers: Vec<(HeaderName, HeaderValue)>,
    secret: Option<aluskort_config::SecretString>,
    http: Http,
}

impl std::fmt::Debug for WebhookExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookExecutor")
            .field("name", &self.name)
            .field("method", &self.method)
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

impl WebhookExecutor {
    /// Checks the method, URL and headers once, here, so a bad one fails at startup rather than
    /// as a retried network error on every execution.
    pub fn new(target: &WebhookTarget, http: Http) -> Result<Self, String> {
        let field = format!("respond.webhooks.{}", target.name);
        let url = Url::parse(&target.url).map_err(|error| format!("`{field}.url`: {error}"))?;
        let method = Method::from_bytes(target.method.as_bytes()).map_err(|error| format!("`{field}.method`: {error}"))?;
        let mut headers = Vec::new();
        for (name, value) in &target.headers {
            let header = HeaderName::from_bytes(name.as_bytes()).map_err(|error| format!("`{field}.headers`: {name:?}: {error}"))?;
            if [IDEMPOTENCY_KEY_HEADER, SIGNATURE_HEADER, "content-type"].contains(&header.as_str()) {
                return Err(format!("`{field}.headers`: {name:?} is set by ALUSKORT"));
            }
            // The value is never quoted: it may be a credential.
            let mut value =
                HeaderValue::from_str(value.expose()).map_err(|_| format!("`{field}.headers.{name}`: not a valid header value"))?;
            value.set_sensitive(true);
            headers.push((header, value));
        }
        Ok(WebhookExecutor { name: format!("webhook.{}", target.name), url, method, headers, secret: target.secret.clone(), http })
    }

    /// The body: parameters plus the execution's identity.
    fn body(&self, request: &ActionRequest) -> Value {
        let mut body = request.params.clone();
        for (key, value) in [
            ("execution_key", &request.execution_key),
            ("investigation_id", &request.investigation_id),
            ("step_key", &request.step_key),
            ("action", &request.action),
            ("target", &request.target),
            ("tenant_id", &request.tenant_id),
        ] {
            body.insert(key.to_owned(), json!(value));
        }
        Value::Object(body)
    }
}

#[async_trait]
impl Executor for WebhookExecutor {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self, request: &ActionRequest) -> Result<Value, ActionError> {
        let mut header_names: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        header_names.extend(["content-type", IDEMPOTENCY_KEY_HEADER]);
        if self.secret.is_some() {
            header_names.push(SIGNATURE_HEADER);
        }
        Ok(json!({"method": self.method.as_str(), "url": redacted(&self.url), "headers": header_names, "body": self.body(request)}))
    }

    async fn already_applied(&self, _request: &ActionRequest) -> Result<bool, ActionError> {
        Ok(false)
    }

    async fn execute(&self, request: &ActionRequest) -> Result<ActionOutcome, ActionError> {
        let bytes =
            serde_json::to_vec(&self.body(request)).map_err(|error| ActionError::Permanent(format!("{}: body: {error}", self.name)))?;
        let signature = match &self.secret {
            Some(secret) => Some(
                signature(secret.expose().as_bytes(), &bytes)
                    .map_err(|error| ActionError::Permanent(format!("{}: signing key: {error}", self.name)))?,
            ),
            None => None,
        };
        let key = request.execution_key.as_str();
        // The receiver dedupes on the key, so the client's own retries are safe.
        let response = self
            .http
            .send("webhook", |client| {
                let mut builder = client.request(self.method.clone(), self.url.clone());
                for (name, value) in &self.headers {
                    builder = builder.header(name, value);
                }
                builder = builder.header(reqwest::header::CONTENT_TYPE, "application/json").header(IDEMPOTENCY_KEY_HEADER, key);
                if let Some(signature) = &signature {
                    builder = builder.header(SIGNATURE_HEADER, signature);
                }
                builder.body(bytes.clone())
            })
            .await
            .map_err(|error| action_error(&self.name, "webhook", error))?;
        let status = response.status().as_u16();
        let answer = answer_of(response).await;
        info!(action = %self.name, execution_key = %request.execution_key, status, "webhook action delivered");
        Ok(ActionOutcome::Applied { detail: json!({"status": status, "answer": answer}) })
    }
}

/// The URL as records show it: scheme, host, port and path; no credentials or query, where
/// webhook endpoints often carry their secret (`?code=`, `?sig=`).
fn redacted(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_fragment(None);
    if shown.query().is_some() {
        shown.set_query(Some("redacted"));
    }
    shown.to_string()
}

#[cfg(test)]
mod redaction_tests {
    use super::*;

    #[test]
    fn records_never_show_url_credentials_or_query_secrets() {
        let url = Url::parse("https://user:pw@hooks.example.com/api/block?code=s3cr3t&sig=abc#x").expect("url");
        let shown = redacted(&url);
        assert_eq!(shown, "https://hooks.example.com/api/block?redacted");
        let plain = Url::parse("https://soar.internal/hooks/block").expect("url");
        assert_eq!(redacted(&plain), "https://soar.internal/hooks/block");
    }
}
