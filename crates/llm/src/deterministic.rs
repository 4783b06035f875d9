//! The deterministic provider: no model, no network. Each task it can answer has a Rust function
//! registered for it, which reads [`ProviderRequest::facts`] and returns the tool input a model
//! would have returned. A task without a function is refused with a clear error (the router then
//! reports degradation level `deterministic`, and the caller decides what a human must see).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use aluskort_http::VendorError;

use crate::provider::{Provider, ProviderKind, ProviderRequest, ProviderResponse, Usage};

/// Answers one task from its facts; `Err` names what was missing.
pub type Handler = Arc<dyn Fn(&Value) -> Result<Value, String> + Send + Sync>;

/// Model id reported by deterministic answers.
pub const MODEL: &str = "deterministic";

#[derive(Clone, Default)]
pub struct DeterministicProvider {
    handlers: HashMap<String, Handler>,
}

impl std::fmt::Debug for DeterministicProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut tasks: Vec<&String> = self.handlers.keys().collect();
        tasks.sort();
        f.debug_struct("DeterministicProvider").field("tasks", &tasks).finish()
    }
}

impl DeterministicProvider {
    pub fn new() -> Self {
        DeterministicProvider::default()
    }

    /// Registers (or replaces) the function answering `task`.
    pub fn with(mut self, task: &str, handler: impl Fn(&Value) -> Result<Value, String> + Send + Sync + 'static) -> Self {
        self.handlers.insert(task.to_owned(), Arc::new(handler));
        self
    }

    pub fn handles(&self, task: &str) -> bool {
        self.handlers.contains_key(task)
    }
}

#[async_trait]
impl Provider for DeterministicProvider {
    fn name(&self) -> &str {
        "deterministic"
    }

    fn kind(&self) -> ProviderKind {
        ProviderKind::Deterministic
    }

    async fn complete(&self, request: &ProviderRequest) -> Result<ProviderResponse, VendorError> {
        let handler = self.handlers.get(&request.task).ok_or_else(|| VendorError::Rejected {
            status: 501,
            detail: format!("the deterministic provider has no answer for task `{}`", request.task),
        })?;
        let output = handler(&request.facts)
            .map_err(|reason| VendorError::Rejected { status: 422, detail: format!("deterministic `{}`: {reason}", request.task) })?;
        Ok(ProviderResponse {
            model: MODEL.to_owned(),
            output: Some(output),
            text: String::new(),
            thinking: None,
            stop_reason: Some("deterministic".to_owned()),
            usage: Usage::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn request(task: &str, facts: Value) -> ProviderRequest {
        ProviderRequest {
            task: task.to_owned(),
            model: MODEL.to_owned(),
            system: Vec::new(),
            user: String::new(),
            tool: None,
            max_tokens: 1,
            temperature: 0.0,
            thinking_budget: None,
            stream: false,
            facts,
        }
    }

    #[tokio::test]
    async fn answers_registered_tasks_from_facts_and_refuses_others() {
        let provider = DeterministicProvider::new().with("severity_assessment", |facts| {
            let score = facts["score"].as_f64().ok_or("facts.score is missing")?;
            Ok(json!({"severity": if score > 0.8 { "high" } else { "low" }}))
        });
        let answer = provider.complete(&request("severity_assessment", json!({"score": 0.9}))).await.expect("answer");
        assert_eq!(answer.output, Some(json!({"severity": "high"})));
        assert_eq!(answer.usage, Usage::default(), "no tokens, no cost");

        let missing = provider.complete(&request("severity_assessment", json!({}))).await.expect_err("facts missing");
        assert!(missing.to_string().contains("facts.score is missing"), "{missing}");
        let unknown = provider.complete(&request("investigation", json!({}))).await.expect_err("no handler");
        assert!(unknown.to_string().contains("no answer for task `investigation`"), "{unknown}");
        assert!(!unknown.is_retryable(), "retrying cannot produce a handler");
    }
}
