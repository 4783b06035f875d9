//! The pipeline stages as bus consumers, and the entry point that accepts raw records.
//!
//! ```text
//! submit ─▶ raw inbox (store) ─▶ alerts.raw ─▶ parse stage ─▶ alerts.normalized ─▶ investigate stage ─▶ incidents.enriched
//!                                                  └▶ alerts.raw.dlq (+ dead_letters table, audit alert.dead_lettered)
//! ```
//!
//! Every delivery is acknowledged only after its effects are durable; a transient failure nacks it
//! (redelivered, up to `max_attempts`), a permanent one dead-letters the record or fails the
//! investigation, visibly.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use aluskort_audit::{AuditEvent, AuditLog};
use aluskort_bus::topic::group;
use aluskort_bus::{Bus, Delivery, Topic};
use aluskort_core::{AlertId, DegradationLevel, GraphState, InvestigationState, TenantId};
use aluskort_ingest::{NormalizedAlert, RawAlert, normalize};
use aluskort_store::{CaseStore, DeadLetter, InsertOutcome, RawRecord, RawStatus};
use bytes::Bytes;
use chrono::{Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::machine::StepError;
use crate::work::{Overlay, Work};

/// Tunables of the pipeline.
#[derive(Clone)]
pub struct PipelineSettings {
    /// Suggests ATT&CK techniques for alerts that carry none (FR-RSN-004); present when an ATT&CK
    /// bundle has been imported into the data directory.
    pub technique_suggester: Option<Arc<aluskort_knowledge::suggest::Corpus>>,
    /// Similar closed incidents for enrichment; closed investigations are remembered.
    pub incident_memory: Option<Arc<aluskort_knowledge::memory::IncidentMemory>>,
    /// Imported threat-intel reports: exact IOC matches enrich the alert (FR-ENR-007).
    pub report_index: Option<Arc<aluskort_knowledge::reports::ReportIndex>>,
    pub degradation: DegradationLevel,
    /// Threat-intelligence indicators for exact-match enrichment (FR-ENR-004).
    pub threat_intel: Option<Arc<dyn aluskort_store::ThreatIntelStore>>,
    /// FP patterns, UEBA user risk and CTEM exposures (FR-RSN-006, FR-ENR-005, FR-ENR-006).
    pub context: Option<Arc<dyn aluskort_store::ContextStore>>,
    /// Longest wait for each enricher before the investigation goes on without it.
    pub enricher_timeout: StdDuration,
    /// Asset zones and their consequence (`[[pipeline.zones]]`; first match wins).
    pub zones: Vec<aluskort_config::AssetZone>,
    /// The asset/zone graph (`[graph]`), asked before the zone table; `None` uses the table only.
    pub asset_graph: Option<Arc<dyn aluskort_knowledge::assets::AssetGraph>>,
    /// The model gateway for the reasoning agent; `None` reasons deterministically.
    pub gateway: Option<Arc<aluskort_gateway::Gateway>>,
    /// Scopes where nothing is closed automatically.
    pub kill_switches: aluskort_config::SharedKillSwitches,
    /// Incident grouping window (default 24 h).
    pub grouping_window: Duration,
    /// Deliveries of one message before it is dead-lettered / its investigation failed.
    pub max_attempts: u32,
    /// Response playbooks (FR-RSP-005); `None` plans no actions.
    pub playbooks: Option<Arc<aluskort_respond::playbook::PlaybookSet>>,
    /// Approval deadlines and four-eyes tier for the approvals investigations open.
    pub respond: aluskort_config::RespondConfig,
    /// With `respond.mode = "dry_run"`, records the automatic steps an investigation plans as dry
    /// runs in its own commit; `None` queues them for the response service in every mode.
    pub dry_run: Option<aluskort_respond::service::DryRunner>,
    /// Pause before a nacked message is retried.
    pub retry_backoff: StdDuration,
}

impl std::fmt::Debug for PipelineSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineSettings")
            .field("technique_suggester", &self.technique_suggester.as_ref().map(|c| c.techniques().len()))
            .field("incident_memory", &self.incident_memory.is_some())
            .field("report_index", &self.report_index.as_ref().map(|r| r.reports().count()))
            .field("degradation", &self.degradation)
            .field("gateway", &self.gateway.is_some())
            .field("threat_intel", &self.threat_intel.is_some())
            .field("context", &self.context.is_some())
            .field("enricher_timeout", &self.enricher_timeout)
            .field("zones", &self.zones.len())
            .field("asset_graph", &self.asset_graph.is_some())
            .field("kill_switches", &self.kill_switches)
            .field("grouping_window", &self.grouping_window)
            .field("max_attempts", &self.max_attempts)
            .field("retry_backoff", &self.retry_backoff)
            .field("playbooks", &self.playbooks.is_some())
            .field("respond_mode", &self.respond.mode)
            .field("dry_run", &self.dry_run.is_some())
            .finish()
    }
}

impl Default for PipelineSettings {
    fn default() -> Self {
        PipelineSettings {
            technique_suggester: None,
            incident_memory: None,
            report_index: None,
            degradation: DegradationLevel::Deterministic,
            gateway: None,
            threat_intel: None,
            context: None,
            enricher_timeout: DEFAULT_ENRICHER_TIMEOUT,
            zones: Vec::new(),
            asset_graph: None,
            kill_switches: aluskort_config::SharedKillSwitches::default(),
            grouping_window: crate::grouping::DEFAULT_WINDOW,
            max_attempts: 5,
            playbooks: None,
            respond: aluskort_config::RespondConfig::default(),
            dry_run: None,
            retry_backoff: StdDuration::from_millis(200),
        }
    }
}

/// What happened to one submitted record; published on `incidents.enriched` (investigated) or
/// `alerts.raw.dlq` (rejected).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageOutcome {
    pub ingest_id: String,
    pub origin: String,
    pub tenant_id: Option<String>,
    pub alert_id: Option<String>,
    pub investigation_id: Option<String>,
    /// The alert had been investigated before (a redelivery or a repeated input).
    pub duplicate: bool,
    pub warnings: Vec<String>,
    /// Set when the record was dead-lettered.
    pub error: Option<String>,
    /// The original record, for dead letters.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub original: Value,
}

/// What [`Pipeline::accept`] did with one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Accepted {
    /// Durable in the raw inbox and published on `alerts.raw`.
    Queued { ingest_id: String, source: String, alert_id: String },
    /// Received before (same source and source alert id): not queued again.
    Duplicate { ingest_id: String, source: String, alert_id: String },
    /// A heartbeat, test or health-check alert: counted, not investigated.
    Dropped { source: String, alert_id: String, reason: String },
    /// Not mappable to an alert: queued anyway so the parse stage dead-letters it with `error`.
    Unidentified { ingest_id: String, error: String },
}

pub struct Pipeline {
    pub(crate) bus: Arc<dyn Bus>,
    pub(crate) store: Arc<dyn CaseStore>,
    pub(crate) audit: Arc<AuditLog>,
    pub(crate) settings: PipelineSettings,
    pub(crate) grouping_lock: Arc<Mutex<()>>,
}

impl Pipeline {
    pub fn new(bus: Arc<dyn Bus>, store: Arc<dyn CaseStore>, audit: Arc<AuditLog>, settings: PipelineSettings) -> Arc<Self> {
        Arc::new(Pipeline { bus, store, audit, settings, grouping_lock: Arc::new(Mutex::new(())) })
    }

    pub fn settings(&self) -> &PipelineSettings {
        &self.settings
    }

    /// Accepts one record: durable in the raw inbox first, then on `alerts.raw`. Returns its ingest id.
    pub async fn submit(&self, origin: &str, payload: Value) -> anyhow::Result<String> {
        self.submit_as(uuid::Uuid::now_v7().to_string(), origin, payload).await
    }

    /// As [`Pipeline::submit`], under an ingest id the caller chose (unique per record; a
    /// repeated id is a repeated submission and is stored once).
    pub async fn submit_as(&self, ingest_id: String, origin: &str, payload: Value) -> anyhow::Result<String> {
        let record = RawRecord { ingest_id, origin: origin.to_owned(), received_at: Utc::now(), payload, tenant: None };
        self.store.insert_raw(&record).await?;
        let ingest_id = record.ingest_id.clone();
        self.publish_raw(record).await?;
        metrics::counter!("aluskort_alerts_received_total").increment(1);
        Ok(ingest_id)
    }

    /// Accepts a page of records (`(ingest id, origin, payload)`) as [`Pipeline::submit_as`]
    /// does one: the page is made durable in the raw inbox in one transaction, then published.
    /// Connectors and the bench deliver pages; one statement per page instead of per record.
    pub async fn submit_many(&self, records: Vec<(String, String, Value)>) -> anyhow::Result<()> {
        let received_at = Utc::now();
        let records: Vec<RawRecord> = records
            .into_iter()
            .map(|(ingest_id, origin, payload)| RawRecord { ingest_id, origin, received_at, payload, tenant: None })
            .collect();
        let outcomes = self.store.insert_raw_many(&records).await?;
        for (record, outcome) in records.into_iter().zip(outcomes) {
            if outcome == InsertOutcome::Inserted {
                self.publish_raw(record).await?;
                metrics::counter!("aluskort_alerts_received_total").increment(1);
            }
        }
        Ok(())
    }

    /// Accepts one record from a receiver that may see it more than once (a connector re-reading a
    /// page after a restart, a webhook sender retrying): de-duplicated on `(source, source alert
    /// id)` by the raw inbox, heartbeat/test/health alerts dropped with a counter (FR-ING-001), the
    /// rest durable before this returns. `tenant` overrides the tenant the source names.
    pub async fn accept(&self, origin: &str, payload: Value, tenant: Option<TenantId>) -> anyhow::Result<Accepted> {
        let received_at = Utc::now();
        let identity = match aluskort_ingest::identify(&payload, received_at) {
            Ok(identity) => identity,
            Err(error) => {
                // Still made durable, under a key derived from its content (a re-read is not a
                // second dead letter): the parse stage dead-letters it with the reason.
                let ingest_id = format!("unidentified:{}", &hex::encode(Sha256::digest(payload.to_string().as_bytes()))[..32]);
                let record = RawRecord { ingest_id: ingest_id.clone(), origin: origin.to_owned(), received_at, payload, tenant };
                if self.store.insert_raw(&record).await? == InsertOutcome::Inserted {
                    self.publish_raw(record).await?;
                    metrics::counter!("aluskort_alerts_received_total").increment(1);
                }
                return Ok(Accepted::Unidentified { ingest_id, error });
            }
        };
        let source = identity.source.as_str().to_owned();
        let alert_id = identity.alert_id.to_string();
        if let Some(reason) = identity.noise {
            metrics::counter!("aluskort_alerts_dropped_total", "reason" => reason).increment(1);
            info!(%origin, %alert_id, reason, "noise alert dropped");
            return Ok(Accepted::Dropped { source, alert_id, reason: reason.to_owned() });
        }
        let ingest_id = identity.dedup_key();
        let record = RawRecord { ingest_id: ingest_id.clone(), origin: origin.to_owned(), received_at, payload, tenant };
        if self.store.insert_raw(&record).await? == InsertOutcome::Duplicate {
            metrics::counter!("aluskort_alerts_duplicate_total").increment(1);
            return Ok(Accepted::Duplicate { ingest_id, source, alert_id });
        }
        self.publish_raw(record).await?;
        metrics::counter!("aluskort_alerts_received_total").increment(1);
        Ok(Accepted::Queued { ingest_id, source, alert_id })
    }

    /// Publishes `record` on `alerts.raw`, handing the value itself to an in-process parse stage
    /// beside its JSON (as [`Pipeline::forward_normalized`] does).
    async fn publish_raw(&self, record: RawRecord) -> anyhow::Result<()> {
        let RawRecord { ingest_id, origin, received_at, payload, tenant } = record;
        let key = ingest_id.clone();
        self.publish_value(Topic::AlertsRaw, &key, RawAlert { ingest_id, origin, received_at, payload, tenant }).await
    }

    /// Publishes `value` on `topic` as JSON, and hands the value itself to consumers in this
    /// process ([`aluskort_bus::Bus::publish_decoded`], [`Delivery::decode`]).
    async fn publish_value<T: serde::Serialize + Send + Sync + 'static>(&self, topic: Topic, key: &str, value: T) -> anyhow::Result<()> {
        let payload = Bytes::from(serde_json::to_vec(&value)?);
        let decoded: aluskort_bus::Decoded = Arc::new(value);
        self.bus.publish_decoded(topic, key, payload, decoded).await?;
        Ok(())
    }

    /// Re-publishes raw records that were accepted but never finished (crash recovery). Returns how many.
    pub async fn replay_pending(&self) -> anyhow::Result<usize> {
        let pending = self.store.pending_raw(10_000).await?;
        let count = pending.len();
        for record in pending {
            self.publish_raw(record).await?;
        }
        Ok(count)
    }

    /// Records input that could not even be read as a record (bad JSON line): dead-lettered with
    /// the reason, never silently dropped.
    pub async fn reject_unreadable(&self, origin: &str, error: &str, original: Value) -> anyhow::Result<()> {
        let ingest_id = uuid::Uuid::now_v7().to_string();
        self.dead_letter(&ingest_id, origin, error, original).await
    }

    async fn dead_letter(&self, ingest_id: &str, origin: &str, error: &str, original: Value) -> anyhow::Result<()> {
        let letter = DeadLetter {
            id: ingest_id.to_owned(),
            topic: Topic::AlertsRawDlq.name().to_owned(),
            origin: origin.to_owned(),
            error: error.to_owned(),
            original: original.clone(),
            recorded_at: Utc::now(),
        };
        self.store.record_dead_letter(&letter).await?;
        metrics::counter!("aluskort_alerts_dead_lettered_total").increment(1);
        let mut event = AuditEvent::agent("default", "alert.dead_lettered", "entity_parser", Utc::now());
        event.actor_type = "system";
        event.severity = "warning";
        event.decision = json!({"decision_type": "dead_letter", "reasoning_summary": error, "origin": origin});
        self.audit.append(event).await?;
        let outcome = StageOutcome {
            ingest_id: ingest_id.to_owned(),
            origin: origin.to_owned(),
            tenant_id: None,
            alert_id: None,
            investigation_id: None,
            duplicate: false,
            warnings: Vec::new(),
            error: Some(error.to_owned()),
            original,
        };
        self.bus.publish(Topic::AlertsRawDlq, ingest_id, Bytes::from(serde_json::to_vec(&outcome)?)).await?;
        Ok(())
    }

    /// Parse stage: `alerts.raw` → `alerts.normalized` or `alerts.raw.dlq`.
    pub async fn run_parse_stage(self: Arc<Self>, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut subscription = self.bus.subscribe(Topic::AlertsRaw, group::ENTITY_PARSER).await?;
        loop {
            let delivery = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                delivery = subscription.next() => match delivery { Some(d) => d, None => return Ok(()) },
            };
            self.handle_raw(delivery).await;
        }
    }

    async fn handle_raw(&self, delivery: Delivery) {
        let raw = match delivery.decode::<RawAlert>() {
            Ok(raw) => raw,
            Err(error) => {
                let original = Value::String(String::from_utf8_lossy(&delivery.message.payload).into_owned());
                let reason = format!("undecodable alerts.raw message: {error}");
                self.settle(delivery, self.dead_letter(&uuid::Uuid::now_v7().to_string(), "alerts.raw", &reason, original).await).await;
                return;
            }
        };
        let result = match normalize(&raw) {
            Ok(normalized) => self.forward_normalized(normalized).await,
            Err(error) => {
                warn!(origin = %raw.origin, reason = %error.reason, "alert dead-lettered");
                match self.dead_letter(&raw.ingest_id, &raw.origin, &error.reason, raw.payload.clone()).await {
                    Ok(()) => self.store.mark_raw(&raw.ingest_id, RawStatus::DeadLettered, Some(&error.reason)).await.map_err(Into::into),
                    Err(error) => Err(error),
                }
            }
        };
        self.settle(delivery, result).await;
    }

    /// Publishes `normalized` on `alerts.normalized`, handing the value itself to an in-process
    /// investigate stage beside its JSON ([`aluskort_bus::Bus::publish_decoded`]): decoding it
    /// again there, raw payload and all, was ~4 % of a burst's instructions.
    async fn forward_normalized(&self, normalized: NormalizedAlert) -> anyhow::Result<()> {
        // The raw record stays pending until its investigation settles (see `investigate`): with
        // an in-process bus a normalised message dies with the process, and the pending record is
        // what a restart replays.
        let key = normalized.alert.alert_id.to_string();
        self.publish_value(Topic::AlertsNormalized, &key, normalized).await
    }

    /// Acks on success. On failure (only transient failures reach here: permanent ones were
    /// dead-lettered or failed the investigation) the delivery is nacked after a backoff that
    /// doubles per attempt up to 30 s: the message stays on the bus until the backend is back
    /// (degradation level `passthrough`), so nothing is lost.
    async fn settle(&self, delivery: Delivery, result: anyhow::Result<()>) {
        match result {
            Ok(()) => delivery.ack(),
            Err(error) => {
                let backoff = self.backoff(delivery.attempt);
                warn!(%error, attempt = delivery.attempt, topic = %delivery.message.topic, backoff_ms = backoff.as_millis(), "processing failed; will retry");
                tokio::time::sleep(backoff).await;
                delivery.nack();
            }
        }
    }

    /// Waits until every ingest id in `expected` has an outcome (investigated or dead-lettered),
    /// reading `incidents.enriched` and `alerts.raw.dlq` as consumer group `group`. `on_outcome`
    /// is called as each arrives (progress reporting).
    pub async fn await_outcomes(
        &self,
        mut expected: HashSet<String>,
        group: &str,
        mut on_outcome: impl FnMut(&StageOutcome),
    ) -> anyhow::Result<Vec<StageOutcome>> {
        let mut enriched = self.bus.subscribe(Topic::IncidentsEnriched, group).await?;
        let mut dead = self.bus.subscribe(Topic::AlertsRawDlq, group).await?;
        let mut outcomes = Vec::with_capacity(expected.len());
        while !expected.is_empty() {
            let delivery = tokio::select! {
                delivery = enriched.next() => delivery,
                delivery = dead.next() => delivery,
            };
            let Some(delivery) = delivery else {
                anyhow::bail!("bus closed with {} record(s) still outstanding", expected.len());
            };
            let outcome: StageOutcome = serde_json::from_slice(&delivery.message.payload)?;
            delivery.ack();
            if expected.remove(&outcome.ingest_id) {
                on_outcome(&outcome);
                outcomes.push(outcome);
            }
        }
        Ok(outcomes)
    }

    /// Investigate stage: `alerts.normalized` → state machine → `incidents.enriched`. Takes what
    /// is ready on the topic, up to [`INVESTIGATE_BATCH`] messages, runs their investigations and
    /// commits them as one unit of work; a quiet stream gives batches of one (no added latency), a
    /// busy one amortises the commit over many alerts.
    ///
    /// While a batch commits, the next one is already investigated, reading through what the
    /// committing batch changed ([`Overlay`]); its own commit starts only once the earlier one
    /// has landed, and if that one failed, the next is retried rather than committed on top of
    /// it. Commits stay strictly ordered; the stage holds the grouping lock while it has work in
    /// hand.
    pub async fn run_investigate_stage(self: Arc<Self>, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut subscription = self.bus.subscribe(Topic::AlertsNormalized, group::ORCHESTRATOR).await?;
        let mut in_flight: Option<InFlight> = None;
        let mut guard: Option<tokio::sync::OwnedMutexGuard<()>> = None;
        let mut encode_ahead = EncodeAhead::default();
        loop {
            if shutdown.is_cancelled() {
                // Stop after the batch in hand: what is not taken stays pending in the raw inbox
                // and is replayed on the next start.
                if let Some(previous) = in_flight.take() {
                    previous.finish().await;
                }
                return Ok(());
            }
            let first = if in_flight.is_some() {
                match subscription.next_ready() {
                    Some(delivery) => delivery,
                    None => {
                        // Nothing more waiting: let the commit finish, then idle without the lock.
                        if let Some(previous) = in_flight.take() {
                            previous.finish().await;
                        }
                        guard = None;
                        continue;
                    }
                }
            } else {
                guard = None;
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(()),
                    delivery = subscription.next() => match delivery { Some(d) => d, None => return Ok(()) },
                }
            };
            let mut deliveries = vec![first];
            while deliveries.len() < INVESTIGATE_BATCH {
                match subscription.next_ready() {
                    Some(delivery) => deliveries.push(delivery),
                    None => break,
                }
            }
            let mut batch = Vec::with_capacity(deliveries.len());
            for delivery in deliveries {
                match delivery.decode::<NormalizedAlert>() {
                    Ok(normalized) => batch.push((normalized, delivery)),
                    Err(error) => {
                        let original = Value::String(String::from_utf8_lossy(&delivery.message.payload).into_owned());
                        let reason = format!("undecodable alerts.normalized message: {error}");
                        let result = self.dead_letter(&uuid::Uuid::now_v7().to_string(), "alerts.normalized", &reason, original).await;
                        self.settle(delivery, result).await;
                    }
                }
            }
            if batch.is_empty() {
                continue;
            }
            if guard.is_none() {
                guard = Some(Arc::clone(&self.grouping_lock).lock_owned().await);
            }
            let items: Vec<(&NormalizedAlert, u32)> =
                batch.iter().map(|(normalized, delivery)| (&**normalized, delivery.attempt)).collect();
            let overlay = in_flight.as_ref().map(|previous| Arc::clone(&previous.overlay));
            let prepared = self.prepare_batch_encoding(&items, overlay, encode_ahead.percent).await;
            drop(items);
            if let Some(previous) = &in_flight {
                encode_ahead.adjust(previous.task.is_finished());
            }
            let previous_landed = match in_flight.take() {
                Some(previous) => previous.finish().await,
                None => true,
            };
            match prepared {
                _ if !previous_landed => {
                    let deliveries = batch.into_iter().map(|(_, delivery)| delivery).collect();
                    self.retry_all(deliveries, "the batch before this one was not committed; investigating again").await;
                }
                Err(error) => self.settle_failed(batch, error).await,
                Ok(prepared) => {
                    let overlay = Arc::clone(&prepared.work);
                    let task = tokio::spawn(Arc::clone(&self).commit_and_settle(prepared, batch));
                    in_flight = Some(InFlight { overlay, task });
                }
            }
        }
    }

    /// Commits a prepared batch, publishes its outcomes and acks its deliveries, or settles them
    /// as failed. Returns whether the batch's changes are in the store.
    async fn commit_and_settle(self: Arc<Self>, prepared: Prepared, batch: Vec<(Arc<NormalizedAlert>, Delivery)>) -> bool {
        let outcomes = match self.commit_prepared(prepared).await {
            Ok(outcomes) => outcomes,
            Err(error) => {
                self.settle_failed(batch, error).await;
                return false;
            }
        };
        match self.publish_outcomes(&outcomes).await {
            Ok(()) => batch.into_iter().for_each(|(_, delivery)| delivery.ack()),
            Err(error) => {
                // Committed but not announced: redelivery finds the investigations settled and
                // publishes them (as duplicates) then.
                let deliveries = batch.into_iter().map(|(_, delivery)| delivery).collect();
                self.retry_all(deliveries, &format!("{error:#}")).await;
            }
        }
        true
    }

    /// Pause before redelivering a message on its `attempt`-th try: `retry_backoff`, doubling per
    /// attempt, at most 30 s.
    fn backoff(&self, attempt: u32) -> StdDuration {
        let exponent = attempt.saturating_sub(1).min(8);
        self.settings.retry_backoff.saturating_mul(1 << exponent).min(StdDuration::from_secs(30))
    }

    /// Nacks every delivery after one backoff (doubling per attempt of the most-tried one, up to
    /// 30 s): transient failures of a whole batch wait once, not once per message.
    async fn retry_all(&self, deliveries: Vec<Delivery>, reason: &str) {
        let attempt = deliveries.iter().map(|delivery| delivery.attempt).max().unwrap_or(1);
        let backoff = self.backoff(attempt);
        warn!(%reason, attempt, messages = deliveries.len(), backoff_ms = backoff.as_millis(), "batch failed; will retry");
        tokio::time::sleep(backoff).await;
        deliveries.into_iter().for_each(Delivery::nack);
    }

    /// Settles a batch that was not committed: a retryable failure nacks it whole (one backoff,
    /// redelivery); a permanent one nacks each message until its last attempt, then dead-letters
    /// it with the reason, so nothing is lost silently.
    async fn settle_failed(&self, batch: Vec<(Arc<NormalizedAlert>, Delivery)>, error: BatchError) {
        match error {
            BatchError::Retry(reason) => {
                let deliveries = batch.into_iter().map(|(_, delivery)| delivery).collect();
                self.retry_all(deliveries, &reason).await;
            }
            BatchError::Permanent(reason) => {
                let mut again = Vec::new();
                for (normalized, delivery) in batch {
                    if delivery.attempt < self.settings.max_attempts {
                        again.push(delivery);
                        continue;
                    }
                    let reason = format!("investigation could not be stored: {reason}");
                    let original = serde_json::to_value(&normalized.alert.raw_payload).unwrap_or(Value::Null);
                    let result = match self.dead_letter(&normalized.ingest_id, &normalized.origin, &reason, original).await {
                        Ok(()) => {
                            self.store.mark_raw(&normalized.ingest_id, RawStatus::DeadLettered, Some(&reason)).await.map_err(Into::into)
                        }
                        Err(error) => Err(error),
                    };
                    self.settle(delivery, result).await;
                }
                if !again.is_empty() {
                    self.retry_all(again, &reason).await;
                }
            }
        }
    }

    async fn publish_outcomes(&self, outcomes: &[StageOutcome]) -> anyhow::Result<()> {
        for outcome in outcomes {
            let key = outcome.alert_id.as_deref().unwrap_or(&outcome.ingest_id);
            self.bus.publish(Topic::IncidentsEnriched, key, Bytes::from(serde_json::to_vec(outcome)?)).await?;
        }
        Ok(())
    }

    /// Runs (or resumes) the investigation of one normalised alert and publishes its outcome.
    pub async fn investigate(&self, normalized: &NormalizedAlert, attempt: u32) -> anyhow::Result<()> {
        let outcomes = {
            // Grouping reads and writes incidents: batches run one at a time in this process.
            let _guard = self.grouping_lock.lock().await;
            let prepared = self.prepare_batch(&[(normalized, attempt)], None).await.map_err(|error| anyhow::anyhow!("{error}"))?;
            self.commit_prepared(prepared).await.map_err(|error| anyhow::anyhow!("{error}"))?
        };
        self.publish_outcomes(&outcomes).await
    }

    /// Runs (or resumes) the investigations of a batch of normalised alerts (with the delivery
    /// attempt of each), reading through `overlay` (what a batch still committing changed), and
    /// collects everything they change into one unit of work. The caller holds the grouping lock.
    async fn prepare_batch(&self, items: &[(&NormalizedAlert, u32)], overlay: Option<Overlay>) -> Result<Prepared, BatchError> {
        self.prepare_batch_encoding(items, overlay, 100).await
    }

    /// [`Pipeline::prepare_batch`], encoding the versions of `encode_percent` % of the batch's
    /// investigations ahead (the commit encodes the rest; see [`EncodeAhead`]).
    async fn prepare_batch_encoding(
        &self,
        items: &[(&NormalizedAlert, u32)],
        overlay: Option<Overlay>,
        encode_percent: usize,
    ) -> Result<Prepared, BatchError> {
        let mut work = Work::over(overlay);
        work.reserve(items.len());
        let mut by_tenant: HashMap<&TenantId, Vec<AlertId>> = HashMap::new();
        for (normalized, _) in items {
            by_tenant.entry(&normalized.alert.tenant_id).or_default().push(normalized.alert.alert_id.clone());
        }
        let unread: Vec<(&TenantId, Vec<AlertId>)> =
            by_tenant.into_iter().map(|(tenant, alert_ids)| (tenant, work.unread_states(tenant, &alert_ids))).collect();
        let sources = crate::enrich::Sources {
            threat_intel: self.settings.threat_intel.as_deref(),
            context: self.settings.context.as_deref(),
            zones: &self.settings.zones,
            graph: self.settings.asset_graph.as_deref(),
            timeout: self.settings.enricher_timeout,
        };
        let alerts: Vec<&NormalizedAlert> = items.iter().map(|(normalized, _)| *normalized).collect();
        // The three reads are independent: the investigations already begun, the incidents the
        // alerts may join, and the enrichment context. Run together, a batch waits for the
        // slowest of them rather than their sum (each is a round trip to the store).
        let store = self.store.as_ref();
        let states = Work::fetch_states(store, &unread);
        let incidents = Work::prefetch_incidents(store, alerts.iter().copied(), self.settings.grouping_window);
        let (states, incidents, context) =
            tokio::join!(states, incidents, crate::enrich::BatchContext::load(&sources, &alerts, Utc::now()));
        work.absorb_states(states.map_err(BatchError::store)?);
        work.absorb_incidents(incidents.map_err(BatchError::store)?);
        work.context = context;
        for (enricher, reason) in work.context.failures() {
            warn!(enricher, %reason, alerts = items.len(), "enrichment lookup failed; investigations go on without it");
        }
        for (pattern_id, reason) in &work.context.bad_patterns {
            warn!(%pattern_id, %reason, "FP pattern cannot be used");
        }
        let mut outcomes = Vec::with_capacity(items.len());
        let mut settled = Vec::with_capacity(items.len());
        for (normalized, attempt) in items {
            let alert = &normalized.alert;
            work.insert_alert(alert);
            let (mut state, seen_before) = match work.current_state(&alert.tenant_id, &alert.alert_id) {
                Some(state) => (state.clone(), true),
                None => {
                    let mut state = GraphState::new(alert.alert_id.clone(), alert.tenant_id.clone(), self.settings.degradation, Utc::now());
                    state.version = 0;
                    let mut event = AuditEvent::agent(alert.tenant_id.as_str(), "investigation.state_changed", "orchestrator", Utc::now());
                    event.investigation_id = Some(state.investigation_id.to_string());
                    event.alert_id = Some(alert.alert_id.to_string());
                    event.outcome = json!({"state_before": null, "state_after": "received", "outcome_status": "success"});
                    event.context = json!({"degradation_level": state.degradation_level.as_str(), "origin": normalized.origin});
                    work.audit(event);
                    work.save(&mut state, false);
                    (state, false)
                }
            };
            // RESPONDING is stored only after a human approved (the automatic close passes through
            // it within one batch): the response service carries it on, never the pipeline.
            let was_settled =
                matches!(state.state, InvestigationState::AwaitingHuman | InvestigationState::Closed | InvestigationState::Failed)
                    || (state.state == InvestigationState::Responding && state.case_facts.contains_key("approval_id"));
            let duplicate = seen_before && was_settled;
            if !was_settled {
                match self.advance(&mut work, &mut state, normalized).await {
                    Ok(()) => {}
                    Err(StepError::Transient(reason)) if *attempt < self.settings.max_attempts => return Err(BatchError::Retry(reason)),
                    Err(StepError::Transient(reason) | StepError::Permanent(reason)) => {
                        warn!(alert_id = %alert.alert_id, %reason, "investigation failed");
                        self.fail(&mut work, &mut state, &reason).map_err(|error| BatchError::Permanent(error.to_string()))?;
                    }
                }
            }
            debug!(alert_id = %alert.alert_id, state = %state.state, duplicate, "investigation settled");
            if !duplicate {
                let age = (Utc::now() - alert.timestamp).num_milliseconds().max(0) as f64 / 1_000.0;
                settled.push(Settled {
                    state: state.state,
                    classification: state.classification,
                    degradation: state.degradation_level,
                    age,
                });
            }
            work.mark_raw(&normalized.ingest_id, RawStatus::Done, None);
            outcomes.push(StageOutcome {
                ingest_id: normalized.ingest_id.clone(),
                origin: normalized.origin.clone(),
                tenant_id: Some(alert.tenant_id.to_string()),
                alert_id: Some(alert.alert_id.to_string()),
                investigation_id: Some(state.investigation_id.to_string()),
                duplicate,
                warnings: normalized.warnings.clone(),
                error: None,
                original: Value::Null,
            });
        }
        // The audit records are made and hashed here, while the batch before this one commits,
        // not in the commit, which runs one batch at a time: it only links them into the chain.
        let records = aluskort_audit::PreparedRecords::prepare(std::mem::take(&mut work.events))
            .map_err(|error| BatchError::Permanent(error.to_string()))?;
        // So are the stored bodies of the investigations' versions, or the share of them the
        // stage is keeping.
        let ahead = (work.batch.investigations.len() * encode_percent).div_ceil(100);
        work.batch.encode_versions_ahead(ahead).map_err(BatchError::store)?;
        Ok(Prepared { work: work.seal(), records, outcomes, settled })
    }

    /// Commits a prepared unit of work with its audit records in one transaction. Returns the
    /// outcomes to publish.
    async fn commit_prepared(&self, prepared: Prepared) -> Result<Vec<StageOutcome>, BatchError> {
        let Prepared { work, records, outcomes, settled } = prepared;
        let store = Arc::clone(&self.store);
        let batch = &work.batch;
        let report = self
            .audit
            .append_with(records, move |records| {
                let store = Arc::clone(&store);
                async move { store.commit_work_encoded(batch, &records.records, &records.texts).await }
            })
            .await
            .map_err(BatchError::audit)?;
        if !report.skipped.is_empty() {
            info!(skipped = report.skipped.len(), "reassessments skipped: changed meanwhile by someone else");
        }
        metrics::histogram!("aluskort_investigate_batch_size").record(outcomes.len() as f64);
        for settled in settled {
            metrics::counter!("aluskort_investigations_settled_total", "state" => settled.state.as_str()).increment(1);
            let classification = settled.classification.map_or("none", aluskort_core::Classification::as_str);
            metrics::counter!(
                "aluskort_verdicts_total",
                "classification" => classification,
                "degradation_level" => settled.degradation.as_str()
            )
            .increment(1);
            metrics::histogram!("aluskort_alert_to_verdict_seconds").record(settled.age);
        }
        if let Some(runner) = &self.settings.dry_run {
            runner.announce(&work.batch.executions);
        }
        for state in &work.closed {
            self.remember(state).await;
        }
        Ok(outcomes)
    }
}

/// A batch investigated and waiting to be committed.
struct Prepared {
    work: Overlay,
    /// The batch's audit records, to be linked into the chain as it commits.
    records: aluskort_audit::PreparedRecords,
    outcomes: Vec<StageOutcome>,
    /// Each alert investigated (not duplicates), for the metrics.
    settled: Vec<Settled>,
}

/// How one alert's investigation settled, for the metrics.
struct Settled {
    state: InvestigationState,
    classification: Option<aluskort_core::Classification>,
    degradation: DegradationLevel,
    /// Seconds from the alert's own time (at the source) to its verdict: what the SOC waits,
    /// SIEM and connector delays included (the design's triage median target is 30 s).
    age: f64,
}

/// A batch being committed, and what it changed.
struct InFlight {
    overlay: Overlay,
    task: tokio::task::JoinHandle<bool>,
}

impl InFlight {
    /// Waits for the commit; whether its changes are in the store.
    async fn finish(self) -> bool {
        match self.task.await {
            Ok(landed) => landed,
            Err(error) => {
                warn!(%error, "batch commit task ended abnormally");
                false
            }
        }
    }
}

/// Default per-enricher budget (the design's TI budget is 100 ms, vector search 200 ms).
pub const DEFAULT_ENRICHER_TIMEOUT: StdDuration = StdDuration::from_millis(500);

/// Most normalised alerts investigated and committed as one unit of work.
pub const INVESTIGATE_BATCH: usize = 256;

/// How much of a batch's version encoding the stage does before handing the batch to its commit
/// (the commit encodes the rest as it plans the unit). The stage and the commit run side by side
/// on two cores; whichever finishes first waits for the other, its core idle. So the share moves
/// by [`EncodeAhead::STEP`] points per batch towards the side with time to spare: down when the
/// commit before had already landed when the stage finished preparing (the commit waited), up
/// when the stage has to wait for it. In a burst it moved between 40 and 100 % on this machine
/// (the stage was the slower side with all of it: ~75 against ~60 ms per batch of 256).
/// Measured against encoding everything ahead, interleaved pairs: 5,000-alert bursts, medians
/// 2,282 → 2,464 and 2,062 → 2,104 alerts/s (8 pairs each); 10,000-alert, 2,647 → 2,782 (6);
/// faster in 14 of 22. Worth a few per cent, no more: this host's noise is ±20 %.
#[derive(Debug, Clone, Copy)]
struct EncodeAhead {
    percent: usize,
}

impl Default for EncodeAhead {
    fn default() -> Self {
        EncodeAhead { percent: 100 }
    }
}

impl EncodeAhead {
    const STEP: usize = 10;

    fn adjust(&mut self, commit_waited: bool) {
        self.percent = if commit_waited { self.percent.saturating_sub(Self::STEP) } else { (self.percent + Self::STEP).min(100) };
    }
}

/// Why a batch was not committed.
#[derive(Debug)]
enum BatchError {
    /// Worth retrying as is (a backend unavailable, a version raced).
    Retry(String),
    /// Will fail again.
    Permanent(String),
}

impl BatchError {
    fn store(error: aluskort_store::StoreError) -> Self {
        if error.is_retryable() { BatchError::Retry(error.to_string()) } else { BatchError::Permanent(error.to_string()) }
    }

    fn audit(error: aluskort_audit::chain::AuditError) -> Self {
        match error {
            aluskort_audit::chain::AuditError::Store(error) => BatchError::store(error),
            aluskort_audit::chain::AuditError::Contention => BatchError::Retry(error.to_string()),
            other => BatchError::Permanent(other.to_string()),
        }
    }
}

impl std::fmt::Display for BatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BatchError::Retry(reason) | BatchError::Permanent(reason) => f.write_str(reason),
        }
    }
}

#[cfg(test)]
mod enrichment_tests;
#[cfg(test)]
mod response_tests;
#[cfg(test)]
mod tests;
