//! Recognises the format of one alert record by the fields only that format has.

use serde_json::Value;

/// Formats `normalize` understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordFormat {
    /// Microsoft Sentinel `SecurityAlert` row (Log Analytics columns).
    SentinelSecurityAlert,
    /// ALUSKORT's own `CanonicalAlert`.
    Canonical,
}

/// Why no format matched; names the closest guess so the operator knows what to fix.
pub fn detect_format(record: &Value) -> Result<RecordFormat, String> {
    let Some(map) = record.as_object() else {
        return Err("record is not a JSON object".to_owned());
    };
    let has = |key: &str| map.contains_key(key);
    if has("alert_id") && has("source") && has("title") && has("severity") {
        return Ok(RecordFormat::Canonical);
    }
    let is_security_alert_type = map.get("Type").and_then(Value::as_str) == Some("SecurityAlert");
    if is_security_alert_type || has("SystemAlertId") || (has("AlertName") && (has("ProviderName") || has("AlertSeverity"))) {
        return Ok(RecordFormat::SentinelSecurityAlert);
    }
    if has("kibana.alert.rule.name") || map.get("kibana").is_some_and(|k| k.get("alert").is_some()) || has("signal") {
        return Err("looks like an Elastic Security alert, which this build does not ingest yet".to_owned());
    }
    if has("search_name") || has("rule_name") && has("_time") || has("event_id") && has("urgency") {
        return Err("looks like a Splunk ES notable event, which this build does not ingest yet".to_owned());
    }
    Err("unrecognised alert format: expected a Sentinel SecurityAlert row (SystemAlertId, AlertName, ...) \
         or a canonical alert (alert_id, source, title, severity, ...)"
        .to_owned())
}
