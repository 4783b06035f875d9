//! Entra ID client-credentials token endpoint + Log Analytics query API.
//!
//! The fake evaluates the subset of KQL ALUSKORT's Sentinel connector writes: the `let` header
//! (`aluskort_from`, `aluskort_until`, `aluskort_seen`, `aluskort_limit`) over `SecurityAlert`
//! keyed on ingestion time. Any other query is answered `400 BadArgumentError`, as a query the
//! service cannot run would be.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, SecondsFormat, Utc};
use regex::Regex;
use serde_json::{Value, json};

use super::{Handle, serve};

/// Name of the ingestion-time column the connector's query adds.
pub const INGESTED_COLUMN: &str = "AluskortIngestedAt";
pub const CLIENT_ID: &str = "00000000-aaaa-bbbb-cccc-000000000001";
pub const CLIENT_SECRET: &str = "fake-client-secret";
pub const WORKSPACE_ID: &str = "11111111-2222-3333-4444-555555555555";

pub struct FakeSentinel {
    pub addr: SocketAddr,
    pub handle: Handle,
}

#[derive(Clone)]
struct AppState {
    handle: Handle,
    issued: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl FakeSentinel {
    pub async fn start() -> Self {
        let handle = Handle::default();
        let state = AppState { handle: handle.clone(), issued: Default::default() };
        let router = Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(token))
            .route("/v1/workspaces/{workspace}/query", post(query))
            .with_state(state);
        FakeSentinel { addr: serve(router).await, handle }
    }

    pub fn token_url(&self) -> String {
        format!("http://{}/contoso.onmicrosoft.com/oauth2/v2.0/token", self.addr)
    }

    pub fn api_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds a `SecurityAlert` row ingested at `ingested`; its id is its `SystemAlertId`.
    pub fn add_row(&self, ingested: DateTime<Utc>, row: Value) {
        let id = row.get("SystemAlertId").and_then(Value::as_str).unwrap_or_default().to_owned();
        self.handle.add(ingested, &id, row);
    }
}

async fn token(State(state): State<AppState>, Form(form): Form<HashMap<String, String>>) -> Response {
    state.handle.log("POST token".to_owned());
    let field = |name: &str| form.get(name).map(String::as_str);
    if field("grant_type") != Some("client_credentials") {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "unsupported_grant_type"}))).into_response();
    }
    if field("client_id") != Some(CLIENT_ID) || field("client_secret") != Some(CLIENT_SECRET) {
        let body = json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."});
        return (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    }
    if field("scope") != Some("https://api.loganalytics.io/.default") {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_scope"}))).into_response();
    }
    let mut issued = state.issued.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let token = format!("token-{}", issued.len() + 1);
    issued.push(token.clone());
    Json(json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token})).into_response()
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"error": {"code": code, "message": message, "correlationId": "fake"}}))).into_response()
}

async fn query(State(state): State<AppState>, Path(workspace): Path<String>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).map(str::to_owned);
    let known = bearer.is_some_and(|token| state.issued.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains(&token));
    if !known {
        return error(StatusCode::UNAUTHORIZED, "InvalidTokenError", "The provided authentication is not valid for this resource");
    }
    if workspace != WORKSPACE_ID {
        return error(StatusCode::NOT_FOUND, "WorkspaceNotFoundError", "Workspace not found");
    }
    let kql = body.get("query").and_then(Value::as_str).unwrap_or_default();
    let Some(parsed) = parse_query(kql) else {
        return error(StatusCode::BAD_REQUEST, "BadArgumentError", "The request had some invalid properties");
    };
    state.handle.log(format!("POST query from={} seen={} limit={}", parsed.from.to_rfc3339(), parsed.seen.len(), parsed.limit));
    if let Some(fault) = state.handle.next_fault()
        && let Some(response) = fault.response()
    {
        return response;
    }
    let rows = state.handle.select(
        |a| a.time >= parsed.from && a.time < parsed.until && !(a.time == parsed.from && parsed.seen.contains(&a.id)),
        parsed.limit,
    );
    let mut columns: Vec<String> = Vec::new();
    for alert in &rows {
        for key in alert.document.as_object().map(|m| m.keys().cloned().collect::<Vec<_>>()).unwrap_or_default() {
            if !columns.contains(&key) {
                columns.push(key);
            }
        }
    }
    let table_rows: Vec<Value> = rows
        .iter()
        .map(|alert| {
            let mut cells: Vec<Value> = columns.iter().map(|c| alert.document.get(c).cloned().unwrap_or(Value::Null)).collect();
            cells.push(json!(alert.time.to_rfc3339_opts(SecondsFormat::Nanos, true)));
            Value::Array(cells)
        })
        .collect();
    let mut column_specs: Vec<Value> = columns.iter().map(|c| json!({"name": c, "type": "string"})).collect();
    column_specs.push(json!({"name": INGESTED_COLUMN, "type": "datetime"}));
    Json(json!({"tables": [{"name": "PrimaryResult", "columns": column_specs, "rows": table_rows}]})).into_response()
}

struct ParsedQuery {
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    seen: Vec<String>,
    limit: usize,
}

fn parse_query(kql: &str) -> Option<ParsedQuery> {
    let capture = |pattern: &str| -> Option<String> { Regex::new(pattern).ok()?.captures(kql)?.get(1).map(|m| m.as_str().to_owned()) };
    let time = |text: String| DateTime::parse_from_rfc3339(&text).ok().map(|t| t.with_timezone(&Utc));
    if !kql.contains("SecurityAlert") || !kql.contains("ingestion_time()") {
        return None;
    }
    Some(ParsedQuery {
        from: time(capture(r"let aluskort_from = datetime\(([^)]+)\);")?)?,
        until: time(capture(r"let aluskort_until = datetime\(([^)]+)\);")?)?,
        seen: serde_json::from_str(&format!("[{}]", capture(r"let aluskort_seen = dynamic\(\[(.*)\]\);")?)).ok()?,
        limit: capture(r"let aluskort_limit = (\d+);")?.parse().ok()?,
    })
}
