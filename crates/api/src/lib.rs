//! HTTP API (axum): health, readiness, Prometheus metrics, alert submission and investigation
//! queries. [`error`] is the only place that maps error kinds to HTTP status codes.

mod approvals;
mod audit;
pub mod auth;
pub mod error;
mod feedback;
mod incidents;
pub mod oidc;
mod routes;
mod stream;

pub use routes::SIGNATURE_HEADER;

use std::sync::Arc;

use aluskort_bus::Bus;
use aluskort_config::SecretString;
use aluskort_investigate::Pipeline;
use aluskort_store::CaseStore;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;

/// Everything handlers need.
#[derive(Clone)]
pub struct AppState {
    pub pipeline: Arc<Pipeline>,
    pub store: Arc<dyn CaseStore>,
    pub bus: Arc<dyn Bus>,
    pub metrics: PrometheusHandle,
    /// `api.webhook_secret`: when set, `POST /v1/alerts` bodies must be signed.
    pub webhook_secret: Option<SecretString>,
    /// The model gateway, for its providers' health in `/ready`.
    pub gateway: Option<Arc<aluskort_gateway::Gateway>>,
    /// Approval gates and response actions; `None` serves no `/v1/approvals`.
    pub responder: Option<Arc<aluskort_respond::service::Responder>>,
    /// Analyst feedback and FP pattern proposals; `None` serves no feedback route.
    pub feedback: Option<Arc<aluskort_respond::feedback::FeedbackStores>>,
    /// The audit trail, for `/v1/audit`; `None` serves no audit route.
    pub audit: Option<Arc<dyn aluskort_store::AuditStore>>,
    /// API keys and roles (`[api.auth]`).
    pub auth: Arc<auth::Auth>,
}

/// Probes and metrics only, for a stage worker (`aluskort worker`): `/health`, `/ready` (store,
/// bus and gateway as for the full API) and `/metrics`.
pub fn probes_router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(routes::health))
        .route("/ready", get(routes::ready))
        .route("/metrics", get(routes::metrics))
        .with_state(state)
}

/// The application router (STYLE ex. 13: `app() -> Router`, tested with `oneshot`).
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/health", get(routes::health))
        .route("/ready", get(routes::ready))
        .route("/metrics", get(routes::metrics))
        .route("/v1/alerts", post(routes::post_alerts))
        // Splunk alert actions and other senders that want a path of their own: same receiver.
        .route("/v1/webhooks/splunk", post(routes::post_alerts))
        .route("/v1/investigations", get(routes::list_investigations))
        .route("/v1/investigations/{id}", get(routes::get_investigation))
        .route("/v1/stream", get(stream::stream))
        .route("/v1/incidents", get(incidents::list))
        .route("/v1/incidents/{id}", get(incidents::get))
        .route("/v1/fp-patterns", get(incidents::fp_patterns))
        .route("/v1/investigations/{id}/feedback", post(feedback::post))
        .route("/v1/approvals", get(approvals::list))
        .route("/v1/approvals/{id}", get(approvals::get))
        .route("/v1/approvals/{id}/approve", post(approvals::approve))
        .route("/v1/approvals/{id}/reject", post(approvals::reject))
        .route("/v1/audit/verify", get(audit::verify))
        .route("/v1/audit/evidence-package/{id}", get(audit::evidence_package))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

#[cfg(test)]
mod auth_tests;
#[cfg(test)]
mod tests;
