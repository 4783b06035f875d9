//! Route handlers.

use aluskort_core::{DegradationLevel, InvestigationId, InvestigationState, TenantId};
use aluskort_investigate::{Accepted, TriageRecord};
use aluskort_store::InvestigationFilter;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use aluskort_config::Permission;

pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// The gateway's providers and breakers; a degraded model layer leaves the service ready (it
/// falls back to deterministic reasoning) but shows here.
pub(crate) fn llm_health(state: &AppState) -> serde_json::Value {
    match &state.gateway {
        None => json!({"degradation_level": "deterministic", "providers": []}),
        Some(gateway) => json!({
            "degradation_level": gateway.router.degradation().as_str(),
            "providers": gateway.router.health(),
        }),
    }
}

/// Ready when every backend answers. `degradation_level` is the most severe level in force
/// (ARCHITECTURE.md "Degradation levels"), `degradations` every one in force with why:
/// `passthrough` while the state store is unreachable (alerts stay on the bus, nothing is
/// acknowledged), `deterministic` while no model provider is reachable (or none is configured),
/// `structured_search` while incident memory runs on its full-text fallback.
pub async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let store = state.store.check_connectivity().await;
    let bus = state.bus.check_connectivity().await;
    let describe = |result: &anyhow::Result<()>| match result {
        Ok(()) => json!({"ok": true}),
        Err(error) => json!({"ok": false, "error": error.to_string()}),
    };
    let ready = store.is_ok() && bus.is_ok();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let (level, degradations) = degradations_given(&state, &store);
    (
        status,
        Json(json!({
            "ready": ready,
            "degradation_level": level,
            "degradations": degradations,
            "checks": {"case_store": describe(&store), "bus": describe(&bus)},
            "llm": llm_health(&state),
        })),
    )
}

/// The most severe degradation level in force and every one in force with why.
pub(crate) async fn degradations(state: &AppState) -> (String, Vec<Value>) {
    let store = state.store.check_connectivity().await;
    degradations_given(state, &store)
}

fn degradations_given(state: &AppState, store: &anyhow::Result<()>) -> (String, Vec<Value>) {
    let configured = state.pipeline.settings().degradation;
    let models_down = state.gateway.as_ref().is_some_and(|gateway| gateway.router.degradation() == DegradationLevel::Deterministic);
    let mut degradations = Vec::new();
    if let Err(error) = store {
        degradations.push(json!({"level": DegradationLevel::Passthrough.as_str(), "reason": format!("state store unreachable: {error}")}));
    }
    if configured == DegradationLevel::Deterministic || models_down {
        let reason = if models_down { "no model provider reachable" } else { "no model provider configured" };
        degradations.push(json!({"level": DegradationLevel::Deterministic.as_str(), "reason": reason}));
    }
    if let Some(why) = state.pipeline.settings().incident_memory.as_ref().and_then(|memory| memory.degraded()) {
        degradations.push(json!({"level": DegradationLevel::StructuredSearch.as_str(), "reason": why}));
    }
    let level = degradations.first().and_then(|d| d["level"].as_str()).unwrap_or(DegradationLevel::Full.as_str()).to_owned();
    (level, degradations)
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}

/// Header carrying `sha256=<hex HMAC-SHA256 of the raw body>` when `api.webhook_secret` is set.
pub const SIGNATURE_HEADER: &str = "x-aluskort-signature";

/// Checks the body's signature in constant time; the reason names what is wrong, never the secret.
fn verify_signature(secret: &[u8], headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
    let unauthorized = |reason: &str| ApiError::Unauthorized { field: SIGNATURE_HEADER.to_owned(), reason: reason.to_owned() };
    let value = headers.get(SIGNATURE_HEADER).ok_or_else(|| unauthorized("missing: this endpoint requires a signed body"))?;
    let hex_digest =
        value.to_str().ok().and_then(|v| v.trim().strip_prefix("sha256=")).ok_or_else(|| unauthorized("expected sha256=<hex digest>"))?;
    let digest = hex::decode(hex_digest).map_err(|_| unauthorized("the digest is not hexadecimal"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| unauthorized("server key unusable"))?;
    mac.update(body);
    mac.verify_slice(&digest).map_err(|_| unauthorized("signature does not match the body"))
}

/// The webhook (FR-ING-001/003): one alert, a JSON array, JSON Lines, a Log Analytics query
/// response, an Elasticsearch `_search` response, Splunk results/export/HEC or a Splunk alert-action
/// webhook, an Event Hubs `{"records": [...]}` body, or canonical JSON; the format of each record
/// is detected. Every accepted record is durable before the 202; repeats of an alert already
/// received are reported as duplicates, heartbeat/test alerts as dropped, and records no mapping
/// understands as rejected with the reason (and dead-lettered). 400 when nothing was accepted.
///
/// Authenticated by the body's signature when `api.webhook_secret` is set (senders that cannot
/// hold an API key), else by an API key allowed to submit alerts; a key limited to one tenant
/// files every alert it posts under that tenant.
pub async fn post_alerts(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<impl IntoResponse, ApiError> {
    let tenant = match &state.webhook_secret {
        Some(secret) => {
            verify_signature(secret.expose().as_bytes(), &headers, &body)?;
            None
        }
        None => {
            let caller = state.auth.authenticate(&headers).await?;
            caller.require(aluskort_config::Permission::Ingest)?;
            match &caller.tenants {
                None => None,
                Some(tenants) if tenants.len() == 1 => {
                    let only = tenants.iter().next().map(String::as_str).unwrap_or_default();
                    Some(TenantId::parse(only).map_err(|error| ApiError::Internal(anyhow::anyhow!("tenant of the key: {error}")))?)
                }
                Some(_) => return Err(ApiError::Forbidden("a key of several tenants cannot tell which one alerts belong to".to_owned())),
            }
        }
    };
    let records = aluskort_ingest::read_records("request", &body);
    if records.is_empty() {
        return Err(ApiError::BadRequest { field: "body".to_owned(), reason: "no alert records in the request body".to_owned() });
    }
    metrics::counter!("aluskort_source_fetched_total", "source" => "webhook").increment(records.len() as u64);
    let (mut accepted, mut rejected) = (Vec::new(), Vec::new());
    for record in records {
        let payload = match record.record {
            Ok(payload) => payload,
            Err(reason) => {
                state.pipeline.reject_unreadable(&record.location, &reason, Value::Null).await?;
                metrics::counter!("aluskort_source_dead_lettered_total", "source" => "webhook").increment(1);
                rejected.push(json!({"location": record.location, "error": reason}));
                continue;
            }
        };
        let outcome = state.pipeline.accept(&format!("webhook:{}", record.location), payload, tenant.clone()).await?;
        let counter = match &outcome {
            Accepted::Queued { .. } => ("aluskort_source_published_total", None),
            Accepted::Duplicate { .. } => ("aluskort_source_dropped_total", Some("duplicate")),
            Accepted::Dropped { .. } => ("aluskort_source_dropped_total", Some("noise")),
            Accepted::Unidentified { .. } => ("aluskort_source_dead_lettered_total", None),
        };
        match counter {
            (name, Some(reason)) => metrics::counter!(name, "source" => "webhook", "reason" => reason).increment(1),
            (name, None) => metrics::counter!(name, "source" => "webhook").increment(1),
        }
        let mut entry = serde_json::to_value(&outcome).map_err(anyhow::Error::from)?;
        entry["location"] = json!(record.location);
        match outcome {
            Accepted::Unidentified { .. } => rejected.push(entry),
            _ => accepted.push(entry),
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
    cursor: Option<String>,
}

pub(crate) fn parse_time(field: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    value
        .map(|text| {
            DateTime::parse_from_rfc3339(text)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|error| ApiError::BadRequest { field: field.to_owned(), reason: format!("{text:?} is not RFC 3339: {error}") })
        })
        .transpose()
}

pub async fn list_investigations(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
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
    let tenant = caller.tenant_filter(query.tenant.as_deref())?;
    let limit = crate::page::limit_of(query.limit)?;
    let filter = InvestigationFilter {
        tenant,
        state: investigation_state,
        since: parse_time("since", query.since.as_deref())?,
        until: parse_time("until", query.until.as_deref())?,
        limit: Some(limit),
        after: crate::page::key_of("investigations", query.cursor.as_deref())?,
    };
    let states = state.store.list_investigations(&filter).await?;
    let items = TriageRecord::load_many(state.store.as_ref(), &states).await?;
    let next_cursor = crate::page::next(&states, limit, |graph| {
        let key = aluskort_store::PageKey { time: graph.updated_at, tenant: String::new(), id: graph.investigation_id.to_string() };
        crate::page::cursor_of("investigations", key)
    });
    Ok(Json(json!({"count": items.len(), "investigations": items, "next_cursor": next_cursor})))
}

pub async fn get_investigation(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let investigation_id = InvestigationId::parse(&id)
        .ok_or_else(|| ApiError::BadRequest { field: "id".to_owned(), reason: format!("{id:?} is not a UUID") })?;
    let graph = state
        .store
        .investigation(investigation_id)
        .await?
        .filter(|graph| caller.sees(graph.tenant_id.as_str()))
        .ok_or_else(|| ApiError::NotFound(format!("investigation {id}")))?;
    let record = TriageRecord::load(state.store.as_ref(), &graph).await?;
    Ok(Json(json!({"investigation": record, "graph_state": graph})))
}
