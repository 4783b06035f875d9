//! Hash-chained, append-only audit log (REQUIREMENTS §3.8, NFR-CMP-001, FR-CSM-003).
//!
//! # Layout
//! - [`taxonomy`]: the event types and their categories; unknown types are refused.
//! - [`hash`]: canonical JSON and the record hash over the explicit field set.
//! - [`chain`]: [`AuditLog`], the single writer that links records, and [`verify_records`].
//! - [`evidence`]: evidence packages of one investigation and their independent check.
//!
//! Record format: every field of [`AuditRecord`] except `record_hash` is hashed, as canonical
//! JSON (keys sorted at every level, no whitespace, UTF-8): `record_hash = sha256_hex(canonical)`.
//! The chain is per tenant: `sequence_number` runs 0, 1, 2, ... without gaps; record 0 is the
//! genesis (`system.genesis`, `previous_hash` = 64 zeros); every other record's `previous_hash` is
//! its predecessor's `record_hash`.

pub mod chain;
pub mod evidence;
pub mod hash;
pub mod taxonomy;

pub use aluskort_core::audit::AuditRecord;
pub use chain::{
    AuditEvent, AuditLog, ChainBreak, LinkedRecords, PreparedRecords, VerifyReport, verify_records, verify_store, verify_tenant,
};
pub use hash::{canonical_json, record_hash};
pub use taxonomy::{EventCategory, event_category};
