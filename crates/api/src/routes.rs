//! Route handlers.

use aluskort_core::{InvestigationId, InvestigationState, TenantId};
use aluskort_investigate::TriageRecord;
use aluskort_store::InvestigationFilter;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::ApiError;

pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Ready when every backend answers.
pub async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let store = state.store.check_connectivity().await;
    let bus = state.bus.check_connectivity().await;
    let describe = |result: &anyhow::Result<()>| match result {
        Ok(()) => json!({"ok": true}),
        Err(error) => json!({"ok": false, "error": error.to_string()}),
    };
    let ready = store.is_ok() && bus.is_ok();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let degradation = state.pipeline.settings().degradation.as_str();
    (
        status,
        Json(json!({"ready": ready, "degradation_level": degradation, "checks": {"case_store": describe(&store), "bus": describe(&bus)}})),
    )
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}

/// Accepts one alert, a JSON array of alerts, JSON Lines, or a Log Analytics query response.
/// Every record is made durable before the 202; unreadable ones are dead-lettered and listed.
pub async fn post_alerts(State(state): State<AppState>, body: Bytes) -> Result<impl IntoResponse, ApiError> {
    let records = aluskort_ingest::read_records("request", &body);
    if records.is_empty() {
        return Err(ApiError::BadRequest { field: "body".to_owned(), reason: "no alert records in the request body".to_owned() });
    }
    let mut accepted = Vec::new();
    let mut rejected = Vec::new();
    for record in records {
        match record.record {
            Ok(payload) => {
                let ingest_id = state.pipeline.submit(&record.location, payload).await?;
                accepted.push(json!({"location": record.location, "ingest_id": ingest_id}));
            }
            Err(reason) => {
                state.pipeline.reject_unreadable(&record.location, &reason, Value::Null).await?;
                rejected.push(json!({"location": record.location, "error": reason}));
            }
        }
    }
    let status = if accepted.is_empty() { StatusCode::BAD_REQUEST } else { StatusCode::ACCEPTED };
    Ok((status, Json(json!({"accepted": accepted, "rejected": rejected}))))
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    state: Option<String>,
    tenant: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<u32>,
}

fn parse_time(field: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    value
        .map(|text| {
            DateTime::parse_from_rfc3339(text)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|error| ApiError::BadRequest { field: field.to_owned(), reason: format!("{text:?} is not RFC 3339: {error}") })
        })
        .transpose()
}

pub async fn list_investigations(State(state): State<AppState>, Query(query): Query<ListQuery>) -> Result<Json<Value>, ApiError> {
    let investigation_state = query
        .state
        .as_deref()
        .map(|raw| {
            InvestigationState::parse(raw).ok_or_else(|| ApiError::BadRequest {
                field: "state".to_owned(),
                reason: format!("{raw:?} is not one of {}", InvestigationState::ALL.map(|s| s.as_str()).join(", ")),
            })
        })
        .transpose()?;
    let tenant = query
        .tenant
        .as_deref()
        .map(|raw| TenantId::parse(raw).map_err(|error| ApiError::BadRequest { field: "tenant".to_owned(), reason: error.to_string() }))
        .transpose()?;
    if let Some(limit) = query.limit
        && !(1..=1000).contains(&limit)
    {
        return Err(ApiError::BadRequest { field: "limit".to_owned(), reason: format!("{limit} must be 1..=1000") });
    }
    let filter = InvestigationFilter {
        tenant,
        state: investigation_state,
        since: parse_time("since", query.since.as_deref())?,
        until: parse_time("until", query.until.as_deref())?,
        limit: query.limit,
    };
    let states = state.store.list_investigations(&filter).await?;
    let mut items = Vec::with_capacity(states.len());
    for graph in &states {
        if let Some(record) = TriageRecord::load(state.store.as_ref(), graph).await? {
            items.push(record);
        }
    }
    Ok(Json(json!({"count": items.len(), "investigations": items})))
}

pub async fn get_investigation(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let investigation_id = InvestigationId::parse(&id)
        .ok_or_else(|| ApiError::BadRequest { field: "id".to_owned(), reason: format!("{id:?} is not a UUID") })?;
    let graph = state.store.investigation(investigation_id).await?.ok_or_else(|| ApiError::NotFound(format!("investigation {id}")))?;
    let record = TriageRecord::load(state.store.as_ref(), &graph).await?;
    Ok(Json(json!({"investigation": record, "graph_state": graph})))
}
