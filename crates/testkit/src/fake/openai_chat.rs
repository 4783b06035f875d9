//! OpenAI-compatible chat completions (<https://platform.openai.com/docs/api-reference/chat/create>),
//! in both URL layouts:
//! - `POST /v1/chat/completions` (OpenAI, Ollama, vLLM, llama.cpp) with `Authorization: Bearer
//!   <API_KEY>`, or no key at all from [`FakeOpenAiChat::start_keyless`] (as local servers);
//! - `POST /openai/deployments/{deployment}/chat/completions?api-version=...` (Azure OpenAI) with
//!   `api-key: <AZURE_KEY>`; the answer names [`AZURE_MODEL`], the model behind the deployment.
//!
//! It checks what OpenAI checks: a `tool_choice` must name one of the `tools`, `stream_options`
//! needs `stream: true`, and JSON mode (`response_format: {"type": "json_object"}`) needs the word
//! "json" in the messages. It answers with the scripted [`Reply`] (a call of the requested tool,
//! or the same JSON as message content when the request offers no tools), and counts usage from
//! the request's size: 4 characters a token, and a system message seen before is reported as
//! `prompt_tokens_details.cached_tokens`, as automatic prefix caching does. Streamed answers are
//! SSE `data: {chunk}` lines (text and tool arguments split over several chunks, a final usage
//! chunk when `stream_options.include_usage`, then `data: [DONE]`), sent in pieces cut at
//! arbitrary bytes so a client must reassemble lines. Faults from the [`Handle`] queue replace
//! the next answer; a [`Fault::CutAfter`] sends that many bytes of it (streamed or not) and then
//! resets the connection.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::StreamExt;
use serde_json::{Value, json};

use super::{Fault, Handle, serve};

pub const API_KEY: &str = "sk-fake-chat-0123456789";
pub const AZURE_KEY: &str = "fake-azure-openai-key-abcdef";
/// The model Azure reports for any deployment.
pub const AZURE_MODEL: &str = "gpt-4o-2024-08-06";
/// Pieces a body is sent in: cut at arbitrary bytes (mid-line, mid-character), yet few, because
/// many tiny writes exhaust tokio's cooperative budget and a deferred wake-up lets a paused test
/// clock jump past the client's timeout.
const PIECES: usize = 8;

/// What the fake model answers (until told otherwise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The structured answer: a call of the requested tool (`tool_choice`, else `tools[0]`)
    /// with these arguments, or, when the request offers no tools, the same text as content.
    Answer { arguments: String },
    /// A call of this tool, whatever was requested.
    ToolNamed { name: String, arguments: String },
    /// Plain content, no tool call.
    Text(String),
}

impl Reply {
    pub fn answer(arguments: &Value) -> Self {
        Reply::Answer { arguments: arguments.to_string() }
    }

    /// Arguments that are not JSON (a model cut off mid-object).
    pub fn invalid_arguments() -> Self {
        Reply::Answer { arguments: r#"{"verdict": "malicious", "confid"#.to_owned() }
    }

    pub fn text(content: &str) -> Self {
        Reply::Text(content.to_owned())
    }
}

/// One request as it arrived, before any check.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub path: String,
    /// The `api-version` query parameter.
    pub api_version: Option<String>,
    pub authorization: Option<String>,
    /// The `api-key` header.
    pub api_key: Option<String>,
    /// The JSON body (`Null` when it was not JSON).
    pub body: Value,
}

#[derive(Debug)]
struct Chat {
    require_key: bool,
    reply: Reply,
    received: Vec<Received>,
    /// System messages answered before: their tokens are "cached" next time.
    seen_systems: HashSet<String>,
    answered: u64,
}

#[derive(Clone)]
struct AppState {
    handle: Handle,
    chat: Arc<Mutex<Chat>>,
}

impl AppState {
    fn chat(&self) -> MutexGuard<'_, Chat> {
        // A test thread that panicked while holding the lock already failed the test.
        self.chat.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

pub struct FakeOpenAiChat {
    pub addr: SocketAddr,
    pub handle: Handle,
    state: AppState,
}

impl FakeOpenAiChat {
    /// Requires `Bearer API_KEY` on `/v1/...` and `api-key: AZURE_KEY` on the Azure route.
    pub async fn start() -> Self {
        Self::start_with(true).await
    }

    /// `/v1/...` needs no key, as Ollama, vLLM and llama.cpp serve it.
    pub async fn start_keyless() -> Self {
        Self::start_with(false).await
    }

    async fn start_with(require_key: bool) -> Self {
        let handle = Handle::default();
        let chat = Chat {
            require_key,
            reply: Reply::answer(&json!({"ok": true})),
            received: Vec::new(),
            seen_systems: HashSet::new(),
            answered: 0,
        };
        let state = AppState { handle: handle.clone(), chat: Arc::new(Mutex::new(chat)) };
        let router = Router::new()
            .route("/v1/chat/completions", post(openai_route))
            .route("/openai/deployments/{deployment}/chat/completions", post(azure_route))
            .with_state(state.clone());
        FakeOpenAiChat { addr: serve(router).await, handle, state }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What the model answers from now on.
    pub fn reply_with(&self, reply: Reply) {
        self.state.chat().reply = reply;
    }

    /// Every request received, in order (including refused ones).
    pub fn received(&self) -> Vec<Received> {
        self.state.chat().received.clone()
    }

    /// The body of the last request received.
    pub fn last_body(&self) -> Option<Value> {
        self.state.chat().received.last().map(|r| r.body.clone())
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

fn error(status: StatusCode, message: &str, kind: &str, code: Value) -> Response {
    (status, axum::Json(json!({"error": {"message": message, "type": kind, "param": null, "code": code}}))).into_response()
}

fn record(state: &AppState, path: String, api_version: Option<String>, headers: &HeaderMap, body: &Bytes) -> Value {
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let received = Received {
        path,
        api_version,
        authorization: header(headers, "authorization"),
        api_key: header(headers, "api-key"),
        body: body.clone(),
    };
    state.chat().received.push(received);
    body
}

async fn openai_route(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let body = record(&state, "/v1/chat/completions".to_owned(), None, &headers, &body);
    let require_key = state.chat().require_key;
    if require_key && header(&headers, "authorization").as_deref() != Some(&format!("Bearer {API_KEY}")) {
        let message = "Incorrect API key provided: sk-fak*********************6789. You can find your API key at https://platform.openai.com/account/api-keys.";
        return error(StatusCode::UNAUTHORIZED, message, "invalid_request_error", json!("invalid_api_key"));
    }
    if body.get("model").and_then(Value::as_str).is_none_or(str::is_empty) {
        return error(StatusCode::BAD_REQUEST, "you must provide a model parameter", "invalid_request_error", Value::Null);
    }
    answer(&state, &body, None)
}

async fn azure_route(
    State(state): State<AppState>,
    Path(deployment): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let api_version = query.get("api-version").cloned();
    let path = format!("/openai/deployments/{deployment}/chat/completions");
    let body = record(&state, path, api_version.clone(), &headers, &body);
    if header(&headers, "api-key").as_deref() != Some(AZURE_KEY) {
        let message = "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.";
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": {"code": "401", "message": message}}))).into_response();
    }
    if api_version.as_deref().is_none_or(str::is_empty) {
        return (StatusCode::NOT_FOUND, axum::Json(json!({"error": {"code": "404", "message": "Resource not found"}}))).into_response();
    }
    answer(&state, &body, Some(&deployment))
}

/// Validates the request as OpenAI does, then serves the fault or the scripted answer.
fn answer(state: &AppState, body: &Value, deployment: Option<&str>) -> Response {
    let invalid = |message: &str| error(StatusCode::BAD_REQUEST, message, "invalid_request_error", Value::Null);
    let Some(messages) = body.get("messages").and_then(Value::as_array).filter(|m| !m.is_empty()) else {
        return invalid("'messages' must be a non-empty array");
    };
    let contents: Vec<&str> = messages.iter().filter_map(|m| m.get("content").and_then(Value::as_str)).collect();
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    if body.get("stream_options").is_some_and(|o| !o.is_null()) && !stream {
        return invalid("The 'stream_options' parameter is only allowed when 'stream' is enabled.");
    }
    if body.pointer("/response_format/type").and_then(Value::as_str) == Some("json_object")
        && !contents.iter().any(|c| c.to_lowercase().contains("json"))
    {
        return invalid("'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.");
    }
    let tool_names: Vec<&str> =
        body.get("tools").and_then(Value::as_array).into_iter().flatten().filter_map(|t| t.pointer("/function/name")?.as_str()).collect();
    let chosen = body.pointer("/tool_choice/function/name").and_then(Value::as_str);
    if let Some(name) = chosen
        && !tool_names.contains(&name)
    {
        return invalid(&format!("Invalid value for 'tool_choice': function '{name}' is not among the tools."));
    }
    state.handle.log(format!("POST chat/completions stream={stream} tools={}", tool_names.len()));
    let fault = state.handle.next_fault();
    if let Some(Fault::Status { .. }) = fault {
        return fault.and_then(|f| f.response()).unwrap_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    }

    // The answer: content and at most one tool call (name, arguments).
    let mut chat = state.chat();
    let (content, call) = match &chat.reply {
        Reply::Answer { arguments } => match chosen.or(tool_names.first().copied()) {
            Some(name) => (None, Some((name.to_owned(), arguments.clone()))),
            None => (Some(arguments.clone()), None),
        },
        Reply::ToolNamed { name, arguments } => (None, Some((name.clone(), arguments.clone()))),
        Reply::Text(text) => (Some(text.clone()), None),
    };
    let tools_chars = body.get("tools").map_or(0, |t| t.to_string().chars().count());
    let prompt_tokens = (contents.iter().map(|c| c.chars().count()).sum::<usize>() + tools_chars).div_ceil(4);
    let system = messages.first().filter(|m| m.get("role").and_then(Value::as_str) == Some("system"));
    let system = system.and_then(|m| m.get("content")).and_then(Value::as_str).unwrap_or_default();
    let cached_tokens =
        if !system.is_empty() && chat.seen_systems.contains(system) { (system.chars().count() / 4).min(prompt_tokens) } else { 0 };
    chat.seen_systems.insert(system.to_owned());
    let answer_chars = content.as_deref().map_or(0, |c| c.chars().count()) + call.as_ref().map_or(0, |(_, a)| a.chars().count());
    let completion_tokens = answer_chars.div_ceil(4).max(1);
    chat.answered += 1;
    let id = format!("chatcmpl-fake-{}", chat.answered);
    drop(chat);

    let usage = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
    });
    let model = deployment.map_or_else(|| body.get("model").cloned().unwrap_or(Value::Null), |_| json!(AZURE_MODEL));
    let finish_reason = if call.is_some() { "tool_calls" } else { "stop" };
    let text = if stream {
        let include_usage = body.pointer("/stream_options/include_usage").and_then(Value::as_bool).unwrap_or(false);
        sse(&id, &model, content.as_deref(), call.as_ref(), finish_reason, include_usage.then_some(&usage))
    } else {
        let tool_calls = call.as_ref().map(
            |(name, arguments)| json!([{"id": "call_fake_0", "type": "function", "function": {"name": name, "arguments": arguments}}]),
        );
        json!({
            "id": id,
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": content, "tool_calls": tool_calls, "refusal": null},
                "logprobs": null,
                "finish_reason": finish_reason,
            }],
            "usage": usage,
            "system_fingerprint": "fp_fake",
        })
        .to_string()
    };
    let content_type = if stream { "text/event-stream" } else { "application/json" };
    let data = Bytes::from(text.into_bytes());
    let (data, cut) = match fault {
        Some(Fault::CutAfter { bytes }) => (data.slice(..bytes.min(data.len())), true),
        _ => (data, false),
    };
    let piece = data.len().div_ceil(PIECES).max(1);
    let mut pieces: Vec<Result<Bytes, std::io::Error>> =
        (0..data.len()).step_by(piece).map(|at| Ok(data.slice(at..(at + piece).min(data.len())))).collect();
    if cut {
        pieces.push(Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "cut by the fake")));
    }
    // The reset waits a moment, so the head and the first bytes reach the client first (else
    // the connection may die before the status line and the client sees a failed send).
    let body = futures::stream::iter(pieces).then(|piece| async move {
        if piece.is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        piece
    });
    ([("content-type", content_type)], Body::from_stream(body)).into_response()
}

/// The SSE body of a streamed answer: text in 5-character pieces, tool arguments in
/// 7-character pieces after a first chunk naming the tool, a finishing chunk, the usage chunk
/// when asked for, and `[DONE]`.
fn sse(
    id: &str,
    model: &Value,
    content: Option<&str>,
    call: Option<&(String, String)>,
    finish_reason: &str,
    usage: Option<&Value>,
) -> String {
    let with_usage = usage.is_some();
    let chunk = |delta: Value, finish: Option<&str>| {
        let mut chunk = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        if with_usage && let Some(map) = chunk.as_object_mut() {
            map.insert("usage".to_owned(), Value::Null);
        }
        format!("data: {chunk}\n\n")
    };
    let pieces = |text: &str, size: usize| -> Vec<String> {
        text.chars().collect::<Vec<char>>().chunks(size).map(|piece| piece.iter().collect()).collect()
    };
    let mut out = chunk(json!({"role": "assistant", "content": ""}), None);
    if let Some(content) = content {
        for piece in pieces(content, 5) {
            out.push_str(&chunk(json!({"content": piece}), None));
        }
    }
    if let Some((name, arguments)) = call {
        let first =
            json!({"tool_calls": [{"index": 0, "id": "call_fake_0", "type": "function", "function": {"name": name, "arguments": ""}}]});
        out.push_str(&chunk(first, None));
        for piece in pieces(arguments, 7) {
            out.push_str(&chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}), None));
        }
    }
    out.push_str(&chunk(json!({}), Some(finish_reason)));
    if let Some(usage) = usage {
        let last =
            json!({"id": id, "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model, "choices": [], "usage": usage});
        out.push_str(&format!("data: {last}\n\n"));
    }
    out.push_str("data: [DONE]\n\n");
    out
}
