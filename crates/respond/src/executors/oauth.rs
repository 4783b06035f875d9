//! Calling an API with an Entra ID (Azure AD) OAuth 2.0 client-credentials token.
//!
//! Token: `POST {token_url}` form `grant_type=client_credentials&client_id&client_secret&scope`,
//! answer `{"token_type":"Bearer","expires_in":3599,"access_token":...}`
//! (<https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow>).
//! The token is cached until a minute before it expires and fetched again once when the API
//! answers `401` (revoked or expired early). Neither the secret nor the token is ever logged: they
//! travel only in the form body and the `Authorization` header.

use std::time::{Duration, Instant};

use aluskort_config::{OAuthApi, SecretString};
use aluskort_http::{Http, RetryPolicy, VendorError, json_body};
use reqwest::{RequestBuilder, Response};
use serde_json::Value;
use tokio::sync::Mutex;

/// How long before its `expires_in` a token is replaced.
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

struct CachedToken {
    token: String,
    refresh_at: Instant,
}

/// One API behind one app registration: its base URL, its token, and the retrying client.
pub struct OAuthClient {
    api_url: String,
    token_url: String,
    client_id: String,
    client_secret: SecretString,
    scope: String,
    http: Http,
    /// The same client making one attempt per call, for requests that must not be resent blindly.
    once: Http,
    /// A tokio mutex, held across the token request on purpose: concurrent executions needing a
    /// token wait for the one request in flight instead of each fetching their own.
    cached: Mutex<Option<CachedToken>>,
}

impl std::fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthClient").field("api_url", &self.api_url).field("token_url", &self.token_url).finish_non_exhaustive()
    }
}

impl OAuthClient {
    pub fn new(api: &OAuthApi, http: Http) -> Self {
        let once = Http { policy: RetryPolicy { max_retries: 0, ..http.policy }, ..http.clone() };
        OAuthClient {
            api_url: api.api_url.trim_end_matches('/').to_owned(),
            token_url: api.token_url.clone(),
            client_id: api.client_id.clone(),
            client_secret: api.client_secret.clone(),
            scope: api.scope.clone(),
            http,
            once,
            cached: Mutex::new(None),
        }
    }

    /// Base URL of the API, without a trailing `/`.
    pub fn api_url(&self) -> &str {
        &self.api_url
    }

    /// The retrying client (its policy and its shutdown-aware pause).
    pub fn http(&self) -> &Http {
        &self.http
    }

    /// A valid access token: the cached one, or a new one.
    pub async fn token(&self) -> Result<String, VendorError> {
        let mut cached = self.cached.lock().await;
        if let Some(token) = cached.as_ref().filter(|token| Instant::now() < token.refresh_at) {
            return Ok(token.token.clone());
        }
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose()),
            ("scope", self.scope.as_str()),
        ];
        let response = self.http.send("token", |client| client.post(&self.token_url).form(&form)).await.map_err(|error| match error {
            // Entra answers a bad secret with 400/401 `invalid_client`: an auth failure either way.
            VendorError::Rejected { status, detail } => VendorError::Auth { status, detail },
            other => other,
        })?;
        let body = json_body("token", response).await?;
        let token = body
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or_else(|| VendorError::Malformed("token response has no access_token".to_owned()))?
            .to_owned();
        let lifetime = body.get("expires_in").and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))).unwrap_or(300);
        let refresh_at = Instant::now() + Duration::from_secs(lifetime).saturating_sub(EXPIRY_MARGIN).max(Duration::from_secs(1));
        *cached = Some(CachedToken { token: token.clone(), refresh_at });
        Ok(token)
    }

    /// Drops the cached token if it is still `refused` (another call may have replaced it already).
    async fn forget(&self, refused: &str) {
        let mut cached = self.cached.lock().await;
        if cached.as_ref().is_some_and(|token| token.token == refused) {
            *cached = None;
        }
    }

    /// Sends the request `build` makes with a bearer token (rebuilt per attempt), retrying per the
    /// policy; a `401` fetches a new token and tries once more.
    pub async fn send(&self, what: &str, build: impl Fn(&reqwest::Client, &str) -> RequestBuilder) -> Result<Response, VendorError> {
        self.send_with(&self.http, what, build).await
    }

    /// As [`OAuthClient::send`] with one attempt (plus the one after a `401`, which the service
    /// refused before acting): for requests whose retry the caller decides.
    pub async fn send_once(&self, what: &str, build: impl Fn(&reqwest::Client, &str) -> RequestBuilder) -> Result<Response, VendorError> {
        self.send_with(&self.once, what, build).await
    }

    async fn send_with(
        &self,
        http: &Http,
        what: &str,
        build: impl Fn(&reqwest::Client, &str) -> RequestBuilder,
    ) -> Result<Response, VendorError> {
        for refreshed in [false, true] {
            let token = self.token().await?;
            match http.send(what, |client| build(client, &token)).await {
                Err(VendorError::Auth { status: 401, .. }) if !refreshed => self.forget(&token).await,
                result => return result,
            }
        }
        Err(VendorError::Auth { status: 401, detail: format!("{what}: refused with a fresh token") })
    }
}
