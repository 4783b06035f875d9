//! `/v1/approvals`: the approval gates over HTTP (FR-RSP-002/003). Only senior analysts and
//! admins decide; the actor recorded with the decision in the audit trail is the API key's caller
//! (with authentication disabled for local use, the body's `actor`). Approved actions are then run
//! by the server's response loop, each exactly once.

use aluskort_core::response::ApprovalStatus;
use aluskort_respond::gate::Decision;
use aluskort_respond::service::ResponseError;
use aluskort_store::ApprovalFilter;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use aluskort_config::Permission;

#[derive(Debug, Deserialize)]
pub struct ApprovalQuery {
    /// pending (default), approved, rejected, timed_out or all.
    pub status: Option<String>,
    pub tenant: Option<String>,
    pub investigation_id: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    pub actor: Option<String>,
    #[serde(default)]
    pub comment: String,
}

fn responder(state: &AppState) -> Result<&aluskort_respond::service::Responder, ApiError> {
    state.responder.as_deref().ok_or_else(|| ApiError::NotFound("approvals are not served by this process".to_owned()))
}

pub async fn list(State(state): State<AppState>, caller: Caller, Query(query): Query<ApprovalQuery>) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let responder = responder(&state)?;
    let tenant = caller.tenant_scope(query.tenant.as_deref())?;
    let status = match query.status.as_deref().unwrap_or("pending") {
        "all" => None,
        other => Some(ApprovalStatus::parse(other).ok_or_else(|| ApiError::BadRequest {
            field: "status".to_owned(),
            reason: format!("{other:?}: expected pending, approved, rejected, timed_out or all"),
        })?),
    };
    let limit = crate::page::limit_of(query.limit)?;
    let after = crate::page::key_of("approvals", query.cursor.as_deref())?;
    let filter = ApprovalFilter { status, tenant, investigation_id: query.investigation_id, limit, after, ..ApprovalFilter::default() };
    let approvals = responder.responses.approvals(&filter).await?;
    let next_cursor = crate::page::next(&approvals, limit, |approval| {
        let key = aluskort_store::PageKey { time: approval.deadline, tenant: String::new(), id: approval.approval_id.clone() };
        crate::page::cursor_of("approvals", key)
    });
    Ok(Json(json!({"count": approvals.len(), "approvals": approvals, "next_cursor": next_cursor})))
}

/// The approval `id` if the caller sees its tenant (another tenant's is not revealed: 404).
async fn visible(
    responder: &aluskort_respond::service::Responder,
    caller: &Caller,
    id: &str,
) -> Result<aluskort_core::response::Approval, ApiError> {
    responder
        .responses
        .approval(id)
        .await?
        .filter(|approval| caller.sees(&approval.tenant_id))
        .ok_or_else(|| ApiError::NotFound(format!("approval {id}")))
}

pub async fn get(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let responder = responder(&state)?;
    let approval = visible(responder, &caller, &id).await?;
    let executions = responder.responses.executions_for_investigation(&approval.investigation_id).await?;
    let executions: Vec<_> = executions.into_iter().filter(|e| e.approval_id.as_deref() == Some(id.as_str())).collect();
    Ok(Json(json!({"approval": approval, "executions": executions})))
}

pub async fn approve(State(state): State<AppState>, caller: Caller, Path(id): Path<String>, body: Bytes) -> Result<Json<Value>, ApiError> {
    decide(&state, &caller, &id, Decision::Approve, &body).await
}

pub async fn reject(State(state): State<AppState>, caller: Caller, Path(id): Path<String>, body: Bytes) -> Result<Json<Value>, ApiError> {
    decide(&state, &caller, &id, Decision::Reject, &body).await
}

/// The body is `{"comment"?, "actor"?}` as JSON (any content type, as with `/v1/alerts`).
async fn decide(state: &AppState, caller: &Caller, id: &str, decision: Decision, body: &[u8]) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Decide)?;
    let responder = responder(state)?;
    let body: DecisionBody = serde_json::from_slice(body).map_err(|error| ApiError::BadRequest {
        field: "body".to_owned(),
        reason: format!("expected {{\"comment\", \"actor\"?}}: {error}"),
    })?;
    visible(responder, caller, id).await?;
    let actor = caller.actor(body.actor)?;
    match responder.decide(id, &actor, decision, &body.comment).await {
        Ok(approval) => Ok(Json(json!({"approval": approval}))),
        Err(ResponseError::NotFound(what)) => Err(ApiError::NotFound(format!("approval {what}"))),
        Err(error @ (ResponseError::Decide(_) | ResponseError::NotAwaiting { .. })) => Err(ApiError::Conflict(error.to_string())),
        Err(ResponseError::Store(error)) => Err(ApiError::Store(error)),
        Err(error) => Err(ApiError::Internal(error.into())),
    }
}
