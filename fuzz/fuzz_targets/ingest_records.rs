//! The whole parse stage (reader → format detection → mapping → entities → indicators) never
//! panics: every record normalises or is rejected with a non-empty reason.
#![no_main]

use aluskort_ingest::{RawAlert, normalize, read_records};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for record in read_records("fuzz", data) {
        let Ok(payload) = record.record else { continue };
        let raw = RawAlert { ingest_id: "f".into(), origin: record.location, received_at: chrono::Utc::now(), payload };
        if let Err(error) = normalize(&raw) {
            assert!(!error.reason.is_empty());
        }
    }
});
