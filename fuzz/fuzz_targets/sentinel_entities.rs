//! Sentinel `Entities` parsing never panics, whatever the JSON (or non-JSON) text.
#![no_main]

use aluskort_extract::sanitize::{MAX_FIELD_LENGTH, SanitizeReport};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut report = SanitizeReport::default();
    let entities = aluskort_extract::sentinel::parse_entities_str(&text, &mut report);
    for process in &entities.processes {
        if let Some(command) = &process.command_line {
            assert!(command.chars().count() <= MAX_FIELD_LENGTH, "FR-ENR-003 cap");
        }
    }
    let _ = aluskort_extract::entity_iocs(&entities);
});
