//! Canonical JSON and the record hash.
//!
//! The hash input is written straight into the hasher, fields in sorted order, object keys sorted
//! at every level: no intermediate `Value` tree and no string of the whole record (hashing sits
//! on the pipeline's hot path, eight records per alert).

use std::io::{self, Write};

use aluskort_core::audit::AuditRecord;
use aluskort_store::AuditTexts;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// `value` with object keys sorted at every level, serialised without whitespace.
pub fn canonical_json(value: &Value) -> String {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail, and a `Value` always serialises.
    let _ = write_canonical(&mut out, value);
    String::from_utf8(out).unwrap_or_default()
}

fn write_canonical(out: &mut impl Write, value: &Value) -> io::Result<()> {
    match value {
        // An object built with its keys in order already (as the pipeline's most frequent
        // records are) is written as it is, without collecting and sorting its entries.
        Value::Object(map) if map.keys().is_sorted() => write_entries(out, map.iter()),
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            write_entries(out, entries.into_iter())
        }
        Value::Array(items) => {
            out.write_all(b"[")?;
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.write_all(b",")?;
                }
                write_canonical(out, item)?;
            }
            out.write_all(b"]")
        }
        scalar => serde_json::to_writer(out, scalar).map_err(io::Error::other),
    }
}

/// `{"key":value,...}` of `entries`, in the order given, each value canonical.
fn write_entries<'a>(out: &mut impl Write, entries: impl Iterator<Item = (&'a String, &'a Value)>) -> io::Result<()> {
    out.write_all(b"{")?;
    for (index, (key, item)) in entries.enumerate() {
        if index > 0 {
            out.write_all(b",")?;
        }
        serde_json::to_writer(&mut *out, key)?;
        out.write_all(b":")?;
        write_canonical(out, item)?;
    }
    out.write_all(b"}")
}

/// The hashed fields of an [`AuditRecord`], in canonical (sorted) order: every field except
/// `record_hash`. A test checks this list against the record's serialised fields.
#[cfg(test)]
const HASHED_FIELDS: [&str; 19] = [
    "actor_id",
    "actor_permissions",
    "actor_type",
    "alert_id",
    "audit_id",
    "context",
    "decision",
    "entity_ids",
    "event_category",
    "event_type",
    "ingested_at",
    "investigation_id",
    "outcome",
    "previous_hash",
    "record_version",
    "sequence_number",
    "severity",
    "tenant_id",
    "timestamp",
];

/// The JSON columns of `record` in canonical form: the text its hash reads, and the text the
/// chain's writer stores ([`aluskort_store::CaseStore::commit_work_encoded`]), encoded once.
pub fn canonical_texts(record: &AuditRecord) -> AuditTexts {
    // A list of strings always serialises.
    let list = |items: &[String]| serde_json::to_string(items).unwrap_or_default();
    AuditTexts {
        actor_permissions: list(&record.actor_permissions),
        entity_ids: list(&record.entity_ids),
        context: canonical_json(&record.context),
        decision: canonical_json(&record.decision),
        outcome: canonical_json(&record.outcome),
    }
}

/// `"name":`; the names are this file's field names, which need no escaping.
fn write_name(out: &mut Vec<u8>, first: bool, name: &str) {
    out.extend_from_slice(if first { b"{\"" } else { b",\"" });
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

fn write_field(out: &mut Vec<u8>, first: bool, name: &str, value: &impl Serialize) -> io::Result<()> {
    write_name(out, first, name);
    serde_json::to_writer(out, value).map_err(io::Error::other)
}

/// A field whose value is already JSON text.
fn write_text_field(out: &mut Vec<u8>, name: &str, text: &str) -> io::Result<()> {
    write_name(out, false, name);
    out.write_all(text.as_bytes())
}

/// The hashed fields before the chain's own (`previous_hash` on), in canonical order: all of them
/// known before a record takes its place in a chain, so they can be hashed ahead of it. The JSON
/// columns are `texts` ([`canonical_texts`] of `r`).
fn write_prefix(out: &mut Vec<u8>, r: &AuditRecord, texts: &AuditTexts) -> io::Result<()> {
    // Order: HASHED_FIELDS.
    write_field(out, true, "actor_id", &r.actor_id)?;
    write_text_field(out, "actor_permissions", &texts.actor_permissions)?;
    write_field(out, false, "actor_type", &r.actor_type)?;
    write_field(out, false, "alert_id", &r.alert_id)?;
    write_field(out, false, "audit_id", &r.audit_id)?;
    write_text_field(out, "context", &texts.context)?;
    write_text_field(out, "decision", &texts.decision)?;
    write_text_field(out, "entity_ids", &texts.entity_ids)?;
    write_field(out, false, "event_category", &r.event_category)?;
    write_field(out, false, "event_type", &r.event_type)?;
    write_field(out, false, "ingested_at", &r.ingested_at)?;
    write_field(out, false, "investigation_id", &r.investigation_id)?;
    write_text_field(out, "outcome", &texts.outcome)
}

/// The rest of the hashed fields, `previous_hash` on (HASHED_FIELDS order).
fn write_suffix(out: &mut Vec<u8>, r: &AuditRecord) -> io::Result<()> {
    write_field(out, false, "previous_hash", &r.previous_hash)?;
    write_field(out, false, "record_version", &r.record_version)?;
    write_field(out, false, "sequence_number", &r.sequence_number)?;
    write_field(out, false, "severity", &r.severity)?;
    write_field(out, false, "tenant_id", &r.tenant_id)?;
    write_field(out, false, "timestamp", &r.timestamp)?;
    out.write_all(b"}")
}

/// The hash state after `record`'s fields that come before the chain's own, its JSON columns
/// being `texts` ([`canonical_texts`]): [`finish_hash`] with the chain fields set gives
/// [`record_hash`]. The input is written out first and hashed in one piece.
pub(crate) fn prefix_hash(record: &AuditRecord, texts: &AuditTexts) -> Sha256 {
    let mut input = Vec::with_capacity(
        256 + texts.actor_permissions.len() + texts.entity_ids.len() + texts.context.len() + texts.decision.len() + texts.outcome.len(),
    );
    // Writing into a Vec never fails and every field serialises (strings, numbers, options).
    let _ = write_prefix(&mut input, record, texts);
    Sha256::new_with_prefix(&input)
}

/// sha256 hex of `record` from the state [`prefix_hash`] left.
pub(crate) fn finish_hash(mut prefix: Sha256, record: &AuditRecord) -> String {
    let mut input = Vec::with_capacity(256);
    let _ = write_suffix(&mut input, record);
    prefix.update(&input);
    lower_hex(&prefix.finalize())
}

/// `bytes` as lower-case hex digits. (`hex::encode` collects them one `char` at a time through
/// an iterator: ~2,200 instructions per digest, twice per record appended.)
fn lower_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// sha256 hex of the canonical JSON of every field except `record_hash`.
pub fn record_hash(record: &AuditRecord) -> String {
    finish_hash(prefix_hash(record, &canonical_texts(record)), record)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn digests_are_written_as_the_hex_crate_writes_them() {
        for input in [&b""[..], b"abc", &[0xff; 100]] {
            let digest = Sha256::digest(input);
            assert_eq!(lower_hex(&digest), hex::encode(digest));
        }
        assert_eq!(lower_hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
    }

    #[test]
    fn canonical_json_sorts_keys_recursively_without_whitespace() {
        let value = json!({"b": 1, "a": {"d": [{"z": 1, "y": 2}], "c": "é"}});
        assert_eq!(canonical_json(&value), r#"{"a":{"c":"é","d":[{"y":2,"z":1}]},"b":1}"#);
        // An object already in order is written as it is; one inside it that is not is sorted.
        let value = json!({"a": {"z": 1, "y": {"q": null, "p": true}}, "b": "x"});
        assert_eq!(canonical_json(&value), r#"{"a":{"y":{"p":true,"q":null},"z":1},"b":"x"}"#);
    }

    /// Golden: changing the hashed field set or its serialisation must fail this test (STYLE ex. 8).
    #[test]
    fn record_hash_is_pinned() {
        let record = AuditRecord {
            audit_id: "0190f000-0000-7000-8000-000000000000".to_owned(),
            tenant_id: "default".to_owned(),
            sequence_number: 0,
            previous_hash: "0".repeat(64),
            timestamp: "2024-07-04T22:35:00.000Z".to_owned(),
            ingested_at: "2024-07-04T22:35:00.000Z".to_owned(),
            event_type: "system.genesis".to_owned(),
            event_category: "system".to_owned(),
            severity: "info".to_owned(),
            actor_type: "system".to_owned(),
            actor_id: "audit-service".to_owned(),
            actor_permissions: vec![],
            investigation_id: None,
            alert_id: None,
            entity_ids: vec![],
            context: json!({}),
            decision: json!({}),
            outcome: json!({}),
            record_hash: String::new(),
            record_version: "1.0".to_owned(),
        };
        let expected_input = r#"{"actor_id":"audit-service","actor_permissions":[],"actor_type":"system","alert_id":null,"audit_id":"0190f000-0000-7000-8000-000000000000","context":{},"decision":{},"entity_ids":[],"event_category":"system","event_type":"system.genesis","ingested_at":"2024-07-04T22:35:00.000Z","investigation_id":null,"outcome":{},"previous_hash":"0000000000000000000000000000000000000000000000000000000000000000","record_version":"1.0","sequence_number":0,"severity":"info","tenant_id":"default","timestamp":"2024-07-04T22:35:00.000Z"}"#;
        assert_eq!(record_hash(&record), hex::encode(Sha256::digest(expected_input.as_bytes())));
        // Computed independently (Python hashlib over the string above).
        assert_eq!(record_hash(&record), "088401762871f1285aa1914c4b8c937c0ff49a5ca1fc3a6a194dac4e4ada51c1");
    }

    /// Every serialised field but `record_hash` is hashed, and only those (a field added to
    /// `AuditRecord` must be added to the hash, deliberately).
    #[test]
    fn hashed_fields_are_the_record_fields() {
        let record: AuditRecord = serde_json::from_value(json!({
            "audit_id": "a", "tenant_id": "t", "sequence_number": 1, "previous_hash": "p", "timestamp": "x",
            "ingested_at": "y", "event_type": "e", "event_category": "c", "severity": "info", "actor_type": "agent",
            "actor_id": "me", "actor_permissions": [], "investigation_id": null, "alert_id": null, "entity_ids": [],
            "context": {}, "decision": {}, "outcome": {}, "record_hash": "", "record_version": "1.0"
        }))
        .expect("record");
        let value = serde_json::to_value(&record).expect("serialises");
        let mut fields: Vec<&str> = value.as_object().expect("object").keys().map(String::as_str).filter(|k| *k != "record_hash").collect();
        fields.sort_unstable();
        assert_eq!(fields, HASHED_FIELDS);
    }

    /// The streamed hash equals the hash of the canonical JSON of the whole record, for records
    /// with nested, unsorted, escaped and non-ASCII content.
    #[test]
    fn streamed_hash_equals_hash_of_canonical_json() {
        let mut record: AuditRecord = serde_json::from_value(json!({
            "audit_id": "0190f000-0000-7000-8000-000000000001", "tenant_id": "contoso", "sequence_number": 42,
            "previous_hash": "ab", "timestamp": "2026-01-01T00:00:00.000Z", "ingested_at": "2026-01-01T00:00:00.001Z",
            "event_type": "alert.classified", "event_category": "decision", "severity": "warning", "actor_type": "agent",
            "actor_id": "reasoning_agent", "actor_permissions": ["read", "write"], "investigation_id": "inv", "alert_id": "al\"ert",
            "entity_ids": ["host:ws-01", "upn:alice@contoso.com"],
            "context": {"z": 1, "a": {"y": [3, {"q": null, "b": true}], "x": "é\n\u{1}"}},
            "decision": {"confidence": 0.875, "classification": "true_positive"},
            "outcome": {"status": "success"}, "record_hash": "ignored", "record_version": "1.0"
        }))
        .expect("record");
        let mut value = serde_json::to_value(&record).expect("serialises");
        value.as_object_mut().expect("object").remove("record_hash");
        let expected = hex::encode(Sha256::digest(canonical_json(&value).as_bytes()));
        assert_eq!(record_hash(&record), expected);
        record.record_hash = "changed".to_owned();
        assert_eq!(record_hash(&record), expected, "record_hash is not hashed");
        record.sequence_number = 43;
        assert_ne!(record_hash(&record), expected);
    }
}
