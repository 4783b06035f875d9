//! Test helpers shared by the workspace's test suites.

use std::path::PathBuf;

/// Path of a file under the shared reference data (`../shared/data` next to the repository, as
/// tests and CI have it), or under `$ALUSKORT_SHARED_DATA` when that is set (a clone elsewhere).
///
/// # Panics
/// When the file does not exist, with a message saying where it was looked for: a missing fixture
/// must fail the suite, never skip it.
pub fn shared_data(relative: &str) -> PathBuf {
    #[expect(clippy::disallowed_methods, reason = "test helper: the location of reference data is environment-specific")]
    let root = std::env::var("ALUSKORT_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    let path = root.join(relative);
    assert!(path.is_file(), "reference data {} not found (set ALUSKORT_SHARED_DATA to the shared/data directory)", path.display());
    path
}

/// The 26 real Sentinel `SecurityAlert` rows.
pub fn sentinel_alerts_path() -> PathBuf {
    shared_data("alerts/sentinel/sentinel-securityalert.jsonl")
}

/// The 3 Sentinel incidents those alerts belong to (grouping ground truth).
pub fn sentinel_incidents_path() -> PathBuf {
    shared_data("alerts/sentinel/sentinel-incidents.jsonl")
}
