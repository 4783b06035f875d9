//! `POST /v1/investigations/{id}/feedback` (FR-CSM-004): an analyst's `{correct, rating 1-5,
//! comment}` on a verdict, stored and audited, written back to incident memory, and counted
//! towards proposing a false-positive pattern. The actor is the API key's caller (the body's
//! `actor` only with authentication disabled for local use).

use aluskort_core::{Classification, InvestigationId};
use aluskort_respond::feedback::{FeedbackError, FeedbackInput, FpProposal, record_feedback};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use aluskort_config::Permission;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedbackBody {
    actor: Option<String>,
    correct: Option<bool>,
    rating: Option<u8>,
    #[serde(default)]
    comment: String,
    /// The right classification when `correct` is false.
    classification: Option<Classification>,
}

fn missing(field: &str) -> ApiError {
    ApiError::BadRequest { field: field.to_owned(), reason: "required".to_owned() }
}

pub async fn post(State(state): State<AppState>, caller: Caller, Path(id): Path<String>, body: Bytes) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Feedback)?;
    let stores = state.feedback.as_deref().ok_or_else(|| ApiError::NotFound("feedback is not served by this process".to_owned()))?;
    let investigation_id = InvestigationId::parse(&id)
        .ok_or_else(|| ApiError::BadRequest { field: "id".to_owned(), reason: format!("{id:?} is not a UUID") })?;
    let visible = state.store.investigation(investigation_id).await?.is_some_and(|graph| caller.sees(graph.tenant_id.as_str()));
    if !visible {
        return Err(ApiError::NotFound(format!("investigation {id}")));
    }
    let body: FeedbackBody = serde_json::from_slice(&body).map_err(|error| ApiError::BadRequest {
        field: "body".to_owned(),
        reason: format!("expected {{\"actor\", \"correct\", \"rating\", \"comment\"?, \"classification\"?}}: {error}"),
    })?;
    let input = FeedbackInput {
        investigation_id,
        actor: caller.actor(body.actor)?,
        correct: body.correct.ok_or_else(|| missing("correct"))?,
        rating: body.rating.ok_or_else(|| missing("rating"))?,
        comment: body.comment,
        corrected_classification: body.classification,
    };
    match record_feedback(stores, input, chrono::Utc::now()).await {
        Ok(outcome) => {
            let proposal = match &outcome.proposal {
                Some(FpProposal::Created(pattern)) => {
                    json!({"pattern_id": pattern.pattern_id, "status": "pending_review", "created": true})
                }
                Some(FpProposal::Exists { pattern_id, status }) => {
                    json!({"pattern_id": pattern_id, "status": status.as_str(), "created": false})
                }
                None => Value::Null,
            };
            Ok(Json(json!({
                "feedback": outcome.feedback,
                "memory": format!("{:?}", outcome.memory),
                "confirmed_false_positives": outcome.confirmed_false_positives,
                "fp_pattern_proposal": proposal,
            })))
        }
        Err(FeedbackError::Invalid(reason)) => Err(ApiError::BadRequest { field: "body".to_owned(), reason }),
        Err(FeedbackError::NotFound(what)) => Err(ApiError::NotFound(what)),
        Err(FeedbackError::Refused(reason)) => Err(ApiError::Conflict(reason)),
        Err(FeedbackError::Store(error)) => Err(ApiError::Store(error)),
        Err(error @ FeedbackError::Audit(_)) => Err(ApiError::Internal(error.into())),
    }
}
