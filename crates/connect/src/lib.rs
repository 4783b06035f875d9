//! SIEM connectors (FR-ING-001/003): each polls a vendor API from a persisted checkpoint and hands
//! records to the pipeline's durable, de-duplicating entry point.
//!
//! # Layout
//! - [`source`]: the trait a vendor adapter implements (pages in ascending time order).
//! - [`connector`]: the shared loop: checkpoint, pages, sink, metrics, backoff between polls.
//! - [`checkpoint`]: `(time, ids at that time)`, so nothing is skipped or repeated.
//! - [`retry`], [`http`] (re-exported from `aluskort-http`): vendor error classes, exponential
//!   backoff with jitter, `Retry-After`, the retrying client.
//! - [`sentinel`], [`elastic`], [`splunk`]: the vendor adapters.
//! - [`sink`]: where records go ([`aluskort_investigate::Pipeline::accept`]).

pub mod checkpoint;
pub mod connector;
pub mod elastic;
pub mod sentinel;
pub mod sink;
pub mod source;
pub mod splunk;

use std::sync::Arc;

use aluskort_config::{SourceConfig, SourceKind};
use aluskort_store::CaseStore;
use tokio_util::sync::CancellationToken;

pub use aluskort_http::client as http;
pub use aluskort_http::retry;
pub use checkpoint::Checkpoint;
pub use connector::{Connector, PollError, PollReport};
pub use retry::{RetryPolicy, VendorError};
pub use sink::{AlertSink, SinkOutcome};
pub use source::{Fetched, Page, Source};

/// Builds the connector `config` describes.
pub fn connector_for(
    config: &SourceConfig,
    store: Arc<dyn CaseStore>,
    sink: Arc<dyn AlertSink>,
    cancel: CancellationToken,
) -> Result<Connector, VendorError> {
    let policy = RetryPolicy { max_retries: config.max_retries, base: config.retry_base };
    let http = http::Http::new(&config.name, policy, config.request_timeout, cancel)?;
    let source: Box<dyn Source> = match &config.kind {
        SourceKind::Sentinel(sentinel) => Box::new(sentinel::SentinelConnector::new(sentinel.clone(), http)),
        SourceKind::Elastic(elastic) => Box::new(elastic::ElasticConnector::new(elastic.clone(), http)),
        SourceKind::Splunk(splunk) => Box::new(splunk::SplunkConnector::new(splunk.clone(), http)),
    };
    Ok(Connector::new(config.clone(), source, store, sink))
}
