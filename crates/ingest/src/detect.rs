//! Recognises the format of one alert record by the fields only that format has.

use serde_json::Value;

/// Formats `normalize` understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordFormat {
    /// Microsoft Sentinel `SecurityAlert` row (Log Analytics columns).
    SentinelSecurityAlert,
    /// Elastic Security alert document (`kibana.alert.*` or 7.x `signal.*`).
    ElasticAlert,
    /// Splunk ES notable event.
    SplunkNotable,
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
    let kibana_alert = map.keys().any(|k| k.starts_with("kibana.alert.")) || map.get("kibana").is_some_and(|k| k.get("alert").is_some());
    let legacy_signal = map.get("signal").is_some_and(|s| s.get("rule").is_some()) || map.keys().any(|k| k.starts_with("signal.rule."));
    if kibana_alert || legacy_signal {
        return Ok(RecordFormat::ElasticAlert);
    }
    let notable_fields = ["rule_name", "rule_title", "search_name", "urgency", "security_domain", "orig_sourcetype"];
    let notable_hits = notable_fields.iter().filter(|key| has(key)).count();
    if has("search_name") || (has("event_id") && notable_hits >= 1) || notable_hits >= 2 {
        return Ok(RecordFormat::SplunkNotable);
    }
    Err("unrecognised alert format: expected a Sentinel SecurityAlert row (SystemAlertId, AlertName, ...), \
         an Elastic Security alert (kibana.alert.*), a Splunk ES notable (event_id, rule_name/search_name, urgency, ...) \
         or a canonical alert (alert_id, source, title, severity, ...)"
        .to_owned())
}
