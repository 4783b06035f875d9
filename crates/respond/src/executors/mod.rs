//! Executors built from `[respond]` config, by action name.
//!
//! - [`defender`]: Microsoft Defender for Endpoint machine actions (`defender.*`).
//! - [`entra`]: Entra ID user actions through Microsoft Graph (`entra.*`).
//! - [`webhook`]: generic HTTP actions (`webhook.<name>`), e.g. a firewall block.
//! - [`oauth`]: the client-credentials token the Microsoft APIs share.
//!
//! Every execution carries its execution key (investigation, step, approval) to the remote side:
//! embedded in the Defender action's comment, where [`Executor::already_applied`] finds it again;
//! as the `Idempotency-Key` header of a webhook. Entra's actions are idempotent in effect.
//! Failures map to [`ActionError::Retryable`] (network, 429, 5xx) or [`ActionError::Permanent`]
//! (other 4xx, with the status and a short excerpt of the answer).

pub mod defender;
pub mod entra;
pub mod oauth;
pub mod webhook;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aluskort_config::{OAuthApi, RespondConfig};
use aluskort_http::{Http, RetryPolicy, VendorError};
use reqwest::{Response, Url};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::action::{ActionError, ActionRequest, CATALOGUE, Executor};

use self::defender::{DefenderExecutor, MachineActionKind};
use self::entra::{EntraAction, EntraExecutor};
use self::oauth::OAuthClient;
use self::webhook::WebhookExecutor;

/// Counter (labels `source` = executor API, `kind` = error class) of failed action HTTP attempts.
pub const ERRORS_METRIC: &str = "aluskort_action_http_errors_total";

/// Retries within one execution: few and short, since the execution itself is retried later (after
/// an [`Executor::already_applied`] check) when these run out.
pub const RETRY_POLICY: RetryPolicy = RetryPolicy { max_retries: 2, base: Duration::from_millis(500) };

/// The executors available, by action name.
#[derive(Clone, Default)]
pub struct Executors {
    by_name: BTreeMap<String, Arc<dyn Executor>>,
}

impl std::fmt::Debug for Executors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executors").field("names", &self.names()).finish()
    }
}

impl Executors {
    /// No executors (every action is unknown).
    pub fn empty() -> Self {
        Executors::default()
    }

    /// One executor per `defender.*` catalogue action when `[respond.defender]` is set, per
    /// `entra.*` action when `[respond.entra]` is set, and `webhook.<name>` per configured webhook.
    /// Connects to nothing: tokens are fetched on first use.
    pub fn from_config(config: &RespondConfig, cancel: CancellationToken) -> Result<Executors, String> {
        let mut executors = Executors::empty();
        if let Some(api) = &config.defender {
            let client = Arc::new(oauth_client("defender", api, &cancel)?);
            for kind in MachineActionKind::ALL {
                executors.insert(Arc::new(DefenderExecutor::new(kind, client.clone())));
            }
        }
        if let Some(api) = &config.entra {
            let client = Arc::new(oauth_client("entra", api, &cancel)?);
            for action in EntraAction::ALL {
                executors.insert(Arc::new(EntraExecutor::new(action, client.clone())));
            }
        }
        for target in config.webhooks.values() {
            let http = http_client(&format!("webhook.{}", target.name), target.timeout, &cancel)?;
            executors.insert(Arc::new(WebhookExecutor::new(target, http)?));
        }
        debug_assert!(
            executors.names().iter().all(|name| name.starts_with("webhook.") || CATALOGUE.iter().any(|spec| spec.name == name)),
            "every built-in executor is in the catalogue"
        );
        Ok(executors)
    }

    /// Adds `executor` under its name, replacing any executor of that name.
    pub fn insert(&mut self, executor: Arc<dyn Executor>) {
        self.by_name.insert(executor.name().to_owned(), executor);
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn Executor>> {
        self.by_name.get(name).cloned()
    }

    /// Action names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.by_name.keys().cloned().collect()
    }
}

fn http_client(source: &str, timeout: Duration, cancel: &CancellationToken) -> Result<Http, String> {
    let mut http = Http::new(source, RETRY_POLICY, timeout, cancel.clone()).map_err(|error| format!("{source}: {error}"))?;
    http.errors_metric = ERRORS_METRIC;
    Ok(http)
}

fn oauth_client(source: &str, api: &OAuthApi, cancel: &CancellationToken) -> Result<OAuthClient, String> {
    for (field, url) in [("api_url", &api.api_url), ("token_url", &api.token_url)] {
        Url::parse(url).map_err(|error| format!("respond.{source}.{field}: {error}"))?;
    }
    Ok(OAuthClient::new(api, http_client(source, api.timeout, cancel)?))
}

/// Classifies a failed call of `action`: what a retry might fix is [`ActionError::Retryable`].
/// The detail names the call and quotes the status and the start of the answer (never a secret:
/// those travel in headers and form bodies the error does not include).
pub(crate) fn action_error(action: &str, call: &str, error: VendorError) -> ActionError {
    let detail = format!("{action}: {call}: {error}");
    if error.is_retryable() { ActionError::Retryable(detail) } else { ActionError::Permanent(detail) }
}

/// A success body as JSON; an empty or non-JSON body as `null` or a short text excerpt (the call
/// already succeeded: its answer is only reported).
pub(crate) async fn answer_of(response: Response) -> Value {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    match serde_json::from_str::<Value>(&text) {
        Ok(body) => body,
        Err(_) if text.trim().is_empty() => Value::Null,
        Err(_) => serde_json::json!({"status": status, "text": text.chars().take(300).collect::<String>()}),
    }
}

/// `base` with `segments` appended as path segments, each percent-encoded (a `/`, `?` or `#` in
/// one stays inside it), and an optional `$filter`-style query.
pub(crate) fn api_url(base: &str, segments: &[&str], query: &[(&str, &str)]) -> Result<Url, ActionError> {
    let mut url = Url::parse(base).map_err(|error| ActionError::Permanent(format!("bad API URL {base:?}: {error}")))?;
    url.path_segments_mut()
        .map_err(|()| ActionError::Permanent(format!("API URL {base:?} cannot take a path")))?
        .pop_if_empty()
        .extend(segments);
    if !query.is_empty() {
        let pairs: Vec<String> = query.iter().map(|(key, value)| format!("{key}={}", percent_encode(value))).collect();
        url.set_query(Some(&pairs.join("&")));
    }
    Ok(url)
}

/// RFC 3986 percent-encoding of everything but unreserved characters (a space becomes `%20`, not
/// `+`, which OData services read either way).
pub(crate) fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A string parameter of the request, if present; a non-string value is a permanent error.
pub(crate) fn text_param<'a>(request: &'a ActionRequest, name: &str) -> Result<Option<&'a str>, ActionError> {
    match request.params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.as_str()).filter(|text| !text.trim().is_empty())),
        Some(other) => Err(ActionError::Permanent(format!("{}: parameter `{name}` must be a string, not {other}", request.action))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_and_queries_are_percent_encoded() {
        let url = api_url("https://graph.microsoft.com/", &["v1.0", "users", "a/b?c#EXT#@x.com"], &[]).expect("valid");
        assert_eq!(url.as_str(), "https://graph.microsoft.com/v1.0/users/a%2Fb%3Fc%23EXT%23@x.com");
        let url = api_url("https://api.example/base", &["api", "machines"], &[("$filter", "computerDnsName eq 'o''b'")]).expect("valid");
        assert_eq!(url.as_str(), "https://api.example/base/api/machines?$filter=computerDnsName%20eq%20%27o%27%27b%27");
    }

    #[test]
    fn throttling_and_server_errors_are_retryable_and_rejections_permanent() {
        let retryable = action_error("a", "call", VendorError::Throttled { retry_after: None, detail: String::new() });
        assert!(matches!(retryable, ActionError::Retryable(_)));
        let retryable = action_error("a", "call", VendorError::Server { status: 502, retry_after: None, detail: String::new() });
        assert!(matches!(retryable, ActionError::Retryable(_)));
        let permanent = action_error("a", "call", VendorError::Rejected { status: 404, detail: "no such user".to_owned() });
        assert_eq!(permanent, ActionError::Permanent("a: call: request rejected (404): no such user".to_owned()));
        assert!(matches!(action_error("a", "call", VendorError::Auth { status: 403, detail: String::new() }), ActionError::Permanent(_)));
    }
}
