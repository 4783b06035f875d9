//! Model providers behind one trait (REQUIREMENTS §3.5): the Anthropic Messages API, any
//! OpenAI-compatible chat-completions server, and a deterministic provider for no-model operation.
//! Only the context gateway (`aluskort-gateway`) calls them: it screens, pseudonymises and wraps
//! untrusted text before a [`ProviderRequest`] exists (NFR-SEC-001).
//!
//! # Layout
//! - [`provider`]: the request/response types and the [`Provider`] / [`BatchProvider`] traits.
//! - [`anthropic`]: Messages API (tool use, prompt caching, extended thinking, SSE, Message Batches).
//! - [`openai`]: chat completions (OpenAI, Azure OpenAI, Ollama, vLLM, llama.cpp).
//! - [`deterministic`]: answers from registered Rust functions, never leaves the process.

pub mod anthropic;
pub mod deterministic;
pub mod openai;
pub mod provider;

pub use aluskort_http::{RetryPolicy, VendorError};
pub use provider::{
    BatchItem, BatchOutcome, BatchProvider, BatchStatus, Provider, ProviderKind, ProviderRequest, ProviderResponse, SystemBlock, ToolSpec,
    Usage,
};
