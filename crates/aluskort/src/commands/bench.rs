//! `aluskort bench pipeline` (alias `bench triage`): end-to-end pipeline throughput and
//! alert-to-verdict latency on the embedded backends.
//!
//! Builds N alerts from templates (the bundled demo alerts, or `--source FILE`), giving each a
//! unique id and, every `--group` alerts, its own host, device, account, file hash, URL and
//! mailbox (so incidents stay realistic in size, one group's alerts each), runs them through the full pipeline in a scratch data
//! directory at a given rate or as a burst, verifies the audit chain, and reports alerts/s,
//! alert-to-verdict percentiles and peak memory.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use serde_json::Value;

use crate::wiring::{Backends, Running};

const DEMO_ALERTS: &str = include_str!("../../../../examples/sentinel-demo.jsonl");

/// Most records submitted as one page.
const BENCH_PAGE: usize = 256;

/// Load shape of a benchmark run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub alerts: usize,
    pub group: usize,
    pub source: Option<PathBuf>,
    /// Submissions per second; `None` submits as fast as the pipeline accepts (a burst).
    pub rate: Option<f64>,
    /// Then time the analyst API's reads over the investigations made (`bench api`).
    pub api: bool,
    /// Run in this directory (new or empty) and leave the data there; a scratch directory,
    /// removed afterwards, when `None`.
    pub keep: Option<PathBuf>,
}

/// `bench triage` / `bench pipeline`: synthetic alerts through the whole embedded pipeline with
/// the deterministic reasoner; prints throughput and alert-to-verdict latency (submit → the
/// investigation's outcome on `incidents.enriched`), p50/p99/max.
pub async fn run(options: BenchOptions) -> anyhow::Result<ExitCode> {
    let BenchOptions { alerts, group, source, rate, api, keep } = options;
    anyhow::ensure!(alerts > 0, "--alerts must be at least 1");
    if let Some(rate) = rate {
        anyhow::ensure!(rate.is_finite() && rate > 0.0, "--rate must be a positive number of alerts per second");
    }
    let templates: Vec<Value> = match &source {
        Some(path) => {
            let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            aluskort_ingest::read_records(&path.display().to_string(), &bytes).into_iter().filter_map(|r| r.record.ok()).collect()
        }
        None => aluskort_ingest::read_records("demo", DEMO_ALERTS.as_bytes()).into_iter().filter_map(|r| r.record.ok()).collect(),
    };
    anyhow::ensure!(!templates.is_empty(), "no alert templates");
    let group = group.max(1);
    let records: Vec<(String, Value)> = (0..alerts)
        .map(|index| (format!("bench-{}-{index}", std::process::id()), variant(&templates[index % templates.len()], index, index / group)))
        .collect();

    let data_dir = data_dir(keep.as_deref())?;
    let env = std::collections::HashMap::new();
    let config = crate::wiring::load_config(None, Some(data_dir.clone()), &env)?;
    let backends = Backends::open(&config).await?;
    let running = Running::start(&config, &backends).await?;
    let pipeline = Arc::clone(&running.pipeline);
    let expected: HashSet<String> = records.iter().map(|(id, _)| id.clone()).collect();
    let submitted: Arc<Mutex<HashMap<String, Instant>>> = Arc::new(Mutex::new(HashMap::with_capacity(alerts)));
    let started = Instant::now();
    let submitter = {
        let (pipeline, submitted) = (Arc::clone(&pipeline), Arc::clone(&submitted));
        tokio::spawn(async move {
            // Records go in as pages, the way connectors deliver them: a burst in pages of
            // `BENCH_PAGE`; at a rate, whatever has fallen due since the last page.
            let total = records.len();
            let mut records = records.into_iter();
            let mut sent = 0usize;
            while sent < total {
                let due = match rate {
                    None => total,
                    Some(rate) => {
                        let due = ((started.elapsed().as_secs_f64() * rate).floor() as usize + 1).min(total);
                        if due <= sent {
                            let next = started + std::time::Duration::from_secs_f64(sent as f64 / rate);
                            tokio::time::sleep_until(next.into()).await;
                            continue;
                        }
                        due
                    }
                };
                let page: Vec<(String, String, Value)> =
                    records.by_ref().take((due - sent).min(BENCH_PAGE)).map(|(id, record)| (id, "bench".to_owned(), record)).collect();
                sent += page.len();
                let now = Instant::now();
                submitted.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend(page.iter().map(|(id, _, _)| (id.clone(), now)));
                pipeline.submit_many(page).await?;
            }
            anyhow::Ok(())
        })
    };
    let mut latencies = Vec::with_capacity(alerts);
    let outcomes = pipeline
        .await_outcomes(expected, "aluskort.bench", |outcome| {
            let at = submitted.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&outcome.ingest_id).copied();
            if let Some(at) = at {
                latencies.push(at.elapsed());
            }
        })
        .await?;
    let elapsed = started.elapsed();
    submitter.await.context("submitter panicked")??;
    if api {
        measure_api(&config, &backends, &running).await?;
    }
    running.stop().await?;
    let report = aluskort_audit::verify_store(backends.audit_store.as_ref()).await?;
    backends.close().await;
    if keep.is_none() {
        let _ = std::fs::remove_dir_all(&data_dir);
    }
    let failed = outcomes.iter().filter(|o| o.error.is_some()).count();
    latencies.sort();
    let percentile = |p: f64| percentile_ms(&latencies, p);
    println!(
        "bench pipeline: {alerts} alerts in {:.2}s = {:.0} alerts/s end to end ({}; embedded SQLite, deterministic); \
         alert-to-verdict p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {failed} rejected; audit chain {} ({} records); peak RSS {}",
        elapsed.as_secs_f64(),
        alerts as f64 / elapsed.as_secs_f64().max(f64::EPSILON),
        rate.map_or_else(|| "burst".to_owned(), |rate| format!("offered {rate:.0}/s")),
        percentile(0.50),
        percentile(0.99),
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1_000.0),
        if report.first_break.is_none() { "valid" } else { "BROKEN" },
        report.records,
        peak_rss().unwrap_or_else(|| "unknown".to_owned()),
    );
    if let Some(dir) = &keep {
        println!("bench pipeline: data left in {}", dir.display());
    }
    Ok(if failed == 0 && report.first_break.is_none() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Where a benchmark keeps its data: `keep` when given (new or empty: a benchmark starts from no
/// data), else a scratch directory under the system's temporary directory.
fn data_dir(keep: Option<&std::path::Path>) -> anyhow::Result<PathBuf> {
    match keep {
        Some(dir) => {
            let empty = std::fs::read_dir(dir).map_or(true, |mut entries| entries.next().is_none());
            anyhow::ensure!(empty, "--keep {}: the directory is not empty (a benchmark starts from no data)", dir.display());
            Ok(dir.to_path_buf())
        }
        None => Ok(std::env::temp_dir().join(format!("aluskort-bench-{}", uuid_like()))),
    }
}

/// The `p` quantile (nearest rank) of `sorted`, in milliseconds; 0 when there is none.
pub fn percentile_ms(sorted: &[std::time::Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len().max(1)) - 1;
    sorted.get(index).map_or(0.0, |d| d.as_secs_f64() * 1_000.0)
}

/// `bench api`: the analyst API over real HTTP on loopback against the investigations just made:
/// the routes the web UI calls, each timed over repeated requests (p50/p99), and a walk through
/// every page of the queue by cursor.
async fn measure_api(config: &aluskort_config::Config, backends: &Backends, running: &Running) -> anyhow::Result<()> {
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder().handle();
    let state = crate::commands::serve::app_state(config, backends, running, metrics, aluskort_api::auth::Auth::disabled());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("bind a loopback port")?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, aluskort_api::router(state, 1 << 20)).await });
    let client = reqwest::Client::new();
    let get = |path: String| {
        let (client, url) = (client.clone(), format!("{base}{path}"));
        async move {
            let started = Instant::now();
            let response = client.get(&url).send().await.with_context(|| format!("GET {url}"))?;
            anyhow::ensure!(response.status().is_success(), "GET {url}: {}", response.status());
            let body: Value = response.json().await.with_context(|| format!("GET {url}: not JSON"))?;
            anyhow::Ok((started.elapsed(), body))
        }
    };
    let (_, first) = get("/v1/investigations?limit=100".to_owned()).await?;
    let some_id = first["investigations"][0]["investigation_id"].as_str().unwrap_or_default().to_owned();
    let tenant = first["investigations"][0]["tenant_id"].as_str().unwrap_or_default().to_owned();
    let routes = [
        ("queue, first page of 100", "/v1/investigations?limit=100".to_owned()),
        ("queue filtered by state", "/v1/investigations?state=awaiting_human&limit=100".to_owned()),
        ("incidents, first page", "/v1/incidents?limit=100".to_owned()),
        ("alerts, first page", "/v1/alerts?limit=100".to_owned()),
        ("one investigation", format!("/v1/investigations/{some_id}")),
        ("audit events, first page", format!("/v1/audit/events?tenant={tenant}&limit=100")),
        ("approvals inbox", "/v1/approvals?limit=100".to_owned()),
        ("degradation banner", "/v1/degradation".to_owned()),
    ];
    for (name, path) in routes {
        let mut times = Vec::with_capacity(50);
        for _ in 0..50 {
            times.push(get(path.clone()).await?.0);
        }
        times.sort();
        println!("bench api: {name:<28} p50 {:>7.2} ms  p99 {:>7.2} ms  ({path})", percentile_ms(&times, 0.5), percentile_ms(&times, 0.99));
    }
    // Every page of the queue, by cursor.
    let (mut pages, mut rows, mut cursor) = (0usize, 0usize, None::<String>);
    let started = Instant::now();
    loop {
        let path = match &cursor {
            None => "/v1/investigations?limit=100".to_owned(),
            Some(cursor) => format!("/v1/investigations?limit=100&cursor={cursor}"),
        };
        let (_, body) = get(path).await?;
        pages += 1;
        rows += body["count"].as_u64().unwrap_or(0) as usize;
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let walked = started.elapsed().as_secs_f64();
    println!(
        "bench api: whole queue by cursor: {rows} investigations in {pages} pages, {walked:.2}s ({:.1} ms/page)",
        walked * 1_000.0 / pages as f64
    );
    server.abort();
    Ok(())
}

/// A copy of `template` with a unique id and the entities that identify a group's activity (host,
/// device, account, file hash, URL, mailbox, mail message) made the group's own (Sentinel rows;
/// other formats only get the id): groups share no link key, as unrelated activity does not.
fn variant(template: &Value, index: usize, group: usize) -> Value {
    let mut record = template.clone();
    let Some(map) = record.as_object_mut() else { return record };
    if let Some(Value::String(id)) = map.get("SystemAlertId").cloned() {
        map.insert("SystemAlertId".to_owned(), Value::String(format!("{id}-bench-{index}")));
    }
    for field in ["alert_id", "event_id", "kibana.alert.uuid"] {
        if let Some(Value::String(id)) = map.get(field).cloned() {
            map.insert(field.to_owned(), Value::String(format!("{id}-bench-{index}")));
        }
    }
    if let Some(Value::String(entities)) = map.get("Entities").cloned()
        && let Ok(mut parsed) = serde_json::from_str::<Value>(&entities)
    {
        rename(&mut parsed, group);
        map.insert("Entities".to_owned(), Value::String(parsed.to_string()));
    }
    record
}

fn rename(value: &mut Value, group: usize) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                match (key.as_str(), &*child) {
                    ("HostName" | "Name" | "AadUserId" | "Sid", Value::String(text)) => *child = Value::String(format!("{text}-g{group}")),
                    // Device ids, file hashes and mail message ids keep their hex shape (the
                    // extractor validates hashes); URLs and mailboxes stay well-formed.
                    ("MdatpDeviceId" | "NetworkMessageId" | "Value", Value::String(text)) => {
                        *child = Value::String(hex_suffix(text, group))
                    }
                    ("Url", Value::String(text)) => *child = Value::String(format!("{text}/g{group}")),
                    ("MailboxPrimaryAddress", Value::String(text)) => {
                        *child = Value::String(text.replacen('@', &format!("-g{group}@"), 1));
                    }
                    _ => rename(child, group),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| rename(item, group)),
        _ => {}
    }
}

/// `text` with its last eight characters replaced by `group` in hex (when they are hex digits).
fn hex_suffix(text: &str, group: usize) -> String {
    let cut = text.len().saturating_sub(8);
    match text.get(cut..) {
        Some(tail) if text.len() >= 8 && tail.chars().all(|c| c.is_ascii_hexdigit() || c == '-') => {
            format!("{}{:08x}", &text[..cut], group % (1 << 32))
        }
        _ => format!("{text}-g{group}"),
    }
}

fn uuid_like() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
    )
}

/// Peak resident set size (Linux `VmHWM`).
fn peak_rss() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find(|line| line.starts_with("VmHWM:")).map(|line| line.trim_start_matches("VmHWM:").trim().to_owned())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    /// Alerts of one group share their link keys; two groups share none (a demo template's
    /// device id, file hash or phishing URL used to tie every group into 150-alert incidents).
    #[test]
    fn groups_share_no_entity_key() {
        let keys = |record: serde_json::Value| {
            let raw = aluskort_ingest::RawAlert {
                ingest_id: "bench".to_owned(),
                origin: "bench".to_owned(),
                received_at: chrono::Utc::now(),
                payload: record,
                tenant: None,
            };
            let normalized = aluskort_ingest::normalize(&raw).expect("demo alert normalises");
            aluskort_investigate::grouping::entity_keys(&normalized.entities)
        };
        let templates = aluskort_ingest::read_records("demo", super::DEMO_ALERTS.as_bytes());
        for template in templates.into_iter().filter_map(|r| r.record.ok()) {
            let first = keys(super::variant(&template, 0, 1));
            assert!(!first.is_empty(), "{template}");
            assert_eq!(keys(super::variant(&template, 1, 1)), first, "same group, same keys");
            let other = keys(super::variant(&template, 2, 2));
            assert!(first.iter().all(|key| !other.contains(key)), "{first:?} vs {other:?}");
        }
    }

    #[test]
    fn kept_data_goes_only_into_a_new_or_empty_directory() {
        let parent = tempfile::tempdir().expect("tempdir");
        let fresh = parent.path().join("fresh");
        assert_eq!(super::data_dir(Some(&fresh)).expect("a new directory"), fresh);
        std::fs::create_dir(&fresh).expect("mkdir");
        assert_eq!(super::data_dir(Some(&fresh)).expect("an empty directory"), fresh);
        std::fs::write(fresh.join("aluskort.db"), b"earlier run").expect("write");
        let error = super::data_dir(Some(&fresh)).expect_err("a directory holding data");
        assert!(error.to_string().contains("is not empty"), "{error}");
        let scratch = super::data_dir(None).expect("scratch");
        assert!(scratch.starts_with(std::env::temp_dir()), "{}", scratch.display());
    }

    #[test]
    fn percentiles_are_nearest_rank_in_milliseconds() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(super::percentile_ms(&sorted, 0.5), 50.0);
        assert_eq!(super::percentile_ms(&sorted, 0.99), 99.0);
        assert_eq!(super::percentile_ms(&sorted[..1], 0.99), 1.0);
        assert_eq!(super::percentile_ms(&[], 0.5), 0.0);
    }
}
