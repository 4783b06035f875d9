//! Splunk ES notable event → `CanonicalAlert` (FR-ING-002, FR-ING-003).
//!
//! Notable fields as the search API returns them (`_time`, `event_id`, `rule_name`/`rule_title`/
//! `search_name`, `urgency`, `severity`, `rule_description`, `annotations.mitre_attack`, CIM entity
//! fields), <https://docs.splunk.com/Documentation/ES/latest/User/Triagenotableevents>.

use aluskort_core::{AlertId, AlertSource, CanonicalAlert, Severity, TenantId};
use aluskort_extract::flat::Flat;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::sentinel::{Mapped, derived_id, severity_or_medium, techniques_of};
use crate::time::parse_timestamp_str;

/// Splunk ES's default `urgency_lookup`: a notable's urgency from the correlation search's severity
/// and the asset/identity priority (<https://docs.splunk.com/Documentation/ES/latest/User/Howurgencyisassigned>):
///
/// | priority \ severity | informational | unknown/low | medium | high | critical |
/// |---|---|---|---|---|---|
/// | unknown, low | informational | low | low | medium | high |
/// | medium | informational | low | medium | high | critical |
/// | high | informational | medium | medium | high | critical |
/// | critical | informational | medium | high | critical | critical |
///
/// `None` when either value is not one of these words.
pub fn urgency_of(severity: &str, priority: &str) -> Option<Severity> {
    use Severity::{Critical, High, Informational, Low, Medium};
    let severity = severity.trim().to_ascii_lowercase();
    let row: [Severity; 4] = match priority.trim().to_ascii_lowercase().as_str() {
        "unknown" | "low" | "informational" | "" => [Low, Low, Medium, High],
        "medium" => [Low, Medium, High, Critical],
        "high" => [Medium, Medium, High, Critical],
        "critical" => [Medium, High, Critical, Critical],
        _ => return None,
    };
    Some(match severity.as_str() {
        "informational" | "info" => Informational,
        "unknown" | "low" => row[0],
        "medium" => row[1],
        "high" => row[2],
        "critical" => row[3],
        _ => return None,
    })
}

pub fn to_canonical(document: &Value, now: DateTime<Utc>) -> Result<Mapped, String> {
    let flat = Flat::new(document);
    let mut warnings = Vec::new();
    let alert_id = match flat.first(&["event_id", "notable_id", "_cd", "orig_event_id"]) {
        Some(id) => AlertId::parse(&id).map_err(|error| format!("event_id: {error}"))?,
        None => derived_id("splunk", document, &mut warnings)?,
    };
    let timestamp =
        flat.first(&["_time", "time", "orig_time", "_indextime"]).and_then(|text| parse_timestamp_str(&text)).unwrap_or_else(|| {
            warnings.push("no parseable _time: used the ingest time".to_owned());
            now
        });
    let title = flat.first(&["rule_title", "rule_name", "search_name", "source"]).map(|title| {
        // Correlation search names end in " - Rule" by convention; the title is what precedes it.
        title.strip_suffix(" - Rule").map(str::to_owned).unwrap_or(title)
    });
    let title = title.unwrap_or_else(|| {
        warnings.push("rule_title/rule_name/search_name missing: title set to \"Untitled Splunk notable\"".to_owned());
        "Untitled Splunk notable".to_owned()
    });
    let severity = match (flat.first(&["urgency"]), flat.first(&["severity"])) {
        (Some(urgency), _) => severity_or_medium(Some(&urgency), "urgency", &mut warnings),
        (None, Some(severity)) => {
            let priority = flat.first(&["priority"]).unwrap_or_else(|| "unknown".to_owned());
            match urgency_of(&severity, &priority) {
                Some(urgency) => {
                    warnings.push(format!(
                        "urgency missing: {} from severity {severity:?} and priority {priority:?} (Splunk ES default urgency lookup)",
                        urgency.as_str()
                    ));
                    urgency
                }
                None => severity_or_medium(Some(&severity), "severity", &mut warnings),
            }
        }
        (None, None) => severity_or_medium(None, "urgency", &mut warnings),
    };
    let (tactics, raw_techniques) = aluskort_extract::splunk::attack_mapping(document);
    let techniques = techniques_of(raw_techniques, "annotations.mitre_attack", &mut warnings);
    let description = flat.first(&["rule_description", "description", "savedsearch_description"]).unwrap_or_default();
    let tenant_id = match flat.first(&["tenant", "tenant_id"]) {
        Some(tenant) => TenantId::parse(&tenant).map_err(|error| format!("tenant: {error}"))?,
        None => TenantId::default_tenant(),
    };
    let product = flat.first(&["security_domain"]).map_or_else(|| "Splunk ES".to_owned(), |domain| format!("Splunk ES ({domain})"));
    let start = flat.first(&["info_min_time", "orig_time", "_time"]).and_then(|t| parse_timestamp_str(&t)).unwrap_or(timestamp);
    let end = flat.first(&["info_max_time", "_time"]).and_then(|t| parse_timestamp_str(&t)).filter(|end| *end >= start).unwrap_or(start);
    let alert = CanonicalAlert {
        alert_id,
        source: AlertSource::Splunk,
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

#[cfg(test)]
mod tests {
    use aluskort_core::Severity;

    use super::urgency_of;

    #[test]
    fn urgency_follows_the_splunk_es_default_lookup() {
        assert_eq!(urgency_of("informational", "critical"), Some(Severity::Informational));
        assert_eq!(urgency_of("medium", "unknown"), Some(Severity::Low));
        assert_eq!(urgency_of("high", "low"), Some(Severity::Medium));
        assert_eq!(urgency_of("critical", "medium"), Some(Severity::Critical));
        assert_eq!(urgency_of("low", "high"), Some(Severity::Medium));
        assert_eq!(urgency_of("unknown", "critical"), Some(Severity::Medium));
        assert_eq!(urgency_of("medium", "critical"), Some(Severity::High));
        assert_eq!(urgency_of("bogus", "high"), None);
        assert_eq!(urgency_of("high", "vip"), None);
    }
}
