//! The reasoning agent's model path (FR-RSN-001/002): the alert, its entities, indicators,
//! incident context and the deterministic reasoner's own reading go to the gateway as evidence;
//! the model answers through the `report_classification` tool. Its answer is only advice in
//! one respect: whatever actions it proposes, their approval requirement comes from the action
//! kind (FR-RSP-002), never from the model, and the alert's severity is kept.
//!
//! A low-confidence answer on a critical or high alert is asked again with the previous
//! confidence, which the router escalates to tier 1+ (extended thinking).

use aluskort_core::entity::AlertEntities;
use aluskort_core::{ActionKind, CanonicalAlert, Classification, Ioc, RecommendedAction, Severity, Verdict};
use aluskort_gateway::tier::LOW_CONFIDENCE;
use aluskort_gateway::{GatewayRequest, GatewayResponse};
use aluskort_llm::ToolSpec;
use serde_json::{Value, json};

pub const TOOL: &str = "report_classification";
pub const TASK: &str = "investigation";

/// Longest evidence value sent (characters); alerts with huge entity lists are cut, not refused.
const MAX_FIELD_CHARS: usize = 12_000;

const INSTRUCTIONS: &str = "You triage one security alert for a SOC. Decide whether it is a true positive (malicious activity), \
a benign true positive (real activity that is authorised or expected), a false positive (the detection misfired) or needs \
investigation (the evidence cannot decide). Weigh the alert, its entities and indicators, the incident it belongs to, and the \
deterministic rule-based reading given as evidence. Give a calibrated confidence between 0 and 1, the ATT&CK or ATLAS technique \
ids the evidence supports (ids only), your reasoning as short steps that each name the evidence they rest on, and the response \
actions you recommend, each with its target and why.";

pub fn report_classification_tool() -> ToolSpec {
    ToolSpec {
        name: TOOL.to_owned(),
        description: "Report the verdict on the alert.".to_owned(),
        input_schema: json!({
            "type": "object",
            "required": ["classification", "confidence", "techniques", "reasoning", "recommended_actions"],
            "additionalProperties": false,
            "properties": {
                "classification": {"type": "string", "enum": ["true_positive", "benign_true_positive", "false_positive", "needs_investigation"]},
                "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                "techniques": {"type": "array", "items": {"type": "string", "maxLength": 16}, "maxItems": 20},
                "reasoning": {"type": "array", "items": {"type": "string", "maxLength": 600}, "minItems": 1, "maxItems": 12},
                "recommended_actions": {
                    "type": "array",
                    "maxItems": 20,
                    "items": {
                        "type": "object",
                        "required": ["action", "target", "rationale"],
                        "additionalProperties": false,
                        "properties": {
                            "action": {"type": "string", "enum": [
                                "collect_evidence", "hunt_indicators", "run_av_scan", "notify_analyst", "isolate_host",
                                "disable_account", "reset_password", "revoke_sessions", "block_indicator", "quarantine_file",
                                "remove_mail_artifact"
                            ]},
                            "target": {"type": "string", "maxLength": 500},
                            "rationale": {"type": "string", "maxLength": 500}
                        }
                    }
                }
            }
        }),
    }
}

fn cut(text: String) -> String {
    if text.chars().count() <= MAX_FIELD_CHARS {
        return text;
    }
    let mut cut: String = text.chars().take(MAX_FIELD_CHARS).collect();
    cut.push_str(" [cut]");
    cut
}

/// Names to pseudonymise: every account and host the alert names.
fn names(entities: &AlertEntities) -> (Vec<String>, Vec<String>) {
    let mut accounts = Vec::new();
    for account in &entities.accounts {
        accounts.extend([account.name.clone(), account.upn.clone()].into_iter().flatten());
    }
    let mut hosts = Vec::new();
    for host in &entities.hosts {
        hosts.extend([host.hostname.clone(), host.fqdn.clone()].into_iter().flatten());
    }
    accounts.retain(|name| name.len() >= 3);
    hosts.retain(|name| name.len() >= 3);
    (accounts, hosts)
}

/// What the reasoning agent asks the gateway.
pub struct Ask<'a> {
    pub alert: &'a CanonicalAlert,
    pub entities: &'a AlertEntities,
    pub iocs: &'a [Ioc],
    pub incident_context: Option<Value>,
    pub enrichment: Value,
    pub baseline: &'a Verdict,
    pub investigation_id: String,
    pub previous_confidence: Option<f64>,
}

pub fn request(ask: &Ask<'_>) -> GatewayRequest {
    let alert = ask.alert;
    let (accounts, hosts) = names(ask.entities);
    let iocs: Vec<String> = ask.iocs.iter().map(|ioc| format!("{}:{}", ioc.kind().as_str(), ioc.value())).collect();
    let baseline = json!({
        "classification": ask.baseline.classification.as_str(),
        "confidence": ask.baseline.confidence,
        "reasoning": ask.baseline.reasoning,
    });
    let mut evidence = vec![
        ("alert_title".to_owned(), alert.title.clone()),
        ("alert_description".to_owned(), cut(alert.description.clone())),
        ("product".to_owned(), alert.product.clone()),
        ("severity".to_owned(), alert.severity.as_str().to_owned()),
        ("techniques".to_owned(), alert.techniques.join(", ")),
        ("tactics".to_owned(), alert.tactics.join(", ")),
        ("entities".to_owned(), cut(serde_json::to_string(ask.entities).unwrap_or_default())),
        ("indicators".to_owned(), cut(iocs.join("\n"))),
        ("enrichment".to_owned(), cut(ask.enrichment.to_string())),
        ("deterministic_reading".to_owned(), cut(baseline.to_string())),
    ];
    if let Some(context) = &ask.incident_context {
        evidence.push(("incident".to_owned(), cut(context.to_string())));
    }
    evidence.retain(|(_, value)| !value.is_empty());
    GatewayRequest {
        tenant: alert.tenant_id.as_str().to_owned(),
        task: TASK.to_owned(),
        severity: alert.severity,
        investigation_id: Some(ask.investigation_id.clone()),
        alert_id: Some(alert.alert_id.to_string()),
        instructions: INSTRUCTIONS.to_owned(),
        evidence,
        accounts,
        hosts,
        tool: report_classification_tool(),
        facts: Value::Null,
        time_budget: None,
        previous_confidence: ask.previous_confidence,
        stream: false,
    }
}

/// Whether an answer is weak enough to ask again at tier 1+.
pub fn should_escalate(severity: Severity, confidence: f64, already_escalated: bool) -> bool {
    !already_escalated && confidence < LOW_CONFIDENCE && severity >= Severity::High
}

/// The model's answer as a verdict. The gateway already validated it against the schema; this
/// reads it without trusting it further: unknown action names are refused, approval comes from
/// the action kind, severity and tactics from the alert and the baseline.
pub fn verdict(response: &GatewayResponse, alert: &CanonicalAlert, baseline: &Verdict) -> Result<Verdict, String> {
    let output = &response.output;
    let classification: Classification =
        serde_json::from_value(output["classification"].clone()).map_err(|error| format!("classification: {error}"))?;
    let confidence = output["confidence"].as_f64().filter(|c| (0.0..=1.0).contains(c)).ok_or("confidence is not in 0..=1")?;
    let strings = |field: &str| -> Vec<String> {
        output[field].as_array().map(|items| items.iter().filter_map(Value::as_str).map(str::to_owned).collect()).unwrap_or_default()
    };
    let mut techniques = strings("techniques");
    techniques.dedup();
    let mut reasoning: Vec<String> = strings("reasoning");
    reasoning.push(format!(
        "model {} ({}, {}) answered {} at {:.2}",
        response.model,
        response.provider,
        response.tier.as_str(),
        classification.as_str(),
        confidence
    ));
    let mut actions = Vec::new();
    for item in output["recommended_actions"].as_array().into_iter().flatten() {
        let kind: ActionKind = serde_json::from_value(item["action"].clone()).map_err(|error| format!("recommended action: {error}"))?;
        let target = item["target"].as_str().unwrap_or_default();
        let rationale = item["rationale"].as_str().unwrap_or_default();
        actions.push(RecommendedAction::new(kind, target, rationale));
    }
    if !actions.iter().any(|action| action.action == ActionKind::NotifyAnalyst) {
        actions.push(RecommendedAction::new(ActionKind::NotifyAnalyst, "soc", "review the verdict"));
    }
    Ok(Verdict {
        classification,
        confidence: (confidence * 100.0).round() / 100.0,
        severity: alert.severity,
        techniques: if techniques.is_empty() { baseline.techniques.clone() } else { techniques },
        tactics: baseline.tactics.clone(),
        reasoning,
        recommended_actions: actions,
    })
}
