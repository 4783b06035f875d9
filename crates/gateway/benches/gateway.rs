//! Gateway costs that do not depend on a vendor: the injection screen over real Sentinel alert
//! descriptions (bytes/s), and one whole gateway call (screen, pseudonymise, prompt, schema check,
//! technique quarantine, restore, quota/spend reads and the ledger write on embedded SQLite) against
//! an in-process provider that answers at once (calls/s).

use std::collections::HashMap;
use std::sync::Arc;

use aluskort_audit::AuditLog;
use aluskort_core::Severity;
use aluskort_gateway::spend::{SpendGuard, SpendLimits, default_price};
use aluskort_gateway::{Gateway, GatewayRequest, Route, Router, Tier, TierRoutes, screen};
use aluskort_knowledge::Taxonomy;
use aluskort_llm::{Provider, ProviderKind, ProviderRequest, ProviderResponse, ToolSpec, Usage, VendorError};
use aluskort_store::SqliteStore;
use async_trait::async_trait;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};

fn descriptions() -> Vec<String> {
    let path = aluskort_testkit::sentinel_alerts_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|alert| alert["Description"].as_str().map(str::to_owned))
        .filter(|description| !description.is_empty())
        .collect()
}

struct Instant;

#[async_trait]
impl Provider for Instant {
    fn name(&self) -> &str {
        "instant"
    }
    fn kind(&self) -> ProviderKind {
        ProviderKind::Anthropic
    }
    async fn complete(&self, request: &ProviderRequest) -> Result<ProviderResponse, VendorError> {
        Ok(ProviderResponse {
            model: request.model.clone(),
            output: Some(
                json!({"classification": "true_positive", "confidence": 0.9, "techniques": ["T1059.001", "T1059.999"], "summary": "USER_001 on HOST_001"}),
            ),
            text: String::new(),
            thinking: None,
            stop_reason: Some("tool_use".to_owned()),
            usage: Usage { input_tokens: 1_200, output_tokens: 150, cache_read_tokens: 900, cache_write_tokens: 0 },
        })
    }
}

fn bench(c: &mut Criterion) {
    let texts = descriptions();
    let bytes: usize = texts.iter().map(String::len).sum();
    let mut group = c.benchmark_group("gateway");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function(format!("screen_{}_sentinel_descriptions", texts.len()), |b| {
        b.iter(|| texts.iter().filter(|text| screen(text).verdict != aluskort_gateway::Verdict::Benign).count())
    });

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let gateway = runtime.block_on(async {
        let store = Arc::new(SqliteStore::in_memory().await.expect("store"));
        let route = Route {
            provider: Arc::new(Instant),
            model: "claude-sonnet-4-5-20250929".to_owned(),
            price: default_price("claude-sonnet-4-5-20250929"),
            context_window: 200_000,
            thinking: false,
            batch: None,
        };
        let router = Router::new(HashMap::from([(Tier::T1, TierRoutes { primary: route, fallbacks: Vec::new() })]), None);
        let tenants = HashMap::from([("acme".to_owned(), aluskort_gateway::TenantTier::Premium)]);
        let limits = SpendLimits { daily_hard_usd: 1e12, daily_soft_usd: 1e12, monthly_soft_usd: 1e12, monthly_hard_usd: 1e12 };
        Gateway::new(
            router,
            store.clone(),
            Arc::new(AuditLog::new(store)),
            SpendGuard::new(limits),
            Arc::new(Taxonomy::embedded()),
            tenants,
        )
    });
    let description = texts.first().cloned().unwrap_or_default();
    let mut request = GatewayRequest {
        tenant: "acme".to_owned(),
        task: "investigation".to_owned(),
        severity: Severity::High,
        investigation_id: None,
        alert_id: None,
        instructions: "Classify the alert.".to_owned(),
        evidence: vec![
            ("alert_title".to_owned(), "Suspicious PowerShell on FIN-WS-042".to_owned()),
            ("alert_description".to_owned(), description),
        ],
        accounts: vec!["jsmith".to_owned()],
        hosts: vec!["FIN-WS-042".to_owned()],
        tool: ToolSpec {
            name: "report_classification".to_owned(),
            description: "verdict".to_owned(),
            input_schema: json!({"type": "object", "required": ["classification", "confidence"], "properties": {
                "classification": {"type": "string"}, "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                "techniques": {"type": "array", "items": {"type": "string"}}, "summary": {"type": "string"}}}),
        },
        facts: Value::Null,
        time_budget: None,
        previous_confidence: None,
        stream: false,
    };
    group.throughput(Throughput::Elements(1));
    let mut calls = 0_u64;
    group.bench_function("call_overhead_embedded_ledger", |b| {
        b.iter(|| {
            // A fresh tenant every 90 calls keeps the hourly quota (standard 100) out of the way.
            calls += 1;
            request.tenant = format!("acme-{}", calls / 90);
            runtime.block_on(gateway.call(&request)).expect("answer")
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
