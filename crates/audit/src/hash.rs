//! Canonical JSON and the record hash.

use aluskort_core::audit::AuditRecord;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// `value` with object keys sorted at every level, serialised without whitespace.
pub fn canonical_json(value: &Value) -> String {
    sorted(value).to_string()
}

fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(keys.into_iter().map(|key| (key.clone(), sorted(&map[key.as_str()]))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// sha256 hex of the canonical JSON of every field except `record_hash`.
pub fn record_hash(record: &AuditRecord) -> String {
    let mut value = serde_json::to_value(record).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.remove("record_hash");
    }
    hex::encode(Sha256::digest(canonical_json(&value).as_bytes()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn canonical_json_sorts_keys_recursively_without_whitespace() {
        let value = json!({"b": 1, "a": {"d": [{"z": 1, "y": 2}], "c": "é"}});
        assert_eq!(canonical_json(&value), r#"{"a":{"c":"é","d":[{"y":2,"z":1}]},"b":1}"#);
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
}
