//! OpenAI-compatible chat completions: OpenAI itself, Azure OpenAI, and local servers that speak
//! the same wire format (Ollama, vLLM, llama.cpp).
//!
//! # Wire format (as documented)
//! - Request (<https://platform.openai.com/docs/api-reference/chat/create>): `model`, `messages`
//!   (one `system` message joining the system blocks, one `user` message), `max_tokens`,
//!   `temperature`; a tool answer is forced with `tools: [{"type": "function", "function": {name,
//!   description, parameters}}]` and `tool_choice: {"type": "function", "function": {"name"}}`,
//!   and comes back as `choices[0].message.tool_calls[0].function.arguments`, a JSON *string* the
//!   model generated ("does not always generate valid JSON": parsed here, never trusted).
//! - JSON mode (`response_format: {"type": "json_object"}`) for servers without tool calling:
//!   the answer is `message.content`. The docs require the prompt itself to ask for JSON ("you
//!   must also instruct the model to produce JSON yourself via a system or user message"; OpenAI
//!   answers 400 otherwise), so the tool's schema is appended to the system message
//!   (<https://learn.microsoft.com/en-us/azure/ai-foundry/openai/how-to/json-mode>).
//! - Usage: `prompt_tokens` *includes* `prompt_tokens_details.cached_tokens` (automatic prefix
//!   caching, <https://platform.openai.com/docs/guides/prompt-caching>), so cached tokens are
//!   subtracted to match [`Usage`]'s convention. There is no cache-write count.
//! - Streaming: `stream: true` with `stream_options: {"include_usage": true}` gives SSE
//!   `data: {chunk}` lines with `choices[0].delta.content` pieces and `delta.tool_calls[i]`
//!   pieces (name in the first, `function.arguments` split over many, joined per `index`), then
//!   "an additional chunk ... before the `data: [DONE]` message" whose `choices` is empty and
//!   whose `usage` covers the request. A stream that ends without `[DONE]` was cut: the whole
//!   call is retried.
//! - `max_tokens`, not `max_completion_tokens`: OpenAI documents `max_tokens` as deprecated and
//!   rejected by reasoning models (o-series), but it is the one field every target documents:
//!   Ollama's compatibility page lists `max_tokens` and not its successor, Azure's GA inference
//!   reference shows `max_tokens`, and OpenAI still honours it for chat models (gpt-4o family).
//!   A reasoning model answers 400, which surfaces as [`VendorError::Rejected`], never silently.
//! - Errors: `{"error": {"message", "type", "code"}}`; the message goes into the
//!   [`VendorError`] detail (the configured key is scrubbed from it).
//!
//! # Flavors
//! - [`OpenAiFlavor::OpenAi`]: `POST {base_url}/v1/chat/completions`, `Authorization: Bearer`
//!   when a key is configured. Ollama serves the same path at `http://localhost:11434/v1/...` and
//!   ignores the key (<https://docs.ollama.com/api/openai-compatibility>); so do vLLM and
//!   llama.cpp's server. A `base_url` that already ends in `/v1` is not doubled.
//! - [`OpenAiFlavor::Azure`]: `POST {endpoint}/openai/deployments/{deployment}/chat/completions?api-version=...`
//!   with an `api-key` header (<https://learn.microsoft.com/en-us/azure/ai-services/openai/reference>);
//!   [`ProviderRequest::model`] is the deployment name.
//!
//! Prompt-cache flags on system blocks and `thinking_budget` are ignored (OpenAI caches prefixes
//! by itself; chat completions have no thinking budget). Nothing here logs the prompt, the answer
//! or the key.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use reqwest::{Response, Url};
use serde::Serialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use aluskort_http::{Http, RetryPolicy, VendorError, json_body};

use crate::provider::{Provider, ProviderKind, ProviderRequest, ProviderResponse, ToolSpec, Usage};

/// Counter of failed HTTP attempts to model providers.
pub const ERRORS_METRIC: &str = "aluskort_llm_http_errors_total";

/// Longest SSE line accepted; a server sending more without a newline is not speaking SSE.
const MAX_SSE_LINE: usize = 16 * 1024 * 1024;

/// Which URL layout and authentication header the server uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenAiFlavor {
    /// `{base_url}/v1/chat/completions` with `Authorization: Bearer <key>`: OpenAI, and Ollama,
    /// vLLM and llama.cpp (which need no key).
    OpenAi,
    /// `{base_url}/openai/deployments/{model}/chat/completions?api-version=...` with
    /// `api-key: <key>`.
    Azure { api_version: String },
}

/// How a structured answer is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StructuredMode {
    /// `tools` plus a forced `tool_choice`; the answer is the tool call's `arguments`.
    #[default]
    Tools,
    /// `response_format: {"type": "json_object"}` with the schema described in the system
    /// message; the answer is the message content. For local servers without tool calling.
    JsonObject,
}

/// One OpenAI-compatible endpoint.
#[derive(Clone)]
pub struct OpenAiConfig {
    /// Provider name (`openai`, `azure-east`, `ollama`), unique per deployment.
    pub name: String,
    /// Server root: `https://api.openai.com`, `https://<resource>.openai.azure.com`,
    /// `http://localhost:11434`.
    pub base_url: String,
    /// `None` for local servers that need no key; never printed (see the `Debug` impl).
    pub api_key: Option<String>,
    pub flavor: OpenAiFlavor,
    /// Per attempt, including reading a streamed body.
    pub timeout: Duration,
    pub retry: RetryPolicy,
    pub structured: StructuredMode,
}

impl fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("flavor", &self.flavor)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("structured", &self.structured)
            .finish()
    }
}

/// A chat-completions [`Provider`].
pub struct OpenAiProvider {
    name: String,
    http: Http,
    /// Server root, without a trailing `/` (nor `/v1` for the OpenAI flavor).
    base: Url,
    flavor: OpenAiFlavor,
    structured: StructuredMode,
    /// The authentication header, marked sensitive.
    auth: Option<(HeaderName, HeaderValue)>,
    /// Kept only to scrub it from error details a server echoes back.
    api_key: Option<String>,
}

impl fmt::Debug for OpenAiProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiProvider")
            .field("name", &self.name)
            .field("base", &self.base.as_str())
            .field("flavor", &self.flavor)
            .field("structured", &self.structured)
            .field("authenticated", &self.auth.is_some())
            .finish()
    }
}

impl OpenAiProvider {
    /// Checks the URL and key and builds the client. A configuration error is
    /// [`VendorError::Rejected`] with status 0 (nothing was sent).
    pub fn new(config: OpenAiConfig, cancel: CancellationToken) -> Result<Self, VendorError> {
        let invalid = |detail: String| VendorError::Rejected { status: 0, detail };
        let mut root = config.base_url.trim_end_matches('/');
        if config.flavor == OpenAiFlavor::OpenAi {
            root = root.strip_suffix("/v1").unwrap_or(root);
        }
        let base = Url::parse(root).map_err(|error| invalid(format!("{}: base_url {root:?} is not a URL: {error}", config.name)))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(invalid(format!("{}: base_url {root:?} must be an http(s) URL", config.name)));
        }
        if let OpenAiFlavor::Azure { api_version } = &config.flavor
            && api_version.trim().is_empty()
        {
            return Err(invalid(format!("{}: Azure OpenAI needs an api_version", config.name)));
        }
        let auth = match &config.api_key {
            None => None,
            Some(key) => {
                let (name, value) = match config.flavor {
                    OpenAiFlavor::OpenAi => (AUTHORIZATION, format!("Bearer {key}")),
                    OpenAiFlavor::Azure { .. } => (HeaderName::from_static("api-key"), key.clone()),
                };
                let mut value = HeaderValue::from_str(&value)
                    .map_err(|_| invalid(format!("{}: the API key holds characters not allowed in a header", config.name)))?;
                value.set_sensitive(true);
                Some((name, value))
            }
        };
        let mut http = Http::new(&config.name, config.retry, config.timeout, cancel)?;
        http.errors_metric = ERRORS_METRIC;
        Ok(OpenAiProvider {
            name: config.name,
            http,
            base,
            flavor: config.flavor,
            structured: config.structured,
            auth,
            api_key: config.api_key,
        })
    }

    /// The chat-completions URL for `model` (the Azure deployment name).
    fn url(&self, model: &str) -> Url {
        let mut url = self.base.clone();
        // `new` checked the base can carry a path, so `path_segments_mut` cannot fail.
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty();
            match &self.flavor {
                OpenAiFlavor::OpenAi => {
                    segments.extend(["v1", "chat", "completions"]);
                }
                OpenAiFlavor::Azure { .. } => {
                    segments.extend(["openai", "deployments", model, "chat", "completions"]);
                }
            }
        }
        if let OpenAiFlavor::Azure { api_version } = &self.flavor {
            url.query_pairs_mut().append_pair("api-version", api_version);
        }
        url
    }

    /// The request body.
    fn body(&self, request: &ProviderRequest) -> ChatRequest {
        let mut system: Vec<String> = request.system.iter().map(|block| block.text.clone()).collect();
        let mut tools = None;
        let mut tool_choice = None;
        let mut response_format = None;
        if let Some(tool) = &request.tool {
            match self.structured {
                StructuredMode::Tools => {
                    let function = json!({"name": tool.name, "description": tool.description, "parameters": tool.input_schema});
                    tools = Some(vec![json!({"type": "function", "function": function})]);
                    tool_choice = Some(json!({"type": "function", "function": {"name": tool.name}}));
                }
                StructuredMode::JsonObject => {
                    system.push(json_instruction(tool));
                    response_format = Some(json!({"type": "json_object"}));
                }
            }
        }
        let mut messages = Vec::with_capacity(2);
        if !system.is_empty() {
            messages.push(Message { role: "system", content: system.join("\n\n") });
        }
        messages.push(Message { role: "user", content: request.user.clone() });
        ChatRequest {
            model: request.model.clone(),
            messages,
            max_tokens: request.max_tokens,
            temperature: request.temperature,
            tools,
            tool_choice,
            response_format,
            stream: request.stream,
            stream_options: request.stream.then(|| json!({"include_usage": true})),
        }
    }

    /// One call: the request (its statuses retried by [`Http::send`]) and the body read.
    async fn attempt(&self, url: &Url, body: &[u8], stream: bool, retries: &mut u32) -> Result<Answer, Failure> {
        let response = self
            .http
            .send_counting("chat completion", retries, |client| {
                let mut builder = client.post(url.clone()).header(CONTENT_TYPE, "application/json").body(body.to_vec());
                if let Some((name, value)) = &self.auth {
                    builder = builder.header(name.clone(), value.clone());
                }
                builder
            })
            .await
            .map_err(Failure::Send)?;
        let status = response.status().as_u16();
        let read = async {
            if stream {
                return read_stream(response).await;
            }
            parse_completion(&json_body("chat completion", response).await?)
        };
        let mut answer = tokio::select! {
            () = self.http.cancel.cancelled() => Err(VendorError::Network("shutting down".to_owned())),
            answer = read => answer,
        }
        .map_err(Failure::Read)?;
        answer.status = status;
        Ok(answer)
    }

    /// The tool input from `answer`, or `None` (with a warning saying why) when there is none.
    fn output(&self, request: &ProviderRequest, answer: &Answer) -> Option<Value> {
        let tool = request.tool.as_ref()?;
        match self.structured {
            StructuredMode::Tools => {
                let Some(call) = answer.tool_calls.first() else {
                    warn!(provider = %self.name, tool = %tool.name, "the model answered without calling the tool");
                    return None;
                };
                if call.name != tool.name {
                    warn!(provider = %self.name, tool = %tool.name, called = %call.name, "the model called another tool");
                    return None;
                }
                match &call.arguments {
                    Value::String(arguments) => parse_json(&self.name, "tool arguments", arguments),
                    // Some compatible servers send the arguments as an object already.
                    Value::Object(_) => Some(call.arguments.clone()),
                    _ => {
                        warn!(provider = %self.name, tool = %tool.name, "the tool call has no arguments");
                        None
                    }
                }
            }
            StructuredMode::JsonObject => parse_json(&self.name, "message content", strip_code_fence(&answer.content)),
        }
    }

    /// Replaces a status error's raw body with the vendor's message, without the key.
    fn explain(&self, error: VendorError) -> VendorError {
        let from_status = error.is_status();
        error.map_detail(|detail| if from_status { self.scrub(vendor_message(&detail).unwrap_or(detail)) } else { self.scrub(detail) })
    }

    fn scrub(&self, text: String) -> String {
        match &self.api_key {
            Some(key) if !key.is_empty() && text.contains(key.as_str()) => text.replace(key.as_str(), "[redacted]"),
            _ => text,
        }
    }
}

#[async_trait]
impl Provider for OpenAiProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> ProviderKind {
        ProviderKind::OpenAi
    }

    async fn complete(&self, request: &ProviderRequest) -> Result<ProviderResponse, VendorError> {
        let started = Instant::now();
        let url = self.url(&request.model);
        let body = serde_json::to_vec(&self.body(request))
            .map_err(|error| VendorError::Malformed(format!("chat completion request not serialisable: {error}")))?;
        // `Http::send_counting` retries statuses and failed connections; a body that breaks off
        // (a cut stream, a truncated JSON) is retried here. Both draw on one retry budget.
        let mut retry = 0;
        let answer = loop {
            match self.attempt(&url, &body, request.stream, &mut retry).await {
                Ok(answer) => break answer,
                Err(Failure::Send(error)) => return Err(self.explain(error)),
                Err(Failure::Read(error)) => {
                    let error = self.explain(error);
                    retry += 1;
                    let Some(delay) = self.http.policy.delay(retry, &error) else { return Err(error) };
                    warn!(provider = %self.name, %error, retry, delay_ms = delay.as_millis(), "chat completion body failed; retrying");
                    self.http.pause(delay).await?;
                }
            }
        };
        let output = self.output(request, &answer);
        let model = answer.model.clone().filter(|m| !m.is_empty()).unwrap_or_else(|| request.model.clone());
        debug!(
            provider = %self.name,
            model = %model,
            status = answer.status,
            stream = request.stream,
            input_tokens = answer.usage.input_tokens,
            cache_read_tokens = answer.usage.cache_read_tokens,
            output_tokens = answer.usage.output_tokens,
            stop_reason = answer.finish_reason.as_deref().unwrap_or(""),
            latency_ms = started.elapsed().as_millis(),
            "chat completion"
        );
        Ok(ProviderResponse { model, output, text: answer.content, thinking: None, stop_reason: answer.finish_reason, usage: answer.usage })
    }
}

/// Where an attempt failed: sending (already retried by [`Http::send`]) or reading the body.
enum Failure {
    Send(VendorError),
    Read(VendorError),
}

#[derive(Serialize)]
struct ChatRequest {
    model: String,
    messages: Vec<Message>,
    max_tokens: u32,
    temperature: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<Vec<Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<Value>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<Value>,
}

#[derive(Serialize)]
struct Message {
    role: &'static str,
    content: String,
}

/// What JSON mode asks for in the system message: one object, valid against the tool's schema.
fn json_instruction(tool: &ToolSpec) -> String {
    format!(
        "Answer with one JSON object and nothing else: the input of `{}` ({}), valid against this JSON Schema:\n{}",
        tool.name, tool.description, tool.input_schema
    )
}

/// One tool call of an answer; `arguments` is normally a JSON string.
#[derive(Debug, Clone, PartialEq)]
struct ToolCall {
    name: String,
    arguments: Value,
}

/// A chat completion, streamed or not, in the parts the provider uses.
#[derive(Debug, Default)]
struct Answer {
    model: Option<String>,
    content: String,
    tool_calls: Vec<ToolCall>,
    finish_reason: Option<String>,
    usage: Usage,
    status: u16,
}

/// `usage` → [`Usage`]: cached prompt tokens are counted apart from the others.
fn usage(value: &Value) -> Usage {
    let count = |pointer: &str| value.pointer(pointer).and_then(Value::as_u64).unwrap_or(0);
    let cached = count("/prompt_tokens_details/cached_tokens");
    Usage {
        input_tokens: count("/prompt_tokens").saturating_sub(cached),
        output_tokens: count("/completion_tokens"),
        cache_read_tokens: cached,
        cache_write_tokens: 0,
    }
}

/// A non-streamed `chat.completion` body.
fn parse_completion(body: &Value) -> Result<Answer, VendorError> {
    let Some(choice) = body.get("choices").and_then(Value::as_array).and_then(|choices| choices.first()) else {
        let detail = vendor_error(body).unwrap_or_else(|| "no choices[0]".to_owned());
        return Err(VendorError::Malformed(format!("chat completion: {detail}")));
    };
    let message = choice.get("message").ok_or_else(|| VendorError::Malformed("chat completion: no choices[0].message".to_owned()))?;
    let mut content = message.get("content").and_then(Value::as_str).unwrap_or_default().to_owned();
    if content.is_empty()
        && let Some(refusal) = message.get("refusal").and_then(Value::as_str)
    {
        content = refusal.to_owned();
    }
    let tool_calls = message
        .get("tool_calls")
        .and_then(Value::as_array)
        .map(|calls| {
            calls
                .iter()
                .map(|call| ToolCall {
                    name: call.pointer("/function/name").and_then(Value::as_str).unwrap_or_default().to_owned(),
                    arguments: call.pointer("/function/arguments").cloned().unwrap_or(Value::Null),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Answer {
        model: body.get("model").and_then(Value::as_str).map(str::to_owned),
        content,
        tool_calls,
        finish_reason: choice.get("finish_reason").and_then(Value::as_str).map(str::to_owned),
        usage: body.get("usage").map(usage).unwrap_or_default(),
        status: 0,
    })
}

/// Reads an SSE body chunk by chunk until `data: [DONE]`.
async fn read_stream(mut response: Response) -> Result<Answer, VendorError> {
    let mut assembly = StreamAssembly::default();
    let mut buffer: Vec<u8> = Vec::new();
    while !assembly.done {
        let chunk = response.chunk().await.map_err(|error| VendorError::Network(format!("chat completion stream cut: {error}")))?;
        let Some(bytes) = chunk else { break };
        buffer.extend_from_slice(&bytes);
        while let Some(end) = buffer.iter().position(|&byte| byte == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let line = std::str::from_utf8(&line).map_err(|_| VendorError::Malformed("chat completion stream: not UTF-8".to_owned()))?;
            assembly.line(line.trim_end_matches(['\n', '\r']))?;
            if assembly.done {
                break;
            }
        }
        if buffer.len() > MAX_SSE_LINE {
            return Err(VendorError::Malformed(format!("chat completion stream: a line longer than {MAX_SSE_LINE} bytes")));
        }
    }
    if !assembly.done && !buffer.is_empty() {
        let line = String::from_utf8_lossy(&buffer).into_owned();
        assembly.line(line.trim_end_matches('\r'))?;
    }
    assembly.finish()
}

/// The parts of a streamed completion gathered so far.
#[derive(Debug, Default)]
struct StreamAssembly {
    model: Option<String>,
    content: String,
    refusal: String,
    /// Tool calls by their `index`: name and the argument pieces joined.
    calls: BTreeMap<u64, (String, String)>,
    finish_reason: Option<String>,
    usage: Option<Usage>,
    done: bool,
}

impl StreamAssembly {
    /// One SSE line: `data: ...` lines count; comments, `event:`/`id:` fields and blanks do not.
    fn line(&mut self, line: &str) -> Result<(), VendorError> {
        let Some(data) = line.strip_prefix("data:") else { return Ok(()) };
        let data = data.strip_prefix(' ').unwrap_or(data);
        if data.trim() == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        if data.trim().is_empty() {
            return Ok(());
        }
        let chunk: Value = serde_json::from_str(data)
            .map_err(|error| VendorError::Malformed(format!("chat completion stream: a data line is not JSON: {error}")))?;
        self.chunk(&chunk)
    }

    fn chunk(&mut self, chunk: &Value) -> Result<(), VendorError> {
        if let Some(message) = vendor_error(chunk) {
            return Err(VendorError::Server { status: 200, retry_after: None, detail: format!("error in stream: {message}") });
        }
        if self.model.is_none() {
            self.model = chunk.get("model").and_then(Value::as_str).filter(|m| !m.is_empty()).map(str::to_owned);
        }
        if let Some(usage_value) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(usage(usage_value));
        }
        let Some(choice) = chunk.get("choices").and_then(Value::as_array).and_then(|choices| choices.first()) else { return Ok(()) };
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish_reason = Some(reason.to_owned());
        }
        let Some(delta) = choice.get("delta") else { return Ok(()) };
        if let Some(piece) = delta.get("content").and_then(Value::as_str) {
            self.content.push_str(piece);
        }
        if let Some(piece) = delta.get("refusal").and_then(Value::as_str) {
            self.refusal.push_str(piece);
        }
        for (position, call) in delta.get("tool_calls").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let index = call.get("index").and_then(Value::as_u64).unwrap_or(position as u64);
            let (name, arguments) = self.calls.entry(index).or_default();
            if let Some(piece) = call.pointer("/function/name").and_then(Value::as_str) {
                name.push_str(piece);
            }
            match call.pointer("/function/arguments") {
                Some(Value::String(piece)) => arguments.push_str(piece),
                Some(object @ Value::Object(_)) => arguments.push_str(&object.to_string()),
                _ => {}
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<Answer, VendorError> {
        if !self.done {
            return Err(VendorError::Network("chat completion stream cut before data: [DONE]".to_owned()));
        }
        let content = if self.content.is_empty() { self.refusal } else { self.content };
        Ok(Answer {
            model: self.model,
            content,
            tool_calls: self.calls.into_values().map(|(name, arguments)| ToolCall { name, arguments: Value::String(arguments) }).collect(),
            finish_reason: self.finish_reason,
            usage: self.usage.unwrap_or_default(),
            status: 0,
        })
    }
}

/// `{"error": {"message", "type", "code"}}` (or `{"error": "..."}`) as one line.
fn vendor_error(body: &Value) -> Option<String> {
    match body.get("error")? {
        Value::String(message) => Some(message.clone()),
        Value::Object(error) => {
            let message = error.get("message").and_then(Value::as_str).unwrap_or("(no message)");
            let mut labels: Vec<String> = Vec::new();
            for field in ["type", "code"] {
                match error.get(field) {
                    Some(Value::String(label)) if !label.is_empty() => labels.push(format!("{field} {label}")),
                    Some(Value::Number(label)) => labels.push(format!("{field} {label}")),
                    _ => {}
                }
            }
            Some(if labels.is_empty() { message.to_owned() } else { format!("{message} ({})", labels.join(", ")) })
        }
        _ => None,
    }
}

/// The vendor message of an error body, when the body is the documented error JSON.
fn vendor_message(detail: &str) -> Option<String> {
    vendor_error(&serde_json::from_str::<Value>(detail).ok()?)
}

/// `text` as JSON, or `None` with a warning naming the parse error (never the text).
fn parse_json(provider: &str, what: &str, text: &str) -> Option<Value> {
    match serde_json::from_str(text) {
        Ok(value) => Some(value),
        Err(error) => {
            warn!(provider, what, %error, "the model's answer is not valid JSON");
            None
        }
    }
}

/// The text inside a Markdown code fence, which some local models wrap JSON in.
fn strip_code_fence(text: &str) -> &str {
    let trimmed = text.trim();
    let Some(inner) = trimmed.strip_prefix("```").and_then(|rest| rest.strip_suffix("```")) else { return trimmed };
    inner.strip_prefix("json").unwrap_or(inner).trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_pieces_are_assembled_per_tool_call_index() {
        let mut assembly = StreamAssembly::default();
        let lines = [
            r#"data: {"model":"m","choices":[{"index":0,"delta":{"role":"assistant","tool_calls":[{"index":0,"id":"c","type":"function","function":{"name":"verdict","arguments":""}}]},"finish_reason":null}],"usage":null}"#,
            "",
            ": keep-alive",
            r#"data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"a\":"}}]}}]}"#,
            r#"data:{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"1}"}}]},"finish_reason":"tool_calls"}]}"#,
            r#"data: {"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":4}}}"#,
            "data: [DONE]",
        ];
        for line in lines {
            assembly.line(line).expect("valid line");
        }
        let answer = assembly.finish().expect("complete");
        assert_eq!(answer.tool_calls, vec![ToolCall { name: "verdict".to_owned(), arguments: Value::String(r#"{"a":1}"#.to_owned()) }]);
        assert_eq!(answer.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(answer.usage, Usage { input_tokens: 6, output_tokens: 3, cache_read_tokens: 4, cache_write_tokens: 0 });
        assert!(StreamAssembly::default().finish().is_err(), "no [DONE]: cut");
    }

    #[test]
    fn error_bodies_become_one_line() {
        let body = r#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#;
        assert_eq!(vendor_message(body).as_deref(), Some("Rate limit reached (type requests, code rate_limit_exceeded)"));
        assert_eq!(vendor_message(r#"{"error":"model not found"}"#).as_deref(), Some("model not found"));
        assert_eq!(vendor_message("<html>"), None);
        assert_eq!(strip_code_fence("```json\n{\"a\":1}\n```"), "{\"a\":1}");
        assert_eq!(strip_code_fence(" {\"a\":1} "), "{\"a\":1}");
    }

    #[test]
    fn an_echoed_key_is_scrubbed_from_error_details() {
        let config = OpenAiConfig {
            name: "local".to_owned(),
            base_url: "http://127.0.0.1:9".to_owned(),
            api_key: Some("sk-echoed-secret".to_owned()),
            flavor: OpenAiFlavor::OpenAi,
            timeout: Duration::from_secs(1),
            retry: RetryPolicy { max_retries: 0, base: Duration::from_millis(1) },
            structured: StructuredMode::Tools,
        };
        let provider = OpenAiProvider::new(config, CancellationToken::new()).expect("valid");
        let body = r#"{"error":{"message":"key sk-echoed-secret is revoked","type":"invalid_request_error","code":"invalid_api_key"}}"#;
        let error = provider.explain(VendorError::Auth { status: 401, detail: body.to_owned() });
        assert_eq!(
            error.to_string(),
            "authentication failed (401): key [redacted] is revoked (type invalid_request_error, code invalid_api_key)"
        );
    }
}
