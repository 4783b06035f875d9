//! `/v1/incidents` (issue 10): incidents with their member alerts and why each was grouped (the
//! shared entity of every link), and `/v1/fp-patterns`: the false-positive patterns of a tenant.

use aluskort_config::Permission;
use aluskort_core::TenantId;
use axum::Json;
use axum::extract::{Path, Query, State};
use chrono::{Duration, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::routes::parse_time;

#[derive(Debug, Deserialize)]
pub struct IncidentQuery {
    tenant: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

fn tenant_of(caller: &Caller, requested: Option<&str>) -> Result<TenantId, ApiError> {
    let tenant = caller
        .tenant_scope(requested)?
        .ok_or_else(|| ApiError::BadRequest { field: "tenant".to_owned(), reason: "name the tenant whose incidents to list".to_owned() })?;
    TenantId::parse(&tenant).map_err(|error| ApiError::BadRequest { field: "tenant".to_owned(), reason: error.to_string() })
}

/// `GET /v1/incidents?tenant=&since=&until=`: the tenant's incidents active in the window (default
/// the last 7 days), oldest first; merged incidents are left out (their survivor is listed).
pub async fn list(State(state): State<AppState>, caller: Caller, Query(query): Query<IncidentQuery>) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let tenant = tenant_of(&caller, query.tenant.as_deref())?;
    let until = parse_time("until", query.until.as_deref())?.unwrap_or_else(Utc::now);
    let since = parse_time("since", query.since.as_deref())?.unwrap_or(until - Duration::days(7));
    if since > until {
        return Err(ApiError::BadRequest { field: "since".to_owned(), reason: "after `until`".to_owned() });
    }
    let incidents = state.store.incidents_overlapping(&tenant, since, until).await?;
    Ok(Json(json!({"count": incidents.len(), "incidents": incidents})))
}

/// `GET /v1/incidents/{id}`: one incident with its members and links (why each alert joined).
pub async fn get(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let incident = state
        .store
        .incident(&id)
        .await?
        .filter(|incident| caller.sees(incident.tenant_id.as_str()))
        .ok_or_else(|| ApiError::NotFound(format!("incident {id}")))?;
    Ok(Json(json!({"incident": incident})))
}

#[derive(Debug, Deserialize)]
pub struct PatternQuery {
    tenant: Option<String>,
    status: Option<String>,
}

/// `GET /v1/fp-patterns?tenant=&status=`: false-positive patterns (any status by default).
pub async fn fp_patterns(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<PatternQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let stores = state.feedback.as_deref().ok_or_else(|| ApiError::NotFound("FP patterns are not served by this process".to_owned()))?;
    let tenant = caller.tenant_scope(query.tenant.as_deref())?;
    let status = query
        .status
        .as_deref()
        .map(|raw| {
            aluskort_store::FpStatus::parse(raw)
                .ok_or_else(|| ApiError::BadRequest { field: "status".to_owned(), reason: format!("{raw:?} is not a pattern status") })
        })
        .transpose()?;
    let patterns = stores.context.fp_patterns(tenant.as_deref(), status).await?;
    Ok(Json(json!({"count": patterns.len(), "fp_patterns": patterns})))
}
