//! API errors and their HTTP mapping: the one place that knows status codes.

use aluskort_store::{StoreError, StoreErrorKind};
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug)]
pub enum ApiError {
    /// The request is wrong; `field` names what to fix.
    BadRequest {
        field: String,
        reason: String,
    },
    /// Authentication failed; `field` names the header.
    Unauthorized {
        field: String,
        reason: String,
    },
    /// Authenticated, but the caller's role or tenants do not allow it.
    Forbidden(String),
    NotFound(String),
    /// The request is valid but the resource is not in a state that allows it.
    Conflict(String),
    Store(StoreError),
    Internal(anyhow::Error),
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        ApiError::Store(error)
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(error: anyhow::Error) -> Self {
        ApiError::Internal(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            ApiError::BadRequest { field, reason } => {
                (StatusCode::BAD_REQUEST, json!({"error": "bad_request", "field": field, "reason": reason}))
            }
            ApiError::Unauthorized { field, reason } => {
                (StatusCode::UNAUTHORIZED, json!({"error": "unauthorized", "field": field, "reason": reason}))
            }
            ApiError::Forbidden(reason) => (StatusCode::FORBIDDEN, json!({"error": "forbidden", "reason": reason})),
            ApiError::NotFound(what) => (StatusCode::NOT_FOUND, json!({"error": "not_found", "reason": what})),
            ApiError::Conflict(reason) => (StatusCode::CONFLICT, json!({"error": "conflict", "reason": reason})),
            ApiError::Store(error) => {
                let status = match error.kind {
                    StoreErrorKind::NotFound => StatusCode::NOT_FOUND,
                    StoreErrorKind::Conflict => StatusCode::CONFLICT,
                    StoreErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
                    StoreErrorKind::Unavailable | StoreErrorKind::Timeout => StatusCode::SERVICE_UNAVAILABLE,
                    StoreErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
                };
                tracing::warn!(%error, "store error in request");
                (status, json!({"error": format!("{:?}", error.kind).to_lowercase(), "reason": "state store error; see server log"}))
            }
            ApiError::Internal(error) => {
                tracing::error!(error = %format!("{error:#}"), "internal error in request");
                (StatusCode::INTERNAL_SERVER_ERROR, json!({"error": "internal", "reason": "see server log"}))
            }
        };
        (status, Json(body)).into_response()
    }
}
