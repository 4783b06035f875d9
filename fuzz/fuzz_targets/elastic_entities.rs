//! Elastic alert mapping never panics on any JSON document.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(document) = serde_json::from_slice::<serde_json::Value>(data) {
        let mut report = aluskort_extract::SanitizeReport::default();
        let entities = aluskort_extract::elastic::parse_entities(&document, &mut report);
        let _ = aluskort_extract::entity_iocs(&entities);
        let _ = aluskort_extract::elastic::attack_mapping(&document);
    }
});
