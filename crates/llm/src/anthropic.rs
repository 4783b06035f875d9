//! Anthropic Messages API provider: structured output through a forced tool call, prompt caching
//! on marked system blocks, extended thinking, SSE streaming, and Message Batches (tier 2).
//!
//! The wire format follows Anthropic's documentation (API version `2023-06-01`):
//! - Messages (`POST /v1/messages`, `x-api-key`, `anthropic-version`, `usage`):
//!   <https://platform.claude.com/docs/en/api/messages>
//! - Tools and `tool_choice` (`auto`, `any`, `tool`, `none`):
//!   <https://platform.claude.com/docs/en/agents-and-tools/tool-use/implement-tool-use>
//! - Prompt caching (`cache_control: {"type": "ephemeral"}`, `cache_creation_input_tokens`,
//!   `cache_read_input_tokens`): <https://platform.claude.com/docs/en/build-with-claude/prompt-caching>
//! - Extended thinking (`thinking: {"type": "enabled", "budget_tokens": n}`, `n >= 1024` and
//!   `n < max_tokens`; not compatible with forced tool use or a changed temperature):
//!   <https://platform.claude.com/docs/en/build-with-claude/extended-thinking>
//! - Streaming (`message_start`, `content_block_start/delta/stop` with `text_delta`,
//!   `input_json_delta`, `thinking_delta`, `signature_delta`, `message_delta`, `message_stop`,
//!   `ping`, `error`; unknown event types must be tolerated):
//!   <https://platform.claude.com/docs/en/build-with-claude/streaming>
//! - Errors (`{"type": "error", "error": {"type", "message"}}`; 529 `overloaded_error`):
//!   <https://platform.claude.com/docs/en/api/errors>
//! - Message Batches (create, retrieve with `processing_status` and `request_counts`, JSONL
//!   results at `results_url`): <https://platform.claude.com/docs/en/build-with-claude/batch-processing>,
//!   <https://platform.claude.com/docs/en/api/messages/batches/retrieve>
//!
//! Retries: [`Http::send`] retries the request itself (429, 5xx including 529, network). An answer
//! that fails after the status line (a body cut mid-read, a stream without `message_stop`, an
//! `error` event inside a stream) is retried here as a whole call, up to the same policy's
//! `max_retries`; each such call again gets [`Http::send`]'s own retries. A malformed answer is not
//! retried: the same request would be billed again for the same surprise.
//!
//! Nothing here logs the prompt, the answer or the key; the key travels in a header marked
//! sensitive and is redacted from `Debug`.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use reqwest::{RequestBuilder, Response};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use aluskort_http::{Http, RetryPolicy, VendorError, json_body};

use crate::provider::{
    BatchItem, BatchOutcome, BatchProvider, BatchStatus, Provider, ProviderKind, ProviderRequest, ProviderResponse, Usage,
};

pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// The `anthropic-version` header every request carries.
pub const API_VERSION: &str = "2023-06-01";
/// Smallest `budget_tokens` the API accepts; smaller budgets are raised to it.
pub const MIN_THINKING_BUDGET: u32 = 1024;
/// Counter of failed HTTP attempts (labels `source`, `kind`).
pub const ERRORS_METRIC: &str = "aluskort_llm_http_errors_total";

/// How to reach the Anthropic API.
#[derive(Clone)]
pub struct AnthropicConfig {
    /// API root, without a trailing slash (default [`DEFAULT_BASE_URL`]); tests point it at a fake.
    pub base_url: String,
    /// Sent as `x-api-key`; never logged and redacted from `Debug`.
    pub api_key: String,
    /// Provider name for logs, metrics and the router (default `anthropic`).
    pub name: String,
    /// Limit of one HTTP attempt, including reading a streamed body (default 300 s).
    pub timeout: Duration,
    /// Retries of failed calls (default 3 retries from 1 s, FR-ING-003's policy).
    pub retry: RetryPolicy,
}

impl AnthropicConfig {
    pub fn new(api_key: impl Into<String>) -> Self {
        AnthropicConfig { api_key: api_key.into(), ..AnthropicConfig::default() }
    }
}

impl Default for AnthropicConfig {
    fn default() -> Self {
        AnthropicConfig {
            base_url: DEFAULT_BASE_URL.to_owned(),
            api_key: String::new(),
            name: "anthropic".to_owned(),
            timeout: Duration::from_secs(300),
            retry: RetryPolicy { max_retries: 3, base: Duration::from_secs(1) },
        }
    }
}

impl fmt::Debug for AnthropicConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnthropicConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &"<redacted>")
            .field("name", &self.name)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish()
    }
}

/// The Anthropic provider; cheap to share behind an `Arc`.
pub struct AnthropicProvider {
    name: String,
    base_url: String,
    /// `x-api-key`, marked sensitive (hyper and `Debug` do not print it).
    api_key: HeaderValue,
    http: Http,
}

impl fmt::Debug for AnthropicProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnthropicProvider")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("api_key", &"<redacted>")
            .field("retry", &self.http.policy)
            .finish()
    }
}

/// Which `tool_use` block answers the call.
#[derive(Debug, Clone, Copy)]
enum ToolPick<'a> {
    /// The block calling this tool (a synchronous call knows what it asked for).
    Named(&'a str),
    /// The first `tool_use` block (batch results: our requests offer exactly one tool).
    First,
    /// No tool was offered; any `tool_use` block is ignored.
    None,
}

impl<'a> ToolPick<'a> {
    fn of(request: &'a ProviderRequest) -> Self {
        request.tool.as_ref().map_or(ToolPick::None, |tool| ToolPick::Named(&tool.name))
    }

    fn wants(self, name: &str) -> bool {
        match self {
            ToolPick::Named(wanted) => wanted == name,
            ToolPick::First => true,
            ToolPick::None => false,
        }
    }
}

impl AnthropicProvider {
    /// Builds the HTTP client; fails when the key is empty or cannot be a header value.
    pub fn new(config: AnthropicConfig, cancel: CancellationToken) -> Result<Self, VendorError> {
        let refused = |detail: &str| VendorError::Auth { status: 0, detail: format!("{}: {detail}", config.name) };
        if config.api_key.trim().is_empty() {
            return Err(refused("the API key is empty"));
        }
        let mut api_key = HeaderValue::from_str(config.api_key.trim()).map_err(|_| refused("the API key is not a valid header value"))?;
        api_key.set_sensitive(true);
        let mut http = Http::new(&config.name, config.retry, config.timeout, cancel)?;
        http.errors_metric = ERRORS_METRIC;
        Ok(AnthropicProvider { name: config.name, base_url: config.base_url.trim_end_matches('/').to_owned(), api_key, http })
    }

    /// `error` with the key cut out of its detail, should a proxy or the vendor ever echo it (the
    /// detail quotes up to 300 characters of the response body).
    fn scrubbed(&self, error: VendorError) -> VendorError {
        let Ok(key) = self.api_key.to_str() else { return error };
        error.map_detail(|detail| if detail.contains(key) { detail.replace(key, "<redacted>") } else { detail })
    }

    fn authorised(&self, builder: RequestBuilder) -> RequestBuilder {
        builder.header("x-api-key", self.api_key.clone()).header("anthropic-version", API_VERSION)
    }

    fn post(&self, client: &reqwest::Client, path: &str, body: &Value) -> RequestBuilder {
        self.authorised(client.post(format!("{}{path}", self.base_url))).json(body)
    }

    /// One model call, retried as a whole when the answer breaks off after the status line.
    async fn call(&self, body: &Value, stream: bool, pick: ToolPick<'_>) -> Result<ProviderResponse, VendorError> {
        let mut retry = 0;
        loop {
            // One retry budget for the whole call: HTTP-level retries and re-calls after a broken body.
            let response = self.http.send_counting("messages", &mut retry, |client| self.post(client, "/v1/messages", body)).await?;
            let answer = if stream && is_event_stream(&response) {
                read_stream(response, pick).await
            } else {
                match json_body("messages", response).await {
                    Ok(message) => parse_message(&message, pick),
                    Err(error) => Err(error),
                }
            };
            let error = match answer {
                Ok(response) => return Ok(response),
                Err(error) => self.scrubbed(error),
            };
            retry += 1;
            let worth_again = matches!(error, VendorError::Network(_) | VendorError::Server { .. } | VendorError::Throttled { .. });
            let Some(delay) = worth_again.then(|| self.http.policy.delay(retry, &error)).flatten() else { return Err(error) };
            warn!(provider = %self.name, %error, retry, delay_ms = delay.as_millis(), "anthropic answer broke off; calling again");
            self.http.pause(delay).await?;
        }
    }

    fn batch_path(&self, batch_id: &str) -> Result<String, VendorError> {
        // The id goes into a path: accept only what Anthropic issues (`msgbatch_` + base62).
        if batch_id.is_empty() || !batch_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(VendorError::Rejected { status: 400, detail: format!("not a message batch id: {batch_id:?}") });
        }
        Ok(format!("{}/v1/messages/batches/{batch_id}", self.base_url))
    }

    async fn get_batch(&self, batch_id: &str) -> Result<Value, VendorError> {
        let url = self.batch_path(batch_id)?;
        let response = self.http.send("retrieve batch", |client| self.authorised(client.get(&url))).await?;
        json_body("retrieve batch", response).await
    }

    /// Asks Anthropic to stop a batch; requests already running still finish (`canceling`).
    pub async fn cancel_batch(&self, batch_id: &str) -> Result<(), VendorError> {
        let url = format!("{}/cancel", self.batch_path(batch_id)?);
        let cancel = async {
            let response = self.http.send("cancel batch", |client| self.authorised(client.post(&url))).await?;
            json_body("cancel batch", response).await.map(drop)
        };
        cancel.await.map_err(|error| self.scrubbed(error))
    }

    /// Where a batch's results are: its `results_url` when that is under our base URL (the key is
    /// only ever sent there), else the documented path under the base URL.
    fn results_url(&self, batch: &Value, batch_id: &str) -> Result<String, VendorError> {
        let documented = format!("{}/results", self.batch_path(batch_id)?);
        Ok(match batch.get("results_url").and_then(Value::as_str) {
            Some(url) if url.starts_with(&format!("{}/", self.base_url)) => url.to_owned(),
            Some(_) => {
                debug!(provider = %self.name, batch_id, "results_url is outside the configured base url; using the documented path");
                documented
            }
            None => documented,
        })
    }

    /// Submits `items`, polls every `poll_every` until the batch ends, and returns its results.
    /// When `deadline` passes first, asks Anthropic to cancel the batch (best effort) and fails
    /// with [`VendorError::Network`] naming the batch.
    pub async fn run_batch(
        &self,
        items: &[BatchItem],
        poll_every: Duration,
        deadline: Duration,
    ) -> Result<Vec<(String, BatchOutcome)>, VendorError> {
        let started = tokio::time::Instant::now();
        let batch_id = self.submit_batch(items).await?;
        loop {
            let processing = match self.batch_status(&batch_id).await? {
                BatchStatus::Ended => return self.batch_results(&batch_id).await,
                BatchStatus::InProgress { processing, .. } => processing,
            };
            let elapsed = started.elapsed();
            if elapsed >= deadline {
                if let Err(error) = self.cancel_batch(&batch_id).await {
                    warn!(provider = %self.name, batch_id, %error, "could not cancel an overdue batch");
                }
                return Err(VendorError::Network(format!(
                    "batch {batch_id} still in progress after {}s ({processing} requests processing); cancel requested",
                    elapsed.as_secs()
                )));
            }
            debug!(provider = %self.name, batch_id, processing, "batch in progress");
            self.http.pause(poll_every.min(deadline - elapsed)).await?;
        }
    }
}

#[async_trait]
impl Provider for AnthropicProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> ProviderKind {
        ProviderKind::Anthropic
    }

    async fn complete(&self, request: &ProviderRequest) -> Result<ProviderResponse, VendorError> {
        let started = tokio::time::Instant::now();
        let body = messages_body(request, request.stream);
        let result = self.call(&body, request.stream, ToolPick::of(request)).await.map_err(|error| self.scrubbed(error));
        let latency_ms = started.elapsed().as_millis();
        match &result {
            Ok(answer) => debug!(
                provider = %self.name,
                task = %request.task,
                model = %answer.model,
                stop_reason = answer.stop_reason.as_deref().unwrap_or("none"),
                tool_called = answer.output.is_some(),
                input_tokens = answer.usage.input_tokens,
                output_tokens = answer.usage.output_tokens,
                cache_read_tokens = answer.usage.cache_read_tokens,
                cache_write_tokens = answer.usage.cache_write_tokens,
                latency_ms,
                "anthropic call finished"
            ),
            Err(error) => {
                debug!(provider = %self.name, task = %request.task, model = %request.model, %error, latency_ms, "anthropic call failed")
            }
        }
        result
    }
}

#[async_trait]
impl BatchProvider for AnthropicProvider {
    async fn submit_batch(&self, items: &[BatchItem]) -> Result<String, VendorError> {
        self.create_batch(items).await.map_err(|error| self.scrubbed(error))
    }

    async fn batch_status(&self, batch_id: &str) -> Result<BatchStatus, VendorError> {
        let status = async { parse_batch_status(&self.get_batch(batch_id).await?) };
        status.await.map_err(|error| self.scrubbed(error))
    }

    async fn batch_results(&self, batch_id: &str) -> Result<Vec<(String, BatchOutcome)>, VendorError> {
        self.read_batch_results(batch_id).await.map_err(|error| self.scrubbed(error))
    }
}

impl AnthropicProvider {
    async fn create_batch(&self, items: &[BatchItem]) -> Result<String, VendorError> {
        if items.is_empty() {
            return Err(VendorError::Rejected { status: 400, detail: "not sent: a batch needs at least one request".to_owned() });
        }
        let requests: Vec<Value> =
            items.iter().map(|item| json!({"custom_id": item.custom_id, "params": messages_body(&item.request, false)})).collect();
        let body = json!({ "requests": requests });
        let response = self.http.send("create batch", |client| self.post(client, "/v1/messages/batches", &body)).await?;
        let batch = json_body("create batch", response).await?;
        let batch_id = batch.get("id").and_then(Value::as_str).ok_or_else(|| malformed("created batch has no `id`"))?;
        debug!(provider = %self.name, batch_id, requests = items.len(), "anthropic batch submitted");
        Ok(batch_id.to_owned())
    }

    async fn read_batch_results(&self, batch_id: &str) -> Result<Vec<(String, BatchOutcome)>, VendorError> {
        let batch = self.get_batch(batch_id).await?;
        if parse_batch_status(&batch)? != BatchStatus::Ended {
            return Err(VendorError::Rejected { status: 409, detail: format!("batch {batch_id} has not ended; no results yet") });
        }
        let url = self.results_url(&batch, batch_id)?;
        let response = self.http.send("batch results", |client| self.authorised(client.get(&url))).await?;
        let bytes = response.bytes().await?;
        let text = std::str::from_utf8(&bytes).map_err(|error| malformed(format!("batch results are not UTF-8: {error}")))?;
        let results = parse_batch_results(text)?;
        debug!(provider = %self.name, batch_id, results = results.len(), "anthropic batch results read");
        Ok(results)
    }
}

// ---------------------------------------------------------------------------------------------
// Request

/// The sentence appended to the user turn when thinking rules out forcing the tool.
pub fn answer_with_tool_instruction(tool: &str) -> String {
    format!("Answer only by calling the `{tool}` tool.")
}

/// The `POST /v1/messages` body (also a batch request's `params`).
///
/// With a thinking budget: `budget_tokens` is at least [`MIN_THINKING_BUDGET`]; `max_tokens`
/// becomes budget + the requested `max_tokens` (thinking tokens count against `max_tokens`, which
/// must exceed the budget), so the answer keeps its requested room; `temperature` is omitted (only
/// the default is allowed with thinking); and the tool is offered with `tool_choice` `auto`, since
/// a forced tool is refused with thinking, with [`answer_with_tool_instruction`] appended to the
/// user turn. A raised `max_tokens` must still fit the model's output limit.
fn messages_body(request: &ProviderRequest, stream: bool) -> Value {
    let thinking_budget = request.thinking_budget.map(|budget| budget.max(MIN_THINKING_BUDGET));
    let mut user = request.user.clone();
    let mut body = serde_json::Map::new();
    body.insert("model".to_owned(), json!(request.model));
    let max_tokens = thinking_budget.map_or(request.max_tokens, |budget| request.max_tokens.saturating_add(budget));
    body.insert("max_tokens".to_owned(), json!(max_tokens));
    if !request.system.is_empty() {
        let system: Vec<Value> = request
            .system
            .iter()
            .map(|block| {
                let mut text = json!({"type": "text", "text": block.text});
                if block.cache {
                    text["cache_control"] = json!({"type": "ephemeral"});
                }
                text
            })
            .collect();
        body.insert("system".to_owned(), Value::Array(system));
    }
    if let Some(tool) = &request.tool {
        body.insert("tools".to_owned(), json!([{"name": tool.name, "description": tool.description, "input_schema": tool.input_schema}]));
        let choice = if thinking_budget.is_some() {
            user.push_str("\n\n");
            user.push_str(&answer_with_tool_instruction(&tool.name));
            json!({"type": "auto"})
        } else {
            json!({"type": "tool", "name": tool.name})
        };
        body.insert("tool_choice".to_owned(), choice);
    }
    match thinking_budget {
        Some(budget) => {
            body.insert("thinking".to_owned(), json!({"type": "enabled", "budget_tokens": budget}));
        }
        None => {
            // f32 -> JSON would print 0.2 as 0.20000000298023224.
            let temperature = (f64::from(request.temperature) * 1000.0).round() / 1000.0;
            body.insert("temperature".to_owned(), json!(temperature));
        }
    }
    body.insert("messages".to_owned(), json!([{"role": "user", "content": user}]));
    if stream {
        body.insert("stream".to_owned(), Value::Bool(true));
    }
    Value::Object(body)
}

// ---------------------------------------------------------------------------------------------
// Response

fn malformed(detail: impl Into<String>) -> VendorError {
    VendorError::Malformed(format!("anthropic: {}", detail.into()))
}

fn is_event_stream(response: &Response) -> bool {
    response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("text/event-stream"))
}

fn count(usage: &Value, key: &str) -> Option<u64> {
    usage.get(key).and_then(Value::as_u64)
}

/// A message's `usage`; the cache fields are absent on older models and without caching (0).
fn parse_usage(usage: &Value) -> Result<Usage, VendorError> {
    Ok(Usage {
        input_tokens: count(usage, "input_tokens").ok_or_else(|| malformed("usage has no `input_tokens`"))?,
        output_tokens: count(usage, "output_tokens").ok_or_else(|| malformed("usage has no `output_tokens`"))?,
        cache_read_tokens: count(usage, "cache_read_input_tokens").unwrap_or(0),
        cache_write_tokens: count(usage, "cache_creation_input_tokens").unwrap_or(0),
    })
}

/// Applies the fields a streamed `usage` carries (`message_delta` may carry only `output_tokens`).
fn update_usage(usage: &mut Usage, from: &Value) {
    let fields = [
        ("input_tokens", &mut usage.input_tokens),
        ("output_tokens", &mut usage.output_tokens),
        ("cache_read_input_tokens", &mut usage.cache_read_tokens),
        ("cache_creation_input_tokens", &mut usage.cache_write_tokens),
    ];
    for (key, field) in fields {
        if let Some(value) = count(from, key) {
            *field = value;
        }
    }
}

/// A complete `message` object (a non-streamed answer or a batch result).
fn parse_message(message: &Value, pick: ToolPick<'_>) -> Result<ProviderResponse, VendorError> {
    if message.get("type").and_then(Value::as_str) == Some("error") {
        return Err(error_from(message));
    }
    let model = message.get("model").and_then(Value::as_str).ok_or_else(|| malformed("message has no `model`"))?;
    let content = message.get("content").and_then(Value::as_array).ok_or_else(|| malformed("message has no `content` array"))?;
    let mut text = String::new();
    let mut thinking: Option<String> = None;
    let mut output = None;
    for (index, block) in content.iter().enumerate() {
        let field = |key: &str| block.get(key).ok_or_else(|| malformed(format!("content[{index}] has no `{key}`")));
        let string = |key: &str| field(key)?.as_str().ok_or_else(|| malformed(format!("content[{index}].{key} is not a string")));
        match block.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(string("text")?),
            Some("tool_use") => {
                let name = string("name")?;
                let input = field("input")?;
                if output.is_none() && pick.wants(name) {
                    output = Some(input.clone());
                }
            }
            Some("thinking") => thinking.get_or_insert_with(String::new).push_str(string("thinking")?),
            // `redacted_thinking` is encrypted (nothing to keep); later block types are skipped.
            Some(_) => {}
            None => return Err(malformed(format!("content[{index}] has no `type`"))),
        }
    }
    let usage = parse_usage(message.get("usage").ok_or_else(|| malformed("message has no `usage`"))?)?;
    Ok(ProviderResponse {
        model: model.to_owned(),
        output,
        text,
        thinking,
        stop_reason: message.get("stop_reason").and_then(Value::as_str).map(str::to_owned),
        usage,
    })
}

/// The innermost `{"type", "message"}` of an error (`{"type": "error", "error": {...}}`, nested once
/// more in batch results).
fn error_parts(value: &Value) -> (&str, &str) {
    let mut error = value;
    while let Some(inner) = error.get("error").filter(|inner| inner.is_object()) {
        error = inner;
    }
    let kind = error.get("type").and_then(Value::as_str).unwrap_or("unknown_error");
    (kind, error.get("message").and_then(Value::as_str).unwrap_or(""))
}

/// An error object, classified as its HTTP status would be.
fn error_from(value: &Value) -> VendorError {
    let (kind, message) = error_parts(value);
    let detail = format!("{kind}: {}", message.chars().take(300).collect::<String>());
    match kind {
        "overloaded_error" => VendorError::Server { status: 529, retry_after: None, detail },
        "api_error" => VendorError::Server { status: 500, retry_after: None, detail },
        "rate_limit_error" => VendorError::Throttled { retry_after: None, detail },
        "authentication_error" => VendorError::Auth { status: 401, detail },
        "permission_error" => VendorError::Auth { status: 403, detail },
        "invalid_request_error" => VendorError::Rejected { status: 400, detail },
        "not_found_error" => VendorError::Rejected { status: 404, detail },
        "request_too_large" => VendorError::Rejected { status: 413, detail },
        _ => malformed(format!("unknown error {detail}")),
    }
}

fn parse_batch_status(batch: &Value) -> Result<BatchStatus, VendorError> {
    let counts = batch.get("request_counts").unwrap_or(&Value::Null);
    let of = |key: &str| count(counts, key).unwrap_or(0);
    match batch.get("processing_status").and_then(Value::as_str) {
        Some("in_progress" | "canceling") => {
            Ok(BatchStatus::InProgress { processing: of("processing"), succeeded: of("succeeded"), errored: of("errored") })
        }
        Some("ended") => Ok(BatchStatus::Ended),
        Some(other) => Err(malformed(format!("unknown batch processing_status {other:?}"))),
        None => Err(malformed("batch has no `processing_status`")),
    }
}

/// The JSONL results file: one `{"custom_id", "result": {"type": ...}}` per line, in any order.
/// A line that cannot be attributed to a request fails the whole read; a succeeded line whose
/// message cannot be read becomes that request's `Errored`.
fn parse_batch_results(text: &str) -> Result<Vec<(String, BatchOutcome)>, VendorError> {
    let mut results = Vec::new();
    for (number, line) in text.lines().enumerate().filter(|(_, line)| !line.trim().is_empty()) {
        let line_no = number + 1;
        let entry: Value = serde_json::from_str(line).map_err(|error| malformed(format!("results line {line_no} is not JSON: {error}")))?;
        let custom_id = entry
            .get("custom_id")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed(format!("results line {line_no} has no `custom_id`")))?;
        let result = entry.get("result").ok_or_else(|| malformed(format!("results line {line_no} has no `result`")))?;
        let outcome = match result.get("type").and_then(Value::as_str) {
            Some("succeeded") => match result
                .get("message")
                .ok_or_else(|| malformed("succeeded result has no `message`"))
                .and_then(|m| parse_message(m, ToolPick::First))
            {
                Ok(response) => BatchOutcome::Succeeded { response },
                Err(error) => BatchOutcome::Errored { reason: format!("unreadable message: {error}") },
            },
            Some("errored") => {
                let (kind, message) = error_parts(result.get("error").unwrap_or(&Value::Null));
                BatchOutcome::Errored { reason: format!("{kind}: {message}") }
            }
            Some("canceled") => BatchOutcome::Canceled,
            Some("expired") => BatchOutcome::Expired,
            other => BatchOutcome::Errored { reason: format!("unknown result type {other:?}") },
        };
        results.push((custom_id.to_owned(), outcome));
    }
    Ok(results)
}

// ---------------------------------------------------------------------------------------------
// Streaming

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SseEvent {
    event: Option<String>,
    data: String,
}

/// Splits a byte stream into events (blank-line separated; `event:` and `data:` fields, `:`
/// comments). Bytes are kept until an event is complete, so chunks may split anywhere, even
/// inside a UTF-8 character.
#[derive(Debug, Default)]
struct SseDecoder {
    buffer: Vec<u8>,
    /// How far `buffer` has been searched for a blank line.
    scanned: usize,
}

impl SseDecoder {
    fn push(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, VendorError> {
        // CR only ever ends lines (JSON escapes it inside strings), so dropping it folds CRLF to LF.
        self.buffer.extend(chunk.iter().copied().filter(|byte| *byte != b'\r'));
        let mut events = Vec::new();
        while let Some(offset) = self.buffer[self.scanned..].windows(2).position(|pair| pair == b"\n\n") {
            let end = self.scanned + offset;
            let raw: Vec<u8> = self.buffer.drain(..end + 2).collect();
            self.scanned = 0;
            events.extend(parse_event(&raw[..end])?);
        }
        self.scanned = self.buffer.len().saturating_sub(1);
        Ok(events)
    }

    /// The event left without its closing blank line when the body ended, if any.
    fn finish(&mut self) -> Result<Option<SseEvent>, VendorError> {
        let raw = std::mem::take(&mut self.buffer);
        self.scanned = 0;
        parse_event(raw.strip_suffix(b"\n").unwrap_or(&raw))
    }
}

fn parse_event(raw: &[u8]) -> Result<Option<SseEvent>, VendorError> {
    let text = std::str::from_utf8(raw).map_err(|error| malformed(format!("stream event is not UTF-8: {error}")))?;
    let mut event = None;
    let mut data: Vec<&str> = Vec::new();
    for line in text.split('\n').filter(|line| !line.is_empty() && !line.starts_with(':')) {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => event = Some(value.to_owned()),
            "data" => data.push(value),
            _ => {}
        }
    }
    Ok((event.is_some() || !data.is_empty()).then(|| SseEvent { event, data: data.join("\n") }))
}

#[derive(Debug)]
enum Block {
    Text,
    Thinking,
    Tool { name: String, input: Value, partial_json: String },
    Other,
}

/// The message a stream is building.
#[derive(Debug)]
struct StreamState<'a> {
    pick: ToolPick<'a>,
    model: Option<String>,
    blocks: HashMap<u64, Block>,
    text: String,
    thinking: Option<String>,
    output: Option<Value>,
    stop_reason: Option<String>,
    usage: Usage,
    started: bool,
}

impl<'a> StreamState<'a> {
    fn new(pick: ToolPick<'a>) -> Self {
        StreamState {
            pick,
            model: None,
            blocks: HashMap::new(),
            text: String::new(),
            thinking: None,
            output: None,
            stop_reason: None,
            usage: Usage::default(),
            started: false,
        }
    }

    /// Applies one event; `Ok(true)` at `message_stop`.
    fn apply(&mut self, event: &SseEvent) -> Result<bool, VendorError> {
        let name = event.event.as_deref().unwrap_or("message");
        let data: Value =
            serde_json::from_str(&event.data).map_err(|error| malformed(format!("stream event `{name}` data is not JSON: {error}")))?;
        let kind = data.get("type").and_then(Value::as_str).unwrap_or(name);
        let index = || data.get("index").and_then(Value::as_u64).ok_or_else(|| malformed(format!("`{kind}` has no `index`")));
        let str_of = |value: &Value, key: &str| -> Result<String, VendorError> {
            value.get(key).and_then(Value::as_str).map(str::to_owned).ok_or_else(|| malformed(format!("`{kind}` has no `{key}`")))
        };
        match kind {
            "message_start" => {
                let message = data.get("message").ok_or_else(|| malformed("`message_start` has no `message`"))?;
                self.model = Some(str_of(message, "model")?);
                if let Some(usage) = message.get("usage") {
                    update_usage(&mut self.usage, usage);
                }
                self.started = true;
            }
            "content_block_start" => {
                let block = data.get("content_block").ok_or_else(|| malformed("`content_block_start` has no `content_block`"))?;
                let state = match block.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        self.text.push_str(block.get("text").and_then(Value::as_str).unwrap_or(""));
                        Block::Text
                    }
                    Some("thinking") => {
                        let initial = block.get("thinking").and_then(Value::as_str).unwrap_or("");
                        self.thinking.get_or_insert_with(String::new).push_str(initial);
                        Block::Thinking
                    }
                    Some("tool_use") => Block::Tool {
                        name: str_of(block, "name")?,
                        input: block.get("input").cloned().unwrap_or_else(|| json!({})),
                        partial_json: String::new(),
                    },
                    _ => Block::Other,
                };
                self.blocks.insert(index()?, state);
            }
            "content_block_delta" => {
                let at = index()?;
                let delta = data.get("delta").ok_or_else(|| malformed("`content_block_delta` has no `delta`"))?;
                match (delta.get("type").and_then(Value::as_str), self.blocks.get_mut(&at)) {
                    (Some("text_delta"), _) => self.text.push_str(&str_of(delta, "text")?),
                    (Some("thinking_delta"), _) => self.thinking.get_or_insert_with(String::new).push_str(&str_of(delta, "thinking")?),
                    (Some("input_json_delta"), Some(Block::Tool { partial_json, .. })) => {
                        partial_json.push_str(&str_of(delta, "partial_json")?)
                    }
                    (Some("input_json_delta"), _) => {
                        return Err(malformed(format!("input_json_delta for block {at}, which is not a tool_use block")));
                    }
                    // The signature only matters when thinking is sent back in a later turn; our
                    // calls are single-turn. Later delta types are skipped.
                    _ => {}
                }
            }
            "content_block_stop" => {
                if let Some(Block::Tool { name, input, partial_json }) = self.blocks.remove(&index()?)
                    && self.output.is_none()
                    && self.pick.wants(&name)
                {
                    let input = if partial_json.trim().is_empty() {
                        input
                    } else {
                        serde_json::from_str(&partial_json)
                            .map_err(|error| malformed(format!("tool `{name}` input is not JSON: {error}")))?
                    };
                    self.output = Some(input);
                }
            }
            "message_delta" => {
                if let Some(reason) = data.get("delta").and_then(|delta| delta.get("stop_reason")).and_then(Value::as_str) {
                    self.stop_reason = Some(reason.to_owned());
                }
                if let Some(usage) = data.get("usage") {
                    update_usage(&mut self.usage, usage);
                }
            }
            "message_stop" => return Ok(true),
            "error" => return Err(error_from(&data)),
            // `ping`, and event types added later (the documentation asks clients to skip them).
            _ => {}
        }
        Ok(false)
    }

    fn finish(self) -> Result<ProviderResponse, VendorError> {
        if !self.started {
            return Err(malformed("stream ended without `message_start`"));
        }
        Ok(ProviderResponse {
            model: self.model.unwrap_or_default(),
            output: self.output,
            text: self.text,
            thinking: self.thinking,
            stop_reason: self.stop_reason,
            usage: self.usage,
        })
    }
}

/// Reads a streamed answer to its `message_stop`; a body that ends or breaks before it is a
/// [`VendorError::Network`] ("stream cut"), which [`AnthropicProvider::call`] retries.
async fn read_stream(mut response: Response, pick: ToolPick<'_>) -> Result<ProviderResponse, VendorError> {
    let mut decoder = SseDecoder::default();
    let mut state = StreamState::new(pick);
    loop {
        let chunk = response.chunk().await.map_err(|error| VendorError::Network(format!("stream cut: {error}")))?;
        let Some(chunk) = chunk else { break };
        for event in decoder.push(&chunk)? {
            if state.apply(&event)? {
                return state.finish();
            }
        }
    }
    if let Some(event) = decoder.finish()?
        && state.apply(&event)?
    {
        return state.finish();
    }
    Err(VendorError::Network("stream cut: the body ended before `message_stop`".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::{SystemBlock, ToolSpec};

    fn request() -> ProviderRequest {
        ProviderRequest {
            task: "investigation".to_owned(),
            model: "claude-sonnet-4-5".to_owned(),
            system: vec![SystemBlock { text: "safety".to_owned(), cache: false }, SystemBlock { text: "playbook".to_owned(), cache: true }],
            user: "evidence".to_owned(),
            tool: Some(ToolSpec { name: "verdict".to_owned(), description: "d".to_owned(), input_schema: json!({"type": "object"}) }),
            max_tokens: 500,
            temperature: 0.2,
            thinking_budget: None,
            stream: false,
            facts: Value::Null,
        }
    }

    #[test]
    fn body_forces_the_tool_and_marks_cached_blocks() {
        let body = messages_body(&request(), false);
        assert_eq!(body["tool_choice"], json!({"type": "tool", "name": "verdict"}));
        assert_eq!(body["system"][0].get("cache_control"), None);
        assert_eq!(body["system"][1]["cache_control"], json!({"type": "ephemeral"}));
        assert_eq!(body["temperature"], json!(0.2));
        assert_eq!(body["max_tokens"], json!(500));
        assert_eq!(body["messages"], json!([{"role": "user", "content": "evidence"}]));
        assert_eq!(body.get("stream"), None);
        assert_eq!(body.get("thinking"), None);
    }

    #[test]
    fn body_with_thinking_offers_the_tool_raises_max_tokens_and_drops_temperature() {
        let mut thinking = request();
        thinking.thinking_budget = Some(100);
        let body = messages_body(&thinking, true);
        assert_eq!(body["thinking"], json!({"type": "enabled", "budget_tokens": MIN_THINKING_BUDGET}), "raised to the minimum");
        assert_eq!(body["max_tokens"], json!(500 + MIN_THINKING_BUDGET));
        assert_eq!(body["tool_choice"], json!({"type": "auto"}));
        assert_eq!(body.get("temperature"), None);
        assert_eq!(body["stream"], json!(true));
        let user = body["messages"][0]["content"].as_str().unwrap_or_default();
        assert!(user.starts_with("evidence\n\n") && user.ends_with(&answer_with_tool_instruction("verdict")), "{user}");
    }

    #[test]
    fn sse_decoder_reassembles_events_split_at_any_byte() {
        let stream = "event: message_start\r\ndata: {\"a\":\"é\"}\r\n\r\n: comment\n\nevent: ping\ndata: {}\n\ndata: x\ndata: y\n\n";
        let expected = vec![
            SseEvent { event: Some("message_start".to_owned()), data: "{\"a\":\"é\"}".to_owned() },
            SseEvent { event: Some("ping".to_owned()), data: "{}".to_owned() },
            SseEvent { event: None, data: "x\ny".to_owned() },
        ];
        let bytes = stream.as_bytes();
        for split in 0..=bytes.len() {
            let mut decoder = SseDecoder::default();
            let mut events = decoder.push(&bytes[..split]).expect("first half");
            events.extend(decoder.push(&bytes[split..]).expect("second half"));
            assert_eq!(events, expected, "split at {split}");
            assert_eq!(decoder.finish().expect("finish"), None);
        }
    }

    #[test]
    fn messages_parse_tool_text_thinking_and_usage() {
        let message = json!({
            "type": "message", "model": "claude-x", "stop_reason": "tool_use",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "s"},
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "text", "text": "calling"},
                {"type": "tool_use", "id": "t1", "name": "other", "input": {"x": 1}},
                {"type": "tool_use", "id": "t2", "name": "verdict", "input": {"verdict": "benign"}},
            ],
            "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 7},
        });
        let answer = parse_message(&message, ToolPick::Named("verdict")).expect("parsed");
        assert_eq!(answer.output, Some(json!({"verdict": "benign"})));
        assert_eq!(answer.text, "calling");
        assert_eq!(answer.thinking.as_deref(), Some("hmm"));
        assert_eq!(answer.usage, Usage { input_tokens: 10, output_tokens: 5, cache_read_tokens: 7, cache_write_tokens: 0 });
        assert_eq!(parse_message(&message, ToolPick::None).expect("parsed").output, None);

        for broken in [json!({"model": "m", "usage": {}}), json!({"model": "m", "content": [{"text": "no type"}], "usage": {}}), json!("x")]
        {
            assert!(matches!(parse_message(&broken, ToolPick::First), Err(VendorError::Malformed(_))), "{broken}");
        }
    }

    fn event(name: &str, data: Value) -> SseEvent {
        SseEvent { event: Some(name.to_owned()), data: data.to_string() }
    }

    #[test]
    fn stream_events_build_the_answer_and_reject_impossible_shapes() {
        let mut state = StreamState::new(ToolPick::Named("verdict"));
        let events = [
            event(
                "message_start",
                json!({"type": "message_start", "message": {"model": "claude-x", "usage": {"input_tokens": 9, "cache_read_input_tokens": 4, "output_tokens": 1}}}),
            ),
            event(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "name": "verdict", "input": {}}}),
            ),
            event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{\"a\": "}}),
            ),
            event("future_event", json!({"type": "future_event"})),
            event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "[1, 2]}"}}),
            ),
            event("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
            event("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 12}})),
        ];
        for event in &events {
            assert!(!state.apply(event).expect("applied"), "not stopped yet");
        }
        assert!(state.apply(&event("message_stop", json!({"type": "message_stop"}))).expect("stop"));
        let answer = state.finish().expect("answer");
        assert_eq!(answer.output, Some(json!({"a": [1, 2]})));
        assert_eq!(answer.usage, Usage { input_tokens: 9, output_tokens: 12, cache_read_tokens: 4, cache_write_tokens: 0 });

        let mut state = StreamState::new(ToolPick::First);
        let text =
            event("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}));
        state.apply(&text).expect("text block");
        let misplaced = event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{"}}),
        );
        assert!(matches!(state.apply(&misplaced), Err(VendorError::Malformed(_))));
        let not_json = SseEvent { event: Some("message_delta".to_owned()), data: "{oops".to_owned() };
        assert!(matches!(state.apply(&not_json), Err(VendorError::Malformed(_))));
        let overloaded = event("error", json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}));
        assert!(matches!(state.apply(&overloaded), Err(VendorError::Server { status: 529, .. })));
        assert!(matches!(StreamState::new(ToolPick::None).finish(), Err(VendorError::Malformed(_))), "no message_start");
    }

    #[test]
    fn batch_results_keep_every_attributable_line() {
        let lines = [
            json!({"custom_id": "a", "result": {"type": "succeeded", "message": {"model": "m", "content": [{"type": "tool_use", "name": "t", "input": {"x": 1}}], "usage": {"input_tokens": 1, "output_tokens": 2}}}}),
            json!({"custom_id": "b", "result": {"type": "errored", "error": {"type": "error", "error": {"type": "api_error", "message": "boom"}}}}),
            json!({"custom_id": "c", "result": {"type": "succeeded", "message": {"content": []}}}),
            json!({"custom_id": "d", "result": {"type": "expired"}}),
        ];
        let text: String = lines.iter().map(|line| format!("{line}\n\n")).collect();
        let results = parse_batch_results(&text).expect("results");
        assert!(matches!(&results[0], (id, BatchOutcome::Succeeded { response }) if id == "a" && response.output == Some(json!({"x": 1}))));
        assert_eq!(results[1], ("b".to_owned(), BatchOutcome::Errored { reason: "api_error: boom".to_owned() }));
        assert!(matches!(&results[2], (id, BatchOutcome::Errored { reason }) if id == "c" && reason.contains("no `model`")));
        assert_eq!(results[3], ("d".to_owned(), BatchOutcome::Expired));
        assert!(matches!(parse_batch_results("{\"result\": {}}"), Err(VendorError::Malformed(_))), "a line without custom_id");
    }

    #[test]
    fn an_echoed_key_is_cut_from_error_details() {
        let config = AnthropicConfig::new("sk-ant-secret-123");
        let provider = AnthropicProvider::new(config, CancellationToken::new()).expect("provider");
        let echoed = VendorError::Auth { status: 401, detail: "invalid x-api-key sk-ant-secret-123".to_owned() };
        let scrubbed = provider.scrubbed(echoed).to_string();
        assert!(!scrubbed.contains("sk-ant-secret-123") && scrubbed.contains("<redacted>"), "{scrubbed}");
    }

    #[test]
    fn error_objects_are_classified_like_their_statuses() {
        let overloaded = json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
        assert!(matches!(error_from(&overloaded), VendorError::Server { status: 529, .. }));
        assert!(error_from(&overloaded).is_retryable());
        let nested = json!({"type": "error", "error": {"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}}});
        assert!(matches!(error_from(&nested), VendorError::Rejected { status: 400, .. }));
        assert!(matches!(error_from(&json!({"error": {"type": "rate_limit_error"}})), VendorError::Throttled { .. }));
        assert!(matches!(error_from(&json!({"error": {"type": "authentication_error"}})), VendorError::Auth { status: 401, .. }));
    }
}
