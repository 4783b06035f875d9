//! What a receiver must know about a record before making it durable (FR-ING-001): which alert it
//! is (the de-duplication key `(source, source alert id)`) and whether it is noise a SIEM emits to
//! prove it is alive (heartbeat, test and health-check alerts), which is dropped with a counter
//! rather than investigated.

use aluskort_core::{AlertId, AlertSource, CanonicalAlert, TenantId};
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::detect::{RecordFormat, detect_format};
use crate::sentinel::Mapped;

/// The mapping of any supported record format, and which format it was.
pub(crate) fn map_record(payload: &Value, received_at: DateTime<Utc>) -> Result<(RecordFormat, Mapped), String> {
    let format = detect_format(payload)?;
    let mapped = match format {
        RecordFormat::SentinelSecurityAlert => crate::sentinel::to_canonical(payload, received_at)?,
        RecordFormat::ElasticAlert => crate::elastic::to_canonical(payload, received_at)?,
        RecordFormat::SplunkNotable => crate::splunk::to_canonical(payload, received_at)?,
        RecordFormat::Canonical => {
            let alert = crate::canonical::to_canonical(payload)?;
            let activity = (alert.timestamp, alert.timestamp);
            Mapped { alert, activity, warnings: Vec::new() }
        }
    };
    Ok((format, mapped))
}

/// Who a record is, as far as receivers care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub source: AlertSource,
    pub alert_id: AlertId,
    pub tenant_id: TenantId,
    pub timestamp: DateTime<Utc>,
    pub title: String,
    /// Set when the record is a heartbeat/test/health alert: the reason it is not investigated.
    pub noise: Option<&'static str>,
}

impl Identity {
    /// `(source, source alert id)` as one string: the raw inbox's idempotency key, so a record
    /// fetched twice (a restarted connector, a retried webhook) is accepted once.
    pub fn dedup_key(&self) -> String {
        format!("{}:{}", self.source.as_str(), self.alert_id.as_str())
    }
}

/// Identifies a record, or says why it cannot be mapped (the parse stage will dead-letter it).
pub fn identify(payload: &Value, received_at: DateTime<Utc>) -> Result<Identity, String> {
    let (_, mapped) = map_record(payload, received_at)?;
    let alert = mapped.alert;
    Ok(Identity {
        noise: noise_reason(&alert),
        source: alert.source,
        alert_id: alert.alert_id,
        tenant_id: alert.tenant_id,
        timestamp: alert.timestamp,
        title: alert.title,
    })
}

/// Field values that mark an alert as a SIEM's liveness or sample signal. Deliberately narrow: a
/// real detection whose title merely mentions "test" (say "Penetration testing tool detected")
/// must never be dropped, so only these exact prefixes and the words below count.
const NOISE_TITLE_PREFIXES: &[(&str, &str)] = &[
    ("[test alert]", "test alert"),
    ("test alert", "test alert"),
    ("[test]", "test alert"),
    ("(test)", "test alert"),
    ("test:", "test alert"),
    ("[sample alert]", "sample alert"),
    ("sample alert", "sample alert"),
];
const NOISE_TITLE_WORDS: &[(&str, &str)] =
    &[("heartbeat", "heartbeat"), ("health check", "health check"), ("healthcheck", "health check"), ("health-check", "health check")];
/// Source fields naming the alert type: Sentinel `AlertType`, Splunk `search_name`, Elastic rule type.
const NOISE_TYPE_FIELDS: &[&str] = &["AlertType", "search_name", "alert_type", "event_type"];

/// Why `alert` is noise, if it is.
pub fn noise_reason(alert: &CanonicalAlert) -> Option<&'static str> {
    let title = alert.title.trim().to_ascii_lowercase();
    if let Some((_, reason)) = NOISE_TITLE_PREFIXES.iter().find(|(prefix, _)| title.starts_with(prefix)) {
        return Some(reason);
    }
    if title == "test" {
        return Some("test alert");
    }
    if let Some((_, reason)) = NOISE_TITLE_WORDS.iter().find(|(word, _)| contains_word(&title, word)) {
        return Some(reason);
    }
    let typed_heartbeat = NOISE_TYPE_FIELDS.iter().filter_map(|field| alert.raw_payload.get(*field).and_then(Value::as_str)).any(|value| {
        let value = value.to_ascii_lowercase();
        value.contains("heartbeat") || value == "test" || value.ends_with("_test") || value.ends_with("alerttest")
    });
    typed_heartbeat.then_some("heartbeat")
}

/// `word` occurs in `text` not glued to other letters ("heartbeat" yes, "heartbeats" yes, "xheartbeat" no).
fn contains_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(start, _)| !text[..start].chars().next_back().is_some_and(char::is_alphanumeric))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sentinel(name: &str) -> Value {
        json!({"SystemAlertId": "a-1", "AlertName": name, "AlertSeverity": "Low", "TimeGenerated": "2024-01-01T00:00:00Z"})
    }

    #[test]
    fn heartbeat_test_and_health_alerts_are_noise() {
        for (name, reason) in [
            ("Heartbeat", "heartbeat"),
            ("Sentinel connector heartbeat", "heartbeat"),
            ("[Test Alert] Suspicious Powershell commandline", "test alert"),
            ("TEST: webhook wiring", "test alert"),
            ("[SAMPLE ALERT] Suspicious process", "sample alert"),
            ("Splunk health check", "health check"),
        ] {
            let identity = identify(&sentinel(name), Utc::now()).expect("identifies");
            assert_eq!(identity.noise, Some(reason), "{name}");
        }
        let typed = json!({"SystemAlertId": "a-2", "AlertName": "Ping", "AlertType": "ASC_AlertTest", "AlertSeverity": "Low"});
        assert_eq!(identify(&typed, Utc::now()).expect("identifies").noise, Some("heartbeat"));
    }

    #[test]
    fn real_detections_mentioning_tests_are_kept() {
        for name in
            ["Penetration testing tool detected", "Suspicious PowerShell command line", "Attestation failure", "Contest winner phish"]
        {
            assert_eq!(identify(&sentinel(name), Utc::now()).expect("identifies").noise, None, "{name}");
        }
    }

    #[test]
    fn the_dedup_key_is_source_and_source_alert_id() {
        let identity = identify(&sentinel("Password Spray"), Utc::now()).expect("identifies");
        assert_eq!(identity.dedup_key(), "sentinel:a-1");
        let splunk = json!({"event_id": "E1@@notable@@abc", "rule_name": "Brute force", "urgency": "high", "_time": "1700000000"});
        assert_eq!(identify(&splunk, Utc::now()).expect("identifies").dedup_key(), "splunk:E1@@notable@@abc");
        assert!(identify(&json!({"nothing": 1}), Utc::now()).is_err());
    }
}
