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

/// The PostgreSQL URL server-backed tests run against (`ALUSKORT_TEST_PG_URL`), or `None` to skip.
///
/// # Panics
/// When `CI` is set and the URL is not: in CI the server suites must run, never skip.
pub fn pg_test_url() -> Option<String> {
    #[expect(clippy::disallowed_methods, reason = "test helper: the service location is environment-specific")]
    let url = std::env::var("ALUSKORT_TEST_PG_URL").ok();
    if url.is_none() {
        #[expect(clippy::disallowed_methods, reason = "test helper: CI must not skip server suites")]
        let in_ci = std::env::var("CI").is_ok();
        assert!(!in_ci, "CI is set but ALUSKORT_TEST_PG_URL is not: the PostgreSQL suites must run in CI");
        eprintln!("skipping a PostgreSQL test: ALUSKORT_TEST_PG_URL is not set");
    }
    url
}

/// The Kafka-protocol broker server-backed tests run against (`ALUSKORT_TEST_KAFKA_BROKERS`,
/// `host:port`), or `None` to skip.
///
/// # Panics
/// When `CI` is set and the brokers are not: in CI the server suites must run, never skip.
pub fn kafka_test_brokers() -> Option<String> {
    #[expect(clippy::disallowed_methods, reason = "test helper: the service location is environment-specific")]
    let brokers = std::env::var("ALUSKORT_TEST_KAFKA_BROKERS").ok().filter(|brokers| !brokers.is_empty());
    if brokers.is_none() {
        #[expect(clippy::disallowed_methods, reason = "test helper: CI must not skip server suites")]
        let in_ci = std::env::var("CI").is_ok();
        assert!(!in_ci, "CI is set but ALUSKORT_TEST_KAFKA_BROKERS is not: the Kafka suites must run in CI");
        eprintln!("skipping a Kafka test: ALUSKORT_TEST_KAFKA_BROKERS is not set");
    }
    brokers
}

/// The Redis URL server-backed tests run against (`ALUSKORT_TEST_REDIS_URL`), or `None` to skip.
///
/// # Panics
/// When `CI` is set and the URL is not: in CI the server suites must run, never skip.
pub fn redis_test_url() -> Option<String> {
    #[expect(clippy::disallowed_methods, reason = "test helper: the service location is environment-specific")]
    let url = std::env::var("ALUSKORT_TEST_REDIS_URL").ok().filter(|url| !url.is_empty());
    if url.is_none() {
        #[expect(clippy::disallowed_methods, reason = "test helper: CI must not skip server suites")]
        let in_ci = std::env::var("CI").is_ok();
        assert!(!in_ci, "CI is set but ALUSKORT_TEST_REDIS_URL is not: the Redis suites must run in CI");
        eprintln!("skipping a Redis test: ALUSKORT_TEST_REDIS_URL is not set");
    }
    url
}
