//! The audit record (REQUIREMENTS §3.8), as data. Hashing and chaining live in `aluskort-audit`;
//! this type is here so stores can persist it without depending on the chain logic.

use serde::{Deserialize, Serialize};

/// Hash of the genesis record's predecessor: 64 zeros.
pub const GENESIS_PREVIOUS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";
pub const RECORD_VERSION: &str = "1.0";

/// One audit record. Every field except `record_hash` is covered by the hash; the field set is
/// fixed here and serialised with sorted keys, so the hash is reproducible from what a store returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// UUIDv7.
    pub audit_id: String,
    pub tenant_id: String,
    /// Per tenant, gap-free from 0 (genesis).
    pub sequence_number: u64,
    pub previous_hash: String,
    /// When the event happened, `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    pub timestamp: String,
    /// When the audit log accepted it, same format.
    pub ingested_at: String,
    pub event_type: String,
    /// decision / action / approval / security / system.
    pub event_category: String,
    /// info / warning / critical.
    pub severity: String,
    /// agent / human / system / scheduler.
    pub actor_type: String,
    pub actor_id: String,
    pub actor_permissions: Vec<String>,
    pub investigation_id: Option<String>,
    pub alert_id: Option<String>,
    pub entity_ids: Vec<String>,
    pub context: serde_json::Value,
    pub decision: serde_json::Value,
    pub outcome: serde_json::Value,
    pub record_hash: String,
    pub record_version: String,
}
