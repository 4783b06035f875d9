//! Anthropic Messages API and Message Batches, as documented
//! (<https://platform.claude.com/docs/en/api/messages>, `.../build-with-claude/streaming`,
//! `.../build-with-claude/prompt-caching`, `.../build-with-claude/extended-thinking`,
//! `.../build-with-claude/batch-processing`).
//!
//! - Auth: `x-api-key` must be [`API_KEY`] (else 401 `authentication_error`) and
//!   `anthropic-version` must be [`VERSION`] (else 400).
//! - Validation (400 `invalid_request_error`, as the API answers): `model`, `max_tokens` and
//!   `messages` present; `tool_choice` `tool` naming an offered tool; with `thinking`: budget
//!   at least 1024 and below `max_tokens`, no forced tool (`any`/`tool`), no `temperature`.
//! - Answers: scripted with [`FakeAnthropic::reply`], else a `tool_use` of the first offered
//!   tool with input `{}` (or the text `ok` when no tool is offered). A request with thinking
//!   always gets a thinking block.
//! - Usage: tokens are `ceil(chars / 4)` ([`tokens`]). Prompt caching is simulated: the prefix
//!   up to the last system block with `cache_control` (tools included, as they render first) is
//!   written to the cache the first time (`cache_creation_input_tokens`) and read afterwards
//!   (`cache_read_input_tokens`); `input_tokens` counts the rest. No minimum prefix length.
//! - `stream: true` is answered as `text/event-stream` with the documented event sequence,
//!   a `ping`, tool input split over several `input_json_delta`s (the first one empty).
//! - Faults queued on [`FakeAnthropic::handle`] apply to `POST /v1/messages` only.
//! - Batches: each `GET` of a batch reports `in_progress` for the first [`FakeAnthropic::set_batch_polls`]
//!   polls (default 2), then `ended` with a `results_url` on this server serving JSONL. Items can
//!   be scripted to end errored, canceled or expired ([`FakeAnthropic::batch_item`]).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::{Fault, Handle, serve};

pub const API_KEY: &str = "sk-ant-fake-0123456789";
pub const VERSION: &str = "2023-06-01";

/// Tokens the fake counts for `text`.
pub fn tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// 529 `overloaded_error`, as Anthropic answers when busy.
pub fn overloaded() -> Fault {
    Fault::Status { status: 529, retry_after: None, body: error_body("overloaded_error", "Overloaded").to_string() }
}

/// 500 `api_error`.
pub fn api_error() -> Fault {
    Fault::Status { status: 500, retry_after: None, body: error_body("api_error", "Internal server error").to_string() }
}

/// 429 `rate_limit_error` with `retry-after`.
pub fn rate_limited(retry_after: u64) -> Fault {
    Fault::Status {
        status: 429,
        retry_after: Some(retry_after),
        body: error_body("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit").to_string(),
    }
}

/// One scripted answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reply {
    pub thinking: Option<String>,
    pub text: Option<String>,
    /// `(tool name, input)`; the name `None` means the first offered tool.
    pub tool_use: Option<(Option<String>, Value)>,
}

impl Reply {
    pub fn text(text: &str) -> Self {
        Reply { text: Some(text.to_owned()), ..Reply::default() }
    }

    /// Calls the first offered tool with `input`.
    pub fn tool_use(input: Value) -> Self {
        Reply { tool_use: Some((None, input)), ..Reply::default() }
    }

    /// Calls the tool `name` (offered or not) with `input`.
    pub fn tool_use_named(name: &str, input: Value) -> Self {
        Reply { tool_use: Some((Some(name.to_owned()), input)), ..Reply::default() }
    }

    pub fn with_thinking(mut self, thinking: &str) -> Self {
        self.thinking = Some(thinking.to_owned());
        self
    }

    pub fn with_text(mut self, text: &str) -> Self {
        self.text = Some(text.to_owned());
        self
    }
}

/// How a scripted batch item ends instead of succeeding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemFate {
    /// `errored` with this error type (`invalid_request_error`, `api_error`, ...).
    Errored(String),
    Canceled,
    Expired,
}

#[derive(Debug)]
struct Batch {
    polls_left: u32,
    canceled: bool,
    /// `(custom_id, result)` in submission order.
    results: Vec<(String, Value)>,
}

#[derive(Debug, Default)]
struct FakeState {
    replies: VecDeque<Reply>,
    /// Every JSON body posted to `/v1/messages` and `/v1/messages/batches`, in order.
    bodies: Vec<Value>,
    cached_prefixes: HashSet<String>,
    batches: BTreeMap<String, Batch>,
    batch_polls: u32,
    fates: HashMap<String, ItemFate>,
    /// Error types the next streamed answers break off with (after `message_start` and a `ping`).
    stream_errors: VecDeque<String>,
    next_id: u64,
    base_url: String,
}

/// The fake's state. A std `Mutex`: held for a few map operations, never across an `.await`.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<FakeState>>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, FakeState> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[derive(Clone)]
struct AppState {
    handle: Handle,
    shared: Shared,
}

pub struct FakeAnthropic {
    pub addr: SocketAddr,
    pub handle: Handle,
    shared: Shared,
}

impl FakeAnthropic {
    pub async fn start() -> Self {
        let handle = Handle::default();
        let shared = Shared::default();
        shared.lock().batch_polls = 2;
        let state = AppState { handle: handle.clone(), shared: shared.clone() };
        let router = Router::new()
            .route("/v1/messages", post(messages))
            .route("/v1/messages/batches", post(create_batch))
            .route("/v1/messages/batches/{id}", get(retrieve_batch))
            .route("/v1/messages/batches/{id}/cancel", post(cancel_batch))
            .route("/v1/messages/batches/{id}/results", get(batch_results))
            .with_state(state);
        let addr = serve(router).await;
        shared.lock().base_url = format!("http://{addr}");
        FakeAnthropic { addr, handle, shared }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues the next answer (messages and batch items take them in order).
    pub fn reply(&self, reply: Reply) {
        self.shared.lock().replies.push_back(reply);
    }

    /// Number of status polls a batch answers `in_progress` before `ended` (for batches created later).
    pub fn set_batch_polls(&self, polls: u32) {
        self.shared.lock().batch_polls = polls;
    }

    /// Makes the batch item `custom_id` end as `fate` (for batches created later).
    pub fn batch_item(&self, custom_id: &str, fate: ItemFate) {
        self.shared.lock().fates.insert(custom_id.to_owned(), fate);
    }

    /// Makes the next streamed answer send an `error` event of this type (`overloaded_error`,
    /// `api_error`, ...) after `message_start`, as the API does when it fails mid-answer.
    pub fn stream_error_next(&self, error_type: &str) {
        self.shared.lock().stream_errors.push_back(error_type.to_owned());
    }

    /// Every JSON body received on `/v1/messages` and `/v1/messages/batches`, in order.
    pub fn bodies(&self) -> Vec<Value> {
        self.shared.lock().bodies.clone()
    }

    pub fn last_body(&self) -> Option<Value> {
        self.shared.lock().bodies.last().cloned()
    }
}

fn error_body(kind: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_fake"})
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    (status, Json(error_body(kind, message))).into_response()
}

fn invalid(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "invalid_request_error", message)
}

/// The documented headers, or the API's refusal.
fn check_headers(headers: &HeaderMap) -> Option<Response> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if header("x-api-key") != Some(API_KEY) {
        return Some(error(StatusCode::UNAUTHORIZED, "authentication_error", "invalid x-api-key"));
    }
    match header("anthropic-version") {
        Some(VERSION) => None,
        Some(_) => Some(invalid("anthropic-version: unsupported version")),
        None => Some(invalid("anthropic-version: header is required")),
    }
}

fn parse_json(body: &Bytes) -> Result<Value, String> {
    serde_json::from_slice(body).map_err(|e| format!("There was an issue with your request body: {e}"))
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// What the API rejects with 400 that a client could get wrong.
fn validate(body: &Value) -> Result<(), String> {
    if body.get("model").and_then(Value::as_str).is_none_or(str::is_empty) {
        return Err("model: Field required".to_owned());
    }
    let max_tokens = body.get("max_tokens").and_then(Value::as_u64).filter(|n| *n > 0).ok_or("max_tokens: Field required")?;
    let messages = body.get("messages").and_then(Value::as_array).filter(|m| !m.is_empty()).ok_or("messages: Field required")?;
    for (i, message) in messages.iter().enumerate() {
        if !matches!(message.get("role").and_then(Value::as_str), Some("user" | "assistant")) {
            return Err(format!("messages.{i}.role: Input should be 'user' or 'assistant'"));
        }
        if !message.get("content").is_some_and(|c| c.is_string() || c.is_array()) {
            return Err(format!("messages.{i}.content: Field required"));
        }
    }
    if let Some(system) = body.get("system") {
        let blocks = match system {
            Value::String(_) => &Vec::new(),
            Value::Array(blocks) => blocks,
            _ => return Err("system: Input should be a valid string or list".to_owned()),
        };
        for (i, block) in blocks.iter().enumerate() {
            if block.get("type").and_then(Value::as_str) != Some("text") || !block.get("text").is_some_and(Value::is_string) {
                return Err(format!("system.{i}: Input should be a text block"));
            }
            if let Some(cache) = block.get("cache_control")
                && cache.get("type").and_then(Value::as_str) != Some("ephemeral")
            {
                return Err(format!("system.{i}.cache_control.type: Input should be 'ephemeral'"));
            }
        }
    }
    let mut tool_names = Vec::new();
    for (i, tool) in body.get("tools").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let name = tool
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| valid_name(n))
            .ok_or_else(|| format!("tools.{i}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"))?;
        if tool.get("input_schema").and_then(|s| s.get("type")).and_then(Value::as_str) != Some("object") {
            return Err(format!("tools.{i}.input_schema.type: Input should be 'object'"));
        }
        tool_names.push(name);
    }
    let choice = body.get("tool_choice").map(|c| c.get("type").and_then(Value::as_str).unwrap_or(""));
    match choice {
        None | Some("auto" | "any" | "none") => {}
        Some("tool") => {
            let name = body["tool_choice"].get("name").and_then(Value::as_str).unwrap_or("");
            if !tool_names.contains(&name) {
                return Err(format!("tool_choice: tool `{name}` is not in tools"));
            }
        }
        Some(other) => return Err(format!("tool_choice.type: unknown type '{other}'")),
    }
    if let Some(temperature) = body.get("temperature")
        && !temperature.as_f64().is_some_and(|t| (0.0..=1.0).contains(&t))
    {
        return Err("temperature: Input should be between 0 and 1".to_owned());
    }
    if let Some(thinking) = body.get("thinking") {
        if thinking.get("type").and_then(Value::as_str) != Some("enabled") {
            return Err("thinking.type: Input should be 'enabled' or 'disabled'".to_owned());
        }
        let budget = thinking.get("budget_tokens").and_then(Value::as_u64).unwrap_or(0);
        if budget < 1024 {
            return Err("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024".to_owned());
        }
        if budget >= max_tokens {
            return Err("`max_tokens` must be greater than `thinking.budget_tokens`".to_owned());
        }
        if matches!(choice, Some("any" | "tool")) {
            return Err("Thinking may not be enabled when tool_choice forces tool use.".to_owned());
        }
        if body.get("temperature").is_some() {
            return Err("`temperature` may only be set to 1 when thinking is enabled.".to_owned());
        }
    }
    if body.get("stream").is_some_and(|s| !s.is_boolean()) {
        return Err("stream: Input should be a valid boolean".to_owned());
    }
    Ok(())
}

/// What a request costs: `(input, cache_write, cache_read)`.
fn input_usage(state: &mut FakeState, body: &Value) -> (u64, u64, u64) {
    let tools = body.get("tools").map(Value::to_string).unwrap_or_default();
    let blocks: Vec<&Value> = match body.get("system") {
        Some(Value::Array(blocks)) => blocks.iter().collect(),
        _ => Vec::new(),
    };
    let system_text = |blocks: &[&Value]| blocks.iter().filter_map(|b| b.get("text").and_then(Value::as_str)).collect::<String>();
    let cached_end = blocks.iter().rposition(|b| b.get("cache_control").is_some()).map_or(0, |i| i + 1);
    let prefix = format!("{tools}{}", system_text(&blocks[..cached_end]));
    let rest = format!(
        "{}{}{}",
        if cached_end == 0 { tools.as_str() } else { "" },
        system_text(&blocks[cached_end..]),
        body.get("system").and_then(Value::as_str).unwrap_or("")
    );
    let messages = body.get("messages").map(Value::to_string).unwrap_or_default();
    let input = tokens(&rest) + tokens(&messages);
    if cached_end == 0 {
        return (input, 0, 0);
    }
    let prefix_tokens = tokens(&prefix);
    if state.cached_prefixes.insert(prefix) { (input, prefix_tokens, 0) } else { (input, 0, prefix_tokens) }
}

/// The content blocks and stop reason answering `body`.
fn answer(state: &mut FakeState, body: &Value) -> (Vec<Value>, &'static str) {
    let offered: Option<String> = body.pointer("/tools/0/name").and_then(Value::as_str).map(str::to_owned);
    let reply = state.replies.pop_front().unwrap_or_else(|| match &offered {
        Some(_) => Reply::tool_use(json!({})),
        None => Reply::text("ok"),
    });
    state.next_id += 1;
    let id = state.next_id;
    let mut content = Vec::new();
    let thinking = reply.thinking.or_else(|| body.get("thinking").map(|_| "Weighing the evidence.".to_owned()));
    if let Some(thinking) = thinking {
        content.push(json!({"type": "thinking", "thinking": thinking, "signature": format!("fake-signature-{id}")}));
    }
    if let Some(text) = reply.text {
        content.push(json!({"type": "text", "text": text}));
    }
    let mut stop_reason = "end_turn";
    if let Some((name, input)) = reply.tool_use {
        let name = name.or(offered).unwrap_or_else(|| "unnamed_tool".to_owned());
        content.push(json!({"type": "tool_use", "id": format!("toolu_fake_{id}"), "name": name, "input": input}));
        stop_reason = "tool_use";
    }
    (content, stop_reason)
}

/// A whole `message` answering `body`.
fn message(state: &mut FakeState, body: &Value) -> Value {
    let (input, cache_write, cache_read) = input_usage(state, body);
    let (content, stop_reason) = answer(state, body);
    let output: u64 = content
        .iter()
        .map(|block| match block.get("input") {
            Some(input) => tokens(&input.to_string()),
            None => tokens(block.get("text").or_else(|| block.get("thinking")).and_then(Value::as_str).unwrap_or("")),
        })
        .sum();
    json!({
        "id": format!("msg_fake_{}", state.next_id),
        "type": "message",
        "role": "assistant",
        "model": body.get("model").cloned().unwrap_or(Value::Null),
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": {
            "input_tokens": input,
            "cache_creation_input_tokens": cache_write,
            "cache_read_input_tokens": cache_read,
            "output_tokens": output,
        },
    })
}

/// Splits `text` into `parts` pieces on character boundaries.
fn pieces(text: &str, parts: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let size = chars.len().div_ceil(parts).max(1);
    chars.chunks(size).map(|chunk| chunk.iter().collect()).collect()
}

/// `message` as the documented SSE event sequence.
fn sse(message: &Value) -> String {
    let mut events: Vec<(&str, Value)> = Vec::new();
    let mut start = message.clone();
    start["content"] = json!([]);
    start["stop_reason"] = Value::Null;
    let output_tokens = message.pointer("/usage/output_tokens").cloned().unwrap_or(json!(0));
    start["usage"]["output_tokens"] = json!(1);
    events.push(("message_start", json!({"type": "message_start", "message": start})));
    events.push(("ping", json!({"type": "ping"})));
    let empty = Vec::new();
    for (index, block) in message.get("content").and_then(Value::as_array).unwrap_or(&empty).iter().enumerate() {
        let delta = |delta: Value| ("content_block_delta", json!({"type": "content_block_delta", "index": index, "delta": delta}));
        let str_of = |key: &str| block.get(key).and_then(Value::as_str).unwrap_or("").to_owned();
        match block.get("type").and_then(Value::as_str) {
            Some("thinking") => {
                events.push((
                    "content_block_start",
                    json!({"type": "content_block_start", "index": index, "content_block": {"type": "thinking", "thinking": ""}}),
                ));
                events.extend(pieces(&str_of("thinking"), 2).into_iter().map(|p| delta(json!({"type": "thinking_delta", "thinking": p}))));
                events.push(delta(json!({"type": "signature_delta", "signature": str_of("signature")})));
            }
            Some("text") => {
                events.push((
                    "content_block_start",
                    json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}),
                ));
                events.extend(pieces(&str_of("text"), 3).into_iter().map(|p| delta(json!({"type": "text_delta", "text": p}))));
            }
            Some("tool_use") => {
                let tool = json!({"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}});
                events.push(("content_block_start", json!({"type": "content_block_start", "index": index, "content_block": tool})));
                events.push(delta(json!({"type": "input_json_delta", "partial_json": ""})));
                let input = block.get("input").map(Value::to_string).unwrap_or_default();
                events.extend(pieces(&input, 3).into_iter().map(|p| delta(json!({"type": "input_json_delta", "partial_json": p}))));
            }
            _ => {}
        }
        events.push(("content_block_stop", json!({"type": "content_block_stop", "index": index})));
    }
    let stop = json!({"stop_reason": message["stop_reason"], "stop_sequence": null});
    events.push(("message_delta", json!({"type": "message_delta", "delta": stop, "usage": {"output_tokens": output_tokens}})));
    events.push(("message_stop", json!({"type": "message_stop"})));
    events.into_iter().map(|(name, data)| format!("event: {name}\ndata: {data}\n\n")).collect()
}

/// `body` as a response, cut after `cut` bytes when asked.
fn respond(content_type: &'static str, body: String, cut: Option<usize>) -> Response {
    let data = Bytes::from(body.into_bytes());
    let frames: Vec<Result<Bytes, std::io::Error>> = match cut {
        Some(bytes) => {
            vec![Ok(data.slice(..bytes.min(data.len()))), Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "cut by the fake"))]
        }
        // Two frames per answer, split mid-way, so clients see partial events.
        None => {
            let middle = data.len() / 2;
            vec![Ok(data.slice(..middle)), Ok(data.slice(middle..))]
        }
    };
    ([("content-type", content_type)], Body::from_stream(futures::stream::iter(frames))).into_response()
}

async fn messages(State(app): State<AppState>, headers: HeaderMap, raw: Bytes) -> Response {
    let parsed = serde_json::from_slice::<Value>(&raw).ok();
    let detail = |key: &str| parsed.as_ref().and_then(|b| b.pointer(key)).map(Value::to_string).unwrap_or_else(|| "-".to_owned());
    app.handle.log(format!(
        "POST /v1/messages stream={} tool_choice={} thinking={}",
        detail("/stream"),
        detail("/tool_choice/type"),
        detail("/thinking/budget_tokens")
    ));
    if let Some(refused) = check_headers(&headers) {
        return refused;
    }
    let body = match parse_json(&raw) {
        Ok(body) => body,
        Err(message) => return invalid(&message),
    };
    app.shared.lock().bodies.push(body.clone());
    if let Err(message) = validate(&body) {
        return invalid(&message);
    }
    let cut = match app.handle.next_fault() {
        Some(fault @ Fault::Status { .. }) => return fault.response().unwrap_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.into_response()),
        Some(Fault::CutAfter { bytes }) => Some(bytes),
        None => None,
    };
    let streamed = body.get("stream").and_then(Value::as_bool) == Some(true);
    let stream_error = if streamed { app.shared.lock().stream_errors.pop_front() } else { None };
    if let Some(kind) = stream_error {
        let start = json!({"type": "message_start", "message": {
            "id": "msg_fake_broken", "type": "message", "role": "assistant", "model": body["model"], "content": [],
            "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 1, "output_tokens": 1},
        }});
        let events = format!(
            "event: message_start\ndata: {start}\n\nevent: ping\ndata: {}\n\nevent: error\ndata: {}\n\n",
            json!({"type": "ping"}),
            error_body(&kind, "stream failed")
        );
        return respond("text/event-stream", events, cut);
    }
    let message = message(&mut app.shared.lock(), &body);
    if streamed { respond("text/event-stream", sse(&message), cut) } else { respond("application/json", message.to_string(), cut) }
}

fn batch_object(state: &FakeState, id: &str, batch: &Batch, status: &str) -> Value {
    let of = |kind: &str| batch.results.iter().filter(|(_, r)| r["type"] == kind).count();
    let counts = if status == "ended" {
        json!({"processing": 0, "succeeded": of("succeeded"), "errored": of("errored"), "canceled": of("canceled"), "expired": of("expired")})
    } else {
        json!({"processing": batch.results.len(), "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0})
    };
    let ended = status == "ended";
    json!({
        "id": id,
        "type": "message_batch",
        "processing_status": status,
        "request_counts": counts,
        "created_at": "2026-01-01T00:00:00Z",
        "expires_at": "2026-01-02T00:00:00Z",
        "ended_at": if ended { json!("2026-01-01T01:00:00Z") } else { Value::Null },
        "cancel_initiated_at": if batch.canceled { json!("2026-01-01T00:30:00Z") } else { Value::Null },
        "archived_at": null,
        "results_url": if ended { json!(format!("{}/v1/messages/batches/{id}/results", state.base_url)) } else { Value::Null },
    })
}

async fn create_batch(State(app): State<AppState>, headers: HeaderMap, raw: Bytes) -> Response {
    let parsed = serde_json::from_slice::<Value>(&raw).ok();
    let count = parsed.as_ref().and_then(|b| b.get("requests")).and_then(Value::as_array).map_or(0, Vec::len);
    app.handle.log(format!("POST /v1/messages/batches requests={count}"));
    if let Some(refused) = check_headers(&headers) {
        return refused;
    }
    let body = match parse_json(&raw) {
        Ok(body) => body,
        Err(message) => return invalid(&message),
    };
    let mut state = app.shared.lock();
    state.bodies.push(body.clone());
    let Some(requests) = body.get("requests").and_then(Value::as_array).filter(|r| !r.is_empty()) else {
        return invalid("requests: Field required");
    };
    let mut seen = HashSet::new();
    for (i, request) in requests.iter().enumerate() {
        let custom_id = request.get("custom_id").and_then(Value::as_str).unwrap_or("");
        if !valid_name(custom_id) || !seen.insert(custom_id) {
            return invalid(&format!("requests.{i}.custom_id: must be unique and match '^[a-zA-Z0-9_-]{{1,64}}$'"));
        }
        let params = request.get("params").unwrap_or(&Value::Null);
        if params.get("stream").is_some() {
            return invalid(&format!("requests.{i}.params.stream: streaming is not supported in batches"));
        }
        if let Err(message) = validate(params) {
            return invalid(&format!("requests.{i}.params.{message}"));
        }
    }
    let mut results = Vec::new();
    for request in requests {
        let custom_id = request["custom_id"].as_str().unwrap_or_default().to_owned();
        let result = match state.fates.get(&custom_id).cloned() {
            Some(ItemFate::Errored(kind)) => json!({"type": "errored", "error": error_body(&kind, "scripted failure of this request")}),
            Some(ItemFate::Canceled) => json!({"type": "canceled"}),
            Some(ItemFate::Expired) => json!({"type": "expired"}),
            None => json!({"type": "succeeded", "message": message(&mut state, &request["params"])}),
        };
        results.push((custom_id, result));
    }
    state.next_id += 1;
    let id = format!("msgbatch_fake{}", state.next_id);
    let batch = Batch { polls_left: state.batch_polls, canceled: false, results };
    let object = batch_object(&state, &id, &batch, "in_progress");
    state.batches.insert(id, batch);
    Json(object).into_response()
}

async fn retrieve_batch(State(app): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    app.handle.log(format!("GET /v1/messages/batches/{id}"));
    if let Some(refused) = check_headers(&headers) {
        return refused;
    }
    let mut state = app.shared.lock();
    let Some(batch) = state.batches.get_mut(&id) else { return error(StatusCode::NOT_FOUND, "not_found_error", "batch not found") };
    let status = match (batch.polls_left, batch.canceled) {
        (0, _) => "ended",
        (_, true) => "canceling",
        _ => "in_progress",
    };
    batch.polls_left = batch.polls_left.saturating_sub(1);
    let state = &*state;
    let object = state.batches.get(&id).map(|batch| batch_object(state, &id, batch, status)).unwrap_or_default();
    Json(object).into_response()
}

async fn cancel_batch(State(app): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    app.handle.log(format!("POST /v1/messages/batches/{id}/cancel"));
    if let Some(refused) = check_headers(&headers) {
        return refused;
    }
    let mut state = app.shared.lock();
    let Some(batch) = state.batches.get_mut(&id) else { return error(StatusCode::NOT_FOUND, "not_found_error", "batch not found") };
    if batch.polls_left == 0 {
        return invalid("batch has already ended");
    }
    // The remaining requests are canceled; it ends at the next poll.
    batch.canceled = true;
    batch.polls_left = 1;
    for (_, result) in &mut batch.results {
        *result = json!({"type": "canceled"});
    }
    let state = &*state;
    let object = state.batches.get(&id).map(|batch| batch_object(state, &id, batch, "canceling")).unwrap_or_default();
    Json(object).into_response()
}

async fn batch_results(State(app): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    app.handle.log(format!("GET /v1/messages/batches/{id}/results"));
    if let Some(refused) = check_headers(&headers) {
        return refused;
    }
    let state = app.shared.lock();
    let Some(batch) = state.batches.get(&id) else { return error(StatusCode::NOT_FOUND, "not_found_error", "batch not found") };
    if batch.polls_left > 0 {
        return invalid("batch is still processing; results are not available yet");
    }
    let lines: String =
        batch.results.iter().map(|(custom_id, result)| format!("{}\n", json!({"custom_id": custom_id, "result": result}))).collect();
    ([("content-type", "application/binary")], lines).into_response()
}
