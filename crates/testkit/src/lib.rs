//! Test helpers shared by the workspace's test suites.

pub mod fake;

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

/// Where a server suite's server is (`var`), or `None` to skip; an empty value counts as unset.
///
/// # Panics
/// When `CI` is set and `var` is not: in CI the server suites must run, never skip.
fn server_under_test(var: &str, suites: &str) -> Option<String> {
    #[expect(clippy::disallowed_methods, reason = "test helper: the service location is environment-specific")]
    let location = std::env::var(var).ok().filter(|location| !location.is_empty());
    if location.is_none() {
        #[expect(clippy::disallowed_methods, reason = "test helper: CI must not skip server suites")]
        let in_ci = std::env::var("CI").is_ok();
        assert!(!in_ci, "CI is set but {var} is not: the {suites} suites must run in CI");
        eprintln!("skipping a {suites} test: {var} is not set");
    }
    location
}

/// The PostgreSQL URL server-backed tests run against (`ALUSKORT_TEST_PG_URL`), or `None` to skip
/// (in CI, a panic: see [`server_under_test`]).
pub fn pg_test_url() -> Option<String> {
    server_under_test("ALUSKORT_TEST_PG_URL", "PostgreSQL")
}

/// The Kafka-protocol broker server-backed tests run against (`ALUSKORT_TEST_KAFKA_BROKERS`,
/// `host:port`), or `None` to skip (in CI, a panic).
pub fn kafka_test_brokers() -> Option<String> {
    server_under_test("ALUSKORT_TEST_KAFKA_BROKERS", "Kafka")
}

/// The Redis URL server-backed tests run against (`ALUSKORT_TEST_REDIS_URL`), or `None` to skip
/// (in CI, a panic).
pub fn redis_test_url() -> Option<String> {
    server_under_test("ALUSKORT_TEST_REDIS_URL", "Redis")
}

/// The S3-compatible endpoint object-store tests run against (`ALUSKORT_TEST_S3_ENDPOINT`,
/// `http://host:port`; `scripts/test` starts moto's S3 server there), or `None` to skip (in CI, a
/// panic).
pub fn s3_test_endpoint() -> Option<String> {
    server_under_test("ALUSKORT_TEST_S3_ENDPOINT", "S3")
}
