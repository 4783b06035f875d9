//! Elastic Security alert document → `CanonicalAlert` (FR-ING-002, FR-ING-003).
//!
//! Reads `kibana.alert.*` (8.x) or `signal.*` (7.x) fields, dotted or nested
//! (<https://www.elastic.co/guide/en/security/current/alert-schema.html>).

use aluskort_core::{AlertId, AlertSource, CanonicalAlert, Severity, TenantId};
use aluskort_extract::flat::Flat;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::sentinel::{Mapped, derived_id, severity_or_medium, techniques_of};
use crate::time::parse_timestamp_str;

/// Elastic's risk-score bands (0–21 low, 22–47 medium, 48–73 high, 74–100 critical).
fn severity_from_risk(score: f64) -> Severity {
    match score {
        s if s >= 74.0 => Severity::Critical,
        s if s >= 48.0 => Severity::High,
        s if s >= 22.0 => Severity::Medium,
        _ => Severity::Low,
    }
}

pub fn to_canonical(document: &Value, now: DateTime<Utc>) -> Result<Mapped, String> {
    let flat = Flat::new(document);
    let mut warnings = Vec::new();
    let alert_id = match flat.first(&["kibana.alert.uuid", "signal.id", "_id", "id", "event.id"]) {
        Some(id) => AlertId::parse(&id).map_err(|error| format!("kibana.alert.uuid: {error}"))?,
        None => derived_id("elastic", document, &mut warnings)?,
    };
    let timestamp = flat
        .first(&["@timestamp", "kibana.alert.original_time", "signal.original_time", "event.created"])
        .and_then(|text| parse_timestamp_str(&text))
        .unwrap_or_else(|| {
            warnings.push("no parseable @timestamp: used the ingest time".to_owned());
            now
        });
    let title =
        flat.first(&["kibana.alert.rule.name", "signal.rule.name", "rule.name", "kibana.alert.rule.rule_name"]).unwrap_or_else(|| {
            warnings.push("kibana.alert.rule.name missing: title set to \"Untitled Elastic alert\"".to_owned());
            "Untitled Elastic alert".to_owned()
        });
    let severity_field =
        flat.first(&["kibana.alert.severity", "signal.rule.severity", "event.severity_name", "kibana.alert.rule.severity"]);
    let risk_score = flat.first(&["kibana.alert.risk_score", "signal.rule.risk_score", "risk_score"]).and_then(|s| s.parse::<f64>().ok());
    let severity = match (severity_field, risk_score) {
        (None, Some(score)) => severity_from_risk(score),
        (raw, _) => severity_or_medium(raw.as_deref(), "kibana.alert.severity", &mut warnings),
    };
    let (tactics, raw_techniques) = aluskort_extract::elastic::attack_mapping(document);
    let techniques = techniques_of(raw_techniques, "kibana.alert.rule.threat", &mut warnings);
    let description = flat
        .first(&["kibana.alert.reason", "signal.reason", "kibana.alert.rule.description", "signal.rule.description", "message"])
        .unwrap_or_default();
    let tenant_id = match flat.first(&["kibana.space_ids", "organization.id"]) {
        Some(space) => TenantId::parse(&space).map_err(|error| format!("kibana.space_ids: {error}"))?,
        None => TenantId::default_tenant(),
    };
    let product = flat.first(&["kibana.alert.rule.producer", "event.module", "kibana.alert.rule.rule_type_id"]).map_or_else(
        || "Elastic Security".to_owned(),
        |producer| if producer == "siem" { "Elastic Security".to_owned() } else { format!("Elastic Security ({producer})") },
    );
    let start =
        flat.first(&["kibana.alert.original_time", "event.start", "@timestamp"]).and_then(|t| parse_timestamp_str(&t)).unwrap_or(timestamp);
    let end = flat.first(&["event.end"]).and_then(|t| parse_timestamp_str(&t)).filter(|end| *end >= start).unwrap_or(start);
    let alert = CanonicalAlert {
        alert_id,
        source: AlertSource::Elastic,
        timestamp,
        title,
        description,
        severity,
        tactics,
        techniques,
        entities_raw: String::new(),
        product,
        tenant_id,
        raw_payload: document.clone(),
    };
    Ok(Mapped { alert, activity: (start, end), warnings })
}
