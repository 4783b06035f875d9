//! The gateway built from an `[llm]` configuration, talking HTTP to the fake Anthropic and
//! OpenAI-compatible servers: the wire requests a tier produces, thinking on tier 1+, failover
//! to the fallback, the batch tier, and the usage ledger (REQUIREMENTS §3.5, NFR-REL-007).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aluskort_audit::AuditLog;
use aluskort_core::Severity;
use aluskort_gateway::setup::{GatewayParts, build_gateway};
use aluskort_gateway::{Gateway, GatewayError, GatewayRequest, Tier};
use aluskort_knowledge::Taxonomy;
use aluskort_llm::ToolSpec;
use aluskort_llm::deterministic::DeterministicProvider;
use aluskort_store::{SqliteStore, UsageStore};
use aluskort_testkit::fake::anthropic::{self, FakeAnthropic, ItemFate, Reply};
use aluskort_testkit::fake::openai_chat::{self, FakeOpenAiChat};
use chrono::Utc;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn tool() -> ToolSpec {
    ToolSpec {
        name: "report_classification".to_owned(),
        description: "Report the verdict".to_owned(),
        input_schema: json!({
            "type": "object",
            "required": ["classification", "confidence"],
            "properties": {
                "classification": {"type": "string"},
                "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                "techniques": {"type": "array", "items": {"type": "string"}},
                "summary": {"type": "string"}
            }
        }),
    }
}

fn request(task: &str, severity: Severity) -> GatewayRequest {
    GatewayRequest {
        tenant: "acme".to_owned(),
        task: task.to_owned(),
        severity,
        investigation_id: None,
        alert_id: Some("a-1".to_owned()),
        instructions: "Classify the alert.".to_owned(),
        evidence: vec![("alert_title".to_owned(), "Mimikatz on DC-01 by svc_backup".to_owned())],
        accounts: vec!["svc_backup".to_owned()],
        hosts: vec!["DC-01".to_owned()],
        tool: tool(),
        facts: Value::Null,
        time_budget: None,
        previous_confidence: None,
        stream: false,
    }
}

async fn gateway(anthropic_url: &str, openai_url: Option<&str>, extra: &str) -> (Gateway, Arc<SqliteStore>) {
    let mut text = format!("[llm]\nanthropic_url = \"{anthropic_url}\"\nmax_retries = 0\n{extra}\n");
    let mut env = HashMap::from([("ANTHROPIC_API_KEY".to_owned(), anthropic::API_KEY.to_owned())]);
    if let Some(url) = openai_url {
        text.push_str(&format!("openai_url = \"{url}\"\n"));
        env.insert("OPENAI_API_KEY".to_owned(), openai_chat::API_KEY.to_owned());
    }
    let config = aluskort_config::load(Some(&text), &env).expect("valid config");
    let store = Arc::new(SqliteStore::in_memory().await.expect("store"));
    let parts = GatewayParts {
        ledger: store.clone(),
        audit: Arc::new(AuditLog::new(store.clone())),
        catalog: Arc::new(Taxonomy::embedded()),
        deterministic: DeterministicProvider::new(),
    };
    (build_gateway(&config.llm, parts, &CancellationToken::new()).expect("gateway"), store)
}

#[tokio::test]
async fn tier_one_calls_send_a_cached_safety_prefix_and_a_forced_tool_and_are_costed() {
    let fake = FakeAnthropic::start().await;
    fake.reply(Reply::tool_use(
        json!({"classification": "true_positive", "confidence": 0.93, "summary": "USER_001 dumped credentials on HOST_001"}),
    ));
    let (gateway, store) = gateway(&fake.base_url(), None, "").await;
    let response = gateway.call(&request("investigation", Severity::High)).await.expect("answer");

    let body = fake.last_body().expect("request body");
    assert_eq!(body["model"], "claude-sonnet-4-5-20250929");
    assert_eq!(body["system"][0]["cache_control"], json!({"type": "ephemeral"}));
    assert!(body["system"][0]["text"].as_str().is_some_and(|t| t.starts_with("CRITICAL SAFETY INSTRUCTION")));
    assert_eq!(body["tool_choice"], json!({"type": "tool", "name": "report_classification"}));
    let user = body["messages"][0]["content"].to_string();
    assert!(!user.contains("svc_backup") && !user.contains("DC-01"), "{user}");

    assert_eq!(response.output["summary"], "svc_backup dumped credentials on DC-01");
    assert_eq!(response.tier, Tier::T1);
    assert!(response.usage.cache_write_tokens > 0, "the first call writes the prompt cache");
    let usage = store.llm_usage(Utc::now() - chrono::Duration::hours(1), Utc::now() + chrono::Duration::hours(1)).await.expect("usage");
    assert_eq!(usage.len(), 1);
    assert!(usage[0].cost_micros > 0 && usage[0].cache_write_tokens == response.usage.cache_write_tokens);
}

#[tokio::test]
async fn low_confidence_on_a_critical_alert_escalates_to_opus_with_thinking() {
    let fake = FakeAnthropic::start().await;
    fake.reply(
        Reply::tool_use(json!({"classification": "true_positive", "confidence": 0.8})).with_thinking("DC-01 is a domain controller."),
    );
    let (gateway, _) = gateway(&fake.base_url(), None, "").await;
    let escalation = GatewayRequest { previous_confidence: Some(0.45), ..request("investigation", Severity::Critical) };
    let response = gateway.call(&escalation).await.expect("answer");
    let body = fake.last_body().expect("body");
    assert_eq!(body["model"], "claude-opus-4-6");
    assert_eq!(body["thinking"], json!({"type": "enabled", "budget_tokens": 4096}), "investigation thinking budget");
    assert_eq!(body["tool_choice"]["type"], "auto", "the API refuses a forced tool while thinking");
    assert_eq!(response.tier, Tier::T1Plus);
    assert_eq!(response.thinking.as_deref(), Some("DC-01 is a domain controller."));
}

#[tokio::test]
async fn an_overloaded_primary_fails_over_to_the_openai_fallback_and_opens_its_breaker() {
    let fake = FakeAnthropic::start().await;
    for _ in 0..5 {
        fake.handle.lock().faults.push_back(anthropic::overloaded());
    }
    let openai = FakeOpenAiChat::start().await;
    openai.reply_with(openai_chat::Reply::answer(&json!({"classification": "needs_investigation", "confidence": 0.5})));
    let (gateway, _) = gateway(&fake.base_url(), Some(&openai.base_url()), "").await;
    for _ in 0..6 {
        let response = gateway.call(&request("alert_classification", Severity::Low)).await.expect("fallback answers");
        assert_eq!((response.provider.as_str(), response.model.as_str()), ("openai_compatible", "gpt-4o-mini"));
    }
    assert_eq!(fake.bodies().len(), 5, "after 5 failures the breaker keeps calls off the primary");
    assert_eq!(openai.received().len(), 6);
    let health = gateway.router.health();
    assert!(health.iter().any(|h| h.provider == "anthropic" && h.breaker.as_str() == "open"), "{health:?}");
}

#[tokio::test]
async fn batch_tier_work_goes_through_the_batch_api_at_half_price() {
    let fake = FakeAnthropic::start().await;
    fake.set_batch_polls(1);
    fake.batch_item("req-1", ItemFate::Errored("invalid_request_error".to_owned()));
    fake.reply(Reply::tool_use(
        json!({"classification": "benign_true_positive", "confidence": 0.7, "techniques": ["T1003.001", "T1003.999"]}),
    ));
    fake.reply(Reply::tool_use(json!({"classification": "x", "confidence": 0.1})));
    let (gateway, store) = gateway(&fake.base_url(), None, "").await;
    let requests = [request("fp_pattern_training", Severity::Low), request("fp_pattern_training", Severity::Low)];
    let results = gateway.call_batch(&requests, Duration::from_millis(20), Duration::from_secs(10)).await;
    assert_eq!(results.len(), 2);
    let first = results[0].as_ref().expect("first succeeded");
    assert_eq!((first.tier, first.model.as_str()), (Tier::T2, "claude-sonnet-4-5-20250929"));
    assert_eq!(first.quarantined_techniques, ["T1003.999"]);
    assert!(
        matches!(&results[1], Err(GatewayError::BatchFailed { reason }) if reason.contains("invalid_request_error")),
        "{:?}",
        results[1]
    );

    let sonnet = aluskort_gateway::spend::default_price("claude-sonnet-4-5-20250929");
    let (full, half) = (sonnet.cost_micros(&first.usage, false), sonnet.cost_micros(&first.usage, true));
    assert!(full > 0 && half < full);
    let usage = store.llm_usage(Utc::now() - chrono::Duration::hours(1), Utc::now() + chrono::Duration::hours(1)).await.expect("usage");
    assert_eq!(usage[0].tier, "tier_2");
    assert_eq!(usage[0].cost_micros, half, "batch is half price");
}
