//! Read routes of the analyst API (issue 10, FR-CSM-001..004): alerts, audit events, playbooks,
//! model usage and cost, and the degradation state. Listings are cursor-paged ([`crate::page`]).

use aluskort_config::Permission;
use aluskort_core::{AlertId, AlertSource, CanonicalAlert, Severity, TenantId};
use aluskort_store::{AlertFilter, AuditFilter, PageKey};
use axum::Json;
use axum::extract::{Path, Query, State};
use chrono::{Duration, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::page;
use crate::routes::parse_time;

fn bad(field: &str, reason: String) -> ApiError {
    ApiError::BadRequest { field: field.to_owned(), reason }
}

/// A value of one of ALUSKORT's lower-case enums (severity, source), by its JSON spelling.
fn enum_value<T: serde::de::DeserializeOwned>(field: &str, raw: &str, expected: &str) -> Result<T, ApiError> {
    serde_json::from_value(json!(raw)).map_err(|_| bad(field, format!("{raw:?} is not one of {expected}")))
}

#[derive(Debug, Deserialize)]
pub struct AlertQuery {
    tenant: Option<String>,
    since: Option<String>,
    until: Option<String>,
    severity: Option<String>,
    source: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// An alert as listed: what it is, and the investigation it went to.
fn alert_summary(alert: &CanonicalAlert, investigation: Option<&aluskort_core::GraphState>) -> Value {
    json!({
        "tenant_id": alert.tenant_id,
        "alert_id": alert.alert_id,
        "source": alert.source,
        "product": alert.product,
        "timestamp": alert.timestamp,
        "severity": alert.severity,
        "title": alert.title,
        "tactics": alert.tactics,
        "techniques": alert.techniques,
        "investigation_id": investigation.map(|graph| graph.investigation_id.to_string()),
        "state": investigation.map(|graph| graph.state),
        "incident_id": investigation.and_then(|graph| graph.incident_id.clone()),
    })
}

/// `GET /v1/alerts?tenant=&since=&until=&severity=&source=&limit=&cursor=`: stored alerts, newest
/// first, each with its investigation.
pub async fn list_alerts(State(state): State<AppState>, caller: Caller, Query(query): Query<AlertQuery>) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let tenant = caller.tenant_filter(query.tenant.as_deref())?;
    let severity = query
        .severity
        .as_deref()
        .map(|raw| enum_value::<Severity>("severity", raw, "informational, low, medium, high, critical").map(|s| s.as_str().to_owned()))
        .transpose()?;
    let source = query
        .source
        .as_deref()
        .map(|raw| {
            enum_value::<AlertSource>("source", raw, "sentinel, elastic, splunk, webhook, atlas, canonical").map(|s| s.as_str().to_owned())
        })
        .transpose()?;
    let limit = page::limit_of(query.limit)?;
    let filter = AlertFilter {
        tenant,
        since: parse_time("since", query.since.as_deref())?,
        until: parse_time("until", query.until.as_deref())?,
        severity,
        source,
        limit: Some(limit),
        after: page::key_of("alerts", query.cursor.as_deref())?,
    };
    let alerts = state.store.list_alerts(&filter).await?;
    // One query per tenant on the page for the investigations.
    let mut investigations = std::collections::HashMap::new();
    let mut tenants: Vec<&TenantId> = alerts.iter().map(|alert| &alert.tenant_id).collect();
    tenants.sort();
    tenants.dedup();
    for tenant in tenants {
        let ids: Vec<AlertId> = alerts.iter().filter(|alert| &alert.tenant_id == tenant).map(|alert| alert.alert_id.clone()).collect();
        for graph in state.store.investigations_for_alerts(tenant, &ids).await? {
            investigations.insert((graph.tenant_id.clone(), graph.alert_id.clone()), graph);
        }
    }
    let items: Vec<Value> =
        alerts.iter().map(|alert| alert_summary(alert, investigations.get(&(alert.tenant_id.clone(), alert.alert_id.clone())))).collect();
    let next_cursor = page::next(&alerts, limit, |alert| {
        page::cursor_of(
            "alerts",
            PageKey { time: alert.timestamp, tenant: alert.tenant_id.as_str().to_owned(), id: alert.alert_id.as_str().to_owned() },
        )
    });
    Ok(Json(json!({"count": items.len(), "alerts": items, "next_cursor": next_cursor})))
}

#[derive(Debug, Deserialize)]
pub struct TenantQuery {
    tenant: Option<String>,
}

/// `GET /v1/alerts/{id}?tenant=`: one alert as stored (with its original payload) and its
/// investigation. Alert ids are the source's, unique within a tenant: a caller of every tenant
/// names the tenant.
pub async fn get_alert(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<TenantQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let tenant = caller
        .tenant_filter(query.tenant.as_deref())?
        .ok_or_else(|| bad("tenant", "name the alert's tenant (alert ids are unique within a tenant)".to_owned()))?;
    let alert_id = AlertId::parse(&id).map_err(|error| bad("id", error.to_string()))?;
    let alert = state.store.alert(&tenant, &alert_id).await?.ok_or_else(|| ApiError::NotFound(format!("alert {id} of tenant {tenant}")))?;
    let investigation = state.store.investigation_for_alert(&tenant, &alert_id).await?;
    Ok(Json(json!({"alert": alert, "summary": alert_summary(&alert, investigation.as_ref())})))
}

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    tenant: Option<String>,
    investigation_id: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// `GET /v1/audit/events?tenant=&investigation_id=&since=&until=&limit=&cursor=`: one tenant's
/// audit records in chain order (REQUIREMENTS §3.8), with the chain head to check them against.
pub async fn audit_events(State(state): State<AppState>, caller: Caller, Query(query): Query<AuditQuery>) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Audit)?;
    let audit = crate::audit::audit(&state)?;
    let tenant =
        caller.tenant_scope(query.tenant.as_deref())?.ok_or_else(|| bad("tenant", "name the tenant whose trail to read".to_owned()))?;
    let limit = page::limit_of(query.limit)?;
    let filter = AuditFilter {
        tenant: tenant.clone(),
        investigation_id: query.investigation_id,
        since: parse_time("since", query.since.as_deref())?,
        until: parse_time("until", query.until.as_deref())?,
        after_sequence: page::sequence_of("audit_events", query.cursor.as_deref())?,
        limit,
    };
    let records = audit.audit_events(&filter).await?;
    let head = audit
        .audit_head(&tenant)
        .await?
        .map(|(sequence_number, record_hash)| json!({"sequence_number": sequence_number, "record_hash": record_hash}));
    let next_cursor = page::next(&records, limit, |record| page::sequence_cursor("audit_events", record.sequence_number));
    Ok(Json(json!({"count": records.len(), "events": records, "chain_head": head, "next_cursor": next_cursor})))
}

/// `GET /v1/tenants`: the tenants the caller sees that have an audit trail (every tenant ALUSKORT
/// has recorded a decision for), for the UI's tenant pickers.
pub async fn tenants(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let audit = crate::audit::audit(&state)?;
    let tenants: Vec<String> = audit.audit_tenants().await?.into_iter().filter(|tenant| caller.sees(tenant)).collect();
    Ok(Json(json!({"count": tenants.len(), "tenants": tenants})))
}

/// `GET /v1/playbooks`: the playbooks in effect (built-in and from the playbook directory), each
/// with where it came from.
pub async fn playbooks(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let items: Vec<Value> = state
        .pipeline
        .settings()
        .playbooks
        .as_deref()
        .map(|set| set.playbooks().iter().map(|loaded| json!({"source": loaded.source, "playbook": loaded.playbook})).collect())
        .unwrap_or_default();
    Ok(Json(json!({"count": items.len(), "playbooks": items, "response_enabled": state.pipeline.settings().playbooks.is_some()})))
}

#[derive(Debug, Deserialize)]
pub struct UsageQuery {
    since: Option<String>,
    until: Option<String>,
}

/// `GET /v1/llm/usage?since=&until=` (default the last 30 days): model calls, tokens, cost and
/// latency per day, tier and task, with totals, and the providers' health. The ledger is not kept
/// per tenant, so a key limited to tenants may not read it.
pub async fn llm_usage(State(state): State<AppState>, caller: Caller, Query(query): Query<UsageQuery>) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    if caller.tenants.is_some() {
        return Err(ApiError::Forbidden("model usage spans every tenant: it needs a key for every tenant".to_owned()));
    }
    let until = parse_time("until", query.until.as_deref())?.unwrap_or_else(Utc::now);
    let since = parse_time("since", query.since.as_deref())?.unwrap_or(until - Duration::days(30));
    if since > until {
        return Err(bad("since", "after `until`".to_owned()));
    }
    let rows = match &state.usage {
        Some(usage) => usage.llm_usage(since, until).await?,
        None => Vec::new(),
    };
    let sum = |field: fn(&aluskort_store::LlmUsageRow) -> u64| rows.iter().map(field).sum::<u64>();
    let calls = sum(|row| row.calls);
    let totals = json!({
        "calls": calls,
        "failures": sum(|row| row.failures),
        "input_tokens": sum(|row| row.input_tokens),
        "output_tokens": sum(|row| row.output_tokens),
        "cache_read_tokens": sum(|row| row.cache_read_tokens),
        "cost_usd": sum(|row| row.cost_micros) as f64 / 1_000_000.0,
        "mean_latency_ms": sum(|row| row.latency_ms).checked_div(calls),
    });
    let days: Vec<Value> = rows
        .iter()
        .map(|row| {
            json!({
                "day": row.day, "tier": row.tier, "task": row.task, "calls": row.calls, "failures": row.failures,
                "input_tokens": row.input_tokens, "output_tokens": row.output_tokens,
                "cache_read_tokens": row.cache_read_tokens, "cache_write_tokens": row.cache_write_tokens,
                "cost_usd": row.cost_micros as f64 / 1_000_000.0, "latency_ms_total": row.latency_ms,
            })
        })
        .collect();
    Ok(Json(json!({
        "since": since, "until": until, "totals": totals, "rows": days,
        "providers": crate::routes::llm_health(&state),
    })))
}

/// `GET /v1/degradation`: the degradation level in force and why (the same as `/ready`), for the
/// UI's banner.
pub async fn degradation(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let (level, degradations) = crate::routes::degradations(&state).await;
    Ok(Json(json!({"degradation_level": level, "degradations": degradations})))
}
