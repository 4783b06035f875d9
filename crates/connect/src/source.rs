//! What each vendor adapter implements: fetch the records after a checkpoint, a page at a time,
//! in ascending time order.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::checkpoint::Checkpoint;
use crate::retry::VendorError;

/// One record as the vendor returned it, with the time and id it is checkpointed by.
#[derive(Debug, Clone, PartialEq)]
pub struct Fetched {
    pub time: DateTime<Utc>,
    pub id: String,
    pub payload: Value,
}

/// A page: records ready to publish, records that could not be read (dead-lettered with the
/// reason, never stopping the stream), and whether more may follow.
#[derive(Debug, Default)]
pub struct Page {
    pub records: Vec<Fetched>,
    pub malformed: Vec<Malformed>,
    pub more: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Malformed {
    pub location: String,
    pub reason: String,
    pub original: Value,
}

/// What `aluskort sources test` shows: the credentials worked, and what a poll would fetch.
#[derive(Debug, Clone)]
pub struct Probe {
    /// The endpoint and identity checked, one line each.
    pub checks: Vec<String>,
    /// The first records a poll from the checkpoint would fetch.
    pub sample: Vec<Fetched>,
    /// True when there are more than the sample.
    pub more: bool,
}

#[async_trait]
pub trait Source: Send + Sync {
    /// Starts a poll of records at or after `from` (minus `from.ids`) and before `until`.
    async fn begin(&mut self, from: &Checkpoint, until: DateTime<Utc>) -> Result<(), VendorError>;
    /// The next page; `position` is the checkpoint advanced past every record returned so far.
    async fn next_page(&mut self, position: &Checkpoint, limit: u32) -> Result<Page, VendorError>;
    /// Releases what `begin` opened (a point in time). Called on success and on failure.
    async fn end(&mut self);
}

/// `source:location` names for records of a page, for dead letters and logs.
pub fn origin(source_name: &str, location: &str) -> String {
    format!("{source_name}:{location}")
}
