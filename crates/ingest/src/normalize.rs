//! The parse stage as a pure function: a raw record in, a normalised alert with its entities and
//! indicators out, or the reason it cannot be normalised (which sends it to `alerts.raw.dlq`).

use aluskort_core::{AlertEntities, AlertSource, CanonicalAlert, Ioc, TenantId};
use aluskort_extract::sanitize::SanitizeReport;
use aluskort_extract::{entity_iocs, extract_iocs, sentinel};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::detect::RecordFormat;
use crate::identify::map_record;
use crate::sentinel::Mapped;

/// A record as it travels on `alerts.raw`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawAlert {
    /// Unique per received record; the idempotency key of the raw inbox.
    pub ingest_id: String,
    /// Where it came from (`file.jsonl:7`, `api`, ...), used in every error about it.
    pub origin: String,
    pub received_at: DateTime<Utc>,
    pub payload: Value,
    /// Tenant assigned by the receiving connector's configuration; overrides the source's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<TenantId>,
}

/// A record as it travels on `alerts.normalized`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NormalizedAlert {
    pub ingest_id: String,
    pub origin: String,
    pub alert: CanonicalAlert,
    pub entities: AlertEntities,
    pub iocs: Vec<Ioc>,
    /// When the detected activity happened; the alert timestamp when the source does not say.
    pub activity_start: DateTime<Utc>,
    pub activity_end: DateTime<Utc>,
    /// Substitutions and dropped values, each with its field and reason.
    pub warnings: Vec<String>,
    pub sanitize: SanitizeReport,
}

/// Why a record could not be normalised. Goes to `alerts.raw.dlq` as `{original, error}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {reason}")]
pub struct IngestError {
    pub origin: String,
    pub reason: String,
}

/// Where a record's entities are read from.
enum EntitySource<'a> {
    Sentinel(Value),
    Elastic(&'a Value),
    Splunk(&'a Value),
    Canonical,
}

pub fn normalize(raw: &RawAlert) -> Result<NormalizedAlert, IngestError> {
    let fail = |reason: String| IngestError { origin: raw.origin.clone(), reason };
    let (format, mapped) = map_record(&raw.payload, raw.received_at).map_err(fail)?;
    let Mapped { mut alert, activity, mut warnings } = mapped;
    if let Some(tenant) = &raw.tenant
        && *tenant != alert.tenant_id
    {
        if alert.tenant_id != TenantId::default_tenant() {
            warnings.push(format!("tenant {} from the source replaced by {} from the connector's configuration", alert.tenant_id, tenant));
        }
        alert.tenant_id = tenant.clone();
    }
    let entities_value = match format {
        RecordFormat::SentinelSecurityAlert => EntitySource::Sentinel(raw.payload.get("Entities").cloned().unwrap_or(Value::Null)),
        RecordFormat::ElasticAlert => EntitySource::Elastic(&raw.payload),
        RecordFormat::SplunkNotable => EntitySource::Splunk(&raw.payload),
        RecordFormat::Canonical => EntitySource::Canonical,
    };
    let mut sanitize = SanitizeReport::default();
    let entities = match entities_value {
        EntitySource::Sentinel(value) => sentinel::parse_entities(&value, &mut sanitize),
        EntitySource::Elastic(document) => aluskort_extract::elastic::parse_entities(document, &mut sanitize),
        EntitySource::Splunk(document) => aluskort_extract::splunk::parse_entities(document, &mut sanitize),
        // A canonical alert carries its source's entities: parse them the way that source writes them.
        EntitySource::Canonical => match alert.source {
            AlertSource::Elastic if alert.entities_raw.is_empty() => {
                aluskort_extract::elastic::parse_entities(&alert.raw_payload, &mut sanitize)
            }
            AlertSource::Splunk if alert.entities_raw.is_empty() => {
                aluskort_extract::splunk::parse_entities(&alert.raw_payload, &mut sanitize)
            }
            _ => sentinel::parse_entities(&Value::String(alert.entities_raw.clone()), &mut sanitize),
        },
    };
    warnings.extend(entities.parse_errors.iter().map(|error| format!("Entities: {error}")));
    let mut iocs = entity_iocs(&entities);
    for ioc in extract_iocs(&alert.description) {
        if !iocs.contains(&ioc) {
            iocs.push(ioc);
        }
    }
    Ok(NormalizedAlert {
        ingest_id: raw.ingest_id.clone(),
        origin: raw.origin.clone(),
        alert,
        entities,
        iocs,
        activity_start: activity.0,
        activity_end: activity.1,
        warnings,
        sanitize,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn raw(payload: Value) -> RawAlert {
        RawAlert { ingest_id: "i-1".into(), origin: "test:1".into(), received_at: Utc::now(), payload, tenant: None }
    }

    #[test]
    fn unknown_formats_are_rejected_with_origin_and_reason() {
        let error = normalize(&raw(json!({"foo": 1}))).expect_err("unknown format");
        assert_eq!(error.origin, "test:1");
        assert!(error.reason.starts_with("unrecognised alert format"), "{}", error.reason);
        let error = normalize(&raw(json!([1, 2]))).expect_err("not an object");
        assert!(error.reason.contains("not a JSON object"));
    }

    #[test]
    fn canonical_round_trip_keeps_the_alert() {
        let sentinel = json!({"SystemAlertId": "a-1", "AlertName": "Test", "AlertSeverity": "High",
            "TimeGenerated": "2024-01-01T00:00:00Z", "Description": "callback to 198.51.100.7",
            "Entities": "[{\"$id\":\"1\",\"HostName\":\"ws01\",\"Type\":\"host\"}]"});
        let first = normalize(&raw(sentinel)).expect("sentinel");
        assert_eq!(first.entities.hosts[0].hostname.as_deref(), Some("ws01"));
        assert_eq!(first.iocs, vec![Ioc::parse(aluskort_core::IocType::Ipv4, "198.51.100.7").expect("valid")]);
        let canonical = serde_json::to_value(&first.alert).expect("serialises");
        let second = normalize(&raw(canonical)).expect("canonical");
        assert_eq!(second.alert, first.alert);
        assert_eq!(second.entities.hosts, first.entities.hosts);
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use serde_json::{Map, Value};

    use super::*;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "\\PC{0,40}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("[A-Za-z$]{1,12}", inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
            ]
        })
    }

    const SENTINEL_KEYS: &[&str] =
        &["SystemAlertId", "AlertName", "AlertSeverity", "TimeGenerated", "StartTime", "Tactics", "Techniques", "Entities", "TenantId"];

    proptest! {
        /// Bad input never panics: any JSON, including Sentinel-shaped rows with garbage in every
        /// column, normalises or is rejected with a reason.
        #[test]
        fn normalize_never_panics(value in json_value(), fields in prop::collection::vec((prop::sample::select(SENTINEL_KEYS), json_value()), 0..9)) {
            let _ = normalize(&RawAlert { ingest_id: "p".into(), origin: "prop".into(), received_at: Utc::now(), payload: value, tenant: None });
            let row: Map<String, Value> = fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            let result = normalize(&RawAlert { ingest_id: "p".into(), origin: "prop".into(), received_at: Utc::now(), payload: Value::Object(row), tenant: None });
            if let Err(error) = result {
                prop_assert!(!error.reason.is_empty());
            }
        }

        #[test]
        fn stash_notables_never_panic(raw in "\\PC{0,80}", quoted in "[a-z]{1,4}=\"[^\"]{0,6}(\\\\)?\"?") {
            let notable = serde_json::json!({"index": "notable", "_raw": format!("{raw}, {quoted}, {raw}")});
            let _ = crate::reader::unwrap_envelope(notable);
        }

        #[test]
        fn reader_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
            let _ = crate::reader::read_records("prop", &bytes);
        }
    }
}
