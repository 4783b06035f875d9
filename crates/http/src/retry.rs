//! Vendor errors and how to wait before trying again: exponential backoff with full jitter from a
//! base (FR-ING-003: 3 retries from 1 s), and a server's `Retry-After` honoured over our own guess.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

/// Longest pause accepted from a `Retry-After` header; a longer ask ends the poll (retried next cycle).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// Ceiling of the computed backoff.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// A failed vendor call, classified by what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum VendorError {
    /// 401/403 or a token refusal: retrying cannot help; the credentials must be fixed.
    #[error("authentication failed ({status}): {detail}")]
    Auth { status: u16, detail: String },
    /// 429: the vendor asked us to slow down.
    #[error("throttled (429){}: {detail}", .retry_after.map(|d| format!(", retry after {}s", d.as_secs())).unwrap_or_default())]
    Throttled { retry_after: Option<Duration>, detail: String },
    /// 5xx: the vendor is unwell.
    #[error("server error ({status}): {detail}")]
    Server { status: u16, retry_after: Option<Duration>, detail: String },
    /// Other 4xx: our request is wrong (a bad query, a missing index); retrying sends the same thing.
    #[error("request rejected ({status}): {detail}")]
    Rejected { status: u16, detail: String },
    /// Connection refused/reset, timeout, truncated body.
    #[error("network error: {0}")]
    Network(String),
    /// The response was not the documented shape.
    #[error("unexpected response: {0}")]
    Malformed(String),
}

impl VendorError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, VendorError::Throttled { .. } | VendorError::Server { .. } | VendorError::Network(_) | VendorError::Malformed(_))
    }

    /// True for the classes a non-success HTTP status produces (their detail quotes the body).
    pub fn is_status(&self) -> bool {
        matches!(self, VendorError::Auth { .. } | VendorError::Throttled { .. } | VendorError::Server { .. } | VendorError::Rejected { .. })
    }

    /// The same error with its detail text rewritten (a vendor's message extracted, a key cut out).
    pub fn map_detail(self, rewrite: impl FnOnce(String) -> String) -> VendorError {
        match self {
            VendorError::Auth { status, detail } => VendorError::Auth { status, detail: rewrite(detail) },
            VendorError::Throttled { retry_after, detail } => VendorError::Throttled { retry_after, detail: rewrite(detail) },
            VendorError::Server { status, retry_after, detail } => VendorError::Server { status, retry_after, detail: rewrite(detail) },
            VendorError::Rejected { status, detail } => VendorError::Rejected { status, detail: rewrite(detail) },
            VendorError::Network(detail) => VendorError::Network(rewrite(detail)),
            VendorError::Malformed(detail) => VendorError::Malformed(rewrite(detail)),
        }
    }

    /// Label for the errors metric.
    pub fn kind(&self) -> &'static str {
        match self {
            VendorError::Auth { .. } => "auth",
            VendorError::Throttled { .. } => "throttled",
            VendorError::Server { .. } => "server",
            VendorError::Rejected { .. } => "rejected",
            VendorError::Network(_) => "network",
            VendorError::Malformed(_) => "malformed",
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            VendorError::Throttled { retry_after, .. } | VendorError::Server { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Classifies a non-success status; `body` is cut to keep logs readable (and never holds our secrets).
    pub fn from_status(status: StatusCode, headers: &HeaderMap, body: &str, now: DateTime<Utc>) -> VendorError {
        let detail: String = body.chars().take(300).collect();
        let retry_after = headers.get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(|v| parse_retry_after(v, now));
        match status.as_u16() {
            401 | 403 => VendorError::Auth { status: status.as_u16(), detail },
            429 => VendorError::Throttled { retry_after, detail },
            code @ 500..=599 => VendorError::Server { status: code, retry_after, detail },
            code => VendorError::Rejected { status: code, detail },
        }
    }
}

impl From<reqwest::Error> for VendorError {
    fn from(error: reqwest::Error) -> Self {
        // Without the URL: some endpoints carry their secret in it (webhook tokens, SAS signatures),
        // and this text reaches logs and audit records. The caller names the call instead.
        VendorError::Network(error.without_url().to_string())
    }
}

/// `Retry-After` is either delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = DateTime::parse_from_rfc2822(value).ok()?.with_timezone(&Utc);
    Some((date - now).to_std().unwrap_or(Duration::ZERO))
}

/// Retries and their pacing.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub base: Duration,
}

impl RetryPolicy {
    /// The pause before retry number `retry` (1-based) after `error`: the server's `Retry-After`
    /// when it gave one, else a uniformly random delay in `[0, base * 2^(retry-1)]` capped at
    /// [`MAX_BACKOFF`] ("full jitter": many connectors failing together do not retry in lockstep).
    /// `None` when the error is not retryable, retries are exhausted or the server asks for more
    /// than [`MAX_RETRY_AFTER`].
    pub fn delay(&self, retry: u32, error: &VendorError) -> Option<Duration> {
        if !error.is_retryable() || retry > self.max_retries {
            return None;
        }
        if let Some(after) = error.retry_after() {
            return (after <= MAX_RETRY_AFTER).then_some(after);
        }
        let ceiling = self.base.saturating_mul(1 << retry.saturating_sub(1).min(16)).min(MAX_BACKOFF);
        let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Some(Duration::from_millis(fastrand::u64(0..=millis)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z").expect("valid").with_timezone(&Utc);
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now), Some(Duration::ZERO), "a past date means now");
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn backoff_is_jittered_exponential_and_honours_retry_after() {
        let policy = RetryPolicy { max_retries: 3, base: Duration::from_secs(1) };
        let server = VendorError::Server { status: 503, retry_after: None, detail: String::new() };
        for retry in 1..=3 {
            let ceiling = Duration::from_secs(1 << (retry - 1));
            for _ in 0..50 {
                let delay = policy.delay(retry, &server).expect("retryable");
                assert!(delay <= ceiling, "retry {retry}: {delay:?} > {ceiling:?}");
            }
        }
        assert_eq!(policy.delay(4, &server), None, "3 retries, then give up (FR-ING-003)");
        let throttled = VendorError::Throttled { retry_after: Some(Duration::from_secs(7)), detail: String::new() };
        assert_eq!(policy.delay(1, &throttled), Some(Duration::from_secs(7)));
        let too_long = VendorError::Throttled { retry_after: Some(Duration::from_secs(3600)), detail: String::new() };
        assert_eq!(policy.delay(1, &too_long), None);
        assert_eq!(policy.delay(1, &VendorError::Auth { status: 401, detail: String::new() }), None, "auth failures are not retried");
        assert_eq!(policy.delay(1, &VendorError::Rejected { status: 400, detail: String::new() }), None);
    }

    #[test]
    fn statuses_are_classified() {
        let now = Utc::now();
        let mut headers = HeaderMap::new();
        headers.insert(reqwest::header::RETRY_AFTER, "2".parse().expect("header"));
        let throttled = VendorError::from_status(StatusCode::TOO_MANY_REQUESTS, &headers, "slow down", now);
        assert!(matches!(throttled, VendorError::Throttled { retry_after: Some(d), .. } if d == Duration::from_secs(2)));
        assert_eq!(VendorError::from_status(StatusCode::FORBIDDEN, &HeaderMap::new(), "", now).kind(), "auth");
        assert_eq!(VendorError::from_status(StatusCode::BAD_GATEWAY, &HeaderMap::new(), "", now).kind(), "server");
        assert_eq!(VendorError::from_status(StatusCode::BAD_REQUEST, &HeaderMap::new(), "", now).kind(), "rejected");
    }
}
