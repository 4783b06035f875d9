//! The polling loop every connector shares (FR-ING-003): load the checkpoint, fetch pages after
//! it, hand each record to the sink (durable before it counts), save the checkpoint after each
//! page, and on vendor trouble back off and try again next cycle: the stream never stops for one
//! bad record or one bad hour.
//!
//! Exactly-once publication rests on two things: the checkpoint (which records are behind us) and
//! the sink's idempotency on `(source, source alert id)`. A crash between publishing a record and
//! saving the checkpoint re-fetches that page on restart; the sink then reports the repeats as
//! duplicates and nothing is published twice.

use std::sync::Arc;
use std::time::Duration;

use aluskort_config::SourceConfig;
use aluskort_store::CaseStore;
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::checkpoint::Checkpoint;
use crate::retry::VendorError;
use crate::sink::{AlertSink, SinkOutcome};
use crate::source::{Fetched, Source, origin};

/// Counts of one poll.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollReport {
    pub pages: u32,
    pub fetched: u64,
    pub published: u64,
    pub duplicates: u64,
    pub dropped: u64,
    pub dead_lettered: u64,
    /// Position after the poll.
    pub checkpoint: Option<Checkpoint>,
}

#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error("{source_name}: {error}")]
    Vendor { source_name: String, error: VendorError },
    #[error("{source_name}: {error:#}")]
    Local { source_name: String, error: anyhow::Error },
}

pub struct Connector {
    config: SourceConfig,
    source: Box<dyn Source>,
    store: Arc<dyn CaseStore>,
    sink: Arc<dyn AlertSink>,
}

impl Connector {
    pub fn new(config: SourceConfig, source: Box<dyn Source>, store: Arc<dyn CaseStore>, sink: Arc<dyn AlertSink>) -> Self {
        Connector { config, source, store, sink }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The saved position, or the start of the initial look-back window.
    pub async fn checkpoint(&self, now: DateTime<Utc>) -> Result<Checkpoint, PollError> {
        let saved = self.store.load_checkpoint(&self.config.name).await.map_err(|error| self.local(error.into()))?;
        match saved {
            Some(value) => {
                serde_json::from_value(value).map_err(|error| self.local(anyhow::anyhow!("saved checkpoint is unreadable: {error}")))
            }
            None => Ok(Checkpoint::starting_at(now - self.config.initial_lookback)),
        }
    }

    /// The newest record time a poll may fetch: records younger than `settle` may still be indexing.
    pub fn horizon(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now - chrono::Duration::from_std(self.config.settle).unwrap_or_default()
    }

    /// One poll: every record from the checkpoint up to the horizon.
    pub async fn poll_once(&mut self) -> Result<PollReport, PollError> {
        let now = Utc::now();
        let mut position = self.checkpoint(now).await?;
        let until = self.horizon(now);
        let mut report = PollReport::default();
        if position.time >= until {
            report.checkpoint = Some(position);
            return Ok(report);
        }
        self.source.begin(&position, until).await.map_err(|error| self.vendor(error))?;
        let result = self.drain(&mut position, &mut report).await;
        self.source.end().await;
        result?;
        let lag = (Utc::now() - position.time).num_milliseconds().max(0) as f64 / 1000.0;
        metrics::gauge!("aluskort_source_lag_seconds", "source" => self.config.name.clone()).set(lag);
        metrics::gauge!("aluskort_source_last_success_timestamp_seconds", "source" => self.config.name.clone())
            .set(Utc::now().timestamp() as f64);
        report.checkpoint = Some(position);
        Ok(report)
    }

    async fn drain(&mut self, position: &mut Checkpoint, report: &mut PollReport) -> Result<(), PollError> {
        let name = self.config.name.clone();
        loop {
            let page = self.source.next_page(position, self.config.page_size).await.map_err(|error| self.vendor(error))?;
            report.pages += 1;
            let before = position.clone();
            let fetched = (page.records.len() + page.malformed.len()) as u64;
            report.fetched += fetched;
            metrics::counter!("aluskort_source_fetched_total", "source" => name.clone()).increment(fetched);
            for bad in page.malformed {
                let where_ = origin(&name, &bad.location);
                warn!(source = %name, location = %bad.location, reason = %bad.reason, "malformed record dead-lettered");
                self.sink.reject(&where_, &bad.reason, bad.original).await.map_err(|error| self.local(error))?;
                report.dead_lettered += 1;
                metrics::counter!("aluskort_source_dead_lettered_total", "source" => name.clone()).increment(1);
            }
            for Fetched { time, id, payload } in page.records {
                if position.covers(time, &id) {
                    report.duplicates += 1;
                    continue;
                }
                let outcome =
                    self.sink.accept(&origin(&name, &id), payload, self.config.tenant.clone()).await.map_err(|error| self.local(error))?;
                let (counter, reason) = match outcome {
                    SinkOutcome::Published => {
                        report.published += 1;
                        ("aluskort_source_published_total", None)
                    }
                    SinkOutcome::Duplicate => {
                        report.duplicates += 1;
                        ("aluskort_source_dropped_total", Some("duplicate"))
                    }
                    SinkOutcome::Dropped(reason) => {
                        report.dropped += 1;
                        ("aluskort_source_dropped_total", Some(reason))
                    }
                    SinkOutcome::DeadLettered => {
                        report.dead_lettered += 1;
                        ("aluskort_source_dead_lettered_total", None)
                    }
                };
                match reason {
                    Some(reason) => metrics::counter!(counter, "source" => name.clone(), "reason" => reason).increment(1),
                    None => metrics::counter!(counter, "source" => name.clone()).increment(1),
                }
                position.advance(time, &id);
            }
            let value = serde_json::to_value(&*position).map_err(|error| self.local(error.into()))?;
            self.store.save_checkpoint(&name, &value).await.map_err(|error| self.local(error.into()))?;
            if !page.more {
                return Ok(());
            }
            if *position == before {
                // A full page that moved nothing (only unreadable rows at one instant): asking
                // again would return the same page forever. The next poll tries again.
                warn!(source = %name, "a full page made no progress; ending this poll");
                return Ok(());
            }
        }
    }

    /// Polls every `poll_interval` until `shutdown`. A failed poll is logged and counted; the
    /// pause after consecutive failures doubles (with jitter) up to 10 minutes.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let name = self.config.name.clone();
        let mut failures: u32 = 0;
        info!(source = %name, kind = self.config.kind.as_str(), interval_s = self.config.poll_interval.as_secs(), "connector started");
        loop {
            let pause = match self.poll_once().await {
                Ok(report) => {
                    failures = 0;
                    if report.fetched > 0 {
                        info!(source = %name, fetched = report.fetched, published = report.published, duplicates = report.duplicates,
                              dropped = report.dropped, dead_lettered = report.dead_lettered, "poll done");
                    }
                    self.config.poll_interval
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    metrics::counter!("aluskort_source_poll_failures_total", "source" => name.clone()).increment(1);
                    let backoff = self.config.poll_interval.saturating_mul(1 << failures.min(6)).min(Duration::from_secs(600));
                    let pause = backoff / 2 + Duration::from_millis(fastrand::u64(0..=u64::try_from(backoff.as_millis() / 2).unwrap_or(0)));
                    warn!(%error, failures, pause_s = pause.as_secs(), "poll failed; will try again");
                    pause
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(pause) => {}
            }
        }
        info!(source = %name, "connector stopped");
    }

    /// `aluskort sources test`: checks credentials and connectivity, and returns the first
    /// records a poll would fetch, publishing nothing and saving nothing.
    pub async fn probe(&mut self, limit: u32) -> Result<(Checkpoint, DateTime<Utc>, Vec<Fetched>, bool), PollError> {
        let now = Utc::now();
        let position = self.checkpoint(now).await?;
        let until = self.horizon(now);
        self.source.begin(&position, until).await.map_err(|error| self.vendor(error))?;
        let page = self.source.next_page(&position, limit).await;
        self.source.end().await;
        let page = page.map_err(|error| self.vendor(error))?;
        Ok((position, until, page.records, page.more))
    }

    fn vendor(&self, error: VendorError) -> PollError {
        PollError::Vendor { source_name: self.config.name.clone(), error }
    }

    fn local(&self, error: anyhow::Error) -> PollError {
        PollError::Local { source_name: self.config.name.clone(), error }
    }
}
