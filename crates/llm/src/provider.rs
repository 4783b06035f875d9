//! What the gateway asks of a model and what comes back, independent of the vendor.
//!
//! A request is already safe to send: the gateway built `system` (safety prefix first) and `user`
//! (instructions plus the escaped evidence block) and pseudonymised both. Providers translate it to
//! their wire format, call with retries ([`aluskort_http::Http`]), and translate the answer back;
//! they never log the prompt, the answer or the key.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use aluskort_http::VendorError;

/// Which implementation a provider is, for metrics, the router's capability checks and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    Anthropic,
    OpenAi,
    Deterministic,
}

impl ProviderKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::OpenAi => "openai",
            ProviderKind::Deterministic => "deterministic",
        }
    }
}

/// One block of the system prompt. `cache` marks the end of a prefix the provider may cache
/// (Anthropic `cache_control: {"type": "ephemeral"}`); providers without prompt caching ignore it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemBlock {
    pub text: String,
    pub cache: bool,
}

/// A tool the model must call to answer: the structured-output channel. `input_schema` is a JSON
/// Schema object; the gateway validates the answer against it again (never trusts the provider).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub input_schema: Value,
}

/// A fully built model call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderRequest {
    /// Task type (`investigation`, `ioc_extraction`, ...): for logs, metrics and the deterministic
    /// provider's dispatch. Never sent to a vendor.
    pub task: String,
    /// Vendor model id (`claude-sonnet-4-5-20250929`, `gpt-4o`, an Azure deployment name).
    pub model: String,
    /// System prompt blocks, in order; the first is always the safety prefix.
    pub system: Vec<SystemBlock>,
    /// The single user turn.
    pub user: String,
    /// When set, the model is made to answer by calling this tool and
    /// [`ProviderResponse::output`] holds the tool input.
    pub tool: Option<ToolSpec>,
    pub max_tokens: u32,
    pub temperature: f32,
    /// Extended-thinking budget in tokens (Anthropic only; others ignore it). While thinking, a
    /// provider may not force a tool (Anthropic rejects `tool_choice` "tool" with thinking), so
    /// it offers the tool with `auto` choice and says so in the user turn.
    pub thinking_budget: Option<u32>,
    /// Stream the answer (SSE) instead of waiting for the whole body.
    pub stream: bool,
    /// Structured facts for the deterministic provider (already pseudonymised like the prompt);
    /// remote providers ignore them.
    pub facts: Value,
}

/// Token counts of one call. `input_tokens` excludes cache reads and writes (Anthropic's
/// convention); an OpenAI provider subtracts `cached_tokens` from `prompt_tokens` to match.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
}

impl Usage {
    pub fn add(&mut self, other: Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_read_tokens += other.cache_read_tokens;
        self.cache_write_tokens += other.cache_write_tokens;
    }
}

/// A model's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderResponse {
    /// The model that answered, as the vendor reports it.
    pub model: String,
    /// The tool input when the request named a tool and the model called it; `None` when it did
    /// not (the gateway then treats the call as failed schema validation).
    pub output: Option<Value>,
    /// Text blocks, concatenated.
    pub text: String,
    /// Extended-thinking text, when the model thought (kept for the audit trail, never parsed).
    pub thinking: Option<String>,
    /// Vendor stop reason (`end_turn`, `tool_use`, `max_tokens`, `stop`, `tool_calls`, ...).
    pub stop_reason: Option<String>,
    pub usage: Usage,
}

/// A synchronous model API.
#[async_trait]
pub trait Provider: Send + Sync {
    /// The configured name (`anthropic`, `azure-east`, `deterministic`), unique per deployment.
    fn name(&self) -> &str;
    fn kind(&self) -> ProviderKind;
    /// One call, retried per the provider's policy on 429/5xx/network errors (NFR-REL-007).
    async fn complete(&self, request: &ProviderRequest) -> Result<ProviderResponse, VendorError>;
}

/// One request of a batch, with the id that comes back with its result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchItem {
    pub custom_id: String,
    pub request: ProviderRequest,
}

/// Where a submitted batch is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum BatchStatus {
    /// Still running (`in_progress` or `canceling`), with the vendor's counts.
    InProgress { processing: u64, succeeded: u64, errored: u64 },
    /// Every request has a result; fetch them.
    Ended,
}

/// The result of one batch request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BatchOutcome {
    Succeeded { response: ProviderResponse },
    Errored { reason: String },
    Canceled,
    Expired,
}

/// An asynchronous batch API (tier 2: Anthropic Message Batches, half price, up to 24 h).
#[async_trait]
pub trait BatchProvider: Send + Sync {
    /// Submits the items; returns the batch id.
    async fn submit_batch(&self, items: &[BatchItem]) -> Result<String, VendorError>;
    async fn batch_status(&self, batch_id: &str) -> Result<BatchStatus, VendorError>;
    /// Results by `custom_id`, once [`BatchStatus::Ended`].
    async fn batch_results(&self, batch_id: &str) -> Result<Vec<(String, BatchOutcome)>, VendorError>;
}
