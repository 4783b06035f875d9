//! One HTTP client per connector or model provider: timeouts, TLS verification always on, and every
//! request retried per [`RetryPolicy`]; a pause can be cut short by shutdown.

use std::time::Duration;

use chrono::Utc;
use reqwest::{RequestBuilder, Response};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::retry::{RetryPolicy, VendorError};

#[derive(Debug, Clone)]
pub struct Http {
    pub client: reqwest::Client,
    pub policy: RetryPolicy,
    /// Connector or provider name, for logs and metrics.
    pub source: String,
    /// Counter incremented (labels `source`, `kind`) on every failed attempt.
    pub errors_metric: &'static str,
    pub cancel: CancellationToken,
}

impl Http {
    pub fn new(source: &str, policy: RetryPolicy, timeout: Duration, cancel: CancellationToken) -> Result<Self, VendorError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("aluskort/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| VendorError::Network(format!("HTTP client: {error}")))?;
        Ok(Http { client, policy, source: source.to_owned(), errors_metric: "aluskort_source_errors_total", cancel })
    }

    /// Sends the request `build` makes (rebuilt per attempt), retrying what is retryable.
    /// `what` names the call in logs ("query", "open point in time").
    pub async fn send(&self, what: &str, build: impl Fn(&reqwest::Client) -> RequestBuilder) -> Result<Response, VendorError> {
        let mut retries = 0;
        self.send_counting(what, &mut retries, build).await
    }

    /// As [`Http::send`], counting retries in `retries`, which the caller carries across its own
    /// re-calls (a body that broke off after the status line), so one logical call never makes
    /// more than `policy.max_retries + 1` attempts in all.
    pub async fn send_counting(
        &self,
        what: &str,
        retries: &mut u32,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response, VendorError> {
        loop {
            let error = match build(&self.client).send().await {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    let body = response.text().await.unwrap_or_default();
                    VendorError::from_status(status, &headers, &body, Utc::now())
                }
                Err(error) => VendorError::from(error),
            };
            *retries += 1;
            let retry = *retries;
            metrics::counter!(self.errors_metric, "source" => self.source.clone(), "kind" => error.kind()).increment(1);
            let Some(delay) = self.policy.delay(retry, &error) else { return Err(error) };
            warn!(source = %self.source, call = what, %error, retry, delay_ms = delay.as_millis(), "vendor call failed; retrying");
            self.pause(delay).await?;
        }
    }

    /// Sleeps unless shutdown comes first.
    pub async fn pause(&self, delay: Duration) -> Result<(), VendorError> {
        tokio::select! {
            () = self.cancel.cancelled() => Err(VendorError::Network("shutting down".to_owned())),
            () = tokio::time::sleep(delay) => Ok(()),
        }
    }
}

/// Reads a success body as JSON, naming the call when it is not.
pub async fn json_body(what: &str, response: Response) -> Result<serde_json::Value, VendorError> {
    let bytes = response.bytes().await?;
    serde_json::from_slice(&bytes).map_err(|error| VendorError::Malformed(format!("{what}: body is not JSON: {error}")))
}
