//! Connectors against fake vendor servers that speak the documented APIs (FR-ING-003,
//! NFR-REL-002): paging, auth failures, 429 with Retry-After, 5xx, cut streams, malformed records,
//! and a connector killed mid-page then restarted: nothing lost, nothing published twice.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aluskort_audit::AuditLog;
use aluskort_bus::{Bus, MemoryBus, Topic};
use aluskort_config::{ElasticSource, SecretString, SentinelSource, SourceConfig, SourceKind, SplunkSource};
use aluskort_connect::{AlertSink, Connector, PollError, SinkOutcome, VendorError, connector_for};
use aluskort_core::TenantId;
use aluskort_investigate::{Pipeline, PipelineSettings};
use aluskort_store::{CaseStore, SqliteStore};
use aluskort_testkit::fake::elastic::FakeElastic;
use aluskort_testkit::fake::sentinel::{self, FakeSentinel};
use aluskort_testkit::fake::splunk::FakeSplunk;
use aluskort_testkit::fake::{Fault, Handle};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

struct World {
    store: Arc<SqliteStore>,
    bus: Arc<MemoryBus>,
    pipeline: Arc<Pipeline>,
}

async fn world(dir: &Path) -> World {
    let store = Arc::new(SqliteStore::open(dir).await.expect("store"));
    let bus = Arc::new(MemoryBus::new());
    let audit = Arc::new(AuditLog::new(store.clone()));
    let pipeline = Pipeline::new(bus.clone() as Arc<dyn Bus>, store.clone(), audit, PipelineSettings::default());
    World { store, bus, pipeline }
}

fn config(name: &str, kind: SourceKind) -> SourceConfig {
    SourceConfig {
        name: name.to_owned(),
        enabled: true,
        tenant: None,
        poll_interval: Duration::from_secs(30),
        page_size: 4,
        settle: Duration::ZERO,
        initial_lookback: chrono::Duration::hours(24),
        max_retries: 3,
        retry_base: Duration::from_millis(10),
        request_timeout: Duration::from_secs(10),
        kind,
    }
}

fn sentinel_config(fake: &FakeSentinel, secret: &str) -> SourceConfig {
    config(
        "sentinel-test",
        SourceKind::Sentinel(SentinelSource {
            workspace_id: sentinel::WORKSPACE_ID.to_owned(),
            token_url: fake.token_url(),
            client_id: sentinel::CLIENT_ID.to_owned(),
            client_secret: SecretString::new(secret.to_owned()),
            scope: "https://api.loganalytics.io/.default".to_owned(),
            api_url: fake.api_url(),
        }),
    )
}

fn elastic_config(fake: &FakeElastic) -> SourceConfig {
    config(
        "elastic-test",
        SourceKind::Elastic(ElasticSource {
            url: fake.url(),
            api_key: SecretString::new(aluskort_testkit::fake::elastic::API_KEY.to_owned()),
            index: ".alerts-security.alerts-default".to_owned(),
        }),
    )
}

fn splunk_config(fake: &FakeSplunk) -> SourceConfig {
    config(
        "splunk-test",
        SourceKind::Splunk(SplunkSource {
            url: fake.url(),
            token: SecretString::new(aluskort_testkit::fake::splunk::TOKEN.to_owned()),
            search: "search index=notable".to_owned(),
        }),
    )
}

fn connector(world: &World, config: &SourceConfig, sink: Arc<dyn AlertSink>) -> Connector {
    connector_for(config, world.store.clone(), sink, CancellationToken::new()).expect("connector")
}

/// Alert times: an hour ago, three alerts per second, so pages split records sharing a timestamp.
fn time_of(index: usize) -> DateTime<Utc> {
    let base = Utc::now() - chrono::Duration::hours(1);
    base.with_timezone(&Utc) - chrono::Duration::nanoseconds(i64::from(base.timestamp_subsec_nanos()))
        + chrono::Duration::seconds((index / 3) as i64)
}

/// The 26 real Sentinel `SecurityAlert` rows, loaded into the fake.
fn load_sentinel(fake: &FakeSentinel) -> BTreeSet<String> {
    let text = std::fs::read_to_string(aluskort_testkit::sentinel_alerts_path()).expect("shared data");
    let mut ids = BTreeSet::new();
    for (index, line) in text.lines().enumerate() {
        let row: Value = serde_json::from_str(line).expect("row");
        ids.insert(format!("sentinel:{}", row["SystemAlertId"].as_str().expect("id")));
        fake.add_row(time_of(index), row);
    }
    ids
}

fn fixture(path: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/alerts").join(path);
    let value: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("fixture JSON");
    aluskort_ingest::reader::unwrap_envelope(value)
}

/// `count` Elastic alert documents made from the three fixtures (dotted, nested and 7.x signal
/// layouts), each with its own id and time.
fn load_elastic(handle: &Handle, count: usize) -> BTreeSet<String> {
    let templates = ["elastic/encoded_powershell_8x_dotted.json", "elastic/dns_c2_8x_nested.json", "elastic/phishing_7x_signal.json"];
    let mut ids = BTreeSet::new();
    for index in 0..count {
        let mut document = fixture(templates[index % 3]);
        let id = format!("es-alert-{index:04}");
        let time = time_of(index);
        document["@timestamp"] = json!(time.to_rfc3339());
        match index % 3 {
            0 => document["kibana.alert.uuid"] = json!(id),
            1 => document["kibana"]["alert"]["uuid"] = json!(id),
            _ => document["signal"]["id"] = json!(id),
        }
        ids.insert(format!("elastic:{id}"));
        handle.add(time, &id, document);
    }
    ids
}

fn load_splunk(handle: &Handle, count: usize) -> BTreeSet<String> {
    let templates = ["splunk/brute_force_notable.json", "splunk/malware_notable_export.json"];
    let mut ids = BTreeSet::new();
    for index in 0..count {
        let mut document = fixture(templates[index % 2]);
        let id = format!("NOTABLE-{index:04}@@notable@@{index:032x}");
        let time = time_of(index);
        document["_time"] = json!(time.to_rfc3339());
        document["event_id"] = json!(id);
        ids.insert(format!("splunk:{id}"));
        handle.add(time, &id, document);
    }
    ids
}

async fn raw_ids(store: &dyn CaseStore) -> Vec<String> {
    store.pending_raw(10_000).await.expect("pending").into_iter().map(|r| r.ingest_id).collect()
}

#[tokio::test]
async fn sentinel_poll_pages_through_throttling_and_outages_and_resumes_from_its_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let world = world(dir.path()).await;
    let fake = FakeSentinel::start().await;
    let expected = load_sentinel(&fake);
    fake.handle.fail_next(Fault::throttled(1));
    fake.handle.fail_next(Fault::unavailable());
    let config = sentinel_config(&fake, sentinel::CLIENT_SECRET);
    let mut connector = connector(&world, &config, world.pipeline.clone());

    let started = std::time::Instant::now();
    let report = connector.poll_once().await.expect("poll succeeds after retries");
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After: 1 was honoured");
    assert_eq!(report.published, 26);
    assert_eq!(report.pages, 7, "26 rows in pages of 4");
    let ids = raw_ids(world.store.as_ref()).await;
    assert_eq!(ids.iter().cloned().collect::<BTreeSet<_>>(), expected, "every alert is in the raw inbox");
    assert_eq!(ids.len(), 26, "and none twice");
    assert_eq!(world.bus.len(Topic::AlertsRaw), 26, "published on alerts.raw exactly once each");
    let requests = fake.handle.requests();
    assert_eq!(requests.iter().filter(|r| r.as_str() == "POST token").count(), 1, "the token is cached");
    assert_eq!(requests.iter().filter(|r| r.starts_with("POST query")).count(), 9, "7 pages + 2 retried");

    // Nothing new: nothing fetched. A restart (new connector, same store) resumes from the checkpoint.
    let mut restarted = self::connector(&world, &config, world.pipeline.clone());
    let again = restarted.poll_once().await.expect("poll");
    assert_eq!((again.fetched, again.published), (0, 0));

    // A late sibling at the checkpoint's exact time and a newer alert: both fetched, once.
    let last_time = again.checkpoint.expect("checkpoint").time;
    fake.add_row(last_time, json!({"SystemAlertId": "late-sibling", "AlertName": "Suspicious LDAP query", "AlertSeverity": "Medium"}));
    fake.add_row(
        last_time + chrono::Duration::seconds(1),
        json!({"SystemAlertId": "newer", "AlertName": "Password Spray", "AlertSeverity": "High"}),
    );
    let newer = restarted.poll_once().await.expect("poll");
    assert_eq!(newer.published, 2, "{newer:?}");
    assert_eq!(world.bus.len(Topic::AlertsRaw), 28);
}

#[tokio::test]
async fn sentinel_bad_credentials_fail_fast_without_retries_or_progress() {
    let dir = tempfile::tempdir().expect("tempdir");
    let world = world(dir.path()).await;
    let fake = FakeSentinel::start().await;
    load_sentinel(&fake);
    let mut connector = connector(&world, &sentinel_config(&fake, "wrong-secret"), world.pipeline.clone());
    let error = connector.poll_once().await.expect_err("bad secret");
    assert!(matches!(error, PollError::Vendor { error: VendorError::Auth { status: 401, .. }, .. }), "{error}");
    assert!(error.to_string().contains("AADSTS7000215"), "the vendor's reason is shown: {error}");
    assert!(!error.to_string().contains("wrong-secret"), "the secret is never shown");
    assert_eq!(fake.handle.requests(), vec!["POST token".to_owned()], "an auth failure is not retried");
    assert_eq!(world.store.load_checkpoint("sentinel-test").await.expect("load"), None);
    assert!(raw_ids(world.store.as_ref()).await.is_empty());
}

/// Accepts `limit` records, then hangs as if the process froze mid-page (the test then kills it).
struct Freezing {
    inner: Arc<Pipeline>,
    limit: usize,
    accepted: AtomicUsize,
    frozen: Notify,
}

#[async_trait]
impl AlertSink for Freezing {
    async fn accept(&self, origin: &str, payload: Value, tenant: Option<TenantId>) -> anyhow::Result<SinkOutcome> {
        if self.accepted.fetch_add(1, Ordering::SeqCst) >= self.limit {
            self.frozen.notify_one();
            std::future::pending::<()>().await;
        }
        AlertSink::accept(self.inner.as_ref(), origin, payload, tenant).await
    }

    async fn reject(&self, origin: &str, reason: &str, original: Value) -> anyhow::Result<()> {
        AlertSink::reject(self.inner.as_ref(), origin, reason, original).await
    }
}

/// Kills a connector after `published` records (mid-page: pages are 4), restarts it on the same
/// database, and checks every alert is in the raw inbox once and on `alerts.raw` once.
async fn kill_mid_page_and_restart(config: SourceConfig, expected: BTreeSet<String>, published: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let world = world(dir.path()).await;
        let sink =
            Arc::new(Freezing { inner: world.pipeline.clone(), limit: published, accepted: AtomicUsize::new(0), frozen: Notify::new() });
        let mut doomed = connector(&world, &config, sink.clone());
        let task = tokio::spawn(async move { doomed.poll_once().await });
        tokio::time::timeout(Duration::from_secs(30), sink.frozen.notified()).await.expect("the connector reaches the freeze");
        task.abort();
        assert!(task.await.is_err_and(|e| e.is_cancelled()), "killed");
        assert_eq!(raw_ids(world.store.as_ref()).await.len(), published, "what was accepted before the kill is durable");
        world.store.close().await;
    }
    let world = world(dir.path()).await;
    let mut restarted = connector(&world, &config, world.pipeline.clone());
    let report = restarted.poll_once().await.expect("poll after restart");
    let ids = raw_ids(world.store.as_ref()).await;
    assert_eq!(ids.iter().cloned().collect::<BTreeSet<_>>(), expected, "nothing lost");
    assert_eq!(ids.len(), expected.len(), "nothing stored twice");
    assert_eq!(report.published as usize + published, expected.len(), "nothing published twice: {report:?}");
    assert_eq!(world.bus.len(Topic::AlertsRaw), expected.len() - published, "the restarted process publishes only the rest");
    assert!(report.duplicates >= 1, "the page re-read after the restart holds records already accepted: {report:?}");
}

#[tokio::test]
async fn sentinel_killed_mid_page_loses_and_repeats_nothing() {
    let fake = FakeSentinel::start().await;
    let expected = load_sentinel(&fake);
    kill_mid_page_and_restart(sentinel_config(&fake, sentinel::CLIENT_SECRET), expected, 6).await;
}

#[tokio::test]
async fn elastic_killed_mid_page_loses_and_repeats_nothing() {
    let fake = FakeElastic::start().await;
    let expected = load_elastic(&fake.handle, 15);
    kill_mid_page_and_restart(elastic_config(&fake), expected, 7).await;
}

#[tokio::test]
async fn splunk_killed_mid_page_loses_and_repeats_nothing() {
    let fake = FakeSplunk::start().await;
    let expected = load_splunk(&fake.handle, 13);
    kill_mid_page_and_restart(splunk_config(&fake), expected, 5).await;
}

#[tokio::test]
async fn elastic_poll_uses_point_in_time_reads_mixed_layouts_and_dead_letters_bad_hits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let world = world(dir.path()).await;
    let fake = FakeElastic::start().await;
    let mut expected = load_elastic(&fake.handle, 14);
    fake.handle.add(time_of(2), "no-timestamp", json!({"kibana.alert.rule.name": "Broken"}));
    let mut heartbeat = fixture("elastic/encoded_powershell_8x_dotted.json");
    heartbeat["kibana.alert.rule.name"] = json!("Heartbeat");
    heartbeat["kibana.alert.uuid"] = json!("hb-1");
    heartbeat["@timestamp"] = json!(time_of(5).to_rfc3339());
    fake.handle.add(time_of(5), "hb-1", heartbeat);
    fake.handle.fail_next(Fault::unavailable());

    let mut connector = connector(&world, &elastic_config(&fake), world.pipeline.clone());
    let report = connector.poll_once().await.expect("poll");
    assert_eq!((report.published, report.dropped, report.dead_lettered), (14, 1, 1), "{report:?}");
    let ids: BTreeSet<String> = raw_ids(world.store.as_ref()).await.into_iter().collect();
    assert_eq!(ids, std::mem::take(&mut expected));
    let letters = world.store.dead_letters(10).await.expect("dead letters");
    assert_eq!(letters.len(), 1);
    assert!(letters[0].error.contains("@timestamp"), "{}", letters[0].error);
    assert!(letters[0].origin.starts_with("elastic-test:"), "{}", letters[0].origin);
    assert_eq!(fake.open_pits(), 0, "the point in time is closed after the poll");
    let searches: Vec<String> = fake.handle.requests().into_iter().filter(|r| r.starts_with("POST _search")).collect();
    assert_eq!(searches.len(), 1 + 5, "the 503, then 16 hits in 4 full pages and an empty last one");
    assert!(searches.iter().skip(2).all(|r| !r.ends_with("after=")), "pages after the first use search_after: {searches:#?}");

    // Bad API key: an auth error, no retries.
    let mut bad = elastic_config(&fake);
    if let SourceKind::Elastic(elastic) = &mut bad.kind {
        elastic.api_key = SecretString::new("bm9wZTpub3Bl".to_owned());
    }
    let before = fake.handle.requests().len();
    let error = self::connector(&world, &bad, world.pipeline.clone()).poll_once().await.expect_err("bad key");
    assert!(matches!(error, PollError::Vendor { error: VendorError::Auth { status: 401, .. }, .. }), "{error}");
    assert_eq!(fake.handle.requests().len(), before, "refused before anything was served");
}

#[tokio::test]
async fn splunk_poll_survives_a_cut_stream_and_drops_heartbeats() {
    let dir = tempfile::tempdir().expect("tempdir");
    let world = world(dir.path()).await;
    let fake = FakeSplunk::start().await;
    let expected = load_splunk(&fake.handle, 10);
    let heartbeat = json!({"_time": time_of(4).to_rfc3339(), "event_id": "HB@@notable@@1", "search_name": "Splunk Heartbeat - Rule",
                           "rule_name": "Splunk Heartbeat - Rule", "urgency": "informational"});
    fake.handle.add(time_of(4), "HB@@notable@@1", heartbeat);
    fake.handle.fail_next(Fault::CutAfter { bytes: 300 });
    fake.handle.fail_next(Fault::throttled(0));

    let mut connector = connector(&world, &splunk_config(&fake), world.pipeline.clone());
    let report = connector.poll_once().await.expect("poll");
    assert_eq!((report.published, report.dropped), (10, 1), "{report:?}");
    let ids: BTreeSet<String> = raw_ids(world.store.as_ref()).await.into_iter().collect();
    assert_eq!(ids, expected);
    let exports = fake.handle.requests().iter().filter(|r| r.starts_with("POST export")).count();
    assert_eq!(exports, 3 + 2, "3 pages of 4 (11 results) + the cut and the throttled attempts");
}

#[tokio::test]
async fn connector_tenant_overrides_the_source_tenant() {
    let dir = tempfile::tempdir().expect("tempdir");
    let world = world(dir.path()).await;
    let fake = FakeSplunk::start().await;
    load_splunk(&fake.handle, 2);
    let mut config = splunk_config(&fake);
    config.tenant = Some(TenantId::parse("acme").expect("valid"));
    connector(&world, &config, world.pipeline.clone()).poll_once().await.expect("poll");
    let records = world.store.pending_raw(10).await.expect("pending");
    assert_eq!(records.len(), 2);
    assert!(records.iter().all(|r| r.tenant.as_ref().map(TenantId::as_str) == Some("acme")));
    let normalized = aluskort_ingest::normalize(&aluskort_ingest::RawAlert {
        ingest_id: records[0].ingest_id.clone(),
        origin: records[0].origin.clone(),
        received_at: records[0].received_at,
        payload: records[0].payload.clone(),
        tenant: records[0].tenant.clone(),
    })
    .expect("normalises");
    assert_eq!(normalized.alert.tenant_id.as_str(), "acme");
}

/// More records at one instant than fit a page: pages continue by excluding the ids already
/// published at that instant, so none is skipped and none repeated (Splunk stash notables without
/// `event_id` are keyed by `_cd`; Sentinel rows by `SystemAlertId`).
#[tokio::test]
async fn a_burst_at_one_instant_larger_than_a_page_is_fetched_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let world = world(dir.path()).await;
    let instant = time_of(0);
    let splunk = FakeSplunk::start().await;
    let sentinel = FakeSentinel::start().await;
    for index in 0..10 {
        let cd = format!("71:{index}");
        let raw = format!("1795299990, search_name=\"Burst - Rule\", urgency=\"low\", src=\"198.51.100.{index}\"");
        let notable = json!({"_cd": cd, "_time": instant.to_rfc3339(), "index": "notable", "sourcetype": "stash", "_raw": raw});
        splunk.handle.add(instant, &cd, notable);
        sentinel.add_row(instant, json!({"SystemAlertId": format!("burst-{index}"), "AlertName": "Burst", "AlertSeverity": "Low"}));
    }
    for config in [splunk_config(&splunk), sentinel_config(&sentinel, sentinel::CLIENT_SECRET)] {
        let report = connector(&world, &config, world.pipeline.clone()).poll_once().await.expect("poll");
        assert_eq!((report.published, report.duplicates), (10, 0), "{}: {report:?}", config.name);
        assert_eq!(report.checkpoint.expect("checkpoint").ids.len(), 10, "{}", config.name);
    }
    assert_eq!(world.bus.len(Topic::AlertsRaw), 20);
}
