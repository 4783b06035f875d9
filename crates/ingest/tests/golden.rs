//! Golden files for every SIEM mapping (STYLE ex. 8): each fixture alert under `fixtures/alerts/<source>/`
//! is read, normalised, and compared with its reviewed `fixtures/golden/<source>/*.expected.json`. Set `ALUSKORT_UPDATE_GOLDEN=1` to rewrite them, then
//! review the diff: never regenerate goldens unreviewed.

use std::path::{Path, PathBuf};

use aluskort_ingest::{RawAlert, normalize, read_records};
use chrono::{TimeZone, Utc};
use serde_json::Value;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// The normalised alert without what depends on the run (ingest id, origin) or repeats the input.
fn projection(origin: &str, record: Value) -> Value {
    let received_at = Utc.with_ymd_and_hms(2026, 11, 22, 0, 0, 0).single().expect("valid time");
    let raw = RawAlert { ingest_id: "golden".to_owned(), origin: origin.to_owned(), received_at, payload: record, tenant: None };
    let normalized = match normalize(&raw) {
        Ok(normalized) => normalized,
        Err(error) => return serde_json::json!({"error": error.reason}),
    };
    let mut value = serde_json::to_value(&normalized).expect("serialises");
    if let Value::Object(map) = &mut value {
        map.remove("ingest_id");
        map.remove("origin");
        if let Some(Value::Object(alert)) = map.get_mut("alert") {
            alert.remove("raw_payload");
            alert.remove("entities_raw");
        }
    }
    value
}

fn update_requested() -> bool {
    #[expect(clippy::disallowed_methods, reason = "test switch to regenerate goldens")]
    let update = std::env::var("ALUSKORT_UPDATE_GOLDEN").is_ok_and(|v| v == "1");
    update
}

fn check(expected_path: &Path, actual: &str) {
    if update_requested() {
        std::fs::write(expected_path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(expected_path)
        .unwrap_or_else(|error| panic!("{}: {error} (run with ALUSKORT_UPDATE_GOLDEN=1 and review)", expected_path.display()));
    if expected != actual {
        let first_difference = expected.lines().zip(actual.lines()).position(|(a, b)| a != b).unwrap_or(0);
        panic!(
            "{} differs from the mapping output at line {}:\n  expected: {}\n  actual:   {}",
            expected_path.display(),
            first_difference + 1,
            expected.lines().nth(first_difference).unwrap_or(""),
            actual.lines().nth(first_difference).unwrap_or("")
        );
    }
}

fn check_directory(source: &str) -> usize {
    let directory = fixtures().join("alerts").join(source);
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&directory)
        .expect("fixture directory")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    inputs.sort();
    for input in &inputs {
        let bytes = std::fs::read(input).expect("fixture");
        let name = input.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        let records = read_records(&name, &bytes);
        assert_eq!(records.len(), 1, "{name} holds one alert");
        let record = records.into_iter().next().and_then(|r| r.record.ok()).expect("readable fixture");
        let actual = serde_json::to_string_pretty(&projection(&name, record)).expect("JSON") + "\n";
        let golden = fixtures().join("golden").join(source).join(name.replace(".json", ".expected.json"));
        check(&golden, &actual);
    }
    inputs.len()
}

#[test]
fn elastic_mapping_matches_goldens() {
    assert_eq!(check_directory("elastic"), 4);
}

#[test]
fn splunk_mapping_matches_goldens() {
    assert_eq!(check_directory("splunk"), 3);
}

#[test]
fn sentinel_mapping_of_the_real_alerts_matches_goldens() {
    let path = aluskort_testkit::sentinel_alerts_path();
    let bytes = std::fs::read(&path).expect("shared alerts");
    let mut lines = String::new();
    for record in read_records("sentinel-securityalert.jsonl", &bytes) {
        let value = record.record.expect("readable");
        lines.push_str(&serde_json::to_string(&projection(&record.location, value)).expect("JSON"));
        lines.push('\n');
    }
    check(&fixtures().join("golden/sentinel-securityalert.expected.jsonl"), &lines);
}
