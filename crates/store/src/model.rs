//! Rows the stores keep besides the domain types.

use aluskort_core::audit::AuditRecord;
use aluskort_core::{InvestigationState, TenantId};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// Result of an idempotent insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    Inserted,
    Duplicate,
}

/// Lifecycle of a raw inbox record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawStatus {
    Pending,
    Done,
    DeadLettered,
}

impl RawStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            RawStatus::Pending => "pending",
            RawStatus::Done => "done",
            RawStatus::DeadLettered => "dead_lettered",
        }
    }
}

/// A received record, before parsing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawRecord {
    pub ingest_id: String,
    pub origin: String,
    pub received_at: DateTime<Utc>,
    pub payload: serde_json::Value,
    /// Set by a connector configured with a tenant: overrides the tenant the source names.
    pub tenant: Option<TenantId>,
}

/// A record the pipeline could not process, with the reason (`alerts.raw.dlq` `{original, error}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub id: String,
    pub topic: String,
    pub origin: String,
    pub error: String,
    pub original: serde_json::Value,
    pub recorded_at: DateTime<Utc>,
}

/// Query over investigations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InvestigationFilter {
    pub tenant: Option<TenantId>,
    pub state: Option<InvestigationState>,
    /// Updated at or after.
    pub since: Option<DateTime<Utc>>,
    /// Updated before.
    pub until: Option<DateTime<Utc>>,
    /// At most this many (default 100, capped at 1000).
    pub limit: Option<u32>,
    /// Only those listed after this one (newest first): the last of the previous page.
    pub after: Option<PageKey>,
}

/// Where a page of a listing ended (keyset pagination): the sort time, tenant and id of its last
/// row. The next page holds the rows after it in the listing's order, so pages neither repeat nor
/// skip rows when new ones arrive between requests. `tenant` breaks ties only where ids are not
/// unique across tenants (alerts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageKey {
    pub time: DateTime<Utc>,
    pub tenant: String,
    pub id: String,
}

/// Query over incidents (merged incidents are left out: their survivor is listed), most recently
/// active first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IncidentFilter {
    pub tenant: Option<TenantId>,
    /// Last seen at or after.
    pub since: Option<DateTime<Utc>>,
    /// First seen before.
    pub until: Option<DateTime<Utc>>,
    /// At most this many (default 100, capped at 1000).
    pub limit: Option<u32>,
    pub after: Option<PageKey>,
}

/// Query over stored alerts, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertFilter {
    pub tenant: Option<TenantId>,
    /// The alert's own time at or after.
    pub since: Option<DateTime<Utc>>,
    /// The alert's own time before.
    pub until: Option<DateTime<Utc>>,
    /// `informational`, `low`, `medium`, `high` or `critical`.
    pub severity: Option<String>,
    /// The source system (`sentinel`, `elastic`, `splunk`, `webhook`, ...).
    pub source: Option<String>,
    /// At most this many (default 100, capped at 1000).
    pub limit: Option<u32>,
    pub after: Option<PageKey>,
}

/// One past incident as incident memory keeps it (NFR-CMP-002): `body` is the whole record (the
/// knowledge crate's `PastIncident`); the columns are what months, tenants and lookups need.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PastIncidentRow {
    pub tenant: String,
    pub id: String,
    pub closed_at: DateTime<Utc>,
    pub incident_id: Option<String>,
    pub body: serde_json::Value,
}

/// Query over one tenant's audit records, in chain order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub tenant: String,
    pub investigation_id: Option<String>,
    /// Event time at or after.
    pub since: Option<DateTime<Utc>>,
    /// Event time before.
    pub until: Option<DateTime<Utc>>,
    /// Only records with a higher sequence number (the last of the previous page).
    pub after_sequence: Option<u64>,
    /// At most this many (capped at 1000).
    pub limit: u32,
}

/// A listing's page size: `limit` (default 100) within 1..=1000.
pub fn page_limit(limit: Option<u32>) -> i64 {
    i64::from(limit.unwrap_or(100).clamp(1, 1000))
}

/// Times are stored as fixed-width RFC 3339 UTC text with microseconds, so that text order is
/// time order in both databases and a value reads back exactly as written.
pub fn time_text(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub fn parse_time_text(text: &str) -> Result<DateTime<Utc>, crate::StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|error| crate::StoreError::invalid(format!("stored time {text:?}: {error}")))
}

/// One model call, as the gateway accounts for it (FR-ING-007 quotas, spend limits, NFR-OBS-002).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LlmCall {
    /// Unique per call; recording the same call twice stores it once.
    pub call_id: String,
    pub called_at: DateTime<Utc>,
    pub tenant_id: String,
    pub task: String,
    /// `tier_0`, `tier_1`, `tier_1_plus`, `tier_2`.
    pub tier: String,
    pub provider: String,
    pub model: String,
    /// `ok`, or the failure kind (`throttled`, `server`, `schema`, ...).
    pub outcome: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    /// Cost in millionths of a US dollar.
    pub cost_micros: u64,
    pub latency_ms: u64,
}

/// Model calls summed over one (day, tier, task).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LlmUsageRow {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub tier: String,
    pub task: String,
    pub calls: u64,
    pub failures: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub cost_micros: u64,
    pub latency_ms: u64,
}

/// One threat-intelligence indicator (FR-ENR-004).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TiIndicator {
    /// `""` for a feed that applies to every tenant.
    pub tenant_id: String,
    /// `{type}:{canonical value}`, as `Ioc`'s display writes it (`ipv4:203.0.113.7`).
    pub indicator: String,
    /// 0..=100.
    pub confidence: u8,
    /// Feed or report name.
    pub source: String,
    pub description: String,
    pub expires_at: DateTime<Utc>,
}

/// A raw-inbox status change.
#[derive(Debug, Clone, PartialEq)]
pub struct RawMark {
    pub ingest_id: String,
    pub status: RawStatus,
    pub error: Option<String>,
}

/// The saved versions of one investigation in a [`WorkBatch`].
#[derive(Debug, Clone, PartialEq)]
pub struct InvestigationWrite {
    /// The version the stored investigation must be at; 0 when this write creates it.
    pub expected_version: u64,
    /// Consecutive versions from `expected_version + 1`, oldest first; the last becomes current.
    /// Each carries its own `version`.
    pub versions: Vec<aluskort_core::GraphState>,
    /// When the stored version has moved on (an analyst changed it meanwhile), skip this write
    /// instead of failing the batch: their version wins.
    pub skip_on_conflict: bool,
}

/// Everything one or more investigations changed, committed atomically by
/// [`crate::CaseStore::commit_work`] together with their audit records: after a crash either all
/// of it is stored or none, so a replay of the pending raw records redoes exactly what was lost.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkBatch {
    /// Inserted unless present (same tenant and alert id).
    pub alerts: Vec<aluskort_core::CanonicalAlert>,
    pub investigations: Vec<InvestigationWrite>,
    /// Upserted with their entity keys; each incident id at most once, in its final form, at
    /// its new `version` (stored only over `version - 1`, else `Conflict`).
    pub incidents: Vec<aluskort_core::Incident>,
    /// The entity keys this batch grouped alerts on, each at its new epoch (stored only over
    /// `epoch - 1`, else `Conflict`): see [`GroupingClaim`].
    pub grouping_claims: Vec<GroupingClaim>,
    pub raw: Vec<RawMark>,
    /// Approvals created (`expected_version` 0) or updated (fenced by `expected_version`).
    pub approvals: Vec<ApprovalWrite>,
    /// Executions queued: a key already present is left as it is (a redelivery queues nothing new).
    pub executions: Vec<aluskort_core::response::Execution>,
    /// Executions a worker finished or released, fenced by the `attempts` of its claim.
    pub execution_updates: Vec<aluskort_core::response::Execution>,
    /// The stored bodies of `investigations`' versions, if made ahead ([`WorkBatch::encode_versions`]).
    pub encoded: EncodedVersions,
}

/// The stored bodies of a batch's investigation versions (the first whole, the rest as patches)
/// and each write's current body, made before the commit: encoding is the larger part of
/// planning a unit, and a stage can do it while the batch before is still being written. A body
/// is used only for the write it was made from (same investigation, same versions); anything else
/// is encoded again as the unit is planned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EncodedVersions {
    writes: Vec<EncodedWrite>,
}

#[derive(Debug, Clone, PartialEq)]
struct EncodedWrite {
    investigation_id: aluskort_core::InvestigationId,
    versions: Vec<u64>,
    bodies: Vec<String>,
    current: String,
}

impl EncodedVersions {
    /// The bodies and current body of `write`, the `index`-th write of the batch, if encoded from it.
    pub(crate) fn of(&self, index: usize, write: &InvestigationWrite) -> Option<(&[String], &str)> {
        let encoded = self.writes.get(index)?;
        let same = write.versions.last().is_some_and(|last| last.investigation_id == encoded.investigation_id)
            && write.versions.iter().map(|state| state.version).eq(encoded.versions.iter().copied());
        same.then_some((encoded.bodies.as_slice(), encoded.current.as_str()))
    }
}

impl WorkBatch {
    /// Encodes the stored bodies of every investigation write's versions now, so that committing
    /// the batch does not ([`EncodedVersions`]).
    pub fn encode_versions(&mut self) -> crate::StoreResult<()> {
        self.encode_versions_ahead(self.investigations.len())
    }

    /// [`WorkBatch::encode_versions`] for the first `count` investigation writes only; the
    /// commit encodes the others as it plans the unit. Lets a stage hand part of the encoding
    /// to the commit when the commit is the one waiting.
    pub fn encode_versions_ahead(&mut self, count: usize) -> crate::StoreResult<()> {
        let mut writes = Vec::with_capacity(count.min(self.investigations.len()));
        for write in self.investigations.iter().take(count) {
            let Some(last) = write.versions.last() else { break };
            let (bodies, current) = crate::patch::encode_states(&write.versions)?;
            writes.push(EncodedWrite {
                investigation_id: last.investigation_id,
                versions: write.versions.iter().map(|state| state.version).collect(),
                bodies,
                current,
            });
        }
        self.encoded = EncodedVersions { writes };
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty()
            && self.investigations.is_empty()
            && self.incidents.is_empty()
            && self.grouping_claims.is_empty()
            && self.raw.is_empty()
            && self.approvals.is_empty()
            && self.executions.is_empty()
            && self.execution_updates.is_empty()
    }
}

/// A batch's claim on an entity key it grouped alerts on. Its `epoch` is one more than the epoch
/// the batch read before reading its grouping candidates ([`crate::CaseStore::grouping_epochs`]);
/// it lands only if nobody claimed the key since. So of two writers (investigate replicas)
/// grouping alerts that share a key at the same time, the later fails with `Conflict` and is
/// grouped again over the other's incidents, instead of opening a second incident for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupingClaim {
    pub tenant_id: TenantId,
    pub entity_key: String,
    pub epoch: u64,
}

/// An approval to store: created when `expected_version` is 0, else replaced only if the stored
/// one is still at `expected_version` (else `Conflict`). `approval.version` is the new version.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalWrite {
    pub expected_version: u64,
    pub approval: aluskort_core::response::Approval,
}

/// Which approvals to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApprovalFilter {
    pub tenant: Option<String>,
    pub status: Option<aluskort_core::response::ApprovalStatus>,
    pub investigation_id: Option<String>,
    /// Only those whose deadline is at or before this time.
    pub deadline_before: Option<DateTime<Utc>>,
    pub limit: u32,
    /// Only those listed after this one (soonest deadline first; `time` is the deadline).
    pub after: Option<PageKey>,
}

/// Analyst feedback on one investigation (FR-CSM-004).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feedback {
    pub feedback_id: String,
    pub tenant_id: String,
    pub investigation_id: String,
    pub actor: String,
    /// Whether the verdict was right.
    pub correct: bool,
    /// 1..=5.
    pub rating: u8,
    #[serde(default)]
    pub comment: String,
    /// The classification the analyst says is right (when `correct` is false).
    #[serde(default)]
    pub corrected_classification: Option<aluskort_core::Classification>,
    pub created_at: DateTime<Utc>,
}

/// An audit record's JSON columns as stored (`actor_permissions`, `entity_ids`, `context`,
/// `decision`, `outcome`), encoded where the record was made
/// ([`crate::CaseStore::commit_work_encoded`]) so the commit does not encode them again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditTexts {
    pub actor_permissions: String,
    pub entity_ids: String,
    pub context: String,
    pub decision: String,
    pub outcome: String,
}

impl AuditTexts {
    /// `record`'s JSON columns, encoded as they are (the chain's writer stores its canonical form).
    pub fn of(record: &AuditRecord) -> crate::StoreResult<Self> {
        Ok(AuditTexts {
            actor_permissions: serde_json::to_string(&record.actor_permissions)?,
            entity_ids: serde_json::to_string(&record.entity_ids)?,
            context: record.context.to_string(),
            decision: record.decision.to_string(),
            outcome: record.outcome.to_string(),
        })
    }
}

/// What [`crate::CaseStore::commit_work`] did not write.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkReport {
    /// Investigations whose write was skipped on a version conflict.
    pub skipped: Vec<aluskort_core::InvestigationId>,
}

/// Match score an approved false-positive pattern must exceed by default (FR-RSN-006: strictly
/// greater than 0.90).
pub const DEFAULT_FP_CONFIDENCE_THRESHOLD: f64 = 0.90;

fn default_fp_confidence_threshold() -> f64 {
    DEFAULT_FP_CONFIDENCE_THRESHOLD
}

/// Lifecycle of a false-positive pattern (FR-RAG-005, NFR-CMP-003, REQUIREMENTS "FP governance").
/// Only [`FpStatus::Approved`] and [`FpStatus::Active`] patterns are matched against alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FpStatus {
    PendingReview,
    Approved,
    Active,
    /// Evaluated and logged, never acted on.
    Shadow,
    Deprecated,
    Expired,
    Revoked,
}

impl FpStatus {
    pub const ALL: [FpStatus; 7] = [
        FpStatus::PendingReview,
        FpStatus::Approved,
        FpStatus::Active,
        FpStatus::Shadow,
        FpStatus::Deprecated,
        FpStatus::Expired,
        FpStatus::Revoked,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            FpStatus::PendingReview => "pending_review",
            FpStatus::Approved => "approved",
            FpStatus::Active => "active",
            FpStatus::Shadow => "shadow",
            FpStatus::Deprecated => "deprecated",
            FpStatus::Expired => "expired",
            FpStatus::Revoked => "revoked",
        }
    }

    /// The status spelled as [`FpStatus::as_str`] writes it.
    pub fn parse(text: &str) -> Option<FpStatus> {
        FpStatus::ALL.into_iter().find(|status| status.as_str() == text)
    }

    /// Whether a pattern in this status may close alerts (FR-RAG-005: approved or active only).
    pub const fn is_matchable(self) -> bool {
        matches!(self, FpStatus::Approved | FpStatus::Active)
    }
}

/// One entity condition of a false-positive pattern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityPattern {
    /// `host`, `account`, `ip`, `file_hash`, `url`, `domain`, `mailbox`, `process`, ...
    pub entity_type: String,
    /// A CIDR for `ip`, else a regular expression matched against the entity's value.
    pub pattern: String,
}

/// An analyst-approved false-positive pattern (FR-RAG-005). An alert it matches with a score above
/// `confidence_threshold` is closed without a model call (FR-RSN-006).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FpPattern {
    pub pattern_id: String,
    /// `None`: the pattern applies to every tenant.
    pub tenant: Option<String>,
    pub name: String,
    pub alert_name_regex: Option<String>,
    pub entity_patterns: Vec<EntityPattern>,
    /// In (0, 1]; the match score must be strictly greater.
    #[serde(default = "default_fp_confidence_threshold")]
    pub confidence_threshold: f64,
    pub status: FpStatus,
    /// Who approved it (NFR-CMP-003).
    pub approved_by: Vec<String>,
    pub approval_date: Option<DateTime<Utc>>,
    /// `None`: never expires.
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub reason: String,
}

impl FpPattern {
    /// Refuses what the store must not hold; errors name the field.
    pub fn validate(&self) -> Result<(), crate::StoreError> {
        let id = &self.pattern_id;
        if id.trim().is_empty() {
            return Err(crate::StoreError::invalid("fp pattern: pattern_id is empty"));
        }
        if self.tenant.as_deref().is_some_and(|tenant| tenant.trim().is_empty()) {
            return Err(crate::StoreError::invalid(format!("fp pattern {id:?}: tenant is empty (use none for every tenant)")));
        }
        let threshold = self.confidence_threshold;
        if threshold.is_nan() || threshold <= 0.0 || threshold > 1.0 {
            return Err(crate::StoreError::invalid(format!("fp pattern {id:?}: confidence_threshold {threshold} is not in (0, 1]")));
        }
        for (index, entity) in self.entity_patterns.iter().enumerate() {
            if entity.entity_type.trim().is_empty() || entity.pattern.is_empty() {
                return Err(crate::StoreError::invalid(format!(
                    "fp pattern {id:?}: entity_patterns[{index}] needs an entity_type and a pattern"
                )));
            }
        }
        Ok(())
    }
}

/// The stored spelling of a UEBA account key: lower-cased, so lookups ignore case.
pub fn user_key(user: &str) -> String {
    user.to_lowercase()
}

/// A UEBA risk row for one account (FR-ENR-005).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRisk {
    pub tenant: String,
    /// Account key (`alice@contoso.com`, `contoso\alice`), lower-cased by the store ([`user_key`]).
    pub user: String,
    /// 0..=10.
    pub priority: f64,
    /// When the UEBA source computed it; freshness is judged from this.
    pub observed_at: DateTime<Utc>,
    /// The source's row, kept for the analyst.
    pub detail: serde_json::Value,
}

impl UserRisk {
    /// Refuses what the store must not hold; errors name the field.
    pub fn validate(&self) -> Result<(), crate::StoreError> {
        if self.tenant.trim().is_empty() {
            return Err(crate::StoreError::invalid(format!("user risk {:?}: tenant is empty", self.user)));
        }
        if self.user.trim().is_empty() {
            return Err(crate::StoreError::invalid(format!("user risk of tenant {:?}: user is empty", self.tenant)));
        }
        if !(0.0..=10.0).contains(&self.priority) {
            return Err(crate::StoreError::invalid(format!("user risk {:?}: priority {} is not in 0..=10", self.user, self.priority)));
        }
        Ok(())
    }
}

/// A CTEM exposure finding on one asset (FR-ENR-006).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exposure {
    pub tenant: String,
    pub exposure_id: String,
    /// Compared case-insensitively.
    pub asset_id: String,
    /// Compared exactly: an exposure counts only for the asset in this zone.
    pub asset_zone: String,
    /// CTEM remediation status (`Open`, `Assigned`, `InProgress`, `FixDeployed`, `Verified`, `Closed`).
    pub status: String,
    pub ctem_score: f64,
    pub title: String,
    /// When the CTEM source last updated it; the caller treats data older than 24 h as stale.
    pub updated_at: DateTime<Utc>,
}

impl Exposure {
    /// Refuses what the store must not hold; errors name the field.
    pub fn validate(&self) -> Result<(), crate::StoreError> {
        let id = &self.exposure_id;
        if id.trim().is_empty() {
            return Err(crate::StoreError::invalid(format!("exposure of tenant {:?}: exposure_id is empty", self.tenant)));
        }
        if self.tenant.trim().is_empty() {
            return Err(crate::StoreError::invalid(format!("exposure {id:?}: tenant is empty")));
        }
        if self.asset_id.trim().is_empty() {
            return Err(crate::StoreError::invalid(format!("exposure {id:?}: asset_id is empty")));
        }
        if !self.ctem_score.is_finite() {
            return Err(crate::StoreError::invalid(format!("exposure {id:?}: ctem_score {} is not a finite number", self.ctem_score)));
        }
        Ok(())
    }
}
