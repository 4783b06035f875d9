//! Connector throughput against the fake servers on loopback (HTTP + JSON + paging + checkpoint
//! writes): a poll of 5,000 Sentinel rows / Elastic hits / Splunk results in pages of 500 into a sink
//! that only counts, and the Sentinel poll into the real pipeline entry (identify + durable SQLite
//! insert + publish). Reported as elements (alerts) per second.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aluskort_audit::AuditLog;
use aluskort_bus::{Bus, MemoryBus};
use aluskort_config::{ElasticSource, SecretString, SentinelSource, SourceConfig, SourceKind, SplunkSource};
use aluskort_connect::{AlertSink, SinkOutcome, connector_for};
use aluskort_core::TenantId;
use aluskort_investigate::{Pipeline, PipelineSettings};
use aluskort_store::{CaseStore, SqliteStore};
use aluskort_testkit::fake::elastic::FakeElastic;
use aluskort_testkit::fake::sentinel::{self, FakeSentinel};
use aluskort_testkit::fake::splunk::FakeSplunk;
use async_trait::async_trait;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const ALERTS: usize = 5_000;

struct Counting(AtomicU64);

#[async_trait]
impl AlertSink for Counting {
    async fn accept(&self, _origin: &str, _payload: Value, _tenant: Option<TenantId>) -> anyhow::Result<SinkOutcome> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(SinkOutcome::Published)
    }
    async fn reject(&self, _origin: &str, _reason: &str, _original: Value) -> anyhow::Result<()> {
        Ok(())
    }
}

fn config(kind: SourceKind) -> SourceConfig {
    SourceConfig {
        name: "bench".to_owned(),
        enabled: true,
        tenant: None,
        poll_interval: Duration::from_secs(30),
        page_size: 500,
        settle: Duration::ZERO,
        initial_lookback: chrono::Duration::hours(24),
        max_retries: 3,
        retry_base: Duration::from_millis(10),
        request_timeout: Duration::from_secs(30),
        kind,
    }
}

fn rows() -> Vec<Value> {
    let path = aluskort_testkit::sentinel_alerts_path();
    let text = std::fs::read_to_string(path).expect("shared data");
    let templates: Vec<Value> = text.lines().map(|line| serde_json::from_str(line).expect("row")).collect();
    (0..ALERTS)
        .map(|index| {
            let mut row = templates[index % templates.len()].clone();
            row["SystemAlertId"] = json!(format!("bench-{index:06}"));
            row
        })
        .collect()
}

fn at(index: usize) -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now() - chrono::Duration::hours(2) + chrono::Duration::milliseconds(index as i64 * 10)
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let rows = rows();
    let sentinel = runtime.block_on(FakeSentinel::start());
    let elastic = runtime.block_on(FakeElastic::start());
    let splunk = runtime.block_on(FakeSplunk::start());
    for (index, row) in rows.iter().enumerate() {
        sentinel.add_row(at(index), row.clone());
        let id = format!("es-{index:06}");
        elastic.handle.add(
            at(index),
            &id,
            json!({"@timestamp": at(index).to_rfc3339(), "kibana.alert.uuid": id,
            "kibana.alert.rule.name": "Bench", "kibana.alert.severity": "high", "host.name": "ws-1", "source.ip": "203.0.113.7"}),
        );
        let event = format!("E{index:06}@@notable@@x");
        splunk.handle.add(
            at(index),
            &event,
            json!({"_time": at(index).to_rfc3339(), "event_id": event, "rule_name": "Bench - Rule",
            "urgency": "high", "src": "203.0.113.7", "dest": "ws-1"}),
        );
    }
    let sentinel_config = config(SourceKind::Sentinel(SentinelSource {
        workspace_id: sentinel::WORKSPACE_ID.to_owned(),
        token_url: sentinel.token_url(),
        client_id: sentinel::CLIENT_ID.to_owned(),
        client_secret: SecretString::new(sentinel::CLIENT_SECRET.to_owned()),
        scope: "https://api.loganalytics.io/.default".to_owned(),
        api_url: sentinel.api_url(),
    }));
    let elastic_config = config(SourceKind::Elastic(ElasticSource {
        url: elastic.url(),
        api_key: SecretString::new(aluskort_testkit::fake::elastic::API_KEY.to_owned()),
        index: ".alerts-security.alerts-default".to_owned(),
    }));
    let splunk_config = config(SourceKind::Splunk(SplunkSource {
        url: splunk.url(),
        token: SecretString::new(aluskort_testkit::fake::splunk::TOKEN.to_owned()),
        search: "search index=notable".to_owned(),
    }));

    let mut group = c.benchmark_group("poll");
    group.sample_size(10).measurement_time(Duration::from_secs(20)).throughput(Throughput::Elements(ALERTS as u64));
    for (name, source) in
        [("sentinel_null_sink", &sentinel_config), ("elastic_null_sink", &elastic_config), ("splunk_null_sink", &splunk_config)]
    {
        group.bench_function(name, |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let store: Arc<dyn CaseStore> = Arc::new(SqliteStore::in_memory().await.expect("store"));
                    let sink = Arc::new(Counting(AtomicU64::new(0)));
                    let mut connector = connector_for(source, store, sink.clone(), CancellationToken::new()).expect("connector");
                    connector.poll_once().await.expect("poll");
                    assert_eq!(sink.0.load(Ordering::Relaxed), ALERTS as u64);
                });
            });
        });
    }
    group.bench_function("sentinel_into_pipeline", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let dir = tempfile::tempdir().expect("tempdir");
                let store = Arc::new(SqliteStore::open(dir.path()).await.expect("store"));
                let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new());
                let pipeline = Pipeline::new(bus, store.clone(), Arc::new(AuditLog::new(store.clone())), PipelineSettings::default());
                let mut connector = connector_for(&sentinel_config, store.clone(), pipeline, CancellationToken::new()).expect("connector");
                let report = connector.poll_once().await.expect("poll");
                assert_eq!(report.published, ALERTS as u64);
                store.close().await;
            });
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
