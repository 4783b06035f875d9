//! Qdrant REST API subset (<https://api.qdrant.tech/api-reference>): collections (list, exists,
//! create with `vectors.size` and Cosine distance), points upsert/delete/count, and search with a
//! `filter.must` of `match.value` and `range` (`gte`, `gt`, `lte`, `lt`) conditions. Auth is the
//! `api-key` header. Scores are cosine similarities, as Qdrant's Cosine distance reports them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::serve;

pub const API_KEY: &str = "fake-qdrant-key";

#[derive(Default)]
struct Collection {
    size: usize,
    points: BTreeMap<String, (Vec<f64>, Value)>,
}

type Collections = Arc<Mutex<BTreeMap<String, Collection>>>;

pub struct FakeQdrant {
    pub addr: SocketAddr,
}

impl FakeQdrant {
    pub async fn start() -> Self {
        let state: Collections = Arc::default();
        let router = Router::new()
            .route("/collections", get(list))
            .route("/collections/{name}", axum::routing::put(create))
            .route("/collections/{name}/exists", get(exists))
            .route("/collections/{name}/points", axum::routing::put(upsert))
            .route("/collections/{name}/points/delete", post(delete))
            .route("/collections/{name}/points/search", post(search))
            .route("/collections/{name}/points/count", post(count))
            .with_state(state);
        FakeQdrant { addr: serve(router).await }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn ok(result: Value) -> Response {
    Json(json!({"result": result, "status": "ok", "time": 0.0001})).into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"status": {"error": message}, "time": 0.0}))).into_response()
}

fn authorised(headers: &HeaderMap) -> Option<Response> {
    (headers.get("api-key").and_then(|v| v.to_str().ok()) != Some(API_KEY))
        .then(|| error(StatusCode::UNAUTHORIZED, "Must provide an API key or an Authorization bearer token"))
}

fn lock(state: &Collections) -> std::sync::MutexGuard<'_, BTreeMap<String, Collection>> {
    state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn list(State(state): State<Collections>, headers: HeaderMap) -> Response {
    if let Some(denied) = authorised(&headers) {
        return denied;
    }
    let names: Vec<Value> = lock(&state).keys().map(|name| json!({"name": name})).collect();
    ok(json!({"collections": names}))
}

async fn exists(State(state): State<Collections>, headers: HeaderMap, Path(name): Path<String>) -> Response {
    if let Some(denied) = authorised(&headers) {
        return denied;
    }
    ok(json!({"exists": lock(&state).contains_key(&name)}))
}

async fn create(State(state): State<Collections>, headers: HeaderMap, Path(name): Path<String>, Json(body): Json<Value>) -> Response {
    if let Some(denied) = authorised(&headers) {
        return denied;
    }
    let Some(size) = body.pointer("/vectors/size").and_then(Value::as_u64) else {
        return error(StatusCode::BAD_REQUEST, "vectors.size is required");
    };
    if body.pointer("/vectors/distance").and_then(Value::as_str) != Some("Cosine") {
        return error(StatusCode::BAD_REQUEST, "this fake supports Cosine distance only");
    }
    let mut collections = lock(&state);
    if collections.contains_key(&name) {
        return error(StatusCode::CONFLICT, &format!("Collection `{name}` already exists!"));
    }
    collections.insert(name, Collection { size: size as usize, points: BTreeMap::new() });
    ok(json!(true))
}

fn point_key(id: &Value) -> String {
    id.as_str().map_or_else(|| id.to_string(), str::to_owned)
}

async fn upsert(State(state): State<Collections>, headers: HeaderMap, Path(name): Path<String>, Json(body): Json<Value>) -> Response {
    if let Some(denied) = authorised(&headers) {
        return denied;
    }
    let mut collections = lock(&state);
    let Some(collection) = collections.get_mut(&name) else { return error(StatusCode::NOT_FOUND, "Collection not found") };
    for point in body.get("points").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default() {
        let vector: Vec<f64> =
            point.get("vector").and_then(Value::as_array).map(|v| v.iter().filter_map(Value::as_f64).collect()).unwrap_or_default();
        if vector.len() != collection.size {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("Wrong input: Vector dimension error: expected dim: {}, got {}", collection.size, vector.len()),
            );
        }
        let payload = point.get("payload").cloned().unwrap_or(Value::Null);
        collection.points.insert(point_key(point.get("id").unwrap_or(&Value::Null)), (vector, payload));
    }
    ok(json!({"operation_id": 1, "status": "completed"}))
}

async fn delete(State(state): State<Collections>, headers: HeaderMap, Path(name): Path<String>, Json(body): Json<Value>) -> Response {
    if let Some(denied) = authorised(&headers) {
        return denied;
    }
    let mut collections = lock(&state);
    let Some(collection) = collections.get_mut(&name) else { return error(StatusCode::NOT_FOUND, "Collection not found") };
    for id in body.get("points").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default() {
        collection.points.remove(&point_key(id));
    }
    ok(json!({"operation_id": 2, "status": "completed"}))
}

fn matches(payload: &Value, condition: &Value) -> bool {
    let Some(key) = condition.get("key").and_then(Value::as_str) else { return false };
    let value = payload.get(key);
    if let Some(expected) = condition.pointer("/match/value") {
        return value == Some(expected);
    }
    if let Some(range) = condition.get("range") {
        let Some(number) = value.and_then(Value::as_f64) else { return false };
        let bound = |name: &str| range.get(name).and_then(Value::as_f64);
        return bound("gte").is_none_or(|b| number >= b)
            && bound("gt").is_none_or(|b| number > b)
            && bound("lte").is_none_or(|b| number <= b)
            && bound("lt").is_none_or(|b| number < b);
    }
    false
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm(a) == 0.0 || norm(b) == 0.0 { 0.0 } else { dot / (norm(a) * norm(b)) }
}

async fn search(State(state): State<Collections>, headers: HeaderMap, Path(name): Path<String>, Json(body): Json<Value>) -> Response {
    if let Some(denied) = authorised(&headers) {
        return denied;
    }
    let collections = lock(&state);
    let Some(collection) = collections.get(&name) else { return error(StatusCode::NOT_FOUND, "Collection not found") };
    let query: Vec<f64> =
        body.get("vector").and_then(Value::as_array).map(|v| v.iter().filter_map(Value::as_f64).collect()).unwrap_or_default();
    if query.len() != collection.size {
        return error(StatusCode::BAD_REQUEST, "Wrong input: Vector dimension error");
    }
    let must: Vec<Value> = body.pointer("/filter/must").and_then(Value::as_array).cloned().unwrap_or_default();
    let limit = body.get("limit").and_then(Value::as_u64).unwrap_or(10) as usize;
    let mut hits: Vec<(f64, &String, &Value)> = collection
        .points
        .iter()
        .filter(|(_, (_, payload))| must.iter().all(|condition| matches(payload, condition)))
        .map(|(id, (vector, payload))| (cosine(&query, vector), id, payload))
        .collect();
    hits.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    let result: Vec<Value> = hits
        .into_iter()
        .take(limit)
        .map(|(score, id, payload)| json!({"id": id, "version": 1, "score": score, "payload": payload}))
        .collect();
    ok(json!(result))
}

async fn count(State(state): State<Collections>, headers: HeaderMap, Path(name): Path<String>) -> Response {
    if let Some(denied) = authorised(&headers) {
        return denied;
    }
    let collections = lock(&state);
    let Some(collection) = collections.get(&name) else { return error(StatusCode::NOT_FOUND, "Collection not found") };
    ok(json!({"count": collection.points.len()}))
}
