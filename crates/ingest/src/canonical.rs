//! Records already in canonical form (ALUSKORT's own JSON, e.g. replayed or posted by a webhook
//! bridge). Deserialisation validates every field through the domain newtypes.

use aluskort_core::CanonicalAlert;
use serde_json::Value;

pub fn to_canonical(record: &Value) -> Result<CanonicalAlert, String> {
    let mut alert: CanonicalAlert = serde_json::from_value(record.clone()).map_err(|error| format!("canonical alert: {error}"))?;
    if alert.raw_payload.is_null() {
        alert.raw_payload = record.clone();
    }
    Ok(alert)
}
