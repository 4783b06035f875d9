//! OpenAI-compatible `POST /v1/embeddings` (<https://platform.openai.com/docs/api-reference/embeddings/create>):
//! `{"model", "input": string | [string]}` → `{"object": "list", "data": [{"object": "embedding",
//! "index", "embedding": [...]}], "model", "usage"}`. Vectors are deterministic (derived from the
//! text's bytes) and returned in reverse order, as the API allows, so clients must use `index`.

use std::net::SocketAddr;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::{Handle, serve};

pub const API_KEY: &str = "sk-fake-embeddings";

pub struct FakeEmbeddings {
    pub addr: SocketAddr,
    pub handle: Handle,
}

#[derive(Clone)]
struct AppState {
    handle: Handle,
    dimensions: usize,
}

impl FakeEmbeddings {
    pub async fn start(dimensions: usize) -> Self {
        let handle = Handle::default();
        let router = Router::new().route("/v1/embeddings", post(embeddings)).with_state(AppState { handle: handle.clone(), dimensions });
        FakeEmbeddings { addr: serve(router).await, handle }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// The vector the fake gives `text`.
pub fn vector_for(text: &str, dimensions: usize) -> Vec<f32> {
    (0..dimensions)
        .map(|i| f32::from(text.as_bytes().get(i % text.len().max(1)).copied().unwrap_or(0)) / 255.0 + i as f32 * 0.001)
        .collect()
}

async fn embeddings(State(state): State<AppState>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {API_KEY}")) {
        let error = json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "code": "invalid_api_key"}});
        return (StatusCode::UNAUTHORIZED, Json(error)).into_response();
    }
    state.handle.log("POST embeddings".to_owned());
    if let Some(fault) = state.handle.next_fault()
        && let Some(response) = fault.response()
    {
        return response;
    }
    let inputs: Vec<String> = match body.get("input") {
        Some(Value::String(text)) => vec![text.clone()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => return (StatusCode::BAD_REQUEST, Json(json!({"error": {"message": "input is required"}}))).into_response(),
    };
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .rev()
        .map(|(index, text)| json!({"object": "embedding", "index": index, "embedding": vector_for(text, state.dimensions)}))
        .collect();
    let model = body.get("model").cloned().unwrap_or(Value::Null);
    Json(json!({"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": 1, "total_tokens": 1}})).into_response()
}
