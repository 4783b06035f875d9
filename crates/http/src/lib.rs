//! Calling vendor HTTP APIs (SIEMs, model providers): error classes that say whether a retry can
//! help, exponential backoff with full jitter, `Retry-After` honoured, and a client that retries
//! per that policy and stops waiting on shutdown. Shared by the connectors and the LLM providers.
//!
//! # Layout
//! - [`retry`]: [`VendorError`] and [`RetryPolicy`].
//! - [`client`]: [`Http`], the retrying client, and [`json_body`].

pub mod client;
pub mod retry;

pub use client::{Http, json_body};
pub use retry::{RetryPolicy, VendorError, parse_retry_after};
