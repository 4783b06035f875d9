//! The audit chain: one writer per process links records; verification recomputes every hash
//! and link from what the store returns and names the first broken record.

use std::collections::HashMap;
use std::sync::Arc;

use aluskort_core::audit::{AuditRecord, GENESIS_PREVIOUS_HASH, RECORD_VERSION};
use aluskort_store::{AuditStore, AuditTexts, StoreError, StoreErrorKind};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::hash::{canonical_texts, finish_hash, prefix_hash, record_hash};
use crate::taxonomy::event_category;

/// Attempts to append when another writer takes the same sequence number first.
const MAX_APPEND_ATTEMPTS: u32 = 5;
/// Records read per page while verifying.
const VERIFY_PAGE: u32 = 1000;

/// What a stage reports; the log turns it into a chained record.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub tenant_id: String,
    pub event_type: &'static str,
    /// info / warning / critical.
    pub severity: &'static str,
    /// agent / human / system / scheduler.
    pub actor_type: &'static str,
    pub actor_id: String,
    pub actor_permissions: Vec<String>,
    pub investigation_id: Option<String>,
    pub alert_id: Option<String>,
    pub entity_ids: Vec<String>,
    pub context: Value,
    pub decision: Value,
    pub outcome: Value,
    pub timestamp: DateTime<Utc>,
}

impl AuditEvent {
    /// An agent's event with empty context, decision and outcome.
    pub fn agent(tenant_id: &str, event_type: &'static str, actor_id: &str, timestamp: DateTime<Utc>) -> Self {
        AuditEvent {
            tenant_id: tenant_id.to_owned(),
            event_type,
            severity: "info",
            actor_type: "agent",
            actor_id: actor_id.to_owned(),
            actor_permissions: Vec::new(),
            investigation_id: None,
            alert_id: None,
            entity_ids: Vec::new(),
            context: json!({}),
            decision: json!({}),
            outcome: json!({}),
            timestamp,
        }
    }
}

/// Events made into their records ahead of their place in a chain: every field set but the
/// chain's own (sequence number, previous hash, record hash), and the fields that come before
/// those in the hash's canonical order already hashed. Preparing is most of the cost of sealing a
/// record, and needs no lock: a stage prepares its records while the batch before it is still
/// being written, and [`AuditLog::append_with`] only links them.
/// Their JSON columns are encoded once, in canonical form, for both the hash and the store.
#[derive(Debug, Default)]
pub struct PreparedRecords {
    records: LinkedRecords,
    /// Per record: the hash state after its fields before the chain's, and its event's time.
    hashed: Vec<(sha2::Sha256, DateTime<Utc>)>,
}

/// Records linked into their chains, with their JSON columns as the store writes them
/// (`texts[i]` of `records[i]`): what [`AuditLog::append_with`] lends its `write`.
#[derive(Debug, Default, Clone)]
pub struct LinkedRecords {
    pub records: Vec<AuditRecord>,
    pub texts: Vec<AuditTexts>,
}

impl LinkedRecords {
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

impl PreparedRecords {
    /// `events` made into records; `ingested_at` is now.
    pub fn prepare(events: Vec<AuditEvent>) -> Result<Self, AuditError> {
        let mut prepared = PreparedRecords {
            records: LinkedRecords { records: Vec::with_capacity(events.len()), texts: Vec::with_capacity(events.len()) },
            hashed: Vec::with_capacity(events.len()),
        };
        for event in events {
            let category = event.category()?;
            let (record, texts, prefix, at) = event.prepare_as(category.as_str());
            prepared.records.records.push(record);
            prepared.records.texts.push(texts);
            prepared.hashed.push((prefix, at));
        }
        Ok(prepared)
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

impl AuditEvent {
    /// The taxonomy category of this event's type; an unknown type is refused.
    fn category(&self) -> Result<crate::taxonomy::EventCategory, AuditError> {
        event_category(self.event_type).ok_or_else(|| AuditError::UnknownEventType(self.event_type.to_owned()))
    }

    fn prepare_as(self, category: &str) -> (AuditRecord, AuditTexts, sha2::Sha256, DateTime<Utc>) {
        let record = AuditRecord {
            audit_id: uuid::Uuid::now_v7().to_string(),
            tenant_id: self.tenant_id,
            sequence_number: 0,
            previous_hash: String::new(),
            timestamp: audit_time(self.timestamp),
            ingested_at: audit_time(Utc::now()),
            event_type: self.event_type.to_owned(),
            event_category: category.to_owned(),
            severity: self.severity.to_owned(),
            actor_type: self.actor_type.to_owned(),
            actor_id: self.actor_id,
            actor_permissions: self.actor_permissions,
            investigation_id: self.investigation_id,
            alert_id: self.alert_id,
            entity_ids: self.entity_ids,
            context: self.context,
            decision: self.decision,
            outcome: self.outcome,
            record_hash: String::new(),
            record_version: RECORD_VERSION.to_owned(),
        };
        let texts = canonical_texts(&record);
        let prefix = prefix_hash(&record, &texts);
        (record, texts, prefix, self.timestamp)
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` (§3.8).
fn audit_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The single writer of the chain in this process. Appends are serialised by a mutex; a
/// concurrent writer elsewhere is detected by the store's uniqueness on (tenant, sequence), after
/// which the head is reloaded and the append retried.
pub struct AuditLog {
    store: Arc<dyn AuditStore>,
    /// Chain heads this writer knows, per tenant; also the write lock. A head is trusted only until
    /// an append conflicts (another writer advanced the chain), then it is reloaded from the store.
    heads: Mutex<HashMap<String, (u64, String)>>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("event type {0:?} is not in the audit taxonomy")]
    UnknownEventType(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("gave up appending after {MAX_APPEND_ATTEMPTS} sequence conflicts")]
    Contention,
}

impl AuditLog {
    pub fn new(store: Arc<dyn AuditStore>) -> Self {
        AuditLog { store, heads: Mutex::new(HashMap::new()) }
    }

    /// Appends `event`, writing the tenant's genesis record first if the chain is empty.
    pub async fn append(&self, event: AuditEvent) -> Result<AuditRecord, AuditError> {
        let category = event.category()?;
        let mut heads = self.heads.lock().await;
        for _ in 0..MAX_APPEND_ATTEMPTS {
            let head = match heads.get(&event.tenant_id) {
                Some(head) => Some(head.clone()),
                None => self.store.audit_head(&event.tenant_id).await?,
            };
            let (sequence, previous_hash) = match head {
                Some((sequence, hash)) => (sequence + 1, hash),
                None => match self.write_genesis(&event.tenant_id, event.timestamp).await {
                    Ok(genesis) => (1, genesis.record_hash),
                    Err(AuditError::Store(error)) if error.kind == StoreErrorKind::Conflict => {
                        heads.remove(&event.tenant_id);
                        continue;
                    }
                    Err(error) => return Err(error),
                },
            };
            let record = seal(&event, category.as_str(), sequence, previous_hash);
            match self.store.append_audit(&record).await {
                Ok(()) => {
                    heads.insert(event.tenant_id.clone(), (record.sequence_number, record.record_hash.clone()));
                    return Ok(record);
                }
                Err(error) if error.kind == StoreErrorKind::Conflict => {
                    heads.remove(&event.tenant_id);
                    continue;
                }
                Err(error) => {
                    // The append may or may not have landed: reload the head next time.
                    heads.remove(&event.tenant_id);
                    return Err(error.into());
                }
            }
        }
        Err(AuditError::Contention)
    }

    /// Links `records` into their tenants' chains (genesis records first where a chain is empty)
    /// and hands them to `write`, which stores them in the same transaction as the state they
    /// describe ([`aluskort_store::CaseStore::commit_work`]). Heads advance only when `write`
    /// succeeds. A `Conflict` from `write` after another writer advanced one of these chains
    /// relinks and retries; any other `Conflict` (a stale investigation version) is returned.
    /// Linking only hashes the chain's own fields ([`PreparedRecords`]): the time spent under the
    /// chain's lock does not grow with the size of the records.
    pub async fn append_with<T, F, Fut>(&self, records: PreparedRecords, mut write: F) -> Result<T, AuditError>
    where
        F: FnMut(Arc<LinkedRecords>) -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        let PreparedRecords { mut records, hashed } = records;
        let mut heads = self.heads.lock().await;
        for _ in 0..MAX_APPEND_ATTEMPTS {
            // Per tenant: the head this attempt started from, and the head after its records.
            let mut base: HashMap<String, Option<(u64, String)>> = HashMap::new();
            let mut next: HashMap<String, (u64, String)> = HashMap::new();
            let mut geneses = Vec::new();
            for (record, (prefix, at)) in records.records.iter_mut().zip(&hashed) {
                let head = match next.get(&record.tenant_id) {
                    Some(head) => Some(head.clone()),
                    None => {
                        let known = match heads.get(&record.tenant_id) {
                            Some(head) => Some(head.clone()),
                            None => self.store.audit_head(&record.tenant_id).await?,
                        };
                        base.insert(record.tenant_id.clone(), known.clone());
                        known
                    }
                };
                let (sequence, previous_hash) = match head {
                    Some((sequence, hash)) => (sequence + 1, hash),
                    None => {
                        let genesis = genesis_record(&record.tenant_id, *at);
                        let hash = genesis.record_hash.clone();
                        geneses.push(genesis);
                        (1, hash)
                    }
                };
                record.sequence_number = sequence;
                record.previous_hash = previous_hash;
                record.record_hash = finish_hash(prefix.clone(), record);
                next.insert(record.tenant_id.clone(), (sequence, record.record_hash.clone()));
            }
            // Genesis records (a tenant's first batch only) go first; each chain keeps its order.
            // The records are lent to `write` and taken back, never copied.
            let added = geneses.len();
            if added > 0 {
                let texts: Vec<AuditTexts> = geneses.iter().map(canonical_texts).collect();
                records.records.splice(0..0, geneses);
                records.texts.splice(0..0, texts);
            }
            let shared = Arc::new(records);
            let result = write(Arc::clone(&shared)).await;
            records = Arc::try_unwrap(shared).unwrap_or_else(|shared| (*shared).clone());
            records.records.drain(..added);
            records.texts.drain(..added);
            match result {
                Ok(value) => {
                    heads.extend(next);
                    return Ok(value);
                }
                Err(error) if error.kind == StoreErrorKind::Conflict => {
                    let mut moved = false;
                    for (tenant, started) in &base {
                        heads.remove(tenant);
                        moved |= self.store.audit_head(tenant).await? != *started;
                    }
                    if !moved {
                        return Err(error.into());
                    }
                }
                Err(error) => {
                    for tenant in base.keys() {
                        heads.remove(tenant);
                    }
                    return Err(error.into());
                }
            }
        }
        Err(AuditError::Contention)
    }

    async fn write_genesis(&self, tenant_id: &str, at: DateTime<Utc>) -> Result<AuditRecord, AuditError> {
        let genesis = genesis_record(tenant_id, at);
        self.store.append_audit(&genesis).await?;
        Ok(genesis)
    }
}

/// Record 0 of `tenant_id`'s chain.
fn genesis_record(tenant_id: &str, at: DateTime<Utc>) -> AuditRecord {
    let mut event = AuditEvent::agent(tenant_id, "system.genesis", "audit-service", at);
    event.actor_type = "system";
    seal(&event, "system", 0, GENESIS_PREVIOUS_HASH.to_owned())
}

/// The record for `event` at `sequence` after `previous_hash`, with its hash computed.
fn seal(event: &AuditEvent, category: &str, sequence: u64, previous_hash: String) -> AuditRecord {
    let (mut record, _, prefix, _) = event.clone().prepare_as(category);
    record.sequence_number = sequence;
    record.previous_hash = previous_hash;
    record.record_hash = finish_hash(prefix, &record);
    record
}

/// The first record that does not verify, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainBreak {
    pub tenant_id: String,
    pub sequence_number: u64,
    pub audit_id: String,
    pub reason: String,
}

impl std::fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tenant {} record {} ({}): {}", self.tenant_id, self.sequence_number, self.audit_id, self.reason)
    }
}

/// Verifies consecutive records of one tenant, continuing from `expected` = (next sequence,
/// previous record hash). Returns the new `expected` or the first break.
pub fn verify_records(records: &[AuditRecord], mut expected: (u64, String)) -> Result<(u64, String), ChainBreak> {
    for record in records {
        let broken = |reason: String| ChainBreak {
            tenant_id: record.tenant_id.clone(),
            sequence_number: record.sequence_number,
            audit_id: record.audit_id.clone(),
            reason,
        };
        if record.sequence_number != expected.0 {
            return Err(broken(format!("sequence gap: expected {}, found {}", expected.0, record.sequence_number)));
        }
        if record.previous_hash != expected.1 {
            return Err(broken(format!("previous_hash {} does not match the prior record's hash {}", record.previous_hash, expected.1)));
        }
        if record.sequence_number == 0 && record.event_type != "system.genesis" {
            return Err(broken(format!("record 0 must be system.genesis, found {}", record.event_type)));
        }
        let recomputed = record_hash(record);
        if recomputed != record.record_hash {
            return Err(broken(format!("record_hash {} does not match its content (recomputed {recomputed})", record.record_hash)));
        }
        expected = (record.sequence_number + 1, record.record_hash.clone());
    }
    Ok(expected)
}

/// Result of verifying every tenant's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub tenants: usize,
    pub records: u64,
    pub first_break: Option<ChainBreak>,
}

/// Verifies every tenant's chain in the store, page by page.
pub async fn verify_store(store: &dyn AuditStore) -> Result<VerifyReport, StoreError> {
    let tenants = store.audit_tenants().await?;
    let mut report = VerifyReport { tenants: tenants.len(), records: 0, first_break: None };
    for tenant in &tenants {
        let (records, first_break) = verify_tenant(store, tenant).await?;
        report.records += records;
        if first_break.is_some() {
            report.first_break = first_break;
            return Ok(report);
        }
    }
    Ok(report)
}

/// Verifies `tenant`'s chain from its genesis record: the records that verified, and the first
/// that did not, if any.
pub async fn verify_tenant(store: &dyn AuditStore, tenant: &str) -> Result<(u64, Option<ChainBreak>), StoreError> {
    let mut expected = (0_u64, GENESIS_PREVIOUS_HASH.to_owned());
    let mut records = 0_u64;
    loop {
        let page = store.audit_records(tenant, expected.0, VERIFY_PAGE).await?;
        if page.is_empty() {
            break;
        }
        match verify_records(&page, expected) {
            Ok(next) => {
                records += page.len() as u64;
                expected = next;
            }
            Err(chain_break) => {
                records += chain_break.sequence_number.saturating_sub(page[0].sequence_number);
                return Ok((records, Some(chain_break)));
            }
        }
    }
    // A gap at the start (records exist but none at 0) shows up as an empty first page.
    if expected.0 == 0
        && store.audit_records(tenant, 0, 1).await?.is_empty()
        && let Some(head) = store.audit_head(tenant).await?
    {
        let chain_break = ChainBreak {
            tenant_id: tenant.to_owned(),
            sequence_number: 0,
            audit_id: String::new(),
            reason: format!("genesis record missing; chain head is at {}", head.0),
        };
        return Ok((records, Some(chain_break)));
    }
    // The head is moved in the same transaction as the records it covers: a head past the last
    // record means newest records were removed (a truncated tail leaves no broken link).
    if let Some((sequence, hash)) = store.audit_head(tenant).await?
        && expected.0 > 0
        && (sequence + 1 != expected.0 || hash != expected.1)
    {
        let chain_break = ChainBreak {
            tenant_id: tenant.to_owned(),
            sequence_number: expected.0,
            audit_id: String::new(),
            reason: format!("the chain head is at {sequence} ({hash}) but the records end at {}: records are missing", expected.0 - 1),
        };
        return Ok((records, Some(chain_break)));
    }
    Ok((records, None))
}

#[cfg(test)]
mod tests;
