//! `aluskort serve`: the HTTP API plus the pipeline stages, until Ctrl-C (or SIGTERM), then a
//! graceful shutdown: stop accepting, let stages finish their current message, close the store.
//! On start, raw records accepted but never finished (a previous crash) are replayed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use aluskort_api::AppState;
use anyhow::Context;
use metrics_exporter_prometheus::PrometheusBuilder;
use tracing::{info, warn};

use crate::wiring::{Backends, Running, load_config};

pub async fn run(
    config_path: Option<&Path>,
    data_dir: Option<PathBuf>,
    env: &HashMap<String, String>,
    listen: Option<SocketAddr>,
) -> anyhow::Result<ExitCode> {
    let config = load_config(config_path, data_dir, env)?;
    let listen_addr = listen.unwrap_or(config.listen_addr);
    let metrics = PrometheusBuilder::new().install_recorder().context("cannot install the metrics recorder")?;
    let backends = Backends::open(&config).await?;
    let running = Running::start(&config, &backends).await?;
    let replayed = running.pipeline.replay_pending().await?;
    if replayed > 0 {
        warn!(replayed, "replayed raw records left pending by a previous run");
    }

    let state = AppState {
        pipeline: Arc::clone(&running.pipeline),
        store: Arc::clone(&backends.case_store),
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
    };
    let connectors_shutdown = tokio_util::sync::CancellationToken::new();
    let connectors = crate::commands::sources::start_connectors(&config, &backends, &running, &connectors_shutdown)?;
    let app = aluskort_api::router(state, config.max_body_bytes);
    let listener = tokio::net::TcpListener::bind(listen_addr).await.with_context(|| format!("cannot listen on {listen_addr}"))?;
    info!(address = %listener.local_addr()?, data_dir = %config.data_dir.display(), "aluskort serving");
    eprintln!("aluskort serving on http://{}", listener.local_addr()?);
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
