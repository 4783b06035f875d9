//! One task per target: takes notifications off its queue in order and sends each, retrying
//! what is retryable ([`RetryPolicy`]: 429 after its `Retry-After`, 5xx and network failures with
//! jittered exponential backoff) up to the target's `max_retries`, each attempt under its timeout.
//!
//! The retry loop is ours rather than [`aluskort_http::Http::send`]'s because that one logs
//! reqwest's errors as they are, and they name the URL, which for Slack, Teams and generic
//! webhooks is the credential.

use std::sync::Arc;
use std::time::Duration;

use aluskort_config::{NotifyKind, NotifyTarget};
use aluskort_http::{RetryPolicy, VendorError};
use chrono::Utc;
use reqwest::header::CONTENT_TYPE;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::payload::{self, Request};
use super::{Counts, Notification, Outcome};

/// The client every target shares: no redirects (a redirect could carry the body, and the
/// signature, to another host), a bounded connect time; each request sets the target's timeout.
pub(crate) fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("aluskort/", env!("CARGO_PKG_VERSION")))
        .build()
}

pub(crate) struct Worker {
    target: NotifyTarget,
    kind: &'static str,
    client: reqwest::Client,
    policy: RetryPolicy,
    counts: Arc<Counts>,
    /// Shutdown of the whole process: give up now.
    cancel: CancellationToken,
    /// [`super::Notifier::shutdown`]: the queue has drained, exit.
    stop: CancellationToken,
}

impl Worker {
    pub(crate) fn new(
        target: NotifyTarget,
        client: reqwest::Client,
        backoff_base: Duration,
        counts: Arc<Counts>,
        cancel: CancellationToken,
        stop: CancellationToken,
    ) -> Worker {
        let policy = RetryPolicy { max_retries: target.max_retries, base: backoff_base };
        Worker { kind: target.kind.as_str(), target, client, policy, counts, cancel, stop }
    }

    pub(crate) async fn run(self, mut queue: mpsc::Receiver<Arc<Notification>>) {
        loop {
            let next = tokio::select! {
                biased;
                () = self.cancel.cancelled() => None,
                () = self.stop.cancelled() => None,
                next = queue.recv() => next,
            };
            let Some(notification) = next else { break };
            match self.deliver(&notification).await {
                Ok(()) => self.counts.settle(self.kind, Outcome::Sent),
                Err(error) => {
                    self.counts.settle(self.kind, Outcome::Failed);
                    warn!(
                        kind = self.kind,
                        event = %notification.event_type,
                        investigation_id = %notification.investigation_id,
                        %error,
                        "notification not delivered"
                    );
                }
            }
        }
        // Whatever is still queued will not be sent: count it, so `flush` returns and the loss shows.
        queue.close();
        let mut left = 0_usize;
        while queue.try_recv().is_ok() {
            self.counts.settle(self.kind, Outcome::Dropped);
            left += 1;
        }
        if left > 0 {
            warn!(kind = self.kind, left, "notifier stopped with notifications queued; they are dropped");
        }
    }

    async fn deliver(&self, notification: &Notification) -> Result<(), VendorError> {
        let request = payload::request(&self.target.kind, notification).map_err(VendorError::Malformed)?;
        let mut retry = 0;
        loop {
            let attempt = tokio::select! {
                () = self.cancel.cancelled() => Err(VendorError::Network("shutting down".to_owned())),
                attempt = self.attempt(&request) => attempt,
            };
            let error = match attempt {
                Ok(()) => return Ok(()),
                Err(error) => error,
            };
            retry += 1;
            let Some(delay) = self.policy.delay(retry, &error) else { return Err(error) };
            debug!(kind = self.kind, %error, retry, delay_ms = delay.as_millis(), "notification attempt failed; retrying");
            tokio::select! {
                () = self.cancel.cancelled() => return Err(error),
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    async fn attempt(&self, request: &Request) -> Result<(), VendorError> {
        let url = match &self.target.kind {
            NotifyKind::Slack { url } | NotifyKind::Teams { url } | NotifyKind::Webhook { url, .. } => url.expose(),
            NotifyKind::PagerDuty { url, .. } => url.as_str(),
        };
        let mut builder =
            self.client.post(url).timeout(self.target.timeout).header(CONTENT_TYPE, "application/json").body(request.body.clone());
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        let response = builder.send().await.map_err(network)?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.text().await.map_err(network)?;
        if !status.is_success() {
            return Err(VendorError::from_status(status, &headers, &body, Utc::now()));
        }
        // The older Teams connectors answer throttling with 200 and the error in the body
        // (https://learn.microsoft.com/en-us/microsoftteams/platform/webhooks-and-connectors/how-to/connectors-using#rate-limiting-for-connectors).
        if matches!(self.target.kind, NotifyKind::Teams { .. }) && body.contains("HTTP error 429") {
            return Err(VendorError::Throttled { retry_after: None, detail: body.chars().take(300).collect() });
        }
        Ok(())
    }
}

/// A transport failure, described without the URL (and with its causes, which never hold it).
fn network(error: reqwest::Error) -> VendorError {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    VendorError::Network(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn transport_errors_never_name_the_url() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let addr = listener.local_addr().expect("bound address");
        drop(listener);
        let url = format!("http://{addr}/services/T1/B1/the-webhook-secret");

        let error = client().expect("client").post(&url).send().await.expect_err("nothing listens there");
        assert!(error.to_string().contains("the-webhook-secret"), "reqwest names the URL: {error}");

        let described = network(error).to_string();
        assert!(!described.contains("the-webhook-secret"), "{described}");
        assert!(described.starts_with("network error: "), "{described}");
    }
}
