//! Timestamps as SIEMs write them: RFC 3339 (`2024-06-26T15:49:15.7860486Z`), Log Analytics export
//! (`2024-07-04 22:35:00.593840+00:00`), naive UTC (`2024-07-04 22:35:00`), and epoch seconds or
//! milliseconds (Splunk `_time`, Elastic `@timestamp` as a number).

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde_json::Value;

/// Parses a timestamp string or number into UTC; `None` if it is not one of the known forms.
pub fn parse_timestamp(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::String(text) => parse_timestamp_str(text),
        Value::Number(number) => number.as_f64().and_then(epoch),
        _ => None,
    }
}

pub fn parse_timestamp_str(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Ok(parsed) = DateTime::parse_from_rfc3339(text) {
        return Some(parsed.with_timezone(&Utc));
    }
    // `2024-07-04 22:35:00.593840+00:00`: RFC 3339 with a space instead of `T`.
    if let Some(fixed) = text.get(10..11).filter(|sep| *sep == " ").map(|_| format!("{}T{}", &text[..10], &text[11..]))
        && let Ok(parsed) = DateTime::parse_from_rfc3339(&fixed)
    {
        return Some(parsed.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%m/%d/%Y %H:%M:%S", "%Y-%m-%d %H:%M:%S%.f UTC"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return Some(Utc.from_utc_datetime(&naive));
        }
    }
    text.parse::<f64>().ok().and_then(epoch)
}

/// Epoch seconds, or milliseconds when the number is too large to be seconds before year 5000.
fn epoch(number: f64) -> Option<DateTime<Utc>> {
    if !number.is_finite() || number < 0.0 {
        return None;
    }
    let millis = if number > 95_617_584_000.0 { number } else { number * 1000.0 };
    // Truncation is intended: sub-millisecond precision is not kept.
    #[expect(clippy::cast_possible_truncation, reason = "range checked above; sub-millisecond digits dropped")]
    let millis = millis as i64;
    DateTime::from_timestamp_millis(millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_spellings_siems_use() {
        let expected = Utc.with_ymd_and_hms(2024, 7, 4, 22, 35, 0).single().expect("valid");
        for text in ["2024-07-04T22:35:00Z", "2024-07-04 22:35:00+00:00", "2024-07-04 22:35:00", "2024-07-05T00:35:00+02:00", "1720132500"]
        {
            assert_eq!(parse_timestamp_str(text), Some(expected), "{text}");
        }
        assert_eq!(parse_timestamp(&serde_json::json!(1_720_132_500_000_i64)), Some(expected));
        let precise = parse_timestamp_str("2024-06-26T15:49:15.7860486Z").expect("7 fraction digits");
        assert_eq!(precise.timestamp_subsec_micros(), 786_048);
    }

    #[test]
    fn rejects_garbage() {
        for text in ["", "yesterday", "2024-13-01T00:00:00Z", "-5"] {
            assert_eq!(parse_timestamp_str(text), None, "{text}");
        }
    }
}
