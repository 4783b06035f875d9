//! The per-alert result record: one JSON object per input alert from `aluskort triage --format
//! jsonl`, and the body of `GET /v1/investigations/{id}`.

use aluskort_core::entity::AlertEntities;
use aluskort_core::{CanonicalAlert, GraphState, Incident, Ioc, RecommendedAction};
use aluskort_store::{CaseStore, StoreResult};
use serde::{Deserialize, Serialize};

/// Longest `merged_into` chain followed before giving up (a cycle would be a bug; never loop).
const MAX_MERGE_HOPS: usize = 64;

/// Follows `merged_into` from `incident_id` to the incident that is authoritative now.
pub async fn resolve_incident(store: &dyn CaseStore, incident_id: &str) -> StoreResult<Option<Incident>> {
    let mut current = match store.incident(incident_id).await? {
        Some(incident) => incident,
        None => return Ok(None),
    };
    for _ in 0..MAX_MERGE_HOPS {
        let Some(next_id) = current.merged_into.clone() else { return Ok(Some(current)) };
        match store.incident(&next_id).await? {
            Some(next) => current = next,
            None => return Ok(Some(current)),
        }
    }
    Ok(Some(current))
}

/// One alert's triage result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriageRecord {
    pub alert_id: String,
    pub tenant_id: String,
    pub source: String,
    pub title: String,
    pub timestamp: String,
    /// Severity assigned by reasoning (the source's when reasoning has not run).
    pub severity: String,
    pub source_severity: String,
    pub state: String,
    pub classification: Option<String>,
    pub confidence: f64,
    pub techniques: Vec<String>,
    /// For alerts that name no technique: `{"id", "name", "score"}` suggested from the alert's text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suggested_techniques: Vec<serde_json::Value>,
    pub tactics: Vec<String>,
    /// Similar closed incidents of the tenant (incident memory), best first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub similar_incidents: Vec<serde_json::Value>,
    /// The alert's indicators found in imported threat-intel reports: `{ioc, report_id, title, section}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ti_matches: Vec<serde_json::Value>,
    /// The alert's indicators found in imported threat-intelligence feeds (FR-ENR-004).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ioc_matches: Vec<aluskort_core::graph_state::IocMatch>,
    pub entities: AlertEntities,
    pub iocs: Vec<Ioc>,
    pub incident_id: Option<String>,
    pub incident_alert_count: usize,
    pub recommended_actions: Vec<RecommendedAction>,
    pub requires_approval: bool,
    pub degradation_level: String,
    /// Model calls made for this alert and their cost.
    pub llm_calls: u32,
    pub llm_cost_usd: f64,
    /// Why the model did not decide, when it did not: evidence quarantined as a prompt injection,
    /// or the model unavailable or unusable (the verdict is then the deterministic reasoner's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_issue: Option<String>,
    pub investigation_id: String,
    pub reasoning: Vec<String>,
    pub close_reason: Option<String>,
    pub error: Option<String>,
    pub origin: Option<String>,
    pub duplicate: bool,
    pub warnings: Vec<String>,
}

impl TriageRecord {
    pub fn new(alert: &CanonicalAlert, state: &GraphState, incident: Option<&Incident>) -> Self {
        let reasoning = state
            .case_facts
            .get("reasoning")
            .and_then(|value| serde_json::from_value::<Vec<String>>(value.clone()).ok())
            .unwrap_or_default();
        let warnings = state
            .case_facts
            .get("ingest_warnings")
            .and_then(|value| serde_json::from_value::<Vec<String>>(value.clone()).ok())
            .unwrap_or_default();
        TriageRecord {
            alert_id: alert.alert_id.to_string(),
            tenant_id: alert.tenant_id.to_string(),
            source: alert.source.as_str().to_owned(),
            title: alert.title.clone(),
            timestamp: alert.timestamp.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            severity: if state.severity.is_empty() { alert.severity.as_str().to_owned() } else { state.severity.clone() },
            source_severity: alert.severity.as_str().to_owned(),
            state: state.state.as_str().to_owned(),
            classification: state.classification.map(|c| c.as_str().to_owned()),
            confidence: state.confidence,
            techniques: state.techniques.clone(),
            suggested_techniques: state
                .case_facts
                .get("suggested_techniques")
                .and_then(|value| value.as_array().cloned())
                .unwrap_or_default(),
            tactics: state.tactics.clone(),
            similar_incidents: state.case_facts.get("similar_incidents").and_then(|value| value.as_array().cloned()).unwrap_or_default(),
            ioc_matches: state.ioc_matches.clone(),
            ti_matches: state.case_facts.get("ti_matches").and_then(|value| value.as_array().cloned()).unwrap_or_default(),
            entities: (*state.entities).clone(),
            iocs: state.iocs.to_vec(),
            incident_id: incident.map(|i| i.incident_id.clone()).or_else(|| state.incident_id.clone()),
            incident_alert_count: incident.map_or(0, |i| i.alert_ids.len()),
            recommended_actions: state.recommended_actions.clone(),
            requires_approval: state.requires_human_approval,
            degradation_level: state.degradation_level.as_str().to_owned(),
            llm_calls: state.llm_calls,
            llm_cost_usd: state.total_cost_usd,
            model_issue: ["prompt_injection", "model_unavailable"]
                .iter()
                .find_map(|key| state.case_facts.get(*key).map(|value| format!("{key}: {}", value.as_str().unwrap_or_default()))),
            investigation_id: state.investigation_id.to_string(),
            reasoning,
            close_reason: state.close_reason.clone(),
            error: state.error.clone(),
            origin: None,
            duplicate: false,
            warnings,
        }
    }

    /// Loads everything a record needs for one alert's investigation.
    pub async fn load(store: &dyn CaseStore, state: &GraphState) -> StoreResult<Option<Self>> {
        Ok(Self::load_many(store, std::slice::from_ref(state)).await?.pop())
    }

    /// [`TriageRecord::load`] for a page of investigations: each incident is resolved once for the
    /// page (an incident's members are usually listed together), and the alerts are read a few at
    /// a time. In the order of `states`; investigations whose alert is missing are left out.
    pub async fn load_many(store: &dyn CaseStore, states: &[GraphState]) -> StoreResult<Vec<Self>> {
        use futures::StreamExt;
        let mut incidents: std::collections::HashMap<&str, Option<Incident>> = std::collections::HashMap::new();
        for id in states.iter().filter_map(|state| state.incident_id.as_deref()) {
            if !incidents.contains_key(id) {
                incidents.insert(id, resolve_incident(store, id).await?);
            }
        }
        let reads: Vec<_> = states.iter().map(|state| store.alert(&state.tenant_id, &state.alert_id)).collect();
        let alerts: Vec<StoreResult<Option<CanonicalAlert>>> = futures::stream::iter(reads).buffered(8).collect().await;
        let mut records = Vec::with_capacity(states.len());
        for (state, alert) in states.iter().zip(alerts) {
            let Some(alert) = alert? else { continue };
            let incident = state.incident_id.as_deref().and_then(|id| incidents.get(id)).and_then(Option::as_ref);
            records.push(TriageRecord::new(&alert, state, incident));
        }
        Ok(records)
    }
}
