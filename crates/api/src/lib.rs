//! HTTP API (axum): health, readiness, Prometheus metrics, alert submission, the analyst API under
//! `/v1` (its routes and OpenAPI document in [`openapi`]) and the web UI under `/ui` ([`ui`]).
//! [`error`] is the only place that maps error kinds to HTTP status codes.

mod approvals;
mod audit;
pub mod auth;
pub mod error;
mod feedback;
mod incidents;
mod listings;
pub mod oidc;
pub mod openapi;
mod page;
mod routes;
mod stream;
mod ui;

pub use routes::SIGNATURE_HEADER;

use std::sync::Arc;

use aluskort_bus::Bus;
use aluskort_config::SecretString;
use aluskort_investigate::Pipeline;
use aluskort_store::CaseStore;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
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
    /// The model-call ledger, for `/v1/llm/usage`; `None` reports no calls.
    pub usage: Option<Arc<dyn aluskort_store::UsageStore>>,
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

/// The application router (STYLE ex. 13: `app() -> Router`, tested with `oneshot`): every route of
/// [`openapi::routes`], and the web UI.
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    let mut router = Router::new();
    for route in openapi::routes() {
        router = router.route(route.spec.path, route.handler);
    }
    router.merge(ui::router()).layer(DefaultBodyLimit::max(max_body_bytes)).with_state(state)
}

#[cfg(test)]
mod auth_tests;
#[cfg(test)]
mod tests;
