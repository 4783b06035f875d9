//! `aluskort serve`: the HTTP API plus the pipeline stages, until Ctrl-C (or SIGTERM), then a
//! graceful shutdown: stop accepting, let stages finish their current message, close the store.
//! On start, raw records accepted but never finished (a previous crash) are replayed.
//!
//! With `[bus] backend = "kafka"` the same binary also runs one part only (issue 9, NFR-SCL-001):
//! `serve --api-only` (the API; alerts it accepts go to `alerts.raw`), and `worker --stage S`
//! (one stage, with `/health`, `/ready` and `/metrics` for the orchestrator's probes). All of
//! them are stateless: state is in the case store, Redis and Kafka, configured by the same file.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use aluskort_api::AppState;
use anyhow::Context;
use metrics_exporter_prometheus::PrometheusBuilder;
use tracing::{info, warn};

use crate::wiring::{Backends, Running, Stages, load_config};

/// One part of the pipeline (`aluskort worker --stage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Stage {
    /// SIEM connectors (and replay of raw records a crash left pending) → `alerts.raw`.
    Ingest,
    /// `alerts.raw` → `alerts.normalized`.
    Parse,
    /// `alerts.normalized` → investigations → `incidents.enriched`.
    Investigate,
    /// Approvals, exactly-once actions, notifications, FP pattern expiry.
    Respond,
    /// Verifies the audit chain every 5 minutes (the chain itself is written with each change).
    Audit,
}

/// What `serve` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The API, every stage and the connectors.
    All,
    /// The API only.
    ApiOnly,
    /// One stage, with probes.
    Worker(Stage),
}

/// How often the audit worker verifies the chain (REQUIREMENTS §1.9 "Verification: every 5 min").
const AUDIT_VERIFY_EVERY: std::time::Duration = std::time::Duration::from_secs(300);
/// Bucket bounds of every `*_seconds` histogram: alert-to-verdict (target median < 30 s), model
/// latency, jobs.
const SECONDS_BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0];
/// How often the coming months' audit partitions are checked (PostgreSQL).
#[cfg(feature = "postgres")]
const PARTITION_MAINTENANCE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// How `serve` or `worker` was asked to run.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Overrides `listen_addr`.
    pub listen: Option<SocketAddr>,
    pub mode: Mode,
    /// `--no-auth`: `[api.auth] disabled = true` for this run (loopback only).
    pub no_auth: bool,
}

pub async fn run(
    config_path: Option<&Path>,
    data_dir: Option<PathBuf>,
    env: &HashMap<String, String>,
    options: Options,
) -> anyhow::Result<ExitCode> {
    let Options { listen, mode, no_auth } = options;
    let mut config = load_config(config_path, data_dir, env)?;
    config.auth.disabled |= no_auth;
    if mode != Mode::All && config.bus == aluskort_config::BusConfig::Memory {
        anyhow::bail!(
            "running one part of the pipeline needs `[bus] backend = \"kafka\"`: with the in-process bus, stages in \
             separate processes cannot reach each other (use `aluskort serve` for everything in one process)"
        );
    }
    let listen_addr = listen.unwrap_or(config.listen_addr);
    anyhow::ensure!(
        !config.auth.disabled || listen_addr.ip().is_loopback(),
        "[api.auth] disabled = true (or --no-auth) is for local use only: refusing to listen on {listen_addr} (use a loopback address, or configure API keys)"
    );
    // Durations as histograms (buckets add up across replicas; the dashboard takes quantiles of them).
    let metrics = PrometheusBuilder::new()
        .set_buckets_for_metric(metrics_exporter_prometheus::Matcher::Suffix("_seconds".to_owned()), SECONDS_BUCKETS)
        .context("cannot set the metric buckets")?
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    let backends = Backends::open(&config).await?;
    let stages = match mode {
        Mode::All => Stages::ALL,
        Mode::ApiOnly | Mode::Worker(Stage::Ingest | Stage::Audit) => Stages::NONE,
        Mode::Worker(Stage::Parse) => Stages { parse: true, ..Stages::NONE },
        Mode::Worker(Stage::Investigate) => Stages { investigate: true, ..Stages::NONE },
        Mode::Worker(Stage::Respond) => Stages { respond: true, ..Stages::NONE },
    };
    let running = Running::start_stages(&config, &backends, stages).await?;
    if matches!(mode, Mode::All | Mode::Worker(Stage::Ingest)) {
        let replayed = running.pipeline.replay_pending().await?;
        if replayed > 0 {
            warn!(replayed, "replayed raw records left pending by a previous run");
        }
    }

    let state = app_state(&config, &backends, &running, metrics, aluskort_api::auth::Auth::new(&config.auth));
    let connectors_shutdown = tokio_util::sync::CancellationToken::new();
    let connectors = if matches!(mode, Mode::All | Mode::Worker(Stage::Ingest)) {
        crate::commands::sources::start_connectors(&config, &backends, &running, &connectors_shutdown)?
    } else {
        Vec::new()
    };
    if mode == Mode::Worker(Stage::Audit) {
        spawn_audit_verifier(&connectors_shutdown, &backends);
    }
    #[cfg(feature = "postgres")]
    if let (Mode::All | Mode::Worker(Stage::Audit), Some(store)) = (mode, backends.partitioned_audit()) {
        spawn_partition_maintenance(&connectors_shutdown, store);
    }
    // The lag of each topic a stage of this process consumes.
    use aluskort_bus::{Topic, topic::group};
    let consumed: Vec<(Topic, &'static str)> =
        [(stages.parse, Topic::AlertsRaw, group::ENTITY_PARSER), (stages.investigate, Topic::AlertsNormalized, group::ORCHESTRATOR)]
            .into_iter()
            .filter_map(|(runs, topic, group)| runs.then_some((topic, group)))
            .collect();
    if !consumed.is_empty() {
        spawn_lag_gauges(&connectors_shutdown, running.bus.shared(), consumed);
    }
    let app = match mode {
        Mode::All | Mode::ApiOnly => aluskort_api::router(state, config.max_body_bytes),
        Mode::Worker(_) => aluskort_api::probes_router(state),
    };
    let listener = tokio::net::TcpListener::bind(listen_addr).await.with_context(|| format!("cannot listen on {listen_addr}"))?;
    let what = match mode {
        Mode::All => "aluskort serving".to_owned(),
        Mode::ApiOnly => "aluskort serving the API only".to_owned(),
        Mode::Worker(stage) => format!("aluskort {} worker, probes", format!("{stage:?}").to_lowercase()),
    };
    info!(address = %listener.local_addr()?, data_dir = %config.data_dir.display(), "{what}");
    eprintln!("{what} on http://{}", listener.local_addr()?);
    if matches!(mode, Mode::All | Mode::ApiOnly) {
        eprintln!("web UI: http://{}/ui/", listener.local_addr()?);
        let auth = &config.auth;
        if auth.disabled {
            eprintln!("note: authentication is off (local use): every request is served as a local admin");
        } else if auth.keys.is_empty() && auth.oidc.is_none() {
            warn!("no API keys or OIDC issuer are configured: every /v1 request and the web UI will be refused (401)");
            eprintln!(
                "note: no API keys are configured, so /v1 and the web UI refuse every caller; `aluskort api-key new \
                 --name <you> --role senior_analyst` prints a key and the [[api.auth.keys]] entry to add; to try it on this \
                 machine only, `aluskort serve --no-auth`"
            );
        }
    }
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => info!("shutdown requested"),
            () = terminate() => info!("terminate signal received"),
        }
    });
    let served = server.await;
    connectors_shutdown.cancel();
    for connector in connectors {
        if let Err(error) = connector.await {
            warn!(%error, "connector task ended abnormally");
        }
    }
    if let Err(error) = running.stop().await {
        warn!(error = %format!("{error:#}"), "pipeline stage failed");
    }
    backends.close().await;
    served.context("http server failed")?;
    Ok(ExitCode::SUCCESS)
}

/// How often a stage's consumer lag is measured.
const LAG_EVERY: std::time::Duration = std::time::Duration::from_secs(15);

/// Runs `tick` every `every` until `shutdown`: at once and then each period, or (`at_once`
/// false) first after one period.
fn spawn_every<F, Fut>(shutdown: &tokio_util::sync::CancellationToken, every: std::time::Duration, at_once: bool, mut tick: F)
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        let start = if at_once { tokio::time::Instant::now() } else { tokio::time::Instant::now() + every };
        let mut ticker = tokio::time::interval_at(start, every);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            tick().await;
        }
    });
}

/// `aluskort_bus_pending{topic,group}`: messages of each consumed topic its group has not yet
/// acknowledged (the Kafka bus: high watermarks minus committed offsets), every [`LAG_EVERY`].
fn spawn_lag_gauges(
    shutdown: &tokio_util::sync::CancellationToken,
    bus: Arc<dyn aluskort_bus::Bus>,
    consumed: Vec<(aluskort_bus::Topic, &'static str)>,
) {
    let consumed = Arc::new(consumed);
    spawn_every(shutdown, LAG_EVERY, true, move || {
        let (bus, consumed) = (Arc::clone(&bus), Arc::clone(&consumed));
        async move {
            for (topic, group) in consumed.iter() {
                match bus.pending(*topic, group).await {
                    Ok(pending) => metrics::gauge!("aluskort_bus_pending", "topic" => topic.name(), "group" => *group).set(pending as f64),
                    Err(error) => warn!(%error, topic = topic.name(), "consumer lag not measured"),
                }
            }
        }
    });
}

/// Makes the coming months' audit and incident-memory partitions every [`PARTITION_MAINTENANCE_EVERY`], until
/// `shutdown` (connecting made the first ones).
#[cfg(feature = "postgres")]
fn spawn_partition_maintenance(shutdown: &tokio_util::sync::CancellationToken, store: aluskort_store::PostgresStore) {
    spawn_every(shutdown, PARTITION_MAINTENANCE_EVERY, false, move || {
        let store = store.clone();
        async move {
            if let Err(error) = store.prepare_partitions(chrono::Utc::now()).await {
                warn!(%error, "audit and incident-memory partitions not prepared; retrying later");
            }
        }
    });
}

/// The audit worker's periodic verification, until `shutdown`.
fn spawn_audit_verifier(shutdown: &tokio_util::sync::CancellationToken, backends: &Backends) {
    let store = Arc::clone(&backends.audit_store);
    spawn_every(shutdown, AUDIT_VERIFY_EVERY, true, move || {
        let store = Arc::clone(&store);
        async move {
            match aluskort_audit::verify_store(store.as_ref()).await {
                Ok(report) if report.first_break.is_none() => {
                    metrics::gauge!("aluskort_audit_chain_valid").set(1.0);
                    info!(records = report.records, tenants = report.tenants, "audit chain verified");
                }
                Ok(report) => {
                    metrics::gauge!("aluskort_audit_chain_valid").set(0.0);
                    tracing::error!(first_break = ?report.first_break, "AUDIT CHAIN BROKEN");
                }
                Err(error) => warn!(%error, "audit chain not verified; retrying later"),
            }
        }
    });
}

#[cfg(unix)]
async fn terminate() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut signal) => {
            signal.recv().await;
        }
        Err(_) => std::future::pending::<()>().await,
    }
}

#[cfg(not(unix))]
async fn terminate() {
    std::future::pending::<()>().await
}

/// What the API's handlers need, from the process's backends and stages.
pub fn app_state(
    config: &aluskort_config::Config,
    backends: &Backends,
    running: &Running,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
    auth: Arc<aluskort_api::auth::Auth>,
) -> AppState {
    AppState {
        pipeline: Arc::clone(&running.pipeline),
        store: Arc::clone(&backends.case_store),
        audit: Some(Arc::clone(&backends.audit_store)),
        usage: Some(Arc::clone(&backends.usage_store)),
        auth,
        bus: running.bus.shared(),
        metrics,
        webhook_secret: config.webhook_secret.clone(),
        gateway: Some(Arc::clone(&running.gateway)),
        responder: Some(Arc::clone(&running.responder)),
        feedback: Some(Arc::new(aluskort_respond::feedback::FeedbackStores {
            cases: Arc::clone(&backends.case_store),
            responses: Arc::clone(&backends.responses),
            context: Arc::clone(&backends.context),
            audit: Arc::clone(&running.responder.audit),
            memory: backends.incident_memory.clone(),
            policy: aluskort_respond::feedback::FpPolicy::default(),
        })),
    }
}
