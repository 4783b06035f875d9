//! State stores behind traits, with an embedded (SQLite) and a server (PostgreSQL) implementation
//! that pass one conformance suite.
//!
//! # Layout
//! - [`error`]: `StoreError` = kind + source; only the API crate maps kinds to HTTP.
//! - [`model`]: rows the stores hold besides domain types (raw inbox, dead letters, filters, the
//!   enrichers' context: FP patterns, UEBA risk, CTEM exposures).
//! - [`schema`]: versioned migrations, one SQL dialect both databases accept.
//! - [`sql`]: the implementation body, expanded once per database by a macro.
//! - [`sqlite`], [`postgres`]: connection setup for each backend.
//! - [`conformance`]: the shared test suite every implementation runs.

mod direct;
pub mod error;
mod memory_sql;
pub mod model;
mod patch;
mod response_sql;
pub mod schema;
mod sql;
pub mod sqlite;
mod unit;

#[cfg(feature = "postgres")]
pub mod postgres;

#[cfg(any(test, feature = "testsuite"))]
pub mod conformance;

use aluskort_core::audit::AuditRecord;
use aluskort_core::{AlertId, CanonicalAlert, GraphState, Incident, InvestigationId, TenantId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use error::{StoreError, StoreErrorKind, StoreResult};
pub use model::{
    AlertFilter, ApprovalFilter, ApprovalWrite, AuditFilter, AuditTexts, DeadLetter, EncodedVersions, EntityPattern, Exposure, Feedback,
    FpPattern, FpStatus, GroupingClaim, IncidentFilter, InsertOutcome, InvestigationFilter, InvestigationWrite, LlmCall, LlmUsageRow,
    PageKey, PastIncidentRow, RawMark, RawRecord, RawStatus, TiIndicator, UserRisk, WorkBatch, WorkReport, user_key,
};
pub use sqlite::SqliteStore;

#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;

/// Incident memory's durable records by month (NFR-CMP-002): what the vector index holds for the
/// hot months, and what `aluskort memory archive` moves to object storage month by month.
#[async_trait]
pub trait MemoryStore: Send + Sync + 'static {
    /// Stores a past incident, replacing an earlier one of the same tenant and id.
    async fn put_past_incident(&self, row: &PastIncidentRow) -> StoreResult<()>;
    /// `tenant`'s past incidents closed in `[from, to)`, newest first, at most `limit`.
    async fn past_incidents(&self, tenant: &str, from: DateTime<Utc>, to: DateTime<Utc>, limit: u32) -> StoreResult<Vec<PastIncidentRow>>;
    /// Every month (`YYYY-MM`) holding past incidents with how many, oldest first.
    async fn past_incident_months(&self) -> StoreResult<Vec<(String, u64)>>;
    /// Every past incident closed in `month` (`YYYY-MM`), by tenant and id.
    async fn past_incidents_of_month(&self, month: &str) -> StoreResult<Vec<PastIncidentRow>>;
    /// Removes `month`'s past incidents (PostgreSQL drops the month's partitions); how many.
    async fn drop_past_incident_month(&self, month: &str) -> StoreResult<u64>;
}

/// Alerts, investigations and incidents (ARCHITECTURE.md "Backend traits").
#[async_trait]
pub trait CaseStore: Send + Sync + 'static {
    /// Durable raw inbox: a record is written here before it is acknowledged to its sender, and
    /// replayed on start until the pipeline marks it done. Idempotent on `ingest_id`.
    async fn insert_raw(&self, record: &RawRecord) -> StoreResult<InsertOutcome>;
    /// [`CaseStore::insert_raw`] for many records in one transaction (a connector's page, a
    /// webhook batch); outcomes in input order. A record repeated within `records` is a duplicate
    /// after its first occurrence.
    async fn insert_raw_many(&self, records: &[RawRecord]) -> StoreResult<Vec<InsertOutcome>>;
    /// A connector's saved position (opaque JSON owned by the connector), `None` before its first page.
    async fn load_checkpoint(&self, source_name: &str) -> StoreResult<Option<serde_json::Value>>;
    /// Replaces the connector's position; written only after the page it covers is durable here.
    async fn save_checkpoint(&self, source_name: &str, checkpoint: &serde_json::Value) -> StoreResult<()>;
    async fn mark_raw(&self, ingest_id: &str, status: RawStatus, error: Option<&str>) -> StoreResult<()>;
    /// Raw records still pending, oldest first.
    async fn pending_raw(&self, limit: u32) -> StoreResult<Vec<RawRecord>>;

    /// Idempotent on (tenant, alert id): a second insert returns `Duplicate` and changes nothing.
    async fn insert_alert(&self, alert: &CanonicalAlert) -> StoreResult<InsertOutcome>;
    async fn alert(&self, tenant: &TenantId, alert_id: &AlertId) -> StoreResult<Option<CanonicalAlert>>;
    /// Alerts of a tenant whose timestamp is in `[from, to)`, oldest first.
    async fn alerts_between(&self, tenant: &TenantId, from: DateTime<Utc>, to: DateTime<Utc>) -> StoreResult<Vec<CanonicalAlert>>;

    /// Creates version 1 of an investigation; idempotent on (tenant, alert id): returns
    /// `Duplicate` when the alert already has one.
    async fn create_investigation(&self, state: &GraphState) -> StoreResult<InsertOutcome>;
    /// Saves `state` as version `expected_version + 1` if the stored version is `expected_version`;
    /// `Conflict` otherwise, `NotFound` if it does not exist. Every saved version is kept (replay).
    async fn save_investigation(&self, state: &GraphState, expected_version: u64) -> StoreResult<u64>;
    async fn investigation(&self, id: InvestigationId) -> StoreResult<Option<GraphState>>;
    async fn investigation_for_alert(&self, tenant: &TenantId, alert_id: &AlertId) -> StoreResult<Option<GraphState>>;
    /// The investigations of `alert_ids` of one tenant (in no particular order; absent ones are missing).
    async fn investigations_for_alerts(&self, tenant: &TenantId, alert_ids: &[AlertId]) -> StoreResult<Vec<GraphState>>;
    /// Every saved version of an investigation, oldest first.
    async fn investigation_history(&self, id: InvestigationId) -> StoreResult<Vec<GraphState>>;
    /// Newest first (by last update).
    async fn list_investigations(&self, filter: &InvestigationFilter) -> StoreResult<Vec<GraphState>>;
    /// Incidents matching `filter`, most recently active first (merged ones left out).
    async fn list_incidents(&self, filter: &IncidentFilter) -> StoreResult<Vec<Incident>>;
    /// Alerts matching `filter`, newest first.
    async fn list_alerts(&self, filter: &AlertFilter) -> StoreResult<Vec<CanonicalAlert>>;

    async fn upsert_incident(&self, incident: &Incident) -> StoreResult<()>;
    async fn incident(&self, incident_id: &str) -> StoreResult<Option<Incident>>;
    /// Unmerged incidents of a tenant active in `[from, to]` (first_seen ≤ to and last_seen ≥ from).
    async fn incidents_overlapping(&self, tenant: &TenantId, from: DateTime<Utc>, to: DateTime<Utc>) -> StoreResult<Vec<Incident>>;

    /// Unmerged incidents of a tenant active in `[from, to]` holding a member with any of `keys`
    /// (entity keys, indexed on every upsert): the grouping candidates of an alert without reading
    /// every incident in the window. Shared, not copied: a candidate is up to
    /// `MAX_INCIDENT_ALERTS` members, and most candidates are only read.
    async fn incidents_with_keys(
        &self,
        tenant: &TenantId,
        keys: &[String],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<std::sync::Arc<Incident>>>;

    /// The grouping epochs of `keys` of `tenant` (a key never claimed is left out: epoch 0).
    /// Read before the grouping candidates, so a claim made after this read fails the commit
    /// ([`GroupingClaim`]).
    async fn grouping_epochs(&self, tenant: &TenantId, keys: &[String]) -> StoreResult<std::collections::HashMap<String, u64>>;

    /// Commits `work` and `audit` (records already sealed into their chains) in one transaction.
    /// An investigation write whose expected version does not match fails the whole commit with
    /// `Conflict` (nothing is written), unless it asked to be skipped; an audit sequence already
    /// taken fails it with `Conflict` too.
    async fn commit_work(&self, work: &WorkBatch, audit: &[AuditRecord]) -> StoreResult<WorkReport>;

    /// As [`CaseStore::commit_work`], with the audit records' JSON columns already encoded:
    /// `texts[i]` holds those of `audit[i]` (the same content; a store may encode them itself
    /// instead, as this default does). Empty `texts` are encoded by the store; any other count
    /// than one per record is refused.
    async fn commit_work_encoded(&self, work: &WorkBatch, audit: &[AuditRecord], texts: &[AuditTexts]) -> StoreResult<WorkReport> {
        let _ = texts;
        self.commit_work(work, audit).await
    }

    async fn record_dead_letter(&self, letter: &DeadLetter) -> StoreResult<()>;
    async fn dead_letters(&self, limit: u32) -> StoreResult<Vec<DeadLetter>>;

    async fn check_connectivity(&self) -> anyhow::Result<()>;
}

/// Append-only storage of the audit chain. Appends are idempotent only in the sense that a
/// second record with the same (tenant, sequence) is refused with `Conflict`: the chain writer
/// then reloads the head and retries, so the chain never forks and never has gaps.
#[async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// (sequence_number, record_hash) of the newest record of `tenant`.
    async fn audit_head(&self, tenant: &str) -> StoreResult<Option<(u64, String)>>;
    async fn append_audit(&self, record: &AuditRecord) -> StoreResult<()>;
    /// Records of `tenant` with sequence ≥ `from_sequence`, in order, at most `limit`.
    async fn audit_records(&self, tenant: &str, from_sequence: u64, limit: u32) -> StoreResult<Vec<AuditRecord>>;
    async fn audit_tenants(&self) -> StoreResult<Vec<String>>;
    /// The records of `tenant` naming `investigation_id`, in sequence order (evidence packages).
    async fn audit_records_for_investigation(&self, tenant: &str, investigation_id: &str) -> StoreResult<Vec<AuditRecord>>;
    /// One tenant's records matching `filter`, in chain order.
    async fn audit_events(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditRecord>>;
}

/// The ledger of model calls the gateway keeps (spend limits, tenant quotas, usage reports).
#[async_trait]
pub trait UsageStore: Send + Sync + 'static {
    /// Idempotent on `call_id`.
    async fn record_llm_call(&self, call: &LlmCall) -> StoreResult<()>;
    /// Total cost in micro-dollars of calls at or after `since`.
    async fn llm_cost_since(&self, since: DateTime<Utc>) -> StoreResult<u64>;
    /// Model calls of `tenant` at or after `since` (hourly quotas); deterministic answers do not count.
    async fn llm_calls_since(&self, tenant: &str, since: DateTime<Utc>) -> StoreResult<u64>;
    /// Calls in `[from, to)` summed by (day, tier, task), ordered by day, tier, task.
    async fn llm_usage(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> StoreResult<Vec<LlmUsageRow>>;
}

/// Threat-intelligence indicators for exact-match enrichment (FR-ENR-004).
#[async_trait]
pub trait ThreatIntelStore: Send + Sync + 'static {
    /// Inserts or replaces (same tenant and indicator); returns how many were written.
    async fn upsert_indicators(&self, indicators: &[TiIndicator]) -> StoreResult<u64>;
    /// The unexpired indicators among `indicators` (`{type}:{value}`) for `tenant` or every tenant.
    async fn match_indicators(&self, tenant: &str, indicators: &[String], now: DateTime<Utc>) -> StoreResult<Vec<TiIndicator>>;
}

/// What the enrichers and the FP check read besides threat intel: approved false-positive patterns
/// (FR-RAG-005, FR-RSN-006), UEBA user risk (FR-ENR-005) and CTEM exposures (FR-ENR-006). Writes
/// are validated first (an invalid row fails the call with `Invalid` and nothing is written);
/// judging staleness is left to the caller.
#[async_trait]
pub trait ContextStore: Send + Sync + 'static {
    /// Inserts or replaces the pattern with this `pattern_id`.
    async fn upsert_fp_pattern(&self, pattern: &FpPattern) -> StoreResult<()>;
    /// Replaces `previous` with `next` (same `pattern_id`) only if the stored pattern still has
    /// `previous`'s status, approvers and expiry; else `Conflict`, and nothing is written (a
    /// revocation is never overwritten by a concurrent approval or reaffirmation).
    async fn replace_fp_pattern(&self, previous: &FpPattern, next: &FpPattern) -> StoreResult<()>;
    async fn fp_pattern(&self, pattern_id: &str) -> StoreResult<Option<FpPattern>>;
    /// Patterns that may close an alert of `tenant` at `now`: status approved or active, not
    /// expired (`expires_at` unset or after `now`), the tenant's own or global; by `pattern_id`.
    async fn matchable_fp_patterns(&self, tenant: &str, now: DateTime<Utc>) -> StoreResult<Vec<FpPattern>>;
    /// Patterns in any status, for review and listing: with `tenant`, that tenant's own and global
    /// ones (else every tenant's); with `status`, only those in it. By `pattern_id`.
    async fn fp_patterns(&self, tenant: Option<&str>, status: Option<FpStatus>) -> StoreResult<Vec<FpPattern>>;

    /// Inserts or replaces rows by (tenant, lower-cased user); a key repeated in `rows` is written
    /// once, its last occurrence winning. Returns how many rows were written.
    async fn upsert_user_risk(&self, rows: &[UserRisk]) -> StoreResult<u64>;
    /// The rows of `users` (any case) of `tenant`, by user; unknown users are missing.
    async fn user_risk(&self, tenant: &str, users: &[String]) -> StoreResult<Vec<UserRisk>>;

    /// Inserts or replaces exposures by (tenant, exposure id); a key repeated in `exposures` is
    /// written once, its last occurrence winning. Returns how many rows were written.
    async fn upsert_exposures(&self, exposures: &[Exposure]) -> StoreResult<u64>;
    /// Open exposures of `tenant` on any of `assets` (`(asset_id, asset_zone)`): an exposure counts
    /// only when both its asset (ignoring case) and its zone match, and not when its status is
    /// Verified or Closed (ignoring case). Highest `ctem_score` first, then by exposure id.
    async fn exposures_for_assets(&self, tenant: &str, assets: &[(String, String)]) -> StoreResult<Vec<Exposure>>;
}

/// Approvals, action executions and analyst feedback (FR-RSP-002..004, FR-CSM-004). Approvals and
/// executions are written through [`CaseStore::commit_work`] ([`WorkBatch::approvals`],
/// [`WorkBatch::executions`], [`WorkBatch::execution_updates`]) in the same transaction as the
/// investigation versions and audit records they go with.
#[async_trait]
pub trait ResponseStore: Send + Sync + 'static {
    async fn approval(&self, approval_id: &str) -> StoreResult<Option<aluskort_core::response::Approval>>;
    /// Matching approvals, earliest deadline first (then by id).
    async fn approvals(&self, filter: &ApprovalFilter) -> StoreResult<Vec<aluskort_core::response::Approval>>;
    async fn execution(&self, execution_key: &str) -> StoreResult<Option<aluskort_core::response::Execution>>;
    /// Executions of one investigation, oldest first.
    async fn executions_for_investigation(&self, investigation_id: &str) -> StoreResult<Vec<aluskort_core::response::Execution>>;
    /// Claims up to `limit` executions that are pending, or running with a lease that ran out
    /// before `now` (their worker is presumed dead: the execution is in doubt). Each claimed one
    /// becomes `running` with `attempts + 1` and `lease_until = now + lease`; a concurrent claimer
    /// of the same row loses (fenced by `attempts`). Oldest first.
    async fn claim_executions(
        &self,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: u32,
    ) -> StoreResult<Vec<aluskort_core::response::Execution>>;
    /// Stores feedback; a `feedback_id` already present is `Conflict`.
    async fn insert_feedback(&self, feedback: &Feedback) -> StoreResult<()>;
    /// Feedback on one investigation, oldest first.
    async fn feedback_for(&self, investigation_id: &str) -> StoreResult<Vec<Feedback>>;
    /// Feedback of `tenant` since `since`, oldest first (FP pattern proposals look back over it).
    async fn feedback_since(&self, tenant: &str, since: DateTime<Utc>) -> StoreResult<Vec<Feedback>>;
}
