//! `/v1/incidents` (issue 10): incidents with their member alerts and why each was grouped (the
//! shared entity of every link), and `/v1/fp-patterns`: the false-positive patterns of a tenant.

use aluskort_config::Permission;
use aluskort_store::{IncidentFilter, PageKey};
use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::page;
use crate::routes::parse_time;

#[derive(Debug, Deserialize)]
pub struct IncidentQuery {
    tenant: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// `GET /v1/incidents?tenant=&since=&until=&limit=&cursor=`: incidents active in the window (last
/// seen at or after `since`, first seen before `until`), most recently active first; merged
/// incidents are left out (their survivor is listed).
pub async fn list(State(state): State<AppState>, caller: Caller, Query(query): Query<IncidentQuery>) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let tenant = caller.tenant_filter(query.tenant.as_deref())?;
    let since = parse_time("since", query.since.as_deref())?;
    let until = parse_time("until", query.until.as_deref())?;
    if let (Some(since), Some(until)) = (since, until)
        && since > until
    {
        return Err(ApiError::BadRequest { field: "since".to_owned(), reason: "after `until`".to_owned() });
    }
    let limit = page::limit_of(query.limit)?;
    let filter = IncidentFilter { tenant, since, until, limit: Some(limit), after: page::key_of("incidents", query.cursor.as_deref())? };
    let incidents = state.store.list_incidents(&filter).await?;
    let next_cursor = page::next(&incidents, limit, |incident| {
        page::cursor_of("incidents", PageKey { time: incident.last_seen, tenant: String::new(), id: incident.incident_id.clone() })
    });
    Ok(Json(json!({"count": incidents.len(), "incidents": incidents, "next_cursor": next_cursor})))
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
