//! Microsoft Sentinel `SecurityAlert` row → `CanonicalAlert` (FR-ING-002, FR-ING-003).
//!
//! Columns as Log Analytics returns them
//! (<https://learn.microsoft.com/azure/azure-monitor/reference/tables/securityalert>): `SystemAlertId`,
//! `TimeGenerated`, `DisplayName`, `AlertName`, `AlertSeverity`, `Description`, `ProviderName`,
//! `ProductName`, `Tactics` (comma-separated), `Techniques` (JSON string array), `Entities` and
//! `ExtendedProperties` (JSON strings), `TenantId`. The mapping is lenient where leniency loses
//! nothing (a missing title falls back to the alert name) and records a warning whenever it
//! substitutes a value, so no fallback is silent.

use aluskort_core::ioc::TechniqueId;
use aluskort_core::{AlertId, AlertSource, CanonicalAlert, Severity, TenantId};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::time::parse_timestamp;

/// Result of mapping: the alert plus every substitution made on the way.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    pub alert: CanonicalAlert,
    /// When the detected activity happened (`StartTime`..`EndTime`), which can be days before
    /// `TimeGenerated`; incident grouping compares these windows.
    pub activity: (DateTime<Utc>, DateTime<Utc>),
    pub warnings: Vec<String>,
}

fn text<'a>(row: &'a Value, names: &[&str]) -> Option<&'a str> {
    names.iter().filter_map(|name| row.get(*name).and_then(Value::as_str)).map(str::trim).find(|value| !value.is_empty())
}

/// Maps one row; `now` is used only when the row has no usable timestamp (and says so in a warning).
pub fn to_canonical(row: &Value, now: DateTime<Utc>) -> Result<Mapped, String> {
    let mut warnings = Vec::new();
    let alert_id = match text(row, &["SystemAlertId", "AlertId", "VendorOriginalId"]) {
        Some(id) => AlertId::parse(id).map_err(|error| format!("SystemAlertId: {error}"))?,
        None => derived_id("sentinel", row, &mut warnings)?,
    };
    let timestamp = ["TimeGenerated", "StartTime", "ProcessingEndTime", "EndTime"]
        .iter()
        .find_map(|name| row.get(*name).and_then(parse_timestamp))
        .unwrap_or_else(|| {
            warnings.push("no parseable TimeGenerated/StartTime: used the ingest time".to_owned());
            now
        });
    let title = match text(row, &["DisplayName", "AlertName", "AlertType"]) {
        Some(title) => title.to_owned(),
        None => {
            warnings.push("DisplayName and AlertName missing: title set to \"Untitled Sentinel alert\"".to_owned());
            "Untitled Sentinel alert".to_owned()
        }
    };
    let severity = severity_or_medium(text(row, &["AlertSeverity", "Severity"]), "AlertSeverity", &mut warnings);
    let tactics = list(row.get("Tactics")).into_iter().filter(|tactic| !tactic.eq_ignore_ascii_case("unknown")).collect();
    let raw_techniques = list(row.get("Techniques")).into_iter().chain(list(row.get("SubTechniques"))).collect();
    let techniques = techniques_of(raw_techniques, "Techniques", &mut warnings);
    let entities_raw = match row.get("Entities") {
        Some(Value::String(entities)) => entities.clone(),
        Some(value @ (Value::Array(_) | Value::Object(_))) => value.to_string(),
        _ => String::new(),
    };
    let tenant_id = match text(row, &["TenantId", "WorkspaceId"]) {
        Some(tenant) => TenantId::parse(tenant).map_err(|error| format!("TenantId: {error}"))?,
        None => TenantId::default_tenant(),
    };
    let alert = CanonicalAlert {
        alert_id,
        source: AlertSource::Sentinel,
        timestamp,
        title,
        description: text(row, &["Description"]).unwrap_or_default().to_owned(),
        severity,
        tactics,
        techniques,
        entities_raw,
        product: text(row, &["ProductName", "ProviderName", "VendorName"]).unwrap_or_default().to_owned(),
        tenant_id,
        raw_payload: row.clone(),
    };
    let start = row.get("StartTime").and_then(parse_timestamp).unwrap_or(alert.timestamp);
    let end = row.get("EndTime").and_then(parse_timestamp).filter(|end| *end >= start).unwrap_or(start);
    Ok(Mapped { alert, activity: (start, end), warnings })
}

/// The severity a source wrote, or medium with a warning naming `field` when it is missing or
/// unknown (a safe middle: not dismissed as low, not escalated as high).
pub(crate) fn severity_or_medium(raw: Option<&str>, field: &str, warnings: &mut Vec<String>) -> Severity {
    match raw {
        Some(raw) => raw.parse::<Severity>().unwrap_or_else(|error| {
            warnings.push(format!("{field}: {error}; treated as medium"));
            Severity::Medium
        }),
        None => {
            warnings.push(format!("{field} missing: treated as medium"));
            Severity::Medium
        }
    }
}

/// A deterministic id from the record's content, so a replay of the same record stays idempotent.
pub(crate) fn derived_id(source: &str, record: &Value, warnings: &mut Vec<String>) -> Result<AlertId, String> {
    let digest = Sha256::digest(record.to_string().as_bytes());
    let id = format!("{source}-{}", &hex::encode(digest)[..32]);
    warnings.push(format!("no alert id field: derived {id} from the record's content"));
    AlertId::parse(&id).map_err(|error| format!("derived id: {error}"))
}

/// Valid, canonical, unique technique ids; invalid ones are dropped with a warning naming `field`.
pub(crate) fn techniques_of(raw: Vec<String>, field: &str, warnings: &mut Vec<String>) -> Vec<String> {
    let mut techniques: Vec<String> = Vec::new();
    for item in raw {
        match TechniqueId::parse(&item) {
            Ok(id) if !techniques.contains(&id.to_string()) => {
                // Kept either way (the source said so), but an id ATT&CK/ATLAS does not know, or has
                // retired, is worth a warning (FR-RSN-004: validated offline, no import needed).
                if let Err(problem) = aluskort_knowledge::Taxonomy::embedded().validate(id.as_str()) {
                    warnings.push(format!("{field}: {problem}"));
                }
                techniques.push(id.to_string());
            }
            Ok(_) => {}
            Err(error) => warnings.push(format!("{field}: dropped {item:?}: {error}")),
        }
    }
    techniques
}

/// A list column: JSON array, JSON-array string (`"[\"T1059\"]"`), or comma-separated string.
fn list(value: Option<&Value>) -> Vec<String> {
    let items: Vec<String> = match value {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        Some(Value::String(text)) if text.trim_start().starts_with('[') => serde_json::from_str::<Vec<String>>(text)
            .unwrap_or_else(|_| text.trim_matches(['[', ']']).split(',').map(|s| s.trim_matches([' ', '"']).to_owned()).collect()),
        Some(Value::String(text)) => text.split(',').map(str::to_owned).collect(),
        _ => Vec::new(),
    };
    items.into_iter().map(|item| item.trim().to_owned()).filter(|item| !item.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn unknown_and_retired_techniques_are_kept_with_a_warning() {
        let mut warnings = Vec::new();
        let raw = vec!["T1059.001".to_owned(), "T9999".to_owned(), "T1002".to_owned(), "AML.T0051".to_owned()];
        assert_eq!(techniques_of(raw, "Techniques", &mut warnings), vec!["T1059.001", "T9999", "T1002", "AML.T0051"]);
        assert_eq!(
            warnings,
            vec![
                "Techniques: T9999 is not an ATT&CK or ATLAS technique id".to_owned(),
                "Techniques: T1002 (Data Compressed) is revoked".to_owned()
            ]
        );
    }

    #[test]
    fn maps_a_security_alert_row() {
        let row = json!({
            "SystemAlertId": "197c2262-2cd9-4ca0-4c33-add856f8af63",
            "TimeGenerated": "2024-07-04 22:35:00.593840+00:00",
            "DisplayName": "Suspicious Application Window Discovery",
            "AlertSeverity": "Low",
            "ProviderName": "MDATP",
            "ProductName": "Microsoft Defender Advanced Threat Protection",
            "Tactics": "Discovery, Execution",
            "Techniques": "[\"T1010\",\"T1059\",\"T1518\"]",
            "SubTechniques": "",
            "TenantId": "e34d562e-ef12-4c4e-9bc0-7c6ae357c015",
            "Entities": "[]"
        });
        let mapped = to_canonical(&row, Utc::now()).expect("maps");
        assert!(mapped.warnings.is_empty(), "{:?}", mapped.warnings);
        let alert = mapped.alert;
        assert_eq!(alert.alert_id.as_str(), "197c2262-2cd9-4ca0-4c33-add856f8af63");
        assert_eq!(alert.severity, Severity::Low);
        assert_eq!(alert.tactics, vec!["Discovery", "Execution"]);
        assert_eq!(alert.techniques, vec!["T1010", "T1059", "T1518"]);
        assert_eq!(alert.timestamp.to_rfc3339(), "2024-07-04T22:35:00.593840+00:00");
        assert_eq!(alert.product, "Microsoft Defender Advanced Threat Protection");
    }

    #[test]
    fn substitutions_are_warned_and_ids_are_deterministic() {
        let row = json!({"AlertName": "x", "AlertSeverity": "Severe", "Techniques": "[\"T99\"]", "Tactics": "Unknown"});
        let first = to_canonical(&row, Utc::now()).expect("maps");
        let second = to_canonical(&row, Utc::now()).expect("maps");
        assert_eq!(first.alert.alert_id, second.alert.alert_id);
        assert_eq!(first.alert.severity, Severity::Medium);
        assert!(first.alert.tactics.is_empty());
        assert!(first.alert.techniques.is_empty());
        assert_eq!(first.warnings.len(), 4, "{:?}", first.warnings);
    }
}
