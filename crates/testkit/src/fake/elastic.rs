//! Elasticsearch point in time + `_search` over an alerts index, with API-key auth.
//!
//! Implements what the Elastic connector sends: `POST /{index}/_pit?keep_alive`, `POST /_search`
//! with `pit`, a `bool` query of one `range` on `@timestamp` (`gte`/`lt`) and an optional
//! `must_not ids`, `sort` on `@timestamp` (the PIT adds `_shard_doc`), `search_after`, `size`; and
//! `DELETE /_pit`. A PIT sees the index as it was when opened.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use axum::{Json, Router};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::{Handle, StoredAlert, serve};

pub const API_KEY: &str = "ZmFrZS1pZDpmYWtlLWtleQ==";

pub struct FakeElastic {
    pub addr: SocketAddr,
    pub handle: Handle,
    pits: Arc<Mutex<HashMap<String, Vec<StoredAlert>>>>,
}

#[derive(Clone)]
struct AppState {
    handle: Handle,
    pits: Arc<Mutex<HashMap<String, Vec<StoredAlert>>>>,
    opened: Arc<Mutex<u64>>,
}

impl FakeElastic {
    pub async fn start() -> Self {
        let handle = Handle::default();
        let pits: Arc<Mutex<HashMap<String, Vec<StoredAlert>>>> = Arc::default();
        let state = AppState { handle: handle.clone(), pits: Arc::clone(&pits), opened: Arc::default() };
        let router = Router::new()
            .route("/{index}/_pit", post(open_pit))
            .route("/_search", post(search))
            .route("/_pit", delete(close_pit))
            .with_state(state);
        FakeElastic { addr: serve(router).await, handle, pits }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Points in time opened and not closed.
    pub fn open_pits(&self) -> usize {
        self.pits.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }
}

fn authorised(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("ApiKey {API_KEY}"))
}

fn es_error(status: StatusCode, kind: &str, reason: &str) -> Response {
    (
        status,
        Json(
            json!({"error": {"root_cause": [{"type": kind, "reason": reason}], "type": kind, "reason": reason}, "status": status.as_u16()}),
        ),
    )
        .into_response()
}

async fn open_pit(State(state): State<AppState>, Path(index): Path<String>, headers: HeaderMap) -> Response {
    if !authorised(&headers) {
        return es_error(StatusCode::UNAUTHORIZED, "security_exception", "unable to authenticate with provided credentials");
    }
    state.handle.log(format!("POST {index}/_pit"));
    let mut opened = state.opened.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    *opened += 1;
    let id = format!("pit-{}", *opened);
    state.pits.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(id.clone(), state.handle.sorted());
    Json(json!({"id": id})).into_response()
}

fn time_of(value: &Value) -> Option<DateTime<Utc>> {
    value.as_str().and_then(|text| DateTime::parse_from_rfc3339(text).ok()).map(|t| t.with_timezone(&Utc))
}

async fn search(State(state): State<AppState>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    if !authorised(&headers) {
        return es_error(StatusCode::UNAUTHORIZED, "security_exception", "unable to authenticate with provided credentials");
    }
    let pit_id = body.pointer("/pit/id").and_then(Value::as_str).unwrap_or_default().to_owned();
    state.handle.log(format!("POST _search pit={pit_id} after={}", body.get("search_after").map(Value::to_string).unwrap_or_default()));
    if let Some(fault) = state.handle.next_fault()
        && let Some(response) = fault.response()
    {
        return response;
    }
    let pits = state.pits.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let Some(snapshot) = pits.get(&pit_id) else {
        return es_error(StatusCode::NOT_FOUND, "search_context_missing_exception", "No search context found for id");
    };
    let range = body.pointer("/query/bool/filter/0/range/@timestamp");
    let (Some(gte), Some(lt)) = (range.and_then(|r| r.get("gte")).and_then(time_of), range.and_then(|r| r.get("lt")).and_then(time_of))
    else {
        return es_error(StatusCode::BAD_REQUEST, "parsing_exception", "expected a range on @timestamp with gte and lt");
    };
    let excluded: Vec<String> = body
        .pointer("/query/bool/must_not/0/ids/values")
        .and_then(Value::as_array)
        .map(|ids| ids.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default();
    let after = body.get("search_after").and_then(Value::as_array).map(|a| (a.first().and_then(time_of), a.get(1).and_then(Value::as_u64)));
    let size = body.get("size").and_then(Value::as_u64).unwrap_or(10) as usize;
    let hits: Vec<Value> = snapshot
        .iter()
        .enumerate()
        .filter(|(_, a)| a.time >= gte && a.time < lt && !excluded.contains(&a.id))
        .filter(|(seq, a)| match after {
            Some((Some(time), Some(after_seq))) => (a.time, *seq as u64) > (time, after_seq),
            _ => true,
        })
        .take(size)
        .map(|(seq, a)| {
            json!({"_index": ".internal.alerts-security.alerts-default-000001", "_id": a.id, "_score": null, "_source": a.document,
                   "sort": [a.time.to_rfc3339_opts(SecondsFormat::Nanos, true), seq]})
        })
        .collect();
    Json(json!({"pit_id": pit_id, "took": 1, "timed_out": false, "hits": {"total": {"value": hits.len(), "relation": "eq"}, "hits": hits}}))
        .into_response()
}

async fn close_pit(State(state): State<AppState>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    if !authorised(&headers) {
        return es_error(StatusCode::UNAUTHORIZED, "security_exception", "unable to authenticate with provided credentials");
    }
    let id = body.get("id").and_then(Value::as_str).unwrap_or_default();
    state.handle.log(format!("DELETE _pit {id}"));
    let freed = state.pits.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(id).is_some();
    Json(json!({"succeeded": true, "num_freed": u32::from(freed)})).into_response()
}
