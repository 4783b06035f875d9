//! Splunk ES notable event → `CanonicalAlert` (FR-ING-002, FR-ING-003).
//!
//! Notable fields as the search API returns them (`_time`, `event_id`, `rule_name`/`rule_title`/
//! `search_name`, `urgency`, `severity`, `rule_description`, `annotations.mitre_attack`, CIM entity
//! fields), <https://docs.splunk.com/Documentation/ES/latest/User/Triagenotableevents>.

use aluskort_core::{AlertId, AlertSource, CanonicalAlert, TenantId};
use aluskort_extract::flat::Flat;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::sentinel::{Mapped, derived_id, severity_or_medium, techniques_of};
use crate::time::parse_timestamp_str;

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
    let severity = severity_or_medium(flat.first(&["urgency", "severity", "priority"]).as_deref(), "urgency", &mut warnings);
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
