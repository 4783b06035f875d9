//! `aluskort sources ...`: the configured SIEM connectors.
//!
//! - `list`: each source, its kind, whether it runs, and its saved checkpoint.
//! - `test <name>`: gets a token / authenticates, runs the first page query from the saved
//!   checkpoint, and prints what a poll would fetch. Publishes nothing, saves nothing.
//! - `poll <name>`: one poll now: publishes what is new, investigates it, saves the checkpoint.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use aluskort_config::{Config, SourceConfig, SourceKind};
use aluskort_connect::{AlertSink, connector_for};
use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::wiring::{Backends, Running, load_config};

fn find<'a>(config: &'a Config, name: &str) -> anyhow::Result<&'a SourceConfig> {
    config.source(name).with_context(|| {
        let known: Vec<&str> = config.sources.iter().map(|s| s.name.as_str()).collect();
        if known.is_empty() {
            format!("no source named {name:?}: the configuration has no [sources.*] tables")
        } else {
            format!("no source named {name:?} (configured: {})", known.join(", "))
        }
    })
}

fn endpoint(source: &SourceConfig) -> String {
    match &source.kind {
        SourceKind::Sentinel(s) => format!("Log Analytics {} workspace {} (token from {})", s.api_url, s.workspace_id, s.token_url),
        SourceKind::Elastic(e) => format!("Elasticsearch {} index {}", e.url, e.index),
        SourceKind::Splunk(s) => format!("Splunk {} search {:?}", s.url, s.search),
    }
}

pub async fn list(config_path: Option<&Path>, data_dir: Option<PathBuf>, env: &HashMap<String, String>) -> anyhow::Result<ExitCode> {
    let config = load_config(config_path, data_dir, env)?;
    if config.sources.is_empty() {
        println!("no sources configured (add [sources.<name>] tables; see config/aluskort.example.toml)");
        return Ok(ExitCode::SUCCESS);
    }
    let backends = Backends::open(&config).await?;
    for source in &config.sources {
        let checkpoint = backends.case_store.load_checkpoint(&source.name).await?;
        let position = checkpoint.and_then(|c| serde_json::from_value::<aluskort_connect::Checkpoint>(c).ok()).map_or_else(
            || "never polled".to_owned(),
            |c| format!("checkpoint {} ({} id(s) at that time)", c.time.to_rfc3339(), c.ids.len()),
        );
        println!(
            "{:<20} {:<9} {:<8} every {:>4}s  {}  {}",
            source.name,
            source.kind.as_str(),
            if source.enabled { "enabled" } else { "disabled" },
            source.poll_interval.as_secs(),
            position,
            endpoint(source)
        );
    }
    backends.close().await;
    Ok(ExitCode::SUCCESS)
}

pub async fn test(
    config_path: Option<&Path>,
    data_dir: Option<PathBuf>,
    env: &HashMap<String, String>,
    name: &str,
    limit: u32,
) -> anyhow::Result<ExitCode> {
    let config = load_config(config_path, data_dir, env)?;
    let source = find(&config, name)?.clone();
    let backends = Backends::open(&config).await?;
    let running = Running::start(&config, &backends).await?;
    println!("source {name}: {} — {}", source.kind.as_str(), endpoint(&source));
    let sink: Arc<dyn AlertSink> = running.pipeline.clone();
    let mut connector = connector_for(&source, Arc::clone(&backends.case_store), sink, CancellationToken::new())?;
    let result = connector.probe(limit).await;
    running.stop().await?;
    backends.close().await;
    match result {
        Ok((from, until, sample, more)) => {
            println!("connectivity and credentials: ok");
            println!("a poll now would fetch records from {} to {}:", from.time.to_rfc3339(), until.to_rfc3339());
            for record in &sample {
                let title = aluskort_ingest::identify(&record.payload, chrono::Utc::now()).map_or_else(
                    |error| format!("(unmappable: {error})"),
                    |identity| {
                        format!(
                            "{} [{}]{}",
                            identity.title,
                            identity.alert_id,
                            identity.noise.map(|n| format!(" — dropped as {n}")).unwrap_or_default()
                        )
                    },
                );
                println!("  {}  {}", record.time.to_rfc3339(), title);
            }
            match (sample.len(), more) {
                (0, _) => println!("  (nothing new)"),
                (n, true) => println!("  ... at least {n} record(s); more follow"),
                (n, false) => println!("  {n} record(s) in all"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            eprintln!("error: {error}");
            Ok(ExitCode::from(1))
        }
    }
}

pub async fn poll(
    config_path: Option<&Path>,
    data_dir: Option<PathBuf>,
    env: &HashMap<String, String>,
    name: &str,
) -> anyhow::Result<ExitCode> {
    let config = load_config(config_path, data_dir, env)?;
    let source = find(&config, name)?.clone();
    let backends = Backends::open(&config).await?;
    let running = Running::start(&config, &backends).await?;
    let sink: Arc<dyn AlertSink> = running.pipeline.clone();
    let mut connector = connector_for(&source, Arc::clone(&backends.case_store), sink, CancellationToken::new())?;
    let result = connector.poll_once().await;
    // Let the pipeline finish what was published before stopping it (the raw inbox empties).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    while !backends.case_store.pending_raw(1).await?.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    running.stop().await?;
    backends.close().await;
    match result {
        Ok(report) => {
            println!(
                "source {name}: {} page(s), {} fetched, {} published, {} duplicate(s), {} dropped (heartbeat/test), {} dead-lettered; checkpoint {}",
                report.pages,
                report.fetched,
                report.published,
                report.duplicates,
                report.dropped,
                report.dead_lettered,
                report.checkpoint.map_or_else(|| "-".to_owned(), |c| c.time.to_rfc3339())
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            eprintln!("error: {error}");
            Ok(ExitCode::from(1))
        }
    }
}

/// Starts a polling task per enabled source (for `serve`).
pub fn start_connectors(
    config: &Config,
    backends: &Backends,
    running: &Running,
    shutdown: &CancellationToken,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut tasks = Vec::new();
    for source in config.sources.iter().filter(|s| s.enabled) {
        let sink: Arc<dyn AlertSink> = running.pipeline.clone();
        let connector = connector_for(source, Arc::clone(&backends.case_store), sink, shutdown.clone())
            .with_context(|| format!("source {}", source.name))?;
        tasks.push(tokio::spawn(connector.run(shutdown.clone())));
    }
    Ok(tasks)
}
