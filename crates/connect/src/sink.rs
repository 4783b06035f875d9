//! Where connectors hand records: the pipeline's durable, de-duplicating entry point.

use aluskort_core::TenantId;
use aluskort_investigate::{Accepted, Pipeline};
use async_trait::async_trait;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkOutcome {
    Published,
    /// Seen before under the same `(source, source alert id)`.
    Duplicate,
    /// Heartbeat/test/health alert; the reason.
    Dropped(&'static str),
    /// Not an alert any mapping understands: on `alerts.raw.dlq` with the reason.
    DeadLettered,
}

#[async_trait]
pub trait AlertSink: Send + Sync {
    /// Makes the record durable (or recognises it as a repeat) before returning.
    async fn accept(&self, origin: &str, payload: Value, tenant: Option<TenantId>) -> anyhow::Result<SinkOutcome>;
    /// Dead-letters something that is not even a record, with the reason.
    async fn reject(&self, origin: &str, reason: &str, original: Value) -> anyhow::Result<()>;
}

#[async_trait]
impl AlertSink for Pipeline {
    async fn accept(&self, origin: &str, payload: Value, tenant: Option<TenantId>) -> anyhow::Result<SinkOutcome> {
        Ok(match Pipeline::accept(self, origin, payload, tenant).await? {
            Accepted::Queued { .. } => SinkOutcome::Published,
            Accepted::Duplicate { .. } => SinkOutcome::Duplicate,
            Accepted::Dropped { reason, .. } => SinkOutcome::Dropped(noise_label(&reason)),
            Accepted::Unidentified { .. } => SinkOutcome::DeadLettered,
        })
    }

    async fn reject(&self, origin: &str, reason: &str, original: Value) -> anyhow::Result<()> {
        self.reject_unreadable(origin, reason, original).await
    }
}

/// Metric labels are static: map the reason onto the fixed set.
fn noise_label(reason: &str) -> &'static str {
    match reason {
        "heartbeat" => "heartbeat",
        "health check" => "health_check",
        "sample alert" => "sample_alert",
        _ => "test_alert",
    }
}
